//! The HTTP transports: Server-Sent Events and long polling down, POST up.
//!
//! Both keep a registry entry per connection token so that POSTs (and, for long
//! polling, later polls and DELETE) find the connection. The handler is the same
//! as for WebSockets; only how frames travel differs.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderValue, StatusCode, header};
use signal_core::TransportType;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Refusal, start_for, transport_query};
use crate::connection::duplex::{
    Duplex, Inbound, Incoming, Message, Oversized, Transport, TransportClosed,
};
use crate::connection::endpoint::Endpoint;
use crate::connection::id::ConnectionToken;
use crate::frame::Outbound;

/// A connection on an HTTP transport, as its POSTs, polls and DELETE find it.
pub(crate) struct HttpConnection {
    transport: TransportType,
    /// POST bodies to the session; `None` once the client ended the connection.
    incoming: Mutex<Option<mpsc::Sender<Inbound>>>,
    posting: AtomicBool,
    /// Ends the transport: the client left, or went too long without a poll.
    abort: CancellationToken,
    /// The session is over.
    ended: CancellationToken,
    poll: Option<PollState>,
}

/// Long polling: frames wait here between polls.
struct PollState {
    frames: tokio::sync::Mutex<mpsc::Receiver<Outbound>>,
    current: Mutex<CancellationToken>,
    in_flight: AtomicUsize,
    last_poll: Mutex<Instant>,
}

/// The registry of HTTP-transport connections of one hub.
#[derive(Default)]
pub(crate) struct HttpConnections(Mutex<HashMap<ConnectionToken, Arc<HttpConnection>>>);

impl HttpConnections {
    /// Whether an HTTP-transport connection (live or just ended) has `token`.
    pub(crate) fn contains(&self, token: &str) -> bool {
        self.get(token).is_some()
    }

    fn get(&self, token: &str) -> Option<Arc<HttpConnection>> {
        self.0
            .lock()
            .expect("http connections lock")
            .get(&ConnectionToken::from(token))
            .cloned()
    }

    fn insert(&self, token: ConnectionToken, connection: Arc<HttpConnection>) {
        self.0
            .lock()
            .expect("http connections lock")
            .insert(token, connection);
    }

    fn remove(&self, token: &ConnectionToken) {
        self.0.lock().expect("http connections lock").remove(token);
    }
}

/// How long an ended connection's entry stays, so that a poll racing the end
/// gets 204 rather than 404.
const ENDED_GRACE: Duration = Duration::from_secs(5);

/// A frame on its way into a full channel.
type Waiting = Pin<Box<dyn Future<Output = Result<(), TransportClosed>> + Send>>;

/// Outgoing frames of an HTTP transport (or an in-process client): a bounded
/// channel that the event stream or the polls drain; writing fails once the
/// transport is aborted.
pub(crate) struct ChannelOutgoing {
    frames: mpsc::Sender<Outbound>,
    abort: CancellationToken,
    /// A frame waiting for room in a full channel. Boxed, and only then: most
    /// frames find room at once.
    waiting: Option<Waiting>,
}

impl ChannelOutgoing {
    pub(crate) fn new(frames: mpsc::Sender<Outbound>, abort: CancellationToken) -> Self {
        ChannelOutgoing {
            frames,
            abort,
            waiting: None,
        }
    }

    /// Queues `frame`, waiting while the channel is full (until the transport
    /// is aborted).
    pub(crate) fn poll_feed(
        &mut self,
        cx: &mut TaskContext<'_>,
        frame: &mut Option<Outbound>,
    ) -> Poll<Result<(), TransportClosed>> {
        if let Some(waiting) = &mut self.waiting {
            let sent = ready!(waiting.as_mut().poll(cx));
            self.waiting = None;
            sent?;
        }
        let Some(next) = frame.take() else {
            return Poll::Ready(Ok(()));
        };
        if self.abort.is_cancelled() {
            return Poll::Ready(Err(TransportClosed));
        }
        match self.frames.try_send(next) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(mpsc::error::TrySendError::Closed(_)) => Poll::Ready(Err(TransportClosed)),
            Err(mpsc::error::TrySendError::Full(next)) => {
                let frames = self.frames.clone();
                let abort = self.abort.clone();
                let mut waiting: Waiting = Box::pin(async move {
                    tokio::select! {
                        sent = frames.send(next) => sent.map_err(|_| TransportClosed),
                        _ = abort.cancelled() => Err(TransportClosed),
                    }
                });
                match waiting.as_mut().poll(cx) {
                    Poll::Ready(sent) => Poll::Ready(sent),
                    Poll::Pending => {
                        self.waiting = Some(waiting);
                        Poll::Pending
                    }
                }
            }
        }
    }
}

/// `GET {hub}?id=…` without an upgrade: Server-Sent Events when the client
/// accepts `text/event-stream`, otherwise a long poll.
pub(crate) async fn get(runtime: Arc<Endpoint>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let query = match transport_query(&parts) {
        Ok(q) => q,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(token) = query.id.as_deref() else {
        return Refusal::MissingId.into_response();
    };
    let wants_events = parts
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("text/event-stream")));

    if let Some(connection) = runtime.http.get(token) {
        return match &connection.poll {
            Some(poll) if !wants_events => long_poll(&runtime, poll).await,
            // A second receiving transport for one connection.
            _ => Refusal::InUse.into_response(),
        };
    }

    let transport = if wants_events {
        TransportType::ServerSentEvents
    } else {
        TransportType::LongPolling
    };
    let mut start = match start_for(&runtime, &parts, transport, Some(token)) {
        Ok(start) => start,
        Err(refusal) => return refusal.into_response(),
    };
    start.request = Some(crate::connection::keep_request(parts));
    let token = start
        .token
        .clone()
        .expect("negotiated connections have a token");
    let capacity = runtime.options.outgoing_queue_capacity.max(1);
    let (frames_tx, frames_rx) = mpsc::channel(capacity);
    let (incoming_tx, incoming_rx) = mpsc::channel::<Inbound>(EARLY_POSTS + 16);
    let incoming_tx_early = incoming_tx.clone();
    let abort = CancellationToken::new();
    let (poll, events) = if transport == TransportType::LongPolling {
        let poll = PollState {
            frames: tokio::sync::Mutex::new(frames_rx),
            current: Mutex::new(CancellationToken::new()),
            in_flight: AtomicUsize::new(0),
            last_poll: Mutex::new(Instant::now()),
        };
        (Some(poll), None)
    } else {
        (None, Some(frames_rx))
    };
    let connection = Arc::new(HttpConnection {
        transport,
        incoming: Mutex::new(Some(incoming_tx)),
        posting: AtomicBool::new(false),
        abort: abort.clone(),
        ended: CancellationToken::new(),
        poll,
    });
    runtime.http.insert(token.clone(), connection.clone());

    // What the client POSTed before this first GET (long polling allows it).
    for message in std::mem::take(&mut start.early) {
        let _ = incoming_tx_early.try_send(Ok(message));
    }
    drop(incoming_tx_early);
    let incoming: Incoming = Box::pin(
        futures_util::stream::unfold(incoming_rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        })
        .take_until(abort.clone().cancelled_owned()),
    );
    let outgoing = ChannelOutgoing::new(frames_tx, abort.clone());
    let duplex = Duplex::new(
        Transport::Channel(incoming, outgoing),
        runtime.options.write_timeout,
    );
    {
        let runtime = runtime.clone();
        let connection = connection.clone();
        tokio::spawn(async move {
            runtime.run(start, duplex).await;
            connection.ended.cancel();
            tokio::time::sleep(ENDED_GRACE).await;
            runtime.http.remove(&token);
        });
    }

    match events {
        Some(frames) => event_stream(frames, abort),
        None => {
            tokio::spawn(watch_polls(
                connection,
                runtime.options.long_polling_disconnect_timeout,
            ));
            // The first poll returns at once: the connection has started.
            StatusCode::OK.into_response()
        }
    }
}

/// One long poll: whole records as soon as there are any, 200 empty after the
/// poll timeout, 204 once the connection has ended or a newer poll replaced it.
async fn long_poll(runtime: &Endpoint, poll: &PollState) -> Response {
    let mine = CancellationToken::new();
    std::mem::replace(&mut *poll.current.lock().expect("poll lock"), mine.clone()).cancel();
    // Counts the poll as pending until it ends, even when the client goes away
    // and the server drops the request mid-poll.
    let _pending = PendingPoll::new(poll);
    async {
        let mut frames = tokio::select! {
            frames = poll.frames.lock() => frames,
            _ = mine.cancelled() => return StatusCode::NO_CONTENT.into_response(),
        };
        let first = tokio::select! {
            // Frames already queued go out even when the connection has ended
            // (its Close message, say); the next poll then gets 204.
            biased;
            frame = frames.recv() => frame,
            _ = mine.cancelled() => return StatusCode::NO_CONTENT.into_response(),
            _ = tokio::time::sleep(runtime.options.long_polling_timeout) => {
                return StatusCode::OK.into_response();
            }
        };
        let Some(first) = first else {
            return StatusCode::NO_CONTENT.into_response();
        };
        // A binary protocol's frames go out as `application/octet-stream`.
        let mut binary = first.is_binary();
        let mut body = BytesMut::from(first.as_bytes());
        while let Ok(frame) = frames.try_recv() {
            binary |= frame.is_binary();
            body.extend_from_slice(frame.as_bytes());
        }
        let content_type = if binary {
            "application/octet-stream"
        } else {
            "text/plain"
        };
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body.freeze(),
        )
            .into_response()
    }
    .await
}

struct PendingPoll<'a>(&'a PollState);

impl<'a> PendingPoll<'a> {
    fn new(poll: &'a PollState) -> Self {
        poll.in_flight.fetch_add(1, Ordering::SeqCst);
        PendingPoll(poll)
    }
}

impl Drop for PendingPoll<'_> {
    fn drop(&mut self) {
        *self.0.last_poll.lock().expect("poll lock") = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Ends a long-polling connection that has gone `timeout` without a poll.
async fn watch_polls(connection: Arc<HttpConnection>, timeout: Duration) {
    let poll = connection.poll.as_ref().expect("long polling");
    let period = (timeout / 4).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = connection.ended.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let idle = poll.in_flight.load(Ordering::SeqCst) == 0
            && poll.last_poll.lock().expect("poll lock").elapsed() >= timeout;
        if idle {
            tracing::debug!("no poll within the long-polling disconnect timeout");
            connection.abort.cancel();
            return;
        }
    }
}

/// The event stream of a Server-Sent Events connection.
fn event_stream(frames: mpsc::Receiver<Outbound>, abort: CancellationToken) -> Response {
    let events = futures_util::stream::once(async {
        Ok::<_, std::convert::Infallible>(Bytes::from_static(b":\r\n"))
    })
    .chain(futures_util::stream::unfold(frames, |mut rx| async move {
        rx.recv()
            .await
            .map(|frame| (Ok(event(frame.as_bytes())), rx))
    }));
    let body = Body::from_stream(AbortOnDrop {
        inner: Box::pin(events),
        abort,
    });
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            // Asks reverse proxies not to buffer the stream.
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        body,
    )
        .into_response()
}

/// One SSE event: each line of the payload as a `data:` line, then a blank line.
/// (SSE carries text only: negotiate offers it for the text transfer format.)
fn event(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 16);
    for line in payload.split(|b| *b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

type EventStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::convert::Infallible>> + Send>>;

/// Ends the connection when the client closes its EventSource (the response
/// body is dropped).
struct AbortOnDrop {
    inner: EventStream,
    abort: CancellationToken,
}

impl Stream for AbortOnDrop {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.abort.cancel();
    }
}

/// The HTTP-transport connection a POST or DELETE names.
fn named_connection(
    runtime: &Endpoint,
    parts: &http::request::Parts,
) -> Result<Arc<HttpConnection>, Refusal> {
    let query = transport_query(parts)?;
    let token = query.id.as_deref().ok_or(Refusal::MissingId)?;
    runtime.http.get(token).ok_or(Refusal::Unknown)
}

/// At most this many POSTs, each at most one message long, are kept for a
/// negotiated connection whose first GET has not come yet: enough for a
/// handshake and a few calls, too little for a client that never polls to
/// make the server hold much (negotiate asks no credentials).
pub(crate) const EARLY_POSTS: usize = 4;

/// Reads a POST body as one message: binary when the client says
/// `application/octet-stream` (the official clients' binary transfer format),
/// text otherwise.
fn message_of(parts: &http::request::Parts, body: Bytes) -> Message {
    let binary = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/octet-stream"));
    if binary {
        return Message::Binary(body);
    }
    let body_copy = body.clone();
    match axum::extract::ws::Utf8Bytes::try_from(body) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(body_copy),
    }
}

/// `POST {hub}?id=…`: one or more whole records from the client.
pub(crate) async fn post(State(runtime): State<Arc<Endpoint>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let connection = match named_connection(&runtime, &parts) {
        Ok(connection) => connection,
        Err(Refusal::Unknown) => return early_post(&runtime, parts, body).await,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(_posting) = Posting::begin(&connection) else {
        return (
            StatusCode::CONFLICT,
            "Another POST of this connection is in progress.",
        )
            .into_response();
    };
    let limit = post_limit(runtime.options.maximum_receive_message_size);
    let sender = connection.incoming.lock().expect("incoming lock").clone();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::debug!(%error, "POST body refused");
            // The connection ends with the size-limit Close, as over WebSockets;
            // a body that failed for another reason (the client went away) is
            // just dropped.
            if is_length_limit(&error)
                && let Some(sender) = sender
            {
                let _ = sender.send(Err(Oversized)).await;
            }
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The request body exceeds {limit} bytes."),
            )
                .into_response();
        }
    };
    match sender {
        Some(sender)
            if !connection.ended.is_cancelled()
                && sender.send(Ok(message_of(&parts, bytes))).await.is_ok() =>
        {
            StatusCode::OK.into_response()
        }
        _ => Refusal::Unknown.into_response(),
    }
}

/// A POST for a negotiated connection whose first GET has not come yet: long
/// polling clients may send (their handshake) first, as ASP.NET Core allows.
async fn early_post(runtime: &Endpoint, parts: http::request::Parts, body: Body) -> Response {
    let Ok(query) = transport_query(&parts) else {
        return Refusal::Unknown.into_response();
    };
    let Some(token) = query
        .id
        .as_deref()
        .filter(|t| runtime.negotiations.is_pending(t))
    else {
        return Refusal::Unknown.into_response();
    };
    let limit = runtime.options.maximum_receive_message_size;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body exceeds {limit} bytes."),
        )
            .into_response();
    };
    if runtime
        .negotiations
        .keep_early(token, message_of(&parts, bytes), EARLY_POSTS)
    {
        StatusCode::OK.into_response()
    } else {
        Refusal::Unknown.into_response()
    }
}

/// Marks a POST in flight until it ends, however it ends (the client may go
/// away mid-body and the request be dropped).
struct Posting<'a>(&'a HttpConnection);

impl<'a> Posting<'a> {
    fn begin(connection: &'a HttpConnection) -> Option<Self> {
        (!connection.posting.swap(true, Ordering::SeqCst)).then_some(Posting(connection))
    }
}

impl Drop for Posting<'_> {
    fn drop(&mut self) {
        self.0.posting.store(false, Ordering::SeqCst);
    }
}

/// Whether reading a body failed on its length limit (not on the client going away).
fn is_length_limit(error: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut source = error.source();
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// A POST body may batch many records; each is still held to the message size
/// limit by the handler's reader (a hub protocol's frame reader).
pub(crate) fn post_limit(maximum_message_size: usize) -> usize {
    maximum_message_size.saturating_mul(4).max(1024 * 1024)
}

/// `DELETE {hub}?id=…`: a long-polling client ends its connection.
pub(crate) async fn delete(State(runtime): State<Arc<Endpoint>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let connection = match named_connection(&runtime, &parts) {
        Ok(connection) => connection,
        Err(refusal) => return refusal.into_response(),
    };
    tracing::debug!(transport = %connection.transport, "client ended the connection");
    connection.incoming.lock().expect("incoming lock").take();
    connection.abort.cancel();
    // Wake a pending poll so the client sees the end.
    if let Some(poll) = &connection.poll {
        poll.current.lock().expect("poll lock").cancel();
    }
    StatusCode::ACCEPTED.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_payload_lines() {
        assert_eq!(&event(b"{}\x1e")[..], b"data: {}\x1e\r\n\r\n");
        assert_eq!(&event(b"a\nb")[..], b"data: a\r\ndata: b\r\n\r\n");
    }
}
