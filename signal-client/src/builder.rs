//! Configures a [`HubConnection`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use signal_core::{HubProtocol, JsonHubProtocol, TransportType};
use url::Url;

use crate::connection::HubConnection;
use crate::error::Error;
use crate::retry::{Delays, RetryPolicy};

/// Produces the access token sent with every request (`Authorization: Bearer …`);
/// called before each negotiate, as the official clients call theirs.
pub type AccessTokenProvider =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// Everything a connection was configured with.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) url: Url,
    pub(crate) protocol: Arc<dyn HubProtocol>,
    pub(crate) transports: Vec<TransportType>,
    pub(crate) skip_negotiation: bool,
    pub(crate) access_token: Option<AccessTokenProvider>,
    pub(crate) headers: HeaderMap,
    pub(crate) keep_alive_interval: Duration,
    pub(crate) server_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) invocation_timeout: Option<Duration>,
    pub(crate) max_message_size: usize,
    pub(crate) retry_policy: Option<Arc<dyn RetryPolicy>>,
    pub(crate) stateful_reconnect: bool,
    pub(crate) stateful_buffer: usize,
}

/// Builds a [`HubConnection`]: `HubConnection::builder("http://host/chat")`.
///
/// Defaults are the JavaScript client's: JSON, every transport in the server's
/// order, a Ping every 15 s, the connection given up after 30 s without a
/// message from the server, no automatic reconnect.
pub struct HubConnectionBuilder {
    url: String,
    config: Result<Config, Error>,
}

impl HubConnectionBuilder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        let config = Url::parse(&url)
            .map_err(|e| Error::InvalidUrl {
                url: url.clone(),
                reason: e.to_string(),
            })
            .and_then(|parsed| match parsed.scheme() {
                "http" | "https" | "ws" | "wss" => Ok(parsed),
                other => Err(Error::InvalidUrl {
                    url: url.clone(),
                    reason: format!("the scheme '{other}' is none of http, https, ws, wss"),
                }),
            })
            .map(|url| Config {
                url,
                protocol: Arc::new(JsonHubProtocol),
                transports: TransportType::ALL.to_vec(),
                skip_negotiation: false,
                access_token: None,
                headers: HeaderMap::new(),
                keep_alive_interval: Duration::from_secs(15),
                server_timeout: Duration::from_secs(30),
                handshake_timeout: Duration::from_secs(15),
                request_timeout: Duration::from_secs(100),
                invocation_timeout: None,
                max_message_size: 64 << 20,
                retry_policy: None,
                stateful_reconnect: false,
                stateful_buffer: 100_000,
            });
        HubConnectionBuilder { url, config }
    }

    fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        if let Ok(config) = &mut self.config {
            f(config);
        }
        self
    }

    /// The hub protocol: [`JsonHubProtocol`] (the default) or
    /// [`MessagePackHubProtocol`](signal_core::MessagePackHubProtocol).
    pub fn protocol(self, protocol: impl HubProtocol) -> Self {
        self.with(|c| c.protocol = Arc::new(protocol))
    }

    /// The transports the client may use; the server's order decides among them.
    pub fn transports(self, transports: impl IntoIterator<Item = TransportType>) -> Self {
        let transports: Vec<_> = transports.into_iter().collect();
        self.with(|c| c.transports = transports)
    }

    /// Connects a WebSocket straight to the URL, without negotiate (the server
    /// must allow it; WebSockets only).
    pub fn skip_negotiation(self, skip: bool) -> Self {
        self.with(|c| c.skip_negotiation = skip)
    }

    /// Sends `Authorization: Bearer <token>` with every request, the token
    /// produced by `provider` before each negotiate.
    pub fn access_token<F, Fut>(self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        let provider: AccessTokenProvider = Arc::new(move || Box::pin(provider()));
        self.with(|c| c.access_token = Some(provider))
    }

    /// Adds a header to every request (negotiate, the WebSocket upgrade, polls
    /// and sends). A name or value that is not a valid header fails `build`.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let parsed = HeaderName::try_from(name)
            .map_err(|e| e.to_string())
            .and_then(|n| Ok((n, HeaderValue::try_from(value).map_err(|e| e.to_string())?)));
        match parsed {
            Ok((name, value)) => self.with(|c| {
                c.headers.append(name, value);
            }),
            Err(reason) => {
                self.config = Err(Error::InvalidUrl {
                    url: self.url.clone(),
                    reason: format!("the header '{name}' is invalid: {reason}"),
                });
                self
            }
        }
    }

    /// How often the client sends a Ping when it sent nothing else (15 s).
    pub fn keep_alive_interval(self, interval: Duration) -> Self {
        self.with(|c| c.keep_alive_interval = interval)
    }

    /// How long the client waits for any message from the server before it
    /// gives the connection up (30 s). Keep it at least twice the server's
    /// keep-alive interval.
    pub fn server_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.server_timeout = timeout)
    }

    /// How long the server may take to answer the handshake (15 s).
    pub fn handshake_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.handshake_timeout = timeout)
    }

    /// How long negotiate, a WebSocket upgrade, an event stream's opening or a
    /// send may take to be answered (100 s, as the official clients' HTTP
    /// timeout).
    pub fn request_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.request_timeout = timeout)
    }

    /// How long an invocation may wait for its Completion before it fails with
    /// [`InvokeError::Timeout`](signal_core::InvokeError::Timeout) (none by
    /// default, as in the official clients: a call waits as long as the
    /// connection lives, and the server timeout ends a dead connection).
    pub fn invocation_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.invocation_timeout = Some(timeout))
    }

    /// The largest message accepted from the server (64 MiB); a larger one ends
    /// the connection with an error.
    pub fn max_message_size(self, bytes: usize) -> Self {
        self.with(|c| c.max_message_size = bytes)
    }

    /// Reconnects automatically after the connection is lost, waiting 0, 2, 10
    /// and 30 seconds before the attempts, then giving up.
    pub fn with_automatic_reconnect(self) -> Self {
        self.with_retry_policy(Delays::default())
    }

    /// Reconnects automatically as `policy` decides.
    pub fn with_retry_policy(self, policy: impl RetryPolicy) -> Self {
        let policy: Arc<dyn RetryPolicy> = Arc::new(policy);
        self.with(|c| c.retry_policy = Some(policy))
    }

    /// Asks the server for stateful reconnect: when the WebSocket drops, the
    /// client reopens it on the same connection and both sides replay what the
    /// other has not acknowledged, so no message is lost or repeated.
    pub fn with_stateful_reconnect(self) -> Self {
        self.with(|c| c.stateful_reconnect = true)
    }

    /// The connection, not yet started.
    pub fn build(self) -> Result<HubConnection, Error> {
        let config = self.config?;
        if config.transports.is_empty() {
            return Err(Error::NoTransport("no transport is allowed".into()));
        }
        Ok(HubConnection::new(config))
    }
}
