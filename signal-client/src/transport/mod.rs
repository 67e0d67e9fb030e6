//! The three transports, behind one shape: a channel of outgoing messages and one
//! of incoming chunks, served by tasks of the transport's own.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use signal_core::{TransferFormat, TransportType};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;

pub(crate) mod long_polling;
pub(crate) mod sse;
pub(crate) mod websocket;

/// How long a closing transport may take to flush what was queued.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Incoming chunks queued before the transport stops reading (backpressure onto
/// the server rather than unbounded memory).
const INCOMING_CAPACITY: usize = 64;

/// One chunk from the server, or why the transport failed. The channel's end
/// without an error is a clean close by the server.
pub(crate) type Incoming = Result<Bytes, String>;

/// Where and how a transport connects.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// The hub URL with `id=<connection token>` (or without, when negotiation is skipped).
    pub(crate) url: Url,
    /// Headers for every request (access token included).
    pub(crate) headers: HeaderMap,
    /// The HTTP client (negotiate, SSE, long polling).
    pub(crate) http: reqwest::Client,
    /// How long a request may take to be answered.
    pub(crate) timeout: Duration,
}

/// A connected transport.
pub(crate) struct Transport {
    pub(crate) kind: TransportType,
    outgoing: Option<mpsc::UnboundedSender<(Bytes, TransferFormat)>>,
    pub(crate) incoming: mpsc::Receiver<Incoming>,
    writer: Option<JoinHandle<()>>,
    readers: Vec<JoinHandle<()>>,
}

impl Transport {
    fn new(
        kind: TransportType,
        outgoing: mpsc::UnboundedSender<(Bytes, TransferFormat)>,
        incoming: mpsc::Receiver<Incoming>,
        writer: JoinHandle<()>,
        readers: Vec<JoinHandle<()>>,
    ) -> Self {
        Transport {
            kind,
            outgoing: Some(outgoing),
            incoming,
            writer: Some(writer),
            readers,
        }
    }

    /// Queues `message`; the writer task sends it in order. Fails when the
    /// writer has ended (its error arrives on `incoming`).
    pub(crate) fn send(&self, message: Bytes, format: TransferFormat) -> Result<(), ()> {
        match &self.outgoing {
            Some(tx) => tx.send((message, format)).map_err(|_| ()),
            None => Err(()),
        }
    }

    /// Ends the transport gracefully: what was queued is sent, then the transport
    /// says goodbye as it does (a WebSocket Close, a long-polling DELETE).
    pub(crate) async fn close(&mut self) {
        self.outgoing = None;
        if let Some(writer) = self.writer.take() {
            let abort = writer.abort_handle();
            if tokio::time::timeout(CLOSE_GRACE, writer).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
        if let Some(writer) = &self.writer {
            writer.abort();
        }
    }
}

/// Connects `kind` to `endpoint`.
pub(crate) async fn connect(kind: TransportType, endpoint: &Endpoint) -> Result<Transport, String> {
    match kind {
        TransportType::WebSockets => websocket::connect(endpoint).await,
        TransportType::ServerSentEvents => sse::connect(endpoint).await,
        TransportType::LongPolling => long_polling::connect(endpoint).await,
    }
}

/// Sends queued messages as POSTs (SSE and long polling), batching whatever
/// queued up during the previous POST into one body, as the official clients do.
async fn post_loop(
    endpoint: Endpoint,
    mut outgoing: mpsc::UnboundedReceiver<(Bytes, TransferFormat)>,
    incoming: mpsc::Sender<Incoming>,
) {
    while let Some((first, format)) = outgoing.recv().await {
        let mut body = bytes::BytesMut::from(&first[..]);
        while let Ok((more, _)) = outgoing.try_recv() {
            body.extend_from_slice(&more);
        }
        let content_type = match format {
            TransferFormat::Text => "text/plain;charset=UTF-8",
            TransferFormat::Binary => "application/octet-stream",
        };
        let result = endpoint
            .http
            .post(endpoint.url.clone())
            .headers(endpoint.headers.clone())
            .header(http::header::CONTENT_TYPE, content_type)
            .timeout(endpoint.timeout)
            .body(body.freeze())
            .send()
            .await;
        let failure = match result {
            Ok(response) if response.status().is_success() => continue,
            Ok(response) => format!("a send was answered with {}", response.status()),
            Err(error) => format!("a send failed: {}", error_chain(&error)),
        };
        let _ = incoming.send(Err(failure)).await;
        return;
    }
}

/// An error and its sources, in one line: reqwest's own text says little ("error
/// sending request") without them.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        // Some errors repeat their source in their own text.
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}
