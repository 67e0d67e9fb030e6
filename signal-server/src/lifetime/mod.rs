//! The scale-out seam: every send of a hub, from a hub method or a background
//! task, and every group change goes through its [`HubLifetimeManager`], with a
//! [`Recipients`] and a message that each protocol in use encodes once, however
//! many recipients speak it. On one node that is the [`LocalLifetimeManager`];
//! a backplane (Redis) implements the trait around one, asynchronously and
//! fallibly, as ASP.NET Core's `HubLifetimeManager` does.

mod local;

use std::sync::Arc;

use signal_core::SerializedHubMessage;

use crate::connection::{ConnectionId, TransportClosed};
use crate::frame::Frame;

pub(crate) use local::ConnectionHandle;
pub use local::LocalLifetimeManager;

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
    queue: &mut tokio::sync::mpsc::Receiver<Frame>,
    first: Frame,
) -> Result<(), TransportClosed> {
    const MAX_BATCH: usize = 64;
    sink.feed(first).await?;
    for _ in 1..MAX_BATCH {
        match queue.try_recv() {
            Ok(frame) => sink.feed(frame).await?,
            Err(_) => break,
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
}

/// Where a hub's sends and group changes go: this node's connections, and with
/// a backplane the other nodes' too. Asynchronous and fallible, since a publish
/// to a backplane is both. Every method but [`local`](Self::local) has a
/// default that works on this node alone.
pub trait HubLifetimeManager: Send + Sync + 'static {
    /// This node's connections.
    fn local(&self) -> &LocalLifetimeManager;

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
