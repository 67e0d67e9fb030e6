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
//! routes and the answer comes back. A stateful reconnect that reaches another
//! node is not covered yet.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use tower::ServiceExt;

use super::duplex::Message;
use super::endpoint::Endpoint;
use super::transports::transport_query;

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

/// What a backplane implements to serve transport requests across nodes
/// (`HubLifetimeManager::relay`).
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
        let streaming = parts.headers.contains_key(http::header::UPGRADE)
            || parts
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
