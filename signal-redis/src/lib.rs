//! Scale-out on Redis for signal hubs, on the wire of ASP.NET Core SignalR's
//! Redis backplane (`Microsoft.AspNetCore.SignalR.StackExchangeRedis`).
//!
//! Several signal servers behind a load balancer share one Redis: a send to
//! all, a group, a user or one connection reaches its clients wherever they
//! are connected. The channels and messages are ASP.NET Core's, byte for byte,
//! so signal nodes and ASP.NET Core nodes can serve one hub together (name the
//! hub as .NET does, with [`Redis::hub_name`]).
//!
//! ```no_run
//! # use signal_server::{Hub, HubDispatch};
//! # fn mount<D: HubDispatch>(hub: Hub<D>) -> Result<axum::Router, signal_redis::BackplaneError> {
//! let hub = hub.lifetime_manager(signal_redis::Redis::new("redis://127.0.0.1:6379")?);
//! Ok(axum::Router::new().nest("/chat", hub.router()))
//! # }
//! ```
//!
//! What differs from ASP.NET Core, each on purpose:
//! - A node delivers its own broadcasts to its own connections at once and
//!   ignores their echo from Redis (it marks them with its server name, an
//!   item ASP.NET Core readers skip).
//! - A send to connections all on this node does not touch Redis.
//! - A group change for a connection no node holds fails at once, not after
//!   30 s; a node that holds it acknowledges within [`Redis::ack_timeout`].
//! - A client result asked of a connection on another node fails as soon as
//!   that node is gone, rather than waiting out its timeout.
//! - Connections, groups and a group's members can be listed across the
//!   cluster (`HubHandle::connection_ids`, `group_names`, `group_members`):
//!   signal nodes answer each other on channels of their own, and a listing
//!   says when it is partial (a node did not answer in time, or an ASP.NET
//!   Core node holds connections it cannot list).
//! - No sticky sessions, for any transport: a connection's first transport
//!   request (WebSocket, Server-Sent Events, first poll) that reaches another
//!   node than the one it negotiated with claims the connection there; a
//!   later request (a poll, a send, a DELETE) that reaches a node not holding
//!   it is served by the holder through Redis; a stateful reconnect's new
//!   WebSocket that reaches another node is tunnelled to the holder
//!   (`signal_server::relay`).
//! - While Redis is down, sends still reach this node's connections; the
//!   outage is logged once, and delivery across nodes resumes when Redis is
//!   back (reconnect with backoff, subscriptions restored).

mod channels;
pub mod envelope;
mod node;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use signal_core::{Arguments, CompletionOutcome, SerializedHubMessage};
use signal_server::lifetime::{BoxFuture, HubScope, ListQuery, Listing};
use signal_server::relay::{PendingConnection, TransportRequest, TransportResponse, TunnelEnd};
use signal_server::{
    ClientResultError, ConnectionId, HubLifetimeManager, LocalLifetimeManager, Recipients,
    SendError,
};

use node::Node;

/// The backplane could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackplaneError {
    /// The Redis URL could not be read.
    #[error("the Redis URL is not valid ({0}); write it as redis://HOST:PORT")]
    Url(#[source] redis::RedisError),
}

/// A hub's lifetime manager on Redis: plug it in with
/// `Hub::lifetime_manager(Redis::new(url)?)`. It connects when the hub is
/// mounted, and reconnects by itself.
pub struct Redis {
    local: Arc<LocalLifetimeManager>,
    settings: Settings,
    node: OnceLock<Arc<Node>>,
}

#[derive(Debug, Clone)]
struct Settings {
    client: redis::Client,
    hub_name: Option<String>,
    prefix: String,
    ack_timeout: Duration,
    command_timeout: Duration,
    list_timeout: Duration,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("hub_name", &self.settings.hub_name)
            .field("prefix", &self.settings.prefix)
            .field("server", &self.server_name())
            .finish()
    }
}

impl Redis {
    /// A backplane on the Redis at `url` (`redis://HOST:PORT`, with
    /// `redis://:PASSWORD@HOST:PORT/DB` as usual). Redis 6 or later: it speaks
    /// RESP3, to receive messages on the same connection it publishes on.
    pub fn new(url: &str) -> Result<Self, BackplaneError> {
        use redis::IntoConnectionInfo;
        let info = url.into_connection_info().map_err(BackplaneError::Url)?;
        let redis_settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let info = info.set_redis_settings(redis_settings);
        let client = redis::Client::open(info).map_err(BackplaneError::Url)?;
        Ok(Redis {
            local: Arc::new(LocalLifetimeManager::new()),
            settings: Settings {
                client,
                hub_name: None,
                prefix: String::new(),
                ack_timeout: Duration::from_secs(5),
                command_timeout: Duration::from_secs(2),
                list_timeout: Duration::from_secs(2),
            },
            node: OnceLock::new(),
        })
    }

    /// Names the hub's channels (`{name}:all`, …). Defaults to the hub
    /// trait's name; in a cluster with ASP.NET Core nodes, give the .NET hub's
    /// full type name (`MyApp.Hubs.ChatHub`).
    #[must_use]
    pub fn hub_name(mut self, name: impl Into<String>) -> Self {
        self.settings.hub_name = Some(name.into());
        self
    }

    /// Puts `prefix` in front of every channel name, with no separator, as
    /// StackExchange.Redis's `ChannelPrefix` does: applications sharing one
    /// Redis each take their own.
    #[must_use]
    pub fn channel_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.prefix = prefix.into();
        self
    }

    /// How long a group change for a connection on another node waits for
    /// that node's acknowledgement (5 s by default; ASP.NET Core waits 30 s).
    #[must_use]
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.settings.ack_timeout = timeout;
        self
    }

    /// How long one Redis command may take before it counts as failed (2 s by
    /// default): a send never waits longer on an unreachable Redis.
    #[must_use]
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.settings.command_timeout = timeout;
        self
    }

    /// How long a listing across nodes (`HubHandle::connection_ids`, …) waits
    /// for the other nodes' answers (2 s by default); past it, the listing is
    /// marked partial.
    #[must_use]
    pub fn list_timeout(mut self, timeout: Duration) -> Self {
        self.settings.list_timeout = timeout;
        self
    }

    /// This node's server name in the cluster (`HOST_` and 32 hex digits, as
    /// ASP.NET Core names its nodes), once the hub is mounted.
    pub fn server_name(&self) -> Option<&str> {
        self.node.get().map(|node| node.server())
    }

    /// Waits until this node has subscribed to its channels (after its hub is
    /// mounted): from then on it receives what other nodes send and relay.
    /// Returns at once when the hub is not mounted.
    pub async fn ready(&self) {
        if let Some(node) = self.node.get() {
            node.ready().await;
        }
    }

    fn node(&self) -> Result<&Arc<Node>, SendError> {
        self.node.get().ok_or_else(|| {
            SendError::Backplane(
                "the Redis backplane starts when its hub is mounted (router or in_process), inside a Tokio runtime".into(),
            )
        })
    }
}

impl HubLifetimeManager for Redis {
    fn local(&self) -> &LocalLifetimeManager {
        &self.local
    }

    fn attach(&self, hub: &HubScope) {
        if self.node.get().is_some() {
            tracing::warn!(
                hub = hub.name,
                "one Redis backplane serves one hub; build one per hub"
            );
            return;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::error!(
                hub = hub.name,
                "the Redis backplane must be mounted inside a Tokio runtime; sends stay on this node"
            );
            return;
        }
        match Node::start(self.local.clone(), hub, &self.settings) {
            Ok(node) => {
                let _ = self.node.set(node);
            }
            Err(error) => {
                tracing::error!(hub = hub.name, %error, "the Redis backplane could not start; sends stay on this node");
            }
        }
    }

    fn on_connected<'a>(
        &'a self,
        connection: &'a ConnectionId,
        user: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Ok(node) = self.node() {
                node.on_connected(connection, user).await;
            }
        })
    }

    fn on_disconnected<'a>(&'a self, connection: &'a ConnectionId) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Ok(node) = self.node() {
                node.on_disconnected(connection).await;
            }
        })
    }

    fn send<'a>(
        &'a self,
        recipients: &'a Recipients,
        message: SerializedHubMessage,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            match self.node() {
                Ok(node) => node.send(recipients, message).await,
                Err(error) => {
                    self.local.send_local(recipients, message);
                    Err(error)
                }
            }
        })
    }

    fn invoke_remote<'a>(
        &'a self,
        connection: &'a ConnectionId,
        method: &'a str,
        arguments: Arguments,
    ) -> BoxFuture<'a, Result<CompletionOutcome, ClientResultError>> {
        Box::pin(async move {
            self.node()?
                .invoke_remote(connection, method, arguments)
                .await
        })
    }

    fn relays(&self) -> bool {
        true
    }

    fn claim<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Option<PendingConnection>> {
        Box::pin(async move { self.node().ok()?.claim(token).await })
    }

    fn forward<'a>(
        &'a self,
        token: &'a str,
        request: TransportRequest,
    ) -> BoxFuture<'a, Option<TransportResponse>> {
        Box::pin(async move { self.node().ok()?.forward(token, request).await })
    }

    fn tunnel<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Option<TunnelEnd>> {
        Box::pin(async move { self.node().ok()?.tunnel(token).await })
    }

    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Listing> {
        Box::pin(async move {
            match self.node() {
                Ok(node) => node.list(query).await,
                Err(_) => Listing::new(self.local.list_local(query), true),
            }
        })
    }

    fn add_to_group<'a>(
        &'a self,
        connection: &'a ConnectionId,
        group: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            self.node()?
                .change_group(connection, group, envelope::GroupAction::Add)
                .await
        })
    }

    fn remove_from_group<'a>(
        &'a self,
        connection: &'a ConnectionId,
        group: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            self.node()?
                .change_group(connection, group, envelope::GroupAction::Remove)
                .await
        })
    }
}
