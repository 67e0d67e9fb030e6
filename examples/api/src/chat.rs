//! The chat example's contract.

use signal::{Context, HubError};

/// What the chat calls on its clients.
#[signal::client]
pub trait ChatClient {
    /// A message in a room.
    async fn receive_message(&self, room: String, user: String, text: String);
    /// Someone joined a room; `members` is the room's new member list.
    async fn user_joined(&self, room: String, user: String, members: Vec<String>);
    /// Someone left a room; `members` is the room's new member list.
    async fn user_left(&self, room: String, user: String, members: Vec<String>);
    /// Everyone online, whenever it changes.
    async fn online_users(&self, users: Vec<String>);
}

/// What chat clients may call.
#[signal::hub(client = ChatClient)]
pub trait Chat {
    /// Joins `room` as `name` (leaving the current room first); returns the
    /// room's members.
    async fn join_room(
        &self,
        cx: &Context<dyn ChatClient>,
        name: String,
        room: String,
    ) -> Result<Vec<String>, HubError>;
    /// Leaves `room`.
    async fn leave_room(&self, cx: &Context<dyn ChatClient>, room: String) -> Result<(), HubError>;
    /// Sends `text` to everyone in `room`; the caller must be in it.
    async fn send_message(
        &self,
        cx: &Context<dyn ChatClient>,
        room: String,
        text: String,
    ) -> Result<(), HubError>;
    /// Announces the departure of a user who closes the page.
    async fn on_disconnected(&self, cx: &Context<dyn ChatClient>, error: Option<&str>);
}
