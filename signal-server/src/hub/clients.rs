//! Targets of server → client calls: caller, all, others, one client, several
//! clients, all except, group, groups, group except, others in group, user, users.
//!
//! The untyped targets here send a method name and [`Arguments`]; a
//! `#[signal::client]` trait wraps them in a typed proxy, so that a misspelled
//! client method or a wrong argument type is a compile error.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use signal_core::{
    Arguments, ClientDescriptor, CompletionOutcome, HubMessage, Invocation, Payload,
    SerializedHubMessage,
};

use super::error::{ClientResultError, SendError};
use crate::connection::ConnectionId;
use crate::frame::Frame;
use crate::lifetime::{ConnectionHandle, HubLifetimeManager, Recipients};

/// A typed client contract: what the `#[signal::client]` macro implements for
/// `dyn YourClientTrait`, and `()` for untyped targets.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a client contract",
    label = "expected a `#[signal::client]` trait here",
    note = "annotate the trait with `#[signal::client]`, and name it as `dyn Trait` in `Context<dyn Trait>`"
)]
pub trait ClientContract: 'static {
    /// The typed proxy over a target (a [`SingleClient`] or a [`MultiClient`]).
    type Proxy<T: Target>;

    /// Wraps an untyped target in the typed proxy.
    fn proxy<T: Target>(target: T) -> Self::Proxy<T>;

    /// The contract's descriptor; `None` for untyped targets.
    fn descriptor() -> Option<ClientDescriptor>;
}

impl ClientContract for () {
    type Proxy<T: Target> = T;

    fn proxy<T: Target>(target: T) -> T {
        target
    }

    fn descriptor() -> Option<ClientDescriptor> {
        None
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Something a server → client call can be sent to.
pub trait Target: sealed::Sealed + Send + Sync + 'static {
    /// Sends `method(arguments)` without waiting for an answer.
    fn send(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Exactly one connection: the only kind of target a client result may be
/// asked of.
#[derive(Clone)]
pub struct SingleClient {
    lifetime: Arc<dyn HubLifetimeManager>,
    id: ConnectionId,
}

impl sealed::Sealed for SingleClient {}

impl SingleClient {
    pub(crate) fn new(lifetime: Arc<dyn HubLifetimeManager>, id: ConnectionId) -> Self {
        SingleClient { lifetime, id }
    }

    /// The connection addressed.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.id
    }

    /// Calls `method(arguments)` on the client and waits for its result: a client
    /// result. Fails when the client has no handler, disconnects first, or does not
    /// answer within the hub's client result timeout.
    pub async fn invoke<T: DeserializeOwned>(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> Result<T, ClientResultError> {
        let result = self
            .invoke_payload(method, arguments)
            .await?
            .unwrap_or_else(Payload::null);
        result
            .decode()
            .map_err(|e| ClientResultError::Deserialize(e.to_string()))
    }

    /// Like [`invoke`](Self::invoke), but hands back the client's result as it
    /// arrived, to be decoded later (`None` when the client returned nothing).
    pub async fn invoke_payload(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> Result<Option<Payload>, ClientResultError> {
        let Some(connection) = self.lifetime.local().get(&self.id) else {
            // Held by another node (a backplane's), or by none.
            let outcome = self
                .lifetime
                .invoke_remote(&self.id, method, arguments)
                .await?;
            return outcome_of(outcome);
        };
        let (invocation_id, answer) = connection.expect_result();
        let mut invocation = Invocation::new(method, arguments);
        invocation.invocation_id = Some(invocation_id.clone());
        let frame = match encode_for(&connection, method, HubMessage::Invocation(invocation)) {
            Ok(frame) => frame,
            Err(error) => {
                connection.forget_result(&invocation_id);
                return Err(error.into());
            }
        };
        if !connection.send(frame).await {
            connection.forget_result(&invocation_id);
            return Err(ClientResultError::Disconnected(self.id.to_string()));
        }
        let timeout = connection.client_result_timeout;
        let outcome = match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => return Err(ClientResultError::Disconnected(self.id.to_string())),
            Err(_) => {
                connection.forget_result(&invocation_id);
                return Err(ClientResultError::Timeout(timeout));
            }
        };
        outcome_of(outcome)
    }
}

fn outcome_of(outcome: CompletionOutcome) -> Result<Option<Payload>, ClientResultError> {
    match outcome {
        CompletionOutcome::Error(error) => Err(ClientResultError::Client(error)),
        CompletionOutcome::Result(result) => Ok(Some(result)),
        CompletionOutcome::Void => Ok(None),
    }
}

/// A message for one connection, encoded now in its protocol, so that a value
/// that cannot be encoded fails the send that carries it.
fn encode_for(
    connection: &ConnectionHandle,
    method: &str,
    message: HubMessage,
) -> Result<Frame, SendError> {
    let Some(protocol) = &connection.protocol else {
        return Ok(Frame::hub(message));
    };
    let framed = protocol
        .to_bytes(&message)
        .map_err(|error| SendError::Serialize {
            method: method.to_owned(),
            message: error.to_string(),
        })?;
    Ok(Frame::framed(
        protocol,
        framed,
        message.is_sequenced(),
        None,
    ))
}

impl Target for SingleClient {
    /// Sends to the connection if it is connected here; as in ASP.NET Core, a
    /// connection that is gone (or never was) is not an error for a send.
    async fn send(&self, method: &str, arguments: Arguments) -> Result<(), SendError> {
        let Some(connection) = self.lifetime.local().get(&self.id) else {
            // Elsewhere (a backplane's other nodes), or nowhere: the lifetime
            // manager decides.
            let invocation = HubMessage::Invocation(Invocation::new(method, arguments));
            let recipients = Recipients::Connections(vec![self.id.clone()]);
            return self
                .lifetime
                .send(&recipients, SerializedHubMessage::new(invocation))
                .await;
        };
        let invocation = HubMessage::Invocation(Invocation::new(method, arguments));
        let frame = encode_for(&connection, method, invocation)?;
        connection.send(frame).await;
        Ok(())
    }
}

/// Any number of connections: all, others, several clients, groups, users.
#[derive(Clone)]
pub struct MultiClient {
    lifetime: Arc<dyn HubLifetimeManager>,
    recipients: Recipients,
}

impl sealed::Sealed for MultiClient {}

impl Target for MultiClient {
    /// Queues the invocation for every recipient; each connection encodes it in
    /// its protocol, once per protocol in use. A value that one protocol cannot
    /// encode is not sent to that protocol's connections (and is logged).
    async fn send(&self, method: &str, arguments: Arguments) -> Result<(), SendError> {
        let invocation = HubMessage::Invocation(Invocation::new(method, arguments));
        self.lifetime
            .send(&self.recipients, SerializedHubMessage::new(invocation))
            .await
    }
}

/// The targets reachable from anywhere: a hub method or a background task.
pub struct Clients<C: ?Sized = ()> {
    lifetime: Arc<dyn HubLifetimeManager>,
    _contract: PhantomData<fn(&C)>,
}

impl<C: ?Sized> Clone for Clients<C> {
    fn clone(&self) -> Self {
        Clients {
            lifetime: self.lifetime.clone(),
            _contract: PhantomData,
        }
    }
}

fn ids<I, T>(ids: I) -> Vec<ConnectionId>
where
    I: IntoIterator<Item = T>,
    T: Into<ConnectionId>,
{
    ids.into_iter().map(Into::into).collect()
}

fn names<I, T>(names: I) -> Vec<Arc<str>>
where
    I: IntoIterator<Item = T>,
    T: AsRef<str>,
{
    names.into_iter().map(|n| Arc::from(n.as_ref())).collect()
}

impl<C: ?Sized + ClientContract> Clients<C> {
    pub(crate) fn new(lifetime: Arc<dyn HubLifetimeManager>) -> Self {
        Clients {
            lifetime,
            _contract: PhantomData,
        }
    }

    fn multi(&self, recipients: Recipients) -> C::Proxy<MultiClient> {
        C::proxy(MultiClient {
            lifetime: self.lifetime.clone(),
            recipients,
        })
    }

    /// Every connection of the hub.
    pub fn all(&self) -> C::Proxy<MultiClient> {
        self.multi(Recipients::All { except: Vec::new() })
    }

    /// Every connection but those listed.
    pub fn all_except<I, T>(&self, excluded: I) -> C::Proxy<MultiClient>
    where
        I: IntoIterator<Item = T>,
        T: Into<ConnectionId>,
    {
        self.multi(Recipients::All {
            except: ids(excluded),
        })
    }

    /// One connection; client results may be asked of it.
    pub fn client(&self, id: impl Into<ConnectionId>) -> C::Proxy<SingleClient> {
        C::proxy(SingleClient::new(self.lifetime.clone(), id.into()))
    }

    /// Several connections.
    pub fn clients<I, T>(&self, ids_: I) -> C::Proxy<MultiClient>
    where
        I: IntoIterator<Item = T>,
        T: Into<ConnectionId>,
    {
        self.multi(Recipients::Connections(ids(ids_)))
    }

    /// The members of a group.
    pub fn group(&self, name: impl AsRef<str>) -> C::Proxy<MultiClient> {
        self.groups([name])
    }

    /// The members of any of several groups, each connection once.
    pub fn groups<I, T>(&self, groups: I) -> C::Proxy<MultiClient>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.multi(Recipients::Groups {
            names: names(groups),
            except: Vec::new(),
        })
    }

    /// The members of a group but those listed.
    pub fn group_except<I, T>(&self, name: impl AsRef<str>, excluded: I) -> C::Proxy<MultiClient>
    where
        I: IntoIterator<Item = T>,
        T: Into<ConnectionId>,
    {
        self.multi(Recipients::Groups {
            names: names([name]),
            except: ids(excluded),
        })
    }

    /// Every connection of a user.
    pub fn user(&self, user_id: impl AsRef<str>) -> C::Proxy<MultiClient> {
        self.users([user_id])
    }

    /// Every connection of any of several users.
    pub fn users<I, T>(&self, user_ids: I) -> C::Proxy<MultiClient>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.multi(Recipients::Users(names(user_ids)))
    }
}

/// The targets of a hub method: those of [`Clients`] plus the ones relative to the
/// calling connection.
pub struct CallerClients<C: ?Sized = ()> {
    clients: Clients<C>,
    caller: ConnectionId,
}

impl<C: ?Sized + ClientContract> CallerClients<C> {
    pub(crate) fn new(clients: Clients<C>, caller: ConnectionId) -> Self {
        CallerClients { clients, caller }
    }

    /// The connection that made the call; client results may be asked of it.
    pub fn caller(&self) -> C::Proxy<SingleClient> {
        self.clients.client(self.caller.clone())
    }

    /// Every connection but the caller.
    pub fn others(&self) -> C::Proxy<MultiClient> {
        self.clients.all_except([self.caller.clone()])
    }

    /// The members of a group but the caller.
    pub fn others_in_group(&self, name: impl AsRef<str>) -> C::Proxy<MultiClient> {
        self.clients.group_except(name, [self.caller.clone()])
    }
}

impl<C: ?Sized> std::ops::Deref for CallerClients<C> {
    type Target = Clients<C>;

    fn deref(&self) -> &Clients<C> {
        &self.clients
    }
}
