//! Authentication with JSON Web Tokens, authorization per hub and per method,
//! and a hub filter — in axum's idiom.
//!
//! Run: `cargo run --example auth` (PORT defaults to 5000).
//!
//! - `POST /token` with `{"user": "ada", "roles": ["admin"], "ttlSeconds": 60}`
//!   answers `{"token": "…"}`, a JWT signed with HS256. It stands for an
//!   identity provider: it checks no password.
//! - An axum middleware in front of the hub verifies the bearer token the
//!   official clients send (`Authorization: Bearer`, or `access_token` on
//!   WebSockets and Server-Sent Events) with the `jsonwebtoken` crate, and
//!   leaves a `signal::auth::Identity` (user, claims, expiry) on the request.
//!   A token that does not verify gets 401 here; no token passes on, and the
//!   hub, which requires an authenticated user, answers 401 itself.
//! - `/secure` is the `Secure` hub: `#[signal::authorize]` on the trait (every
//!   connection needs a user), `#[signal::authorize(policy = "admin")]` on
//!   `announce` (only the `admin` role); the policy is decided here, from the
//!   token's claims. A connection is closed when its token expires, with
//!   `allowReconnect`, so a client with automatic reconnect comes back with a
//!   fresh token from its `accessTokenFactory`.
//! - A hub filter logs each call with its user and duration, and refuses
//!   `announce` texts longer than 280 characters before the method runs.
//!
//! `SIGNAL_JWT_SECRET` sets the signing secret (a fixed development value
//! otherwise: set it in production).

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use signal::auth::{Identity, bearer_token};
use signal::filter::{FilterResult, HubFilter, Invocation, Next as FilterNext};
use signal::{BoxFuture, Context, HubError, InvocationError};

/// What the server calls on clients.
#[signal::client]
pub trait SecureClient {
    /// An announcement from an admin.
    async fn announcement(&self, from: String, text: String);
}

/// Who the caller is, as the hub sees them.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    /// The user id (the token's `sub`).
    pub user: String,
    /// The token's roles.
    pub roles: Vec<String>,
}

/// A hub for signed-in users; announcing needs the `admin` role.
#[signal::hub(client = SecureClient)]
#[signal::authorize]
pub trait Secure {
    /// The caller's user and roles, from their token.
    async fn who_am_i(&self, cx: &Context<dyn SecureClient>) -> Result<WhoAmI, HubError>;
    /// Sends `text` to every connection of `user`.
    async fn send_to_user(
        &self,
        cx: &Context<dyn SecureClient>,
        user: String,
        text: String,
    ) -> Result<(), HubError>;
    /// Sends an announcement to everyone.
    #[signal::authorize(policy = "admin")]
    async fn announce(&self, cx: &Context<dyn SecureClient>, text: String) -> Result<(), HubError>;
}

struct SecureHub;

impl Secure for SecureHub {
    async fn who_am_i(&self, cx: &Context<dyn SecureClient>) -> Result<WhoAmI, HubError> {
        // The hub requires a user, so there is an identity.
        let identity = cx
            .identity()
            .ok_or_else(|| HubError::new("not signed in"))?;
        Ok(WhoAmI {
            user: identity.user_id().to_owned(),
            roles: roles(identity),
        })
    }

    async fn send_to_user(
        &self,
        cx: &Context<dyn SecureClient>,
        user: String,
        text: String,
    ) -> Result<(), HubError> {
        let from = cx.user_id().unwrap_or_default().to_owned();
        cx.clients().user(user).announcement(from, text).await?;
        Ok(())
    }

    async fn announce(&self, cx: &Context<dyn SecureClient>, text: String) -> Result<(), HubError> {
        let from = cx.user_id().unwrap_or_default().to_owned();
        cx.clients().all().announcement(from, text).await?;
        Ok(())
    }
}

/// The claims of the tokens `/token` issues.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    roles: Vec<String>,
}

fn roles(identity: &Identity) -> Vec<String> {
    identity
        .claim("roles")
        .and_then(|roles| roles.as_array())
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The signing keys.
struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRequest {
    user: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default = "default_ttl")]
    ttl_seconds: u64,
}

fn default_ttl() -> u64 {
    3600
}

/// Issues a token for whoever asks: a stand-in for a real identity provider.
async fn issue(State(keys): State<Arc<Keys>>, Json(request): Json<TokenRequest>) -> Response {
    let user = request.user.trim();
    if user.is_empty() || user.chars().count() > 64 || request.roles.len() > 16 {
        return (
            StatusCode::BAD_REQUEST,
            "user must be 1 to 64 characters, with at most 16 roles",
        )
            .into_response();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = Claims {
        sub: user.to_owned(),
        exp: now + request.ttl_seconds.clamp(1, 24 * 3600),
        roles: request.roles,
    };
    match jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding) {
        Ok(token) => Json(serde_json::json!({ "token": token })).into_response(),
        Err(error) => {
            tracing::error!(%error, "a token could not be signed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Verifies the bearer token, if any, and leaves its `Identity` on the request.
async fn authenticate(State(keys): State<Arc<Keys>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Some(token) = bearer_token(&parts) {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is exact: the hub closes the connection at `exp`.
        validation.leeway = 0;
        match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            &token,
            &keys.decoding,
            &validation,
        ) {
            Ok(data) => {
                let claims = data.claims;
                let Some(user) = claims.get("sub").and_then(|s| s.as_str()) else {
                    return invalid_token();
                };
                let expires = claims
                    .get("exp")
                    .and_then(serde_json::Value::as_u64)
                    .map(|exp| UNIX_EPOCH + Duration::from_secs(exp));
                let mut identity = Identity::new(user).with_claims(claims.clone());
                if let Some(expires) = expires {
                    identity = identity.expires_at(expires);
                }
                parts.extensions.insert(identity);
            }
            Err(error) => {
                tracing::debug!(%error, "bearer token refused");
                return invalid_token();
            }
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

fn invalid_token() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            axum::http::header::WWW_AUTHENTICATE,
            "Bearer error=\"invalid_token\"",
        )],
        "The bearer token is invalid or expired.",
    )
        .into_response()
}

/// Logs every call with its user and duration; refuses long announcements
/// before the method runs (validation in one place, for every method).
struct Audit;

impl HubFilter for Audit {
    fn invoke<'a>(
        &'a self,
        invocation: Invocation<'a>,
        next: FilterNext<'a>,
    ) -> BoxFuture<'a, FilterResult> {
        Box::pin(async move {
            let method = invocation.method().to_owned();
            let user = invocation.context().user_id().unwrap_or("-").to_owned();
            if method.eq_ignore_ascii_case("announce")
                && let Ok(text) = invocation.arguments().get::<String>(0, "text")
                && text.chars().count() > 280
            {
                return Err(InvocationError::hub(
                    &method,
                    HubError::new("an announcement is at most 280 characters"),
                ));
            }
            let started = std::time::Instant::now();
            let result = next.run(invocation).await;
            tracing::info!(%method, %user, ok = result.is_ok(), elapsed = ?started.elapsed(), "call");
            result
        })
    }
}

fn main() -> std::io::Result<()> {
    signal::runtime()?.block_on(run_server())
}

async fn run_server() -> std::io::Result<()> {
    support::init_tracing();
    let secret = std::env::var("SIGNAL_JWT_SECRET")
        .unwrap_or_else(|_| "signal-auth-example-development-secret".to_owned());
    let keys = Arc::new(Keys {
        encoding: EncodingKey::from_secret(secret.as_bytes()).map_err(std::io::Error::other)?,
        decoding: DecodingKey::from_secret(secret.as_bytes()).map_err(std::io::Error::other)?,
    });
    let hub = SecureHub
        .into_hub()
        .policy("admin", |identity: &Identity| {
            identity.has_claim("roles", "admin")
        })
        .filter(Audit)
        .configure(|o| o.close_on_authentication_expiration = true);
    let handle = hub.handle();
    let app = axum::Router::new()
        .nest(
            "/secure",
            hub.router().layer(axum::middleware::from_fn_with_state(
                keys.clone(),
                authenticate,
            )),
        )
        .route("/token", axum::routing::post(issue))
        .with_state(keys);
    support::serve(
        app,
        async move { handle.shutdown(Duration::from_secs(5)).await },
    )
    .await
}
