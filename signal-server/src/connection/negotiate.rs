//! `POST {hub}/negotiate`: hands out a connection id and the secret token that
//! opens the connection's transports.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use signal_core::{TransportDescription, TransportType};

use super::duplex::Message;
use super::endpoint::Endpoint;
use super::id::{ConnectionId, ConnectionToken};
use super::relay::PendingConnection;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NegotiateQuery {
    #[serde(default)]
    negotiate_version: u32,
    #[serde(default)]
    use_stateful_reconnect: bool,
}

/// A negotiated connection whose transport has started.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Started {
    pub(crate) id: ConnectionId,
    pub(crate) token: ConnectionToken,
    /// Stateful reconnect was negotiated.
    pub(crate) stateful: bool,
    /// What the client POSTed before its first transport request.
    pub(crate) early: Vec<Message>,
}

/// Negotiated connections waiting for their transport, and the tokens in use.
pub(crate) struct Negotiations {
    timeout: Duration,
    state: Mutex<NegotiationState>,
}

/// Keyed by tokens this server drew at random: a fast hash is safe (a client
/// only looks its token up).
struct NegotiationState {
    pending: HashMap<ConnectionToken, Pending, foldhash::fast::RandomState>,
    active: HashSet<ConnectionToken, foldhash::fast::RandomState>,
    last_sweep: Instant,
}

struct Pending {
    id: ConnectionId,
    created: Instant,
    stateful: bool,
    early: Vec<Message>,
}

/// Why a transport request's token was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// Never issued, expired, or its connection has ended: 404.
    Unknown,
    /// A transport is already open for it: 409.
    InUse,
}

impl Negotiations {
    pub(crate) fn new(timeout: Duration) -> Self {
        Negotiations {
            timeout,
            state: Mutex::new(NegotiationState {
                pending: HashMap::default(),
                active: HashSet::default(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// Issues a connection id and token. With negotiate version 0 the id is the token.
    pub(crate) fn create(&self, version: u32, stateful: bool) -> (ConnectionId, ConnectionToken) {
        let id = ConnectionId::random();
        let token = if version == 0 {
            ConnectionToken::from(id.as_str())
        } else {
            ConnectionToken::random()
        };
        let now = Instant::now();
        let mut state = self.state.lock().expect("negotiations lock");
        // Tokens never used expire; sweeping now and then keeps the map small
        // without a timer task per hub.
        if now.duration_since(state.last_sweep) > self.timeout {
            let timeout = self.timeout;
            state
                .pending
                .retain(|_, pending| now.duration_since(pending.created) < timeout);
            state.last_sweep = now;
        }
        state.pending.insert(
            token.clone(),
            Pending {
                id: id.clone(),
                created: now,
                stateful,
                early: Vec::new(),
            },
        );
        (id, token)
    }

    /// How many negotiated connections wait for their first transport request.
    pub(crate) fn pending(&self) -> usize {
        // Expired ones count until the next sweep: the limit errs on the safe side.
        self.state.lock().expect("negotiations lock").pending.len()
    }

    /// Starts the connection a token names: its id, once.
    pub(crate) fn start(&self, token: &str) -> Result<Started, TokenError> {
        let token = ConnectionToken::from(token);
        let mut state = self.state.lock().expect("negotiations lock");
        if state.active.contains(&token) {
            return Err(TokenError::InUse);
        }
        match state.pending.remove(&token) {
            Some(pending) if pending.created.elapsed() < self.timeout => {
                state.active.insert(token.clone());
                Ok(Started {
                    id: pending.id,
                    token,
                    stateful: pending.stateful,
                    early: pending.early,
                })
            }
            _ => Err(TokenError::Unknown),
        }
    }

    /// Whether `token` was negotiated and waits for its first transport request.
    pub(crate) fn is_pending(&self, token: &str) -> bool {
        let state = self.state.lock().expect("negotiations lock");
        state
            .pending
            .get(&ConnectionToken::from(token))
            .is_some_and(|p| p.created.elapsed() < self.timeout)
    }

    /// Keeps a message POSTed before the connection's first transport request;
    /// false when the token is not pending or already holds `max` of them.
    pub(crate) fn keep_early(&self, token: &str, message: Message, max: usize) -> bool {
        let mut state = self.state.lock().expect("negotiations lock");
        match state.pending.get_mut(&ConnectionToken::from(token)) {
            Some(pending) if pending.early.len() < max => {
                pending.early.push(message);
                true
            }
            _ => false,
        }
    }

    /// Whether `token` is pending or its connection is live on this node.
    pub(crate) fn holds(&self, token: &str) -> bool {
        let token = ConnectionToken::from(token);
        let state = self.state.lock().expect("negotiations lock");
        state.active.contains(&token)
            || state
                .pending
                .get(&token)
                .is_some_and(|p| p.created.elapsed() < self.timeout)
    }

    /// Hands over a pending token to another node (which adopts it).
    pub(crate) fn release(&self, token: &str) -> Option<PendingConnection> {
        let mut state = self.state.lock().expect("negotiations lock");
        let pending = state.pending.remove(&ConnectionToken::from(token))?;
        (pending.created.elapsed() < self.timeout).then(|| PendingConnection {
            connection_id: pending.id.to_string(),
            stateful: pending.stateful,
            early: pending.early,
        })
    }

    /// Takes over a pending token released by another node.
    pub(crate) fn adopt(&self, token: &str, pending: PendingConnection) {
        let mut state = self.state.lock().expect("negotiations lock");
        state.pending.insert(
            ConnectionToken::from(token),
            Pending {
                id: ConnectionId::from(pending.connection_id),
                created: Instant::now(),
                stateful: pending.stateful,
                early: pending.early,
            },
        );
    }

    /// Forgets a token whose connection has ended.
    pub(crate) fn end(&self, token: &ConnectionToken) {
        self.state
            .lock()
            .expect("negotiations lock")
            .active
            .remove(token);
    }
}

pub(crate) async fn negotiate(
    State(runtime): State<Arc<Endpoint>>,
    Query(query): Query<NegotiateQuery>,
) -> Response {
    if runtime.options.maximum_connections.is_some()
        && let Some(full) = runtime.full(runtime.negotiations.pending())
    {
        tracing::debug!("negotiate refused: the endpoint is at its connection limit");
        return (http::StatusCode::SERVICE_UNAVAILABLE, full).into_response();
    }
    let version = query.negotiate_version.min(1);
    // Stateful reconnect only when the client asked and the hub allows it.
    let stateful = query.use_stateful_reconnect && runtime.options.stateful_reconnect;
    let (id, token) = runtime.negotiations.create(version, stateful);
    tracing::debug!(connection = %id, "negotiated");
    let answer = NegotiateAnswer {
        connection_id: id.as_str(),
        connection_token: (version >= 1).then(|| token.as_str()),
        negotiate_version: version,
        available_transports: &runtime.available_transports,
        use_stateful_reconnect: stateful,
    };
    (
        [(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        answer.render(),
    )
        .into_response()
}

/// [`signal_core::NegotiateResponse`] as this server writes it: the same
/// fields in the same order (a test compares the bytes), borrowed, with
/// `availableTransports` rendered once per endpoint.
struct NegotiateAnswer<'a> {
    connection_id: &'a str,
    connection_token: Option<&'a str>,
    negotiate_version: u32,
    available_transports: &'a RawValue,
    use_stateful_reconnect: bool,
}

impl NegotiateAnswer<'_> {
    /// The JSON text, written directly: the ids are base64url, which JSON
    /// needs no escape for, and serde_json's serializer was 3 % of a connect.
    fn render(&self) -> String {
        use std::fmt::Write as _;
        // The property names and punctuation (112 bytes with every property),
        // two 22-character ids and the transports: no growing on the way.
        let mut out = String::with_capacity(160 + self.available_transports.get().len());
        out.push_str("{\"connectionId\":");
        push_string(&mut out, self.connection_id);
        if let Some(token) = self.connection_token {
            out.push_str(",\"connectionToken\":");
            push_string(&mut out, token);
        }
        let _ = write!(out, ",\"negotiateVersion\":{}", self.negotiate_version);
        out.push_str(",\"availableTransports\":");
        out.push_str(self.available_transports.get());
        if self.use_stateful_reconnect {
            out.push_str(",\"useStatefulReconnect\":true");
        }
        out.push('}');
        out
    }
}

/// `text` as a JSON string: quoted as it is when it has nothing to escape
/// (an id), through serde_json otherwise.
fn push_string(out: &mut String, text: &str) {
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(text).expect("a string serializes"));
    }
}

/// The `availableTransports` of an endpoint offering `transports`, in its
/// order of preference.
pub(crate) fn available_transports(transports: &[TransportType]) -> Box<RawValue> {
    let descriptions: Vec<TransportDescription> = transports.iter().map(|t| (*t).into()).collect();
    serde_json::value::to_raw_value(&descriptions).expect("transport descriptions serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_starts_one_connection_once() {
        let negotiations = Negotiations::new(Duration::from_secs(30));
        let (id, token) = negotiations.create(1, true);
        assert_ne!(id.as_str(), token.as_str());
        let started = negotiations.start(token.as_str()).unwrap();
        assert_eq!(started.id, id);
        assert!(started.stateful);
        assert_eq!(negotiations.start(token.as_str()), Err(TokenError::InUse));
        negotiations.end(&token);
        assert_eq!(negotiations.start(token.as_str()), Err(TokenError::Unknown));
        assert_eq!(negotiations.start("nope"), Err(TokenError::Unknown));
    }

    #[test]
    fn the_answer_is_written_as_the_protocol_model_writes_it() {
        let transports = [TransportType::WebSockets, TransportType::LongPolling];
        let rendered = available_transports(&transports);
        for (version, stateful) in [(0, false), (1, false), (1, true)] {
            let model = signal_core::NegotiateResponse {
                connection_id: "id-1".into(),
                connection_token: (version >= 1).then(|| "token \"1\"".into()),
                negotiate_version: version,
                available_transports: transports.iter().map(|t| (*t).into()).collect(),
                use_stateful_reconnect: stateful,
            };
            let answer = NegotiateAnswer {
                connection_id: "id-1",
                connection_token: (version >= 1).then_some("token \"1\""),
                negotiate_version: version,
                available_transports: &rendered,
                use_stateful_reconnect: stateful,
            };
            assert_eq!(answer.render(), serde_json::to_string(&model).unwrap());
        }
    }

    #[test]
    fn version_zero_uses_the_id_as_token() {
        let negotiations = Negotiations::new(Duration::from_secs(30));
        let (id, token) = negotiations.create(0, false);
        assert_eq!(id.as_str(), token.as_str());
    }

    #[test]
    fn unused_tokens_expire() {
        let negotiations = Negotiations::new(Duration::ZERO);
        let (_, token) = negotiations.create(1, false);
        assert_eq!(negotiations.start(token.as_str()), Err(TokenError::Unknown));
    }
}
