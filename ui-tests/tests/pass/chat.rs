#![deny(warnings, missing_docs, unreachable_pub)]
//! The full shape: a hub with a typed client, every kind of method, hooks,
//! renames and doc comments.

use futures_util::stream;
use signal::{Context, HubError, HubStream};

/// What the server calls on chat clients.
#[signal::client]
pub trait ChatClient {
    /// A message arrived in a room.
    async fn receive_message(&self, user: String, text: String);
    /// Asks the user; a client result.
    async fn confirm(&self, question: String) -> bool;
}

/// A chat room hub.
#[signal::hub(client = ChatClient)]
pub trait Chat {
    /// Sends a message to a room.
    async fn send_message(
        &self,
        cx: &Context<dyn ChatClient>,
        room: String,
        text: String,
    ) -> Result<(), HubError>;
    /// Joins a room.
    async fn join(&self, cx: &Context<dyn ChatClient>, room: String);
    /// Adds.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// The old name of `sendMessage`.
    #[signal::method(name = "SendMessageLegacy")]
    async fn legacy(&self, text: String) -> Result<String, HubError>;
    /// Counts to `count`.
    async fn counter(&self, count: u32) -> HubStream<u32>;
    /// Not async.
    fn sync_works_too(&self) -> u8;
    /// A connection arrived.
    async fn on_connected(&self, _cx: &Context<dyn ChatClient>) {}
    /// A connection left.
    async fn on_disconnected(&self, _cx: &Context<dyn ChatClient>, _error: Option<&str>) {}
}

struct MyChat;

impl Chat for MyChat {
    async fn send_message(
        &self,
        cx: &Context<dyn ChatClient>,
        room: String,
        text: String,
    ) -> Result<(), HubError> {
        cx.clients()
            .group(&room)
            .receive_message("me".into(), text)
            .await?;
        let ok: bool = cx.clients().caller().confirm("sure?".into()).await?;
        let _ = ok;
        Ok(())
    }

    /// Joins a room.
    async fn join(&self, cx: &Context<dyn ChatClient>, room: String) {
        let _ = cx.groups().add(cx.connection_id().clone(), &room).await;
    }

    /// Adds.
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn legacy(&self, text: String) -> Result<String, HubError> {
        Ok(text)
    }

    /// Counts to `count`.
    async fn counter(&self, count: u32) -> HubStream<u32> {
        Box::pin(stream::iter((0..count).map(Ok)))
    }

    /// Not async.
    fn sync_works_too(&self) -> u8 {
        7
    }
}

fn main() {
    let hub: signal::Hub<ChatServer<MyChat>> = MyChat.into_hub();
    let _router: axum::Router = hub.router();
    let descriptor = <dyn Chat>::descriptor();
    assert_eq!(descriptor.methods.len(), 6);
    assert_eq!(descriptor.methods[3].wire_name, "SendMessageLegacy");
    assert_eq!(descriptor.client.unwrap().methods.len(), 2);
    let _ = <dyn ChatClient>::descriptor();
}
