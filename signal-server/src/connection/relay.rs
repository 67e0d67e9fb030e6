//! No sticky sessions: a transport request that reaches a node other than the
//! one holding its connection is served through a backplane.
//!
//! Two moves cover every transport. A connection's *first* transport request
//! (the WebSocket upgrade, the Server-Sent Events stream, the first poll) for a
//! token negotiated on another node **claims** it: that node hands over the
//! pending connection (its id, whether stateful reconnect was negotiated, what
//! the client POSTed meanwhile) and the connection lives where its transport
//! is. A *later* request of a connection held elsewhere (a long poll, a send
//! POST, a DELETE) is **forwarded**: the holder serves it through its own
//! routes and the answer comes back. A stateful reconnect's new WebSocket that
//! reaches another node is **tunnelled**: that node accepts it and carries its
//! frames to and from the holder, where the connection resumes as if the
//! socket were its own.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::duplex::{Message, Transport};
use super::endpoint::Endpoint;
use super::transports::http::ChannelOutgoing;
use super::transports::transport_query;
use super::transports::websocket;
use crate::frame::Outbound;

/// A boxed, sendable future (the relay's methods return them).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connection negotiated on one node that has not started yet, as it moves
/// to the node its first transport request reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingConnection {
    /// Its public id.
    pub connection_id: String,
    /// Whether stateful reconnect was negotiated.
    pub stateful: bool,
    /// What the client POSTed before its first transport request.
    pub early: Vec<Message>,
}

/// An HTTP transport request on its way to the node holding its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportRequest {
    /// `GET`, `POST` or `DELETE`.
    pub method: String,
    /// Path and query as the endpoint saw them (`/?id=…`).
    pub uri: String,
    /// The request's headers.
    pub headers: Vec<(String, Bytes)>,
    /// The request's body.
    pub body: Bytes,
}

/// The holder's answer to a [`TransportRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportResponse {
    /// The status code.
    pub status: u16,
    /// The response's headers.
    pub headers: Vec<(String, Bytes)>,
    /// The response's body.
    pub body: Bytes,
}

/// One end of a WebSocket carried between nodes: messages to send the other
/// way, and those that came from it. Dropping `sender` ends the other side's
/// stream; `receiver` ends when the other side has dropped its sender.
pub struct TunnelEnd {
    /// Messages for the other end.
    pub sender: mpsc::Sender<Message>,
    /// Messages from the other end.
    pub receiver: mpsc::Receiver<Message>,
}

impl std::fmt::Debug for TunnelEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelEnd").finish_non_exhaustive()
    }
}

/// How many messages wait in each direction of a tunnel.
pub const TUNNEL_CAPACITY: usize = 256;

/// What a backplane implements to serve transport requests across nodes
/// (`HubLifetimeManager::relays`).
pub trait Relay: Send + Sync + 'static {
    /// Takes over `token`, negotiated on another node and not started yet;
    /// `None` when no node has it pending.
    fn claim<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Option<PendingConnection>>;

    /// Has the node holding `token`'s connection serve `request`; `None`
    /// when no node holds it.
    fn forward<'a>(
        &'a self,
        token: &'a str,
        request: TransportRequest,
    ) -> BoxFuture<'a, Option<TransportResponse>>;

    /// Opens a tunnel to the node holding `token`'s stateful connection,
    /// which takes it as the connection's new WebSocket; `None` when no node
    /// waits for one.
    fn tunnel<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Option<TunnelEnd>>;
}

/// This node's side of the relay: what it holds, and its transport routes to
/// serve a request another node forwarded.
#[derive(Clone)]
pub struct TransportService {
    endpoint: Arc<Endpoint>,
    routes: Router,
}

impl std::fmt::Debug for TransportService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportService").finish_non_exhaustive()
    }
}

impl TransportService {
    pub(crate) fn new(endpoint: Arc<Endpoint>) -> Self {
        // The transport routes without the relay: a forwarded request this
        // node does not hold after all is refused, never forwarded again.
        let routes = endpoint.clone().transport_routes();
        TransportService { endpoint, routes }
    }

    /// Whether a connection with `token` is pending or live on this node.
    pub fn holds(&self, token: &str) -> bool {
        self.endpoint.holds(token)
    }

    /// Hands over a connection negotiated here and not started yet.
    pub fn release(&self, token: &str) -> Option<PendingConnection> {
        self.endpoint.negotiations.release(token)
    }

    /// Takes a tunnel as the new WebSocket of a stateful connection of this
    /// node that waits for its client to come back; `None` when none waits
    /// under `token`. The returned end carries the client's messages in
    /// (`sender`) and the connection's out (`receiver`).
    pub fn reattach(&self, token: &str) -> Option<TunnelEnd> {
        let attach = self.endpoint.reattachments.sender(token)?;
        let (client_tx, client_rx) = mpsc::channel::<Message>(TUNNEL_CAPACITY);
        let (frames_tx, mut frames_rx) = mpsc::channel::<Outbound>(TUNNEL_CAPACITY);
        let (out_tx, out_rx) = mpsc::channel::<Message>(TUNNEL_CAPACITY);
        let incoming = futures_util::stream::unfold(client_rx, |mut rx| async move {
            rx.recv().await.map(|message| (Ok(message), rx))
        });
        let sink = ChannelOutgoing::new(frames_tx, tokio_util::sync::CancellationToken::new());
        attach
            .try_send(Transport::Channel(Box::pin(incoming), sink))
            .ok()?;
        // Outbound frames become messages for the tunnel, text or binary as a
        // WebSocket would carry them.
        tokio::spawn(async move {
            while let Some(frame) = frames_rx.recv().await {
                let message = match frame.text() {
                    Some(text) => Message::Text(text),
                    None => Message::Binary(frame.bytes()),
                };
                if out_tx.send(message).await.is_err() {
                    break;
                }
            }
        });
        Some(TunnelEnd {
            sender: client_tx,
            receiver: out_rx,
        })
    }

    /// Serves a request another node forwarded.
    pub async fn serve(&self, request: TransportRequest) -> TransportResponse {
        let mut builder = http::Request::builder()
            .method(request.method.as_str())
            .uri(request.uri.as_str());
        for (name, value) in valid_headers(&request.headers) {
            builder = builder.header(name, value);
        }
        let response = match builder.body(Body::from(request.body)) {
            Ok(http_request) => match self.routes.clone().oneshot(http_request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            Err(error) => (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
        };
        let (parts, body) = response.into_parts();
        // A poll's or a send's answer: small and finite (a stream would never
        // be forwarded: it is a first request, and claims).
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        TransportResponse {
            status: parts.status.as_u16(),
            headers: headers_of(&parts.headers),
            body,
        }
    }
}

/// The middleware in front of an endpoint's transport routes: a request for a
/// token this node does not hold is claimed or forwarded through the relay.
pub(crate) async fn relay_unknown(
    State(endpoint): State<Arc<Endpoint>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(relay) = endpoint.relay.get().cloned() else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let token = match transport_query(&parts) {
        Ok(query) => query.id,
        Err(_) => None,
    };
    let Some(token) = token.filter(|token| !endpoint.holds(token)) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    if parts.method == Method::GET {
        if let Some(pending) = relay.claim(&token).await {
            tracing::debug!(
                connection = pending.connection_id,
                "claimed a connection negotiated on another node"
            );
            endpoint.negotiations.adopt(&token, pending);
            return next.run(Request::from_parts(parts, body)).await;
        }
        if parts.headers.contains_key(http::header::UPGRADE) {
            return tunnel(&endpoint, relay.as_ref(), &token, parts, body, next).await;
        }
        let streaming = parts
            .headers
            .get(http::header::ACCEPT)
            .is_some_and(|accept| accept.as_bytes().starts_with(b"text/event-stream"));
        if streaming {
            // Only a first request can open a stream: nothing to forward.
            return next.run(Request::from_parts(parts, body)).await;
        }
    }
    let limit = super::transports::http::post_limit(endpoint.options.maximum_receive_message_size);
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body exceeds {limit} bytes."),
        )
            .into_response();
    };
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let forwarded = TransportRequest {
        method: parts.method.as_str().to_owned(),
        // The endpoint's routes are nested: the holder serves them at `/`.
        uri: match uri.find('?') {
            Some(at) => format!("/{}", &uri[at..]),
            None => "/".into(),
        },
        headers: headers_of(&parts.headers),
        body: body.clone(),
    };
    match relay.forward(&token, forwarded).await {
        Some(answer) => {
            let mut response = Response::builder()
                .status(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY));
            for (name, value) in valid_headers(&answer.headers) {
                response = response.header(name, value);
            }
            response
                .body(Body::from(answer.body))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        // Nobody holds it: the usual refusal.
        None => next.run(Request::from_parts(parts, Body::from(body))).await,
    }
}

/// A WebSocket upgrade for a connection held elsewhere: a stateful
/// reconnect. Accepted here and carried to the holder through the relay.
async fn tunnel(
    endpoint: &Arc<Endpoint>,
    relay: &dyn Relay,
    token: &str,
    mut parts: http::request::Parts,
    body: Body,
    next: Next,
) -> Response {
    if !endpoint.origin_allowed(&parts) {
        return super::transports::Refusal::Origin.into_response();
    }
    let Some(end) = relay.tunnel(token).await else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return super::transports::Refusal::NotUpgrade(rejection.body_text()).into_response();
        }
    };
    tracing::debug!("a stateful reconnect reached this node: tunnelled to the connection's node");
    websocket::configure(upgrade, &endpoint.options).on_upgrade(move |socket| pump(socket, end))
}

/// Carries a client's WebSocket through a tunnel until either side ends.
async fn pump(socket: WebSocket, mut end: TunnelEnd) {
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(ws::Message::Text(text))) => {
                    if end.sender.send(Message::Text(text)).await.is_err() { break }
                }
                Some(Ok(ws::Message::Binary(bytes))) => {
                    if end.sender.send(Message::Binary(bytes)).await.is_err() { break }
                }
                Some(Ok(ws::Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            message = end.receiver.recv() => {
                let message = match message {
                    Some(Message::Text(text)) => ws::Message::Text(text),
                    Some(Message::Binary(bytes)) => ws::Message::Binary(bytes),
                    None => break,
                };
                if sink.send(message).await.is_err() { break }
            }
        }
    }
    let _ = sink.close().await;
}

fn headers_of(headers: &http::HeaderMap) -> Vec<(String, Bytes)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                Bytes::copy_from_slice(value.as_bytes()),
            )
        })
        .collect()
}

/// The headers that are valid HTTP (a relayed message is not trusted to be).
fn valid_headers(
    headers: &[(String, Bytes)],
) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
    headers.iter().filter_map(|(name, value)| {
        Some((
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_bytes(value).ok()?,
        ))
    })
}
