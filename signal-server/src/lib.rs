//! The runtime of [signal](https://docs.rs/signal): hub endpoints on axum 0.8,
//! transports, connections, groups and the hub dispatch loop, on tokio.
//!
//! Users normally depend on the `signal` facade, which re-exports this crate.

mod clients;
mod context;
mod dispatch;
mod error;
mod frame;
mod http_transports;
mod hub;
mod in_process;
mod lifetime;
mod link;
mod negotiate;
mod options;
mod session;
#[cfg(test)]
mod tests;
mod transport;
mod upload;
mod websocket;

/// Every text the server sends (Completion errors, Close errors, handshake
/// refusals), each with its ASP.NET Core source.
#[doc = include_str!("docs/texts.md")]
pub mod texts {}

pub use clients::{CallerClients, ClientContract, Clients, MultiClient, SingleClient, Target};
pub use context::{Context, Groups, HubHandle, Items};
pub use dispatch::{BoxFuture, Call, HubDispatch, HubStream, Output, cancellable_stream};
pub use error::{ClientResultError, HubError, InvocationError, SendError};
pub use hub::{Hub, UserIdFn};
pub use in_process::{InProcess, InProcessConnection};
pub use lifetime::ConnectionId;
pub use options::HubOptions;
pub use signal_core::TransportType;
pub use tokio_util::sync::CancellationToken;
pub use upload::UploadStream;

impl From<SendError> for HubError {
    fn from(error: SendError) -> Self {
        HubError::new(error.to_string())
    }
}

impl From<ClientResultError> for HubError {
    fn from(error: ClientResultError) -> Self {
        HubError::new(error.to_string())
    }
}
