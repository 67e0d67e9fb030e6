//! The seed's high-frequency example: a shape dragged in one browser moves in
//! every other.
//!
//! Run: `npm ci && cargo run --example move_shape`, then open
//! http://127.0.0.1:5001 in two windows and drag the square. `?transport=`
//! forces a transport, as in the chat.
//!
//! The pattern is the one for games and anything else that changes faster
//! than people can see: the page sends at most 20 positions a second however
//! fast the mouse moves, and the server keeps only the latest position and
//! sends it to the other pages on a fixed tick of 40 ms, when it changed. The
//! server's output is thereby bounded by the tick, not by its busiest client:
//! a client that sends a thousand positions a second (a bug, or a hostile
//! page) costs the others 25 messages a second, and the positions in between,
//! which nobody would see, are never sent.

#[path = "support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use signal::{ConnectionId, Context, HubError, HubHandle};
use signal_examples_api::move_shape::{MoveShape, MoveShapeClient, ShapeModel};

/// How often the server sends the latest position to the pages.
const TICK: Duration = Duration::from_millis(40);

/// The shape as the pages last moved it.
struct Latest {
    model: ShapeModel,
    /// Who moved it last: that page already shows it there.
    moved_by: Option<ConnectionId>,
    /// Whether it moved since the last tick.
    changed: bool,
}

#[derive(Clone)]
struct MoveShapeHub {
    latest: Arc<Mutex<Latest>>,
}

impl MoveShapeHub {
    fn new() -> Self {
        MoveShapeHub {
            latest: Arc::new(Mutex::new(Latest {
                model: ShapeModel {
                    left: 0.1,
                    top: 0.1,
                },
                moved_by: None,
                changed: false,
            })),
        }
    }

    /// Sends the latest position, when it changed, once per tick.
    async fn broadcast(self, hub: HubHandle<dyn MoveShapeClient>) {
        let mut tick = tokio::time::interval(TICK);
        // A late tick does not make up for the ones it missed with a burst.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let moved = {
                let mut latest = self.latest.lock().expect("latest lock");
                if !std::mem::take(&mut latest.changed) {
                    continue;
                }
                (latest.model, latest.moved_by.clone())
            };
            let (model, moved_by) = moved;
            let others = hub.clients().all_except(moved_by);
            if let Err(error) = others.update_shape(model).await {
                tracing::debug!(%error, "could not send the shape");
            }
        }
    }
}

fn checked(model: ShapeModel) -> Result<ShapeModel, HubError> {
    for (name, value) in [("left", model.left), ("top", model.top)] {
        if !value.is_finite() || !(0.0..=1.0).contains(&value) {
            return Err(HubError::new(format!(
                "the shape's {name} must be a number from 0 to 1, not {value}"
            )));
        }
    }
    Ok(model)
}

impl MoveShape for MoveShapeHub {
    async fn update_model(
        &self,
        cx: &Context<dyn MoveShapeClient>,
        model: ShapeModel,
    ) -> Result<(), HubError> {
        let model = checked(model)?;
        let mut latest = self.latest.lock().expect("latest lock");
        latest.model = model;
        latest.moved_by = Some(cx.connection_id().clone());
        latest.changed = true;
        Ok(())
    }

    async fn shape(&self) -> ShapeModel {
        self.latest.lock().expect("latest lock").model
    }
}

fn main() -> std::io::Result<()> {
    signal::runtime()?.block_on(run_server())
}

async fn run_server() -> std::io::Result<()> {
    support::init_tracing();
    let state = MoveShapeHub::new();
    let hub = state.clone().into_hub();
    let handle = hub.handle();
    tokio::spawn(state.broadcast(handle.clone()));
    let app = axum::Router::new()
        .nest("/shape", hub.router())
        .merge(support::page("move_shape")?);
    support::serve_on(5001, app, async move {
        handle.shutdown(Duration::from_secs(5)).await
    })
    .await
}
