//! A chat: user names, rooms as groups, join and leave notices, who is online.
//!
//! Run: `npm ci && cargo run --example chat`, then open http://127.0.0.1:5000 in
//! two tabs. The page uses the official `@microsoft/signalr` browser client,
//! served from the npm install (never from a CDN), through the typed proxy
//! generated from the hub at build time (`examples/generated/chat.js`). `?transport=LongPolling` (or
//! `ServerSentEvents`, `WebSockets`) forces a transport; "show log" turns on the
//! client's logging, which names the transport it chose.
//!
//! http://127.0.0.1:5000/legacy is the same chat for the ASP.NET SignalR 2.x
//! jQuery client (jQuery 3.7.1 and `signalr` 2.4.3 from the npm install, the
//! hub as `$.connection.chatHub` from `/signalr/hubs`): a 2.x page and a Core
//! page chat in one room. `?transport=longPolling` forces a transport, `?log`
//! turns on `$.connection.hub.logging`, `?manual` leaves `start` to the console.

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use signal::legacy::LegacyEndpoint;
use signal::{ConnectionId, Context, HubError};
use signal_examples_api::chat::{Chat, ChatClient};
use tower_http::services::ServeFile;

#[derive(Clone)]
struct Member {
    name: String,
    room: Option<String>,
}

/// The chat's state: who is connected under which name, in which room.
#[derive(Default)]
struct ChatHub {
    members: Mutex<HashMap<ConnectionId, Member>>,
}

const MAX_NAME: usize = 32;
const MAX_TEXT: usize = 2000;

fn checked(what: &str, value: String, max: usize) -> Result<String, HubError> {
    let value = value.trim().to_owned();
    if value.is_empty() || value.chars().count() > max {
        return Err(HubError::new(format!(
            "{what} must be 1 to {max} characters long"
        )));
    }
    Ok(value)
}

impl ChatHub {
    fn room_members(&self, room: &str) -> Vec<String> {
        let members = self.members.lock().expect("members lock");
        let names: BTreeSet<String> = members
            .values()
            .filter(|m| m.room.as_deref() == Some(room))
            .map(|m| m.name.clone())
            .collect();
        names.into_iter().collect()
    }

    fn online(&self) -> Vec<String> {
        let members = self.members.lock().expect("members lock");
        let names: BTreeSet<String> = members.values().map(|m| m.name.clone()).collect();
        names.into_iter().collect()
    }

    /// Takes the caller out of its room, if any, and tells the room.
    async fn leave(&self, cx: &Context<dyn ChatClient>) -> Result<(), HubError> {
        let left = {
            let mut members = self.members.lock().expect("members lock");
            members.get_mut(cx.connection_id()).and_then(|m| {
                let room = m.room.take()?;
                Some((m.name.clone(), room))
            })
        };
        if let Some((name, room)) = left {
            cx.groups()
                .remove(cx.connection_id().clone(), &room)
                .await?;
            let members = self.room_members(&room);
            cx.clients()
                .group(&room)
                .user_left(room.clone(), name, members)
                .await?;
        }
        Ok(())
    }
}

impl Chat for ChatHub {
    async fn join_room(
        &self,
        cx: &Context<dyn ChatClient>,
        name: String,
        room: String,
    ) -> Result<Vec<String>, HubError> {
        let name = checked("a name", name, MAX_NAME)?;
        let room = checked("a room name", room, MAX_NAME)?;
        self.leave(cx).await?;
        self.members.lock().expect("members lock").insert(
            cx.connection_id().clone(),
            Member {
                name: name.clone(),
                room: Some(room.clone()),
            },
        );
        cx.groups().add(cx.connection_id().clone(), &room).await?;
        let members = self.room_members(&room);
        cx.clients()
            .others_in_group(&room)
            .user_joined(room.clone(), name, members.clone())
            .await?;
        cx.clients().all().online_users(self.online()).await?;
        Ok(members)
    }

    async fn leave_room(&self, cx: &Context<dyn ChatClient>, room: String) -> Result<(), HubError> {
        let current = self
            .members
            .lock()
            .expect("members lock")
            .get(cx.connection_id())
            .and_then(|m| m.room.clone());
        if current.as_deref() != Some(room.as_str()) {
            return Err(HubError::new(format!("you are not in the room '{room}'")));
        }
        self.leave(cx).await?;
        Ok(())
    }

    async fn send_message(
        &self,
        cx: &Context<dyn ChatClient>,
        room: String,
        text: String,
    ) -> Result<(), HubError> {
        let text = checked("a message", text, MAX_TEXT)?;
        let name = {
            let members = self.members.lock().expect("members lock");
            match members.get(cx.connection_id()) {
                Some(m) if m.room.as_deref() == Some(room.as_str()) => m.name.clone(),
                _ => {
                    return Err(HubError::new(format!(
                        "join the room '{room}' before sending to it"
                    )));
                }
            }
        };
        cx.clients()
            .group(&room)
            .receive_message(room.clone(), name, text)
            .await?;
        Ok(())
    }

    async fn on_disconnected(&self, cx: &Context<dyn ChatClient>, _error: Option<&str>) {
        if let Err(error) = self.leave(cx).await {
            tracing::debug!(%error, "could not announce a departure");
        }
        let was_member = self
            .members
            .lock()
            .expect("members lock")
            .remove(cx.connection_id())
            .is_some();
        if was_member {
            let _ = cx.clients().others().online_users(self.online()).await;
        }
    }
}

fn main() -> std::io::Result<()> {
    signal::runtime()?.block_on(run_server())
}

async fn run_server() -> std::io::Result<()> {
    support::init_tracing();
    let root = support::root();
    let page = root.join("examples/chat");
    // SIGNAL_REDIS=redis://HOST:PORT: several chat servers share rooms.
    let (hub, backplane) = support::backplane(ChatHub::default().into_hub(), "Chat")?;
    let handle = hub.handle();
    // The hub for 2.x pages too, named as 2.x pages know it: `$.connection.chatHub`.
    let mut legacy = LegacyEndpoint::new().rename("Chat", "ChatHub");
    let node_modules = root.join("node_modules");
    let app = axum::Router::new()
        .nest("/chat", hub.router_with_legacy(&mut legacy))
        .merge(legacy.router())
        .route_service("/legacy", ServeFile::new(page.join("legacy.html")))
        .route_service("/legacy.js", ServeFile::new(page.join("legacy.js")))
        .route_service(
            "/lib/jquery.js",
            ServeFile::new(node_modules.join("jquery/dist/jquery.js")),
        )
        .route_service(
            "/lib/jquery.signalR.js",
            ServeFile::new(node_modules.join("signalr/jquery.signalR.js")),
        )
        .merge(support::page("chat")?);
    backplane.ready().await;
    support::serve(
        app,
        async move { handle.shutdown(Duration::from_secs(5)).await },
    )
    .await
}
