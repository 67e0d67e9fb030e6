//! A live dashboard of the server itself: connections per transport and
//! protocol, invocations and messages per second in and out, groups, drawn as
//! charts that move every second.
//!
//! Run: `npm ci && cargo run --example dashboard`, then open
//! http://127.0.0.1:5000. The figures are signal's own metrics
//! ([`HubHandle::metrics`]); a background task reads them once a second and
//! pushes them, through a [`HubHandle`], to the pages in the `dashboard`
//! group. Open more tabs (`?transport=LongPolling`, `ServerSentEvents`,
//! `WebSockets`; `?protocol=messagepack`) and watch the figures follow; the
//! "traffic" button makes each page call `echo` ten times a second.
//!
//! The page uses the official `@microsoft/signalr` browser client and uPlot for
//! the charts, both served from the npm install (never from a CDN), through the
//! typed proxy generated from the hub at build time
//! (`examples/generated/dashboard.js`).
//!
//! The same figures reach any `metrics` recorder the application installs (a
//! Prometheus exporter, say) as `signal_*` metrics: see `signal::metrics`.

#[path = "support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use signal::{Context, HubError, HubHandle, HubMetrics, TransportType};
use signal_examples_api::dashboard::{Dashboard, DashboardClient, Figures};
use tokio::time::{Instant, MissedTickBehavior};
use tower_http::services::ServeFile;

/// The group of the pages that watch the figures.
const GROUP: &str = "dashboard";
/// The longest text `echo` answers.
const MAX_ECHO: usize = 256;

/// The dashboard's state: the figures of the last full second, for pages
/// that start watching between two pushes.
#[derive(Default)]
struct DashboardHub {
    latest: Arc<Mutex<Figures>>,
}

impl Dashboard for DashboardHub {
    async fn watch(&self, cx: &Context<dyn DashboardClient>) -> Result<Figures, HubError> {
        cx.groups().add(cx.connection_id().clone(), GROUP).await?;
        // Counts as of now (this page included), rates of the last second.
        let latest = self.latest.lock().expect("latest lock").clone();
        Ok(Figures {
            at: now_millis(),
            ..figures(&cx.hub().metrics(), &latest)
        })
    }

    async fn unwatch(&self, cx: &Context<dyn DashboardClient>) -> Result<(), HubError> {
        cx.groups()
            .remove(cx.connection_id().clone(), GROUP)
            .await?;
        Ok(())
    }

    async fn echo(&self, text: String) -> Result<String, HubError> {
        if text.chars().count() > MAX_ECHO {
            return Err(HubError::new(format!(
                "echo takes at most {MAX_ECHO} characters"
            )));
        }
        Ok(text)
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The counts of `metrics`, with the rates of `rates`.
fn figures(metrics: &HubMetrics, rates: &Figures) -> Figures {
    Figures {
        at: rates.at,
        web_sockets: metrics.connections_over(TransportType::WebSockets),
        server_sent_events: metrics.connections_over(TransportType::ServerSentEvents),
        long_polling: metrics.connections_over(TransportType::LongPolling),
        json: metrics.connections_speaking("json"),
        message_pack: metrics.connections_speaking("messagepack"),
        groups: metrics.groups,
        invocations: metrics.invocations,
        connections_opened: metrics.connections_opened,
        ..rates.clone()
    }
}

/// Once a second: reads the hub's metrics, turns the counters into rates over
/// the time actually elapsed (a late tick does not inflate them), and pushes
/// the figures to the watching pages.
async fn publish(handle: HubHandle<dyn DashboardClient>, latest: Arc<Mutex<Figures>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut before = (Instant::now(), handle.metrics());
    loop {
        tick.tick().await;
        let now = (Instant::now(), handle.metrics());
        let seconds = now.0.duration_since(before.0).as_secs_f64().max(1e-3);
        let per_second = |new: u64, old: u64| (new.saturating_sub(old)) as f64 / seconds;
        let rates = Figures {
            at: now_millis(),
            invocations_per_second: per_second(now.1.invocations, before.1.invocations),
            messages_in_per_second: per_second(now.1.messages_received, before.1.messages_received),
            messages_out_per_second: per_second(now.1.messages_sent, before.1.messages_sent),
            ..Figures::default()
        };
        let current = figures(&now.1, &rates);
        *latest.lock().expect("latest lock") = current.clone();
        if let Err(error) = handle.clients().group(GROUP).figures(current).await {
            tracing::warn!(%error, "could not push the figures");
        }
        before = now;
    }
}

fn main() -> std::io::Result<()> {
    signal::runtime()?.block_on(run_server())
}

async fn run_server() -> std::io::Result<()> {
    support::init_tracing();
    let msgpack = support::node_module(
        "@microsoft/signalr-protocol-msgpack/dist/browser/signalr-protocol-msgpack.js",
    )?;
    let uplot = support::node_module("uplot/dist/uPlot.iife.min.js")?;
    let uplot_css = support::node_module("uplot/dist/uPlot.min.css")?;
    let state = DashboardHub::default();
    let latest = state.latest.clone();
    let hub = state.into_hub();
    let handle = hub.handle();
    tokio::spawn(publish(handle.clone(), latest));
    let app = axum::Router::new()
        .nest("/dashboard", hub.router())
        .merge(support::page("dashboard")?)
        .route_service("/signalr-protocol-msgpack.js", ServeFile::new(msgpack))
        .route_service("/lib/uPlot.iife.min.js", ServeFile::new(uplot))
        .route_service("/lib/uPlot.min.css", ServeFile::new(uplot_css));
    support::serve(
        app,
        async move { handle.shutdown(Duration::from_secs(5)).await },
    )
    .await
}
