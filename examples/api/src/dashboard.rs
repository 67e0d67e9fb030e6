//! The dashboard example's contract: a server that shows its own figures, live.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use signal::{Context, HubError};

/// The server's figures over the last second, as the dashboard draws them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// When the figures were taken, in milliseconds since the Unix epoch.
    pub at: u64,
    /// Connections open over WebSockets.
    pub web_sockets: u64,
    /// Connections open over Server-Sent Events.
    pub server_sent_events: u64,
    /// Connections open over long polling.
    pub long_polling: u64,
    /// Connections open speaking the JSON hub protocol.
    pub json: u64,
    /// Connections open speaking the MessagePack hub protocol.
    pub message_pack: u64,
    /// Groups with at least one member.
    pub groups: u64,
    /// Invocations received per second.
    pub invocations_per_second: f64,
    /// Hub messages received per second.
    pub messages_in_per_second: f64,
    /// Hub messages sent per second.
    pub messages_out_per_second: f64,
    /// Invocations received since the server started.
    pub invocations: u64,
    /// Connections opened since the server started.
    pub connections_opened: u64,
}

/// What the dashboard calls on its pages.
#[signal::client]
pub trait DashboardClient {
    /// The figures of the last second, pushed every second to the watchers.
    async fn figures(&self, figures: Figures);
}

/// What dashboard pages (and any other client, to make some traffic) may call.
#[signal::hub(client = DashboardClient)]
pub trait Dashboard {
    /// Starts receiving the figures every second (joins the `dashboard`
    /// group); returns the latest figures so the page has something to show
    /// at once.
    async fn watch(&self, cx: &Context<dyn DashboardClient>) -> Result<Figures, HubError>;
    /// Stops receiving the figures.
    async fn unwatch(&self, cx: &Context<dyn DashboardClient>) -> Result<(), HubError>;
    /// Answers `text` back (at most 256 characters): traffic to watch.
    async fn echo(&self, text: String) -> Result<String, HubError>;
}
