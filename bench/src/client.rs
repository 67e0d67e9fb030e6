//! Client connections of the load generator: loopback source addresses, the four
//! wire protocols (SignalR JSON, SignalR MessagePack, engine.io v4 / socket.io v5,
//! bare WebSocket text) and the cheap reading of what servers send. Connections
//! are WebSockets (`websocket.rs`), or the HTTP transports of `http_transport.rs`.
//!
//! Everything here runs on one current-thread runtime, so connections share state
//! through `Rc`/`Cell` and never lock.

use std::borrow::Cow;
use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use crate::http_transport::{HttpLink, Negotiator, Transport};
use crate::websocket::WebSocket;
use crate::{Error, msgpack};

/// The record separator that ends every SignalR JSON record.
const RS: char = '\u{1e}';
/// What a SignalR client sends when it has nothing else to say (the JS client does
/// every 15 s), so that the server's client timeout does not fire.
pub(crate) const SIGNALR_PING: &str = "{\"type\":6}\u{1e}";
/// How often an idle SignalR client pings, as the JS client does.
pub(crate) const SIGNALR_PING_INTERVAL: Duration = Duration::from_secs(15);
/// How long opening one connection may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Which wire protocol a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Plain WebSocket text: `e…` is echoed, `b…` is sent to every other connection.
    Bare,
    /// ASP.NET Core SignalR, JSON hub protocol, hub at `/conformance`.
    SignalR,
    /// ASP.NET Core SignalR, MessagePack hub protocol (binary frames), same hub.
    MessagePack,
    /// engine.io v4 / socket.io v5 over WebSocket, default namespace.
    SocketIo,
}

impl Protocol {
    /// The frame an echo of `payload` is asked with. A connection has one request
    /// in flight at a time, so the invocation (or ack) id can stay the same.
    pub(crate) fn echo_request(self, payload: &str) -> Message {
        match self {
            Protocol::Bare => Message::text(format!("e{payload}")),
            Protocol::SignalR => Message::text(format!(
                "{{\"type\":1,\"invocationId\":\"1\",\"target\":\"echo\",\"arguments\":[\"{payload}\"]}}{RS}"
            )),
            Protocol::MessagePack => {
                Message::binary(msgpack::invocation(Some("1"), "echo", payload))
            }
            Protocol::SocketIo => Message::text(format!("421[\"echo\",\"{payload}\"]")),
        }
    }

    /// The frame that asks the server to send `text` to every connection.
    pub(crate) fn broadcast_request(self, text: &str) -> Message {
        match self {
            Protocol::Bare => Message::text(format!("b{text}")),
            // Fire and forget: no invocation id, so no completion comes back.
            Protocol::SignalR => Message::text(format!(
                "{{\"type\":1,\"target\":\"broadcast\",\"arguments\":[\"{text}\"]}}{RS}"
            )),
            Protocol::MessagePack => Message::binary(msgpack::invocation(None, "broadcast", text)),
            Protocol::SocketIo => Message::text(format!("42[\"broadcast\",\"{text}\"]")),
        }
    }

    /// Whether an idle client of this protocol sends pings of its own (SignalR
    /// clients do, every 15 s; socket.io clients only answer the server's).
    pub(crate) fn client_pings(self) -> bool {
        matches!(self, Protocol::SignalR | Protocol::MessagePack)
    }

    /// Calls `on_event` for each message in one frame (text, or binary for
    /// MessagePack; a frame of the other kind is ignored).
    pub(crate) fn events<'a>(self, frame: &'a Message, mut on_event: impl FnMut(Event<'a>)) {
        match (self, frame) {
            (Protocol::Bare, Message::Text(text)) => on_event(match text.as_bytes().first() {
                Some(b'e') => Event::Reply(text.as_bytes()),
                Some(b'b') => Event::Delivery(text.as_bytes()),
                _ => Event::Other,
            }),
            (Protocol::SignalR, Message::Text(text)) => {
                for record in text.split(RS).filter(|r| !r.is_empty()) {
                    on_event(signalr_event(record));
                }
            }
            (Protocol::MessagePack, Message::Binary(bytes)) => msgpack::events(bytes, on_event),
            (Protocol::SocketIo, Message::Text(text)) => on_event(socketio_event(text)),
            _ => on_event(Event::Other),
        }
    }
}

/// One message a server sent, as far as the scenarios care.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// The answer to an echo (the whole message; it holds the payload).
    Reply(&'a [u8]),
    /// A broadcast message (the whole message, or for MessagePack the text
    /// argument; it holds the stamp).
    Delivery(&'a [u8]),
    /// A socket.io ping, which must be answered with a pong (`3`).
    Ping,
    /// The server refused, failed or closed: an invocation error, a Close, a
    /// socket.io disconnect or error, a malformed MessagePack message.
    Failure(Cow<'a, str>),
    /// Anything else (SignalR pings, …).
    Other,
}

/// The `type` of a SignalR JSON record, read without parsing the record.
fn signalr_type(record: &str) -> Option<u8> {
    let at = record.find("\"type\":")? + "\"type\":".len();
    let digits = record[at..].trim_start();
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

fn signalr_event(record: &str) -> Event<'_> {
    match signalr_type(record) {
        Some(3) if record.contains("\"error\"") => Event::Failure(Cow::Borrowed(record)),
        Some(3) => Event::Reply(record.as_bytes()),
        Some(1) if record.contains("\"target\":\"message\"") => Event::Delivery(record.as_bytes()),
        Some(7) => Event::Failure(Cow::Borrowed(record)),
        _ => Event::Other,
    }
}

fn socketio_event(packet: &str) -> Event<'_> {
    let bytes = packet.as_bytes();
    match bytes {
        [b'2'] => Event::Ping,
        [b'4', b'3', ..] => Event::Reply(bytes),
        [b'4', b'2', ..] if packet.contains("\"message\"") => Event::Delivery(bytes),
        [b'4', b'1' | b'4', ..] | [b'1', ..] => Event::Failure(Cow::Borrowed(packet)),
        _ => Event::Other,
    }
}

/// The text a broadcast carries: `#seq#micros#` then padding up to `len` bytes.
pub(crate) fn stamp(seq: u64, sent_us: u64, len: usize) -> String {
    let mut text = format!("#{seq}#{sent_us}#");
    while text.len() < len {
        text.push('x');
    }
    text
}

/// Reads the stamp back out of a delivered message: `(seq, micros)`.
pub(crate) fn parse_stamp(message: &[u8]) -> Option<(u64, u64)> {
    let start = message.iter().position(|&b| b == b'#')? + 1;
    let mut parts = message[start..].splitn(3, |&b| b == b'#');
    let number = |digits: &[u8]| std::str::from_utf8(digits).ok()?.parse().ok();
    let seq = number(parts.next()?)?;
    let sent = number(parts.next()?)?;
    parts.next()?;
    Some((seq, sent))
}

/// Whether `needle` occurs in `haystack` (a plain scan: only the first reply of
/// a connection is searched).
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The loopback source addresses connections are spread over, round robin, so
/// that tens of thousands of connections do not run out of ephemeral ports.
pub(crate) struct Sources {
    addrs: Vec<Ipv4Addr>,
    next: Cell<usize>,
}

impl Sources {
    /// `count` addresses from 127.0.0.2 on.
    pub(crate) fn new(count: u8) -> Sources {
        let addrs = (0..count.max(1))
            .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i.min(250)))
            .collect();
        Sources {
            addrs,
            next: Cell::new(0),
        }
    }

    fn next(&self) -> Ipv4Addr {
        let i = self.next.get();
        self.next.set((i + 1) % self.addrs.len());
        self.addrs[i]
    }
}

/// Where and how to connect.
pub(crate) struct Endpoint<'a> {
    /// The server's protocol.
    pub(crate) protocol: Protocol,
    /// The ports of the server's nodes on 127.0.0.1; each connection goes to
    /// the next.
    pub(crate) ports: &'a [u16],
    /// Which port the next connection takes.
    pub(crate) next_port: Cell<usize>,
    /// Negotiate at one node and open the WebSocket at the next (a load
    /// balancer without session affinity).
    pub(crate) unsticky: bool,
    /// The source addresses to bind.
    pub(crate) sources: &'a Sources,
    /// SignalR only: connect as a client with `skipNegotiation` does (WebSocket
    /// straight away, no negotiate request).
    pub(crate) skip_negotiate: bool,
    /// SignalR over WebSockets: where negotiate requests go (kept-alive
    /// connections, or one each).
    pub(crate) negotiator: Negotiator,
    /// How frames travel.
    pub(crate) transport: Transport,
}

/// One open connection, handshake done.
pub(crate) struct Conn {
    link: Link,
    /// The connection's protocol.
    pub(crate) protocol: Protocol,
}

/// What carries a connection's frames.
enum Link {
    WebSocket(WebSocket),
    Http(HttpLink),
}

/// A message framed once to be sent many times (`Conn::prepare`).
pub(crate) struct Prepared {
    message: Message,
    /// The WebSocket frame, masked; `None` over the HTTP transports.
    frame: Option<Vec<u8>>,
}

pub(crate) async fn tcp(source: Ipv4Addr, port: u16) -> Result<TcpStream, Error> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.into(), 0))?;
    let stream = socket
        .connect(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port))
        .await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens a connection: negotiate (SignalR), WebSocket upgrade, protocol handshake.
pub(crate) async fn connect(endpoint: &Endpoint<'_>) -> Result<Conn, Error> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(endpoint)).await {
        Ok(result) => result,
        Err(_) => Err("connect timed out".into()),
    }
}

async fn connect_inner(endpoint: &Endpoint<'_>) -> Result<Conn, Error> {
    let source = endpoint.sources.next();
    let turn = endpoint.next_port.get();
    endpoint.next_port.set(turn.wrapping_add(1));
    let port = endpoint.ports[turn % endpoint.ports.len()];
    let link = match (endpoint.transport, endpoint.protocol) {
        (Transport::WebSocket, _) => None,
        (transport, protocol @ (Protocol::SignalR | Protocol::MessagePack)) => Some(
            HttpLink::signalr(source, port, transport, protocol == Protocol::MessagePack).await?,
        ),
        (Transport::LongPolling, Protocol::SocketIo) => {
            Some(HttpLink::engine_io(source, port).await?)
        }
        (transport, protocol) => {
            return Err(format!("{protocol:?} has no {transport:?} transport here").into());
        }
    };
    if let Some(link) = link {
        let mut conn = Conn {
            link: Link::Http(link),
            protocol: endpoint.protocol,
        };
        conn.handshake().await?;
        return Ok(conn);
    }
    let path = match endpoint.protocol {
        Protocol::Bare => "/".to_owned(),
        // Connection tokens are base64url: nothing to escape.
        Protocol::SignalR | Protocol::MessagePack if endpoint.skip_negotiate => {
            "/conformance".to_owned()
        }
        Protocol::SignalR | Protocol::MessagePack => {
            let at = if endpoint.unsticky {
                endpoint.ports[(turn + 1) % endpoint.ports.len()]
            } else {
                port
            };
            let token = endpoint.negotiator.negotiate(source, at).await?;
            format!("/conformance?id={token}")
        }
        Protocol::SocketIo => "/socket.io/?EIO=4&transport=websocket".to_owned(),
    };
    let stream = tcp(source, port).await?;
    // A key of the connection's own (see `websocket.rs`), all four bytes used.
    let mask = (turn as u32 | 0x0101_0101).to_le_bytes();
    let ws = WebSocket::open(stream, &format!("127.0.0.1:{port}"), &path, mask).await?;
    let mut conn = Conn {
        link: Link::WebSocket(ws),
        protocol: endpoint.protocol,
    };
    conn.handshake().await?;
    Ok(conn)
}

impl Conn {
    async fn handshake(&mut self) -> Result<(), Error> {
        match self.protocol {
            Protocol::Bare => Ok(()),
            Protocol::SignalR | Protocol::MessagePack => {
                let name = match self.protocol {
                    Protocol::MessagePack => "messagepack",
                    _ => "json",
                };
                // Always a JSON text record, whatever the hub protocol; the answer
                // comes in the protocol's frame type (binary for MessagePack).
                self.send_str(&format!("{{\"protocol\":\"{name}\",\"version\":1}}{RS}"))
                    .await?;
                let frame = match self.next_frame().await? {
                    Message::Text(text) => Bytes::from(text),
                    Message::Binary(bytes) => bytes,
                    _ => Bytes::new(),
                };
                let first = frame.split(|&b| b == RS as u8).next().unwrap_or(&[]);
                if first.trim_ascii() == b"{}" {
                    Ok(())
                } else {
                    Err(format!("handshake refused: {}", String::from_utf8_lossy(first)).into())
                }
            }
            Protocol::SocketIo => {
                let open = self.next_text().await?;
                if !open.starts_with('0') {
                    return Err(format!("expected an engine.io open packet, got {open}").into());
                }
                self.send_str("40").await?;
                loop {
                    let text = self.next_text().await?;
                    match text.as_bytes() {
                        [b'4', b'0', ..] => return Ok(()),
                        [b'2'] => self.send_str("3").await?,
                        _ => return Err(format!("socket.io connect refused: {text}").into()),
                    }
                }
            }
        }
    }

    /// Sends one frame.
    pub(crate) async fn send(&mut self, frame: Message) -> Result<(), Error> {
        match &mut self.link {
            Link::WebSocket(ws) => ws.send(&frame).await?,
            Link::Http(link) => link.send(frame).await?,
        }
        Ok(())
    }

    /// `message` made ready to be sent many times with `send_prepared`.
    pub(crate) fn prepare(&self, message: Message) -> Prepared {
        let frame = match &self.link {
            Link::WebSocket(ws) => Some(ws.prepare(&message)),
            Link::Http(_) => None,
        };
        Prepared { message, frame }
    }

    /// Sends a prepared message.
    pub(crate) async fn send_prepared(&mut self, prepared: &Prepared) -> Result<(), Error> {
        match (&mut self.link, &prepared.frame) {
            (Link::WebSocket(ws), Some(frame)) => ws.send_prepared(frame).await,
            _ => self.send(prepared.message.clone()).await,
        }
    }

    /// The next text or binary frame, unless its payload is `expected`: then
    /// `None`, and over a WebSocket the frame was neither copied nor checked
    /// for UTF-8.
    pub(crate) async fn next_unless(&mut self, expected: &[u8]) -> Result<Option<Message>, Error> {
        let frame = match &mut self.link {
            Link::WebSocket(ws) => return ws.next_unless(expected).await,
            Link::Http(link) => link.next_frame().await?,
        };
        let payload: &[u8] = match &frame {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
            _ => &[],
        };
        Ok((payload != expected).then_some(frame))
    }

    async fn send_str(&mut self, text: &str) -> Result<(), Error> {
        self.send(Message::Text(Utf8Bytes::from(text))).await
    }

    /// The next text frame; binary frames are skipped (the text protocols'
    /// handshakes).
    async fn next_text(&mut self) -> Result<Utf8Bytes, Error> {
        loop {
            if let Message::Text(text) = self.next_frame().await? {
                return Ok(text);
            }
        }
    }

    /// The next text or binary frame. Cancel safe (see `WebSocket::next_frame`
    /// for its one exception). WebSocket pings are answered on the way; a Close
    /// or the end of the stream is an error.
    pub(crate) async fn next_frame(&mut self) -> Result<Message, Error> {
        match &mut self.link {
            Link::WebSocket(ws) => ws.next_frame().await,
            Link::Http(link) => link.next_frame().await,
        }
    }

    /// Answers what needs an answer (socket.io pings) in a frame just read.
    pub(crate) async fn answer(&mut self, pings: usize) -> Result<(), Error> {
        for _ in 0..pings {
            self.send_str("3").await?;
        }
        Ok(())
    }

    /// Sends what keeps an idle client alive: a SignalR Ping; nothing otherwise
    /// (socket.io clients only answer the server's pings).
    pub(crate) async fn keep_alive(&mut self) -> Result<(), Error> {
        match self.protocol {
            Protocol::SignalR => self.send_str(SIGNALR_PING).await,
            Protocol::MessagePack => {
                self.send(Message::Binary(Bytes::from_static(&msgpack::PING)))
                    .await
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(protocol: Protocol, frame: &Message) -> Vec<Event<'_>> {
        let mut events = Vec::new();
        protocol.events(frame, |e| events.push(e));
        events
    }

    /// The events of a text frame, owned, for comparing.
    fn kinds(protocol: Protocol, text: &str) -> Vec<String> {
        all(protocol, &Message::text(text))
            .into_iter()
            .map(|e| format!("{e:?}"))
            .collect()
    }

    #[test]
    fn signalr_records_are_classified() {
        let text = "{\"type\":6}\u{1e}{\"type\":3,\"invocationId\":\"1\",\"result\":\"xx\"}\u{1e}";
        let frame = Message::text(text);
        assert_eq!(
            all(Protocol::SignalR, &frame),
            vec![
                Event::Other,
                Event::Reply(b"{\"type\":3,\"invocationId\":\"1\",\"result\":\"xx\"}")
            ]
        );
        let message = "{\"type\":1,\"target\":\"message\",\"arguments\":[\"#1#2#\"]}\u{1e}";
        assert!(kinds(Protocol::SignalR, message)[0].starts_with("Delivery"));
        let error = "{\"type\":3,\"invocationId\":\"1\",\"error\":\"no\"}\u{1e}";
        assert!(kinds(Protocol::SignalR, error)[0].starts_with("Failure"));
        assert!(
            kinds(Protocol::SignalR, "{\"type\":7,\"error\":\"x\"}\u{1e}")[0]
                .starts_with("Failure")
        );
    }

    #[test]
    fn socketio_packets_are_classified() {
        assert_eq!(kinds(Protocol::SocketIo, "2"), vec!["Ping"]);
        let reply = Message::text("431[\"xx\"]");
        assert_eq!(
            all(Protocol::SocketIo, &reply),
            vec![Event::Reply(b"431[\"xx\"]")]
        );
        assert!(kinds(Protocol::SocketIo, "42[\"message\",\"#1#2#\"]")[0].starts_with("Delivery"));
        assert!(kinds(Protocol::SocketIo, "41")[0].starts_with("Failure"));
        assert_eq!(
            kinds(Protocol::SocketIo, "40{\"sid\":\"a\"}"),
            vec!["Other"]
        );
    }

    #[test]
    fn messagepack_frames_are_read_and_text_frames_ignored() {
        let reply = Message::binary(&b"\x09\x95\x03\x80\xa11\x03\xa2xx"[..]);
        assert_eq!(
            all(Protocol::MessagePack, &reply),
            vec![Event::Reply(b"\x95\x03\x80\xa11\x03\xa2xx")]
        );
        assert_eq!(kinds(Protocol::MessagePack, "{}\u{1e}"), vec!["Other"]);
        assert_eq!(all(Protocol::SignalR, &reply), vec![Event::Other]);
        assert!(Protocol::MessagePack.client_pings());
        assert!(!Protocol::SocketIo.client_pings());
    }

    #[test]
    fn requests_have_the_documented_shape() {
        assert_eq!(
            Protocol::SignalR.echo_request("ab"),
            Message::text(
                "{\"type\":1,\"invocationId\":\"1\",\"target\":\"echo\",\"arguments\":[\"ab\"]}\u{1e}"
            )
        );
        assert_eq!(
            Protocol::MessagePack.echo_request("ab"),
            Message::binary(&b"\x0f\x96\x01\x80\xa11\xa4echo\x91\xa2ab\x90"[..])
        );
        assert_eq!(
            Protocol::SocketIo.echo_request("ab"),
            Message::text("421[\"echo\",\"ab\"]")
        );
        assert_eq!(
            Protocol::SocketIo.broadcast_request("ab"),
            Message::text("42[\"broadcast\",\"ab\"]")
        );
        assert_eq!(Protocol::Bare.broadcast_request("ab"), Message::text("bab"));
    }

    #[test]
    fn stamps_round_trip() {
        let text = stamp(42, 123_456, 64);
        assert_eq!(text.len(), 64);
        for protocol in [Protocol::SignalR, Protocol::MessagePack, Protocol::SocketIo] {
            let wrapped = protocol.broadcast_request(&text).into_data();
            assert_eq!(parse_stamp(&wrapped), Some((42, 123_456)));
        }
        assert_eq!(parse_stamp(b"no stamp"), None);
        assert!(contains(b"abcd", b"bc"));
        assert!(!contains(b"abcd", b"bd"));
    }

    #[test]
    fn sources_rotate() {
        let sources = Sources::new(2);
        let a = sources.next();
        let b = sources.next();
        assert_ne!(a, b);
        assert_eq!(sources.next(), a);
    }
}
