//! One hub's node in the cluster: its Redis connection, its subscriptions, and
//! what it does with each message that arrives.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind, Value};
use signal_core::{
    Arguments, Completion, CompletionOutcome, HubMessage, Invocation, ProtocolSet,
    SerializedHubMessage,
};
use signal_server::lifetime::{HubScope, ListQuery, Listing};
use signal_server::persistent::Message;
use signal_server::relay::{TUNNEL_CAPACITY, TransportService, TunnelEnd};
use signal_server::{ClientResultError, ConnectionId, LocalLifetimeManager, Recipients, SendError};
use tokio::sync::{mpsc, oneshot};

use crate::Settings;
use crate::channels::{Channel, Channels};
use crate::envelope::{
    ClientResult, CompletionEnvelope, GroupAction, GroupCommand, InvocationEnvelope, ListRequest,
    PendingConnection, RelayAction, RelayReply, RelayRequest, TransportRequest, TransportResponse,
    TunnelFrame, decode_ack, decode_list_reply, encode_ack, encode_list_reply,
};

/// Messages from Redis waiting to be handled; past this, new ones are dropped
/// (and logged) rather than buffered without bound.
const INCOMING_CAPACITY: usize = 4096;

/// How often a client result waiting on another node checks that the node is
/// still there.
const HOLDER_CHECK: Duration = Duration::from_secs(1);

/// How often subscriptions that failed (Redis down) are tried again.
const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Node {
    local: Arc<LocalLifetimeManager>,
    protocols: ProtocolSet,
    channels: Channels,
    server: String,
    redis: ConnectionManager,
    ack_timeout: Duration,
    client_result_timeout: Duration,
    next_ack: AtomicU32,
    acks: Mutex<HashMap<u32, oneshot::Sender<()>>>,
    results: Mutex<HashMap<String, oneshot::Sender<CompletionEnvelope>>>,
    transport: Option<TransportService>,
    next_relay: AtomicU32,
    /// Both ends of tunnels through this node, by (requester, request id):
    /// where the messages from the other end go.
    tunnels: Mutex<HashMap<(String, u32), mpsc::Sender<Message>>>,
    relays: Mutex<HashMap<u32, mpsc::UnboundedSender<RelayReply>>>,
    next_list: AtomicU32,
    lists: Mutex<HashMap<u32, mpsc::UnboundedSender<Vec<String>>>>,
    list_timeout: Duration,
    /// Local reasons to be subscribed to each channel (connections, members,
    /// or the node itself); the subscriber task makes Redis agree.
    wanted: Mutex<HashMap<String, usize>>,
    subscriber: mpsc::UnboundedSender<(String, Option<oneshot::Sender<()>>)>,
    outage: AtomicBool,
    /// True once the node's own channels are subscribed.
    ready: tokio::sync::watch::Receiver<bool>,
}

impl Node {
    pub(crate) fn start(
        local: Arc<LocalLifetimeManager>,
        hub: &HubScope,
        settings: &Settings,
    ) -> Result<Arc<Node>, redis::RedisError> {
        let server = server_name();
        let name = settings
            .hub_name
            .clone()
            .unwrap_or_else(|| hub.name.clone());
        let channels = Channels::new(&settings.prefix, &name, &server);
        let (incoming_tx, incoming_rx) = mpsc::channel::<PushInfo>(INCOMING_CAPACITY);
        let dropped = AtomicBool::new(false);
        let push_sender = move |info: PushInfo| -> Result<(), ()> {
            match incoming_tx.try_send(info) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if !dropped.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            capacity = INCOMING_CAPACITY,
                            "Redis backplane: messages arrive faster than this node handles them; dropping"
                        );
                    }
                    Err(())
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_push_sender(push_sender)
            .set_automatic_resubscription()
            .set_connection_timeout(Some(settings.command_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            // Few attempts per reconnect: a command fails fast while Redis is
            // down, and the next command (or the subscriber's retry) tries again.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(2));
        let redis = ConnectionManager::new_lazy_with_config(settings.client.clone(), config)?;
        let (subscriber_tx, subscriber_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
        let node = Arc::new(Node {
            local,
            protocols: hub.protocols.clone(),
            channels,
            server,
            redis,
            ack_timeout: settings.ack_timeout,
            client_result_timeout: hub.client_result_timeout,
            next_ack: AtomicU32::new(1),
            acks: Mutex::default(),
            results: Mutex::default(),
            transport: hub.transport.clone(),
            next_relay: AtomicU32::new(1),
            tunnels: Mutex::default(),
            relays: Mutex::default(),
            next_list: AtomicU32::new(1),
            lists: Mutex::default(),
            list_timeout: settings.list_timeout,
            wanted: Mutex::default(),
            subscriber: subscriber_tx,
            outage: AtomicBool::new(false),
            ready: ready_rx,
        });
        tracing::info!(hub = name, server = node.server, "Redis backplane starting");
        tokio::spawn(subscribe_loop(
            Arc::downgrade(&node),
            subscriber_rx,
            node.channels.fixed().to_vec(),
            ready_tx,
        ));
        tokio::spawn(incoming_loop(Arc::downgrade(&node), incoming_rx));
        for channel in node.channels.fixed() {
            node.want(channel, 1);
        }
        Ok(node)
    }

    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// Waits until the node's own channels are subscribed.
    pub(crate) async fn ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|ready| *ready).await;
    }

    // ---- subscriptions ----

    /// Adds `delta` reasons to be subscribed to `channel` and asks the
    /// subscriber to act on it; returns when it has.
    fn want(&self, channel: String, delta: isize) -> oneshot::Receiver<()> {
        {
            let mut wanted = self.wanted.lock().expect("wanted lock");
            let count = wanted.entry(channel.clone()).or_default();
            *count = count.saturating_add_signed(delta);
            if *count == 0 {
                wanted.remove(&channel);
            }
        }
        let (tx, rx) = oneshot::channel();
        let _ = self.subscriber.send((channel, Some(tx)));
        rx
    }

    fn is_wanted(&self, channel: &str) -> bool {
        self.wanted
            .lock()
            .expect("wanted lock")
            .contains_key(channel)
    }

    pub(crate) async fn on_connected(&self, connection: &ConnectionId, user: Option<&str>) {
        let mut done = vec![self.want(self.channels.connection(connection.as_str()), 1)];
        if let Some(user) = user {
            done.push(self.want(self.channels.user(user), 1));
        }
        for done in done {
            let _ = done.await;
        }
    }

    pub(crate) async fn on_disconnected(&self, connection: &ConnectionId) {
        let mut done = vec![self.want(self.channels.connection(connection.as_str()), -1)];
        if let Some(user) = self.local.user_of(connection) {
            done.push(self.want(self.channels.user(&user), -1));
        }
        for group in self.local.groups_of(connection) {
            done.push(self.want(self.channels.group(&group), -1));
        }
        for done in done {
            let _ = done.await;
        }
    }

    /// Joins or leaves a group for a connection of this node, keeping the
    /// group's channel subscribed while it has members here.
    async fn change_local_group(
        &self,
        connection: &ConnectionId,
        group: &str,
        action: GroupAction,
    ) {
        // Checked and changed under one lock, so that two changes of one
        // membership count once.
        let changed = {
            let _wanted = self.wanted.lock().expect("wanted lock");
            let member = self.local.is_member(connection, group);
            match action {
                GroupAction::Add if !member => self.local.add_to_group(connection, group),
                GroupAction::Remove if member => self.local.remove_from_group(connection, group),
                _ => false,
            }
        };
        let delta = match action {
            GroupAction::Add => 1,
            GroupAction::Remove => -1,
        };
        let done = if changed {
            self.want(self.channels.group(group), delta)
        } else {
            // Still wait for the subscriber, so that the caller returns after
            // a concurrent join of the same group has subscribed.
            self.want(self.channels.group(group), 0)
        };
        let _ = done.await;
    }

    // ---- sends ----

    fn frames(&self, message: &SerializedHubMessage) -> Result<Vec<(String, Bytes)>, SendError> {
        self.protocols
            .iter()
            .map(|protocol| {
                message
                    .framed(&protocol)
                    .map(|framed| (protocol.name().to_owned(), framed))
                    .map_err(|error| SendError::Serialize {
                        method: method_of(message),
                        message: error.to_string(),
                    })
            })
            .collect()
    }

    pub(crate) async fn send(
        &self,
        recipients: &Recipients,
        message: SerializedHubMessage,
    ) -> Result<(), SendError> {
        let envelope = |excluded: &[ConnectionId], frames: Vec<(String, Bytes)>, origin: bool| {
            InvocationEnvelope {
                excluded: excluded.iter().map(|id| id.to_string()).collect(),
                frames,
                client_result: None,
                origin: origin.then(|| self.server.clone()),
                earlier_groups: Vec::new(),
            }
            .encode()
        };
        let publishes: Vec<(String, Vec<u8>)> = match recipients {
            Recipients::All { except } => {
                let frames = self.frames(&message);
                self.local.send_local(recipients, message);
                vec![(self.channels.all(), envelope(except, frames?, true))]
            }
            Recipients::Connections(ids) => {
                let (here, elsewhere): (Vec<_>, Vec<_>) =
                    ids.iter().cloned().partition(|id| self.local.contains(id));
                if elsewhere.is_empty() {
                    self.local.send_local(recipients, message);
                    return Ok(());
                }
                let frames = self.frames(&message);
                if !here.is_empty() {
                    self.local
                        .send_local(&Recipients::Connections(here), message);
                }
                let bytes = envelope(&[], frames?, false);
                let mut seen = HashSet::new();
                elsewhere
                    .iter()
                    .filter(|id| seen.insert(*id))
                    .map(|id| (self.channels.connection(id.as_str()), bytes.clone()))
                    .collect()
            }
            Recipients::Groups { names, except } => {
                let frames = self.frames(&message)?;
                self.local.send_local(recipients, message);
                let mut seen: Vec<&str> = Vec::new();
                let mut publishes = Vec::new();
                for name in names.iter().filter(|name| !name.is_empty()) {
                    if seen.contains(&name.as_ref()) {
                        continue;
                    }
                    let bytes = InvocationEnvelope {
                        excluded: except.iter().map(|id| id.to_string()).collect(),
                        frames: frames.clone(),
                        client_result: None,
                        origin: Some(self.server.clone()),
                        earlier_groups: seen.iter().map(|g| (*g).to_owned()).collect(),
                    }
                    .encode();
                    publishes.push((self.channels.group(name), bytes));
                    seen.push(name);
                }
                publishes
            }
            Recipients::Users(users) => {
                let frames = self.frames(&message);
                self.local.send_local(recipients, message);
                let bytes = envelope(&[], frames?, true);
                users
                    .iter()
                    .map(|user| (self.channels.user(user), bytes.clone()))
                    .collect()
            }
            other => {
                tracing::warn!(
                    ?other,
                    "a target the Redis backplane does not know; sent on this node only"
                );
                self.local.send_local(recipients, message);
                return Ok(());
            }
        };
        self.publish_all(publishes).await.map(|_| ())
    }

    /// Publishes each message in one round trip; the subscriber counts.
    async fn publish_all(&self, messages: Vec<(String, Vec<u8>)>) -> Result<Vec<usize>, SendError> {
        let mut pipe = redis::pipe();
        for (channel, bytes) in &messages {
            pipe.publish(channel, bytes.as_slice());
        }
        let mut redis = self.redis.clone();
        let result: Result<Vec<usize>, _> = pipe.query_async(&mut redis).await;
        self.note(result.map_err(|error| SendError::Backplane(error.to_string())))
    }

    async fn publish(&self, channel: String, bytes: Vec<u8>) -> Result<usize, SendError> {
        let counts = self.publish_all(vec![(channel, bytes)]).await?;
        Ok(counts.first().copied().unwrap_or(0))
    }

    async fn subscriber_count(&self, channel: &str) -> Result<usize, SendError> {
        let mut redis = self.redis.clone();
        let result: Result<(String, usize), _> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut redis)
            .await;
        self.note(
            result
                .map(|(_, count)| count)
                .map_err(|error| SendError::Backplane(error.to_string())),
        )
    }

    /// Logs an outage once when it starts and once when it ends.
    fn note<T>(&self, result: Result<T, SendError>) -> Result<T, SendError> {
        match &result {
            Ok(_) => {
                if self.outage.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        server = self.server,
                        "Redis backplane is back: sends reach every node again"
                    );
                }
            }
            Err(error) => {
                if !self.outage.swap(true, Ordering::Relaxed) {
                    tracing::warn!(server = self.server, %error, "Redis backplane unavailable: sends reach this node's connections only until it is back");
                    // Wakes the subscriber, which then drives the reconnect.
                    let _ = self.subscriber.send((String::new(), None));
                } else {
                    tracing::debug!(%error, "Redis backplane still unavailable");
                }
            }
        }
        result
    }

    // ---- groups across nodes ----

    pub(crate) async fn change_group(
        &self,
        connection: &ConnectionId,
        group: &str,
        action: GroupAction,
    ) -> Result<(), SendError> {
        if self.local.contains(connection) {
            self.change_local_group(connection, group, action).await;
            return Ok(());
        }
        // Whether any node holds the connection: each subscribes to its
        // channel. None does → say so now (ASP.NET Core waits 30 s).
        if self
            .subscriber_count(&self.channels.connection(connection.as_str()))
            .await?
            == 0
        {
            return Err(SendError::NotConnected(connection.to_string()));
        }
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.acks.lock().expect("acks lock").insert(id, tx);
        let command = GroupCommand {
            id,
            server: self.server.clone(),
            action,
            group: group.to_owned(),
            connection: connection.to_string(),
        };
        let published = self
            .publish(self.channels.group_commands(), command.encode())
            .await;
        let outcome = match published {
            Ok(_) => tokio::time::timeout(self.ack_timeout, rx).await,
            Err(error) => {
                self.acks.lock().expect("acks lock").remove(&id);
                return Err(error);
            }
        };
        self.acks.lock().expect("acks lock").remove(&id);
        match outcome {
            Ok(Ok(())) => Ok(()),
            _ => Err(SendError::Backplane(format!(
                "no node acknowledged the group change of connection '{connection}' within {:?} (Redis::ack_timeout)",
                self.ack_timeout
            ))),
        }
    }

    async fn on_group_command(&self, command: GroupCommand) {
        let connection = ConnectionId::from(command.connection.as_str());
        if !self.local.contains(&connection) {
            return;
        }
        self.change_local_group(&connection, &command.group, command.action)
            .await;
        let _ = self
            .publish(self.channels.ack(&command.server), encode_ack(command.id))
            .await;
    }

    // ---- client results across nodes ----

    pub(crate) async fn invoke_remote(
        &self,
        connection: &ConnectionId,
        method: &str,
        arguments: Arguments,
    ) -> Result<CompletionOutcome, ClientResultError> {
        let invocation_id = invocation_id();
        let mut invocation = Invocation::new(method, arguments);
        invocation.invocation_id = Some(invocation_id.clone());
        let message = SerializedHubMessage::new(HubMessage::Invocation(invocation));
        let envelope = InvocationEnvelope {
            excluded: Vec::new(),
            frames: self.frames(&message)?,
            client_result: Some(ClientResult {
                invocation_id: invocation_id.clone(),
                return_channel: self.channels.logical_return(),
            }),
            origin: None,
            earlier_groups: Vec::new(),
        };
        let (tx, mut rx) = oneshot::channel();
        self.results
            .lock()
            .expect("results lock")
            .insert(invocation_id.clone(), tx);
        let forget = Forget {
            results: &self.results,
            id: &invocation_id,
        };
        let channel = self.channels.connection(connection.as_str());
        if self.publish(channel.clone(), envelope.encode()).await? == 0 {
            return Err(SendError::NotConnected(connection.to_string()).into());
        }
        let deadline = tokio::time::Instant::now() + self.client_result_timeout;
        let answer = loop {
            tokio::select! {
                answer = &mut rx => break answer,
                () = tokio::time::sleep_until(deadline) => {
                    return Err(ClientResultError::Timeout(self.client_result_timeout));
                }
                () = tokio::time::sleep(HOLDER_CHECK) => {
                    // The holder subscribes to the connection's channel for as
                    // long as it holds it: nobody there → the node is gone.
                    if let Ok(0) = self.subscriber_count(&channel).await {
                        return Err(ClientResultError::Disconnected(connection.to_string()));
                    }
                }
            }
        };
        drop(forget);
        let answer = answer.map_err(|_| ClientResultError::Disconnected(connection.to_string()))?;
        let Some(protocol) = self.protocols.get(&answer.protocol) else {
            return Err(ClientResultError::Deserialize(format!(
                "the answer came in the '{}' protocol, which this hub does not speak",
                answer.protocol
            )));
        };
        match parse_framed(&protocol, &answer.framed) {
            Ok(HubMessage::Completion(completion)) => Ok(completion.outcome),
            Ok(other) => Err(ClientResultError::Deserialize(format!(
                "expected a Completion, got {other:?}"
            ))),
            Err(error) => Err(ClientResultError::Deserialize(error)),
        }
    }

    /// A client result asked of a connection here by another node: forwards
    /// the invocation, and the client's Completion back to that node.
    async fn answer_for_remote(
        self: Arc<Self>,
        connection: ConnectionId,
        result: ClientResult,
        message: SerializedHubMessage,
    ) {
        let Some(protocol) = self.local.protocol_of(&connection) else {
            return;
        };
        let Some(answer) = self.local.ask(&connection, &result.invocation_id, message) else {
            return;
        };
        let outcome = match tokio::time::timeout(self.client_result_timeout, answer).await {
            Ok(Ok(outcome)) => outcome,
            // ASP.NET Core's text when the connection ends first.
            Ok(Err(_)) => CompletionOutcome::Error("Connection disconnected.".into()),
            Err(_) => {
                self.local.forget_ask(&connection, &result.invocation_id);
                return;
            }
        };
        let completion =
            HubMessage::Completion(Completion::with(result.invocation_id.clone(), outcome));
        let framed = match protocol.to_bytes(&completion) {
            Ok(framed) => framed,
            Err(error) => {
                tracing::warn!(%error, "a client result could not be encoded for the asking node");
                return;
            }
        };
        let envelope = CompletionEnvelope {
            protocol: protocol.name().to_owned(),
            framed,
        };
        let channel = self.channels.wire_of(&result.return_channel);
        let _ = self.publish(channel, envelope.encode()).await;
    }

    // ---- listings across nodes ----

    /// What every node holds: asks the other signal nodes and waits for as
    /// many answers as there are subscribers to the request channel, up to
    /// the list timeout.
    pub(crate) async fn list(&self, query: &ListQuery) -> Listing {
        let mut items = self.local.list_local(query);
        let requests = self.channels.list_requests();
        let (signal_nodes, all_nodes) = match (
            self.subscriber_count(&requests).await,
            self.subscriber_count(&self.channels.all()).await,
        ) {
            (Ok(signal), Ok(all)) => (signal, all),
            _ => return Listing::new(items, true),
        };
        // ASP.NET Core nodes (on `all` but not on the request channel) hold
        // connections nobody can list.
        let mut partial = all_nodes > signal_nodes;
        let expected = signal_nodes.saturating_sub(1);
        if expected == 0 {
            return Listing::new(items, partial);
        }
        let id = self.next_list.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.lists.lock().expect("lists lock").insert(id, tx);
        let request = ListRequest {
            id,
            server: self.server.clone(),
            query: query.clone(),
        };
        let mut answered = 0;
        if self.publish(requests, request.encode()).await.is_ok() {
            let deadline = tokio::time::Instant::now() + self.list_timeout;
            while answered < expected {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(more)) => {
                        items.extend(more);
                        answered += 1;
                    }
                    _ => break,
                }
            }
        }
        self.lists.lock().expect("lists lock").remove(&id);
        partial |= answered < expected;
        Listing::new(items, partial)
    }

    async fn on_list_request(&self, request: ListRequest) {
        if request.server == self.server {
            return;
        }
        let items = self.local.list_local(&request.query);
        let _ = self
            .publish(
                self.channels.list_replies(&request.server),
                encode_list_reply(request.id, &items),
            )
            .await;
    }

    // ---- transport requests across nodes (no sticky sessions) ----

    /// Sends a relay request to the other signal nodes and returns the
    /// answers as they come, with how many nodes should answer.
    async fn relay(
        &self,
        token: &str,
        action: RelayAction,
        tunnel: Option<mpsc::Sender<Message>>,
    ) -> Option<(RelayWaiter<'_>, usize)> {
        let channel = self.channels.relay_requests();
        let expected = self
            .subscriber_count(&channel)
            .await
            .ok()?
            .saturating_sub(1);
        if expected == 0 {
            return None;
        }
        let id = self.next_relay.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.relays.lock().expect("relays lock").insert(id, tx);
        let waiter = RelayWaiter {
            relays: &self.relays,
            id,
            replies: rx,
        };
        if let Some(tunnel) = tunnel {
            // In place before the holder can send through it.
            self.tunnels
                .lock()
                .expect("tunnels lock")
                .insert((self.server.clone(), id), tunnel);
        }
        let envelope = RelayRequest {
            id,
            server: self.server.clone(),
            token: token.to_owned(),
            action,
        };
        if self.publish(channel, envelope.encode()).await.is_err() {
            self.tunnels
                .lock()
                .expect("tunnels lock")
                .remove(&(self.server.clone(), id));
            return None;
        }
        Some((waiter, expected))
    }

    pub(crate) async fn claim(&self, token: &str) -> Option<PendingConnection> {
        let (mut waiter, expected) = self.relay(token, RelayAction::Claim, None).await?;
        let deadline = tokio::time::Instant::now() + self.list_timeout;
        let mut declined = 0;
        while declined < expected {
            match tokio::time::timeout_at(deadline, waiter.replies.recv()).await {
                Ok(Some(RelayReply::Claimed(pending))) => return Some(pending),
                Ok(Some(_)) => declined += 1,
                _ => return None,
            }
        }
        None
    }

    pub(crate) async fn forward(
        &self,
        token: &str,
        request: TransportRequest,
    ) -> Option<TransportResponse> {
        let (mut waiter, expected) = self
            .relay(token, RelayAction::Forward(request), None)
            .await?;
        let deadline = tokio::time::Instant::now() + self.list_timeout;
        let mut declined = 0;
        // Until a node says it holds the connection: the other nodes decline
        // at once, so nobody holding it is known quickly.
        let holder = loop {
            if declined == expected {
                return None;
            }
            match tokio::time::timeout_at(deadline, waiter.replies.recv()).await {
                Ok(Some(RelayReply::Accepted(holder))) => break holder,
                Ok(Some(RelayReply::Response(response))) => return Some(response),
                Ok(Some(_)) => declined += 1,
                _ => return None,
            }
        };
        // A long poll is answered when it has data or times out; meanwhile,
        // the holder must still be there.
        let alive = self.channels.relay_replies(&holder);
        loop {
            tokio::select! {
                reply = waiter.replies.recv() => match reply {
                    Some(RelayReply::Response(response)) => return Some(response),
                    Some(_) => {}
                    None => return None,
                },
                () = tokio::time::sleep(HOLDER_CHECK) => {
                    if let Ok(0) = self.subscriber_count(&alive).await {
                        tracing::debug!(holder, "the node holding a relayed connection is gone");
                        return None;
                    }
                }
            }
        }
    }

    async fn on_relay_request(self: &Arc<Self>, request: RelayRequest) {
        if request.server == self.server {
            return;
        }
        let reply_to = self.channels.relay_replies(&request.server);
        let Some(transport) = &self.transport else {
            let _ = self
                .publish(reply_to, RelayReply::NotHere.encode(request.id))
                .await;
            return;
        };
        let reply = match request.action {
            RelayAction::Claim => match transport.release(&request.token) {
                Some(pending) => RelayReply::Claimed(pending),
                None => RelayReply::NotHere,
            },
            RelayAction::Forward(forwarded) if transport.holds(&request.token) => {
                let accepted = RelayReply::Accepted(self.server.clone()).encode(request.id);
                let _ = self.publish(reply_to.clone(), accepted).await;
                RelayReply::Response(transport.serve(forwarded).await)
            }
            RelayAction::Tunnel => match transport.reattach(&request.token) {
                Some(end) => {
                    self.hold_tunnel(request.server.clone(), request.id, end);
                    RelayReply::Accepted(self.server.clone())
                }
                None => RelayReply::NotHere,
            },
            RelayAction::Forward(_) => RelayReply::NotHere,
        };
        let _ = self.publish(reply_to, reply.encode(request.id)).await;
    }

    /// Opens a tunnel to the node holding `token`'s stateful connection: this
    /// node's end of it.
    pub(crate) async fn tunnel(self: &Arc<Self>, token: &str) -> Option<TunnelEnd> {
        let (from_holder_tx, from_holder_rx) = mpsc::channel(TUNNEL_CAPACITY);
        let (mut waiter, expected) = self
            .relay(token, RelayAction::Tunnel, Some(from_holder_tx))
            .await?;
        let id = waiter.id;
        let deadline = tokio::time::Instant::now() + self.list_timeout;
        let mut declined = 0;
        let holder = loop {
            let reply = if declined == expected {
                None
            } else {
                tokio::time::timeout_at(deadline, waiter.replies.recv())
                    .await
                    .ok()
                    .flatten()
            };
            match reply {
                Some(RelayReply::Accepted(holder)) => break holder,
                Some(_) => declined += 1,
                None => {
                    self.tunnels
                        .lock()
                        .expect("tunnels lock")
                        .remove(&(self.server.clone(), id));
                    return None;
                }
            }
        };
        let (to_holder_tx, mut to_holder_rx) = mpsc::channel::<Message>(TUNNEL_CAPACITY);
        // The client's messages go to the holder's tunnel channel, in order;
        // the tunnel ends when the client does, or when the holder is gone.
        let node = Arc::downgrade(self);
        let me = self.server.clone();
        tokio::spawn(async move {
            let channel = match node.upgrade() {
                Some(node) => node.channels.tunnel(&holder),
                None => return,
            };
            loop {
                let message = tokio::select! {
                    message = to_holder_rx.recv() => message,
                    () = tokio::time::sleep(HOLDER_CHECK) => {
                        let Some(node) = node.upgrade() else { return };
                        if let Ok(0) = node.subscriber_count(&channel).await {
                            node.tunnels.lock().expect("tunnels lock").remove(&(me.clone(), id));
                            return;
                        }
                        continue;
                    }
                };
                let Some(node) = node.upgrade() else { return };
                if !node.send_through(&channel, &me, id, message).await {
                    return;
                }
            }
        });
        Some(TunnelEnd {
            sender: to_holder_tx,
            receiver: from_holder_rx,
        })
    }

    /// The holder's side of a tunnel another node opened: the connection's
    /// messages go to that node, in order, until either side ends.
    fn hold_tunnel(self: &Arc<Self>, requester: String, id: u32, end: TunnelEnd) {
        let TunnelEnd {
            sender,
            mut receiver,
        } = end;
        self.tunnels
            .lock()
            .expect("tunnels lock")
            .insert((requester.clone(), id), sender);
        let node = Arc::downgrade(self);
        tokio::spawn(async move {
            let channel = match node.upgrade() {
                Some(node) => node.channels.tunnel(&requester),
                None => return,
            };
            loop {
                let message = receiver.recv().await;
                let Some(node) = node.upgrade() else { return };
                if !node.send_through(&channel, &requester, id, message).await {
                    return;
                }
            }
        });
    }

    /// Sends one message of tunnel `(requester, id)` to the other end's
    /// `channel`; `None` ends the tunnel, here too. False once it has ended.
    async fn send_through(
        &self,
        channel: &str,
        requester: &str,
        id: u32,
        message: Option<Message>,
    ) -> bool {
        let end = message.is_none();
        let frame = TunnelFrame {
            requester: requester.to_owned(),
            id,
            message,
        };
        let _ = self.publish(channel.to_owned(), frame.encode()).await;
        if end {
            self.tunnels
                .lock()
                .expect("tunnels lock")
                .remove(&(requester.to_owned(), id));
        }
        !end
    }

    /// A message through a tunnel, for whichever end of it is here.
    fn on_tunnel_frame(&self, frame: TunnelFrame) {
        let key = (frame.requester, frame.id);
        let mut tunnels = self.tunnels.lock().expect("tunnels lock");
        let Some(message) = frame.message else {
            // The other end is done: dropping the sender ends this end's stream.
            tunnels.remove(&key);
            return;
        };
        if let Some(sender) = tunnels.get(&key)
            && sender.try_send(message).is_err()
        {
            // Full (a reader that does not keep up) or gone: the tunnel ends
            // rather than buffer without bound; stateful reconnect recovers.
            tunnels.remove(&key);
        }
    }

    // ---- what arrives ----

    fn on_message(self: &Arc<Self>, channel: &str, payload: Bytes) {
        let Some(kind) = self.channels.classify(channel) else {
            return;
        };
        let result = match kind {
            Channel::All => {
                self.on_invocation(payload, |excluded| Recipients::All { except: excluded })
            }
            Channel::Group(name) => {
                let names = vec![Arc::<str>::from(name)];
                self.on_invocation(payload, |excluded| Recipients::Groups {
                    names,
                    except: excluded,
                })
            }
            // As in ASP.NET Core, exclusions do not apply to user sends.
            Channel::User(user) => {
                let users = vec![Arc::<str>::from(user)];
                self.on_invocation(payload, |_| Recipients::Users(users))
            }
            Channel::Connection(id) => self.on_connection_message(ConnectionId::from(id), payload),
            Channel::GroupCommands => GroupCommand::decode(&payload)
                .map(|command| {
                    let node = self.clone();
                    tokio::spawn(async move { node.on_group_command(command).await });
                })
                .map_err(|e| e.to_string()),
            Channel::Ack => decode_ack(&payload)
                .map(|id| {
                    if let Some(tx) = self.acks.lock().expect("acks lock").remove(&id) {
                        let _ = tx.send(());
                    }
                })
                .map_err(|e| e.to_string()),
            Channel::ListRequest => ListRequest::decode(&payload)
                .map(|request| {
                    let node = self.clone();
                    tokio::spawn(async move { node.on_list_request(request).await });
                })
                .map_err(|e| e.to_string()),
            Channel::ListReply => decode_list_reply(&payload)
                .map(|(id, items)| {
                    if let Some(tx) = self.lists.lock().expect("lists lock").get(&id) {
                        let _ = tx.send(items);
                    }
                })
                .map_err(|e| e.to_string()),
            Channel::RelayRequest => RelayRequest::decode(&payload)
                .map(|request| {
                    let node = self.clone();
                    tokio::spawn(async move { node.on_relay_request(request).await });
                })
                .map_err(|e| e.to_string()),
            Channel::Tunnel => TunnelFrame::decode(&payload)
                .map(|frame| self.on_tunnel_frame(frame))
                .map_err(|e| e.to_string()),
            Channel::RelayReply => RelayReply::decode(&payload)
                .map(|(id, reply)| {
                    if let Some(tx) = self.relays.lock().expect("relays lock").get(&id) {
                        let _ = tx.send(reply);
                    }
                })
                .map_err(|e| e.to_string()),
            Channel::Return => CompletionEnvelope::decode(&payload)
                .map_err(|e| e.to_string())
                .and_then(|envelope| {
                    let protocol = self.protocols.get(&envelope.protocol).ok_or_else(|| {
                        format!(
                            "a client result in the unknown protocol '{}'",
                            envelope.protocol
                        )
                    })?;
                    let id = match parse_framed(&protocol, &envelope.framed)? {
                        HubMessage::Completion(completion) => completion.invocation_id,
                        other => return Err(format!("expected a Completion, got {other:?}")),
                    };
                    if let Some(tx) = self.results.lock().expect("results lock").remove(&id) {
                        let _ = tx.send(envelope);
                    }
                    Ok(())
                }),
        };
        if let Err(error) = result {
            tracing::warn!(
                channel,
                error,
                "Redis backplane: dropped a message it could not read"
            );
        }
    }

    fn on_invocation(
        &self,
        payload: Bytes,
        recipients: impl FnOnce(Vec<ConnectionId>) -> Recipients,
    ) -> Result<(), String> {
        let envelope = InvocationEnvelope::decode(&payload).map_err(|e| e.to_string())?;
        if envelope.origin.as_deref() == Some(self.server.as_str()) {
            // Delivered here when it was sent.
            return Ok(());
        }
        let message = message_of(&self.protocols, &envelope.frames)?;
        let mut excluded: Vec<ConnectionId> = envelope
            .excluded
            .iter()
            .map(|id| ConnectionId::from(id.as_str()))
            .collect();
        // Members of the send's earlier groups have it from their channel.
        for group in &envelope.earlier_groups {
            excluded.extend(self.local.members_of(group));
        }
        self.local.send_local(&recipients(excluded), message);
        Ok(())
    }

    fn on_connection_message(
        self: &Arc<Self>,
        id: ConnectionId,
        payload: Bytes,
    ) -> Result<(), String> {
        let envelope = InvocationEnvelope::decode(&payload).map_err(|e| e.to_string())?;
        let message = message_of(&self.protocols, &envelope.frames)?;
        match envelope.client_result {
            Some(result) => {
                tokio::spawn(self.clone().answer_for_remote(id, result, message));
            }
            None => self
                .local
                .send_local(&Recipients::Connections(vec![id]), message),
        }
        Ok(())
    }
}

/// The message of an envelope's frames: passed through as they are for
/// each protocol given, and encoded here for a protocol of this hub that
/// the sender did not include (ASP.NET Core's node would drop it).
fn message_of(
    protocols: &ProtocolSet,
    frames: &[(String, Bytes)],
) -> Result<SerializedHubMessage, String> {
    let given: Vec<_> = frames
        .iter()
        .filter_map(|(name, framed)| protocols.get(name).map(|p| (p, framed.clone())))
        .collect();
    let Some((first, first_framed)) = given.first() else {
        let names: Vec<_> = frames.iter().map(|(name, _)| name.as_str()).collect();
        return Err(format!(
            "no frame in a protocol this hub speaks (given: {names:?})"
        ));
    };
    let complete = protocols
        .iter()
        .all(|p| given.iter().any(|(q, _)| q.id() == p.id()));
    let mut message = if complete {
        SerializedHubMessage::from_framed(first.id(), first_framed.clone(), true)
    } else {
        SerializedHubMessage::new(parse_framed(first, first_framed)?)
    };
    for (protocol, framed) in given {
        message = message.with_framed(protocol.id(), framed);
    }
    Ok(message)
}

/// The answers to one relayed request; forgotten however its caller leaves.
struct RelayWaiter<'a> {
    relays: &'a Mutex<HashMap<u32, mpsc::UnboundedSender<RelayReply>>>,
    id: u32,
    replies: mpsc::UnboundedReceiver<RelayReply>,
}

impl Drop for RelayWaiter<'_> {
    fn drop(&mut self) {
        self.relays.lock().expect("relays lock").remove(&self.id);
    }
}

/// Removes a client result's waiter however its caller leaves.
struct Forget<'a> {
    results: &'a Mutex<HashMap<String, oneshot::Sender<CompletionEnvelope>>>,
    id: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.results.lock().expect("results lock").remove(self.id);
    }
}

fn parse_framed(
    protocol: &signal_core::RegisteredProtocol,
    framed: &Bytes,
) -> Result<HubMessage, String> {
    let mut reader = protocol.framing().reader(framed.len().max(1));
    let records = reader
        .push_bytes(framed.clone())
        .map_err(|e| e.to_string())?;
    let [record] = records.as_slice() else {
        return Err(format!(
            "expected one framed message, found {}",
            records.len()
        ));
    };
    protocol
        .parse(record)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "a message of an unknown type".to_owned())
}

fn method_of(message: &SerializedHubMessage) -> String {
    match message.message() {
        Some(HubMessage::Invocation(invocation)) => invocation.target.clone(),
        _ => String::new(),
    }
}

/// `HOST_` and 32 hex digits, as ASP.NET Core names a node (new every start).
fn server_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "signal".to_owned());
    format!("{host}_{:032x}", rand::random::<u128>())
}

/// 16 random bytes in base64 without padding (22 characters), as ASP.NET Core's.
fn invocation_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// Makes Redis's subscriptions follow `wanted`, one channel at a time in the
/// order asked, and retries those that failed while Redis was down.
async fn subscribe_loop(
    node: Weak<Node>,
    mut requests: mpsc::UnboundedReceiver<(String, Option<oneshot::Sender<()>>)>,
    fixed: Vec<String>,
    ready: tokio::sync::watch::Sender<bool>,
) {
    /// Changes asked for while one command was under way go out together: a
    /// thousand connections arriving at once cost a few round trips, not a
    /// thousand.
    const BATCH: usize = 1024;
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut failed: HashSet<String> = HashSet::new();
    loop {
        let troubled = !failed.is_empty()
            || node
                .upgrade()
                .is_some_and(|node| node.outage.load(Ordering::Relaxed));
        let request = if !troubled {
            requests.recv().await
        } else {
            tokio::select! {
                request = requests.recv() => request,
                () = tokio::time::sleep(RESUBSCRIBE_EVERY) => {
                    let Some(node) = node.upgrade() else { return };
                    // A command makes the connection manager reconnect (and
                    // restore its subscriptions) when no send does.
                    let mut redis = node.redis.clone();
                    let ping: Result<String, _> = redis::cmd("PING").query_async(&mut redis).await;
                    let _ = node.note(ping.map_err(|error| SendError::Backplane(error.to_string())));
                    let retry: Vec<String> = std::mem::take(&mut failed).into_iter().collect();
                    sync(&node, retry, &mut subscribed, &mut failed).await;
                    continue;
                }
            }
        };
        let Some(first) = request else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let Some(node) = node.upgrade() else { return };
        let (channels, waiters): (Vec<String>, Vec<_>) = batch.into_iter().unzip();
        let channels: Vec<String> = channels.into_iter().filter(|c| !c.is_empty()).collect();
        sync(&node, channels, &mut subscribed, &mut failed).await;
        if !*ready.borrow() && fixed.iter().all(|channel| subscribed.contains(channel)) {
            let _ = ready.send(true);
        }
        for done in waiters.into_iter().flatten() {
            let _ = done.send(());
        }
    }
}

/// Makes Redis's subscriptions to `channels` agree with what is wanted now:
/// one SUBSCRIBE and one UNSUBSCRIBE for all of them. What fails is retried.
async fn sync(
    node: &Node,
    channels: Vec<String>,
    subscribed: &mut HashSet<String>,
    failed: &mut HashSet<String>,
) {
    let mut subscribe = Vec::new();
    let mut unsubscribe = Vec::new();
    for channel in channels {
        let wanted = node.is_wanted(&channel);
        let have = subscribed.contains(&channel);
        if wanted && !have && !subscribe.contains(&channel) {
            subscribe.push(channel);
        } else if !wanted && have && !unsubscribe.contains(&channel) {
            unsubscribe.push(channel);
        } else if wanted == have {
            failed.remove(&channel);
        }
    }
    let mut redis = node.redis.clone();
    for (channels, on) in [(subscribe, true), (unsubscribe, false)] {
        if channels.is_empty() {
            continue;
        }
        let result = if on {
            redis.subscribe(&channels).await
        } else {
            redis.unsubscribe(&channels).await
        };
        match node.note(result.map_err(|error| SendError::Backplane(error.to_string()))) {
            Ok(()) => {
                for channel in channels {
                    failed.remove(&channel);
                    if on {
                        subscribed.insert(channel);
                    } else {
                        subscribed.remove(&channel);
                    }
                }
            }
            Err(_) => failed.extend(channels),
        }
    }
}

/// Handles what Redis pushes: messages, and news of the connection.
async fn incoming_loop(node: Weak<Node>, mut incoming: mpsc::Receiver<PushInfo>) {
    while let Some(push) = incoming.recv().await {
        let Some(node) = node.upgrade() else { return };
        match push.kind {
            PushKind::Message => {
                let mut data = push.data.into_iter();
                let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                    continue;
                };
                let (Some(channel), Some(payload)) = (bulk(channel), bulk(payload)) else {
                    continue;
                };
                match std::str::from_utf8(&channel) {
                    Ok(channel) => node.on_message(channel, payload),
                    Err(_) => tracing::debug!("a message on a channel whose name is not UTF-8"),
                }
            }
            PushKind::Disconnection => {
                let _ = node.note::<()>(Err(SendError::Backplane(
                    "the connection to Redis was lost; reconnecting".into(),
                )));
            }
            PushKind::Subscribe => {
                // Subscriptions restored after a reconnect mean Redis is back.
                let _ = node.note(Ok(()));
            }
            _ => {}
        }
    }
}

fn bulk(value: Value) -> Option<Bytes> {
    match value {
        Value::BulkString(bytes) => Some(Bytes::from(bytes)),
        Value::SimpleString(text) => Some(Bytes::from(text)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &[u8] = b"{\"type\":1,\"target\":\"m\",\"arguments\":[\"x\"]}\x1e";

    #[test]
    fn frames_pass_through_and_a_missing_protocol_is_encoded_here() {
        let protocols = ProtocolSet::default();
        let json = protocols.get("json").unwrap();
        let msgpack = protocols.get("messagepack").unwrap();
        let given = Bytes::from_static(JSON);
        let message = message_of(&protocols, &[("json".into(), given.clone())]).unwrap();
        // The JSON frame is the one given (shared, not re-encoded).
        assert_eq!(message.framed(&json).unwrap().as_ptr(), given.as_ptr());
        // MessagePack, which the sender left out, is encoded from it.
        assert_eq!(
            message.framed(&msgpack).unwrap(),
            &b"\x0a\x96\x01\x80\xc0\xa1m\x91\xa1x\x90"[..]
        );
        let unknown = message_of(&protocols, &[("blazorpack".into(), given)]);
        assert_eq!(
            unknown.unwrap_err(),
            "no frame in a protocol this hub speaks (given: [\"blazorpack\"])"
        );
        assert!(message_of(&protocols, &[("json".into(), Bytes::from_static(b"{\x1e"))]).is_err());
    }
}
