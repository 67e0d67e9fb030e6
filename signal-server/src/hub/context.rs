//! What a hub method sees of its connection and its hub, and the handle that
//! reaches the hub's clients from outside hub methods.

use std::marker::PhantomData;
use std::sync::Arc;

use signal_core::TransportType;

use super::clients::{CallerClients, ClientContract, Clients};
use super::error::SendError;
use crate::connection::ConnectionId;
use crate::items::Items;
use crate::lifetime::{ConnectionHandle, HubLifetimeManager, ListQuery, Listing};

/// Adds connections to groups and removes them.
#[derive(Clone)]
pub struct Groups {
    lifetime: Arc<dyn HubLifetimeManager>,
}

impl Groups {
    /// Adds `connection` to `group`. Membership ends when the connection does.
    /// On one node, as in ASP.NET Core, a connection that is not connected is
    /// ignored; a backplane answers [`SendError::NotConnected`] when no node
    /// holds it. A connection of this server already in
    /// [`maximum_groups_per_connection`](crate::HubOptions::maximum_groups_per_connection)
    /// groups gets [`SendError::TooManyGroups`] (one held by another server
    /// is refused there, with a warning in its log).
    pub async fn add(
        &self,
        connection: impl Into<ConnectionId>,
        group: &str,
    ) -> Result<(), SendError> {
        let connection = connection.into();
        if let Some(refused) = self.lifetime.local().group_limit(&connection, group) {
            return Err(refused);
        }
        self.lifetime.add_to_group(&connection, group).await
    }

    /// Removes `connection` from `group`.
    pub async fn remove(
        &self,
        connection: impl Into<ConnectionId>,
        group: &str,
    ) -> Result<(), SendError> {
        self.lifetime
            .remove_from_group(&connection.into(), group)
            .await
    }
}

/// A cloneable handle to a hub's clients and groups, for code outside hub
/// methods: background tasks, other HTTP handlers, timers.
pub struct HubHandle<C: ?Sized = ()> {
    lifetime: Arc<dyn HubLifetimeManager>,
    _contract: PhantomData<fn(&C)>,
}

impl<C: ?Sized> Clone for HubHandle<C> {
    fn clone(&self) -> Self {
        HubHandle {
            lifetime: self.lifetime.clone(),
            _contract: PhantomData,
        }
    }
}

impl<C: ?Sized + ClientContract> HubHandle<C> {
    pub(crate) fn new(lifetime: Arc<dyn HubLifetimeManager>) -> Self {
        HubHandle {
            lifetime,
            _contract: PhantomData,
        }
    }

    /// The hub's clients.
    pub fn clients(&self) -> Clients<C> {
        Clients::new(self.lifetime.clone())
    }

    /// The hub's groups.
    pub fn groups(&self) -> Groups {
        Groups {
            lifetime: self.lifetime.clone(),
        }
    }

    /// How many connections are live on this server.
    pub fn connection_count(&self) -> usize {
        self.lifetime.local().len()
    }

    /// Closes every connection with `allowReconnect`, so clients with automatic
    /// reconnect come back (to this server once it is up again, or another one),
    /// and waits up to `timeout` for the connections to end. Each connection
    /// first lets its running invocations finish (up to
    /// [`HubOptions::shutdown_timeout`](crate::HubOptions::shutdown_timeout)).
    ///
    /// Use it in axum's graceful shutdown:
    /// `axum::serve(listener, app).with_graceful_shutdown(async move { ctrl_c().await; handle.shutdown(timeout).await })`.
    pub async fn shutdown(&self, timeout: std::time::Duration) {
        self.lifetime.local().close_all_for_reconnect();
        let deadline = tokio::time::Instant::now() + timeout;
        while self.lifetime.local().len() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// What this server counted of the hub: connections by transport and
    /// protocol, messages in and out, invocations, groups (see [`crate::metrics`]).
    pub fn metrics(&self) -> crate::HubMetrics {
        self.lifetime.local().metrics()
    }

    /// How many groups have at least one member on this server.
    pub fn group_count(&self) -> usize {
        self.lifetime.local().group_count()
    }

    /// How many users have at least one connection on this server.
    pub fn user_count(&self) -> usize {
        self.lifetime.local().user_count()
    }

    /// The ids of the hub's connections on every server (with a backplane;
    /// this server's without). [`Listing::partial`] says when a server did
    /// not answer in time.
    pub async fn connection_ids(&self) -> Listing {
        self.lifetime.list(&ListQuery::Connections).await
    }

    /// The names of the groups with members on any server.
    pub async fn group_names(&self) -> Listing {
        self.lifetime.list(&ListQuery::Groups).await
    }

    /// The ids of `group`'s members on every server.
    pub async fn group_members(&self, group: &str) -> Listing {
        self.lifetime
            .list(&ListQuery::GroupMembers(group.to_owned()))
            .await
    }
}

/// What a hub method knows of the call: the connection that made it, and typed
/// access to the hub's clients and groups.
///
/// `C` is the client contract: `Context<dyn ChatClient>` for a hub whose clients
/// implement the `#[signal::client]` trait `ChatClient`, plain `Context` for
/// untyped sends.
pub struct Context<C: ?Sized = ()> {
    connection: Arc<ConnectionHandle>,
    hub: HubHandle<C>,
}

impl<C: ?Sized> Clone for Context<C> {
    fn clone(&self) -> Self {
        Context {
            connection: self.connection.clone(),
            hub: self.hub.clone(),
        }
    }
}

impl<C: ?Sized + ClientContract> Context<C> {
    pub(crate) fn new(
        connection: Arc<ConnectionHandle>,
        lifetime: Arc<dyn HubLifetimeManager>,
    ) -> Self {
        Context {
            connection,
            hub: HubHandle::new(lifetime),
        }
    }

    /// The calling connection's public id.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.connection.id
    }

    /// The calling connection's user, as the hub's user id hook named it.
    pub fn user_id(&self) -> Option<&str> {
        self.connection.user.as_deref()
    }

    /// The request the calling connection started with (for long polling,
    /// its first poll): headers, URI and query, and the extensions an
    /// authentication layer left there. `None` for an in-process connection.
    pub fn request(&self) -> Option<&http::request::Parts> {
        self.connection
            .request
            .as_deref()
            .map(crate::connection::KeptRequest::parts)
    }

    /// The calling connection's identity, as the authentication layer in front
    /// of the hub left it on the request the connection started with.
    pub fn identity(&self) -> Option<&crate::auth::Identity> {
        // From the extensions alone: the rest of the request need not be built.
        self.connection
            .request
            .as_deref()
            .and_then(|request| request.extensions().get())
    }

    /// The same connection, with untyped access to the hub's clients: what
    /// [hub filters](crate::filter) see.
    pub fn untyped(&self) -> Context {
        Context {
            connection: self.connection.clone(),
            hub: HubHandle::new(self.hub.lifetime.clone()),
        }
    }

    /// The transport the calling connection uses.
    pub fn transport(&self) -> TransportType {
        self.connection.transport
    }

    /// The calling connection's state.
    pub fn items(&self) -> &Items {
        &self.connection.items
    }

    /// The hub's clients, including those relative to the caller.
    pub fn clients(&self) -> CallerClients<C> {
        CallerClients::new(self.hub.clients(), self.connection.id.clone())
    }

    /// The hub's groups.
    pub fn groups(&self) -> Groups {
        self.hub.groups()
    }

    /// A handle to the hub that outlives this call.
    pub fn hub(&self) -> &HubHandle<C> {
        &self.hub
    }

    /// Closes the calling connection (after the current message is handled).
    pub fn abort(&self) {
        self.connection.close(None);
    }
}
