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
//! [`LegacyOptions::message_buffer_size`] messages (1000), at most
//! [`LegacyOptions::message_buffer_bytes`] (4 MiB), with their cursor; a
//! client that comes back with a cursor older than that is told (an `E`
//! envelope) to start over. Tokens are signed with a key (random per process
//! unless [`LegacyEndpoint::key`] sets one shared by the nodes).

mod connection;
mod endpoint;
mod hubs;
mod lifecycle;
mod persistent;
mod proxy;
mod token;
mod transports;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http::HeaderValue;
use http::request::Parts;
use signal_core::TransportType;

use crate::connection::{UserIdFn, parse_origins};
use crate::hub::HubRuntime;
use crate::hub::dispatch::HubDispatch;
use hubs::{HubEntry, LegacyHub};
use token::Protector;

pub(crate) use endpoint::{Kind, Params, Shared, gone_text, groups_token, refuse, shared_router};
pub use hubs::HubState;
pub(crate) use lifecycle::{end, receive_data};
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
    /// How many bytes of messages each connection keeps for replay at most
    /// (4 MiB; the newest message is kept whatever its size).
    pub message_buffer_bytes: usize,
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
            message_buffer_bytes: 4 * 1024 * 1024,
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

    /// Serves `hub` to 2.x clients only. The hub's user id hook and allowed
    /// origins are its Core endpoint's: set this endpoint's own.
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
        let descriptor_name = runtime.name.clone();
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
