//! Who is connecting and what they may call: the [`Identity`] an
//! authentication layer leaves on a request, the bearer token where the
//! official clients put it, and the named policies `#[signal::authorize]`
//! refers to.
//!
//! signal does not authenticate: the application's own tower layer or axum
//! middleware does, as for any other route, and inserts an [`Identity`] into
//! the request's extensions. signal reads it from the request a connection
//! starts with: it names the connection's user (the `user` targets), hub code
//! reads it with [`Context::identity`](crate::Context::identity), and
//! authorization decides on it.
//!
//! ```
//! use axum::extract::Request;
//! use axum::middleware::Next;
//! use axum::response::{IntoResponse, Response};
//! use signal_server::auth::{Identity, bearer_token};
//!
//! /// Accepts the token "secret" as the user "ada"; a real layer verifies a JWT.
//! async fn authenticate(mut request: Request, next: Next) -> Response {
//!     let (mut parts, body) = request.into_parts();
//!     match bearer_token(&parts).as_deref() {
//!         Some("secret") => {
//!             parts.extensions.insert(Identity::new("ada").with_claim("role", "admin"));
//!         }
//!         Some(_) => return http::StatusCode::UNAUTHORIZED.into_response(),
//!         None => {} // anonymous: hubs that require a user answer 401
//!     }
//!     next.run(Request::from_parts(parts, body)).await
//! }
//! # fn mount(hub: axum::Router) -> axum::Router {
//! axum::Router::new()
//!     .nest("/hub", hub)
//!     .layer(axum::middleware::from_fn(authenticate))
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value};
use signal_core::Authorize;

use crate::connection::UserIdFn;

/// An authenticated user, as an authentication layer established it: a user
/// id, claims, and when the credentials expire.
///
/// Insert one into a request's extensions
/// (`parts.extensions.insert(identity)`) in front of a hub's routes.
#[derive(Clone, PartialEq)]
pub struct Identity {
    user_id: Arc<str>,
    claims: Map<String, Value>,
    expires_at: Option<SystemTime>,
}

impl Identity {
    /// The identity of user `user_id`, without claims.
    pub fn new(user_id: impl Into<String>) -> Self {
        Identity {
            user_id: user_id.into().into(),
            claims: Map::new(),
            expires_at: None,
        }
    }

    /// Adds a claim (`"role"`, `"admin"`); a claim with several values is an array.
    #[must_use]
    pub fn with_claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// Adds every claim of a decoded token (a JWT's payload, say).
    #[must_use]
    pub fn with_claims(mut self, claims: Map<String, Value>) -> Self {
        self.claims.extend(claims);
        self
    }

    /// Says when the credentials expire: with
    /// [`HubOptions::close_on_authentication_expiration`](crate::HubOptions::close_on_authentication_expiration)
    /// the connection is closed then.
    #[must_use]
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// The user's id: what `clients().user(id)` addresses.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// One claim's value.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// Every claim.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Whether claim `name` is the string `value`, or an array holding it (as
    /// a JWT's `roles` are).
    pub fn has_claim(&self, name: &str, value: &str) -> bool {
        match self.claims.get(name) {
            Some(Value::String(s)) => s == value,
            Some(Value::Array(values)) => values.iter().any(|v| v.as_str() == Some(value)),
            _ => false,
        }
    }

    /// When the credentials expire, if the layer said.
    pub fn expiry(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

/// Claims can hold secrets (emails, tenant ids): the debug form shows their
/// names only.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user_id", &self.user_id)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The bearer token of a request: the `Authorization: Bearer …` header, else
/// the `access_token` query parameter, which the official clients send over
/// WebSockets and Server-Sent Events (browsers cannot set headers on them).
pub fn bearer_token(parts: &Parts) -> Option<String> {
    if let Some(header) = parts.headers.get(http::header::AUTHORIZATION) {
        let value = header.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
            .then(|| token.trim().to_owned());
    }
    let query = parts.uri.query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(name, _)| name == "access_token")
        .map(|(_, token)| token)
        .filter(|token| !token.is_empty())
}

/// `uri` with the secrets SignalR clients put in query strings replaced by
/// `[redacted]`: the bearer token (`access_token`) and the connection token
/// (`id`, which opens the connection's transports). For request logs, which
/// would otherwise keep them:
///
/// ```
/// # use signal_server::auth::redact_query;
/// let uri: http::Uri = "/chat?id=abc&access_token=eyJ.x.y&transport=1".parse().unwrap();
/// assert_eq!(redact_query(&uri), "/chat?id=[redacted]&access_token=[redacted]&transport=1");
/// ```
///
/// With tower-http's `TraceLayer`:
/// `TraceLayer::new_for_http().make_span_with(|r: &Request<_>| tracing::info_span!("request", uri = %redact_query(r.uri())))`.
pub fn redact_query(uri: &http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name == "access_token" || name == "id" => {
                format!("{name}=[redacted]")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{}?{}", uri.path(), pairs.join("&"))
}

/// The identity an authentication layer left on a request.
pub fn identity(parts: &Parts) -> Option<&Identity> {
    parts.extensions.get::<Identity>()
}

/// Decides one named policy for an identity.
pub type PolicyFn = Arc<dyn Fn(&Identity) -> bool + Send + Sync>;

/// The named policies `#[signal::authorize(policy = "…")]` refers to, each
/// decided by user code.
#[derive(Clone, Default)]
pub struct Policies {
    policies: HashMap<String, PolicyFn>,
}

impl fmt::Debug for Policies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.policies.keys()).finish()
    }
}

/// How a requirement was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allowed,
    /// No identity: 401 on HTTP, the unauthorized text on a call.
    Unauthenticated,
    /// An identity a policy refuses: 403 on HTTP.
    Forbidden,
}

impl Policies {
    /// No policies.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the policy `name`.
    pub fn insert(&mut self, name: impl Into<String>, policy: PolicyFn) {
        self.policies.insert(name.into(), policy);
    }

    /// The names a requirement uses that no policy answers to.
    pub(crate) fn missing<'a>(&self, requirement: &'a Authorize) -> Vec<&'a str> {
        requirement
            .policies
            .iter()
            .filter(|p| !self.policies.contains_key(p.as_str()))
            .map(String::as_str)
            .collect()
    }

    /// Decides `requirement` for `identity`. A policy no one registered
    /// refuses (mounting checks for them first).
    pub(crate) fn decide(&self, requirement: &Authorize, identity: Option<&Identity>) -> Decision {
        let Some(identity) = identity else {
            return Decision::Unauthenticated;
        };
        let allowed = requirement.policies.iter().all(|name| {
            self.policies
                .get(name)
                .is_some_and(|policy| policy(identity))
        });
        if allowed {
            Decision::Allowed
        } else {
            Decision::Forbidden
        }
    }
}

/// What the connection layer checks on every negotiate and transport request
/// of an endpoint whose hub requires authorization.
#[derive(Clone)]
pub(crate) struct Gate {
    pub(crate) requirement: Authorize,
    pub(crate) policies: Policies,
}

impl Gate {
    /// The response to send when `parts` may not connect.
    pub(crate) fn refusal(&self, parts: &Parts) -> Option<axum::response::Response> {
        use axum::response::IntoResponse;
        match self.policies.decide(&self.requirement, identity(parts)) {
            Decision::Allowed => None,
            Decision::Unauthenticated => Some(
                (
                    StatusCode::UNAUTHORIZED,
                    [(
                        http::header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer"),
                    )],
                    "Authentication is required to connect to this hub.",
                )
                    .into_response(),
            ),
            Decision::Forbidden => Some(
                (
                    StatusCode::FORBIDDEN,
                    "The user is not authorized to connect to this hub.",
                )
                    .into_response(),
            ),
        }
    }
}

/// The user a connection starts as: the hub's user id hook when it has one,
/// else the user of the request's [`Identity`].
pub(crate) fn user_of(hook: Option<&UserIdFn>, parts: &Parts) -> Option<Arc<str>> {
    match hook {
        Some(hook) => hook(parts).map(Arc::from),
        None => identity(parts).map(|identity| identity.user_id.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, authorization: Option<&str>) -> Parts {
        let mut request = http::Request::builder().uri(uri);
        if let Some(value) = authorization {
            request = request.header(http::header::AUTHORIZATION, value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_bearer_token_comes_from_the_header_or_the_query() {
        assert_eq!(
            bearer_token(&parts("/hub?access_token=q", Some("Bearer h"))).as_deref(),
            Some("h")
        );
        assert_eq!(
            bearer_token(&parts("/hub?id=1&access_token=a%2Bb%3D", None)).as_deref(),
            Some("a+b=")
        );
        assert_eq!(bearer_token(&parts("/hub", Some("Basic xyz"))), None);
        assert_eq!(bearer_token(&parts("/hub?access_token=", None)), None);
        assert_eq!(bearer_token(&parts("/hub", None)), None);
    }

    #[test]
    fn policies_decide_with_the_identity() {
        let mut policies = Policies::new();
        policies.insert(
            "admin",
            Arc::new(|identity: &Identity| identity.has_claim("role", "admin")),
        );
        let admin = Identity::new("ada").with_claim("role", serde_json::json!(["admin", "ops"]));
        let user = Identity::new("bob").with_claim("role", "user");
        let requirement = Authorize::new(Some("admin"));
        assert_eq!(
            policies.decide(&requirement, Some(&admin)),
            Decision::Allowed
        );
        assert_eq!(
            policies.decide(&requirement, Some(&user)),
            Decision::Forbidden
        );
        assert_eq!(
            policies.decide(&requirement, None),
            Decision::Unauthenticated
        );
        assert_eq!(
            policies.decide(&Authorize::new(None), Some(&user)),
            Decision::Allowed
        );
        assert_eq!(
            policies.decide(&Authorize::new(Some("nobody")), Some(&admin)),
            Decision::Forbidden
        );
        assert_eq!(
            policies.missing(&Authorize::new(Some("nobody"))),
            ["nobody"]
        );
    }

    #[test]
    fn claims_stay_out_of_debug_output() {
        let identity = Identity::new("ada").with_claim("email", "ada@example.com");
        let debug = format!("{identity:?}");
        assert!(debug.contains("email") && !debug.contains("ada@example.com"));
    }
}
