//! An in-process transport: a client connection over channels that runs the real
//! handshake, session loop and JSON hub protocol without a socket. For tests, and
//! for code that calls a hub from inside the same process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use signal_core::invoker::RawItemStream;
use signal_core::{
    Arguments, Completion, CompletionOutcome, HandshakeRequest, HubMessage, HubProtocol,
    Invocation, InvokeError, Invoker, JsonHubProtocol, Payload, PayloadError, RawUpload,
    RecordReader, StreamInvocation, StreamItem, TransportType,
};
use tokio::sync::{mpsc, oneshot};

use super::context::HubHandle;
use super::dispatch::HubDispatch;
use super::session;
use crate::connection::{ConnectionId, Duplex, Start};
use crate::frame::Outbound;
use crate::hub::HubRuntime;

/// A hub that in-process connections reach without a network.
pub struct InProcess<D: HubDispatch> {
    runtime: Arc<HubRuntime<D>>,
}

impl<D: HubDispatch> InProcess<D> {
    pub(crate) fn new(runtime: Arc<HubRuntime<D>>) -> Self {
        InProcess { runtime }
    }

    /// A handle to send to this hub's clients.
    pub fn handle(&self) -> HubHandle<D::Client> {
        HubHandle::new(self.runtime.lifetime.clone())
    }

    /// Opens a connection and completes its handshake.
    pub async fn connect(&self) -> Result<InProcessConnection, InvokeError> {
        self.connect_as(None).await
    }

    /// Opens a connection of the user `user_id`.
    pub async fn connect_as(
        &self,
        user_id: Option<&str>,
    ) -> Result<InProcessConnection, InvokeError> {
        self.open(user_id.map(Arc::from), None).await
    }

    /// Opens a connection as an authentication layer would have let it in:
    /// its user is the identity's, and authorization (`#[signal::authorize]`)
    /// and hub code ([`Context::identity`](crate::Context::identity)) see it.
    pub async fn connect_with_identity(
        &self,
        identity: crate::auth::Identity,
    ) -> Result<InProcessConnection, InvokeError> {
        let user = Arc::from(identity.user_id());
        let mut parts = http::Request::new(()).into_parts().0;
        parts.extensions.insert(identity);
        self.open(Some(user), Some(parts)).await
    }

    async fn open(
        &self,
        user: Option<Arc<str>>,
        request: Option<http::request::Parts>,
    ) -> Result<InProcessConnection, InvokeError> {
        let (to_server, from_client) = mpsc::channel::<Bytes>(64);
        let (to_client, mut from_server) = mpsc::channel::<Outbound>(64);
        let id = ConnectionId::random();
        let start = Start {
            id: id.clone(),
            token: None,
            user,
            transport: TransportType::WebSockets,
            remote: None,
            stateful: false,
            early: Vec::new(),
            request: request.map(crate::connection::keep_request),
        };
        let duplex =
            Duplex::in_process(from_client, to_client, self.runtime.options.client_timeout);
        tokio::spawn(session::run(self.runtime.clone(), start, duplex));

        let handshake = HandshakeRequest {
            protocol: JsonHubProtocol::NAME.to_owned(),
            version: 1,
        };
        let closed = || InvokeError::Connection("the hub closed the connection".to_owned());
        to_server
            .send(Bytes::from(handshake.to_record()))
            .await
            .map_err(|_| closed())?;
        let mut reader = RecordReader::new(usize::MAX);
        let mut records = Vec::new();
        while records.is_empty() {
            let frame = from_server.recv().await.ok_or_else(closed)?;
            records = reader.push(frame.as_bytes()).expect("no size limit");
        }
        let answer: signal_core::HandshakeResponse = serde_json::from_slice(&records.remove(0))
            .map_err(|e| InvokeError::Deserialize(PayloadError::Json(e)))?;
        if let Some(error) = answer.error {
            return Err(InvokeError::Connection(error));
        }

        let shared = Arc::new(Shared::default());
        let (invocations_tx, invocations) = mpsc::unbounded_channel();
        tokio::spawn(read_frames(
            from_server,
            reader,
            records,
            shared.clone(),
            invocations_tx,
        ));
        Ok(InProcessConnection {
            id,
            to_server,
            shared,
            invocations: tokio::sync::Mutex::new(invocations),
        })
    }
}

#[derive(Default)]
struct Shared {
    next_id: AtomicU64,
    pending: Mutex<HashMap<String, Pending>>,
    close_error: Mutex<Option<String>>,
}

enum Pending {
    Completion(oneshot::Sender<CompletionOutcome>),
    Stream(mpsc::UnboundedSender<Result<Payload, InvokeError>>),
}

/// An in-process client connection; implements [`Invoker`] for typed proxies.
pub struct InProcessConnection {
    id: ConnectionId,
    to_server: mpsc::Sender<Bytes>,
    shared: Arc<Shared>,
    invocations: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
}

impl InProcessConnection {
    /// The connection's id, as the hub sees it.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.id
    }

    /// The next server → client invocation; `None` once the connection closed.
    /// Takes `&self`, so a test can wait for one while a call is under way.
    pub async fn next_invocation(&self) -> Option<Invocation> {
        self.invocations.lock().await.recv().await
    }

    /// Answers a client-result invocation.
    pub async fn complete(&self, completion: Completion) -> Result<(), InvokeError> {
        self.write(&HubMessage::Completion(completion)).await
    }

    /// Sends a Close message; the hub ends the connection.
    pub async fn close(self) {
        let _ = self
            .write(&HubMessage::Close(signal_core::Close::default()))
            .await;
    }

    async fn write(&self, message: &HubMessage) -> Result<(), InvokeError> {
        let record = JsonHubProtocol
            .to_bytes(message)
            .map_err(|error| match error {
                signal_core::WriteError::Payload { source, .. } => InvokeError::Serialize(source),
                other => InvokeError::Connection(other.to_string()),
            })?;
        self.to_server.send(record).await.map_err(|_| self.closed())
    }

    fn closed(&self) -> InvokeError {
        let error = self.shared.close_error.lock().expect("close lock").clone();
        InvokeError::Connection(error.unwrap_or_else(|| "the connection is closed".to_owned()))
    }

    fn next_id(&self) -> String {
        self.shared
            .next_id
            .fetch_add(1, Ordering::Relaxed)
            .to_string()
    }
}

impl Invoker for InProcessConnection {
    async fn invoke(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> Result<Option<Payload>, InvokeError> {
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .expect("pending lock")
            .insert(id.clone(), Pending::Completion(tx));
        let mut invocation = Invocation::new(method, arguments);
        invocation.invocation_id = Some(id);
        self.write(&HubMessage::Invocation(invocation)).await?;
        match rx.await.map_err(|_| self.closed())? {
            CompletionOutcome::Void => Ok(None),
            CompletionOutcome::Result(value) => Ok(Some(value)),
            CompletionOutcome::Error(error) => Err(InvokeError::Hub(error)),
        }
    }

    async fn send(&self, method: &str, arguments: Arguments) -> Result<(), InvokeError> {
        self.write(&HubMessage::Invocation(Invocation::new(method, arguments)))
            .await
    }

    async fn stream(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> Result<RawItemStream, InvokeError> {
        let id = self.next_id();
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared
            .pending
            .lock()
            .expect("pending lock")
            .insert(id.clone(), Pending::Stream(tx));
        self.write(&HubMessage::StreamInvocation(StreamInvocation {
            invocation_id: id,
            target: method.to_owned(),
            arguments,
            stream_ids: Vec::new(),
            headers: Default::default(),
        }))
        .await?;
        Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        )))
    }

    async fn invoke_with_uploads(
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
            .expect("pending lock")
            .insert(id.clone(), Pending::Completion(tx));
        let mut invocation = Invocation::new(method, arguments);
        invocation.invocation_id = Some(id);
        invocation.stream_ids = stream_ids.clone();
        self.write(&HubMessage::Invocation(invocation)).await?;
        // Each upload's items, then its Completion; all of them side by side,
        // until the hub method answers (it may before reading everything).
        let uploading = futures_util::future::join_all(stream_ids.into_iter().zip(uploads).map(
            |(stream_id, mut upload)| async move {
                while let Some(item) = upload.next().await {
                    let item = StreamItem::new(stream_id.clone(), item);
                    if self.write(&HubMessage::StreamItem(item)).await.is_err() {
                        return;
                    }
                }
                let _ = self
                    .write(&HubMessage::Completion(Completion::void(stream_id)))
                    .await;
            },
        ));
        let mut rx = rx;
        let answered = tokio::select! {
            outcome = &mut rx => Some(outcome),
            _ = uploading => None,
        };
        let outcome = match answered {
            Some(outcome) => outcome,
            None => rx.await,
        };
        match outcome.map_err(|_| self.closed())? {
            CompletionOutcome::Void => Ok(None),
            CompletionOutcome::Result(value) => Ok(Some(value)),
            CompletionOutcome::Error(error) => Err(InvokeError::Hub(error)),
        }
    }
}

/// Routes the hub's messages to waiting calls, streams and the invocation queue.
async fn read_frames(
    mut from_server: mpsc::Receiver<Outbound>,
    mut reader: RecordReader,
    mut records: Vec<Bytes>,
    shared: Arc<Shared>,
    invocations: mpsc::UnboundedSender<Invocation>,
) {
    'frames: loop {
        for record in records.drain(..) {
            let Ok(Some(message)) = JsonHubProtocol.parse(&record) else {
                continue;
            };
            let mut pending = shared.pending.lock().expect("pending lock");
            match message {
                HubMessage::Completion(completion) => {
                    match pending.remove(&completion.invocation_id) {
                        Some(Pending::Completion(tx)) => {
                            let _ = tx.send(completion.outcome);
                        }
                        Some(Pending::Stream(tx)) => {
                            if let CompletionOutcome::Error(error) = completion.outcome {
                                let _ = tx.send(Err(InvokeError::Hub(error)));
                            }
                        }
                        None => {}
                    }
                }
                HubMessage::StreamItem(item) => {
                    if let Some(Pending::Stream(tx)) = pending.get(&item.invocation_id) {
                        let _ = tx.send(Ok(item.item));
                    }
                }
                HubMessage::Invocation(invocation) => {
                    let _ = invocations.send(invocation);
                }
                HubMessage::Close(close) => {
                    *shared.close_error.lock().expect("close lock") = close.error;
                    break 'frames;
                }
                _ => {}
            }
        }
        let Some(frame) = from_server.recv().await else {
            break;
        };
        records = reader.push(frame.as_bytes()).expect("no size limit");
    }
    // Dropping the waiters tells every pending call the connection closed.
    shared.pending.lock().expect("pending lock").clear();
}
