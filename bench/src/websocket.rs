//! The generator's side of a WebSocket, framed here rather than by tungstenite.
//!
//! The load generator has one core, like the server, and must not be what
//! limits a run. Against the bare server it was at 93–99 % of its core in the
//! echo rows, a quarter of it in user space, and much of that was tungstenite's
//! work per frame that no server causes: zeroing its 4 KiB read buffer before
//! each read, a fresh mask key and a masking pass for every frame sent, the
//! `Sink` machinery and its wakers. Here a connection masks with one key of its
//! own (RFC 6455 asks for unpredictable keys to protect proxies' caches; there
//! is no proxy on loopback, and servers unmask whatever key comes), a request
//! that never changes is framed and masked once (`prepare`), and reads go into
//! the buffer's spare capacity without zeroing it. Servers see the same bytes
//! on the wire as from any client.
//!
//! Only what the measured servers send is read: unfragmented text and binary
//! frames, pings (answered) and pongs (ignored). Anything else — a Close, a
//! fragment, a masked frame, reserved bits — ends the connection with an error.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use crate::Error;

/// The largest frame read; more is a broken server, not a benchmark.
const MAX_FRAME: usize = 16 << 20;
/// How much room a read asks for (what tungstenite was given per connection).
const READ_CHUNK: usize = 4 * 1024;
/// The key of the opening handshake: any 16 bytes, base64, do.
const HANDSHAKE_KEY: &str = "c2lnbmFsLWJlbmNobWFyaw==";

/// The frame opcodes of RFC 6455, section 5.2.
mod opcode {
    pub(super) const TEXT: u8 = 0x1;
    pub(super) const BINARY: u8 = 0x2;
    pub(super) const CLOSE: u8 = 0x8;
    pub(super) const PING: u8 = 0x9;
    pub(super) const PONG: u8 = 0xA;
}

/// One client WebSocket, opening handshake done.
pub(crate) struct WebSocket {
    stream: TcpStream,
    /// What was read and not yet handed out, then spare capacity.
    read: BytesMut,
    /// Where frames sent once are framed, reused.
    write: Vec<u8>,
    mask: [u8; 4],
}

impl WebSocket {
    /// Sends the opening handshake for `path` on `stream` and reads the
    /// server's `101 Switching Protocols`. `mask` is the connection's key.
    pub(crate) async fn open(
        mut stream: TcpStream,
        host: &str,
        path: &str,
        mask: [u8; 4],
    ) -> Result<WebSocket, Error> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {HANDSHAKE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut read = BytesMut::with_capacity(READ_CHUNK);
        let head_len = loop {
            if let Some(at) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if read.len() > 16 * 1024 {
                return Err("the server's handshake answer has no end".into());
            }
            read.reserve(READ_CHUNK);
            if stream.read_buf(&mut read).await? == 0 {
                return Err("the server closed during the WebSocket handshake".into());
            }
        };
        let head = read.split_to(head_len);
        let status = head[..].split(|&b| b == b'\r').next().unwrap_or_default();
        if !status.starts_with(b"HTTP/1.1 101 ") {
            return Err(format!(
                "WebSocket handshake refused: {}",
                String::from_utf8_lossy(status)
            )
            .into());
        }
        // Whatever followed the answer (a server may speak first) stays in `read`.
        Ok(WebSocket {
            stream,
            read,
            write: Vec::new(),
            mask,
        })
    }

    /// `message` framed and masked as this connection sends it, to be sent as
    /// often as wanted with `send_prepared`.
    pub(crate) fn prepare(&self, message: &Message) -> Vec<u8> {
        let mut frame = Vec::new();
        encode(message, self.mask, &mut frame);
        frame
    }

    /// Sends one message.
    pub(crate) async fn send(&mut self, message: &Message) -> Result<(), Error> {
        self.write.clear();
        encode(message, self.mask, &mut self.write);
        self.stream.write_all(&self.write).await?;
        Ok(())
    }

    /// Sends a frame made by `prepare`.
    pub(crate) async fn send_prepared(&mut self, frame: &[u8]) -> Result<(), Error> {
        self.stream.write_all(frame).await?;
        Ok(())
    }

    /// The next text or binary message; pings are answered on the way. Cancel
    /// safe while reading (what was read stays in the buffer); a pong cut off
    /// half written would break the stream, but none of the measured servers
    /// sends WebSocket pings while a scenario runs (engine.io's are text).
    pub(crate) async fn next_frame(&mut self) -> Result<Message, Error> {
        let (opcode, payload) = self.next_data().await?;
        self.take(opcode, payload)
    }

    /// Reads the next text or binary message; if its payload is `expected`,
    /// consumes it and returns `None` (no copy, no UTF-8 check), else returns
    /// it as `next_frame` would.
    pub(crate) async fn next_unless(&mut self, expected: &[u8]) -> Result<Option<Message>, Error> {
        let (opcode, payload) = self.next_data().await?;
        if self.read[..payload] == *expected {
            self.read.advance(payload);
            return Ok(None);
        }
        self.take(opcode, payload).map(Some)
    }

    /// Reads until a text or binary frame is buffered, answering control
    /// frames on the way; its payload is at the front of the buffer.
    async fn next_data(&mut self) -> Result<(u8, usize), Error> {
        loop {
            let (opcode, payload) = self.next_payload().await?;
            if matches!(opcode, opcode::TEXT | opcode::BINARY) {
                return Ok((opcode, payload));
            }
            let payload = self.read.split_to(payload).freeze();
            self.control(opcode, payload).await?;
        }
    }

    /// The text or binary message at the front of the buffer, taken out.
    fn take(&mut self, opcode: u8, payload: usize) -> Result<Message, Error> {
        let payload = self.read.split_to(payload).freeze();
        Ok(match opcode {
            opcode::TEXT => Message::Text(Utf8Bytes::try_from(payload)?),
            _ => Message::Binary(payload),
        })
    }

    /// Answers a ping, ignores a pong; a Close, or an opcode RFC 6455 does not
    /// define, is an error.
    async fn control(&mut self, opcode: u8, payload: Bytes) -> Result<(), Error> {
        match opcode {
            opcode::PING => self.send(&Message::Pong(payload)).await,
            opcode::PONG => Ok(()),
            opcode::CLOSE => Err(format!("server closed the WebSocket: {payload:?}").into()),
            _ => Err(format!("a frame of unknown opcode {opcode:#x}").into()),
        }
    }

    /// Reads until a whole frame is buffered, drops its header from the buffer
    /// and returns its opcode and payload length (the payload is at the front).
    async fn next_payload(&mut self) -> Result<(u8, usize), Error> {
        loop {
            if let Some((opcode, header, payload)) = parse_header(&self.read)? {
                if self.read.len() >= header + payload {
                    self.read.advance(header);
                    return Ok((opcode, payload));
                }
                self.read.reserve(header + payload - self.read.len());
            } else {
                self.read.reserve(READ_CHUNK);
            }
            if self.stream.read_buf(&mut self.read).await? == 0 {
                return Err("connection ended".into());
            }
        }
    }
}

/// Frames `message` as a client does (FIN, masked with `mask`) onto `out`.
fn encode(message: &Message, mask: [u8; 4], out: &mut Vec<u8>) {
    let (opcode, payload): (u8, &[u8]) = match message {
        Message::Text(text) => (opcode::TEXT, text.as_bytes()),
        Message::Binary(bytes) => (opcode::BINARY, bytes),
        Message::Ping(bytes) => (opcode::PING, bytes),
        Message::Pong(bytes) => (opcode::PONG, bytes),
        // No reason or code: the generator never closes with one.
        Message::Close(_) | Message::Frame(_) => (opcode::CLOSE, &[]),
    };
    out.reserve(14 + payload.len());
    out.push(0x80 | opcode);
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

/// A server frame's opcode, header length and payload length, once `buffer`
/// holds its whole header; `None` before.
fn parse_header(buffer: &[u8]) -> Result<Option<(u8, usize, usize)>, Error> {
    let [first, second, rest @ ..] = buffer else {
        return Ok(None);
    };
    if first & 0xF0 != 0x80 {
        return Err(format!(
            "a frame the generator does not read (first byte {first:#04x}: a fragment, or reserved bits)"
        )
        .into());
    }
    if second & 0x80 != 0 {
        return Err("the server masked a frame".into());
    }
    let (header, payload) = match second & 0x7F {
        126 => match rest {
            [a, b, ..] => (4, u16::from_be_bytes([*a, *b]) as usize),
            _ => return Ok(None),
        },
        127 => match rest.first_chunk::<8>() {
            Some(bytes) => (10, u64::from_be_bytes(*bytes) as usize),
            None => return Ok(None),
        },
        len => (2, len as usize),
    };
    if payload > MAX_FRAME {
        return Err(format!("a frame of {payload} bytes").into());
    }
    Ok(Some((first & 0x0F, header, payload)))
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn headers_are_read_at_every_length_encoding() {
        assert_eq!(parse_header(b"\x81").unwrap(), None);
        assert_eq!(parse_header(b"\x81\x05hello").unwrap(), Some((1, 2, 5)));
        assert_eq!(parse_header(b"\x82\x7e\x01").unwrap(), None);
        assert_eq!(
            parse_header(b"\x82\x7e\x01\x00").unwrap(),
            Some((2, 4, 256))
        );
        let long = b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00";
        assert_eq!(parse_header(long).unwrap(), Some((1, 10, 65536)));
        assert_eq!(parse_header(&long[..9]).unwrap(), None);
        assert!(parse_header(b"\x01\x05").is_err(), "a fragment");
        assert!(parse_header(b"\xc1\x05").is_err(), "a reserved bit");
        assert!(parse_header(b"\x81\x85").is_err(), "masked");
        let huge = b"\x81\x7f\x00\x00\x00\x01\x00\x00\x00\x00";
        assert!(parse_header(huge).is_err());
    }

    #[test]
    fn frames_are_masked_with_the_connections_key() {
        let mut out = Vec::new();
        encode(&Message::text("ab"), [1, 2, 3, 4], &mut out);
        assert_eq!(out, [0x81, 0x82, 1, 2, 3, 4, b'a' ^ 1, b'b' ^ 2]);
        out.clear();
        encode(&Message::binary(vec![0; 300]), [0, 0, 0, 9], &mut out);
        assert_eq!(out[..8], [0x82, 0xFE, 0x01, 0x2C, 0, 0, 0, 9]);
        assert_eq!(out.len(), 8 + 300);
        assert_eq!(out[8 + 3], 9);
    }

    /// Against tungstenite's server: what it reads is what was sent, at each
    /// length encoding; its pings are answered; its text, binary and Close
    /// frames come out as they went in.
    #[tokio::test]
    async fn a_tungstenite_server_reads_and_writes_what_this_does() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            // Speaks first, so that its frame may arrive with the 101.
            ws.send(Message::text("hello")).await.unwrap();
            ws.send(Message::Ping(Bytes::from_static(b"p")))
                .await
                .unwrap();
            let mut seen = Vec::new();
            while let Some(Ok(message)) = ws.next().await {
                match message {
                    Message::Text(_) | Message::Binary(_) => {
                        ws.send(message.clone()).await.unwrap();
                        seen.push(message);
                    }
                    Message::Pong(bytes) => seen.push(Message::Pong(bytes)),
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            seen
        });
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let host = format!("127.0.0.1:{port}");
        let mut ws = WebSocket::open(stream, &host, "/", [7, 0, 255, 1])
            .await
            .unwrap();
        assert_eq!(ws.next_frame().await.unwrap(), Message::text("hello"));
        let sent = [
            Message::text("short"),
            Message::text("x".repeat(300)),
            Message::binary(vec![5; 70_000]),
        ];
        for message in &sent {
            ws.send(message).await.unwrap();
            assert_eq!(&ws.next_frame().await.unwrap(), message);
        }
        let prepared = ws.prepare(&Message::text("again"));
        for _ in 0..2 {
            ws.send_prepared(&prepared).await.unwrap();
            assert_eq!(ws.next_unless(b"again").await.unwrap(), None);
        }
        ws.send_prepared(&prepared).await.unwrap();
        assert_eq!(
            ws.next_unless(b"other").await.unwrap(),
            Some(Message::text("again"))
        );
        ws.send(&Message::Close(None)).await.unwrap();
        let seen = server.await.unwrap();
        // "short" went out before the ping was read, and so before the pong.
        let [short, rest @ ..] = sent;
        let mut expected = vec![short, Message::Pong(Bytes::from_static(b"p"))];
        expected.extend(rest);
        expected.extend(std::iter::repeat_n(Message::text("again"), 3));
        assert_eq!(seen, expected);
        assert!(ws.next_frame().await.is_err(), "the server's Close ends it");
    }
}
