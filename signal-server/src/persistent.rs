//! Raw connections: the Persistent Connection API of the original SignalR, on
//! the connection layer that hubs use too. A handler gets each connection — its
//! id, how it connected, its messages as a [`Stream`] and a way to send — and a
//! [`PersistentHandle`] reaches one connection, a group or all of them from
//! anywhere. The official client's `HttpConnection` (not `HubConnection`)
//! connects to it over every transport, in both transfer formats.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use signal_server::persistent::{Connection, PersistentConnection};
//!
//! // Sends every message back to its sender, in the format it came in.
//! async fn echo(mut connection: Connection) {
//!     let sender = connection.sender();
//!     while let Some(message) = connection.next().await {
//!         if sender.send(message).await.is_err() {
//!             break;
//!         }
//!     }
//! }
//!
//! let app: axum::Router = axum::Router::new().nest("/echo", PersistentConnection::new(echo).router());
//! ```

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_util::Stream;
use futures_util::future::Either;
use http::HeaderValue;
use http::request::Parts;
use signal_core::TransportType;
use tokio::sync::mpsc;
use tracing::Instrument;

pub use crate::connection::Message;
use crate::connection::{
    ConnectionId, ConnectionOptions, Duplex, Endpoint, Event, Handler, HandlerFuture, Start,
    TransportClosed, UserIdFn, parse_origins,
};
use crate::frame::Frame;
use crate::lifetime::{
    ConnectionHandle, FrameSink, LocalLifetimeManager, Next, Recipients, SendError, write_batch,
};

/// What runs each raw connection. Implemented for every
/// `Fn(Connection) -> impl Future<Output = ()>`; the connection ends when the
/// future does, or when the client leaves (the message stream then ends).
pub trait ConnectionHandler: Send + Sync + 'static {
    /// Serves one connection to its end.
    fn on_connection(&self, connection: Connection) -> impl Future<Output = ()> + Send + 'static;
}

impl<F, Fut> ConnectionHandler for F
where
    F: Fn(Connection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn on_connection(&self, connection: Connection) -> impl Future<Output = ()> + Send + 'static {
        self(connection)
    }
}

/// A raw connection endpoint, ready to be mounted like a hub:
/// `Router::new().nest("/echo", PersistentConnection::new(handler).router())`.
pub struct PersistentConnection<H: ConnectionHandler> {
    handler: H,
    options: ConnectionOptions,
    user_id: Option<UserIdFn>,
    allowed_origins: Vec<HeaderValue>,
    lifetime: Arc<LocalLifetimeManager>,
}

impl<H: ConnectionHandler> std::fmt::Debug for PersistentConnection<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentConnection")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<H: ConnectionHandler> PersistentConnection<H> {
    /// An endpoint that hands each connection to `handler`.
    pub fn new(handler: H) -> Self {
        PersistentConnection {
            handler,
            options: ConnectionOptions::default(),
            user_id: None,
            allowed_origins: Vec::new(),
            lifetime: Arc::default(),
        }
    }

    /// Changes some options in place.
    #[must_use]
    pub fn configure(mut self, f: impl FnOnce(&mut ConnectionOptions)) -> Self {
        f(&mut self.options);
        self
    }

    /// Sets how a connection's user id is found from its first request.
    #[must_use]
    pub fn user_id(mut self, f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        self.user_id = Some(Arc::new(f));
        self
    }

    /// Allows browsers on these origins to connect across origins, as
    /// [`Hub::allow_origins`](crate::Hub::allow_origins) does.
    pub fn allow_origins<I, T>(
        mut self,
        origins: I,
    ) -> Result<Self, http::header::InvalidHeaderValue>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.allowed_origins.extend(parse_origins(origins)?);
        Ok(self)
    }

    /// A handle that reaches this endpoint's connections from anywhere.
    pub fn handle(&self) -> PersistentHandle {
        PersistentHandle {
            lifetime: self.lifetime.clone(),
        }
    }

    /// The endpoint's routes, to `nest` under its path: `POST /negotiate` and
    /// the transports at `/`.
    pub fn router<S>(self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        self.core_router().0
    }

    /// The handler for ASP.NET SignalR 2.x clients only (`$.connection('/path')`),
    /// at `legacy`'s path: routes to `merge` into the app.
    pub fn legacy_router<S>(self, legacy: crate::legacy::LegacyEndpoint) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        self.routers(legacy).1
    }

    /// One handler and one registry for both client families: the Core
    /// routes (to `nest` under the endpoint's path) and the 2.x routes at
    /// `legacy`'s path (to `merge`).
    pub fn routers<S>(
        self,
        legacy: crate::legacy::LegacyEndpoint,
    ) -> (axum::Router<S>, axum::Router<S>)
    where
        S: Clone + Send + Sync + 'static,
    {
        let (core, handler) = self.core_router();
        let legacy = legacy.raw_router(handler);
        (core, legacy)
    }

    fn core_router<S>(self) -> (axum::Router<S>, Arc<dyn Handler>)
    where
        S: Clone + Send + Sync + 'static,
    {
        // Stateful reconnect belongs to the hub protocol; raw connections end
        // with their transport.
        let mut options = self.options;
        options.stateful_reconnect = false;
        let handler = RawHandler(Arc::new(RawInner {
            handler: self.handler,
            lifetime: self.lifetime,
            max_message_size: options.maximum_receive_message_size,
            queue_capacity: options.outgoing_queue_capacity.max(1),
        }));
        let handler: Arc<dyn Handler> = Arc::new(handler);
        let endpoint = Endpoint::new(options, self.user_id, self.allowed_origins, handler.clone());
        (
            Arc::new(endpoint).router(axum::Router::new(), None),
            handler,
        )
    }
}

struct RawInner<H> {
    handler: H,
    lifetime: Arc<LocalLifetimeManager>,
    max_message_size: usize,
    queue_capacity: usize,
}

struct RawHandler<H>(Arc<RawInner<H>>);

impl<H: ConnectionHandler> Handler for RawHandler<H> {
    fn run(&self, start: Start, duplex: Duplex) -> HandlerFuture {
        let span = tracing::debug_span!("connection", id = %start.id, transport = %start.transport);
        Box::pin(run(self.0.clone(), start, duplex).instrument(span))
    }
}

/// How many received messages may wait for the handler before the server
/// stops reading from the client.
const INCOMING_CAPACITY: usize = 16;

/// Runs one raw connection: the handler on its own task, and here the pump
/// between the transport and the handler's stream and queue.
async fn run<H: ConnectionHandler>(inner: Arc<RawInner<H>>, mut start: Start, mut duplex: Duplex) {
    tracing::debug!(remote = ?start.remote, "connection started");
    let (tx, mut rx) = crate::lifetime::outbox(inner.queue_capacity);
    let handle = Arc::new(ConnectionHandle::new(
        start.id.clone(),
        start.user.clone(),
        start.transport,
        None,
        tx,
        std::time::Duration::ZERO,
    ));
    inner.lifetime.add(handle.clone());
    let (incoming_tx, incoming_rx) = mpsc::channel(INCOMING_CAPACITY);
    let connection = Connection {
        request: start.request.take().unwrap_or_else(|| {
            crate::connection::keep_request(http::Request::new(()).into_parts().0)
        }),
        id: start.id.clone(),
        transport: start.transport,
        user: start.user.clone(),
        remote: start.remote,
        incoming: incoming_rx,
        sender: ConnectionSender(handle.clone()),
    };
    let mut handler = tokio::spawn(inner.handler.on_connection(connection).in_current_span());
    let mut pending: Option<Message> = None;
    let reason = loop {
        tokio::select! {
            _ = &mut handler => break None,
            permit = incoming_tx.reserve(), if pending.is_some() => match permit {
                Ok(permit) => permit.send(pending.take().expect("pending")),
                // The handler stopped reading; what it was not sent is dropped.
                Err(_) => pending = None,
            },
            event = duplex.recv(), if pending.is_none() => match event {
                Some(Event::Data(message)) if message.as_bytes().len() > inner.max_message_size => {
                    break Some(too_large(inner.max_message_size));
                }
                Some(Event::Data(message)) => pending = Some(message),
                Some(Event::Oversized) => break Some(too_large(inner.max_message_size)),
                // Raw connections are never reattachable.
                Some(Event::Lost | Event::Reattached) | None => break None,
            },
            Some(next) = rx.next(true) => match next {
                Next::Closing => break handle.close_error(),
                Next::Frame(frame) => {
                    if write_batch(&mut RawSink(&mut duplex), &mut rx, frame).await.is_err() {
                        break None;
                    }
                }
            },
        }
    };
    if let Some(reason) = &reason {
        tracing::debug!(%reason, "server closed the connection");
    }
    // What the handler queued before the end still goes out.
    while let Some(frame) = rx.try_recv() {
        if RawSink(&mut duplex).feed(frame).await.is_err() {
            break;
        }
    }
    let _ = duplex.flush().await;
    duplex.close_with_reason(reason.as_deref()).await;
    drop(incoming_tx);
    inner.lifetime.remove(&handle);
    tracing::debug!("connection ended");
}

fn too_large(limit: usize) -> String {
    format!("The maximum message size of {limit}B was exceeded.")
}

/// A raw connection's transport as a [`FrameSink`]: raw connections queue raw
/// frames only, which go out as they are.
struct RawSink<'a>(&'a mut Duplex);

impl FrameSink for RawSink<'_> {
    fn feed(&mut self, frame: Frame) -> impl Future<Output = Result<(), TransportClosed>> + Send {
        match frame.outbound(None) {
            Ok(outbound) => Either::Right(self.0.feed(outbound)),
            Err(error) => {
                tracing::error!(%error, "a frame could not be written; dropped");
                Either::Left(std::future::ready(Ok(())))
            }
        }
    }

    fn flush(&mut self) -> impl Future<Output = Result<(), TransportClosed>> + Send {
        self.0.flush()
    }
}

fn frame_of(message: Message) -> Frame {
    match message {
        Message::Text(text) => Frame::text(text),
        Message::Binary(bytes) => Frame::binary(bytes),
    }
}

/// One raw connection, as its handler gets it: who it is, and its messages as
/// a [`Stream`] that ends when the client leaves.
#[derive(Debug)]
pub struct Connection {
    request: Arc<crate::connection::KeptRequest>,
    id: ConnectionId,
    transport: TransportType,
    user: Option<Arc<str>>,
    remote: Option<SocketAddr>,
    incoming: mpsc::Receiver<Message>,
    sender: ConnectionSender,
}

impl Connection {
    /// The connection's public id.
    pub fn id(&self) -> &ConnectionId {
        &self.id
    }

    /// The request the connection started with (for long polling, its first
    /// poll): headers, URI and query, and what middleware (an authentication
    /// layer, say) left in its extensions. As in any handler of a nested axum
    /// router, the URI's path is relative to where the endpoint is mounted.
    pub fn request(&self) -> &Parts {
        self.request.parts()
    }

    /// The transport it uses.
    pub fn transport(&self) -> TransportType {
        self.transport
    }

    /// The user the endpoint's `user_id` function named, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The client's address, when the server was started with connect info
    /// (`into_make_service_with_connect_info`).
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// The next message; `None` once the client has left.
    pub async fn recv(&mut self) -> Option<Message> {
        self.incoming.recv().await
    }

    /// A sender for this connection, to keep or move into other tasks.
    pub fn sender(&self) -> ConnectionSender {
        self.sender.clone()
    }
}

impl Stream for Connection {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Message>> {
        self.incoming.poll_recv(cx)
    }
}

/// Sends to one raw connection.
#[derive(Clone)]
pub struct ConnectionSender(Arc<ConnectionHandle>);

impl std::fmt::Debug for ConnectionSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ConnectionSender").field(&self.0.id).finish()
    }
}

impl ConnectionSender {
    /// Queues a message, waiting while the connection's queue is full.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        if self.0.send(frame_of(message)).await {
            Ok(())
        } else {
            Err(SendError::NotConnected(self.0.id.to_string()))
        }
    }

    /// Ends the connection.
    pub fn close(&self) {
        self.0.close(None);
    }
}

/// Reaches the connections of one [`PersistentConnection`] endpoint from
/// anywhere: one, several, a group, all. Sends never wait: a connection whose
/// queue is full is closed rather than buffered without bound.
#[derive(Clone)]
pub struct PersistentHandle {
    lifetime: Arc<LocalLifetimeManager>,
}

impl std::fmt::Debug for PersistentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentHandle")
            .field("connections", &self.lifetime.len())
            .finish()
    }
}

impl PersistentHandle {
    /// Sends to every connection.
    pub fn send_all(&self, message: Message) {
        self.deliver(Recipients::All { except: Vec::new() }, message);
    }

    /// Sends to every connection but those named.
    pub fn send_all_except(&self, excluded: Vec<ConnectionId>, message: Message) {
        self.deliver(Recipients::All { except: excluded }, message);
    }

    /// Sends to one connection; nothing when it is not connected.
    pub fn send(&self, connection: impl Into<ConnectionId>, message: Message) {
        self.deliver(Recipients::Connections(vec![connection.into()]), message);
    }

    /// Sends to the members of a group.
    pub fn send_group(&self, group: &str, message: Message) {
        self.deliver(
            Recipients::Groups {
                names: vec![group.into()],
                except: Vec::new(),
            },
            message,
        );
    }

    /// Sends to the connections of a user.
    pub fn send_user(&self, user_id: &str, message: Message) {
        self.deliver(Recipients::Users(vec![user_id.into()]), message);
    }

    /// Adds a connection to a group; membership ends with the connection.
    pub fn add_to_group(&self, connection: impl Into<ConnectionId>, group: &str) {
        self.lifetime.add_to_group(&connection.into(), group);
    }

    /// Removes a connection from a group.
    pub fn remove_from_group(&self, connection: impl Into<ConnectionId>, group: &str) {
        self.lifetime.remove_from_group(&connection.into(), group);
    }

    /// How many connections are connected now.
    pub fn connection_count(&self) -> usize {
        self.lifetime.len()
    }

    fn deliver(&self, recipients: Recipients, message: Message) {
        self.lifetime.deliver(&recipients, &frame_of(message));
    }
}
