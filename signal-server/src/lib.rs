//! The runtime of [signal](https://docs.rs/signal): hub endpoints on axum 0.8,
//! transports, connections, groups and the hub dispatch loop, on tokio.
//!
//! Users normally depend on the `signal` facade, which re-exports this crate.

pub mod auth;
mod connection;
mod frame;
mod hub;
mod items;
pub mod legacy;
pub mod lifetime;
pub mod metrics;
pub mod persistent;
mod serve;
#[cfg(test)]
mod tests;

/// Every text the server sends (Completion errors, Close errors, handshake
/// refusals), each with its ASP.NET Core source.
#[doc = include_str!("docs/texts.md")]
pub mod texts {}

pub use connection::{ConnectionId, ConnectionOptions, UserIdFn, relay};
pub use hub::Hub;
pub use hub::clients::{CallerClients, ClientContract, Clients, MultiClient, SingleClient, Target};
pub use hub::context::{Context, Groups, HubHandle};
pub use hub::dispatch::{BoxFuture, Call, HubDispatch, HubStream, Output, cancellable_stream};
pub use hub::error::{ClientResultError, HubError, InvocationError, SendError};
pub use hub::filter;
pub use hub::in_process::{InProcess, InProcessConnection};
pub use hub::options::HubOptions;
pub use hub::upload::UploadStream;
pub use items::Items;
pub use lifetime::{HubLifetimeManager, HubScope, LocalLifetimeManager, Recipients};
pub use metrics::HubMetrics;
pub use serve::{nodelay, runtime, serve, serve_until};
pub use signal_core::TransportType;
pub use tokio_util::sync::CancellationToken;

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
