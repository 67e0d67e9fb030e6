//! Settings of a hub, with ASP.NET Core SignalR's defaults.

use std::time::Duration;

use signal_core::{ProtocolSet, TransportType};

use crate::connection::ConnectionOptions;

/// Settings of one hub. Defaults match ASP.NET Core SignalR.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubOptions {
    /// How often the server sends a Ping when it has sent nothing else (15 s).
    pub keep_alive_interval: Duration,
    /// How long the server waits for any message from a client before closing
    /// the connection (30 s).
    pub client_timeout: Duration,
    /// How long a new connection may take to send its handshake (15 s).
    pub handshake_timeout: Duration,
    /// The largest message a client may send, in bytes (32 KiB); past it the
    /// connection is closed with an error.
    pub maximum_receive_message_size: usize,
    /// How many invocations of one connection run at once (1: in order).
    pub maximum_parallel_invocations: usize,
    /// How many frames may wait to be written to one connection (1024). A
    /// connection that falls this far behind a broadcast is closed rather than
    /// buffered without bound or allowed to lose messages.
    pub outgoing_queue_capacity: usize,
    /// How many invocations of one connection may wait for their turn (1024);
    /// a client that sends more while they run is closed.
    pub pending_invocation_capacity: usize,
    /// How many items of one stream may be under way (10): a server stream's
    /// items between its producer and the transport (past it the producer is
    /// not polled until the client takes some), an upload stream's items waiting
    /// for the hub method (past it the server stops reading from the client).
    pub stream_buffer_capacity: usize,
    /// How long a client result may take (30 s).
    pub client_result_timeout: Duration,
    /// How long a closing connection waits for its running invocations before
    /// it sends Close (5 s); shutdown uses it too.
    pub shutdown_timeout: Duration,
    /// Whether clients may use stateful reconnect (off, as in ASP.NET Core): a
    /// WebSocket client that loses its socket comes back on a new one with the
    /// same connection id, groups and state, and no message lost.
    pub stateful_reconnect: bool,
    /// How many bytes of sent messages a stateful connection keeps until the
    /// client acknowledges them (100,000); past it, sending waits.
    pub stateful_reconnect_buffer_size: usize,
    /// How long a stateful connection waits for its client to come back after
    /// losing its transport (15 s).
    pub disconnect_timeout: Duration,
    /// Whether `GET {path}/schema` serves the hub's descriptor (its methods,
    /// client methods and JSON Schemas) as one JSON document, for tools that
    /// read a running server's contract (off).
    pub schema_endpoint: bool,
    /// The transports clients may use, in the order negotiate offers them.
    pub transports: Vec<TransportType>,
    /// How long a long poll is held open when there is nothing to send (90 s).
    pub long_polling_timeout: Duration,
    /// How long a long-polling connection may go without a poll before it is
    /// ended (15 s).
    pub long_polling_disconnect_timeout: Duration,
    /// Whether invocation errors carry their details, as ASP.NET Core's
    /// `EnableDetailedErrors` (off): with it, why arguments failed to bind, a
    /// panic's message and the message of a [`HubError`](crate::HubError) of
    /// another kind than `HubException` reach the caller (see
    /// [`texts`](crate::texts)). Details are logged either way.
    pub enable_detailed_errors: bool,
    /// How long a negotiated connection may wait for its first transport
    /// request before its token expires (30 s).
    pub negotiate_timeout: Duration,
    /// How many connections the hub holds at most on this server (unlimited),
    /// counting negotiated ones not yet started: past it, negotiate answers
    /// 503 (`Service Unavailable`), as a WebSocket that skips negotiation
    /// does, and the official clients report the failure to start.
    pub maximum_connections: Option<usize>,
    /// How many invocations one connection may make per second (unlimited).
    /// A token bucket that holds one second's worth: a connection may burst
    /// up to the limit, then as fast as it refills. An invocation over it is
    /// not run; its caller gets an error Completion (see [`texts`](crate::texts))
    /// and the connection goes on. Stream items and pings do not count.
    pub maximum_invocations_per_second: Option<u32>,
    /// How many groups one connection may be in at once (unlimited). Adding
    /// a connection of this server past it fails with
    /// [`SendError::TooManyGroups`](crate::SendError::TooManyGroups).
    pub maximum_groups_per_connection: Option<usize>,
    /// How many streams one connection may have open at once, server streams
    /// and upload streams together (unlimited). A stream invocation past it is
    /// not run; its caller gets an error Completion.
    pub maximum_streams_per_connection: Option<usize>,
    /// Whether a connection is closed when its
    /// [`Identity`](crate::auth::Identity) expires (off), as ASP.NET Core's
    /// `CloseOnAuthenticationExpiration`. The Close message allows
    /// reconnecting, so a client with automatic reconnect comes back with a
    /// fresh token from its `accessTokenFactory`.
    pub close_on_authentication_expiration: bool,
    /// The hub protocols clients may ask for in their handshake: `json` and
    /// `messagepack` by default. Restrict them with
    /// [`ProtocolSet::retain`] (`options.protocols.retain(|name| name == "json")`);
    /// a client asking for another one is refused in the handshake.
    pub protocols: ProtocolSet,
}

impl HubOptions {
    /// What the connection layer under the hub runs with.
    pub(crate) fn connection_options(&self) -> ConnectionOptions {
        ConnectionOptions {
            transports: self.transports.clone(),
            maximum_receive_message_size: self.maximum_receive_message_size,
            outgoing_queue_capacity: self.outgoing_queue_capacity,
            // A client that does not take a write within the client timeout is
            // as gone as one that sends nothing.
            write_timeout: self.client_timeout,
            long_polling_timeout: self.long_polling_timeout,
            long_polling_disconnect_timeout: self.long_polling_disconnect_timeout,
            negotiate_timeout: self.negotiate_timeout,
            stateful_reconnect: self.stateful_reconnect,
            disconnect_timeout: self.disconnect_timeout,
            maximum_connections: self.maximum_connections,
        }
    }
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            keep_alive_interval: Duration::from_secs(15),
            client_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            maximum_receive_message_size: 32 * 1024,
            maximum_parallel_invocations: 1,
            outgoing_queue_capacity: 1024,
            pending_invocation_capacity: 1024,
            stream_buffer_capacity: 10,
            client_result_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
            stateful_reconnect: false,
            stateful_reconnect_buffer_size: 100_000,
            disconnect_timeout: Duration::from_secs(15),
            schema_endpoint: false,
            transports: TransportType::ALL.to_vec(),
            long_polling_timeout: Duration::from_secs(90),
            long_polling_disconnect_timeout: Duration::from_secs(15),
            negotiate_timeout: Duration::from_secs(30),
            enable_detailed_errors: false,
            maximum_connections: None,
            maximum_invocations_per_second: None,
            maximum_groups_per_connection: None,
            maximum_streams_per_connection: None,
            close_on_authentication_expiration: false,
            protocols: ProtocolSet::default(),
        }
    }
}
