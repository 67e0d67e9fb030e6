//! The duplex stream a connection handler gets: what the client sends, as it
//! arrives on whatever transport, and a way to write back. For a connection that
//! may reconnect (stateful reconnect), the transport underneath can be swapped for
//! a new one; the handler sees `Lost` and `Reattached` events, never the swap.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Sleep, sleep};

use crate::frame::Outbound;

/// The transport could not be written to: the client has gone.
#[derive(Debug)]
pub(crate) struct TransportClosed;

/// The client sent a message larger than its transport will buffer (a WebSocket
/// frame past its cap, a POST body past its limit).
#[derive(Debug)]
pub(crate) struct Oversized;

/// One message of a raw connection, as a transport carried it: WebSocket text or
/// binary frames; over Server-Sent Events and long polling, a POST body (binary
/// when sent as `application/octet-stream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// UTF-8 text.
    Text(Utf8Bytes),
    /// Bytes.
    Binary(Bytes),
}

impl Message {
    /// The message's bytes, whatever its kind.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_str().as_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }

    /// The message's bytes, shared, whatever its kind.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Message::Text(text) => Bytes::from(text),
            Message::Binary(bytes) => bytes,
        }
    }
}

/// What a transport's incoming half yields: a message from the client, or word
/// that it sent too much at once.
pub(crate) type Inbound = Result<Message, Oversized>;

/// A transport's incoming half.
pub(crate) type Incoming = Pin<Box<dyn Stream<Item = Inbound> + Send>>;

/// A connection's transport: one enum rather than a trait object, so that
/// reads and writes stay static calls. A WebSocket is driven whole, not split
/// into halves (a split socket takes a lock on every read and write). Writes
/// are polled, not `async fn`s: a connection's task keeps the state of the
/// largest write it awaits for its whole life, and nested write futures made
/// that a kilobyte per connection.
#[expect(
    clippy::large_enum_variant,
    reason = "most connections are WebSockets: the socket sits inline in the \
              connection's task rather than behind another allocation"
)]
pub(crate) enum Transport {
    WebSocket(super::transports::websocket::WebSocketTransport),
    /// The HTTP transports, an in-process client, a tunnel: messages arrive
    /// on a stream, frames leave on a channel.
    Channel(Incoming, super::transports::http::ChannelOutgoing),
}

impl Transport {
    /// The next message from the client; `None` once it has gone.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        match self {
            Transport::WebSocket(socket) => socket.poll_next(cx),
            Transport::Channel(incoming, _) => incoming.poll_next_unpin(cx),
        }
    }

    /// Buffers `frame` (taken once the transport has room for it).
    fn poll_feed(
        &mut self,
        cx: &mut Context<'_>,
        frame: &mut Option<Outbound>,
    ) -> Poll<Result<(), TransportClosed>> {
        match self {
            Transport::WebSocket(socket) => socket.poll_feed(cx, frame),
            Transport::Channel(_, sink) => sink.poll_feed(cx, frame),
        }
    }

    /// Writes what is buffered.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportClosed>> {
        match self {
            Transport::WebSocket(socket) => socket.poll_flush(cx),
            Transport::Channel(..) => Poll::Ready(Ok(())),
        }
    }

    async fn close(&mut self) {
        match self {
            Transport::WebSocket(socket) => socket.close().await,
            Transport::Channel(..) => {}
        }
    }
}

/// What [`Duplex::recv`] reports.
#[derive(Debug)]
pub(crate) enum Event {
    /// A message from the client.
    Data(Message),
    /// The client sent a message larger than the transport buffers.
    Oversized,
    /// The transport is gone; the client may come back within the disconnect
    /// timeout (stateful reconnect only).
    Lost,
    /// The client came back on a new transport; nothing sent meanwhile reached it.
    Reattached,
}

/// One connection's transport as its handler sees it.
pub(crate) struct Duplex {
    transport: Transport,
    /// New transports of a connection that may reconnect.
    attachments: Option<mpsc::Receiver<Transport>>,
    attached: bool,
    disconnect_timeout: Duration,
    /// Runs out the disconnect timeout while no transport is attached. Boxed,
    /// and made only when a transport is lost: most connections never need it.
    give_up: Option<Pin<Box<Sleep>>>,
    /// How long one write may take: a client that stops reading must not hold
    /// its connection (and its task) forever.
    write_timeout: Duration,
    /// The running write's deadline, armed when it first has to wait. Boxed,
    /// and made the first time a write waits: most connections never do.
    write_deadline: Option<Pin<Box<Sleep>>>,
    /// Whether `write_deadline` runs for the write in progress.
    write_waiting: bool,
}

impl Duplex {
    pub(crate) fn new(transport: Transport, write_timeout: Duration) -> Self {
        Duplex {
            transport,
            attachments: None,
            attached: true,
            disconnect_timeout: Duration::ZERO,
            give_up: None,
            write_timeout,
            write_deadline: None,
            write_waiting: false,
        }
    }

    /// A duplex over channels, for a client in the same process: what it sends
    /// arrives as binary messages (the hub reads bytes either way), what the
    /// handler writes goes to `to_client` as frames.
    pub(crate) fn in_process(
        from_client: mpsc::Receiver<Bytes>,
        to_client: mpsc::Sender<Outbound>,
        write_timeout: Duration,
    ) -> Self {
        let incoming: Incoming = Box::pin(futures_util::stream::unfold(
            from_client,
            |mut rx| async move {
                rx.recv()
                    .await
                    .map(|chunk| (Ok(Message::Binary(chunk)), rx))
            },
        ));
        let outgoing = super::transports::http::ChannelOutgoing::new(
            to_client,
            tokio_util::sync::CancellationToken::new(),
        );
        Duplex::new(Transport::Channel(incoming, outgoing), write_timeout)
    }

    /// A duplex over channels whose messages arrive as they were sent (text
    /// stays text): what a 2.x raw connection's requests feed, and what its
    /// handler writes goes to `to_client` as frames.
    pub(crate) fn channel(
        from_client: mpsc::Receiver<Message>,
        to_client: mpsc::Sender<Outbound>,
        write_timeout: Duration,
    ) -> Self {
        let incoming: Incoming = Box::pin(futures_util::stream::unfold(
            from_client,
            |mut rx| async move { rx.recv().await.map(|message| (Ok(message), rx)) },
        ));
        let outgoing = super::transports::http::ChannelOutgoing::new(
            to_client,
            tokio_util::sync::CancellationToken::new(),
        );
        Duplex::new(Transport::Channel(incoming, outgoing), write_timeout)
    }

    /// Lets the client come back on new transports (sent to `attachments`)
    /// within `disconnect_timeout` of losing one.
    pub(crate) fn reattachable(
        &mut self,
        attachments: mpsc::Receiver<Transport>,
        disconnect_timeout: Duration,
    ) {
        self.attachments = Some(attachments);
        self.disconnect_timeout = disconnect_timeout;
    }

    /// Whether the connection may outlive its transport.
    pub(crate) fn is_reattachable(&self) -> bool {
        self.attachments.is_some()
    }

    /// Stops accepting new transports (a handler that did not turn stateful
    /// reconnect on after all).
    pub(crate) fn not_reattachable(&mut self) {
        self.attachments = None;
    }

    /// Whether a transport is attached now.
    pub(crate) fn is_attached(&self) -> bool {
        self.attached
    }

    /// The next event; `None` once the connection is over: the client left
    /// for good, or did not come back within the disconnect timeout.
    /// Cancel-safe: nothing is lost when the future is dropped unfinished.
    pub(crate) fn recv(&mut self) -> impl Future<Output = Option<Event>> + Send + '_ {
        std::future::poll_fn(move |cx| self.poll_recv(cx))
    }

    /// Polls for the next event. Polled rather than an `async fn` with a
    /// `select!`: the session awaits it for the connection's whole life, and
    /// its state would be part of every connection's task.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if self.attached {
            match self.transport.poll_next(cx) {
                Poll::Ready(Some(Ok(message))) => return Poll::Ready(Some(Event::Data(message))),
                Poll::Ready(Some(Err(Oversized))) => return Poll::Ready(Some(Event::Oversized)),
                Poll::Ready(None) if self.attachments.is_some() => {
                    self.lost();
                    return Poll::Ready(Some(Event::Lost));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
        }
        // Most connections cannot reconnect: their transport is all there is.
        let Some(attachments) = &mut self.attachments else {
            return if self.attached {
                Poll::Pending
            } else {
                Poll::Ready(None)
            };
        };
        // A closed channel never brings a transport: waiting goes on.
        if let Poll::Ready(Some(transport)) = attachments.poll_recv(cx) {
            let mut old = std::mem::replace(&mut self.transport, transport);
            self.attached = true;
            self.give_up = None;
            // Closed aside, so that taking the new transport never waits.
            let timeout = self.write_timeout;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(timeout, old.close()).await;
            });
            return Poll::Ready(Some(Event::Reattached));
        }
        if !self.attached
            && let Some(give_up) = &mut self.give_up
            && give_up.as_mut().poll(cx).is_ready()
        {
            tracing::debug!("the client did not reconnect within the disconnect timeout");
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    /// Ends the transport, telling the client why when the transport can (a
    /// WebSocket Close frame; the HTTP transports just end).
    pub(crate) async fn close_with_reason(&mut self, reason: Option<&str>) {
        let Some(reason) = reason else {
            return self.close().await;
        };
        let close = async {
            match &mut self.transport {
                Transport::WebSocket(socket) => socket.close_with(reason).await,
                Transport::Channel(..) => {}
            }
        };
        let _ = tokio::time::timeout(self.write_timeout, close).await;
    }

    /// Marks the transport lost after a failed write; for a connection that may
    /// reconnect, the disconnect timeout starts.
    pub(crate) fn lost(&mut self) {
        if self.attached {
            self.attached = false;
            self.give_up = Some(Box::pin(sleep(self.disconnect_timeout)));
        }
    }
}

impl Duplex {
    /// Buffers one frame for the transport, waiting while it has no room (at
    /// most the write timeout).
    pub(crate) fn feed(&mut self, frame: Outbound) -> Feed<'_> {
        self.write_waiting = false;
        Feed {
            duplex: self,
            frame: Some(frame),
        }
    }

    /// Writes what is buffered (at most the write timeout).
    pub(crate) fn flush(&mut self) -> Flush<'_> {
        self.write_waiting = false;
        Flush { duplex: self }
    }

    /// Ends the transport.
    pub(crate) async fn close(&mut self) {
        let _ = tokio::time::timeout(self.write_timeout, self.transport.close()).await;
    }

    /// Fails a write that is still waiting when the write timeout runs out.
    /// The timer starts when the write first waits: most writes finish at
    /// once, and a timer per write cost a clock read on every message.
    fn within(
        &mut self,
        cx: &mut Context<'_>,
        write: Poll<Result<(), TransportClosed>>,
    ) -> Poll<Result<(), TransportClosed>> {
        if write.is_ready() {
            self.write_waiting = false;
            return write;
        }
        let deadline = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(sleep(Duration::ZERO)));
        // Armed when this write first waits; later polls keep its deadline.
        if !std::mem::replace(&mut self.write_waiting, true) {
            deadline
                .as_mut()
                .reset(tokio::time::Instant::now() + self.write_timeout);
        }
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.write_waiting = false;
                Poll::Ready(Err(TransportClosed))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// [`Duplex::feed`]'s future.
pub(crate) struct Feed<'a> {
    duplex: &'a mut Duplex,
    frame: Option<Outbound>,
}

impl Future for Feed<'_> {
    type Output = Result<(), TransportClosed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let write = this.duplex.transport.poll_feed(cx, &mut this.frame);
        this.duplex.within(cx, write)
    }
}

/// [`Duplex::flush`]'s future.
pub(crate) struct Flush<'a> {
    duplex: &'a mut Duplex,
}

impl Future for Flush<'_> {
    type Output = Result<(), TransportClosed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let write = this.duplex.transport.poll_flush(cx);
        this.duplex.within(cx, write)
    }
}
