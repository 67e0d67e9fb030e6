//! The duplex stream a connection handler gets: what the client sends, as it
//! arrives on whatever transport, and a way to write back. For a connection that
//! may reconnect (stateful reconnect), the transport underneath can be swapped for
//! a new one; the handler sees `Lost` and `Reattached` events, never the swap.

use std::pin::Pin;
use std::task::Poll;
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

/// The sending half of a transport.
pub(crate) trait Outgoing: Send {
    /// Buffers one frame, encoded for this connection.
    fn feed(&mut self, frame: Outbound)
    -> impl Future<Output = Result<(), TransportClosed>> + Send;
    /// Writes what is buffered.
    fn flush(&mut self) -> impl Future<Output = Result<(), TransportClosed>> + Send;
    /// Ends the transport.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// The sending half of any transport: one enum rather than a trait object, so
/// that writes stay static calls.
pub(crate) enum TransportSink {
    WebSocket(super::transports::websocket::WebSocketOutgoing),
    Channel(super::transports::http::ChannelOutgoing),
}

impl Outgoing for TransportSink {
    async fn feed(&mut self, frame: Outbound) -> Result<(), TransportClosed> {
        match self {
            TransportSink::WebSocket(sink) => sink.feed(frame).await,
            TransportSink::Channel(sink) => sink.feed(frame).await,
        }
    }

    async fn flush(&mut self) -> Result<(), TransportClosed> {
        match self {
            TransportSink::WebSocket(sink) => sink.flush().await,
            TransportSink::Channel(sink) => sink.flush().await,
        }
    }

    async fn close(&mut self) {
        match self {
            TransportSink::WebSocket(sink) => sink.close().await,
            TransportSink::Channel(sink) => sink.close().await,
        }
    }
}

/// A transport's two halves.
pub(crate) type Attachment = (Incoming, TransportSink);

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
    incoming: Incoming,
    outgoing: TransportSink,
    /// New transports of a connection that may reconnect.
    attachments: Option<mpsc::Receiver<Attachment>>,
    attached: bool,
    disconnect_timeout: Duration,
    /// Runs out the disconnect timeout while no transport is attached. Boxed,
    /// and made only when a transport is lost: most connections never need it.
    give_up: Option<Pin<Box<Sleep>>>,
    /// How long one write may take: a client that stops reading must not hold
    /// its connection (and its task) forever.
    write_timeout: Duration,
}

impl Duplex {
    pub(crate) fn new(
        incoming: Incoming,
        outgoing: TransportSink,
        write_timeout: Duration,
    ) -> Self {
        Duplex {
            incoming,
            outgoing,
            attachments: None,
            attached: true,
            disconnect_timeout: Duration::ZERO,
            give_up: None,
            write_timeout,
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
        let abort = tokio_util::sync::CancellationToken::new();
        let outgoing = TransportSink::Channel(super::transports::http::ChannelOutgoing::new(
            to_client, abort,
        ));
        Duplex::new(incoming, outgoing, write_timeout)
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
        let outgoing = TransportSink::Channel(super::transports::http::ChannelOutgoing::new(
            to_client,
            tokio_util::sync::CancellationToken::new(),
        ));
        Duplex::new(incoming, outgoing, write_timeout)
    }

    /// Lets the client come back on new transports (sent to `attachments`)
    /// within `disconnect_timeout` of losing one.
    pub(crate) fn reattachable(
        &mut self,
        attachments: mpsc::Receiver<Attachment>,
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
    pub(crate) async fn recv(&mut self) -> Option<Event> {
        // Most connections cannot reconnect: their transport is all there is
        // to wait for, without a select over the rest on every message.
        if self.attachments.is_none() {
            if !self.attached {
                return None;
            }
            return match self.incoming.next().await {
                Some(Ok(message)) => Some(Event::Data(message)),
                Some(Err(Oversized)) => Some(Event::Oversized),
                None => None,
            };
        }
        tokio::select! {
            chunk = self.incoming.next(), if self.attached => match chunk {
                Some(Ok(message)) => Some(Event::Data(message)),
                Some(Err(Oversized)) => Some(Event::Oversized),
                None if self.attachments.is_some() => {
                    self.lost();
                    Some(Event::Lost)
                }
                None => None,
            },
            attachment = next_attachment(&mut self.attachments) => {
                let (incoming, outgoing) = attachment;
                self.incoming = incoming;
                let mut old = std::mem::replace(&mut self.outgoing, outgoing);
                self.attached = true;
                self.give_up = None;
                // Closed aside, so that this future never waits after taking
                // the new transport.
                let timeout = self.write_timeout;
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(timeout, old.close()).await;
                });
                Some(Event::Reattached)
            }
            _ = give_up(&mut self.give_up), if !self.attached => {
                tracing::debug!("the client did not reconnect within the disconnect timeout");
                None
            }
        }
    }

    /// Ends the transport, telling the client why when the transport can (a
    /// WebSocket Close frame; the HTTP transports just end).
    pub(crate) async fn close_with_reason(&mut self, reason: Option<&str>) {
        let Some(reason) = reason else {
            return self.close().await;
        };
        let close = async {
            match &mut self.outgoing {
                TransportSink::WebSocket(sink) => sink.close_with(reason).await,
                TransportSink::Channel(sink) => sink.close().await,
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

impl Outgoing for Duplex {
    async fn feed(&mut self, frame: Outbound) -> Result<(), TransportClosed> {
        within(self.write_timeout, self.outgoing.feed(frame)).await
    }

    async fn flush(&mut self) -> Result<(), TransportClosed> {
        within(self.write_timeout, self.outgoing.flush()).await
    }

    async fn close(&mut self) {
        let _ = tokio::time::timeout(self.write_timeout, self.outgoing.close()).await;
    }
}

/// Runs a write, failing it when it takes longer than `timeout`. The timer is
/// armed only when the write does not finish on its first poll: most finish
/// at once, and a timer per write cost a clock read and a timer entry on
/// every message.
async fn within(
    timeout: Duration,
    write: impl Future<Output = Result<(), TransportClosed>>,
) -> Result<(), TransportClosed> {
    let mut write = std::pin::pin!(write);
    if let Poll::Ready(result) = futures_util::poll!(write.as_mut()) {
        return result;
    }
    tokio::time::timeout(timeout, write)
        .await
        .unwrap_or(Err(TransportClosed))
}

/// Waits out the disconnect timeout, when one is running.
async fn give_up(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// The next transport the client opens for a connection that may reconnect;
/// never resolves without one.
async fn next_attachment(attachments: &mut Option<mpsc::Receiver<Attachment>>) -> Attachment {
    match attachments {
        Some(attachments) => match attachments.recv().await {
            Some(attachment) => attachment,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
