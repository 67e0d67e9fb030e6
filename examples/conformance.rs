//! The `conformance` hub: a fixed contract that acceptance suites outside this
//! repository depend on. Keep it exactly.
//!
//! Run: `cargo run --example conformance` (PORT defaults to 5000). Environment:
//! `SIGNAL_TRANSPORTS` restricts the transports (comma list of `WebSockets`,
//! `ServerSentEvents`, `LongPolling`, in the order negotiate offers them);
//! `SIGNAL_CORS_ORIGINS` lists the origins allowed across origins (unset:
//! same-origin only). Timeouts in milliseconds, so that suites can watch them
//! act in seconds: `SIGNAL_KEEP_ALIVE_MS`, `SIGNAL_CLIENT_TIMEOUT_MS`,
//! `SIGNAL_HANDSHAKE_TIMEOUT_MS`, `SIGNAL_LONG_POLL_TIMEOUT_MS` (how long a poll
//! is held), `SIGNAL_LONG_POLL_DISCONNECT_MS` (how long without a poll ends the
//! connection). `SIGNAL_DETAILED_ERRORS=1` turns on detailed errors.
//! `SIGNAL_AUTH_TOKEN=T` makes `/conformance` and `/echo` require the bearer
//! token `T` (`Authorization: Bearer T` or `access_token=T`; others get 401)
//! and names every connection's user `conformance-user`.
//! `SIGNAL_MAX_CONNECTIONS`, `SIGNAL_MAX_INVOCATIONS_PER_SECOND`,
//! `SIGNAL_MAX_GROUPS_PER_CONNECTION` and `SIGNAL_MAX_STREAMS_PER_CONNECTION`
//! set the hub's limits of those names (`HubOptions::maximum_*`; unlimited
//! by default).
//! `SIGNAL_REDIS=redis://HOST:PORT` joins a Redis backplane (hub name
//! `Conformance`, no channel prefix), so that several conformance servers
//! serve one hub.
//!
//! Beside the hub, `/echo` is a raw (persistent) connection endpoint that sends
//! every message it receives back to its sender unchanged, in the format it
//! came in (text or binary).
//!
//! For ASP.NET SignalR 2.x clients (the jQuery client): `/signalr` serves the
//! same hub under the 2.x name `conformance` (its Core groups and users are
//! shared with 2.x connections; `counter` answers with the list of its items
//! and sends each as progress first), `/signalr/hubs` its proxy script,
//! `/raw-echo` a 2.x persistent connection that sends every message back to its
//! sender, JSONP is allowed, and `/lib/jquery.js` and `/lib/jquery.signalR.js`
//! serve jQuery 3.7.1 and `signalr` 2.4.3 from the npm install. The 2.x
//! timeouts follow `SIGNAL_KEEP_ALIVE_MS` (keep-alive) and
//! `SIGNAL_LEGACY_DISCONNECT_MS` (disconnect timeout, 30 s by default);
//! `SIGNAL_CORS_ORIGINS` allows those origins at `/signalr` too.

#[path = "support/mod.rs"]
mod support;

#[path = "support/conformance_hub.rs"]
mod conformance_hub;

use std::sync::Arc;
use std::time::Duration;

use conformance_hub::{ConformanceHub, echo};
use signal::TransportType;
use signal::legacy::LegacyEndpoint;
use signal::persistent::PersistentConnection;
use signal_examples_api::conformance::Conformance;

fn main() -> std::io::Result<()> {
    signal::runtime()?.block_on(run())
}

async fn run() -> std::io::Result<()> {
    support::init_tracing();
    // Mounted at its path by the hub itself (merged below, not nested): the
    // same routes, without a URI rewritten per request.
    let mut hub = ConformanceHub
        .into_hub()
        .path("/conformance")
        .configure(|o| o.stateful_reconnect = true);
    if let Some(names) = support::env_list("SIGNAL_TRANSPORTS") {
        let transports = names
            .iter()
            .map(|n| n.parse::<TransportType>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(std::io::Error::other)?;
        hub = hub.configure(|o| o.transports = transports);
    }
    let transports = hub.options().transports.clone();
    let keep_alive = support::env_millis("SIGNAL_KEEP_ALIVE_MS")?;
    let client_timeout = support::env_millis("SIGNAL_CLIENT_TIMEOUT_MS")?;
    let handshake_timeout = support::env_millis("SIGNAL_HANDSHAKE_TIMEOUT_MS")?;
    let long_poll = support::env_millis("SIGNAL_LONG_POLL_TIMEOUT_MS")?;
    let long_poll_disconnect = support::env_millis("SIGNAL_LONG_POLL_DISCONNECT_MS")?;
    let detailed = std::env::var("SIGNAL_DETAILED_ERRORS").is_ok_and(|v| v == "1");
    hub = hub.configure(|o| {
        o.keep_alive_interval = keep_alive.unwrap_or(o.keep_alive_interval);
        o.client_timeout = client_timeout.unwrap_or(o.client_timeout);
        o.handshake_timeout = handshake_timeout.unwrap_or(o.handshake_timeout);
        o.long_polling_timeout = long_poll.unwrap_or(o.long_polling_timeout);
        o.long_polling_disconnect_timeout =
            long_poll_disconnect.unwrap_or(o.long_polling_disconnect_timeout);
        o.enable_detailed_errors = detailed;
    });
    let max_connections = support::env_number("SIGNAL_MAX_CONNECTIONS")?;
    let max_rate = support::env_number("SIGNAL_MAX_INVOCATIONS_PER_SECOND")?;
    let max_groups = support::env_number("SIGNAL_MAX_GROUPS_PER_CONNECTION")?;
    let max_streams = support::env_number("SIGNAL_MAX_STREAMS_PER_CONNECTION")?;
    hub = hub.configure(|o| {
        o.maximum_connections = max_connections;
        o.maximum_invocations_per_second = max_rate;
        o.maximum_groups_per_connection = max_groups;
        o.maximum_streams_per_connection = max_streams;
    });
    if let Some(origins) = support::env_list("SIGNAL_CORS_ORIGINS") {
        hub = hub.allow_origins(origins).map_err(std::io::Error::other)?;
    }
    // With SIGNAL_AUTH_TOKEN, the layer below lets only its bearer through,
    // as the user `conformance-user` (its `Identity` names the connection's user).
    let auth_token: Option<Arc<str>> = std::env::var("SIGNAL_AUTH_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(Arc::from);
    // Part of the contract: the backplane name is `Conformance`, no prefix.
    let (hub, backplane) = support::backplane(hub, "Conformance")?;
    let handle = hub.handle();
    let mut echo = PersistentConnection::new(echo).configure(|o| o.transports = transports);
    if let Some(origins) = support::env_list("SIGNAL_CORS_ORIGINS") {
        echo = echo.allow_origins(origins).map_err(std::io::Error::other)?;
    }
    let legacy_disconnect = support::env_millis("SIGNAL_LEGACY_DISCONNECT_MS")?;
    let legacy_options = |legacy: LegacyEndpoint| {
        legacy.configure(|o| {
            o.enable_jsonp = true;
            o.enable_detailed_errors = detailed;
            if let Some(keep_alive) = keep_alive {
                o.keep_alive = Some(keep_alive);
            }
            if let Some(timeout) = legacy_disconnect {
                o.disconnect_timeout = timeout;
            }
        })
    };
    let mut legacy = legacy_options(LegacyEndpoint::new().rename("Conformance", "conformance"));
    if let Some(origins) = support::env_list("SIGNAL_CORS_ORIGINS") {
        legacy = legacy
            .allow_origins(origins)
            .map_err(std::io::Error::other)?;
    }
    // One handler, one registry: Core clients at `/echo`, 2.x at `/raw-echo`.
    let (echo, raw_echo) = echo.routers(legacy_options(LegacyEndpoint::new().path("/raw-echo")));
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script =
        |path: &str| tower_http::services::ServeFile::new(root.join("node_modules").join(path));
    let (mut hub_routes, mut echo) = (hub.router_with_legacy(&mut legacy), echo);
    if let Some(token) = auth_token {
        let layer = axum::middleware::from_fn_with_state(token, require_bearer);
        hub_routes = hub_routes.layer(layer.clone());
        echo = echo.layer(layer);
    }
    let app = axum::Router::new()
        .merge(hub_routes)
        .nest("/echo", echo)
        .merge(legacy.router())
        .merge(raw_echo)
        .route_service("/lib/jquery.js", script("jquery/dist/jquery.js"))
        .route_service(
            "/lib/jquery.signalR.js",
            script("signalr/jquery.signalR.js"),
        );
    backplane.ready().await;
    support::serve(
        app,
        async move { handle.shutdown(Duration::from_secs(5)).await },
    )
    .await
}

/// The user every connection is when `SIGNAL_AUTH_TOKEN` is set.
const AUTH_USER: &str = "conformance-user";

/// Lets through requests that carry the bearer `token`, in `Authorization:
/// Bearer` or, as browsers' WebSockets and EventSource must, in the
/// `access_token` query parameter, as the user `conformance-user`; answers
/// 401 to the others (CORS preflights carry no credentials and pass).
async fn require_bearer(
    axum::extract::State(token): axum::extract::State<Arc<str>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (mut parts, body) = request.into_parts();
    if parts.method != axum::http::Method::OPTIONS {
        if signal::auth::bearer_token(&parts).as_deref() != Some(&*token) {
            return (
                axum::http::StatusCode::UNAUTHORIZED,
                [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                "A bearer token is required.",
            )
                .into_response();
        }
        parts
            .extensions
            .insert(signal::auth::Identity::new(AUTH_USER));
    }
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}
