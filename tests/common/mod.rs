//! What the integration tests share: bounded waits (no test sleeps to
//! synchronise), a probe hub served on a loopback port, and raw clients of the
//! SignalR wire (WebSocket records, negotiate).

// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use futures_util::{SinkExt, StreamExt};
use signal::{
    BoxFuture, Call, Context, Hub, HubDispatch, HubHandle, HubOptions, InvocationError, Output,
};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;

/// The bound of every wait: long enough for a loaded machine, short enough that
/// a hang fails the test instead of the suite.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The record separator that ends every record of the JSON hub protocol.
pub(crate) const RS: char = '\u{1e}';

/// Waits until `check` holds, polling; panics naming `what` after [`WAIT`].
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the asynchronous `check` holds, polling; panics naming `what`
/// after [`WAIT`].
pub(crate) async fn until<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `future`'s output; panics naming `what` when it takes longer than [`WAIT`].
pub(crate) async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// `json` as one record.
pub(crate) fn record(json: &str) -> String {
    format!("{json}{RS}")
}

/// An Invocation record; `arguments` is the JSON array's inside.
pub(crate) fn invocation(id: &str, target: &str, arguments: &str) -> String {
    record(&format!(
        "{{\"type\":1,\"invocationId\":\"{id}\",\"target\":\"{target}\",\"arguments\":[{arguments}]}}"
    ))
}

/// A Completion record carrying `result` (JSON).
pub(crate) fn completion(id: &str, result: &str) -> String {
    record(&format!(
        "{{\"type\":3,\"invocationId\":\"{id}\",\"result\":{result}}}"
    ))
}

/// A Close record carrying `error`.
pub(crate) fn close_with(error: &str) -> String {
    record(&format!(
        "{{\"type\":7,\"error\":{}}}",
        serde_json::to_string(error).unwrap()
    ))
}

/// The Close record of a server shutdown.
pub(crate) const CLOSE_RECONNECT: &str = "{\"type\":7,\"allowReconnect\":true}\u{1e}";

/// The Ping record.
pub(crate) const PING: &str = "{\"type\":6}\u{1e}";

/// Hub options with `f` applied to the defaults.
pub(crate) fn options(f: impl FnOnce(&mut HubOptions)) -> HubOptions {
    let mut options = HubOptions::default();
    f(&mut options);
    options
}

/// A hub whose methods let a test steer and watch a connection: it reports its
/// lifecycle (`connected <transport>`, `disconnected <error>`) and when a `wait`
/// starts (`waiting <tag>`).
///
/// Methods: `echo(text)`; `wait(tag)`, which returns `tag` once the test adds a
/// permit to the gate; `join(group)`; `remember(text)` and `recall()`, which
/// keep a text in the connection's items (`remember` returns the previous one);
/// `panic()`.
pub(crate) struct Probe {
    events: mpsc::UnboundedSender<String>,
    gate: Arc<Semaphore>,
}

/// What `remember` keeps in a connection's items.
#[derive(Clone)]
struct Memo(String);

impl Probe {
    fn report(&self, event: String) {
        let _ = self.events.send(event);
    }
}

impl HubDispatch for Probe {
    type Client = ();

    fn descriptor(&self) -> signal::protocol::HubDescriptor {
        signal::protocol::descriptor::DescriptorBuilder::new().finish("Probe", "", vec![], None)
    }

    fn dispatch<'a>(
        &'a self,
        cx: &'a Context,
        call: Call,
    ) -> BoxFuture<'a, Result<Output, InvocationError>> {
        Box::pin(async move {
            let target = call.target.as_str();
            let text = |name| {
                call.arguments
                    .get::<String>(0, name)
                    .map_err(|e| InvocationError::arguments(target, e))
            };
            match target {
                "echo" => Output::value(target, &text("text")?),
                "wait" => {
                    let tag = text("tag")?;
                    self.report(format!("waiting {tag}"));
                    self.gate
                        .acquire()
                        .await
                        .expect("the gate stays open")
                        .forget();
                    Output::value(target, &tag)
                }
                "join" => {
                    let group = text("group")?;
                    cx.groups()
                        .add(cx.connection_id().clone(), &group)
                        .await
                        .map_err(|e| InvocationError::hub(target, e.into()))?;
                    Ok(Output::Void)
                }
                "remember" => {
                    let previous = cx.items().insert(Memo(text("text")?));
                    Output::value(target, &previous.map(|m| m.0))
                }
                "recall" => Output::value(target, &cx.items().get::<Memo>().map(|m| m.0)),
                "panic" => panic!("the probe was asked to panic"),
                _ => Err(InvocationError::UnknownMethod(call.target.clone())),
            }
        })
    }

    fn on_connected<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, ()> {
        self.report(format!("connected {}", cx.transport()));
        Box::pin(async {})
    }

    fn on_disconnected<'a>(
        &'a self,
        _cx: &'a Context,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        self.report(format!("disconnected {}", error.unwrap_or("")));
        Box::pin(async {})
    }
}

/// A probe hub served at `http://{addr}/hub`.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) events: Events,
    /// Each permit lets one `wait` return.
    pub(crate) gate: Arc<Semaphore>,
    pub(crate) handle: HubHandle,
}

/// Serves a [`Probe`] with `options` on a loopback port.
pub(crate) async fn serve(options: HubOptions) -> Server {
    serve_hub(options, |hub| hub).await
}

/// Serves a [`Probe`] with `options` and what `configure` sets on its hub.
pub(crate) async fn serve_hub(
    options: HubOptions,
    configure: impl FnOnce(Hub<Probe>) -> Hub<Probe>,
) -> Server {
    let (tx, rx) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let hub = configure(
        Hub::new(Probe {
            events: tx,
            gate: gate.clone(),
        })
        .with_options(options),
    );
    let handle = hub.handle();
    let addr = serve_router(axum::Router::new().nest("/hub", hub.router())).await;
    Server {
        addr,
        events: Events(rx),
        gate,
        handle,
    }
}

/// Serves `app` on a loopback port, as the examples do (no Nagle delay).
pub(crate) async fn serve_router(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// What the probe hub reported, in order.
pub(crate) struct Events(mpsc::UnboundedReceiver<String>);

impl Events {
    /// The next event.
    pub(crate) async fn next(&mut self) -> String {
        within("a hub event", self.0.recv())
            .await
            .expect("the hub is alive")
    }

    /// The next event if there is one already.
    pub(crate) fn try_next(&mut self) -> Option<String> {
        self.0.try_recv().ok()
    }
}

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw WebSocket client of the hub protocol, reading whole records.
pub(crate) struct WsClient {
    socket: Socket,
    records: VecDeque<String>,
    closed: bool,
}

impl WsClient {
    /// Opens `ws://{addr}/hub{query}` (no handshake yet).
    pub(crate) async fn open(addr: SocketAddr, query: &str) -> Self {
        let url = format!("ws://{addr}/hub{query}");
        let (socket, _) = within(
            "the WebSocket upgrade",
            tokio_tungstenite::connect_async_with_config(url, None, true),
        )
        .await
        .unwrap();
        WsClient {
            socket,
            records: VecDeque::new(),
            closed: false,
        }
    }

    /// Opens the socket of a negotiated connection.
    pub(crate) async fn open_token(addr: SocketAddr, token: &str) -> Self {
        Self::open(addr, &format!("?id={token}")).await
    }

    /// Opens a connection without negotiate and completes a version 1 handshake.
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        let mut client = Self::open(addr, "").await;
        client.handshake(1).await;
        client
    }

    /// Sends the handshake for `json` `version` and expects `{}`.
    pub(crate) async fn handshake(&mut self, version: u32) {
        self.send(&record(&format!(
            "{{\"protocol\":\"json\",\"version\":{version}}}"
        )))
        .await;
        assert_eq!(self.next().await.as_deref(), Some("{}\u{1e}"));
    }

    /// Sends `text` as one text frame.
    pub(crate) async fn send(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    /// The next record, separator included; `None` once the socket has ended.
    pub(crate) async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(record) = self.records.pop_front() {
                return Some(record);
            }
            if self.closed {
                return None;
            }
            match within("a record from the server", self.socket.next()).await {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    assert!(text.ends_with(RS), "a frame ends on a record: {text:?}");
                    self.records
                        .extend(text.split_inclusive(RS).map(str::to_owned));
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => self.closed = true,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next record that is not a Ping or an Ack (which come on the server's
    /// own schedule).
    pub(crate) async fn next_message(&mut self) -> Option<String> {
        loop {
            let record = self.next().await?;
            if record != PING && !record.starts_with("{\"type\":8,") {
                return Some(record);
            }
        }
    }

    /// Expects the socket to end with no further record.
    pub(crate) async fn expect_end(&mut self) {
        assert_eq!(self.next().await, None, "the socket ends");
    }

    /// The socket, for tests that split it.
    pub(crate) fn into_socket(self) -> Socket {
        assert!(self.records.is_empty(), "no record left unread");
        self.socket
    }
}

/// A negotiated connection.
pub(crate) struct Negotiated {
    pub(crate) connection_id: String,
    pub(crate) token: String,
}

/// `POST /hub/negotiate?negotiateVersion=1`, optionally asking for stateful
/// reconnect (which the answer must grant).
pub(crate) async fn negotiate(
    client: &reqwest::Client,
    addr: SocketAddr,
    stateful: bool,
) -> Negotiated {
    let query = if stateful {
        "negotiateVersion=1&useStatefulReconnect=true"
    } else {
        "negotiateVersion=1"
    };
    let answer = within(
        "negotiate",
        client
            .post(format!("http://{addr}/hub/negotiate?{query}"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    let body = answer.text().await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    if stateful {
        assert_eq!(value["useStatefulReconnect"], true, "{body}");
    }
    Negotiated {
        connection_id: value["connectionId"].as_str().unwrap().to_owned(),
        token: value["connectionToken"].as_str().unwrap().to_owned(),
    }
}

/// An event stream of Server-Sent Events, read event by event.
pub(crate) struct SseClient {
    response: reqwest::Response,
    buffer: String,
}

impl SseClient {
    /// Opens the event stream of a negotiated connection and reads its
    /// opening comment.
    pub(crate) async fn open(client: &reqwest::Client, addr: SocketAddr, token: &str) -> Self {
        let response = within(
            "the event stream",
            client
                .get(format!("http://{addr}/hub?id={token}"))
                .header("Accept", "text/event-stream")
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["cache-control"], "no-cache");
        let mut events = SseClient {
            response,
            buffer: String::new(),
        };
        assert_eq!(events.next().await.as_deref(), Some(":"));
        events
    }

    /// The next event (or comment) without its blank line, `data: ` prefixes
    /// kept; `None` once the stream has ended.
    pub(crate) async fn next(&mut self) -> Option<String> {
        loop {
            // The opening comment ends with one line break, events with two.
            let end = if self.buffer.starts_with(':') {
                self.buffer.find("\r\n").map(|at| (at, 2))
            } else {
                self.buffer.find("\r\n\r\n").map(|at| (at, 4))
            };
            if let Some((at, separator)) = end {
                let event = self.buffer[..at].to_owned();
                self.buffer.drain(..at + separator);
                return Some(event);
            }
            let chunk = within("an event", self.response.chunk()).await.ok()??;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// POSTs `body` to a negotiated connection; the status.
pub(crate) async fn post(
    client: &reqwest::Client,
    addr: SocketAddr,
    token: &str,
    body: impl Into<reqwest::Body>,
) -> u16 {
    within(
        "a POST",
        client
            .post(format!("http://{addr}/hub?id={token}"))
            .body(body)
            .send(),
    )
    .await
    .unwrap()
    .status()
    .as_u16()
}

/// One long poll: its status and body.
pub(crate) async fn poll(client: &reqwest::Client, addr: SocketAddr, token: &str) -> (u16, String) {
    let answer = within(
        "a long poll",
        client.get(format!("http://{addr}/hub?id={token}")).send(),
    )
    .await
    .unwrap();
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap())
}
