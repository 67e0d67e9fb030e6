//! The connection: starting it (negotiate, transport, handshake), the task that
//! drives it, calls and their Completions, handlers, reconnecting, stopping.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::HeaderValue;
use signal_core::invoker::RawItemStream;
use signal_core::{
    Arguments, CancelInvocation, ClientHandler, Completion, CompletionOutcome, FrameReader,
    HandshakeRequest, HandshakeResponse, HubMessage, Invocation, InvokeError, Invoker, Payload,
    RawUpload, RecordReader, StreamInvocation, StreamItem, TransferFormat, TransportType,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use url::Url;

use crate::builder::{Config, HubConnectionBuilder};
use crate::error::Error;
use crate::negotiate::{connect_url, negotiate};
use crate::retry::RetryContext;
use crate::transport::{self, Endpoint, Transport};

/// How often received messages are acknowledged under stateful reconnect, as the
/// JavaScript client batches its Acks.
const ACK_INTERVAL: Duration = Duration::from_secs(1);

/// The text the official clients answer a client-result call with when no
/// handler returned a value.
const NO_RESULT: &str = "Client didn't provide a result.";

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not started, stopped, or given up.
    Disconnected,
    /// `start` is in progress.
    Connecting,
    /// Calls can be made.
    Connected,
    /// The connection was lost and automatic reconnect is trying again.
    Reconnecting,
    /// `stop` is in progress.
    Disconnecting,
}

type UntypedHandler = Arc<
    dyn Fn(Arguments) -> Pin<Box<dyn Future<Output = Result<Option<Payload>, String>> + Send>>
        + Send
        + Sync,
>;

enum Pending {
    Invoke(oneshot::Sender<Result<Option<Payload>, InvokeError>>),
    Stream(mpsc::UnboundedSender<Result<Payload, InvokeError>>),
}

/// Tells a caller its message is on the transport, or why not.
type SendAck = oneshot::Sender<Result<(), Error>>;

enum Command {
    Send(HubMessage, Option<SendAck>),
    Stop(oneshot::Sender<()>),
}

struct Shared {
    config: Config,
    http: reqwest::Client,
    state: watch::Sender<ConnectionState>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<String, Pending>>,
    commands: Mutex<Option<mpsc::UnboundedSender<Command>>>,
    connection_id: Mutex<Option<String>>,
    transport: Mutex<Option<TransportType>>,
    typed: RwLock<Vec<Arc<dyn ClientHandler>>>,
    untyped: RwLock<HashMap<String, Vec<UntypedHandler>>>,
    events: RwLock<Events>,
}

type ReconnectingCallback = Arc<dyn Fn(&Error) + Send + Sync>;
type ReconnectedCallback = Arc<dyn Fn(Option<&str>) + Send + Sync>;
type ClosedCallback = Arc<dyn Fn(Option<&Error>) + Send + Sync>;

/// The lifecycle callbacks.
#[derive(Default)]
struct Events {
    reconnecting: Vec<ReconnectingCallback>,
    reconnected: Vec<ReconnectedCallback>,
    closed: Vec<ClosedCallback>,
}

/// A connection to a hub. Cheap to clone: clones share the connection, which is
/// stopped when the last clone is dropped (a handler or callback that holds a
/// clone keeps it alive: stop such a connection with [`stop`](Self::stop)).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use signal_client::HubConnection;
/// let connection = HubConnection::builder("http://localhost:5000/chat").build()?;
/// connection.start().await?;
/// let members: Vec<String> = connection.invoke("joinRoom", ("ada", "lobby")).await?;
/// connection.stop().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HubConnection {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

/// Stops the connection when the last [`HubConnection`] clone goes away.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(commands) = self.0.commands.lock().unwrap().take() {
            let (ack, _) = oneshot::channel();
            let _ = commands.send(Command::Stop(ack));
        }
    }
}

impl fmt::Debug for HubConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubConnection")
            .field("url", &self.shared.config.url.as_str())
            .field("state", &self.state())
            .field("connection_id", &self.connection_id())
            .finish()
    }
}

impl HubConnection {
    /// A builder for a connection to the hub at `url` (`http(s)://host/path`).
    pub fn builder(url: impl Into<String>) -> HubConnectionBuilder {
        HubConnectionBuilder::new(url)
    }

    pub(crate) fn new(config: Config) -> Self {
        let shared = Arc::new(Shared {
            config,
            http: reqwest::Client::new(),
            state: watch::Sender::new(ConnectionState::Disconnected),
            next_id: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            commands: Mutex::new(None),
            connection_id: Mutex::new(None),
            transport: Mutex::new(None),
            typed: RwLock::new(Vec::new()),
            untyped: RwLock::new(HashMap::new()),
            events: RwLock::new(Events::default()),
        });
        HubConnection {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        }
    }

    /// The connection's state now.
    pub fn state(&self) -> ConnectionState {
        *self.shared.state.borrow()
    }

    /// A receiver of the connection's states, to await one
    /// (`rx.wait_for(|s| *s == ConnectionState::Connected)`).
    pub fn state_changes(&self) -> watch::Receiver<ConnectionState> {
        self.shared.state.subscribe()
    }

    /// The public id the server gave the connection (none with skipped
    /// negotiation, or before start).
    pub fn connection_id(&self) -> Option<String> {
        self.shared.connection_id.lock().unwrap().clone()
    }

    /// The transport in use, while connected.
    pub fn transport(&self) -> Option<TransportType> {
        *self.shared.transport.lock().unwrap()
    }

    /// Registers an implementation of a `#[signal::client]` trait, wrapped in the
    /// handler the macro generates (`ChatClientHandler::new(my_client)`): every
    /// method the server calls lands on it, and client results are answered
    /// from its return values.
    pub fn register(&self, handler: impl ClientHandler) -> &Self {
        self.shared.typed.write().unwrap().push(Arc::new(handler));
        self
    }

    /// Handles the client method `method` (matched without regard to ASCII
    /// case) with `handler`, for hubs without a Rust contract. The handler gets
    /// the raw arguments (`arguments.get::<T>(0, "name")`); a value it returns
    /// answers a client-result call, an `Err` fails it with that text.
    pub fn on<F, Fut>(&self, method: &str, handler: F) -> &Self
    where
        F: Fn(Arguments) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<Payload>, String>> + Send + 'static,
    {
        let handler: UntypedHandler = Arc::new(move |arguments| Box::pin(handler(arguments)));
        self.shared
            .untyped
            .write()
            .unwrap()
            .entry(method.to_ascii_lowercase())
            .or_default()
            .push(handler);
        self
    }

    /// Calls `callback` with the reason when the connection is lost and automatic
    /// reconnect starts.
    pub fn on_reconnecting(&self, callback: impl Fn(&Error) + Send + Sync + 'static) -> &Self {
        self.shared
            .events
            .write()
            .unwrap()
            .reconnecting
            .push(Arc::new(callback));
        self
    }

    /// Calls `callback` with the new connection id when automatic reconnect
    /// succeeded.
    pub fn on_reconnected(&self, callback: impl Fn(Option<&str>) + Send + Sync + 'static) -> &Self {
        self.shared
            .events
            .write()
            .unwrap()
            .reconnected
            .push(Arc::new(callback));
        self
    }

    /// Calls `callback` when the connection ends for good: `None` after `stop`
    /// or a clean close by the server, the error otherwise.
    pub fn on_closed(&self, callback: impl Fn(Option<&Error>) + Send + Sync + 'static) -> &Self {
        self.shared
            .events
            .write()
            .unwrap()
            .closed
            .push(Arc::new(callback));
        self
    }

    /// Starts the connection: negotiate, a transport, the handshake. Fails with
    /// the reason when no transport could connect or the handshake is refused.
    pub async fn start(&self) -> Result<(), Error> {
        let shared = &self.shared;
        let mut refused = None;
        shared.state.send_if_modified(|state| {
            if *state == ConnectionState::Disconnected {
                *state = ConnectionState::Connecting;
                true
            } else {
                refused = Some(*state);
                false
            }
        });
        if let Some(state) = refused {
            return Err(Error::AlreadyStarted(state));
        }
        match connect(shared).await {
            Ok(link) => {
                let (tx, rx) = mpsc::unbounded_channel();
                *shared.commands.lock().unwrap() = Some(tx);
                link.publish(shared);
                shared.state.send_replace(ConnectionState::Connected);
                tokio::spawn(Driver::new(shared.clone(), link, rx).run());
                Ok(())
            }
            Err(error) => {
                shared.state.send_replace(ConnectionState::Disconnected);
                Err(error)
            }
        }
    }

    /// Stops the connection gracefully: a Close message, then the transport's
    /// own goodbye. Calls still waiting fail. Returns when it is disconnected.
    pub async fn stop(&self) {
        let commands = self.shared.commands.lock().unwrap().clone();
        if let Some(commands) = commands {
            let (ack, done) = oneshot::channel();
            if commands.send(Command::Stop(ack)).is_ok() {
                let _ = done.await;
            }
        }
        let mut states = self.shared.state.subscribe();
        let _ = states
            .wait_for(|s| matches!(s, ConnectionState::Disconnected))
            .await;
    }

    /// Invokes the hub method `method` with `arguments` (a tuple, or `()`) and
    /// decodes its result: the untyped path, for hubs without a Rust contract.
    pub async fn invoke<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        arguments: impl IntoArguments,
    ) -> Result<T, InvokeError> {
        let result = Invoker::invoke(self, method, arguments.into_arguments()).await?;
        result
            .unwrap_or_else(Payload::null)
            .decode()
            .map_err(InvokeError::Deserialize)
    }

    /// Sends an invocation of `method` without waiting for its Completion.
    pub async fn send(
        &self,
        method: &str,
        arguments: impl IntoArguments,
    ) -> Result<(), InvokeError> {
        Invoker::send(self, method, arguments.into_arguments()).await
    }

    /// Invokes the streaming hub method `method`; dropping the stream cancels it.
    pub async fn stream<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        arguments: impl IntoArguments,
    ) -> Result<impl Stream<Item = Result<T, InvokeError>> + Send + 'static, InvokeError> {
        let raw = Invoker::stream(self, method, arguments.into_arguments()).await?;
        Ok(raw.map(|item| item.and_then(|p| p.decode().map_err(InvokeError::Deserialize))))
    }

    fn next_id(&self) -> String {
        self.shared
            .next_id
            .fetch_add(1, Ordering::Relaxed)
            .to_string()
    }

    /// Hands `message` to the driver; resolves once it is on the transport.
    async fn submit(&self, message: HubMessage) -> Result<(), InvokeError> {
        let commands = self.shared.commands.lock().unwrap().clone();
        let Some(commands) = commands else {
            return Err(InvokeError::Connection(
                Error::NotConnected(self.state()).to_string(),
            ));
        };
        let (ack, sent) = oneshot::channel();
        commands
            .send(Command::Send(message, Some(ack)))
            .map_err(|_| InvokeError::Connection(Error::NotConnected(self.state()).to_string()))?;
        match sent.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(InvokeError::Connection(error.to_string())),
            Err(_) => Err(InvokeError::Connection(Error::Stopped.to_string())),
        }
    }

    fn forget(&self, id: &str) {
        self.shared.pending.lock().unwrap().remove(id);
    }

    /// Sends each upload as StreamItems then a Completion, in tasks of their own.
    fn spawn_uploads(&self, ids: Vec<String>, uploads: Vec<RawUpload>) {
        for (id, mut upload) in ids.into_iter().zip(uploads) {
            let connection = self.clone_weak();
            tokio::spawn(async move {
                while let Some(item) = upload.next().await {
                    let Some(connection) = connection.upgrade() else {
                        return;
                    };
                    let message = HubMessage::StreamItem(StreamItem::new(id.clone(), item));
                    if connection.submit(message).await.is_err() {
                        return;
                    }
                }
                if let Some(connection) = connection.upgrade() {
                    let _ = connection
                        .submit(HubMessage::Completion(Completion::void(id)))
                        .await;
                }
            });
        }
    }

    fn clone_weak(&self) -> WeakConnection {
        WeakConnection {
            shared: Arc::downgrade(&self.shared),
            owner: Arc::downgrade(&self._owner),
        }
    }

    async fn invoke_inner(
        &self,
        method: &str,
        arguments: Arguments,
        uploads: Vec<RawUpload>,
    ) -> Result<Option<Payload>, InvokeError> {
        let id = self.next_id();
        let stream_ids: Vec<String> = uploads.iter().map(|_| self.next_id()).collect();
        let (tx, rx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .unwrap()
            .insert(id.clone(), Pending::Invoke(tx));
        let mut invocation = Invocation::new(method, arguments);
        invocation.invocation_id = Some(id.clone());
        invocation.stream_ids = stream_ids.clone();
        if let Err(error) = self.submit(HubMessage::Invocation(invocation)).await {
            self.forget(&id);
            return Err(error);
        }
        self.spawn_uploads(stream_ids, uploads);
        let answer = match self.shared.config.invocation_timeout {
            Some(limit) => match tokio::time::timeout(limit, rx).await {
                Ok(answer) => answer,
                Err(_) => {
                    // A Completion arriving later finds nothing and is ignored.
                    self.forget(&id);
                    return Err(InvokeError::Timeout(limit));
                }
            },
            None => rx.await,
        };
        match answer {
            Ok(result) => result,
            Err(_) => Err(InvokeError::Connection(Error::Stopped.to_string())),
        }
    }

    async fn stream_inner(
        &self,
        method: &str,
        arguments: Arguments,
        uploads: Vec<RawUpload>,
    ) -> Result<RawItemStream, InvokeError> {
        let id = self.next_id();
        let stream_ids: Vec<String> = uploads.iter().map(|_| self.next_id()).collect();
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared
            .pending
            .lock()
            .unwrap()
            .insert(id.clone(), Pending::Stream(tx));
        let message = HubMessage::StreamInvocation(StreamInvocation {
            invocation_id: id.clone(),
            target: method.to_owned(),
            arguments,
            stream_ids: stream_ids.clone(),
            headers: Default::default(),
        });
        if let Err(error) = self.submit(message).await {
            self.forget(&id);
            return Err(error);
        }
        self.spawn_uploads(stream_ids, uploads);
        Ok(Box::pin(ServerStream {
            id,
            items: rx,
            connection: self.clone_weak(),
        }))
    }
}

/// A connection reference that does not keep it alive (upload tasks, streams).
#[derive(Clone)]
struct WeakConnection {
    shared: std::sync::Weak<Shared>,
    owner: std::sync::Weak<Owner>,
}

impl WeakConnection {
    fn upgrade(&self) -> Option<HubConnection> {
        Some(HubConnection {
            shared: self.shared.upgrade()?,
            _owner: self.owner.upgrade()?,
        })
    }
}

/// A server stream; dropping it before its end sends a CancelInvocation.
struct ServerStream {
    id: String,
    items: mpsc::UnboundedReceiver<Result<Payload, InvokeError>>,
    connection: WeakConnection,
}

impl Stream for ServerStream {
    type Item = Result<Payload, InvokeError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.items.poll_recv(cx)
    }
}

impl Drop for ServerStream {
    fn drop(&mut self) {
        let Some(shared) = self.connection.shared.upgrade() else {
            return;
        };
        // Still pending: the server is still streaming, so tell it to stop.
        if shared.pending.lock().unwrap().remove(&self.id).is_none() {
            return;
        }
        if let Some(commands) = shared.commands.lock().unwrap().as_ref() {
            let cancel = HubMessage::CancelInvocation(CancelInvocation {
                invocation_id: self.id.clone(),
                headers: Default::default(),
            });
            let _ = commands.send(Command::Send(cancel, None));
        }
    }
}

/// Arguments of an untyped call: `()`, a tuple of up to six values, or
/// [`Arguments`] built by hand.
pub trait IntoArguments {
    /// The arguments, each to be encoded by the connection's protocol.
    fn into_arguments(self) -> Arguments;
}

impl IntoArguments for Arguments {
    fn into_arguments(self) -> Arguments {
        self
    }
}

macro_rules! tuple_arguments {
    ($($name:ident),*) => {
        impl<$($name: serde::Serialize + Send + Sync + 'static),*> IntoArguments for ($($name,)*) {
            #[allow(non_snake_case)]
            fn into_arguments(self) -> Arguments {
                let ($($name,)*) = self;
                Arguments::new(vec![$(Payload::value($name)),*])
            }
        }
    };
}

tuple_arguments!();
tuple_arguments!(A);
tuple_arguments!(A, B);
tuple_arguments!(A, B, C);
tuple_arguments!(A, B, C, D);
tuple_arguments!(A, B, C, D, E);
tuple_arguments!(A, B, C, D, E, F);

impl Invoker for HubConnection {
    fn invoke(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> impl Future<Output = Result<Option<Payload>, InvokeError>> + Send {
        self.invoke_inner(method, arguments, Vec::new())
    }

    fn send(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> impl Future<Output = Result<(), InvokeError>> + Send {
        self.submit(HubMessage::Invocation(Invocation::new(method, arguments)))
    }

    fn stream(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> impl Future<Output = Result<RawItemStream, InvokeError>> + Send {
        self.stream_inner(method, arguments, Vec::new())
    }

    fn invoke_with_uploads(
        &self,
        method: &str,
        arguments: Arguments,
        uploads: Vec<RawUpload>,
    ) -> impl Future<Output = Result<Option<Payload>, InvokeError>> + Send {
        self.invoke_inner(method, arguments, uploads)
    }

    fn stream_with_uploads(
        &self,
        method: &str,
        arguments: Arguments,
        uploads: Vec<RawUpload>,
    ) -> impl Future<Output = Result<RawItemStream, InvokeError>> + Send {
        self.stream_inner(method, arguments, uploads)
    }
}

/// A started transport after the handshake, with what the driver needs of it.
struct Link {
    transport: Transport,
    reader: FrameReader,
    /// Bytes that followed the handshake answer in its chunk.
    leftover: Bytes,
    connection_id: Option<String>,
    /// The URL that reopens this connection (stateful reconnect).
    endpoint: Endpoint,
    stateful: bool,
}

impl Link {
    fn publish(&self, shared: &Shared) {
        *shared.connection_id.lock().unwrap() = self.connection_id.clone();
        *shared.transport.lock().unwrap() = Some(self.transport.kind);
    }
}

/// Negotiates (unless skipped), connects the first transport that works, in
/// the server's order among those allowed, and completes the handshake.
async fn connect(shared: &Shared) -> Result<Link, Error> {
    let config = &shared.config;
    let format = config.protocol.transfer_format();
    let mut headers = config.headers.clone();
    let token = match &config.access_token {
        Some(provider) => provider().await,
        None => None,
    };
    if config.skip_negotiation {
        if !config.transports.contains(&TransportType::WebSockets) {
            return Err(Error::NoTransport(
                "negotiation can be skipped only with the WebSockets transport".into(),
            ));
        }
        set_bearer(&mut headers, token.as_deref())?;
        let endpoint = endpoint(shared, config.url.clone(), headers);
        let transport = transport::connect(TransportType::WebSockets, &endpoint)
            .await
            .map_err(|reason| Error::Transport {
                transport: TransportType::WebSockets,
                reason,
            })?;
        return handshake(shared, transport, None, endpoint, false).await;
    }
    let mut failures = Vec::new();
    let mut negotiated = Some(
        negotiate(
            &shared.http,
            config.url.clone(),
            &headers,
            token.clone(),
            config.stateful_reconnect,
            config.request_timeout,
        )
        .await?,
    );
    let order: Vec<(TransportType, Vec<TransferFormat>)> = negotiated
        .as_ref()
        .map(|n| n.transports.clone())
        .unwrap_or_default();
    for (kind, formats) in order {
        if !config.transports.contains(&kind) {
            continue;
        }
        if !formats.contains(&format) {
            failures.push(format!("{kind} cannot carry {format} messages"));
            continue;
        }
        // After a failed transport the connection is gone: negotiate afresh.
        let current = match negotiated.take() {
            Some(current) => current,
            None => {
                negotiate(
                    &shared.http,
                    config.url.clone(),
                    &headers,
                    token.clone(),
                    config.stateful_reconnect,
                    config.request_timeout,
                )
                .await?
            }
        };
        let mut headers = headers.clone();
        set_bearer(
            &mut headers,
            current.access_token.as_deref().or(token.as_deref()),
        )?;
        let url = connect_url(&current.url, current.token.as_deref());
        let endpoint = endpoint(shared, url, headers);
        match transport::connect(kind, &endpoint).await {
            Ok(transport) => {
                let stateful = current.stateful_reconnect && kind == TransportType::WebSockets;
                return handshake(shared, transport, current.connection_id, endpoint, stateful)
                    .await;
            }
            Err(reason) => {
                tracing::debug!(transport = %kind, %reason, "transport failed; trying the next");
                failures.push(format!("{kind}: {reason}"));
            }
        }
    }
    if failures.is_empty() {
        failures.push("the server offers none of the transports the client allows".into());
    }
    Err(Error::NoTransport(failures.join("; ")))
}

fn endpoint(shared: &Shared, url: Url, headers: http::HeaderMap) -> Endpoint {
    Endpoint {
        url,
        headers,
        http: shared.http.clone(),
        timeout: shared.config.request_timeout,
    }
}

fn set_bearer(headers: &mut http::HeaderMap, token: Option<&str>) -> Result<(), Error> {
    if let Some(token) = token {
        let value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
            Error::Refused("the access token holds characters a header cannot carry".into())
        })?;
        headers.insert(http::header::AUTHORIZATION, value);
    }
    Ok(())
}

/// Sends the handshake request and reads the answer.
async fn handshake(
    shared: &Shared,
    mut transport: Transport,
    connection_id: Option<String>,
    endpoint: Endpoint,
    stateful: bool,
) -> Result<Link, Error> {
    let config = &shared.config;
    let protocol = &config.protocol;
    let request = HandshakeRequest {
        protocol: protocol.name().to_owned(),
        version: if stateful { protocol.max_version() } else { 1 },
    };
    let kind = transport.kind;
    transport
        .send(Bytes::from(request.to_record()), TransferFormat::Text)
        .map_err(|()| Error::Transport {
            transport: kind,
            reason: "the transport closed before the handshake".into(),
        })?;
    let timeout = config.handshake_timeout;
    let mut records = RecordReader::new(config.max_message_size);
    let answer = tokio::time::timeout(timeout, async {
        loop {
            let chunk = match transport.incoming.recv().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(reason)) => {
                    return Err(Error::Transport {
                        transport: kind,
                        reason,
                    });
                }
                None => {
                    return Err(Error::HandshakeMalformed(
                        "the server closed the connection without answering the handshake".into(),
                    ));
                }
            };
            match records.push_until_record(chunk) {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => continue,
                Err(error) => return Err(Error::HandshakeMalformed(error.to_string())),
            }
        }
    })
    .await
    .map_err(|_| Error::Timeout(timeout))??;
    let (record, leftover) = answer;
    let response: HandshakeResponse = serde_json::from_slice(&record).map_err(|e| {
        Error::HandshakeMalformed(format!(
            "{e}: {}",
            String::from_utf8_lossy(&record[..record.len().min(200)])
        ))
    })?;
    if let Some(error) = response.error {
        transport.close().await;
        return Err(Error::HandshakeRefused(error));
    }
    Ok(Link {
        reader: protocol.reader(config.max_message_size),
        transport,
        leftover,
        connection_id,
        endpoint,
        stateful,
    })
}

/// How a link ended.
enum End {
    /// `stop` was called (or every handle dropped).
    Stopped(Option<oneshot::Sender<()>>),
    /// The link failed; reconnect when allowed.
    Failed { error: Error, allow_reconnect: bool },
    /// The server sent a Close: with an error or without (a clean close, as
    /// at its shutdown), allowing a reconnect or not.
    ServerClose {
        error: Option<String>,
        allow_reconnect: bool,
    },
}

/// How a stateful reconnect attempt ended.
enum Resumed {
    /// On a new socket, replayed.
    Yes,
    /// It could not: reconnect afresh, or close.
    No,
    /// `stop` was called meanwhile.
    Stopped(Option<oneshot::Sender<()>>),
}

/// Stateful reconnect's bookkeeping, in both directions.
#[derive(Default)]
struct Sequencing {
    /// Sent sequenced messages not yet acknowledged: their ids and bytes.
    unacked: VecDeque<(u64, Bytes)>,
    unacked_bytes: usize,
    next_sent: u64,
    /// The id the next incoming sequenced message has.
    next_received: u64,
    /// The highest id processed.
    processed: u64,
    acked: u64,
}

struct Driver {
    shared: Arc<Shared>,
    link: Link,
    commands: mpsc::UnboundedReceiver<Command>,
    handlers: mpsc::UnboundedSender<Invocation>,
    sequencing: Sequencing,
    next_ping: Instant,
}

impl Driver {
    fn new(shared: Arc<Shared>, link: Link, commands: mpsc::UnboundedReceiver<Command>) -> Self {
        let (handlers, invocations) = mpsc::unbounded_channel();
        tokio::spawn(run_handlers(Arc::downgrade(&shared), invocations));
        let next_ping = Instant::now() + shared.config.keep_alive_interval;
        Driver {
            shared,
            link,
            commands,
            handlers,
            sequencing: Sequencing {
                next_sent: 1,
                next_received: 1,
                ..Default::default()
            },
            next_ping,
        }
    }

    async fn run(mut self) {
        loop {
            let end = self.drive().await;
            let error = match end {
                End::Stopped(ack) => {
                    self.finish(None).await;
                    if let Some(ack) = ack {
                        let _ = ack.send(());
                    }
                    return;
                }
                End::Failed {
                    error,
                    allow_reconnect,
                } => (error, allow_reconnect, false),
                End::ServerClose {
                    error: Some(error),
                    allow_reconnect,
                } => (Error::ServerClosed(error), allow_reconnect, true),
                // A clean close ends without an error, as in the official
                // clients; a reconnect, when allowed, reports this reason.
                End::ServerClose {
                    error: None,
                    allow_reconnect,
                } => (
                    Error::ConnectionLost("the server closed the connection".into()),
                    allow_reconnect,
                    true,
                ),
            };
            let (error, allow_reconnect, by_server) = error;
            let clean = by_server && !matches!(error, Error::ServerClosed(_));
            tracing::debug!(%error, "the connection was lost");
            // A connection the server closed cannot be resumed.
            if self.link.stateful && !by_server {
                match self.resume(&error).await {
                    Resumed::Yes => continue,
                    Resumed::No => {}
                    Resumed::Stopped(ack) => {
                        self.finish(None).await;
                        if let Some(ack) = ack {
                            let _ = ack.send(());
                        }
                        return;
                    }
                }
            }
            self.fail_pending(&error);
            self.sequencing = Sequencing {
                next_sent: 1,
                next_received: 1,
                ..Default::default()
            };
            match &self.shared.config.retry_policy {
                Some(policy) if allow_reconnect => {
                    let policy = policy.clone();
                    if self.reconnect(&*policy, error.clone()).await {
                        continue;
                    }
                    if self
                        .shared
                        .state
                        .borrow()
                        .eq(&ConnectionState::Disconnected)
                    {
                        return;
                    }
                    self.finish(Some(error)).await;
                    return;
                }
                _ => {
                    self.finish((!clean).then_some(error)).await;
                    return;
                }
            }
        }
    }

    /// Runs the link until it ends.
    async fn drive(&mut self) -> End {
        let leftover = std::mem::take(&mut self.link.leftover);
        if !leftover.is_empty()
            && let Some(end) = self.receive(leftover)
        {
            return end;
        }
        let config = self.shared.config.clone();
        // Long polling keeps itself alive: no Pings, no server timeout, as in
        // the official clients.
        let inherent = self.link.transport.kind == TransportType::LongPolling;
        let mut deadline = Instant::now() + config.server_timeout;
        self.next_ping = Instant::now() + config.keep_alive_interval;
        let mut ack_tick = tokio::time::interval(ACK_INTERVAL);
        loop {
            tokio::select! {
                // Over the stateful-reconnect buffer: wait for the server's Ack
                // before taking more to send.
                command = self.commands.recv(),
                    if self.sequencing.unacked_bytes <= config.stateful_buffer => match command {
                    None => return End::Stopped(None),
                    Some(Command::Stop(ack)) => {
                        let _ = self.write(&HubMessage::Close(Default::default()));
                        return End::Stopped(Some(ack));
                    }
                    Some(Command::Send(message, ack)) => {
                        let result = self.write(&message);
                        let failed = result.as_ref().err().cloned();
                        if let Some(ack) = ack {
                            let _ = ack.send(result);
                        }
                        if let Some(error) = failed {
                            return End::Failed { error, allow_reconnect: true };
                        }
                    }
                },
                chunk = self.link.transport.incoming.recv() => {
                    deadline = Instant::now() + config.server_timeout;
                    match chunk {
                        Some(Ok(chunk)) => {
                            if let Some(end) = self.receive(chunk) {
                                return end;
                            }
                        }
                        Some(Err(reason)) => {
                            return End::Failed {
                                error: Error::ConnectionLost(reason),
                                allow_reconnect: true,
                            };
                        }
                        None => {
                            return End::Failed {
                                error: Error::ConnectionLost(
                                    "the server ended the transport without a Close message".into(),
                                ),
                                allow_reconnect: true,
                            };
                        }
                    }
                }
                _ = tokio::time::sleep_until(self.next_ping), if !inherent => {
                    if let Err(error) = self.write(&HubMessage::Ping) {
                        return End::Failed { error, allow_reconnect: true };
                    }
                }
                _ = tokio::time::sleep_until(deadline), if !inherent => {
                    return End::Failed {
                        error: Error::ServerTimeout(config.server_timeout),
                        allow_reconnect: true,
                    };
                }
                _ = ack_tick.tick(), if self.link.stateful => {
                    let processed = self.sequencing.processed;
                    if processed > self.sequencing.acked {
                        self.sequencing.acked = processed;
                        if let Err(error) = self.write(&HubMessage::Ack { sequence_id: processed }) {
                            return End::Failed { error, allow_reconnect: true };
                        }
                    }
                }
            }
        }
    }

    /// Encodes and queues `message` on the transport.
    fn write(&mut self, message: &HubMessage) -> Result<(), Error> {
        let protocol = &self.shared.config.protocol;
        let bytes = protocol
            .to_bytes(message)
            .map_err(|e| Error::Protocol(format!("a message could not be encoded: {e}")))?;
        if self.link.stateful && message.is_sequenced() {
            let id = self.sequencing.next_sent;
            self.sequencing.next_sent += 1;
            self.sequencing.unacked_bytes += bytes.len();
            self.sequencing.unacked.push_back((id, bytes.clone()));
        }
        self.next_ping = Instant::now() + self.shared.config.keep_alive_interval;
        let kind = self.link.transport.kind;
        self.link
            .transport
            .send(bytes, protocol.transfer_format())
            .map_err(|()| Error::ConnectionLost(format!("the {kind} transport has closed")))
    }

    /// Reads a chunk's messages; `Some` when one of them ends the link.
    fn receive(&mut self, chunk: Bytes) -> Option<End> {
        let messages = match self.link.reader.push_messages(chunk) {
            Ok(messages) => messages,
            Err(error) => {
                return Some(End::Failed {
                    error: Error::Protocol(error.to_string()),
                    allow_reconnect: false,
                });
            }
        };
        for bytes in messages {
            let message = match self.shared.config.protocol.parse(&bytes) {
                Ok(Some(message)) => message,
                // A message type this client does not know: ignored, as the
                // protocol says.
                Ok(None) => continue,
                Err(error) => {
                    return Some(End::Failed {
                        error: Error::Protocol(error.to_string()),
                        allow_reconnect: false,
                    });
                }
            };
            if let Some(end) = self.dispatch(message) {
                return Some(end);
            }
        }
        None
    }

    fn dispatch(&mut self, message: HubMessage) -> Option<End> {
        if self.link.stateful && message.is_sequenced() {
            let id = self.sequencing.next_received;
            self.sequencing.next_received += 1;
            if id <= self.sequencing.processed {
                // Replayed after a reconnect, and processed before it.
                return None;
            }
            self.sequencing.processed = id;
        }
        match message {
            HubMessage::Invocation(invocation) => {
                let _ = self.handlers.send(invocation);
            }
            HubMessage::StreamItem(item) => {
                let pending = self.shared.pending.lock().unwrap();
                match pending.get(&item.invocation_id) {
                    Some(Pending::Stream(items)) => {
                        let _ = items.send(Ok(item.item));
                    }
                    Some(Pending::Invoke(_)) => {
                        tracing::warn!(id = %item.invocation_id, "a stream item for an invocation that is no stream; ignored");
                    }
                    None => {
                        tracing::debug!(id = %item.invocation_id, "a stream item for no pending stream; ignored")
                    }
                }
            }
            HubMessage::Completion(completion) => {
                let pending = self
                    .shared
                    .pending
                    .lock()
                    .unwrap()
                    .remove(&completion.invocation_id);
                match pending {
                    Some(Pending::Invoke(tx)) => {
                        let _ = tx.send(match completion.outcome {
                            CompletionOutcome::Void => Ok(None),
                            CompletionOutcome::Result(payload) => Ok(Some(payload)),
                            CompletionOutcome::Error(error) => Err(InvokeError::Hub(error)),
                        });
                    }
                    Some(Pending::Stream(items)) => {
                        if let CompletionOutcome::Error(error) = completion.outcome {
                            let _ = items.send(Err(InvokeError::Hub(error)));
                        }
                    }
                    None => {
                        tracing::debug!(id = %completion.invocation_id, "a completion for no pending invocation; ignored")
                    }
                }
            }
            HubMessage::StreamInvocation(invocation) => {
                // Clients offer no streaming methods: refuse, so the server
                // does not wait.
                let refusal = Completion::error(
                    invocation.invocation_id,
                    "This client does not offer streaming methods.",
                );
                if let Err(error) = self.write(&HubMessage::Completion(refusal)) {
                    return Some(End::Failed {
                        error,
                        allow_reconnect: true,
                    });
                }
            }
            HubMessage::CancelInvocation(_) | HubMessage::Ping => {}
            HubMessage::Close(close) => {
                return Some(End::ServerClose {
                    error: close.error,
                    allow_reconnect: close.allow_reconnect,
                });
            }
            HubMessage::Ack { sequence_id } => {
                while let Some((id, bytes)) = self.sequencing.unacked.front() {
                    if *id > sequence_id {
                        break;
                    }
                    self.sequencing.unacked_bytes -= bytes.len();
                    self.sequencing.unacked.pop_front();
                }
            }
            HubMessage::Sequence { sequence_id } => {
                if sequence_id > self.sequencing.processed + 1 {
                    return Some(End::Failed {
                        error: Error::Protocol(format!(
                            "the server resumes at message {sequence_id}, but only {} arrived: messages were lost",
                            self.sequencing.processed
                        )),
                        allow_reconnect: false,
                    });
                }
                self.sequencing.next_received = sequence_id;
            }
        }
        None
    }

    /// Stateful reconnect: reopens the WebSocket on the same connection and
    /// replays what the server has not acknowledged, within the server timeout.
    /// Messages sent meanwhile wait and go out after the replay; `stop` ends it.
    async fn resume(&mut self, error: &Error) -> Resumed {
        if matches!(error, Error::ServerClosed(_) | Error::Protocol(_)) {
            return Resumed::No;
        }
        let deadline = Instant::now() + self.shared.config.server_timeout;
        let mut delay = Duration::ZERO;
        let mut waiting: Vec<(HubMessage, Option<SendAck>)> = Vec::new();
        let resumed = 'attempts: loop {
            let wake = Instant::now() + delay;
            if wake >= deadline {
                break 'attempts Resumed::No;
            }
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => break,
                    command = self.commands.recv() => match command {
                        Some(Command::Send(message, ack)) => waiting.push((message, ack)),
                        Some(Command::Stop(ack)) => break 'attempts Resumed::Stopped(Some(ack)),
                        None => break 'attempts Resumed::Stopped(None),
                    }
                }
            }
            delay = (delay * 2).max(Duration::from_millis(250));
            let attempt = transport::connect(TransportType::WebSockets, &self.link.endpoint);
            let Ok(Ok(transport)) = tokio::time::timeout_at(deadline, attempt).await else {
                continue;
            };
            self.link.transport = transport;
            self.link.reader = self
                .shared
                .config
                .protocol
                .reader(self.shared.config.max_message_size);
            let first = self
                .sequencing
                .unacked
                .front()
                .map_or(self.sequencing.next_sent, |(id, _)| *id);
            let format = self.shared.config.protocol.transfer_format();
            let sequence = HubMessage::Sequence { sequence_id: first };
            let Ok(bytes) = self.shared.config.protocol.to_bytes(&sequence) else {
                break 'attempts Resumed::No;
            };
            let mut sent = self.link.transport.send(bytes, format).is_ok();
            for (_, bytes) in &self.sequencing.unacked {
                sent &= self.link.transport.send(bytes.clone(), format).is_ok();
            }
            if sent {
                tracing::debug!(
                    replayed = self.sequencing.unacked.len(),
                    "stateful reconnect"
                );
                break 'attempts Resumed::Yes;
            }
        };
        for (message, ack) in waiting {
            let result = match resumed {
                Resumed::Yes => self.write(&message),
                _ => Err(Error::ConnectionLost(
                    "the connection was lost and could not be resumed".into(),
                )),
            };
            if let Some(ack) = ack {
                let _ = ack.send(result);
            }
        }
        resumed
    }

    /// Automatic reconnect: new negotiate, transport and handshake, as the
    /// policy allows. `true` once reconnected.
    async fn reconnect(&mut self, policy: &dyn crate::retry::RetryPolicy, error: Error) -> bool {
        let shared = self.shared.clone();
        shared.state.send_replace(ConnectionState::Reconnecting);
        *shared.transport.lock().unwrap() = None;
        let callbacks = shared.events.read().unwrap().reconnecting.clone();
        for callback in callbacks {
            callback(&error);
        }
        let started = Instant::now();
        let mut context = RetryContext {
            previous_retry_count: 0,
            elapsed: Duration::ZERO,
            reason: error,
        };
        while let Some(delay) = policy.next_retry_delay(&context) {
            // Wait, answering commands: sends fail at once, stop ends it all.
            let wake = Instant::now() + delay;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => break,
                    command = self.commands.recv() => match command {
                        Some(Command::Send(_, ack)) => {
                            if let Some(ack) = ack {
                                let _ = ack.send(Err(Error::NotConnected(ConnectionState::Reconnecting)));
                            }
                        }
                        Some(Command::Stop(ack)) => {
                            self.finish(None).await;
                            let _ = ack.send(());
                            return false;
                        }
                        None => {
                            self.finish(None).await;
                            return false;
                        }
                    }
                }
            }
            match connect(&shared).await {
                Ok(link) => {
                    link.publish(&shared);
                    let connection_id = link.connection_id.clone();
                    let old = std::mem::replace(&mut self.link, link);
                    drop(old);
                    shared.state.send_replace(ConnectionState::Connected);
                    let callbacks = shared.events.read().unwrap().reconnected.clone();
                    for callback in callbacks {
                        callback(connection_id.as_deref());
                    }
                    return true;
                }
                Err(error) => {
                    tracing::debug!(%error, "a reconnect attempt failed");
                    context.previous_retry_count += 1;
                    context.elapsed = started.elapsed();
                    context.reason = error;
                }
            }
        }
        false
    }

    fn fail_pending(&self, error: &Error) {
        let pending: Vec<Pending> = self
            .shared
            .pending
            .lock()
            .unwrap()
            .drain()
            .map(|(_, p)| p)
            .collect();
        for pending in pending {
            let error = InvokeError::Connection(error.to_string());
            match pending {
                Pending::Invoke(tx) => {
                    let _ = tx.send(Err(error));
                }
                Pending::Stream(items) => {
                    let _ = items.send(Err(error));
                }
            }
        }
    }

    /// The end: fails what waits, closes the transport, reports the reason.
    async fn finish(&mut self, error: Option<Error>) {
        self.shared
            .state
            .send_replace(ConnectionState::Disconnecting);
        *self.shared.commands.lock().unwrap() = None;
        self.fail_pending(error.as_ref().unwrap_or(&Error::Stopped));
        // Answer what was queued meanwhile.
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Send(_, Some(ack)) => {
                    let _ = ack.send(Err(Error::Stopped));
                }
                Command::Stop(ack) => {
                    let _ = ack.send(());
                }
                Command::Send(_, None) => {}
            }
        }
        self.link.transport.close().await;
        *self.shared.transport.lock().unwrap() = None;
        self.shared
            .state
            .send_replace(ConnectionState::Disconnected);
        let callbacks = self.shared.events.read().unwrap().closed.clone();
        for callback in callbacks {
            callback(error.as_ref());
        }
    }
}

/// Runs the client methods the server calls, one at a time in arrival order,
/// and answers client-result calls.
async fn run_handlers(
    shared: std::sync::Weak<Shared>,
    mut invocations: mpsc::UnboundedReceiver<Invocation>,
) {
    while let Some(invocation) = invocations.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let method = invocation.target.clone();
        let mut calls = Vec::new();
        for handler in shared.typed.read().unwrap().iter() {
            if let Some(call) = handler.clone().call(&method, invocation.arguments.clone()) {
                calls.push(call);
            }
        }
        if let Some(handlers) = shared
            .untyped
            .read()
            .unwrap()
            .get(&method.to_ascii_lowercase())
        {
            calls.extend(handlers.iter().map(|h| h(invocation.arguments.clone())));
        }
        if calls.is_empty() {
            tracing::warn!(%method, "no client method with this name is registered");
        }
        let mut answer: Option<Result<Option<Payload>, String>> = None;
        for call in calls {
            let result = call.await;
            if let Err(error) = &result {
                tracing::warn!(%method, %error, "a client method failed");
            }
            // The last handler's answer wins, as in the official clients.
            answer = Some(result);
        }
        let Some(id) = invocation.invocation_id else {
            continue;
        };
        let completion = match answer {
            Some(Ok(Some(value))) => Completion::result(id, value),
            Some(Ok(None)) | None => Completion::error(id, NO_RESULT),
            Some(Err(error)) => Completion::error(id, error),
        };
        let commands = shared.commands.lock().unwrap().clone();
        if let Some(commands) = commands {
            let _ = commands.send(Command::Send(HubMessage::Completion(completion), None));
        }
    }
}
