#![doc = include_str!("../README.md")]

pub use signal_core as protocol;
pub use signal_server::{
    BoxFuture, Call, CallerClients, CancellationToken, ClientContract, ClientResultError, Clients,
    ConnectionId, ConnectionOptions, Context, Groups, Hub, HubDispatch, HubError, HubHandle,
    HubLifetimeManager, HubMetrics, HubOptions, HubStream, InProcess, InProcessConnection,
    InvocationError, Items, LocalLifetimeManager, MultiClient, Output, Recipients, SendError,
    SingleClient, Target, TransportType, UploadStream, UserIdFn, auth, cancellable_stream, filter,
    legacy, lifetime, metrics, nodelay, persistent, runtime, serve, serve_until, texts,
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

/// Guides: how to build with signal, topic by topic. Their code compiles as
/// doctests, so it stays true to the API.
pub mod guide {
    #[doc = include_str!("../docs/getting-started.md")]
    pub mod getting_started {}
    #[doc = include_str!("../docs/hubs-and-clients.md")]
    pub mod hubs_and_clients {}
    #[doc = include_str!("../docs/transports-and-negotiation.md")]
    pub mod transports_and_negotiation {}
    #[doc = include_str!("../docs/sending-from-outside-a-hub.md")]
    pub mod sending_from_outside_a_hub {}
    #[doc = include_str!("../docs/groups-and-users.md")]
    pub mod groups_and_users {}
    #[doc = include_str!("../docs/streaming-and-client-results.md")]
    pub mod streaming_and_client_results {}
    #[doc = include_str!("../docs/authentication.md")]
    pub mod authentication {}
    #[doc = include_str!("../docs/security.md")]
    pub mod security {}
    #[doc = include_str!("../docs/deployment.md")]
    pub mod deployment {}
    #[doc = include_str!("../docs/scale-out.md")]
    pub mod scale_out {}
    #[doc = include_str!("../docs/legacy-clients.md")]
    pub mod legacy_clients {}
    #[doc = include_str!("../docs/migrating-from-aspnet-core.md")]
    pub mod migrating_from_aspnet_core {}
}
