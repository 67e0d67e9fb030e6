//! Client connections of the load generator: loopback source addresses, the three
//! wire protocols (SignalR JSON, engine.io v4 / socket.io v5, bare WebSocket text)
//! and the cheap reading of what servers send.
//!
//! Everything here runs on one current-thread runtime, so connections share state
//! through `Rc`/`Cell` and never lock.

use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::Error;

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
    /// engine.io v4 / socket.io v5 over WebSocket, default namespace.
    SocketIo,
}

impl Protocol {
    /// The text an echo of `payload` is asked with. A connection has one request
    /// in flight at a time, so the invocation (or ack) id can stay the same.
    pub(crate) fn echo_request(self, payload: &str) -> String {
        match self {
            Protocol::Bare => format!("e{payload}"),
            Protocol::SignalR => format!(
                "{{\"type\":1,\"invocationId\":\"1\",\"target\":\"echo\",\"arguments\":[\"{payload}\"]}}{RS}"
            ),
            Protocol::SocketIo => format!("421[\"echo\",\"{payload}\"]"),
        }
    }

    /// The text that asks the server to send `text` to every connection.
    pub(crate) fn broadcast_request(self, text: &str) -> String {
        match self {
            Protocol::Bare => format!("b{text}"),
            // Fire and forget: no invocation id, so no completion comes back.
            Protocol::SignalR => {
                format!("{{\"type\":1,\"target\":\"broadcast\",\"arguments\":[\"{text}\"]}}{RS}")
            }
            Protocol::SocketIo => format!("42[\"broadcast\",\"{text}\"]"),
        }
    }

    /// Calls `on_event` for each message in one text frame.
    pub(crate) fn events<'a>(self, text: &'a str, mut on_event: impl FnMut(Event<'a>)) {
        match self {
            Protocol::Bare => on_event(match text.as_bytes().first() {
                Some(b'e') => Event::Reply(text),
                Some(b'b') => Event::Delivery(text),
                _ => Event::Other,
            }),
            Protocol::SignalR => {
                for record in text.split(RS).filter(|r| !r.is_empty()) {
                    on_event(signalr_event(record));
                }
            }
            Protocol::SocketIo => on_event(socketio_event(text)),
        }
    }
}

/// One message a server sent, as far as the scenarios care.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// The answer to an echo (the whole message; it holds the payload).
    Reply(&'a str),
    /// A broadcast message (the whole message; it holds the stamp).
    Delivery(&'a str),
    /// A socket.io ping, which must be answered with a pong (`3`).
    Ping,
    /// The server refused, failed or closed: an invocation error, a Close, a
    /// socket.io disconnect or error.
    Failure(&'a str),
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
        Some(3) if record.contains("\"error\"") => Event::Failure(record),
        Some(3) => Event::Reply(record),
        Some(1) if record.contains("\"target\":\"message\"") => Event::Delivery(record),
        Some(7) => Event::Failure(record),
        _ => Event::Other,
    }
}

fn socketio_event(packet: &str) -> Event<'_> {
    let bytes = packet.as_bytes();
    match bytes {
        [b'2'] => Event::Ping,
        [b'4', b'3', ..] => Event::Reply(packet),
        [b'4', b'2', ..] if packet.contains("\"message\"") => Event::Delivery(packet),
        [b'4', b'1' | b'4', ..] | [b'1', ..] => Event::Failure(packet),
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
pub(crate) fn parse_stamp(message: &str) -> Option<(u64, u64)> {
    let start = message.find('#')? + 1;
    let mut parts = message[start..].splitn(3, '#');
    let seq = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((seq, sent))
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
    /// The server's port on 127.0.0.1.
    pub(crate) port: u16,
    /// The source addresses to bind.
    pub(crate) sources: &'a Sources,
    /// SignalR only: connect as a client with `skipNegotiation` does (WebSocket
    /// straight away, no negotiate request).
    pub(crate) skip_negotiate: bool,
}

/// One open connection, handshake done.
pub(crate) struct Conn {
    ws: WebSocketStream<TcpStream>,
    /// The connection's protocol.
    pub(crate) protocol: Protocol,
}

fn ws_config() -> WebSocketConfig {
    // Lean per connection: 4 KiB read buffer, writes go out at once.
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

async fn tcp(source: Ipv4Addr, port: u16) -> Result<TcpStream, Error> {
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
    let port = endpoint.port;
    let path = match endpoint.protocol {
        Protocol::Bare => "/".to_owned(),
        // Connection tokens are base64url: nothing to escape.
        Protocol::SignalR if endpoint.skip_negotiate => "/conformance".to_owned(),
        Protocol::SignalR => format!("/conformance?id={}", negotiate(source, port).await?),
        Protocol::SocketIo => "/socket.io/?EIO=4&transport=websocket".to_owned(),
    };
    let stream = tcp(source, port).await?;
    let request = format!("ws://127.0.0.1:{port}{path}").into_client_request()?;
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config())).await?;
    let mut conn = Conn {
        ws,
        protocol: endpoint.protocol,
    };
    conn.handshake().await?;
    Ok(conn)
}

/// `POST /conformance/negotiate?negotiateVersion=1` on its own TCP connection, as
/// clients do; returns the connection token.
async fn negotiate(source: Ipv4Addr, port: u16) -> Result<String, Error> {
    let mut stream = tcp(source, port).await?;
    let request = format!(
        "POST /conformance/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         X-Requested-With: XMLHttpRequest\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(body) = http_body(&buf)? {
            let answer: serde_json::Value = serde_json::from_slice(body)?;
            return answer
                .get("connectionToken")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
                .ok_or_else(|| format!("negotiate answered {answer}").into());
        }
        if buf.len() > 64 * 1024 {
            return Err("negotiate answer too large".into());
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err("negotiate: connection closed before the answer".into());
        }
    }
}

/// The body of a complete HTTP/1.1 response with a Content-Length in `buf`;
/// `None` while more is needed.
fn http_body(buf: &[u8]) -> Result<Option<&[u8]>, Error> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end])?;
    let status = head.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("negotiate answered {}", head.lines().next().unwrap_or("")).into());
    }
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or("negotiate answer has no Content-Length")?;
    let body = &buf[head_end + 4..];
    Ok((body.len() >= length).then(|| &body[..length]))
}

impl Conn {
    async fn handshake(&mut self) -> Result<(), Error> {
        match self.protocol {
            Protocol::Bare => Ok(()),
            Protocol::SignalR => {
                self.send_str(&format!("{{\"protocol\":\"json\",\"version\":1}}{RS}"))
                    .await?;
                let text = self.next_text().await?;
                let first = text.split(RS).next().unwrap_or("");
                if first.trim() == "{}" {
                    Ok(())
                } else {
                    Err(format!("handshake refused: {first}").into())
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

    /// Sends one text frame.
    pub(crate) async fn send(&mut self, text: Utf8Bytes) -> Result<(), Error> {
        self.ws.send(Message::Text(text)).await?;
        Ok(())
    }

    async fn send_str(&mut self, text: &str) -> Result<(), Error> {
        self.send(Utf8Bytes::from(text)).await
    }

    /// The next text frame. Cancel safe. WebSocket pings are answered by
    /// tungstenite itself; a Close or the end of the stream is an error.
    pub(crate) async fn next_text(&mut self) -> Result<Utf8Bytes, Error> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text),
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!("server closed the WebSocket: {frame:?}").into());
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
                None => return Err("connection ended".into()),
            }
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
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(protocol: Protocol, text: &str) -> Vec<Event<'_>> {
        let mut events = Vec::new();
        protocol.events(text, |e| events.push(e));
        events
    }

    #[test]
    fn signalr_records_are_classified() {
        let text = "{\"type\":6}\u{1e}{\"type\":3,\"invocationId\":\"1\",\"result\":\"xx\"}\u{1e}";
        assert_eq!(
            all(Protocol::SignalR, text),
            vec![
                Event::Other,
                Event::Reply("{\"type\":3,\"invocationId\":\"1\",\"result\":\"xx\"}")
            ]
        );
        let message = "{\"type\":1,\"target\":\"message\",\"arguments\":[\"#1#2#\"]}\u{1e}";
        assert!(matches!(
            all(Protocol::SignalR, message)[..],
            [Event::Delivery(_)]
        ));
        let error = "{\"type\":3,\"invocationId\":\"1\",\"error\":\"no\"}\u{1e}";
        assert!(matches!(
            all(Protocol::SignalR, error)[..],
            [Event::Failure(_)]
        ));
        assert!(matches!(
            all(Protocol::SignalR, "{\"type\":7,\"error\":\"x\"}\u{1e}")[..],
            [Event::Failure(_)]
        ));
    }

    #[test]
    fn socketio_packets_are_classified() {
        assert_eq!(all(Protocol::SocketIo, "2"), vec![Event::Ping]);
        assert_eq!(
            all(Protocol::SocketIo, "431[\"xx\"]"),
            vec![Event::Reply("431[\"xx\"]")]
        );
        assert!(matches!(
            all(Protocol::SocketIo, "42[\"message\",\"#1#2#\"]")[..],
            [Event::Delivery(_)]
        ));
        assert!(matches!(
            all(Protocol::SocketIo, "41")[..],
            [Event::Failure(_)]
        ));
        assert_eq!(
            all(Protocol::SocketIo, "40{\"sid\":\"a\"}"),
            vec![Event::Other]
        );
    }

    #[test]
    fn requests_have_the_documented_shape() {
        assert_eq!(
            Protocol::SignalR.echo_request("ab"),
            "{\"type\":1,\"invocationId\":\"1\",\"target\":\"echo\",\"arguments\":[\"ab\"]}\u{1e}"
        );
        assert_eq!(
            Protocol::SocketIo.echo_request("ab"),
            "421[\"echo\",\"ab\"]"
        );
        assert_eq!(
            Protocol::SocketIo.broadcast_request("ab"),
            "42[\"broadcast\",\"ab\"]"
        );
        assert_eq!(Protocol::Bare.broadcast_request("ab"), "bab");
    }

    #[test]
    fn stamps_round_trip() {
        let text = stamp(42, 123_456, 64);
        assert_eq!(text.len(), 64);
        let wrapped = Protocol::SignalR.broadcast_request(&text);
        assert_eq!(parse_stamp(&wrapped), Some((42, 123_456)));
        assert_eq!(parse_stamp("no stamp"), None);
    }

    #[test]
    fn http_body_waits_for_the_whole_answer() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n{}";
        assert!(http_body(head).unwrap().is_none());
        let full = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n{\"\"}";
        assert_eq!(http_body(full).unwrap(), Some(&b"{\"\"}"[..]));
        assert!(http_body(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
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
