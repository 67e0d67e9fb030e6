//! What can go wrong starting or running a connection.

use std::time::Duration;

use signal_core::TransportType;

/// A connection could not start, or ended with a fault.
///
/// Cheap to clone: the reason a connection closed is handed to every waiting
/// caller and to each `on_closed` callback.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The hub URL cannot be used.
    #[error("'{url}' is not a usable hub URL: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The negotiate request failed (unreachable server, wrong path, bad answer).
    #[error("negotiate at {url} failed: {reason}")]
    Negotiate {
        /// The negotiate URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The server answered negotiate with an error.
    #[error("the server refused the connection: {0}")]
    Refused(String),
    /// Negotiate redirected more than 100 times.
    #[error("negotiate redirected more than 100 times; check the server's redirect target")]
    TooManyRedirects,
    /// No transport both sides allow could connect.
    #[error("no transport could connect: {0}")]
    NoTransport(String),
    /// A transport failed.
    #[error("the {transport} transport failed: {reason}")]
    Transport {
        /// Which transport.
        transport: TransportType,
        /// What happened.
        reason: String,
    },
    /// The server refused the handshake (unknown protocol or version).
    #[error("the server refused the handshake: {0}")]
    HandshakeRefused(String),
    /// The server answered the handshake with something that is no handshake answer.
    #[error("the handshake answer is malformed: {0}")]
    HandshakeMalformed(String),
    /// The server did not answer in time.
    #[error("the server did not answer within {0:?}")]
    Timeout(Duration),
    /// No message came from the server within the server timeout.
    #[error(
        "no message arrived from the server within the server timeout ({0:?}); the connection was given up"
    )]
    ServerTimeout(Duration),
    /// The server sent bytes that are not a message of the hub protocol.
    #[error("the server sent a malformed message: {0}")]
    Protocol(String),
    /// The server closed the connection with an error.
    #[error("the server closed the connection with an error: {0}")]
    ServerClosed(String),
    /// The transport ended without a Close message.
    #[error("the connection was lost: {0}")]
    ConnectionLost(String),
    /// The connection is not connected (never started, stopped, or reconnecting).
    #[error("the connection is not connected ({0:?}); start it, or wait for it to reconnect")]
    NotConnected(crate::ConnectionState),
    /// `start` was called on a connection that is not disconnected.
    #[error("the connection is already {0:?}; it can start only when disconnected")]
    AlreadyStarted(crate::ConnectionState),
    /// The connection was stopped while this was in progress.
    #[error("the connection was stopped")]
    Stopped,
}
