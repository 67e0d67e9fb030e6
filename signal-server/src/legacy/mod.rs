//! The original ASP.NET SignalR 2.x protocol, for the jQuery client
//! (`signalr` 2.4.3): negotiate, connect, reconnect, poll, start, send, abort
//! and ping at a base path (`/signalr` by default), the four transports
//! (webSockets, serverSentEvents, foreverFrame, longPolling, with JSONP when
//! enabled), the generated `/signalr/hubs` proxy script, and 2.x Persistent
//! Connections.
//!
//! Hubs are the same [`Hub`](crate::Hub)s the Core endpoints serve, with the
//! same registry: a 2.x connection is registered in each hub it subscribes to
//! like a Core connection, with a hub protocol of its own that writes a
//! server → client invocation as the 2.x `{"H","M","A"}` (see `hubs.rs`). So
//! `Clients.all()`, groups and users reach both client families, each
//! message encoded once per family.
//!
//! ```no_run
//! # use signal_server::{Hub, HubDispatch};
//! # use signal_server::legacy::LegacyEndpoint;
//! # fn mount<D: HubDispatch>(hub: Hub<D>) -> axum::Router {
//! let mut legacy = LegacyEndpoint::new();
//! let core = hub.router_with_legacy(&mut legacy); // one hub, both families
//! axum::Router::new().nest("/chat", core).merge(legacy.router())
//! # }
//! ```
//!
//! Reconnects lose nothing: each connection keeps its last
//! [`LegacyOptions::message_buffer_size`] messages (1000) with their cursor;
//! a client that comes back with a cursor older than that is told (an `E`
//! envelope) to start over. Tokens are signed with a key (random per process
//! unless [`LegacyEndpoint::key`] sets one shared by the nodes).

mod connection;
mod hubs;
mod persistent;
mod proxy;
mod token;
mod transports;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use signal_core::TransportType;
use tokio::sync::mpsc;

use crate::connection::{ConnectionId, Message, UserIdFn, parse_origins};
use crate::frame::Frame;
use crate::hub::HubRuntime;
use crate::hub::dispatch::HubDispatch;
use connection::{HubLink, LegacyConnection};
use hubs::{HubEntry, HubInvocation, LegacyHub};
use token::{Protector, Purpose};

pub use hubs::HubState;
pub(crate) use persistent::RawEndpoint;

/// The transports of the 2.x protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LegacyTransport {
    /// `webSockets`.
    WebSockets,
    /// `serverSentEvents`.
    ServerSentEvents,
    /// `foreverFrame` (streamed script chunks in a hidden iframe).
    ForeverFrame,
    /// `longPolling` (and JSONP long polling).
    LongPolling,
}

impl LegacyTransport {
    /// Every transport, in the client's order of preference.
    pub const ALL: [LegacyTransport; 4] = [
        LegacyTransport::WebSockets,
        LegacyTransport::ServerSentEvents,
        LegacyTransport::ForeverFrame,
        LegacyTransport::LongPolling,
    ];

    /// The transport's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            LegacyTransport::WebSockets => "webSockets",
            LegacyTransport::ServerSentEvents => "serverSentEvents",
            LegacyTransport::ForeverFrame => "foreverFrame",
            LegacyTransport::LongPolling => "longPolling",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// What hub code sees as the connection's transport; foreverFrame, which
    /// Core has not, shows as Server-Sent Events (a pushed stream, POSTed sends).
    fn core(self) -> TransportType {
        match self {
            LegacyTransport::WebSockets => TransportType::WebSockets,
            LegacyTransport::ServerSentEvents | LegacyTransport::ForeverFrame => {
                TransportType::ServerSentEvents
            }
            LegacyTransport::LongPolling => TransportType::LongPolling,
        }
    }
}

/// Settings of a 2.x endpoint, with the 2.x server's defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LegacyOptions {
    /// The transports clients may use (all four).
    pub transports: Vec<LegacyTransport>,
    /// How often an idle stream gets a keep-alive (10 s); the client takes the
    /// connection for lost after twice this. `None` turns keep-alives off.
    pub keep_alive: Option<Duration>,
    /// How long a connection without a transport is kept for its client to
    /// come back before it ends (30 s).
    pub disconnect_timeout: Duration,
    /// How long a long poll is held when there is nothing to send (110 s).
    pub connection_timeout: Duration,
    /// How long the client gives each transport to connect (5 s).
    pub transport_connect_timeout: Duration,
    /// Whether JSONP requests (`callback=`) are served (off, as in 2.x).
    pub enable_jsonp: bool,
    /// How many messages each connection keeps for replay (1000, the 2.x
    /// default); a client further behind is told to start over.
    pub message_buffer_size: usize,
    /// The largest message a client may send, in bytes (64 KiB).
    pub max_message_size: usize,
    /// Whether `/hubs` and `/js` serve the proxy script (on).
    pub enable_javascript_proxies: bool,
    /// Whether errors carry details (off); hub errors (`HubError`) always do.
    pub enable_detailed_errors: bool,
}

impl Default for LegacyOptions {
    fn default() -> Self {
        LegacyOptions {
            transports: LegacyTransport::ALL.to_vec(),
            keep_alive: Some(Duration::from_secs(10)),
            disconnect_timeout: Duration::from_secs(30),
            connection_timeout: Duration::from_secs(110),
            transport_connect_timeout: Duration::from_secs(5),
            enable_jsonp: false,
            message_buffer_size: 1000,
            max_message_size: 64 * 1024,
            enable_javascript_proxies: true,
            enable_detailed_errors: false,
        }
    }
}

/// The 2.x hub endpoint (`/signalr`): serves hubs to the jQuery client.
///
/// Add hubs with [`hub`](Self::hub) (2.x only) or
/// [`Hub::router_with_legacy`](crate::Hub::router_with_legacy) (both
/// families, one registry), then merge [`router`](Self::router) into the app.
pub struct LegacyEndpoint {
    path: String,
    hubs: Vec<Arc<dyn LegacyHub>>,
    names: HashMap<String, String>,
    common: Common,
}

impl std::fmt::Debug for LegacyEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyEndpoint")
            .field("path", &self.path)
            .field(
                "hubs",
                &self.hubs.iter().map(|h| h.name()).collect::<Vec<_>>(),
            )
            .field("options", &self.common.options)
            .finish()
    }
}

/// What both kinds of 2.x endpoints (hubs, raw) are configured with.
#[derive(Clone)]
pub(crate) struct Common {
    pub(crate) options: LegacyOptions,
    pub(crate) protector: Protector,
    pub(crate) user_id: Option<UserIdFn>,
    pub(crate) allowed_origins: Vec<HeaderValue>,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            options: LegacyOptions::default(),
            protector: Protector::random(),
            user_id: None,
            allowed_origins: Vec::new(),
        }
    }
}

impl Default for LegacyEndpoint {
    fn default() -> Self {
        Self::new()
    }
}

impl LegacyEndpoint {
    /// An endpoint at `/signalr` with the default options and no hubs.
    pub fn new() -> Self {
        LegacyEndpoint {
            path: "/signalr".to_owned(),
            hubs: Vec::new(),
            names: HashMap::new(),
            common: Common::default(),
        }
    }

    /// Serves the endpoint at `path` instead of `/signalr`.
    #[must_use]
    pub fn path(mut self, path: &str) -> Self {
        self.path = normalize_path(path);
        self
    }

    /// Gives the hub whose descriptor is named `descriptor_name` the 2.x name
    /// `name` (`ChatHub`, so that pages use `$.connection.chatHub`). Set it
    /// before adding the hub. Without it the hub's 2.x name is its descriptor's.
    #[must_use]
    pub fn rename(mut self, descriptor_name: &str, name: &str) -> Self {
        self.names
            .insert(descriptor_name.to_owned(), name.to_owned());
        self
    }

    /// Changes some options in place.
    #[must_use]
    pub fn configure(mut self, f: impl FnOnce(&mut LegacyOptions)) -> Self {
        f(&mut self.common.options);
        self
    }

    /// Signs tokens with `key`, so that every node given the same key accepts
    /// the others' tokens. Without it a random key is made per process.
    #[must_use]
    pub fn key(mut self, key: &[u8]) -> Self {
        self.common.protector = Protector::new(key);
        self
    }

    /// Sets how a connection's user id is found from its requests; the token
    /// binds it, so a request of another user is refused.
    #[must_use]
    pub fn user_id(mut self, f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        self.common.user_id = Some(Arc::new(f));
        self
    }

    /// Allows browsers on these origins to connect across origins (CORS with
    /// credentials). JSONP, when enabled, needs no CORS.
    pub fn allow_origins<I, T>(
        mut self,
        origins: I,
    ) -> Result<Self, http::header::InvalidHeaderValue>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.common.allowed_origins.extend(parse_origins(origins)?);
        Ok(self)
    }

    /// Serves `hub` to 2.x clients only.
    ///
    /// # Panics
    ///
    /// When the hub offers [`MAX_PROTOCOLS`](signal_core::MAX_PROTOCOLS)
    /// protocols already: the 2.x encoding needs a slot.
    #[must_use]
    pub fn hub<D: HubDispatch>(mut self, hub: crate::Hub<D>) -> Self {
        self.add_runtime(hub.into_runtime());
        self
    }

    pub(crate) fn add_runtime<D: HubDispatch>(&mut self, runtime: Arc<HubRuntime<D>>) {
        let descriptor_name = runtime.dispatch.descriptor().name;
        let name = self.names.get(&descriptor_name).cloned();
        match HubEntry::new(runtime, name) {
            Ok(entry) => self.hubs.push(Arc::new(entry)),
            Err(error) => {
                panic!("the hub '{descriptor_name}' cannot be served to 2.x clients: {error}")
            }
        }
    }

    /// The endpoint's routes (`<path>/negotiate`, `/connect`, … `/hubs`), to
    /// `merge` into the app.
    pub fn router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let kind = Kind::Hubs(self.hubs);
        shared_router(Arc::new(Shared::new(self.path, self.common, kind)))
    }
}

impl LegacyEndpoint {
    /// The 2.x routes of a raw connection handler (see
    /// [`PersistentConnection::legacy_router`](crate::persistent::PersistentConnection::legacy_router)).
    pub(crate) fn raw_router<S>(self, handler: Arc<dyn crate::connection::Handler>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        if !self.hubs.is_empty() {
            tracing::warn!(path = %self.path, "hubs added to a persistent connection's 2.x endpoint are not served");
        }
        let raw = RawEndpoint {
            handler,
            write_timeout: Duration::from_secs(30),
        };
        shared_router(Arc::new(Shared::new(
            self.path,
            self.common,
            Kind::Raw(raw),
        )))
    }
}

/// `/signalr/` → `/signalr`; `signalr` → `/signalr`.
pub(crate) fn normalize_path(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

/// Hubs, or a raw connection handler.
pub(crate) enum Kind {
    Hubs(Vec<Arc<dyn LegacyHub>>),
    Raw(RawEndpoint),
}

/// What every request of one 2.x endpoint shares.
pub(crate) struct Shared {
    pub(crate) path: String,
    pub(crate) common: Common,
    pub(crate) kind: Kind,
    connections: Mutex<HashMap<ConnectionId, Arc<LegacyConnection>>>,
}

impl Shared {
    pub(crate) fn new(path: String, common: Common, kind: Kind) -> Self {
        Shared {
            path,
            common,
            kind,
            connections: Mutex::default(),
        }
    }

    fn options(&self) -> &LegacyOptions {
        &self.common.options
    }

    fn connection(&self, id: &ConnectionId) -> Option<Arc<LegacyConnection>> {
        self.connections
            .lock()
            .expect("connections lock")
            .get(id)
            .cloned()
    }

    fn find_hub(&self, name: &str) -> Option<Arc<dyn LegacyHub>> {
        match &self.kind {
            Kind::Hubs(hubs) => hubs
                .iter()
                .find(|hub| hub.name().eq_ignore_ascii_case(name))
                .cloned(),
            Kind::Raw(_) => None,
        }
    }
}

/// The routes of one endpoint.
pub(crate) fn shared_router<S>(shared: Arc<Shared>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut router = Router::new();
    for action in Action::ALL {
        let shared = shared.clone();
        let path = format!("{}/{}", shared.path, action.suffix());
        router = router.route(
            &path,
            any(move |request: Request| handle(shared.clone(), action, request)),
        );
    }
    router
}

/// What a request asks for, by its path's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Negotiate,
    Connect,
    Reconnect,
    Poll,
    Start,
    Send,
    Abort,
    Ping,
    Hubs,
    Js,
}

impl Action {
    const ALL: [Action; 10] = [
        Action::Negotiate,
        Action::Connect,
        Action::Reconnect,
        Action::Poll,
        Action::Start,
        Action::Send,
        Action::Abort,
        Action::Ping,
        Action::Hubs,
        Action::Js,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Action::Negotiate => "negotiate",
            Action::Connect => "connect",
            Action::Reconnect => "reconnect",
            Action::Poll => "poll",
            Action::Start => "start",
            Action::Send => "send",
            Action::Abort => "abort",
            Action::Ping => "ping",
            Action::Hubs => "hubs",
            Action::Js => "js",
        }
    }
}

/// A request's parameters: the query string, then the form body.
pub(crate) struct Params {
    query: HashMap<String, String>,
    form: HashMap<String, String>,
}

impl Params {
    /// From the query first, then the form (long polling sends `messageId`
    /// and `groupsToken` in the body).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .or_else(|| self.form.get(name))
            .map(String::as_str)
    }

    /// From the form first, then the query (`data` of `/send`).
    fn data(&self) -> Option<&str> {
        self.form
            .get("data")
            .or_else(|| self.query.get("data"))
            .map(String::as_str)
    }
}

/// A refused request: a status and a plain-text reason.
pub(crate) fn refuse(status: StatusCode, text: impl Into<String>) -> Response {
    let text = text.into();
    tracing::debug!(%status, reason = %text, "2.x request refused");
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        text,
    )
        .into_response()
}

/// A JSON answer, JSONP-wrapped when the request carries a callback.
pub(crate) fn json_response(callback: Option<&str>, json: String) -> Response {
    match callback {
        Some(callback) => (
            [(
                header::CONTENT_TYPE,
                "application/javascript; charset=UTF-8",
            )],
            format!("{callback}({json});"),
        )
            .into_response(),
        None => (
            [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
            json,
        )
            .into_response(),
    }
}

/// Whether `callback` is a dotted list of JavaScript identifiers (what jQuery
/// generates); anything else could inject script.
fn valid_callback(callback: &str) -> bool {
    !callback.is_empty()
        && callback.len() <= 256
        && callback.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        })
}

async fn handle(shared: Arc<Shared>, action: Action, request: Request) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        route(&shared, action, request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(origin) = origin
        && shared.common.allowed_origins.contains(&origin)
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, x-requested-with"),
        );
    }
    response
}

async fn route(shared: &Arc<Shared>, action: Action, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let upgrade = if action == Action::Connect || action == Action::Reconnect {
        use axum::extract::FromRequestParts;
        axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .ok()
    } else {
        None
    };
    let query: HashMap<String, String> =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
    // The body is a form (sends, polls); read no more than a message may be.
    let limit = shared
        .options()
        .max_message_size
        .saturating_mul(3)
        .max(4096);
    let form = if upgrade.is_none() && parts.method == Method::POST {
        match axum::body::to_bytes(body, limit).await {
            Ok(bytes) => serde_urlencoded::from_bytes(&bytes).unwrap_or_default(),
            Err(_) => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "The request body is larger than the {} bytes a message may be.",
                        shared.options().max_message_size
                    ),
                );
            }
        }
    } else {
        HashMap::new()
    };
    let params = Params { query, form };

    let callback = params.get("callback").map(str::to_owned);
    if let Some(callback) = &callback {
        if !shared.options().enable_jsonp {
            return refuse(StatusCode::FORBIDDEN, "Forbidden: JSONP is disabled.");
        }
        if !valid_callback(callback) {
            return refuse(
                StatusCode::BAD_REQUEST,
                "The callback is not a valid JavaScript identifier.",
            );
        }
    }
    let callback = callback.as_deref();
    let user = shared
        .common
        .user_id
        .as_ref()
        .and_then(|f| f(&parts))
        .map(Arc::<str>::from);

    match action {
        Action::Negotiate => return negotiate(shared, &params, callback, user.as_deref()),
        Action::Ping => return json_response(callback, "{ \"Response\": \"pong\" }".to_owned()),
        Action::Hubs | Action::Js => return proxy_script(shared),
        _ => {}
    }

    let Some(transport) = params.get("transport").and_then(LegacyTransport::parse) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Protocol error: Unknown transport.",
        );
    };
    if !shared.options().transports.contains(&transport) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Protocol error: Unknown transport.",
        );
    }
    let Some(token) = params.get("connectionToken") else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Protocol error: Missing connection token.",
        );
    };
    let Some(payload) = shared
        .common
        .protector
        .unprotect(Purpose::Connection, token)
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The ConnectionId is in the incorrect format.",
        );
    };
    let (id, token_user) = payload.split_once(':').unwrap_or((&payload, ""));
    if !token_user.eq_ignore_ascii_case(user.as_deref().unwrap_or("")) {
        return refuse(
            StatusCode::FORBIDDEN,
            "Unrecognized user identity.  The user identity cannot change during an active SignalR connection.",
        );
    }
    let id = ConnectionId::from(id);

    match action {
        Action::Connect => {
            let connection = match connect(shared, &id, user, &params, transport) {
                Ok(connection) => connection,
                Err(response) => return *response,
            };
            transports::receive(
                shared.clone(),
                connection,
                transport,
                transports::From::Init,
                &params,
                callback,
                upgrade,
            )
            .await
        }
        Action::Reconnect | Action::Poll => {
            let Some(connection) = shared.connection(&id) else {
                return transports::gone(transport, callback, upgrade, &params);
            };
            if let Some(groups) = params.get("groupsToken")
                && !groups_token_valid(shared, &id, groups)
            {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "The groups token is not valid for this connection.",
                );
            }
            let from = match params.get("messageId") {
                Some(cursor) => transports::From::Cursor(cursor.to_owned()),
                None => transports::From::Now,
            };
            transports::receive(
                shared.clone(),
                connection,
                transport,
                from,
                &params,
                callback,
                upgrade,
            )
            .await
        }
        Action::Start => {
            let Some(connection) = shared.connection(&id) else {
                return refuse(StatusCode::BAD_REQUEST, gone_text());
            };
            start(shared, &connection, transport, parts).await;
            json_response(callback, "{ \"Response\": \"started\" }".to_owned())
        }
        Action::Send => {
            let Some(connection) = shared.connection(&id) else {
                return refuse(StatusCode::BAD_REQUEST, gone_text());
            };
            let Some(data) = params.data() else {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "The send request carries no 'data'.",
                );
            };
            if data.len() > shared.options().max_message_size {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "The message is {} bytes long; messages may be at most {} bytes.",
                        data.len(),
                        shared.options().max_message_size
                    ),
                );
            }
            match receive_data(shared, &connection, transport, data.to_owned()).await {
                Ok(Some(result)) => json_response(callback, result),
                Ok(None) => match callback {
                    // The client ignores the parse error an empty JSONP answer gives.
                    Some(_) => json_response(callback, "{}".to_owned()),
                    None => (
                        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
                        "",
                    )
                        .into_response(),
                },
                Err(error) => refuse(StatusCode::BAD_REQUEST, error),
            }
        }
        Action::Abort => {
            if let Some(connection) = shared.connection(&id) {
                end(shared, &connection, true).await;
            }
            ([(header::CONTENT_TYPE, "text/plain")], "").into_response()
        }
        Action::Negotiate | Action::Ping | Action::Hubs | Action::Js => {
            unreachable!("answered above")
        }
    }
}

pub(crate) fn gone_text() -> &'static str {
    "The connection is not known to the server: it ended (it was away longer than the disconnect timeout, or was stopped), or the server restarted. Start a new connection."
}

fn groups_token_valid(shared: &Shared, id: &ConnectionId, token: &str) -> bool {
    shared
        .common
        .protector
        .unprotect(Purpose::Groups, token)
        .and_then(|payload| {
            payload
                .split_once(':')
                .map(|(owner, _)| owner == id.as_str())
        })
        .unwrap_or(false)
}

/// The groups token for `groups`, when they differ from what the client holds.
pub(crate) fn groups_token(shared: &Shared, connection: &LegacyConnection) -> Option<String> {
    let groups = connection.group_names();
    let mut sent = connection.sent_groups.lock().expect("sent groups lock");
    if *sent == groups {
        return None;
    }
    let json = serde_json::to_string(&groups).expect("strings serialize");
    *sent = groups;
    Some(
        shared
            .common
            .protector
            .protect(Purpose::Groups, &format!("{}:{json}", connection.id)),
    )
}

#[derive(Deserialize)]
struct HubName {
    #[serde(alias = "Name", alias = "name")]
    name: String,
}

/// The hubs a `connectionData` names, or the error for the client.
fn subscribed_hubs(shared: &Shared, params: &Params) -> Result<Vec<Arc<dyn LegacyHub>>, String> {
    let Some(data) = params.get("connectionData") else {
        return Ok(Vec::new());
    };
    let names: Vec<HubName> = serde_json::from_str(data).map_err(|error| {
        format!("The connectionData is not a JSON array of {{\"name\": hub}} objects: {error}")
    })?;
    let mut hubs: Vec<Arc<dyn LegacyHub>> = Vec::new();
    for HubName { name } in names {
        let hub = shared
            .find_hub(&name)
            .ok_or_else(|| format!("'{name}' Hub could not be resolved."))?;
        if hubs.iter().any(|h| Arc::ptr_eq(h, &hub)) {
            return Err("Duplicate Hub names found.".to_owned());
        }
        hubs.push(hub);
    }
    Ok(hubs)
}

fn negotiate(
    shared: &Shared,
    params: &Params,
    callback: Option<&str>,
    user: Option<&str>,
) -> Response {
    if let Kind::Hubs(_) = shared.kind
        && let Err(error) = subscribed_hubs(shared, params)
    {
        return refuse(StatusCode::BAD_REQUEST, error);
    }
    let id = ConnectionId::random();
    let token = shared
        .common
        .protector
        .protect(Purpose::Connection, &format!("{id}:{}", user.unwrap_or("")));
    let options = shared.options();
    let keep_alive = match options.keep_alive {
        Some(interval) => seconds(interval * 2),
        None => "null".to_owned(),
    };
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Strings<'a> {
        url: &'a str,
        connection_token: &'a str,
        connection_id: &'a str,
    }
    // Written by hand after the strings: 2.x writes its whole-number doubles as `20.0`.
    let strings = serde_json::to_string(&Strings {
        url: &shared.path,
        connection_token: &token,
        connection_id: id.as_str(),
    })
    .expect("strings serialize");
    let json = format!(
        "{},\"KeepAliveTimeout\":{keep_alive},\"DisconnectTimeout\":{},\"ConnectionTimeout\":{},\"TryWebSockets\":{},\"ProtocolVersion\":\"2.0\",\"TransportConnectTimeout\":{},\"LongPollDelay\":0.0}}",
        strings.trim_end_matches('}'),
        seconds(options.disconnect_timeout),
        seconds(options.connection_timeout),
        options.transports.contains(&LegacyTransport::WebSockets),
        seconds(options.transport_connect_timeout),
    );
    json_response(callback, json)
}

/// Seconds as the 2.x server writes a double: `20.0`, `0.5`.
fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs:.1}")
    } else {
        format!("{secs}")
    }
}

fn proxy_script(shared: &Shared) -> Response {
    let Kind::Hubs(hubs) = &shared.kind else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = if shared.options().enable_javascript_proxies {
        let hubs: Vec<_> = hubs
            .iter()
            .map(|hub| (hub.name().to_owned(), hub.descriptor()))
            .collect();
        proxy::script(&shared.path, &hubs)
    } else {
        "throw new Error('SignalR: JavaScript Hub proxy generation has been disabled.');".to_owned()
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/javascript; charset=UTF-8",
        )],
        body,
    )
        .into_response()
}

/// The connection a `/connect` opens (or the same one, when the client falls
/// back to another transport with its token).
fn connect(
    shared: &Arc<Shared>,
    id: &ConnectionId,
    user: Option<Arc<str>>,
    params: &Params,
    transport: LegacyTransport,
) -> Result<Arc<LegacyConnection>, Box<Response>> {
    let hubs = match &shared.kind {
        Kind::Hubs(_) => subscribed_hubs(shared, params)
            .map_err(|error| Box::new(refuse(StatusCode::BAD_REQUEST, error)))?,
        Kind::Raw(_) => Vec::new(),
    };
    let mut connections = shared.connections.lock().expect("connections lock");
    if let Some(connection) = connections.get(id) {
        return Ok(connection.clone());
    }
    let connection = Arc::new(LegacyConnection::new(
        id.clone(),
        user.clone(),
        shared.options().message_buffer_size,
    ));
    {
        let mut links = connection.hubs.lock().expect("hubs lock");
        for hub in hubs {
            links.push(link_hub(shared, &connection, hub, transport, true));
        }
    }
    connections.insert(id.clone(), connection.clone());
    drop(connections);
    tokio::spawn(watch_disconnect(shared.clone(), connection.clone()));
    tracing::debug!(connection = %id, transport = transport.name(), "2.x connection opened");
    Ok(connection)
}

/// Attaches the connection to `hub`: a handle whose queue is drained into the
/// connection's replay buffer, in the hub's 2.x encoding.
fn link_hub(
    shared: &Arc<Shared>,
    connection: &Arc<LegacyConnection>,
    hub: Arc<dyn LegacyHub>,
    transport: LegacyTransport,
    subscribed: bool,
) -> HubLink {
    let (tx, rx) = mpsc::channel(1024);
    let handle = hub.attach(
        &connection.id,
        connection.user.clone(),
        transport.core(),
        tx,
        subscribed,
    );
    tokio::spawn(pump_frames(
        shared.clone(),
        connection.clone(),
        hub.clone(),
        rx,
        handle.closing().clone(),
    ));
    HubLink {
        hub,
        handle,
        subscribed,
    }
}

/// Moves what a hub queues for the connection into its replay buffer. When
/// the hub closes the connection (`Context::abort`, a server shutdown), what
/// was queued still goes in, then the connection ends: its client is told to
/// start over when it next comes for messages.
async fn pump_frames(
    shared: Arc<Shared>,
    connection: Arc<LegacyConnection>,
    hub: Arc<dyn LegacyHub>,
    mut frames: mpsc::Receiver<Frame>,
    closing: tokio_util::sync::CancellationToken,
) {
    let push = |frame: Frame| match hub.encode(frame) {
        Ok(Some(bytes)) => {
            connection.push(bytes);
        }
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(%error, "a message could not be encoded for a 2.x client; dropped")
        }
    };
    loop {
        tokio::select! {
            _ = connection.ended.cancelled() => return,
            _ = closing.cancelled() => break,
            frame = frames.recv() => match frame {
                Some(frame) => push(frame),
                None => return,
            },
        }
    }
    while let Ok(frame) = frames.try_recv() {
        push(frame);
    }
    tracing::debug!(connection = %connection.id, "the hub closed a 2.x connection");
    close(&shared, &connection).await;
}

/// Ends the connection once it has had no transport for the disconnect timeout.
async fn watch_disconnect(shared: Arc<Shared>, connection: Arc<LegacyConnection>) {
    let timeout = shared.options().disconnect_timeout;
    loop {
        let deadline = match connection.idle_since() {
            Some(since) if since.elapsed() >= timeout => break,
            Some(since) => since + timeout,
            None => tokio::time::Instant::now() + timeout,
        };
        tokio::select! {
            _ = connection.ended.cancelled() => return,
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    tracing::debug!(connection = %connection.id, "2.x client did not come back within the disconnect timeout");
    end(&shared, &connection, false).await;
}

/// Ends a connection once: out of the endpoint and the hubs' registries, with
/// `on_disconnected`; a raw connection's handler sees its messages end.
pub(crate) async fn end(shared: &Shared, connection: &Arc<LegacyConnection>, stop_called: bool) {
    if !connection.begin_end() {
        return;
    }
    forget(shared, connection);
    disconnect(connection, stop_called).await;
}

/// Ends a connection the server closes (the hub, a shutdown): it stays
/// reachable for [`CLOSED_LINGER`], so that its client still gets what was
/// sent before the close, then is told the server closed it.
pub(crate) async fn close(shared: &Arc<Shared>, connection: &Arc<LegacyConnection>) {
    if !connection.begin_end() {
        return;
    }
    {
        let shared = shared.clone();
        let connection = connection.clone();
        tokio::spawn(async move {
            tokio::time::sleep(CLOSED_LINGER).await;
            forget(&shared, &connection);
        });
    }
    disconnect(connection, false).await;
}

/// How long a connection the server closed still answers its client.
const CLOSED_LINGER: Duration = Duration::from_secs(5);

fn forget(shared: &Shared, connection: &Arc<LegacyConnection>) {
    let mut connections = shared.connections.lock().expect("connections lock");
    if connections
        .get(&connection.id)
        .is_some_and(|c| Arc::ptr_eq(c, connection))
    {
        connections.remove(&connection.id);
    }
}

async fn disconnect(connection: &Arc<LegacyConnection>, stop_called: bool) {
    tracing::debug!(connection = %connection.id, stop_called, "2.x connection ended");
    let links = std::mem::take(&mut *connection.hubs.lock().expect("hubs lock"));
    // A connection that never started saw no `on_connected`: no `on_disconnected` either.
    let started = connection
        .started
        .load(std::sync::atomic::Ordering::Acquire);
    for link in links {
        if link.subscribed {
            link.hub.disconnected(link.handle, started).await;
        }
    }
    connection.raw.lock().expect("raw lock").take();
}

/// `/start`: runs `on_connected` of the subscribed hubs (or starts the raw
/// handler) once, before the client is told it has started.
async fn start(
    shared: &Arc<Shared>,
    connection: &Arc<LegacyConnection>,
    transport: LegacyTransport,
    parts: Parts,
) {
    if connection
        .started
        .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        return;
    }
    match &shared.kind {
        Kind::Hubs(_) => {
            let links: Vec<_> = connection
                .hubs
                .lock()
                .expect("hubs lock")
                .iter()
                .filter(|l| l.subscribed)
                .map(|l| (l.hub.clone(), l.handle.clone()))
                .collect();
            for (hub, handle) in links {
                hub.connected(handle).await;
            }
        }
        Kind::Raw(raw) => raw.start(shared.clone(), connection.clone(), transport, parts),
    }
}

/// A message from the client (a `/send`'s `data`, a WebSocket frame): a hub
/// invocation, answered with its result, or a raw connection's message.
pub(crate) async fn receive_data(
    shared: &Arc<Shared>,
    connection: &Arc<LegacyConnection>,
    transport: LegacyTransport,
    data: String,
) -> Result<Option<String>, String> {
    if let Kind::Raw(_) = shared.kind {
        let sender = connection.raw.lock().expect("raw lock").clone();
        return match sender {
            Some(sender) => {
                let _ = sender.send(Message::Text(data.into())).await;
                Ok(None)
            }
            None => Err("The connection has not started: send /start first.".to_owned()),
        };
    }
    let invocation: HubInvocation = serde_json::from_str(&data).map_err(|error| {
        format!("The message is not a hub invocation ({{\"H\",\"M\",\"A\",\"I\"}}): {error}")
    })?;
    if let Some(state) = &invocation.state {
        let length = serde_json::to_string(state).map_or(0, |s| s.len());
        if length > 4096 {
            return Ok(Some(result_json(&hubs::HubResult::error(
                invocation.id_text(),
                "State has exceeded the maximum length of 4096 bytes.".to_owned(),
            ))));
        }
    }
    let Some(hub) = shared.find_hub(&invocation.hub) else {
        return Ok(Some(result_json(&hubs::HubResult::error(
            invocation.id_text(),
            format!("'{}' Hub could not be resolved.", invocation.hub),
        ))));
    };
    let handle = {
        let mut links = connection.hubs.lock().expect("hubs lock");
        match links.iter().find(|l| Arc::ptr_eq(&l.hub, &hub)) {
            Some(link) => link.handle.clone(),
            None => {
                // Invoking a hub the client did not subscribe to is allowed;
                // its handle is not registered, so it gets no broadcasts.
                let link = link_hub(shared, connection, hub.clone(), transport, false);
                let handle = link.handle.clone();
                links.push(link);
                handle
            }
        }
    };
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel::<Bytes>();
    let forward = {
        let connection = connection.clone();
        tokio::spawn(async move {
            let mut last = None;
            while let Some(message) = progress_rx.recv().await {
                last = Some(connection.push(message));
            }
            last
        })
    };
    let result = {
        let _turn = connection.calls.lock().await;
        hub.invoke(handle, invocation, progress_tx).await
    };
    let json = result_json(&result);
    if let Ok(Some(_)) = forward.await {
        // Progress travels in envelopes, the result in this answer, and the
        // client drops progress that comes after the result. So the result
        // follows the progress in the envelopes too (the client takes
        // whichever copy comes first), and this answer waits until the
        // transport has written it (a long-polling client confirms it by
        // polling on), within reason.
        let last = connection.push(Bytes::from(json.clone()));
        connection
            .wait_delivered(
                last,
                transport == LegacyTransport::LongPolling,
                Duration::from_secs(5),
            )
            .await;
    }
    Ok(Some(json))
}

fn result_json(result: &hubs::HubResult) -> String {
    serde_json::to_string(result).unwrap_or_else(|error| {
        serde_json::json!({
            "I": result.id,
            "E": format!("The result could not be serialized: {error}"),
        })
        .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_must_be_identifiers() {
        assert!(valid_callback("jQuery112407791_1700000000000"));
        assert!(valid_callback("a.b.$c"));
        assert!(!valid_callback("alert(1)"));
        assert!(!valid_callback("a..b"));
        assert!(!valid_callback(""));
    }

    #[test]
    fn seconds_read_as_2x_doubles() {
        assert_eq!(seconds(Duration::from_secs(20)), "20.0");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5");
    }
}
