//! The calls of one connection: invocations waiting or running (in order by
//! default), server streams being sent, upload streams being received, and the
//! Completions they end with. The session loop drives them.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::FutureExt;
use futures_util::stream::StreamExt;
use signal_core::{
    Completion, CompletionOutcome, HubMessage, Payload, RegisteredProtocol, StreamItem,
};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::HubRuntime;
use super::context::Context;
use super::dispatch::{BoxFuture, Call, HubDispatch, Output};
use super::error::InvocationError;
use super::session::End;
use super::upload::UploadItem;
use crate::frame::Frame;
use crate::lifetime::ConnectionHandle;

/// A server stream to send, once its method has returned it.
pub(super) type ItemStream =
    futures_util::stream::BoxStream<'static, Result<Payload, crate::HubError>>;

/// What a finished piece of work leaves behind.
pub(super) struct Done {
    /// Whether it held one of the in-order invocation slots.
    pub(super) ordered: bool,
    /// A server stream to send, with its invocation id.
    pub(super) stream: Option<(String, ItemStream)>,
    /// The Completion to write, after whatever the call queued before it.
    pub(super) completion: Option<Frame>,
}

pub(super) type Work = BoxFuture<'static, Done>;

/// The calls of one connection: invocations waiting or running, server streams
/// being sent, upload streams being received.
pub(super) struct Calls<D: HubDispatch> {
    pub(super) runtime: Arc<HubRuntime<D>>,
    pub(super) cx: Context<D::Client>,
    pub(super) handle: Arc<ConnectionHandle>,
    /// The connection's protocol, which completions are encoded in as soon as
    /// they are known.
    pub(super) protocol: RegisteredProtocol,
    pub(super) queue: VecDeque<Work>,
    pub(super) background: Vec<Work>,
    pub(super) stream_tokens: HashMap<String, CancellationToken>,
    pub(super) uploads: HashMap<String, mpsc::Sender<UploadItem>>,
    pub(super) limits: Limits,
}

/// The per-connection limits of [`HubOptions`](crate::HubOptions) that
/// invocations pass before they run.
pub(super) struct Limits {
    rate: Option<Bucket>,
    streams: Option<(usize, Arc<AtomicUsize>)>,
}

impl Limits {
    pub(super) fn new(options: &crate::HubOptions) -> Self {
        Limits {
            rate: options.maximum_invocations_per_second.map(Bucket::new),
            streams: options
                .maximum_streams_per_connection
                .map(|limit| (limit, Arc::new(AtomicUsize::new(0)))),
        }
    }

    /// Takes what a call needs, or says why it may not run.
    fn admit(
        &mut self,
        call: &Call,
        uploads: usize,
    ) -> Result<Option<StreamSlots>, InvocationError> {
        if let Some(bucket) = &mut self.rate
            && !bucket.take()
        {
            return Err(InvocationError::RateLimited {
                method: call.target.clone(),
                limit: bucket.rate,
            });
        }
        let wanted = usize::from(call.streaming) + uploads;
        match &self.streams {
            Some((limit, open)) if wanted > 0 => {
                if open.load(Ordering::Relaxed) + wanted > *limit {
                    return Err(InvocationError::TooManyStreams {
                        method: call.target.clone(),
                        limit: *limit,
                    });
                }
                open.fetch_add(wanted, Ordering::Relaxed);
                Ok(Some(StreamSlots {
                    open: open.clone(),
                    count: wanted,
                }))
            }
            _ => Ok(None),
        }
    }
}

/// A token bucket holding one second's worth of invocations.
struct Bucket {
    rate: u32,
    tokens: f64,
    last: tokio::time::Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Bucket {
            rate,
            tokens: f64::from(rate),
            last: tokio::time::Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * f64::from(self.rate);
        self.tokens = (self.tokens + refill).min(f64::from(self.rate));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Streams a call holds open, counted until it (or its server stream) ends.
pub(super) struct StreamSlots {
    open: Arc<AtomicUsize>,
    count: usize,
}

impl Drop for StreamSlots {
    fn drop(&mut self) {
        self.open.fetch_sub(self.count, Ordering::Relaxed);
    }
}

/// What handling a client's message leaves the session to do.
pub(super) enum Handled {
    /// Read on.
    Next,
    /// End the connection.
    End(End),
    /// Await this first: an upload item waiting for room in its stream, which
    /// slows the client down to the hub method's pace.
    Wait(BoxFuture<'static, ()>),
}

/// Hands an item to an upload stream; when the stream is full, what to await.
fn upload_item(upload: &mpsc::Sender<UploadItem>, item: UploadItem) -> Handled {
    match upload.try_send(item) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Handled::Next,
        Err(mpsc::error::TrySendError::Full(item)) => {
            let upload = upload.clone();
            Handled::Wait(Box::pin(async move {
                let _ = upload.send(item).await;
            }))
        }
    }
}

impl<D: HubDispatch> Calls<D> {
    /// Handles one message from the client. Not an `async fn`: the session
    /// would keep its state (and the message) for the connection's whole life,
    /// for the rare upload item that has to wait.
    pub(super) fn handle_message(&mut self, message: HubMessage) -> Handled {
        if let Some(meter) = self.handle.meter() {
            meter.received(&message);
        }
        match message {
            HubMessage::Invocation(invocation) => {
                let call = Call::new(invocation.target, invocation.arguments, false);
                if let Err(error) =
                    self.enqueue(invocation.invocation_id, call, invocation.stream_ids)
                {
                    return Handled::End(End::ServerClose(Some(error)));
                }
            }
            HubMessage::StreamInvocation(invocation) => {
                let call = Call::new(invocation.target, invocation.arguments, true);
                if let Err(error) =
                    self.enqueue(Some(invocation.invocation_id), call, invocation.stream_ids)
                {
                    return Handled::End(End::ServerClose(Some(error)));
                }
            }
            HubMessage::CancelInvocation(cancel) => {
                if let Some(token) = self.stream_tokens.remove(&cancel.invocation_id) {
                    token.cancel();
                }
            }
            HubMessage::StreamItem(item) => match self.uploads.get(&item.invocation_id) {
                // Waiting here slows the client down to the hub method's pace.
                Some(upload) => return upload_item(upload, UploadItem::Item(item.item)),
                None => {
                    tracing::debug!(stream = %item.invocation_id, "stream item for no upload stream; ignored")
                }
            },
            HubMessage::Completion(completion) => {
                if let Some(upload) = self.uploads.remove(&completion.invocation_id) {
                    if let CompletionOutcome::Error(error) = completion.outcome {
                        return upload_item(&upload, UploadItem::Error(error));
                    }
                } else if !self
                    .handle
                    .complete_result(&completion.invocation_id, completion.outcome)
                {
                    tracing::debug!(invocation = %completion.invocation_id, "completion for no pending call; ignored");
                }
            }
            HubMessage::Close(close) => return Handled::End(End::ClientLeft(close.error)),
            HubMessage::Ping | HubMessage::Ack { .. } | HubMessage::Sequence { .. } => {}
        }
        Handled::Next
    }

    pub(super) fn enqueue(
        &mut self,
        invocation_id: Option<String>,
        call: Call,
        stream_ids: Vec<String>,
    ) -> Result<(), String> {
        let slots = match self.limits.admit(&call, stream_ids.len()) {
            Ok(slots) => slots,
            Err(refused) => {
                tracing::debug!(method = %call.target, reason = %refused, "invocation refused");
                if let Some(invocation_id) = invocation_id {
                    let completion = encode_completion(
                        &self.protocol,
                        invocation_id,
                        CompletionOutcome::Error(refused.to_string()),
                        &call.target,
                        false,
                        &tracing::Span::current(),
                    );
                    self.background.push(Box::pin(std::future::ready(Done {
                        ordered: false,
                        stream: None,
                        completion: Some(completion),
                    })));
                }
                return Ok(());
            }
        };
        let mut streams = Vec::with_capacity(stream_ids.len());
        for id in stream_ids {
            if self.uploads.contains_key(&id) {
                return Err(format!(
                    "Connection closed with an error. InvalidDataException: The stream id '{id}' is already in use."
                ));
            }
            let (tx, rx) = mpsc::channel(self.runtime.options.stream_buffer_capacity.max(1));
            self.uploads.insert(id, tx);
            streams.push(rx);
        }
        let ordered = streams.is_empty();
        let work = invoke(
            self.runtime.clone(),
            self.cx.clone(),
            self.protocol.clone(),
            invocation_id,
            call.with_streams(streams),
            ordered,
            slots,
        );
        if ordered {
            self.queue.push_back(work);
        } else {
            // A call with uploads runs in a task of its own: the session loop
            // waits for room in the upload's channel when the client sends
            // faster than the method reads, and must not be the one that runs
            // the method making that room.
            let task = tokio::spawn(work.in_current_span());
            self.background.push(Box::pin(async move {
                task.await.unwrap_or(Done {
                    ordered: false,
                    stream: None,
                    completion: None,
                })
            }));
        }
        Ok(())
    }
}

pub(super) fn invoke<D: HubDispatch>(
    runtime: Arc<HubRuntime<D>>,
    cx: Context<D::Client>,
    protocol: RegisteredProtocol,
    invocation_id: Option<String>,
    call: Call,
    ordered: bool,
    slots: Option<StreamSlots>,
) -> Work {
    Box::pin(async move {
        let target = call.target.clone();
        let streaming = call.streaming;
        let span =
            tracing::debug_span!("invocation", method = %target, id = invocation_id.as_deref());
        let result = AssertUnwindSafe(runtime.call(&cx, call))
            .catch_unwind()
            .instrument(span.clone())
            .await;
        let outcome = match result {
            Ok(Ok(Output::Stream(stream))) if streaming => {
                // The stream's slots stay taken until the stream ends.
                let stream = match slots {
                    Some(slots) => stream
                        .map(move |item| {
                            let _ = &slots;
                            item
                        })
                        .boxed(),
                    None => stream,
                };
                return Done {
                    ordered,
                    stream: invocation_id.map(|id| (id, stream)),
                    completion: None,
                };
            }
            // ASP.NET Core's texts, bare (`ValidateInvocationMode`).
            Ok(Ok(Output::Stream(_))) => CompletionOutcome::Error(format!(
                "The client attempted to invoke the streaming '{target}' method with a non-streaming invocation."
            )),
            Ok(Ok(_)) if streaming => CompletionOutcome::Error(format!(
                "The client attempted to invoke the non-streaming '{target}' method with a streaming invocation."
            )),
            Ok(Ok(Output::Void)) => CompletionOutcome::Void,
            Ok(Ok(Output::Value(value))) => CompletionOutcome::Result(value),
            Ok(Err(error)) => {
                match &error {
                    InvocationError::Result { source, .. } => {
                        tracing::error!(parent: &span, %source, "the result could not be encoded")
                    }
                    InvocationError::Arguments { source, .. } => {
                        tracing::debug!(parent: &span, %source, "the arguments did not bind")
                    }
                    other => tracing::debug!(parent: &span, error = %other, "invocation failed"),
                }
                CompletionOutcome::Error(
                    error.completion_text(runtime.options.enable_detailed_errors),
                )
            }
            Err(panic) => {
                tracing::error!(parent: &span, panic = panic_message(&panic), "hub method panicked");
                let text =
                    format!("An unexpected error occurred invoking '{target}' on the server.");
                CompletionOutcome::Error(if runtime.options.enable_detailed_errors {
                    // A panic is Rust's unexpected exception; its message is a
                    // detail like any other.
                    format!("{text} Exception: {}", panic_message(&panic))
                } else {
                    text
                })
            }
        };
        let detailed = runtime.options.enable_detailed_errors;
        let completion = invocation_id.map(|invocation_id| {
            encode_completion(&protocol, invocation_id, outcome, &target, detailed, &span)
        });
        Done {
            ordered,
            stream: None,
            completion,
        }
    })
}

/// The Completion of a call, encoded now in the connection's protocol: it goes
/// to this connection only, and a result that cannot be encoded must fail the
/// call (with ASP.NET Core's text), not the connection.
pub(super) fn encode_completion(
    protocol: &RegisteredProtocol,
    invocation_id: String,
    outcome: CompletionOutcome,
    target: &str,
    detailed: bool,
    span: &tracing::Span,
) -> Frame {
    let message = HubMessage::Completion(Completion {
        invocation_id,
        outcome,
        headers: Default::default(),
    });
    match protocol.to_bytes(&message) {
        Ok(framed) => Frame::framed(protocol, framed, true, None),
        Err(source) => {
            tracing::error!(parent: span, %source, "the result could not be encoded");
            let HubMessage::Completion(Completion { invocation_id, .. }) = message else {
                unreachable!("built as a Completion above")
            };
            let error = InvocationError::Result {
                method: target.to_owned(),
                source,
            };
            Frame::hub(HubMessage::Completion(Completion::error(
                invocation_id,
                error.completion_text(detailed),
            )))
        }
    }
}

/// How a server stream is sent: in which protocol, how far ahead of its
/// client, with which error texts.
pub(super) struct Pace {
    pub(super) protocol: RegisteredProtocol,
    pub(super) window: usize,
    pub(super) detailed_errors: bool,
}

/// Sends a server stream's items, then its Completion; stops when cancelled.
pub(super) async fn pump(
    handle: Arc<ConnectionHandle>,
    invocation_id: String,
    stream: ItemStream,
    cancelled: CancellationToken,
    pace: Pace,
) -> String {
    let mut stream = AssertUnwindSafe(stream).catch_unwind();
    // At most `window` items between the producer and the transport: a slow
    // client slows the producer down instead of filling memory.
    let window = Arc::new(Semaphore::new(pace.window.max(1)));
    let outcome = loop {
        let slot = tokio::select! {
            _ = cancelled.cancelled() => break CompletionOutcome::Void,
            slot = window.clone().acquire_owned() => slot.expect("the window is never closed"),
        };
        let next = tokio::select! {
            _ = cancelled.cancelled() => break CompletionOutcome::Void,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(Ok(item))) => {
                let message = HubMessage::StreamItem(StreamItem::new(invocation_id.clone(), item));
                // Encoded here, for this connection only: an item that cannot be
                // encoded ends the stream with an error, as a failing producer does.
                let framed = match pace.protocol.to_bytes(&message) {
                    Ok(framed) => framed,
                    Err(error) => {
                        tracing::error!(%error, "a stream item could not be encoded");
                        let mut text =
                            "An error occurred on the server while streaming results.".to_owned();
                        if pace.detailed_errors {
                            text.push_str(&format!(" SerializationException: {error}"));
                        }
                        break CompletionOutcome::Error(text);
                    }
                };
                let frame = Frame::framed(&pace.protocol, framed, true, Some(slot));
                let sent = tokio::select! {
                    _ = cancelled.cancelled() => break CompletionOutcome::Void,
                    sent = handle.send(frame) => sent,
                };
                if !sent {
                    return invocation_id;
                }
            }
            Some(Ok(Err(error))) => {
                break CompletionOutcome::Error(error.text(
                    "An error occurred on the server while streaming results.",
                    pace.detailed_errors,
                ));
            }
            Some(Err(panic)) => {
                tracing::error!(panic = panic_message(&panic), "hub stream panicked");
                break CompletionOutcome::Error(
                    "An error occurred on the server while streaming results.".to_owned(),
                );
            }
            None => break CompletionOutcome::Void,
        }
    };
    // Drop the producer before the Completion goes out, so it stops promptly.
    drop(stream);
    let completion = Completion {
        invocation_id: invocation_id.clone(),
        outcome,
        headers: Default::default(),
    };
    handle
        .send(Frame::hub(HubMessage::Completion(completion)))
        .await;
    invocation_id
}

pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}
