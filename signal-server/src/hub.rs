//! Mounting a hub on axum.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::context::HubHandle;
use crate::dispatch::HubDispatch;
use crate::http_transports::{self, HttpConnections};
use crate::in_process::InProcess;
use crate::lifetime::Lifetime;
use crate::negotiate::{self, Negotiations};
use crate::options::HubOptions;
use crate::websocket::{self, Reattachments};

/// Names the user of a request (from its headers, cookies or extensions, as an
/// authentication layer left them); `None` for an anonymous connection.
pub type UserIdFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// A hub ready to be mounted: its dispatch, its options and its registry.
///
/// ```no_run
/// # use signal_server::{Hub, HubDispatch};
/// # fn mount<D: HubDispatch>(dispatch: D) -> axum::Router {
/// let hub = Hub::new(dispatch);
/// let handle = hub.handle(); // for background tasks
/// axum::Router::new().nest("/chat", hub.router())
/// # }
/// ```
pub struct Hub<D: HubDispatch> {
    dispatch: D,
    options: HubOptions,
    user_id: Option<UserIdFn>,
    lifetime: Arc<Lifetime>,
    allowed_origins: Vec<HeaderValue>,
}

/// What the endpoints of one mounted hub share.
pub(crate) struct HubRuntime<D: HubDispatch> {
    pub(crate) dispatch: D,
    pub(crate) options: HubOptions,
    pub(crate) user_id: Option<UserIdFn>,
    pub(crate) lifetime: Arc<Lifetime>,
    pub(crate) negotiations: Negotiations,
    pub(crate) http: HttpConnections,
    pub(crate) reattachments: Reattachments,
    pub(crate) allowed_origins: Vec<HeaderValue>,
}

impl<D: HubDispatch> HubRuntime<D> {
    /// Whether a WebSocket upgrade may come from `origin`: the hub's own origin
    /// (as the request's `Host` names it) or one the hub allows. Requests
    /// without `Origin` come from non-browser clients and are not checked.
    pub(crate) fn origin_allowed(&self, parts: &Parts) -> bool {
        let Some(origin) = parts.headers.get(http::header::ORIGIN) else {
            return true;
        };
        if self.allowed_origins.contains(origin) {
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
}

impl<D: HubDispatch> Hub<D> {
    /// A hub with default options.
    pub fn new(dispatch: D) -> Self {
        Hub {
            dispatch,
            options: HubOptions::default(),
            user_id: None,
            lifetime: Arc::default(),
            allowed_origins: Vec::new(),
        }
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: HubOptions) -> Self {
        self.options = options;
        self
    }

    /// Changes some options in place.
    pub fn configure(mut self, f: impl FnOnce(&mut HubOptions)) -> Self {
        f(&mut self.options);
        self
    }

    /// Sets how a connection's user id is found from its first request; the
    /// `user` and `users` targets address connections by it.
    pub fn user_id(mut self, f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        self.user_id = Some(Arc::new(f));
        self
    }

    /// Allows browsers on these origins (`https://app.example.com`) to connect
    /// across origins, with credentials: CORS answers for negotiate and the HTTP
    /// transports, and WebSocket upgrades from them. Without this, only the
    /// hub's own origin (and non-browser clients) can connect.
    ///
    /// Fails on an origin that is not a valid header value.
    pub fn allow_origins<I, T>(
        mut self,
        origins: I,
    ) -> Result<Self, http::header::InvalidHeaderValue>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        for origin in origins {
            self.allowed_origins.push(HeaderValue::from_str(
                origin.as_ref().trim_end_matches('/'),
            )?);
        }
        Ok(self)
    }

    /// The options in force.
    pub fn options(&self) -> &HubOptions {
        &self.options
    }

    /// A handle to send to this hub's clients from anywhere.
    pub fn handle(&self) -> HubHandle<D::Client> {
        HubHandle::new(self.lifetime.clone())
    }

    /// The hub's endpoints, to `nest` under the hub's path:
    /// `POST /negotiate` and the transports at `/`.
    pub fn router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let cors = (!self.allowed_origins.is_empty()).then(|| cors_layer(&self.allowed_origins));
        let runtime = self.into_runtime();
        let schema = runtime.options.schema_endpoint.then(|| {
            // The contract does not change while the server runs: render it once.
            let document = serde_json::to_string_pretty(&runtime.dispatch.descriptor())
                .expect("descriptors serialize");
            get(move || {
                let document = document.clone();
                async move { ([(http::header::CONTENT_TYPE, "application/json")], document) }
            })
        });
        let mut router = Router::new()
            .route("/negotiate", post(negotiate::negotiate::<D>))
            .route(
                "/",
                get(websocket::connect::<D>)
                    .post(http_transports::post::<D>)
                    .delete(http_transports::delete::<D>),
            )
            .with_state(runtime);
        if let Some(schema) = schema {
            router = router.route("/schema", schema);
        }
        match cors {
            Some(cors) => router.layer(cors),
            None => router,
        }
    }

    /// The hub without a network: connections in the same process, for tests
    /// and for in-process callers. Runs the real session loop and codec.
    pub fn in_process(self) -> InProcess<D> {
        InProcess::new(self.into_runtime())
    }

    pub(crate) fn into_runtime(self) -> Arc<HubRuntime<D>> {
        Arc::new(HubRuntime {
            dispatch: self.dispatch,
            negotiations: Negotiations::new(self.options.negotiate_timeout),
            options: self.options,
            user_id: self.user_id,
            lifetime: self.lifetime,
            http: HttpConnections::default(),
            reattachments: Reattachments::default(),
            allowed_origins: self.allowed_origins,
        })
    }
}

/// CORS for the origins a hub allows: credentials (browsers send cookies), and
/// the headers the SignalR clients send.
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
