//! This node's registry of connections, groups and users, and the delivery to
//! them: what every [`HubLifetimeManager`](super::HubLifetimeManager) builds on.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use signal_core::{CompletionOutcome, RegisteredProtocol, TransportType};
use tokio::sync::oneshot;

use signal_core::SerializedHubMessage;

use super::{Recipients, SendError};
use crate::connection::ConnectionId;
use crate::frame::Frame;
use crate::items::Items;
use crate::metrics::{ConnectionMeter, HubMetrics, Meters};

/// A live connection as the registry sees it; shared by its own task, the
/// registry, and every `Context` of it.
pub(crate) struct ConnectionHandle {
    pub(crate) id: ConnectionId,
    pub(crate) user: Option<Arc<str>>,
    pub(crate) transport: TransportType,
    /// The hub protocol the connection speaks; `None` for a raw connection.
    pub(crate) protocol: Option<RegisteredProtocol>,
    outgoing: super::OutboxSender,
    groups: Mutex<HashSet<Arc<str>>>,
    pub(crate) items: Items,
    close_error: Mutex<Option<String>>,
    allow_reconnect: std::sync::atomic::AtomicBool,
    results: Mutex<HashMap<String, oneshot::Sender<CompletionOutcome>>>,
    next_result_id: AtomicU64,
    pub(crate) client_result_timeout: Duration,
    /// The request the connection started with, for hub code.
    pub(crate) request: Option<Arc<crate::connection::KeptRequest>>,
    /// How many groups it may be in at once.
    max_groups: usize,
    /// Counts the connection's messages; set when it is registered.
    meter: OnceLock<ConnectionMeter>,
}

impl ConnectionHandle {
    pub(crate) fn new(
        id: ConnectionId,
        user: Option<Arc<str>>,
        transport: TransportType,
        protocol: Option<RegisteredProtocol>,
        outgoing: super::OutboxSender,
        client_result_timeout: Duration,
    ) -> Self {
        ConnectionHandle {
            id,
            user,
            transport,
            protocol,
            outgoing,
            groups: Mutex::default(),
            items: Items::default(),
            close_error: Mutex::default(),
            allow_reconnect: std::sync::atomic::AtomicBool::new(false),
            results: Mutex::default(),
            next_result_id: AtomicU64::new(1),
            client_result_timeout,
            request: None,
            max_groups: usize::MAX,
            meter: OnceLock::new(),
        }
    }

    /// Limits how many groups the connection may be in at once.
    pub(crate) fn with_group_limit(mut self, limit: Option<usize>) -> Self {
        self.max_groups = limit.unwrap_or(usize::MAX);
        self
    }

    /// Keeps the request the connection started with, for hub code (shared
    /// with another layer's record of it: a 2.x connection's, across its hubs).
    pub(crate) fn with_request(
        mut self,
        request: Option<Arc<crate::connection::KeptRequest>>,
    ) -> Self {
        self.request = request;
        self
    }

    /// Queues a frame, waiting while the queue is full (backpressure for one
    /// connection's own sends).
    pub(crate) async fn send(&self, frame: Frame) -> bool {
        self.outgoing.send(frame).await.is_ok()
    }

    /// Queues a frame without waiting. A connection whose queue is full cannot
    /// keep up with what is sent to it: it is closed rather than let its queue
    /// grow without bound or drop a message silently.
    pub(crate) fn try_send(&self, frame: &Frame) {
        match self.outgoing.try_send(frame.clone()) {
            Ok(()) => {}
            Err((super::outbox::TrySendError::Full, _)) => {
                tracing::warn!(connection = %self.id, "outgoing queue full; closing the connection as too slow");
                self.close(Some(format!(
                    "Connection closed with an error. The client did not keep up: {} messages were waiting to be sent to it.",
                    self.outgoing.max_capacity()
                )));
            }
            Err((super::outbox::TrySendError::Closed, _)) => {}
        }
    }

    /// Asks the connection's task to close, with `error` in the Close message.
    pub(crate) fn close(&self, error: Option<String>) {
        if let Some(error) = error {
            let mut slot = self.close_error.lock().expect("close_error lock");
            slot.get_or_insert(error);
        }
        self.outgoing.close();
    }

    /// Asks the connection to close and its client to come back (a server
    /// shutdown or restart): the Close message carries `allowReconnect`.
    pub(crate) fn close_for_reconnect(&self) {
        self.close_allowing_reconnect(None);
    }

    /// Closes the connection with `error`, telling its client it may come back.
    pub(crate) fn close_allowing_reconnect(&self, error: Option<String>) {
        self.allow_reconnect.store(true, Ordering::Relaxed);
        self.close(error);
    }

    pub(crate) fn allow_reconnect(&self) -> bool {
        self.allow_reconnect.load(Ordering::Relaxed)
    }

    /// Whether the connection was asked to close (its task hears it from its
    /// outgoing queue).
    pub(crate) fn is_closing(&self) -> bool {
        self.outgoing.is_closing()
    }

    pub(crate) fn close_error(&self) -> Option<String> {
        self.close_error.lock().expect("close_error lock").clone()
    }

    /// Registers a pending client result under an id chosen elsewhere (a
    /// backplane's caller on another node).
    fn expect_result_as(&self, id: String) -> oneshot::Receiver<CompletionOutcome> {
        let (tx, rx) = oneshot::channel();
        self.results.lock().expect("results lock").insert(id, tx);
        rx
    }

    /// Registers a pending client result; returns its invocation id.
    pub(crate) fn expect_result(&self) -> (String, oneshot::Receiver<CompletionOutcome>) {
        let id = self
            .next_result_id
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let (tx, rx) = oneshot::channel();
        self.results
            .lock()
            .expect("results lock")
            .insert(id.clone(), tx);
        (id, rx)
    }

    pub(crate) fn forget_result(&self, id: &str) {
        self.results.lock().expect("results lock").remove(id);
    }

    /// Delivers a client's Completion to the waiting caller; false if none waits.
    pub(crate) fn complete_result(&self, id: &str, outcome: CompletionOutcome) -> bool {
        let waiter = self.results.lock().expect("results lock").remove(id);
        match waiter {
            Some(tx) => tx.send(outcome).is_ok(),
            None => false,
        }
    }

    /// The groups the connection is in (the 2.x layer's groups token lists them).
    pub(crate) fn group_names(&self) -> Vec<Arc<str>> {
        self.groups
            .lock()
            .expect("groups lock")
            .iter()
            .cloned()
            .collect()
    }

    /// The meter the connection's messages are counted with, once registered.
    pub(crate) fn meter(&self) -> Option<&ConnectionMeter> {
        self.meter.get()
    }

    /// Drops every pending client result: their callers see a disconnect.
    pub(crate) fn fail_results(&self) {
        self.results.lock().expect("results lock").clear();
    }
}

/// Connections by id. The ids are drawn at random by this server (a client only
/// names one to look it up), so a fast hash without a defence against chosen
/// keys is safe here; group and user names keep the standard one.
type Members = HashMap<ConnectionId, Arc<ConnectionHandle>, foldhash::fast::RandomState>;

/// The connections of one hub (or raw endpoint) on this node, their groups
/// and users, and delivery to them. The [`HubLifetimeManager`](super::HubLifetimeManager)
/// of a single node; a backplane wraps one and adds the other nodes.
#[derive(Default)]
pub struct LocalLifetimeManager {
    connections: RwLock<Members>,
    groups: RwLock<HashMap<Arc<str>, Members>>,
    users: RwLock<HashMap<Arc<str>, Members>>,
    metrics: Meters,
}

impl std::fmt::Debug for LocalLifetimeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLifetimeManager")
            .field("connections", &self.len())
            .field("groups", &self.group_count())
            .finish()
    }
}

impl LocalLifetimeManager {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `message` for every connection here that `recipients` names,
    /// encoded once per protocol in use among them. Never waits: a connection
    /// that cannot take it is closed rather than buffered without bound.
    pub fn send_local(&self, recipients: &Recipients, message: SerializedHubMessage) {
        self.deliver(recipients, &Frame::hub(message));
    }

    /// What this node counted of its connections, their messages and groups.
    pub fn metrics(&self) -> HubMetrics {
        self.metrics.snapshot(self.group_count())
    }

    /// Names the hub counted here (the `hub` label of the published metrics).
    pub(crate) fn name_metrics(&self, hub: &str) {
        self.metrics.name(hub);
    }

    /// Whether `connection` is connected to this node.
    pub fn contains(&self, connection: &ConnectionId) -> bool {
        self.connections
            .read()
            .expect("connections lock")
            .contains_key(connection)
    }

    /// How many connections this node has.
    pub fn connection_count(&self) -> usize {
        self.len()
    }

    /// The user of a connection of this node, if it has one.
    pub fn user_of(&self, id: &ConnectionId) -> Option<Arc<str>> {
        self.get(id).and_then(|connection| connection.user.clone())
    }

    /// The groups a connection of this node belongs to (none when it is not here).
    pub fn groups_of(&self, id: &ConnectionId) -> Vec<Arc<str>> {
        self.get(id)
            .map(|connection| {
                let groups = connection.groups.lock().expect("groups lock");
                groups.iter().cloned().collect()
            })
            .unwrap_or_default()
    }

    /// The ids of this node's connections.
    pub fn connection_ids(&self) -> impl Iterator<Item = ConnectionId> {
        let ids: Vec<ConnectionId> = self
            .connections
            .read()
            .expect("connections lock")
            .keys()
            .cloned()
            .collect();
        ids.into_iter()
    }

    /// The groups with members on this node.
    pub fn group_names(&self) -> Vec<Arc<str>> {
        self.groups
            .read()
            .expect("groups lock")
            .keys()
            .cloned()
            .collect()
    }

    /// The connections of this node in `group`.
    pub fn members_of(&self, group: &str) -> Vec<ConnectionId> {
        self.groups
            .read()
            .expect("groups lock")
            .get(group)
            .map(|members| members.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether a connection of this node belongs to `group`.
    pub fn is_member(&self, id: &ConnectionId, group: &str) -> bool {
        self.get(id).is_some_and(|connection| {
            let groups = connection.groups.lock().expect("groups lock");
            groups.contains(group)
        })
    }

    /// The hub protocol a connection of this node speaks (`None` when it is
    /// not here, or is a raw connection).
    pub fn protocol_of(&self, id: &ConnectionId) -> Option<RegisteredProtocol> {
        self.get(id)
            .and_then(|connection| connection.protocol.clone())
    }

    /// Asks a connection of this node for a client result on behalf of a
    /// caller elsewhere: queues `message` (an Invocation carrying
    /// `invocation_id`) and returns where the client's Completion arrives. The
    /// receiver fails when the connection ends first. `None` when the
    /// connection is not here.
    pub fn ask(
        &self,
        id: &ConnectionId,
        invocation_id: &str,
        message: SerializedHubMessage,
    ) -> Option<oneshot::Receiver<CompletionOutcome>> {
        let connection = self.get(id)?;
        let answer = connection.expect_result_as(invocation_id.to_owned());
        connection.try_send(&Frame::hub(message));
        Some(answer)
    }

    /// Stops waiting for a client result [`ask`](Self::ask)ed of a connection
    /// here (its caller gave up).
    pub fn forget_ask(&self, id: &ConnectionId, invocation_id: &str) {
        if let Some(connection) = self.get(id) {
            connection.forget_result(invocation_id);
        }
    }

    pub(crate) fn add(&self, connection: Arc<ConnectionHandle>) {
        let _ = connection.meter.set(self.metrics.opened(&connection));
        if let Some(user) = &connection.user {
            self.users
                .write()
                .expect("users lock")
                .entry(user.clone())
                .or_default()
                .insert(connection.id.clone(), connection.clone());
        }
        self.connections
            .write()
            .expect("connections lock")
            .insert(connection.id.clone(), connection);
    }

    /// Removes a connection and its memberships, so nothing is left behind.
    pub(crate) fn remove(&self, connection: &ConnectionHandle) {
        let removed = self
            .connections
            .write()
            .expect("connections lock")
            .remove(&connection.id);
        if removed.is_some() {
            self.metrics.closed(connection);
        }
        let names: Vec<_> = connection
            .groups
            .lock()
            .expect("groups lock")
            .drain()
            .collect();
        if !names.is_empty() {
            let mut groups = self.groups.write().expect("groups lock");
            for name in names {
                remove_member(&mut groups, &name, &connection.id);
            }
            self.metrics.groups(groups.len());
        }
        if let Some(user) = &connection.user {
            remove_member(
                &mut self.users.write().expect("users lock"),
                user,
                &connection.id,
            );
        }
    }

    pub(crate) fn get(&self, id: &ConnectionId) -> Option<Arc<ConnectionHandle>> {
        self.connections
            .read()
            .expect("connections lock")
            .get(id)
            .cloned()
    }

    /// Closes every connection, asking clients to reconnect.
    pub(crate) fn close_all_for_reconnect(&self) {
        for connection in self.connections.read().expect("connections lock").values() {
            connection.close_for_reconnect();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.connections.read().expect("connections lock").len()
    }

    /// Adds a connection of this node to `group`; false when it is not here.
    pub fn add_to_group(&self, id: &ConnectionId, group: &str) -> bool {
        let Some(connection) = self.get(id) else {
            return false;
        };
        let name: Arc<str> = group.into();
        {
            let mut groups = connection.groups.lock().expect("groups lock");
            if groups.len() >= connection.max_groups && !groups.contains(group) {
                tracing::warn!(connection = %id, group, limit = connection.max_groups, "group add refused: the connection is in as many groups as it may be");
                return false;
            }
            groups.insert(name.clone());
        }
        let mut groups = self.groups.write().expect("groups lock");
        groups
            .entry(name)
            .or_default()
            .insert(id.clone(), connection);
        self.metrics.groups(groups.len());
        true
    }

    /// Why a connection of this node may not join `group`: it is in as many
    /// groups as it may be. `None` when it may, or is not here.
    pub(crate) fn group_limit(&self, id: &ConnectionId, group: &str) -> Option<SendError> {
        let connection = self.get(id)?;
        let groups = connection.groups.lock().expect("groups lock");
        (groups.len() >= connection.max_groups && !groups.contains(group)).then(|| {
            SendError::TooManyGroups {
                connection: id.to_string(),
                limit: connection.max_groups,
            }
        })
    }

    /// Removes a connection of this node from `group`; false when it is not here.
    pub fn remove_from_group(&self, id: &ConnectionId, group: &str) -> bool {
        let Some(connection) = self.get(id) else {
            return false;
        };
        connection.groups.lock().expect("groups lock").remove(group);
        let mut groups = self.groups.write().expect("groups lock");
        remove_member(&mut groups, group, id);
        self.metrics.groups(groups.len());
        true
    }

    /// How many groups have members on this node.
    pub fn group_count(&self) -> usize {
        self.groups.read().expect("groups lock").len()
    }

    /// How many users have connections on this node.
    pub fn user_count(&self) -> usize {
        self.users.read().expect("users lock").len()
    }

    /// Queues `frame` for every connection `recipients` names. Never waits: a
    /// connection that cannot take it is closed (see [`ConnectionHandle::try_send`]).
    pub(crate) fn deliver(&self, recipients: &Recipients, frame: &Frame) {
        match recipients {
            Recipients::All { except } => {
                for (id, connection) in self.connections.read().expect("connections lock").iter() {
                    if !except.contains(id) {
                        connection.try_send(frame);
                    }
                }
            }
            Recipients::Connections(ids) => {
                let connections = self.connections.read().expect("connections lock");
                for id in dedup(ids) {
                    if let Some(connection) = connections.get(id) {
                        connection.try_send(frame);
                    }
                }
            }
            Recipients::Groups { names, except } => {
                let groups = self.groups.read().expect("groups lock");
                deliver_to_sets(names.iter().filter_map(|n| groups.get(n)), except, frame);
            }
            Recipients::Users(names) => {
                let users = self.users.read().expect("users lock");
                deliver_to_sets(names.iter().filter_map(|n| users.get(n)), &[], frame);
            }
        }
    }
}

fn remove_member(sets: &mut HashMap<Arc<str>, Members>, name: &str, id: &ConnectionId) {
    if let Some(members) = sets.get_mut(name) {
        members.remove(id);
        if members.is_empty() {
            sets.remove(name);
        }
    }
}

fn dedup(ids: &[ConnectionId]) -> impl Iterator<Item = &ConnectionId> {
    let mut seen = HashSet::new();
    ids.iter().filter(move |id| seen.insert(*id))
}

/// Sends once to each connection of the union of `sets`, skipping `except`.
fn deliver_to_sets<'a>(
    sets: impl Iterator<Item = &'a Members>,
    except: &[ConnectionId],
    frame: &Frame,
) {
    let sets: Vec<&Members> = sets.collect();
    if let [only] = sets[..] {
        for (id, connection) in only {
            if !except.contains(id) {
                connection.try_send(frame);
            }
        }
        return;
    }
    let mut seen = HashSet::new();
    for members in sets {
        for (id, connection) in members {
            if !except.contains(id) && seen.insert(id) {
                connection.try_send(frame);
            }
        }
    }
}
