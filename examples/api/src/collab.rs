//! The collaborative editing example's contract: one text edited by several
//! browsers at once, as a Yjs CRDT (`yjs` in the pages, `yrs` on the
//! server). Updates and state vectors travel as base64 strings of Yjs's
//! version 1 encoding.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use signal::{Context, HubError};

/// What a page and the server exchange when the page (re)connects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    /// What the page is missing: an update against the state vector it sent.
    pub update: String,
    /// The server's state vector: the page sends what the server is missing
    /// (its edits made offline) as an update against it.
    pub state_vector: String,
}

/// What the hub calls on the pages.
#[signal::client]
pub trait CollabClient {
    /// Another page's edit, to apply to the local document.
    async fn apply_update(&self, update: String);
}

/// What the pages may call.
#[signal::hub(client = CollabClient)]
pub trait Collab {
    /// Joins the editing: `state_vector` is the page's (empty for a new
    /// page). Returns what the page is missing and the server's state
    /// vector; from then on the page receives the others' updates.
    async fn join(
        &self,
        cx: &Context<dyn CollabClient>,
        state_vector: String,
    ) -> Result<Joined, HubError>;
    /// An edit of the caller's: applied to the server's document and relayed
    /// to the other pages. Fails when it is too large or not a Yjs update.
    async fn update(&self, cx: &Context<dyn CollabClient>, update: String) -> Result<(), HubError>;
    /// Forgets a page that has gone (it joins again when it comes back).
    async fn on_disconnected(&self, cx: &Context<dyn CollabClient>, error: Option<&str>);
}
