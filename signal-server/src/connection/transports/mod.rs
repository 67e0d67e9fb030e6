//! What every transport request shares: the `id` query parameter, the refusals
//! (400/403/404/409) and how a request becomes a connection's [`Start`].

pub(crate) mod http;
pub(crate) mod websocket;

use std::net::SocketAddr;

use ::http::StatusCode;
use ::http::request::Parts;
use axum::extract::connect_info::ConnectInfo;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use signal_core::TransportType;

use super::endpoint::{Endpoint, Start};
use super::id::ConnectionId;
use super::negotiate::TokenError;

#[derive(Deserialize)]
pub(crate) struct TransportQuery {
    pub(crate) id: Option<String>,
}

/// Why a transport request was refused; the text is the response body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("The {0} transport is not enabled for this hub.")]
    Disabled(TransportType),
    #[error("Connection ID required")]
    MissingId,
    #[error("No Connection with that ID")]
    Unknown,
    #[error("Another transport is already active for this connection.")]
    InUse,
    #[error("Expected a WebSocket upgrade: {0}")]
    NotUpgrade(String),
    #[error("Invalid query string: {0}")]
    Query(String),
    #[error("WebSocket connections from this origin are not allowed.")]
    Origin,
    #[error("{0}")]
    Full(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match self {
            Refusal::Unknown => StatusCode::NOT_FOUND,
            Refusal::InUse => StatusCode::CONFLICT,
            Refusal::Origin => StatusCode::FORBIDDEN,
            Refusal::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        tracing::debug!(reason = %self, %status, "transport request refused");
        (status, self.to_string()).into_response()
    }
}

/// What a transport request that names a connection resolves to.
pub(crate) fn start_for(
    runtime: &Endpoint,
    parts: &Parts,
    transport: TransportType,
    id: Option<&str>,
) -> Result<Start, Refusal> {
    if !runtime.options.transports.contains(&transport) {
        return Err(Refusal::Disabled(transport));
    }
    let (id, token, stateful, early) = match id {
        // skipNegotiation: the connection starts with the upgrade, and is
        // counted against the limit only now.
        None if transport == TransportType::WebSockets => {
            if let Some(full) = runtime.full(0) {
                return Err(Refusal::Full(full));
            }
            (ConnectionId::random(), None, false, Vec::new())
        }
        None => return Err(Refusal::MissingId),
        Some(token) => match runtime.negotiations.start(token) {
            // Stateful reconnect is for WebSockets only.
            Ok(started) => (
                started.id,
                Some(started.token),
                started.stateful && transport == TransportType::WebSockets,
                started.early,
            ),
            Err(TokenError::Unknown) => return Err(Refusal::Unknown),
            Err(TokenError::InUse) => return Err(Refusal::InUse),
        },
    };
    Ok(Start {
        id,
        token,
        user: crate::auth::user_of(runtime.user_id.as_ref(), parts),
        transport,
        remote: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0),
        stateful,
        early,
        request: None,
    })
}

/// The query of a transport request. Its one parameter, `id`, is found by
/// hand; a query that names it twice goes through axum's `Query`, for its
/// error.
pub(crate) fn transport_query(parts: &Parts) -> Result<TransportQuery, Refusal> {
    let mut ids = parts
        .uri
        .query()
        .map(|query| form_urlencoded::parse(query.as_bytes()))
        .into_iter()
        .flatten()
        .filter(|(name, _)| name == "id");
    let id = ids.next().map(|(_, id)| id.into_owned());
    if ids.next().is_none() {
        return Ok(TransportQuery { id });
    }
    axum::extract::Query::<TransportQuery>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .map_err(|e| Refusal::Query(e.body_text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(uri: &str) -> Result<Option<String>, String> {
        let (parts, ()) = ::http::Request::get(uri).body(()).unwrap().into_parts();
        transport_query(&parts)
            .map(|query| query.id)
            .map_err(|refusal| refusal.to_string())
    }

    #[test]
    fn the_id_is_read_as_axum_reads_it() {
        assert_eq!(query("/hub?id=a%2Bb+c&x=1"), Ok(Some("a+b c".to_owned())));
        assert_eq!(query("/hub?x=1&id="), Ok(Some(String::new())));
        assert_eq!(query("/hub?x=1"), Ok(None));
        assert_eq!(query("/hub"), Ok(None));
        // Named twice: axum's refusal, as before.
        assert_eq!(
            query("/hub?id=a&id=b"),
            Err(
                "Invalid query string: Failed to deserialize query string: duplicate field `id`"
                    .to_owned()
            )
        );
    }
}
