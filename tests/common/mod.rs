//! What the integration tests share: bounded waits (no test sleeps to
//! synchronise), a probe hub served on a loopback port, and raw clients of the
//! SignalR wire (WebSocket records, negotiate).

// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use signal::protocol::Arguments;
use signal::{
    BoxFuture, Call, Context, Hub, HubDispatch, HubHandle, HubOptions, InvocationError, Output,
    cancellable_stream,
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
/// `panic()`; the server streams `count(n)` (0 to n - 1) and `forever()`
/// (numbers every 10 ms until cancelled, then it reports `stream cancelled`);
/// `sum(numbers)`, which adds the numbers of an upload stream; `ask(question)`,
/// which asks the caller's `question` handler and returns its answer; `pairs()`,
/// which returns [`pairs`].
pub(crate) struct Probe {
    events: mpsc::UnboundedSender<String>,
    gate: Arc<Semaphore>,
}

/// A map with non-string keys: MessagePack encodes it, JSON cannot.
pub(crate) fn pairs() -> std::collections::BTreeMap<(u8, u8), u8> {
    std::collections::BTreeMap::from([((1, 2), 3)])
}

/// [`pairs`] as MessagePack: `{[1, 2]: 3}`.
pub(crate) const PAIRS: &[u8] = b"\x81\x92\x01\x02\x03";

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
        mut call: Call,
    ) -> BoxFuture<'a, Result<Output, InvocationError>> {
        Box::pin(async move {
            match call.target.as_str() {
                "count" => {
                    let n = call
                        .arguments
                        .get::<u32>(0, "n")
                        .map_err(|e| InvocationError::arguments(&call.target, e))?;
                    let items = futures_util::stream::iter((0..n).map(Ok));
                    return Ok(Output::stream(Box::pin(items)));
                }
                "forever" => {
                    let events = self.events.clone();
                    let numbers = cancellable_stream(move |cancelled| {
                        tokio::spawn(async move {
                            cancelled.cancelled().await;
                            let _ = events.send("stream cancelled".to_owned());
                        });
                        futures_util::stream::unfold(0u32, |n| async move {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            Some((Ok(n), n + 1))
                        })
                    });
                    return Ok(Output::stream(numbers));
                }
                "sum" => {
                    let target = call.target.clone();
                    let mut numbers = call
                        .take_stream::<i64>(0)
                        .map_err(|e| InvocationError::arguments(&target, e))?;
                    let mut total = 0;
                    while let Some(number) = numbers.next().await {
                        total += number.map_err(|e| InvocationError::hub(&target, e))?;
                    }
                    return Ok(Output::value(total));
                }
                _ => {}
            }
            let target = call.target.as_str();
            let text = |name| {
                call.arguments
                    .get::<String>(0, name)
                    .map_err(|e| InvocationError::arguments(target, e))
            };
            match target {
                "echo" => Ok(Output::value(text("text")?)),
                "wait" => {
                    let tag = text("tag")?;
                    self.report(format!("waiting {tag}"));
                    self.gate
                        .acquire()
                        .await
                        .expect("the gate stays open")
                        .forget();
                    Ok(Output::value(tag))
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
                    Ok(Output::value(previous.map(|m| m.0)))
                }
                "recall" => Ok(Output::value(cx.items().get::<Memo>().map(|m| m.0))),
                "panic" => panic!("the probe was asked to panic"),
                "pairs" => Ok(Output::value(pairs())),
                "ask" => {
                    let question = text("question")?;
                    let answer: String = cx
                        .clients()
                        .caller()
                        .invoke("question", Arguments::from_values([question]))
                        .await
                        .map_err(|e| InvocationError::hub(target, e.into()))?;
                    Ok(Output::value(answer))
                }
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
    serve_mounted(options, configure, |hub| {
        axum::Router::new().nest("/hub", hub.router())
    })
    .await
}

/// Serves a [`Probe`] configured by `configure`, in the router `mount` makes of it.
pub(crate) async fn serve_mounted(
    options: HubOptions,
    configure: impl FnOnce(Hub<Probe>) -> Hub<Probe>,
    mount: impl FnOnce(Hub<Probe>) -> axum::Router,
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
    let addr = serve_router(mount(hub)).await;
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
    tokio::spawn(async move { signal::serve(listener, app).await.unwrap() });
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

/// MessagePack hub messages built byte by byte, as `HubProtocol.md` lays them
/// out, so that tests compare what the server sends with what the other side
/// expects rather than with the server's own encoder.
pub(crate) mod msgpack {
    /// The framed Ping: length 2, `[6]`.
    pub(crate) const PING: &[u8] = &[0x02, 0x91, 0x06];

    /// `body` preceded by its VarInt length.
    pub(crate) fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + 5);
        let mut length = body.len();
        loop {
            let low = (length & 0x7f) as u8;
            length >>= 7;
            if length == 0 {
                out.push(low);
                break;
            }
            out.push(low | 0x80);
        }
        out.extend_from_slice(body);
        out
    }

    /// A string: fixstr, str 8 or str 16.
    pub(crate) fn str(text: &str) -> Vec<u8> {
        let mut out = match text.len() {
            n if n < 32 => vec![0xa0 | n as u8],
            n if n < 256 => vec![0xd9, n as u8],
            n => vec![0xda, (n >> 8) as u8, n as u8],
        };
        out.extend_from_slice(text.as_bytes());
        out
    }

    /// A non-negative integer below 128 (positive fixint).
    pub(crate) fn int(n: u8) -> Vec<u8> {
        assert!(n < 128, "a positive fixint");
        vec![n]
    }

    /// An id, or nil.
    fn id(id: Option<&str>) -> Vec<u8> {
        id.map_or(vec![0xc0], str)
    }

    /// A fixarray of `items`.
    pub(crate) fn array(items: &[&[u8]]) -> Vec<u8> {
        assert!(items.len() < 16, "a fixarray");
        let mut out = vec![0x90 | items.len() as u8];
        for item in items {
            out.extend_from_slice(item);
        }
        out
    }

    /// `[1, {}, id, target, [arguments], []]`, framed.
    pub(crate) fn invocation(id_: Option<&str>, target: &str, arguments: &[&[u8]]) -> Vec<u8> {
        framed(&array(&[
            &[0x01],
            &[0x80],
            &id(id_),
            &str(target),
            &array(arguments),
            &[0x90],
        ]))
    }

    /// `[1, {}, id, target, [arguments], [streamIds]]`, framed.
    pub(crate) fn invocation_with_streams(
        id_: &str,
        target: &str,
        arguments: &[&[u8]],
        streams: &[&str],
    ) -> Vec<u8> {
        let streams: Vec<Vec<u8>> = streams.iter().map(|s| str(s)).collect();
        let streams: Vec<&[u8]> = streams.iter().map(Vec::as_slice).collect();
        framed(&array(&[
            &[0x01],
            &[0x80],
            &str(id_),
            &str(target),
            &array(arguments),
            &array(&streams),
        ]))
    }

    /// `[4, {}, id, target, [arguments], []]`, framed.
    pub(crate) fn stream_invocation(id: &str, target: &str, arguments: &[&[u8]]) -> Vec<u8> {
        framed(&array(&[
            &[0x04],
            &[0x80],
            &str(id),
            &str(target),
            &array(arguments),
            &[0x90],
        ]))
    }

    /// `[2, {}, id, item]`, framed.
    pub(crate) fn stream_item(id: &str, item: &[u8]) -> Vec<u8> {
        framed(&array(&[&[0x02], &[0x80], &str(id), item]))
    }

    /// `[3, {}, id, 3, result]`, framed.
    pub(crate) fn completion(id: &str, result: &[u8]) -> Vec<u8> {
        framed(&array(&[&[0x03], &[0x80], &str(id), &[0x03], result]))
    }

    /// `[3, {}, id, 2]`, framed.
    pub(crate) fn completion_void(id: &str) -> Vec<u8> {
        framed(&array(&[&[0x03], &[0x80], &str(id), &[0x02]]))
    }

    /// `[3, {}, id, 1, error]`, framed.
    pub(crate) fn completion_error(id: &str, error: &str) -> Vec<u8> {
        framed(&array(&[&[0x03], &[0x80], &str(id), &[0x01], &str(error)]))
    }

    /// `[5, {}, id]`, framed.
    pub(crate) fn cancel(id: &str) -> Vec<u8> {
        framed(&array(&[&[0x05], &[0x80], &str(id)]))
    }

    /// `[7, error | nil, allowReconnect]`, framed.
    pub(crate) fn close(error: Option<&str>, allow_reconnect: bool) -> Vec<u8> {
        let allow: &[u8] = if allow_reconnect { &[0xc3] } else { &[0xc2] };
        framed(&array(&[&[0x07], &id(error), allow]))
    }

    /// `[8, sequenceId]`, framed.
    pub(crate) fn ack(sequence_id: u8) -> Vec<u8> {
        framed(&array(&[&[0x08], &int(sequence_id)]))
    }

    /// `[9, sequenceId]`, framed.
    pub(crate) fn sequence(sequence_id: u8) -> Vec<u8> {
        framed(&array(&[&[0x09], &int(sequence_id)]))
    }
}

/// A raw WebSocket client of the MessagePack hub protocol: the handshake in
/// JSON, then binary frames of length-prefixed messages.
pub(crate) struct MsgPackClient {
    socket: Socket,
    messages: VecDeque<Vec<u8>>,
    closed: bool,
}

impl MsgPackClient {
    /// Opens `ws://{addr}/hub{query}` (no handshake yet).
    pub(crate) async fn open(addr: SocketAddr, query: &str) -> Self {
        MsgPackClient {
            socket: WsClient::open(addr, query).await.into_socket(),
            messages: VecDeque::new(),
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

    /// Sends the handshake for `messagepack` `version` (a JSON text frame) and
    /// expects `{}` back, in a binary frame: the server has switched the
    /// transport to the protocol's format, as ASP.NET Core does.
    pub(crate) async fn handshake(&mut self, version: u32) {
        let request = record(&format!(
            "{{\"protocol\":\"messagepack\",\"version\":{version}}}"
        ));
        self.socket.send(Message::text(request)).await.unwrap();
        self.expect_handshake_answer().await;
    }

    /// Expects `{}` in a binary frame of its own: the handshake answer.
    pub(crate) async fn expect_handshake_answer(&mut self) {
        match within("the handshake answer", self.socket.next()).await {
            Some(Ok(Message::Binary(answer))) => assert_eq!(&answer[..], b"{}\x1e"),
            other => panic!("expected the handshake answer in a binary frame, got {other:?}"),
        }
    }

    /// Sends `bytes` as one binary frame.
    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.socket
            .send(Message::binary(bytes.to_vec()))
            .await
            .unwrap();
    }

    /// The next message, its length prefix included; `None` once the socket
    /// has ended.
    pub(crate) async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(message) = self.messages.pop_front() {
                return Some(message);
            }
            if self.closed {
                return None;
            }
            match within("a message from the server", self.socket.next()).await {
                Some(Ok(Message::Binary(frame))) => {
                    let mut rest = &frame[..];
                    while !rest.is_empty() {
                        let (length, prefix) = varint(rest);
                        assert!(
                            rest.len() >= prefix + length,
                            "a frame ends on a message: {frame:?}"
                        );
                        self.messages.push_back(rest[..prefix + length].to_vec());
                        rest = &rest[prefix + length..];
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    panic!("a MessagePack connection got a text frame: {text:?}")
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => self.closed = true,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next message that is not a Ping or an Ack (which come on the
    /// server's own schedule).
    pub(crate) async fn next_message(&mut self) -> Option<Vec<u8>> {
        loop {
            let message = self.next().await?;
            // An Ack is `[8, id]`: a two-element array whose first element is 8.
            let ack = message.get(1..3) == Some(&[0x92, 0x08][..]);
            if message != msgpack::PING && !ack {
                return Some(message);
            }
        }
    }

    /// Expects the socket to end with no further message.
    pub(crate) async fn expect_end(&mut self) {
        assert_eq!(self.next().await, None, "the socket ends");
    }
}

/// A VarInt length and how many bytes it took.
fn varint(bytes: &[u8]) -> (usize, usize) {
    let mut length = 0usize;
    for (i, byte) in bytes.iter().enumerate().take(5) {
        length |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (length, i + 1);
        }
    }
    panic!("a length prefix of at most 5 bytes: {bytes:?}");
}

/// A real `redis-server` on a free loopback port, for the backplane's tests;
/// stopped when dropped. `REDIS_SERVER` names the binary (`redis-server` on
/// the `PATH` by default; `scripts/test` installs it).
pub(crate) struct RedisServer {
    pub(crate) port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub(crate) async fn start() -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut server = RedisServer { port, child: None };
        server.restart().await;
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (its clients see the connection drop).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, and waits until it answers.
    pub(crate) async fn restart(&mut self) {
        self.stop();
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = std::process::Command::new(&binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {binary} ({error}): install Redis (`apt-get install -y redis-server`; scripts/test does) or set REDIS_SERVER"
                )
            });
        self.child = Some(child);
        let port = self.port;
        until("redis-server answers PING", || async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                return false;
            };
            let mut answer = [0u8; 7];
            tcp.write_all(b"PING\r\n").await.is_ok()
                && tcp.read_exact(&mut answer).await.is_ok()
                && &answer == b"+PONG\r\n"
        })
        .await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An authentication layer for tests: `Bearer ada` is the user `ada` with
/// the roles `writer` and `admin`, `Bearer bob` the user `bob` with none;
/// other requests pass on anonymous.
pub(crate) async fn identify(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (mut parts, body) = request.into_parts();
    let identity = match signal::auth::bearer_token(&parts).as_deref() {
        Some("ada") => Some(
            signal::auth::Identity::new("ada")
                .with_claim("roles", serde_json::json!(["writer", "admin"])),
        ),
        Some("bob") => Some(signal::auth::Identity::new("bob")),
        _ => None,
    };
    if let Some(identity) = identity {
        parts.extensions.insert(identity);
    }
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}
