//! The HTTP transports of the generator's connections: SignalR's Server-Sent
//! Events and long polling (as the official ASP.NET Core client speaks them,
//! `/work/shared/protocol.md`), and engine.io v4's polling transport (no upgrade).
//!
//! Each logical client holds two keep-alive HTTP/1.1 connections, as a browser
//! does: one that sends (negotiate, then one `POST` at a time) and one that
//! receives (the event stream, or one poll at a time). Frames come out as the
//! WebSocket `Message`s the rest of the generator reads, so the scenarios and
//! the protocol parsing are the same on every transport.
//!
//! The WebSocket clients' negotiate goes through here too (`Negotiator`): on
//! kept-alive connections shared between clients, as browsers and Node's fetch
//! share them, or on a TCP connection of its own per negotiate.
//!
//! The HTTP client is hyper 1.x's `client::conn::http1`: one bare connection
//! per handle, no pool, no timer, no threads of its own, its connection future
//! spawned on the generator's one-threaded `LocalSet`; thousands of them cost a
//! task and a 4 KiB read buffer each. (A pooled client such as hyper-util's
//! `Client` would share connections between logical clients, which browsers do
//! not, and reqwest would bring its own runtime and TLS.) hyper is already in
//! the lock file through axum.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::Error;
use crate::client::{Protocol, tcp};

/// engine.io's packet separator in a polling payload (and SignalR's record
/// separator: the same byte).
const RS: u8 = 0x1e;

/// How a connection's frames travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// One WebSocket.
    WebSocket,
    /// SignalR: `GET` with `Accept: text/event-stream` down, `POST` up (text only).
    Sse,
    /// SignalR: long polls down, `POST` up; engine.io: its polling transport.
    LongPolling,
}

impl Transport {
    /// The transport's name in tables, for a server of `protocol`.
    pub(crate) fn label(self, protocol: Protocol) -> &'static str {
        match (self, protocol) {
            (Transport::WebSocket, _) => "WebSocket",
            (Transport::Sse, _) => "SSE",
            (Transport::LongPolling, Protocol::SocketIo) => "polling (engine.io)",
            (Transport::LongPolling, _) => "long polling",
        }
    }

    /// Its name in `--scenarios` (`echo-sse`, `broadcast-longpolling`).
    pub(crate) fn scenario_suffix(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Sse => "sse",
            Transport::LongPolling => "longpolling",
        }
    }
}

type Sender = SendRequest<Full<Bytes>>;
/// A poll in flight: it owns the receiving connection and gives it back with
/// the answer, so that dropping `next_frame` midway loses nothing.
type PendingPoll = Pin<Box<dyn Future<Output = Result<(Sender, StatusCode, Bytes), Error>>>>;

/// What the receiving connection is doing.
enum Down {
    /// SSE: the one response body, and what has arrived of the current event.
    Events {
        body: Incoming,
        buf: Vec<u8>,
    },
    /// Polling: the connection between polls, or the poll in flight.
    Idle(Sender),
    Polling(PendingPoll),
    /// A poll failed: the connection is gone.
    Broken,
}

/// One client on an HTTP transport, handshake not yet done.
pub(crate) struct HttpLink {
    /// The sending connection.
    up: Sender,
    down: Down,
    /// `Host` of every request.
    host: String,
    /// The path and query every request after the first names (`?id=` or `&sid=`).
    target: String,
    /// MessagePack: bodies are `application/octet-stream` and polls give binary frames.
    binary: bool,
    /// engine.io: a payload holds several packets, one frame each.
    engine_io: bool,
    /// Frames received and not yet read.
    ready: VecDeque<Message>,
}

/// A keep-alive HTTP/1.1 connection from `source` to 127.0.0.1:`port`; its
/// connection future runs as a task on the `LocalSet` until both the handle and
/// any response body are dropped.
async fn open(source: Ipv4Addr, port: u16) -> Result<Sender, Error> {
    let stream = tcp(source, port).await?;
    let (sender, connection) = http1::Builder::new()
        // Lean per connection, as the WebSocket clients' 4 KiB read buffer.
        .read_buf_exact_size(Some(4 * 1024))
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::task::spawn_local(async move {
        // Its errors reach the request or the body that was using it.
        let _ = connection.await;
    });
    Ok(sender)
}

fn request(method: &str, host: &str, target: &str) -> hyper::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(target)
        .header(header::HOST, host)
}

/// Sends `request` once the connection is free and reads the whole answer.
async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), Error> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

fn check(what: &str, status: StatusCode, body: &[u8]) -> Result<(), Error> {
    if status == StatusCode::OK {
        return Ok(());
    }
    Err(format!(
        "{what} answered {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(200)])
    )
    .into())
}

/// The negotiate request of a SignalR client (the official client's).
fn negotiate_request(host: &str) -> Result<Request<Full<Bytes>>, Error> {
    Ok(
        request("POST", host, "/conformance/negotiate?negotiateVersion=1")
            .header("X-Requested-With", "XMLHttpRequest")
            .body(Full::default())?,
    )
}

/// The connection token of a negotiate answer.
fn connection_token(status: StatusCode, body: &[u8]) -> Result<String, Error> {
    check("negotiate", status, body)?;
    let answer: serde_json::Value = serde_json::from_slice(body)?;
    answer
        .get("connectionToken")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("negotiate answered {answer}").into())
}

/// How the WebSocket clients' negotiate requests travel (`--negotiate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NegotiateMode {
    /// On kept-alive HTTP/1.1 connections, an idle one reused for the next
    /// negotiate, as browsers and Node's fetch (undici) do; only the WebSocket
    /// gets a TCP connection of its own.
    KeptAlive,
    /// Each on a TCP connection of its own, closed after the answer: the
    /// generator's only model before `--negotiate`, so that older reports stay
    /// comparable.
    Fresh,
}

impl NegotiateMode {
    /// From its `--negotiate` name.
    pub(crate) fn parse(name: &str) -> Option<NegotiateMode> {
        match name {
            "kept-alive" => Some(NegotiateMode::KeptAlive),
            "fresh" => Some(NegotiateMode::Fresh),
            _ => None,
        }
    }

    /// Its `--negotiate` name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            NegotiateMode::KeptAlive => "kept-alive",
            NegotiateMode::Fresh => "fresh",
        }
    }
}

/// The negotiate of the WebSocket clients of one server. Kept alive, it holds
/// the idle connections per server port: an opener takes one (or opens one
/// when there is none) and gives it back with the answer, so there are about
/// as many as openers at a time. Single-threaded, as the rest of the generator.
pub(crate) struct Negotiator {
    mode: NegotiateMode,
    idle: RefCell<HashMap<u16, Vec<Sender>>>,
}

impl Negotiator {
    pub(crate) fn new(mode: NegotiateMode) -> Negotiator {
        Negotiator {
            mode,
            idle: RefCell::default(),
        }
    }

    /// `POST /conformance/negotiate?negotiateVersion=1` at 127.0.0.1:`port`;
    /// returns the connection token. A new connection is bound to `source`.
    pub(crate) async fn negotiate(&self, source: Ipv4Addr, port: u16) -> Result<String, Error> {
        let host = format!("127.0.0.1:{port}");
        if self.mode == NegotiateMode::KeptAlive {
            while let Some(mut sender) = self.take(port) {
                // The server closed it while it was idle, or it broke: dropped,
                // and the next one (or a new one) is tried, as clients retry a
                // request on a reused connection that fails.
                let Ok((status, body)) = exchange(&mut sender, negotiate_request(&host)?).await
                else {
                    continue;
                };
                self.give_back(port, sender);
                return connection_token(status, &body);
            }
        }
        let mut sender = open(source, port).await?;
        let (status, body) = exchange(&mut sender, negotiate_request(&host)?).await?;
        if self.mode == NegotiateMode::KeptAlive {
            self.give_back(port, sender);
        }
        // Fresh: dropping the handle ends the connection task, which closes
        // the connection.
        connection_token(status, &body)
    }

    /// An idle connection to `port` that is still open.
    fn take(&self, port: u16) -> Option<Sender> {
        let mut idle = self.idle.borrow_mut();
        let senders = idle.get_mut(&port)?;
        while let Some(sender) = senders.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn give_back(&self, port: u16, sender: Sender) {
        if !sender.is_closed() {
            self.idle.borrow_mut().entry(port).or_default().push(sender);
        }
    }

    /// Closes the idle connections: at the end of a batch of connects, as a
    /// client closes an idle one after a few seconds (undici: 4 s), so that
    /// they do not weigh on the memory the idle and scale scenarios read.
    pub(crate) fn close_idle(&self) {
        self.idle.borrow_mut().clear();
    }

    /// Idle connections held, all ports.
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.borrow().values().map(Vec::len).sum()
    }
}

impl HttpLink {
    /// SignalR: negotiate on the sending connection, then open the event stream
    /// (SSE: its response head is the EventSource's `open`) or the first poll
    /// (long polling: it answers at once when the connection has started). The
    /// hub handshake comes next, over the link, as on a WebSocket.
    pub(crate) async fn signalr(
        source: Ipv4Addr,
        port: u16,
        transport: Transport,
        binary: bool,
    ) -> Result<HttpLink, Error> {
        let host = format!("127.0.0.1:{port}");
        let mut up = open(source, port).await?;
        let (status, body) = exchange(&mut up, negotiate_request(&host)?).await?;
        // Connection tokens are base64url: nothing to escape.
        let token = connection_token(status, &body)?;
        let target = format!("/conformance?id={token}");
        let mut down = open(source, port).await?;
        let down = match transport {
            Transport::Sse => {
                let stream = request("GET", &host, &target)
                    .header(header::ACCEPT, "text/event-stream")
                    .body(Full::default())?;
                down.ready().await?;
                let response = down.send_request(stream).await?;
                if response.status() != StatusCode::OK {
                    return Err(format!("the event stream answered {}", response.status()).into());
                }
                Down::Events {
                    body: response.into_body(),
                    buf: Vec::new(),
                }
            }
            _ => {
                let (status, body) = exchange(
                    &mut down,
                    request("GET", &host, &target).body(Full::default())?,
                )
                .await?;
                check("the first poll", status, &body)?;
                Down::Idle(down)
            }
        };
        Ok(HttpLink {
            up,
            down,
            host,
            target,
            binary,
            engine_io: false,
            ready: VecDeque::new(),
        })
    }

    /// engine.io v4 polling: the opening poll (`0{"sid":…}`, kept as the first
    /// frame, as a WebSocket's first message) on the receiving connection; the
    /// socket.io handshake (`40`) comes next, over the link.
    pub(crate) async fn engine_io(source: Ipv4Addr, port: u16) -> Result<HttpLink, Error> {
        let host = format!("127.0.0.1:{port}");
        let up = open(source, port).await?;
        let mut down = open(source, port).await?;
        let first = "/socket.io/?EIO=4&transport=polling";
        let (status, body) = exchange(
            &mut down,
            request("GET", &host, first).body(Full::default())?,
        )
        .await?;
        check("the engine.io handshake", status, &body)?;
        let open_packet = std::str::from_utf8(&body)?;
        let sid = open_packet
            .strip_prefix('0')
            .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
            .and_then(|v| v.get("sid")?.as_str().map(str::to_owned))
            .ok_or_else(|| format!("expected an engine.io open packet, got {open_packet}"))?;
        let mut link = HttpLink {
            up,
            down: Down::Idle(down),
            host,
            // Session ids are base64url too.
            target: format!("{first}&sid={sid}"),
            binary: false,
            engine_io: true,
            ready: VecDeque::new(),
        };
        link.queue(body);
        Ok(link)
    }

    /// Sends one frame as one `POST` and waits for its answer.
    pub(crate) async fn send(&mut self, frame: Message) -> Result<(), Error> {
        let content_type = if self.binary {
            "application/octet-stream"
        } else {
            "text/plain;charset=UTF-8"
        };
        let post = request("POST", &self.host, &self.target)
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(frame.into_data()))?;
        let (status, body) = exchange(&mut self.up, post).await?;
        check("a POST", status, &body)
    }

    /// The next frame: an SSE event's data, or (polling) a poll's body, one
    /// frame per engine.io packet. Cancel safe: a poll in flight stays in
    /// `self`, and a body chunk is only taken whole.
    pub(crate) async fn next_frame(&mut self) -> Result<Message, Error> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Ok(frame);
            }
            match &mut self.down {
                Down::Events { body, buf } => {
                    let chunk = match body.frame().await {
                        Some(chunk) => chunk?,
                        None => return Err("the event stream ended".into()),
                    };
                    if let Ok(data) = chunk.into_data() {
                        buf.extend_from_slice(&data);
                        for event in take_events(buf) {
                            self.ready
                                .push_back(Message::Text(Utf8Bytes::try_from(event)?));
                        }
                    }
                }
                Down::Idle(_) => {
                    let Down::Idle(mut down) = std::mem::replace(&mut self.down, Down::Broken)
                    else {
                        unreachable!("just matched");
                    };
                    let poll = request("GET", &self.host, &self.target).body(Full::default())?;
                    self.down = Down::Polling(Box::pin(async move {
                        let (status, body) = exchange(&mut down, poll).await?;
                        Ok((down, status, body))
                    }));
                }
                Down::Polling(poll) => {
                    let answer = poll.await;
                    self.down = Down::Broken;
                    let (down, status, body) = answer?;
                    match status {
                        StatusCode::OK => {
                            self.down = Down::Idle(down);
                            // Empty: the poll timed out with nothing to say.
                            if !body.is_empty() {
                                self.queue(body);
                            }
                        }
                        // SignalR: the connection has ended.
                        StatusCode::NO_CONTENT => {
                            return Err("the server ended the connection (poll: 204)".into());
                        }
                        _ => check("a poll", status, &body)?,
                    }
                }
                Down::Broken => return Err("the receiving connection failed".into()),
            }
        }
    }

    /// Queues a poll's body: whole for SignalR (JSON records or MessagePack
    /// messages, which the protocol splits), one frame per packet for engine.io.
    fn queue(&mut self, body: Bytes) {
        if self.engine_io {
            for packet in body.split(|&b| b == RS).filter(|p| !p.is_empty()) {
                let packet = body.slice_ref(packet);
                match Utf8Bytes::try_from(packet.clone()) {
                    Ok(text) => self.ready.push_back(Message::Text(text)),
                    Err(_) => self.ready.push_back(Message::Binary(packet)),
                }
            }
        } else if self.binary {
            self.ready.push_back(Message::Binary(body));
        } else {
            match Utf8Bytes::try_from(body.clone()) {
                Ok(text) => self.ready.push_back(Message::Text(text)),
                Err(_) => self.ready.push_back(Message::Binary(body)),
            }
        }
    }
}

/// Takes the complete events out of `buf` (an event ends at a blank line) and
/// returns each one's data: its `data:` lines (one optional space after the
/// colon dropped) joined by `\n`; comments (`:…`) and other fields are skipped,
/// as are events without data.
fn take_events(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    let mut start = 0;
    let mut data: Option<Vec<u8>> = None;
    let mut consumed = 0;
    while let Some(end) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        start += end + 1;
        if line.is_empty() {
            events.extend(data.take());
            consumed = start;
        } else if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            match &mut data {
                Some(joined) => {
                    joined.push(b'\n');
                    joined.extend_from_slice(value);
                }
                None => data = Some(value.to_vec()),
            }
        }
    }
    buf.drain(..consumed);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines() {
        let mut buf = b":\r\ndata: {}\x1e\r\n\r\ndata: a\r\ndata: b\r\n\r\ndata: par".to_vec();
        assert_eq!(
            take_events(&mut buf),
            vec![b"{}\x1e".to_vec(), b"a\nb".to_vec()]
        );
        assert_eq!(buf, b"data: par");
        buf.extend_from_slice(b"tial\n\n");
        assert_eq!(take_events(&mut buf), vec![b"partial".to_vec()]);
        assert!(buf.is_empty());
    }

    #[test]
    fn negotiate_answers_give_the_token() {
        let answer = br#"{"connectionId":"a","connectionToken":"b","negotiateVersion":1}"#;
        assert_eq!(connection_token(StatusCode::OK, answer).unwrap(), "b");
        let error = connection_token(StatusCode::OK, br#"{"error":"no"}"#).unwrap_err();
        assert!(error.to_string().contains("no"), "{error}");
        let error = connection_token(StatusCode::NOT_FOUND, b"gone").unwrap_err();
        assert_eq!(error.to_string(), "negotiate answered 404 Not Found: gone");
    }

    /// A negotiate server on 127.0.0.1 that counts the connections it accepts;
    /// with `close`, it closes each one after its first answer (without
    /// saying so), as a server whose keep-alive ran out.
    async fn negotiate_server(close: bool) -> (u16, std::rc::Rc<std::cell::Cell<usize>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::rc::Rc::new(std::cell::Cell::new(0));
        let count = accepted.clone();
        tokio::task::spawn_local(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.set(count.get() + 1);
                tokio::task::spawn_local(async move {
                    let body = r#"{"connectionToken":"t","negotiateVersion":1}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let mut buf = Vec::new();
                    // Requests without a body: each ends at its blank line.
                    while stream.read_buf(&mut buf).await.is_ok_and(|n| n > 0) {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            stream.write_all(answer.as_bytes()).await.unwrap();
                            if close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (port, accepted)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn kept_alive_negotiate_reuses_a_connection_until_it_closes() {
        let cases = [
            (NegotiateMode::KeptAlive, false, 1),
            (NegotiateMode::Fresh, false, 5),
            (NegotiateMode::KeptAlive, true, 5),
        ];
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                for (mode, close, connections) in cases {
                    let (port, accepted) = negotiate_server(close).await;
                    let negotiator = Negotiator::new(mode);
                    for _ in 0..5 {
                        let token = negotiator.negotiate(Ipv4Addr::LOCALHOST, port).await;
                        assert_eq!(token.unwrap(), "t", "{mode:?}, close {close}");
                    }
                    assert_eq!(accepted.get(), connections, "{mode:?}, close {close}");
                    let idle = usize::from(mode == NegotiateMode::KeptAlive && !close);
                    assert!(negotiator.idle_count() <= idle, "{mode:?}, close {close}");
                    negotiator.close_idle();
                    assert_eq!(negotiator.idle_count(), 0);
                }
                assert_eq!(NegotiateMode::parse("fresh"), Some(NegotiateMode::Fresh));
                assert_eq!(
                    NegotiateMode::parse(NegotiateMode::KeptAlive.name()),
                    Some(NegotiateMode::KeptAlive)
                );
                assert_eq!(NegotiateMode::parse("keep"), None);
            })
            .await;
    }

    #[test]
    fn labels_name_the_transport() {
        assert_eq!(Transport::Sse.label(Protocol::SignalR), "SSE");
        assert_eq!(
            Transport::LongPolling.label(Protocol::SocketIo),
            "polling (engine.io)"
        );
        assert_eq!(Transport::LongPolling.scenario_suffix(), "longpolling");
    }
}
