//! The connection layer, under hubs and raw (persistent) connections alike:
//! negotiate, the three transports, `skipNegotiation`, the transport swap of
//! stateful reconnect, CORS and the origin check, and the limits on what a client
//! may send. It hands each connection to a handler as a [`Duplex`] of bytes and
//! knows nothing of hubs (ASP.NET Core's `Http.Connections`).

mod duplex;
mod endpoint;
mod id;
mod negotiate;
mod options;
pub mod relay;
pub(crate) mod request;
pub(crate) mod transports;

pub use duplex::Message;
pub(crate) use duplex::{Duplex, Event, TransportClosed};
pub use endpoint::UserIdFn;
#[cfg(test)]
pub(crate) use endpoint::origin_allowed;
pub(crate) use endpoint::{
    Endpoint, Handler, HandlerFuture, Start, keep_request, mounted, parse_origins,
};
pub use id::ConnectionId;
pub use options::ConnectionOptions;
pub(crate) use request::KeptRequest;
