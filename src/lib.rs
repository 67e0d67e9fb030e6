//! # signal
//!
//! Real-time web applications in Rust, speaking the ASP.NET Core SignalR protocol,
//! so that the official SignalR clients (JavaScript in browsers and Node, .NET,
//! Java, Swift) work against a Rust server unchanged.
//!
//! A hub is a Rust trait: `#[signal::hub]` says what clients may call on the
//! server, `#[signal::client]` what the server may call on clients. The runtime
//! mounts hubs on axum 0.8 and runs on tokio.
//!
//! This crate is the facade: it re-exports [`signal_core`] (as [`protocol`]),
//! [`signal_server`] and the macros, so a project needs one dependency.

pub use signal_core as protocol;
pub use signal_server::{
    BoxFuture, Call, CallerClients, CancellationToken, ClientContract, ClientResultError, Clients,
    ConnectionId, ConnectionOptions, Context, Groups, Hub, HubDispatch, HubError, HubHandle,
    HubLifetimeManager, HubMetrics, HubOptions, HubStream, InProcess, InProcessConnection,
    InvocationError, Items, LocalLifetimeManager, MultiClient, Output, Recipients, SendError,
    SingleClient, Target, TransportType, UploadStream, UserIdFn, auth, cancellable_stream, filter,
    legacy, lifetime, metrics, persistent, texts,
};

pub use signal_macros::{authorize, client, hub, method};

/// Scale-out on Redis, wire-compatible with ASP.NET Core's backplane
/// (feature `redis`): `hub.lifetime_manager(signal::redis::Redis::new(url)?)`.
#[cfg(feature = "redis")]
pub use signal_redis as redis;

/// The network client: [`HubConnection`](client::HubConnection) calls hubs over
/// WebSockets, Server-Sent Events or long polling, typed through the proxies
/// `#[signal::hub]` generates. Behind the `client` feature.
#[cfg(feature = "client")]
pub use signal_client as client;

// Lets generated code name `::signal` from inside this crate too.
extern crate self as signal;

#[doc(hidden)]
pub mod __private;

/// The README's examples compile.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
