//! The scale-out seam: every send of a hub, from a hub method or a background
//! task, and every group change goes through its [`HubLifetimeManager`], with a
//! [`Recipients`] and a message that each protocol in use encodes once, however
//! many recipients speak it. On one node that is the [`LocalLifetimeManager`];
//! a backplane (Redis) implements the trait around one, asynchronously and
//! fallibly, as ASP.NET Core's `HubLifetimeManager` does.

mod local;
mod outbox;

use std::sync::Arc;

use std::time::Duration;

use signal_core::{Arguments, CompletionOutcome, ProtocolSet, SerializedHubMessage};

use crate::connection::relay::{
    PendingConnection, Relay, TransportRequest, TransportResponse, TransportService, TunnelEnd,
};
use crate::connection::{ConnectionId, TransportClosed};
use crate::frame::Frame;

pub(crate) use local::ConnectionHandle;
pub use local::LocalLifetimeManager;
pub(crate) use outbox::{Next, OutboxReceiver, OutboxSender, outbox};

/// A boxed, sendable future, as hub dispatch and lifetime managers return them.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a connection's task writes the frames queued for it: a hub link
/// (which encodes them in its protocol) or a raw connection's transport.
pub(crate) trait FrameSink: Send {
    /// Buffers one frame.
    fn feed(&mut self, frame: Frame) -> impl Future<Output = Result<(), TransportClosed>> + Send;
    /// Writes what is buffered.
    fn flush(&mut self) -> impl Future<Output = Result<(), TransportClosed>> + Send;
}

/// Writes `first` and whatever else is already queued for the connection (up
/// to a batch), then flushes once: one syscall for a burst of sends.
pub(crate) async fn write_batch<S: FrameSink>(
    sink: &mut S,
    queue: &mut OutboxReceiver,
    first: Frame,
) -> Result<(), TransportClosed> {
    const MAX_BATCH: usize = 64;
    sink.feed(first).await?;
    for _ in 1..MAX_BATCH {
        match queue.try_recv() {
            Some(frame) => sink.feed(frame).await?,
            None => break,
        }
    }
    sink.flush().await
}

/// Whom a send addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recipients {
    /// Every connection but those listed.
    All {
        /// Connections to skip.
        except: Vec<ConnectionId>,
    },
    /// The listed connections (each once).
    Connections(Vec<ConnectionId>),
    /// The members of the listed groups (each once), but those listed.
    Groups {
        /// The groups.
        names: Vec<Arc<str>>,
        /// Members to skip.
        except: Vec<ConnectionId>,
    },
    /// Every connection of the listed users.
    Users(Vec<Arc<str>>),
}

/// A message could not be sent to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The arguments could not be encoded in the connection's protocol.
    #[error("the arguments of '{method}' could not be serialized: {message}")]
    Serialize {
        /// The client method.
        method: String,
        /// What the protocol said.
        message: String,
    },
    /// The target connection is not (or no longer) connected.
    #[error("connection '{0}' is not connected")]
    NotConnected(String),
    /// A backplane could not carry the message to the other nodes.
    #[error("the backplane could not deliver the message: {0}")]
    Backplane(String),
    /// The connection is already in as many groups as
    /// `HubOptions::maximum_groups_per_connection` allows.
    #[error("connection '{connection}' is already in {limit} groups, the most it may join")]
    TooManyGroups {
        /// The connection.
        connection: String,
        /// The limit in force.
        limit: usize,
    },
}

/// What a lifetime manager learns of the hub it serves when the hub is mounted:
/// a backplane names its channels after the hub and publishes every message in
/// each protocol the hub accepts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubScope {
    /// The hub trait's name (`Chat` for `trait Chat`).
    pub name: String,
    /// The hub protocols its clients may speak.
    pub protocols: ProtocolSet,
    /// How long a client result may take (`HubOptions::client_result_timeout`).
    pub client_result_timeout: Duration,
    /// This node's transport routes, to serve requests other nodes relay
    /// (`None` for a hub run in process).
    pub transport: Option<TransportService>,
}

impl HubScope {
    /// The scope of a hub named `name` accepting `protocols`.
    pub fn new(name: impl Into<String>, protocols: ProtocolSet) -> Self {
        HubScope {
            name: name.into(),
            protocols,
            client_result_timeout: Duration::from_secs(30),
            transport: None,
        }
    }

    /// Gives the manager this node's transport routes.
    #[must_use]
    pub fn with_transport(mut self, transport: TransportService) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Sets how long a client result may take.
    #[must_use]
    pub fn with_client_result_timeout(mut self, timeout: Duration) -> Self {
        self.client_result_timeout = timeout;
        self
    }
}

/// A client result could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientResultError {
    /// The invocation could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The client answered with an error (for instance, no handler for the
    /// method); its text, unchanged, as ASP.NET Core passes it on.
    #[error("{0}")]
    Client(String),
    /// The client's answer did not have the expected type.
    #[error("the client's result could not be read as the expected type: {0}")]
    Deserialize(String),
    /// The client disconnected before answering.
    #[error("connection '{0}' disconnected before answering")]
    Disconnected(String),
    /// The client did not answer within the client result timeout.
    #[error(
        "the client did not answer within {0:?}; raise HubOptions::client_result_timeout if it needs longer"
    )]
    Timeout(std::time::Duration),
}

/// What to list across the cluster ([`HubLifetimeManager::list`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListQuery {
    /// The ids of every connection.
    Connections,
    /// The names of the groups that have members.
    Groups,
    /// The ids of one group's members.
    GroupMembers(String),
}

/// The answer to a [`ListQuery`]: sorted, each item once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Listing {
    /// Connection ids or group names.
    pub items: Vec<String>,
    /// Some node did not answer in time, or cannot answer (an ASP.NET Core
    /// node in a mixed cluster): what it holds is missing.
    pub partial: bool,
}

impl Listing {
    /// A complete listing of `items` (sorted and deduplicated here).
    pub fn new(items: impl IntoIterator<Item = String>, partial: bool) -> Self {
        let mut items: Vec<String> = items.into_iter().collect();
        items.sort_unstable();
        items.dedup();
        Listing { items, partial }
    }
}

impl LocalLifetimeManager {
    /// This node's answer to `query`.
    pub fn list_local(&self, query: &ListQuery) -> Vec<String> {
        match query {
            ListQuery::Connections => self.connection_ids().map(|id| id.to_string()).collect(),
            ListQuery::Groups => self.group_names().iter().map(|g| g.to_string()).collect(),
            ListQuery::GroupMembers(group) => self
                .members_of(group)
                .into_iter()
                .map(|id| id.to_string())
                .collect(),
        }
    }
}

/// Where a hub's sends and group changes go: this node's connections, and with
/// a backplane the other nodes' too. Asynchronous and fallible, since a publish
/// to a backplane is both. Every method but [`local`](Self::local) has a
/// default that works on this node alone.
pub trait HubLifetimeManager: Send + Sync + 'static {
    /// This node's connections.
    fn local(&self) -> &LocalLifetimeManager;

    /// The hub this manager serves is being mounted (its router or in-process
    /// runtime is built), with its final options. Called once per hub; a
    /// manager shared by several hubs is told of each.
    fn attach(&self, _hub: &HubScope) {}

    /// A connection of this node finished its handshake (it is already in
    /// [`local`](Self::local)).
    fn on_connected<'a>(
        &'a self,
        _connection: &'a ConnectionId,
        _user: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }

    /// A connection of this node ended (it is still in [`local`](Self::local)).
    fn on_disconnected<'a>(&'a self, _connection: &'a ConnectionId) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Sends `message` to `recipients`, wherever they are connected.
    fn send<'a>(
        &'a self,
        recipients: &'a Recipients,
        message: SerializedHubMessage,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        self.local().send_local(recipients, message);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Calls `method(arguments)` on a client held by another node and waits
    /// for its result (a client result across nodes). Only a backplane can;
    /// on one node the connection is not connected.
    fn invoke_remote<'a>(
        &'a self,
        connection: &'a ConnectionId,
        _method: &'a str,
        _arguments: Arguments,
    ) -> BoxFuture<'a, Result<CompletionOutcome, ClientResultError>> {
        Box::pin(std::future::ready(Err(ClientResultError::Send(
            SendError::NotConnected(connection.to_string()),
        ))))
    }

    /// Whether this manager relays transport requests between nodes
    /// ([`claim`](Self::claim) and [`forward`](Self::forward)), so that no
    /// load balancer needs session affinity.
    fn relays(&self) -> bool {
        false
    }

    /// Takes over a connection negotiated on another node that has not
    /// started yet, for its first transport request reached this one.
    fn claim<'a>(&'a self, _token: &'a str) -> BoxFuture<'a, Option<PendingConnection>> {
        Box::pin(std::future::ready(None))
    }

    /// Has the node holding `token`'s connection serve `request`.
    fn forward<'a>(
        &'a self,
        _token: &'a str,
        _request: TransportRequest,
    ) -> BoxFuture<'a, Option<TransportResponse>> {
        Box::pin(std::future::ready(None))
    }

    /// Opens a tunnel to the node whose stateful connection `token` waits for
    /// its client's new WebSocket.
    fn tunnel<'a>(&'a self, _token: &'a str) -> BoxFuture<'a, Option<TunnelEnd>> {
        Box::pin(std::future::ready(None))
    }

    /// Lists connections, groups or a group's members wherever they are. On
    /// one node, this node's; a backplane asks the other nodes too.
    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Listing> {
        Box::pin(std::future::ready(Listing::new(
            self.local().list_local(query),
            false,
        )))
    }

    /// Adds `connection`, wherever it is connected, to `group`.
    fn add_to_group<'a>(
        &'a self,
        connection: &'a ConnectionId,
        group: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        if !self.local().add_to_group(connection, group) {
            tracing::debug!(%connection, group, "group add for a connection that is not connected; ignored");
        }
        Box::pin(std::future::ready(Ok(())))
    }

    /// Removes `connection`, wherever it is connected, from `group`.
    fn remove_from_group<'a>(
        &'a self,
        connection: &'a ConnectionId,
        group: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        self.local().remove_from_group(connection, group);
        Box::pin(std::future::ready(Ok(())))
    }
}

impl HubLifetimeManager for LocalLifetimeManager {
    fn local(&self) -> &LocalLifetimeManager {
        self
    }
}

/// A shared manager is a manager, so that code which built one can keep a
/// reference to it (to read its state, or to hand it to several hubs' handles).
impl<M: HubLifetimeManager> HubLifetimeManager for Arc<M> {
    fn local(&self) -> &LocalLifetimeManager {
        (**self).local()
    }

    fn attach(&self, hub: &HubScope) {
        (**self).attach(hub)
    }

    fn on_connected<'a>(
        &'a self,
        connection: &'a ConnectionId,
        user: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        (**self).on_connected(connection, user)
    }

    fn on_disconnected<'a>(&'a self, connection: &'a ConnectionId) -> BoxFuture<'a, ()> {
        (**self).on_disconnected(connection)
    }

    fn send<'a>(
        &'a self,
        recipients: &'a Recipients,
        message: SerializedHubMessage,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        (**self).send(recipients, message)
    }

    fn invoke_remote<'a>(
        &'a self,
        connection: &'a ConnectionId,
        method: &'a str,
        arguments: Arguments,
    ) -> BoxFuture<'a, Result<CompletionOutcome, ClientResultError>> {
        (**self).invoke_remote(connection, method, arguments)
    }

    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Listing> {
        (**self).list(query)
    }

    fn relays(&self) -> bool {
        (**self).relays()
    }

    fn tunnel<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Option<TunnelEnd>> {
        (**self).tunnel(token)
    }

    fn claim<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Option<PendingConnection>> {
        (**self).claim(token)
    }

    fn forward<'a>(
        &'a self,
        token: &'a str,
        request: TransportRequest,
    ) -> BoxFuture<'a, Option<TransportResponse>> {
        (**self).forward(token, request)
    }

    fn add_to_group<'a>(
        &'a self,
        connection: &'a ConnectionId,
        group: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        (**self).add_to_group(connection, group)
    }

    fn remove_from_group<'a>(
        &'a self,
        connection: &'a ConnectionId,
        group: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        (**self).remove_from_group(connection, group)
    }
}

/// The relay of a hub's endpoint: its lifetime manager's.
pub(crate) struct ManagerRelay(pub(crate) Arc<dyn HubLifetimeManager>);

impl Relay for ManagerRelay {
    fn claim<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Option<PendingConnection>> {
        self.0.claim(token)
    }

    fn forward<'a>(
        &'a self,
        token: &'a str,
        request: TransportRequest,
    ) -> BoxFuture<'a, Option<TransportResponse>> {
        self.0.forward(token, request)
    }

    fn tunnel<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Option<TunnelEnd>> {
        self.0.tunnel(token)
    }
}
