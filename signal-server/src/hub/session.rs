//! One hub connection's life over the connection layer's duplex: the handshake
//! (handshake.rs), the message loop, keep-alive and timeouts, stateful
//! reconnect's replay (link.rs), the calls it drives (invocations.rs), and the end.
//!
//! Each connection is one task. The loop keeps reading while invocations run, so a
//! hub method that waits for its own client (a client result) cannot deadlock it.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;

use axum::extract::ws::Utf8Bytes;
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use signal_core::{
    Close, FrameReader, HandshakeResponse, HubMessage, Messages, RecordError, RegisteredProtocol,
    TransferFormat, TransportType,
};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::HubRuntime;
use super::context::Context;
use super::dispatch::{BoxFuture, HubDispatch};
use super::handshake::{Accepted, handshake_answer, read_handshake, write_handshake};
use super::invocations::{Calls, Done, Handled, Limits, Pace, Work, panic_message, pump};
use super::link::Link;
use crate::connection::{Duplex, Event, Message, Start, TransportClosed};
use crate::frame::Frame;
use crate::lifetime::{ConnectionHandle, FrameSink, Next, OutboxReceiver, outbox, write_batch};

/// How often a stateful connection acknowledges what it received (as the JS client does).
const ACK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The Close error for a message over `limit` bytes, whatever its transport.
pub(crate) fn too_large_error(limit: usize) -> String {
    format!(
        "Connection closed with an error. InvalidDataException: {}",
        RecordError::TooLarge { limit }
    )
}

/// The Close error for bytes that could not be read as messages.
fn read_error(error: &RecordError, limit: usize) -> String {
    match error {
        RecordError::TooLarge { .. } => too_large_error(limit),
        other => format!("Connection closed with an error. InvalidDataException: {other}"),
    }
}

/// Transports with a keep-alive of their own (long polling) get no pings and no
/// client timeout.
fn inherent_keep_alive(start: &Start) -> bool {
    start.transport == TransportType::LongPolling
}

/// Why the loop ended.
pub(super) enum End {
    /// The client left (closed its transport or sent Close).
    ClientLeft(Option<String>),
    /// The server closes, with an error for the Close message.
    ServerClose(Option<String>),
}

/// Runs a hub connection to its end over the connection layer's duplex. When
/// the duplex may be reattached (stateful reconnect was negotiated) and the
/// handshake asks for protocol version 2, a client that loses its transport
/// may come back on a new one within the disconnect timeout.
///
/// The opening phase (handshake, registration) is boxed and made here: the
/// task keeps its largest state for the connection's whole life, and neither
/// the opening's state nor the `Start` and `Duplex` it consumes may be part of
/// it.
pub(crate) fn run<D: HubDispatch>(
    runtime: Arc<HubRuntime<D>>,
    start: Start,
    duplex: Duplex,
) -> impl Future<Output = ()> + Send + use<D> {
    let span = tracing::debug_span!("connection", id = %start.id, transport = %start.transport);
    tracing::debug!(parent: &span, remote = ?start.remote, "connection started");
    let keep_alive = !inherent_keep_alive(&start);
    let opening = Box::pin(open(runtime.clone(), start, duplex));
    async move {
        if let Some(opened) = opening.await {
            session(runtime, keep_alive, opened).await;
        }
    }
    .instrument(span)
}

/// What opening a connection leaves its message loop.
struct Opened<D: HubDispatch> {
    link: Link,
    reader: FrameReader,
    /// Messages that followed the handshake in its chunk, or why they could
    /// not be read.
    leftover: Result<Messages, RecordError>,
    protocol: RegisteredProtocol,
    handle: Arc<ConnectionHandle>,
    rx: OutboxReceiver,
    cx: Context<D::Client>,
    /// Dropped when the session ends, which stops the expiry watch.
    expiry: Option<tokio_util::sync::DropGuard>,
}

/// The handshake and the connection's registration; `None` when the client
/// went away or was refused.
async fn open<D: HubDispatch>(
    runtime: Arc<HubRuntime<D>>,
    mut start: Start,
    mut duplex: Duplex,
) -> Option<Box<Opened<D>>> {
    // Kept for hub code (`Context::request`), as ASP.NET Core keeps the
    // connection's HttpContext.
    let request = start.request.take();
    let options = &runtime.options;
    let handshake = tokio::time::timeout(
        options.handshake_timeout,
        read_handshake(
            &mut duplex,
            &options.protocols,
            start.transport,
            options.maximum_receive_message_size,
        ),
    )
    .await;
    let accepted = match handshake {
        Err(_) => {
            tracing::debug!("no handshake within the handshake timeout");
            duplex.close().await;
            return None;
        }
        Ok(Err(None)) => {
            duplex.close().await;
            return None;
        }
        Ok(Err(Some(error))) => {
            tracing::debug!(%error, "handshake refused");
            // A refusal is JSON text whatever was asked for: no protocol is in use.
            let _ = write_handshake(
                &mut duplex,
                handshake_answer(&HandshakeResponse::error(error), TransferFormat::Text),
                options.handshake_timeout,
            )
            .await;
            duplex.close().await;
            return None;
        }
        Ok(Ok(accepted)) => accepted,
    };
    let Accepted {
        protocol,
        version,
        rest,
    } = accepted;
    tracing::debug!(protocol = protocol.name(), version, "handshake accepted");
    // The answer goes in the protocol's transfer format, as ASP.NET Core
    // switches the transport to it before answering.
    if write_handshake(
        &mut duplex,
        handshake_answer(&HandshakeResponse::ok(), protocol.transfer_format()),
        options.handshake_timeout,
    )
    .await
    .is_err()
    {
        duplex.close().await;
        return None;
    }
    let limit = options.maximum_receive_message_size;
    // What followed the handshake record is the protocol's, unsplit.
    let mut reader = protocol.reader(limit);
    let leftover = if rest.is_empty() {
        Ok(Messages::default())
    } else {
        reader.push_messages(rest)
    };
    let mut link = Link::new(duplex, protocol.clone());
    // Stateful reconnect needs both the negotiate flag and protocol version 2.
    if link.is_reattachable() && version >= 2 {
        link.make_stateful(options.stateful_reconnect_buffer_size);
    } else {
        link.not_reattachable();
    }

    let (tx, rx) = outbox(options.outgoing_queue_capacity);
    let handle = Arc::new(
        ConnectionHandle::new(
            start.id.clone(),
            start.user.clone(),
            start.transport,
            Some(protocol.clone()),
            tx,
            options.client_result_timeout,
        )
        .with_request(request)
        .with_group_limit(options.maximum_groups_per_connection),
    );
    let expiry = options
        .close_on_authentication_expiration
        .then(|| {
            handle
                .request
                .as_deref()
                .and_then(|request| request.extensions().get::<crate::auth::Identity>())
        })
        .flatten()
        .and_then(crate::auth::Identity::expiry)
        .map(|expiry| close_at_expiry(&handle, expiry));
    runtime.lifetime.local().add(handle.clone());
    link.count_with(handle.meter());
    runtime
        .lifetime
        .on_connected(&handle.id, handle.user.as_deref())
        .await;
    let cx: Context<D::Client> = Context::new(handle.clone(), runtime.lifetime.clone());
    // Boxed: moved into the loop's task, it would stay there beside the
    // locals taken out of it.
    Some(Box::new(Opened {
        link,
        reader,
        leftover,
        protocol,
        handle,
        rx,
        cx,
        expiry,
    }))
}

/// The connection's message loop, to its end.
async fn session<D: HubDispatch>(
    runtime: Arc<HubRuntime<D>>,
    keep_alive: bool,
    opened: Box<Opened<D>>,
) {
    let Opened {
        mut link,
        mut reader,
        leftover,
        protocol,
        handle,
        mut rx,
        cx,
        expiry: _expiry,
    } = *opened;
    let options = &runtime.options;
    let limit = options.maximum_receive_message_size;

    let mut calls = Calls {
        runtime: runtime.clone(),
        cx: cx.clone(),
        handle: handle.clone(),
        protocol: protocol.clone(),
        queue: VecDeque::new(),
        background: Vec::new(),
        stream_tokens: HashMap::new(),
        uploads: HashMap::new(),
        limits: Limits::new(options),
    };
    let mut running: Running<Work> = Running::default();
    let mut ordered_running = 0usize;
    let mut streams: Running<BoxFuture<'static, String>> = Running::default();
    let parallel = options.maximum_parallel_invocations.max(1);

    // on_connected runs first, as the head of the invocation queue, so that frames
    // it sends are written while it runs and no invocation overtakes it.
    {
        let runtime = runtime.clone();
        let cx = cx.clone();
        calls.queue.push_back(Box::pin(async move {
            if let Err(panic) = AssertUnwindSafe(runtime.connected(&cx))
                .catch_unwind()
                .await
            {
                tracing::error!(panic = panic_message(&panic), "on_connected panicked");
            }
            Done {
                ordered: true,
                stream: None,
                completion: None,
            }
        }));
    }

    let stateful = link.is_stateful();
    let mut transport_failed = false;
    let mut last_read = Instant::now();
    let mut last_write = Instant::now();
    // One timer for both keep-alive duties (a ping when nothing was written
    // for the keep-alive interval; the end when nothing was read for the
    // client timeout): it fires at the sooner, and each duty is checked then.
    let next_duty = |last_read: Instant, last_write: Instant| {
        (last_write + options.keep_alive_interval).min(last_read + options.client_timeout)
    };
    let keep_alive_timer = sleep_until(next_duty(last_read, last_write));
    tokio::pin!(keep_alive_timer);
    // Only a stateful connection acknowledges; the interval's boxed timer is
    // made for those alone.
    let mut ack_interval = stateful.then(|| tokio::time::interval(ACK_INTERVAL));

    let mut pending_records = Messages::default();
    // The text frame the pending records were cut from, if they came in one.
    let mut pending_text: Option<Utf8Bytes> = None;
    let mut read_failed = None;
    match leftover {
        Ok(records) => pending_records = records,
        Err(error) => read_failed = Some(error),
    }
    let end = 'session: loop {
        // What the last turn left.
        if std::mem::take(&mut transport_failed) {
            // A write that failed because the server is closing the connection
            // (it fell behind) ends it with that reason, not as a client gone.
            if handle.is_closing() {
                break End::ServerClose(handle.close_error());
            }
            if !stateful {
                break End::ClientLeft(None);
            }
            link.lost();
        }
        if calls.queue.len() > options.pending_invocation_capacity {
            break End::ServerClose(Some(format!(
                "Connection closed with an error. More than {} invocations were waiting to run.",
                options.pending_invocation_capacity
            )));
        }
        // One turn of tokio's cooperative budget per turn of the loop: a
        // client that pipelines hundreds of calls, each ready at once, would
        // otherwise have them all run in one poll of this task while every
        // other connection on the worker waits.
        tokio::task::consume_budget().await;
        if let Some(error) = read_failed.take() {
            break End::ServerClose(Some(read_error(&error, limit)));
        }
        // Messages already read (the rest of the handshake's chunk, or of the last one).
        let text = pending_text.take();
        for record in std::mem::take(&mut pending_records) {
            let parsed = match text.as_deref().and_then(|text| text_of(text, &record)) {
                Some(record) => protocol.parse_text(record),
                None => protocol.parse(&record),
            };
            let message = match parsed {
                Ok(Some(message)) => message,
                Ok(None) => {
                    tracing::debug!("ignored a message of an unknown type");
                    continue;
                }
                Err(error) => {
                    break 'session End::ServerClose(Some(format!(
                        "Connection closed with an error. InvalidDataException: {error}"
                    )));
                }
            };
            match link.accept(&message) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => break 'session End::ServerClose(Some(error)),
            }
            match calls.handle_message(message) {
                Handled::Next => {}
                Handled::End(end) => break 'session end,
                Handled::Wait(wait) => wait.await,
            }
        }
        // Not held across the next read: the transport reuses the frame's buffer
        // once nothing else shares it.
        drop(text);
        while ordered_running < parallel {
            let Some(mut work) = calls.queue.pop_front() else {
                break;
            };
            // Most calls finish on their first poll; those are finished here,
            // without a trip through `running` and another turn of the loop.
            // Each takes a unit of the task's budget, as a turn does.
            tokio::task::consume_budget().await;
            match futures_util::poll!(work.as_mut()) {
                Poll::Ready(done) => {
                    match finish(done, &mut link, &mut rx, &mut calls, &mut streams).await {
                        Written::Sent => last_write = Instant::now(),
                        Written::Failed => {
                            transport_failed = true;
                            continue 'session;
                        }
                        Written::Nothing => {}
                    }
                }
                Poll::Pending => {
                    running.push(work);
                    ordered_running += 1;
                }
            }
        }
        // Calls with upload streams run beside the ordered ones, as in ASP.NET Core:
        // they last as long as the client uploads.
        for work in calls.background.drain(..) {
            running.push(work);
        }

        let writable = link.is_attached() && link.can_send();
        tokio::select! {
            event = link.recv() => match event {
                None => break End::ClientLeft(None),
                Some(Event::Data(message)) => {
                    last_read = Instant::now();
                    if let Message::Text(text) = &message {
                        pending_text = Some(text.clone());
                    }
                    match reader.push_messages(message.into_bytes()) {
                        Ok(records) => pending_records = records,
                        Err(error) => break End::ServerClose(Some(read_error(&error, limit))),
                    }
                }
                Some(Event::Oversized) => {
                    break End::ServerClose(Some(too_large_error(limit)));
                }
                Some(Event::Lost) => {
                    tracing::debug!("transport lost; waiting for the client to reconnect");
                }
                Some(Event::Reattached) => {
                    let replayed = Box::pin(link.replay()).await.is_ok();
                    tracing::debug!(replayed, "client reconnected on a new transport");
                    if !replayed {
                        link.lost();
                    }
                    reader = protocol.reader(limit);
                    last_read = Instant::now();
                    last_write = Instant::now();
                }
            },
            // A close is heard while the transport is away, too; frames wait
            // for one that can take them.
            Some(next) = rx.next(writable) => match next {
                Next::Closing => break End::ServerClose(handle.close_error()),
                Next::Frame(frame) => {
                    if write_batch(&mut link, &mut rx, frame).await.is_ok() {
                        last_write = Instant::now();
                    } else {
                        transport_failed = true;
                    }
                }
            },
            _ = std::future::poll_fn(|cx| match &mut ack_interval {
                Some(interval) => interval.poll_tick(cx).map(drop),
                None => Poll::Pending,
            }), if link.is_attached() => {
                if let Some(ack) = link.take_ack()
                    && write_now(&mut link, ack).await.is_ok()
                {
                    last_write = Instant::now();
                }
            }
            Some(done) = running.next() => {
                if done.ordered {
                    ordered_running -= 1;
                }
                match finish(done, &mut link, &mut rx, &mut calls, &mut streams).await {
                    Written::Sent => last_write = Instant::now(),
                    Written::Failed => transport_failed = true,
                    Written::Nothing => {}
                }
            }
            Some(finished) = streams.next() => {
                calls.stream_tokens.remove(&finished);
            }
            _ = &mut keep_alive_timer, if keep_alive && link.is_attached() => {
                let now = Instant::now();
                if now >= last_read + options.client_timeout {
                    break End::ServerClose(Some(format!(
                        "Connection closed with an error. No message was received from the client within the client timeout ({:?}).",
                        options.client_timeout
                    )));
                }
                if now >= last_write + options.keep_alive_interval {
                    // A failed write shows up as the end of the incoming stream.
                    let _ = write_now(&mut link, runtime.ping.clone()).await;
                    last_write = Instant::now();
                }
                keep_alive_timer.as_mut().reset(next_duty(last_read, last_write));
            }
        }
    };

    let error = match end {
        End::ClientLeft(error) => error,
        End::ServerClose(error) if link.is_attached() => {
            // Invocations already running may finish (bounded), and what they and
            // earlier calls queued goes out before the Close message.
            let drain = async {
                while !running.is_empty() {
                    tokio::select! {
                        Some(done) = running.next() => {
                            if let Some(completion) = done.completion
                                && write_completion(&mut link, &mut rx, completion).await.is_err()
                            {
                                return;
                            }
                        }
                        Some(frame) = rx.recv() => {
                            if write_batch(&mut link, &mut rx, frame).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                while let Some(frame) = rx.try_recv() {
                    if link.feed(frame).await.is_err() {
                        return;
                    }
                }
            };
            // Boxed: a cold path that would otherwise add its size to every
            // connection's task for its whole life.
            let _ = tokio::time::timeout(options.shutdown_timeout, Box::pin(drain)).await;
            let close = HubMessage::Close(Close {
                error: error.clone(),
                allow_reconnect: handle.allow_reconnect(),
            });
            let _ = write_now(&mut link, Frame::hub(close)).await;
            if let Some(error) = &error {
                tracing::debug!(%error, "server closed the connection");
            }
            error
        }
        End::ServerClose(error) => error,
    };
    drop(rx);
    link.close().await;

    for token in calls.stream_tokens.values() {
        token.cancel();
    }
    drop(calls);
    drop(streams);
    handle.fail_results();
    // Invocations already running finish on their own; their sends are dropped.
    if !running.is_empty() {
        tokio::spawn(async move { while running.next().await.is_some() {} }.in_current_span());
    }
    if let Err(panic) = AssertUnwindSafe(runtime.disconnected(&cx, error.as_deref()))
        .catch_unwind()
        .await
    {
        tracing::error!(panic = panic_message(&panic), "on_disconnected panicked");
    }
    runtime.lifetime.on_disconnected(&handle.id).await;
    runtime.lifetime.local().remove(&handle);
    tracing::debug!(error = error.as_deref(), "connection ended");
}

/// The Close error of a connection whose authentication expired.
pub(crate) const AUTHENTICATION_EXPIRED: &str =
    "Connection closed with an error. The connection's authentication expired.";

/// Closes the connection, allowing a reconnect (which brings a fresh token),
/// when its identity expires; the watch ends with the returned guard.
fn close_at_expiry(
    handle: &Arc<ConnectionHandle>,
    expiry: std::time::SystemTime,
) -> tokio_util::sync::DropGuard {
    let left = expiry
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    let ended = CancellationToken::new();
    let watch = ended.clone();
    // Weak: a watch for an expiry hours away must not keep the connection.
    let handle = Arc::downgrade(handle);
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(left) => {
                if let Some(handle) = handle.upgrade() {
                    tracing::debug!(connection = %handle.id, "authentication expired; closing");
                    handle.close_allowing_reconnect(Some(AUTHENTICATION_EXPIRED.to_owned()));
                }
            }
            () = watch.cancelled() => {}
        }
    });
    ended.drop_guard()
}

/// Futures the session drives together: a `FuturesUnordered` made on the
/// first push, as an empty one already allocates, and most connections never
/// run a call that waits, let alone a server stream.
struct Running<F>(Option<FuturesUnordered<F>>);

impl<F> Default for Running<F> {
    fn default() -> Self {
        Running(None)
    }
}

impl<F: Future> Running<F> {
    fn push(&mut self, future: F) {
        self.0
            .get_or_insert_with(FuturesUnordered::new)
            .push(future);
    }

    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(FuturesUnordered::is_empty)
    }
}

impl<F: Future> futures_util::Stream for Running<F> {
    type Item = F::Output;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<F::Output>> {
        match &mut self.0 {
            Some(futures) => futures.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

/// What became of a finished call's Completion.
enum Written {
    /// There was none to write (a stream, a fire-and-forget call), or it waits
    /// for the client to come back.
    Nothing,
    Sent,
    Failed,
}

/// Finishes a call: writes its Completion after what it queued (or keeps it
/// for a client that is away) and starts the server stream it returned.
async fn finish<D: HubDispatch>(
    done: Done,
    link: &mut Link,
    rx: &mut OutboxReceiver,
    calls: &mut Calls<D>,
    streams: &mut Running<BoxFuture<'static, String>>,
) -> Written {
    let mut written = Written::Nothing;
    if let Some(completion) = done.completion {
        if !link.is_attached() {
            // Sequenced and sent once the client is back.
            calls.handle.try_send(&completion);
        } else if write_completion(link, rx, completion).await.is_ok() {
            written = Written::Sent;
        } else {
            written = Written::Failed;
        }
    }
    if let Some((invocation_id, stream)) = done.stream {
        let token = CancellationToken::new();
        calls
            .stream_tokens
            .insert(invocation_id.clone(), token.clone());
        let options = &calls.runtime.options;
        streams.push(Box::pin(pump(
            calls.handle.clone(),
            invocation_id,
            stream,
            token,
            Pace {
                protocol: calls.protocol.clone(),
                window: options.stream_buffer_capacity,
                detailed_errors: options.enable_detailed_errors,
            },
        )));
    }
    written
}

async fn write_now(link: &mut Link, frame: Frame) -> Result<(), TransportClosed> {
    link.feed(frame).await?;
    link.flush().await
}

/// Writes what is already queued, then a call's Completion, then flushes: the
/// call's own sends (queued before it finished) arrive before its result.
async fn write_completion(
    outgoing: &mut Link,
    rx: &mut OutboxReceiver,
    completion: Frame,
) -> Result<(), TransportClosed> {
    while let Some(frame) = rx.try_recv() {
        outgoing.feed(frame).await?;
    }
    outgoing.feed(completion).await?;
    outgoing.flush().await
}

/// `record` as text, when it is a slice of the text frame `text` (a record the
/// reader did not have to piece together from several frames): the transport
/// checked the frame's UTF-8, and records end at ASCII separators, so the
/// protocol need not check it again.
fn text_of<'a>(text: &'a str, record: &[u8]) -> Option<&'a str> {
    let start = (record.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    text.get(start..start.checked_add(record.len())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_read_as_text_only_when_cut_from_the_frame() {
        let frame = "{\"type\":6}\u{1e}{\"type\":1,\"target\":\"é\",\"arguments\":[]}\u{1e}";
        let bytes = frame.as_bytes();
        let second = &bytes[11..bytes.len() - 1];
        assert_eq!(
            text_of(frame, second),
            Some("{\"type\":1,\"target\":\"é\",\"arguments\":[]}")
        );
        assert_eq!(text_of(frame, &bytes[..10]), Some("{\"type\":6}"));
        // A record pieced together elsewhere, or reaching past the frame.
        assert_eq!(text_of(frame, second.to_vec().as_slice()), None);
        assert_eq!(text_of(&frame[..20], second), None);
        assert_eq!(text_of(&frame[12..], second), None);
    }
}
