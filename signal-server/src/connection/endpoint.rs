//! One mounted endpoint of the connection layer: negotiate and the transports,
//! CORS and the origin check, handing each connection to a handler.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method};
use signal_core::TransportType;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::duplex::Duplex;
use super::id::{ConnectionId, ConnectionToken};
use super::negotiate::{self, Negotiations};
use super::options::ConnectionOptions;
use super::relay::{self, Relay};
use super::request::KeptRequest;
use super::transports::http::{self as http_transports, HttpConnections};
use super::transports::websocket::{self, Reattachments};

/// Names the user of a request (from its headers, cookies or extensions, as an
/// authentication layer left them); `None` for an anonymous connection.
pub type UserIdFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// A boxed future, as handlers return them.
pub(crate) type HandlerFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// What runs each connection of an endpoint: a hub, or a raw connection handler.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Runs one connection to its end.
    fn run(&self, start: Start, duplex: Duplex) -> HandlerFuture;
}

/// Who a connection is, as its transport request established.
#[derive(Debug)]
pub(crate) struct Start {
    pub(crate) id: ConnectionId,
    pub(crate) token: Option<ConnectionToken>,
    pub(crate) user: Option<Arc<str>>,
    pub(crate) transport: TransportType,
    pub(crate) remote: Option<SocketAddr>,
    /// Negotiated stateful reconnect (WebSockets only).
    pub(crate) stateful: bool,
    /// Messages the client sent before its first transport request.
    pub(crate) early: Vec<super::duplex::Message>,
    /// The request the connection started with (for long polling, its first
    /// poll): headers, URI and query, what middleware left in its extensions.
    /// Shared, so that moving a `Start` moves a pointer.
    pub(crate) request: Option<Arc<KeptRequest>>,
}

/// The connect request as a connection keeps it, for its whole life (see
/// [`KeptRequest`]), shared so that moving it moves a pointer.
pub(crate) fn keep_request(parts: Parts) -> Arc<KeptRequest> {
    Arc::new(KeptRequest::new(parts))
}

/// What the routes of one endpoint share.
pub(crate) struct Endpoint {
    pub(crate) options: ConnectionOptions,
    pub(crate) user_id: Option<UserIdFn>,
    pub(crate) negotiations: Negotiations,
    pub(crate) http: HttpConnections,
    pub(crate) reattachments: Reattachments,
    pub(crate) allowed_origins: Vec<HeaderValue>,
    pub(crate) handler: Arc<dyn Handler>,
    /// Serves requests for connections other nodes hold (with a backplane).
    pub(crate) relay: std::sync::OnceLock<Arc<dyn Relay>>,
    /// What every negotiate and transport request must pass, when the hub
    /// requires authorization.
    pub(crate) gate: Option<crate::auth::Gate>,
    /// The negotiate response's `availableTransports`, rendered once.
    pub(crate) available_transports: Box<serde_json::value::RawValue>,
    /// Connections running here, for `maximum_connections`.
    live: AtomicUsize,
}

impl Endpoint {
    pub(crate) fn new(
        options: ConnectionOptions,
        user_id: Option<UserIdFn>,
        allowed_origins: Vec<HeaderValue>,
        handler: Arc<dyn Handler>,
    ) -> Self {
        Endpoint {
            negotiations: Negotiations::new(options.negotiate_timeout),
            available_transports: super::negotiate::available_transports(&options.transports),
            options,
            user_id,
            http: HttpConnections::default(),
            reattachments: Reattachments::default(),
            allowed_origins,
            handler,
            relay: std::sync::OnceLock::new(),
            gate: None,
            live: AtomicUsize::new(0),
        }
    }

    /// Why one more connection may not start here (with `pending` negotiated
    /// ones counted too), when the endpoint is at its limit.
    pub(crate) fn full(&self, pending: usize) -> Option<String> {
        let limit = self.options.maximum_connections?;
        (self.live.load(Ordering::Relaxed) + pending >= limit).then(|| {
            format!("The server has reached its limit of {limit} connections for this endpoint; try again later.")
        })
    }

    /// Whether a WebSocket upgrade may come from `origin`: the endpoint's own
    /// origin (as the request's `Host` names it) or one it allows. Requests
    /// without `Origin` come from non-browser clients and are not checked.
    pub(crate) fn origin_allowed(&self, parts: &Parts) -> bool {
        origin_allowed(&self.allowed_origins, parts)
    }

    /// Runs the handler on a connection, then ends its hold on its token (and
    /// its WebSocket reattachments). The handler's future is boxed and made
    /// here, so that what the transport's task keeps for the connection's whole
    /// life is a pointer and this small guard, not the `Start` and `Duplex` it
    /// was made from.
    pub(crate) fn run(
        self: &Arc<Self>,
        start: Start,
        duplex: Duplex,
    ) -> impl Future<Output = ()> + Send + use<> {
        let live =
            LiveConnection::enter(self.clone(), start.token.clone(), duplex.is_reattachable());
        let run = self.handler.run(start, duplex);
        async move {
            run.await;
            drop(live);
        }
    }

    /// The endpoint's routes, to `nest` under its path: `POST /negotiate` and
    /// the transports at `/`, with CORS for the allowed origins; or the same
    /// routes at `path`, to merge.
    pub(crate) fn router<S>(self: Arc<Self>, extra: Router<S>, path: Option<&str>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let cors = (!self.allowed_origins.is_empty()).then(|| cors_layer(&self.allowed_origins));
        let mut transports = get(websocket::connect)
            .post(http_transports::post)
            .delete(http_transports::delete);
        // A relay is set before the routes are made (by a lifetime manager
        // that relays); without one, no middleware runs per request.
        if self.relay.get().is_some() {
            transports = transports.route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                relay::relay_unknown,
            ));
        }
        let mut router = Router::new()
            .route(&mounted(path, "/negotiate"), post(negotiate::negotiate))
            .route(&mounted(path, "/"), transports);
        // Outside the relay: a request is authorized where it arrives.
        if let Some(gate) = self.gate.clone() {
            router = router.route_layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    let (parts, body) = request.into_parts();
                    let refusal = gate.refusal(&parts);
                    let request = axum::extract::Request::from_parts(parts, body);
                    async move {
                        match refusal {
                            None => next.run(request).await,
                            Some(refusal) => refusal,
                        }
                    }
                },
            ));
        }
        let router = router.with_state(self).merge(extra);
        match cors {
            Some(cors) => router.layer(cors),
            None => router,
        }
    }
}

impl Endpoint {
    /// Whether a connection with `token` is pending or live here, or its HTTP
    /// transport is still answering that it ended.
    pub(crate) fn holds(&self, token: &str) -> bool {
        self.negotiations.holds(token) || self.http.contains(token)
    }

    /// The transport routes alone, without the relay: what serves a request
    /// another node forwarded.
    pub(crate) fn transport_routes(self: Arc<Self>) -> Router {
        Router::new()
            .route(
                "/",
                get(websocket::connect)
                    .post(http_transports::post)
                    .delete(http_transports::delete),
            )
            .with_state(self)
    }
}

/// Where a route of an endpoint mounted at `path` is: where `nest` would put it.
pub(crate) fn mounted(path: Option<&str>, route: &str) -> String {
    match path {
        None => route.to_owned(),
        Some(path) if route == "/" => path.to_owned(),
        Some(path) => format!("{path}{route}"),
    }
}

pub(crate) fn origin_allowed(allowed: &[HeaderValue], parts: &Parts) -> bool {
    let Some(origin) = parts.headers.get(http::header::ORIGIN) else {
        return true;
    };
    if allowed.contains(origin) {
        return true;
    }
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

/// Parses origins for [`Endpoint::new`]; fails on one that is not a valid header value.
pub(crate) fn parse_origins<I, T>(
    origins: I,
) -> Result<Vec<HeaderValue>, http::header::InvalidHeaderValue>
where
    I: IntoIterator<Item = T>,
    T: AsRef<str>,
{
    origins
        .into_iter()
        .map(|origin| HeaderValue::from_str(origin.as_ref().trim_end_matches('/')))
        .collect()
}

/// CORS for the origins an endpoint allows: credentials (browsers send
/// cookies), and the headers the SignalR clients send.
fn cors_layer(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            HeaderName::from_static("x-requested-with"),
            HeaderName::from_static("x-signalr-user-agent"),
            http::header::AUTHORIZATION,
            http::header::CONTENT_TYPE,
        ])
}

/// A running connection, counted from `enter` until dropped.
/// A connection's place at its endpoint while its handler runs; given up
/// however the handler ends (it catches panics of user code, but a guard costs
/// nothing and cannot be forgotten).
struct LiveConnection {
    endpoint: Arc<Endpoint>,
    token: Option<ConnectionToken>,
    reattachable: bool,
}

impl LiveConnection {
    fn enter(endpoint: Arc<Endpoint>, token: Option<ConnectionToken>, reattachable: bool) -> Self {
        endpoint.live.fetch_add(1, Ordering::Relaxed);
        LiveConnection {
            endpoint,
            token,
            reattachable,
        }
    }
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        self.endpoint.live.fetch_sub(1, Ordering::Relaxed);
        if let Some(token) = &self.token {
            self.endpoint.negotiations.end(token);
            if self.reattachable {
                self.endpoint.reattachments.remove(token);
            }
        }
    }
}
