//! Settings of the connection layer, with ASP.NET Core's defaults.

use std::time::Duration;

use signal_core::TransportType;

/// Settings of one connection endpoint: transports, their timeouts and limits.
/// A hub derives them from its [`HubOptions`](crate::HubOptions).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionOptions {
    /// The transports clients may use, in the order negotiate offers them.
    pub transports: Vec<TransportType>,
    /// The largest message a client may send, in bytes (32 KiB). A WebSocket
    /// message may not pass `max(4 ×` this`, 64 KiB)` nor a POST body
    /// `max(4 ×` this`, 1 MiB)`; past them the connection is closed with a reason.
    pub maximum_receive_message_size: usize,
    /// How many frames may wait to be written to one connection (1024).
    pub outgoing_queue_capacity: usize,
    /// How long one write to a client may take before the client is taken for
    /// gone (30 s): a client that stops reading cannot hold its connection.
    pub write_timeout: Duration,
    /// How long a long poll is held open when there is nothing to send (90 s).
    pub long_polling_timeout: Duration,
    /// How long a long-polling connection may go without a poll before it is
    /// ended (15 s).
    pub long_polling_disconnect_timeout: Duration,
    /// How long a negotiated connection may wait for its first transport
    /// request before its token expires (30 s).
    pub negotiate_timeout: Duration,
    /// Whether clients may negotiate stateful reconnect (off).
    pub stateful_reconnect: bool,
    /// How long a connection that may reconnect waits for its client to come
    /// back after losing its transport (15 s).
    pub disconnect_timeout: Duration,
    /// How many connections this endpoint holds at most on this server,
    /// counting those negotiated and not yet started (unlimited). Past it,
    /// negotiate (and a WebSocket that skips negotiation) answers 503.
    pub maximum_connections: Option<usize>,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            transports: TransportType::ALL.to_vec(),
            maximum_receive_message_size: 32 * 1024,
            outgoing_queue_capacity: 1024,
            write_timeout: Duration::from_secs(30),
            long_polling_timeout: Duration::from_secs(90),
            long_polling_disconnect_timeout: Duration::from_secs(15),
            negotiate_timeout: Duration::from_secs(30),
            stateful_reconnect: false,
            disconnect_timeout: Duration::from_secs(15),
            maximum_connections: None,
        }
    }
}
