//! The WebSockets transport: `GET {hub}?id=TOKEN` with an upgrade, or without `id`
//! when the client skips negotiation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::task::{ArcWake, AtomicWaker, waker_ref};
use futures_util::{SinkExt, StreamExt};
use signal_core::TransportType;

use tokio::sync::mpsc;

use super::http as http_transports;
use super::{Refusal, start_for, transport_query};
use crate::connection::duplex::{Duplex, Inbound, Oversized, Transport, TransportClosed};
use crate::connection::endpoint::{Endpoint, Start};
use crate::connection::id::ConnectionToken;
use crate::connection::options::ConnectionOptions;
use crate::frame::Outbound;

/// A reconnected WebSocket on its way to its connection.
type Reattachment = Transport;

/// Stateful connections waiting for (or using) their WebSocket, by token.
#[derive(Default)]
pub(crate) struct Reattachments(Mutex<HashMap<ConnectionToken, mpsc::Sender<Reattachment>>>);

impl Reattachments {
    pub(crate) fn sender(&self, token: &str) -> Option<mpsc::Sender<Reattachment>> {
        self.0
            .lock()
            .expect("reattachments lock")
            .get(&ConnectionToken::from(token))
            .filter(|sender| !sender.is_closed())
            .cloned()
    }

    fn register(&self, token: ConnectionToken) -> mpsc::Receiver<Reattachment> {
        let (tx, rx) = mpsc::channel(1);
        self.0.lock().expect("reattachments lock").insert(token, tx);
        rx
    }

    pub(crate) fn remove(&self, token: &ConnectionToken) {
        self.0.lock().expect("reattachments lock").remove(token);
    }
}

pub(crate) async fn connect(State(runtime): State<Arc<Endpoint>>, request: Request) -> Response {
    if !request.headers().contains_key(http::header::UPGRADE) {
        return http_transports::get(runtime, request).await;
    }
    let (mut parts, _body) = request.into_parts();
    let query = match transport_query(&parts) {
        Ok(q) => q,
        Err(refusal) => return refusal.into_response(),
    };
    if !runtime.origin_allowed(&parts) {
        return Refusal::Origin.into_response();
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Refusal::NotUpgrade(rejection.body_text()).into_response(),
    };
    // A stateful connection's client coming back on a new socket.
    if let Some(sender) = query
        .id
        .as_deref()
        .and_then(|token| runtime.reattachments.sender(token))
    {
        return configure(upgrade, &runtime.options).on_upgrade(move |socket| async move {
            let _ = sender.send(transport(socket)).await;
        });
    }
    let mut start = match start_for(
        &runtime,
        &parts,
        TransportType::WebSockets,
        query.id.as_deref(),
    ) {
        Ok(start) => start,
        Err(refusal) => return refusal.into_response(),
    };
    start.request = Some(crate::connection::keep_request(parts));
    // Boxed until the upgrade: axum's task keeps the callback's captures for
    // the connection's whole life.
    let start = Box::new(start);
    configure(upgrade, &runtime.options).on_upgrade(move |socket| serve(runtime, *start, socket))
}

pub(crate) fn configure(
    upgrade: WebSocketUpgrade,
    options: &ConnectionOptions,
) -> WebSocketUpgrade<impl axum::extract::ws::OnFailedUpgrade> {
    // Small buffers: most messages are small and idle connections are many (a
    // 2 KiB read buffer took an idle connection from 11.1 to 9.1 KiB with no
    // change in echo throughput, 1 KiB payloads included). Whole
    // messages are checked against the limit by the handler (a hub protocol's frame
    // reader); the WebSocket limit only bounds what one frame may make us buffer.
    let limit = options.maximum_receive_message_size;
    upgrade
        .read_buffer_size(2 * 1024)
        // Frames fed in one batch are written together (one syscall) up to this
        // much; `flush` writes the rest.
        .write_buffer_size(8 * 1024)
        .max_message_size(limit.saturating_mul(4).max(64 * 1024))
        .on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
}

fn transport(socket: WebSocket) -> Transport {
    Transport::WebSocket(WebSocketTransport {
        socket,
        ended: false,
        readable: Arc::new(Readable {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        }),
    })
}

/// Whether the socket may have something to read: its own waker, handed to
/// the socket's reads, sets it and wakes the connection's task.
///
/// The task wakes for many other reasons (a broadcast queues a frame, a call
/// finishes); a read attempted then finds nothing, but tungstenite zeroes its
/// whole read buffer (2 KiB) before every attempt. With the flag, a read is
/// tried only when the socket woke the task, or the last read returned a
/// message (another may be buffered).
struct Readable {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl ArcWake for Readable {
    fn wake_by_ref(readable: &Arc<Self>) {
        readable.woken.store(true, Ordering::Release);
        readable.task.wake();
    }
}

/// Whether a read failed because the client's message passed the frame cap.
fn is_oversized(error: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut source = error.source();
    while let Some(error) = source {
        if let Some(tungstenite::Error::Capacity(_)) = error.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Readies a connection's duplex over its socket; the future that runs it is
/// what axum's upgrade task keeps for the connection's life, so it is made
/// here, small.
fn serve(
    runtime: Arc<Endpoint>,
    start: Start,
    socket: WebSocket,
) -> impl Future<Output = ()> + Send + 'static {
    let mut duplex = Duplex::new(transport(socket), runtime.options.write_timeout);
    if let Some(token) = start.token.clone().filter(|_| start.stateful) {
        let attachments = runtime.reattachments.register(token);
        duplex.reattachable(attachments, runtime.options.disconnect_timeout);
    }
    runtime.run(start, duplex)
}

/// A connection's WebSocket, read and written by the connection's task alone.
pub(crate) struct WebSocketTransport {
    socket: WebSocket,
    /// The client closed, the read failed, or a message passed the frame
    /// cap: nothing more is read.
    ended: bool,
    readable: Arc<Readable>,
}

impl WebSocketTransport {
    /// The next text or binary message until Close or an error; a message
    /// past the frame cap ends the reading with `Oversized`, so the session
    /// can say why it closes.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        use crate::connection::Message as Received;
        if self.ended {
            return Poll::Ready(None);
        }
        self.readable.task.register(cx.waker());
        if !self.readable.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = waker_ref(&self.readable);
        let mut socket_cx = Context::from_waker(&waker);
        loop {
            let message = match ready!(self.socket.poll_next_unpin(&mut socket_cx)) {
                Some(Ok(Message::Text(text))) => Ok(Received::Text(text)),
                Some(Ok(Message::Binary(bytes))) => Ok(Received::Binary(bytes)),
                // Pings are answered by tungstenite; pongs need nothing.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(error)) if is_oversized(&error) => {
                    self.ended = true;
                    Err(Oversized)
                }
                Some(Err(error)) => {
                    tracing::debug!(%error, "WebSocket read failed");
                    break;
                }
            };
            // More may wait in tungstenite's buffer, which no wake announces.
            self.readable.woken.store(true, Ordering::Release);
            return Poll::Ready(Some(message));
        }
        self.ended = true;
        Poll::Ready(None)
    }

    /// Ends the socket with a policy-violation Close frame (1008) carrying
    /// `reason`, cut to what a Close frame can hold.
    pub(crate) async fn close_with(&mut self, reason: &str) {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let frame = CloseFrame {
            code: close_code::POLICY,
            reason: reason[..end].into(),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
        let _ = self.socket.close().await;
    }

    /// Buffers `frame` once the socket has room: text for a text protocol (and
    /// raw text), binary for a binary one.
    pub(crate) fn poll_feed(
        &mut self,
        cx: &mut Context<'_>,
        frame: &mut Option<Outbound>,
    ) -> Poll<Result<(), TransportClosed>> {
        if ready!(self.socket.poll_ready_unpin(cx)).is_err() {
            return Poll::Ready(Err(TransportClosed));
        }
        let Some(frame) = frame.take() else {
            return Poll::Ready(Ok(()));
        };
        let message = match frame.text() {
            Some(text) => Message::Text(text),
            None => Message::Binary(frame.bytes()),
        };
        Poll::Ready(
            self.socket
                .start_send_unpin(message)
                .map_err(|_| TransportClosed),
        )
    }

    /// Writes what is buffered.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportClosed>> {
        self.socket
            .poll_flush_unpin(cx)
            .map_err(|_| TransportClosed)
    }

    /// Ends the socket with a normal closure.
    pub(crate) async fn close(&mut self) {
        // A normal closure (1000), as ASP.NET Core ends its sockets; the reason is
        // in the hub protocol's Close message, not here.
        let frame = CloseFrame {
            code: close_code::NORMAL,
            reason: Default::default(),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
        let _ = self.socket.close().await;
    }
}
