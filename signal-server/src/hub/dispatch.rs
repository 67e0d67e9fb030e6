//! The runtime's hub interface: what the `#[signal::hub]` macro implements for a
//! hub type, and what a hand-written hub implements.

use futures_util::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use signal_core::{ArgumentError, Arguments, HubDescriptor, Payload};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::upload::{UploadItem, UploadStream};

use super::clients::ClientContract;
use super::context::Context;
use super::error::{HubError, InvocationError};

pub use crate::lifetime::BoxFuture;

/// One call of a hub method, as the runtime hands it to [`HubDispatch::dispatch`].
#[derive(Debug)]
pub struct Call {
    /// The method name as the client sent it (match it without case).
    pub target: String,
    /// The positional arguments (upload streams not included).
    pub arguments: Arguments,
    /// Whether the client asked for a stream (StreamInvocation).
    pub streaming: bool,
    streams: Vec<Option<mpsc::Receiver<UploadItem>>>,
}

impl Call {
    /// A call without upload streams.
    pub fn new(target: impl Into<String>, arguments: Arguments, streaming: bool) -> Self {
        Call {
            target: target.into(),
            arguments,
            streaming,
            streams: Vec::new(),
        }
    }

    pub(crate) fn with_streams(mut self, streams: Vec<mpsc::Receiver<UploadItem>>) -> Self {
        self.streams = streams.into_iter().map(Some).collect();
        self
    }

    /// Fails unless the client uploads exactly `expected` streams.
    pub fn expect_streams(&self, expected: usize) -> Result<(), ArgumentError> {
        if self.streams.len() == expected {
            Ok(())
        } else {
            Err(ArgumentError::StreamCount {
                expected,
                actual: self.streams.len(),
            })
        }
    }

    /// The `index`th upload stream (in the order of the invocation's `streamIds`),
    /// typed; each can be taken once.
    pub fn take_stream<T: DeserializeOwned>(
        &mut self,
        index: usize,
    ) -> Result<UploadStream<T>, ArgumentError> {
        let actual = self.streams.len();
        self.streams
            .get_mut(index)
            .and_then(Option::take)
            .map(UploadStream::new)
            .ok_or(ArgumentError::StreamCount {
                expected: index + 1,
                actual,
            })
    }
}

/// What a hub method produced.
pub enum Output {
    /// Nothing: the Completion carries no result.
    Void,
    /// A value, encoded by the caller's protocol.
    Value(Payload),
    /// A server → client stream of items, each encoded by the caller's protocol.
    Stream(BoxStream<'static, Result<Payload, HubError>>),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Void => f.write_str("Void"),
            Output::Value(v) => f.debug_tuple("Value").field(v).finish(),
            Output::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

impl Output {
    /// `value` as the method's result. It is encoded when the Completion is
    /// written, in the caller's protocol (JSON or MessagePack); a value that
    /// cannot be encoded fails the call with
    /// [`InvocationError::Result`]'s text.
    pub fn value<T: Serialize + Send + Sync + 'static>(value: T) -> Output {
        Output::Value(Payload::value(value))
    }

    /// A stream of `T` items as the method's result, each item encoded in the
    /// caller's protocol when it is sent.
    pub fn stream<T: Serialize + Send + Sync + 'static>(stream: HubStream<T>) -> Output {
        use futures_util::StreamExt;
        Output::Stream(stream.map(|item| item.map(Payload::value)).boxed())
    }
}

/// A hub: routes calls by name and answers lifecycle events.
///
/// The `#[signal::hub]` macro implements this for the types that implement a hub
/// trait; hand-written implementations are possible for dynamic hubs.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a hub",
    label = "not a hub",
    note = "implement a `#[signal::hub]` trait for `{Self}` and mount it with `.into_hub()`"
)]
pub trait HubDispatch: Send + Sync + 'static {
    /// The client contract this hub's [`Context`] is typed with (`()` for untyped).
    type Client: ?Sized + ClientContract;

    /// The hub's contract.
    fn descriptor(&self) -> HubDescriptor;

    /// Runs the method `call.target` names (compared without ASCII case).
    fn dispatch<'a>(
        &'a self,
        cx: &'a Context<Self::Client>,
        call: Call,
    ) -> BoxFuture<'a, Result<Output, InvocationError>>;

    /// Runs once the connection's handshake is done, before any invocation.
    fn on_connected<'a>(&'a self, cx: &'a Context<Self::Client>) -> BoxFuture<'a, ()> {
        let _ = cx;
        Box::pin(async {})
    }

    /// Runs once the connection has ended; `error` says why when it ended on a fault.
    fn on_disconnected<'a>(
        &'a self,
        cx: &'a Context<Self::Client>,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        let _ = (cx, error);
        Box::pin(async {})
    }
}

/// What a server-streaming hub method returns: items, or an error that ends the
/// stream. Build one with `Box::pin(stream)`.
pub type HubStream<T> = BoxStream<'static, Result<T, HubError>>;

/// A server stream whose producer is told when the stream ends: `make` gets a
/// token that is cancelled when the runtime drops the stream — the client
/// cancelled it, the connection ended, or it completed. For producers that run
/// work outside the stream itself (spawned tasks, subscriptions).
///
/// ```
/// # use signal_server::{HubStream, cancellable_stream};
/// fn prices() -> HubStream<f64> {
///     cancellable_stream(|cancelled| {
///         let (tx, rx) = tokio::sync::mpsc::channel(16);
///         tokio::spawn(async move {
///             let mut price = 100.0;
///             loop {
///                 tokio::select! {
///                     _ = cancelled.cancelled() => break,
///                     sent = tx.send(Ok(price)) => if sent.is_err() { break },
///                 }
///                 price += 0.5;
///             }
///         });
///         futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) })
///     })
/// }
/// ```
pub fn cancellable_stream<T, S>(make: impl FnOnce(CancellationToken) -> S) -> HubStream<T>
where
    T: 'static,
    S: futures_util::Stream<Item = Result<T, HubError>> + Send + 'static,
{
    use futures_util::StreamExt;

    let token = CancellationToken::new();
    let guard = token.clone().drop_guard();
    let stream = make(token);
    Box::pin(stream.map(move |item| {
        // The guard lives as long as the stream; dropping it cancels the token.
        let _ = &guard;
        item
    }))
}
