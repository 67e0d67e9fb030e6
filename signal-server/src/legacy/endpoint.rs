//! The requests of a 2.x endpoint: routing by the path's suffix, the
//! parameters (query, then form), tokens and JSONP checks, negotiate, ping and
//! the proxy script; connections' lives are in `lifecycle.rs`, their
//! receive requests in `transports.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;

use super::connection::LegacyConnection;
use super::hubs::LegacyHub;
use super::lifecycle::{connect, end, receive_data, start};
use super::token::Purpose;
use super::{Common, LegacyOptions, LegacyTransport, RawEndpoint, proxy, transports};
use crate::connection::ConnectionId;

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
    pub(crate) connections: Mutex<HashMap<ConnectionId, Arc<LegacyConnection>>>,
    /// The `/hubs` script: the hubs do not change while the server runs, so
    /// it is rendered once.
    script: Option<Arc<str>>,
}

impl Shared {
    pub(crate) fn new(path: String, common: Common, kind: Kind) -> Self {
        let script = match &kind {
            Kind::Hubs(hubs) if common.options.enable_javascript_proxies => {
                let hubs: Vec<_> = hubs
                    .iter()
                    .map(|hub| (hub.name().to_owned(), hub.descriptor()))
                    .collect();
                Some(proxy::script(&path, &hubs).into())
            }
            Kind::Hubs(_) => Some(
                "throw new Error('SignalR: JavaScript Hub proxy generation has been disabled.');"
                    .into(),
            ),
            Kind::Raw(_) => None,
        };
        Shared {
            path,
            common,
            kind,
            connections: Mutex::default(),
            script,
        }
    }

    pub(crate) fn options(&self) -> &LegacyOptions {
        &self.common.options
    }

    pub(crate) fn connection(&self, id: &ConnectionId) -> Option<Arc<LegacyConnection>> {
        self.connections
            .lock()
            .expect("connections lock")
            .get(id)
            .cloned()
    }

    pub(crate) fn find_hub(&self, name: &str) -> Option<Arc<dyn LegacyHub>> {
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
    let user = crate::auth::user_of(shared.common.user_id.as_ref(), &parts);
    // A hub that requires authorization refuses every request that names it,
    // as its Core endpoint does.
    if let Ok(hubs) = super::endpoint::subscribed_hubs(shared, &params)
        && let Some(refusal) = hubs.iter().find_map(|hub| hub.refusal(&parts))
    {
        return refusal;
    }

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
            let connection = match connect(shared, &id, user, &params, transport, &parts) {
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
                // Nothing to answer: an empty body, which the client skips
                // (for JSONP it ignores the parse error an empty script gives).
                Ok(None) => {
                    let content_type = match callback {
                        Some(_) => "application/javascript; charset=UTF-8",
                        None => "application/json; charset=UTF-8",
                    };
                    ([(header::CONTENT_TYPE, content_type)], "").into_response()
                }
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
pub(crate) fn subscribed_hubs(
    shared: &Shared,
    params: &Params,
) -> Result<Vec<Arc<dyn LegacyHub>>, String> {
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
    let Some(script) = &shared.script else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/javascript; charset=UTF-8",
        )],
        script.to_string(),
    )
        .into_response()
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
