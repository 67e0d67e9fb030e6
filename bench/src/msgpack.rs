//! The SignalR MessagePack hub protocol, as far as the generator needs it
//! (`/work/shared/protocol.md` §5): each message a VarInt length (7-bit groups,
//! low first, at most 5 bytes) and a msgpack array; several may share a binary
//! WebSocket frame.
//!
//! Built on `rmp` (the version signal-core uses), at the marker level only:
//! requests are written once per connection (echo) or once per broadcast, never
//! per reply; replies are read straight from the frame with `rmp`'s decoders (a
//! handful of marker reads, no allocation, no value tree), then an echo reply is
//! compared with the first one (a memcmp), as the JSON path does.

use std::borrow::Cow;

use crate::client::Event;

/// A Ping, always these bytes (length 2, `[6]`).
pub(crate) const PING: [u8; 3] = [0x02, 0x91, 0x06];

/// `[1, {}, id|nil, target, [argument], []]`, length-prefixed: an invocation of
/// `target` with one string argument; without an id, fire and forget.
pub(crate) fn invocation(id: Option<&str>, target: &str, argument: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(argument.len() + target.len() + 16);
    // Writing into a Vec cannot fail: the results are all Ok.
    let _ = rmp::encode::write_array_len(&mut body, 6);
    let _ = rmp::encode::write_uint(&mut body, 1);
    let _ = rmp::encode::write_map_len(&mut body, 0);
    match id {
        Some(id) => {
            let _ = rmp::encode::write_str(&mut body, id);
        }
        None => {
            let _ = rmp::encode::write_nil(&mut body);
        }
    }
    let _ = rmp::encode::write_str(&mut body, target);
    let _ = rmp::encode::write_array_len(&mut body, 1);
    let _ = rmp::encode::write_str(&mut body, argument);
    let _ = rmp::encode::write_array_len(&mut body, 0);
    framed(&body)
}

/// `body` behind its VarInt length.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    let mut n = body.len();
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            break;
        }
        out.push(low | 0x80);
    }
    out.extend_from_slice(body);
    out
}

/// Calls `on_event` for each message of one binary frame. Broken framing or a
/// message that is not what the protocol says is a `Failure`.
pub(crate) fn events<'a>(frame: &'a [u8], mut on_event: impl FnMut(Event<'a>)) {
    let mut rest = frame;
    while !rest.is_empty() {
        match split_message(rest) {
            Ok((body, after)) => {
                on_event(event(body));
                rest = after;
            }
            Err(what) => {
                on_event(Event::Failure(Cow::Owned(format!(
                    "a malformed MessagePack frame: {what}"
                ))));
                return;
            }
        }
    }
}

/// The first message of `bytes` and what follows it.
fn split_message(bytes: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    let mut length = 0usize;
    let mut i = 0;
    loop {
        let byte = *bytes.get(i).ok_or("a truncated length prefix")?;
        length |= usize::from(byte & 0x7f) << (7 * i);
        i += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if i == 5 {
            return Err("a length prefix longer than 5 bytes");
        }
    }
    let end = i
        .checked_add(length)
        .filter(|&end| end <= bytes.len())
        .ok_or("a message longer than its frame")?;
    Ok((&bytes[i..end], &bytes[end..]))
}

/// What one message (without its length) is to the scenarios.
fn event(body: &[u8]) -> Event<'_> {
    read(body).unwrap_or_else(|what| {
        Event::Failure(Cow::Owned(format!(
            "a malformed MessagePack message ({what}): {body:02x?}"
        )))
    })
}

fn read(body: &[u8]) -> Result<Event<'_>, &'static str> {
    let mut rd = body;
    rmp::decode::read_array_len(&mut rd).map_err(|_| "not an array")?;
    let kind: u8 = rmp::decode::read_int(&mut rd).map_err(|_| "no message type")?;
    Ok(match kind {
        // [1, headers, id|nil, target, arguments, streamIds]
        1 => {
            headers(&mut rd)?;
            string_or_nil(&mut rd)?;
            let target = string(&mut rd)?;
            let arguments = rmp::decode::read_array_len(&mut rd).map_err(|_| "no arguments")?;
            if target == b"message" && arguments >= 1 {
                Event::Delivery(string(&mut rd)?)
            } else {
                Event::Other
            }
        }
        // [3, headers, id, resultKind, result?]: 1 error, 2 void, 3 value.
        3 => {
            headers(&mut rd)?;
            string(&mut rd)?;
            let result: u8 = rmp::decode::read_int(&mut rd).map_err(|_| "no result kind")?;
            match result {
                1 => Event::Failure(String::from_utf8_lossy(string(&mut rd)?)),
                2 | 3 => Event::Reply(body),
                _ => return Err("an unknown result kind"),
            }
        }
        // [7, error|nil, allowReconnect]
        7 => Event::Failure(Cow::Owned(format!(
            "Close: {}",
            string_or_nil(&mut rd)?.map_or(Cow::Borrowed("no error"), String::from_utf8_lossy)
        ))),
        // Ping and whatever else.
        _ => Event::Other,
    })
}

/// Skips a headers map (string → string).
fn headers(rd: &mut &[u8]) -> Result<(), &'static str> {
    let pairs = rmp::decode::read_map_len(rd).map_err(|_| "no headers map")?;
    for _ in 0..pairs {
        string(rd)?;
        string(rd)?;
    }
    Ok(())
}

/// A string's bytes, borrowed from the message.
fn string<'a>(rd: &mut &'a [u8]) -> Result<&'a [u8], &'static str> {
    let length = rmp::decode::read_str_len(rd).map_err(|_| "expected a string")? as usize;
    if rd.len() < length {
        return Err("a truncated string");
    }
    let (text, rest) = rd.split_at(length);
    *rd = rest;
    Ok(text)
}

fn string_or_nil<'a>(rd: &mut &'a [u8]) -> Result<Option<&'a [u8]>, &'static str> {
    if rd.first() == Some(&0xc0) {
        *rd = &rd[1..];
        Ok(None)
    } else {
        string(rd).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(frame: &[u8]) -> Vec<Event<'_>> {
        let mut out = Vec::new();
        events(frame, |e| out.push(e));
        out
    }

    #[test]
    fn invocations_have_the_documented_bytes() {
        assert_eq!(
            invocation(Some("1"), "echo", "ab"),
            b"\x0f\x96\x01\x80\xa11\xa4echo\x91\xa2ab\x90"
        );
        assert_eq!(
            invocation(None, "broadcast", "ab"),
            b"\x13\x96\x01\x80\xc0\xa9broadcast\x91\xa2ab\x90"
        );
        // A 1 KiB argument: str16, and a two-byte length prefix.
        let long = invocation(Some("1"), "echo", &"x".repeat(1024));
        assert_eq!(&long[..2], &[0x8f, 0x08]);
        assert_eq!(split_message(&long).unwrap().0.len(), 1039);
    }

    #[test]
    fn server_messages_are_classified() {
        // Completion with a value, a Ping and a void Completion in one frame.
        let frame = b"\x09\x95\x03\x80\xa11\x03\xa2xx\x02\x91\x06\x06\x94\x03\x80\xa11\x02";
        assert_eq!(
            all(frame),
            vec![
                Event::Reply(b"\x95\x03\x80\xa11\x03\xa2xx"),
                Event::Other,
                Event::Reply(b"\x94\x03\x80\xa11\x02"),
            ]
        );
        let message = b"\x17\x96\x01\x80\xc0\xa7message\x91\xa8#1#2#xxx\x90";
        assert_eq!(all(message), vec![Event::Delivery(b"#1#2#xxx")]);
        // Headers are skipped.
        let with_headers = b"\x1b\x96\x01\x81\xa1a\xa1b\xc0\xa7message\x91\xa8#1#2#xxx\x90";
        assert_eq!(all(with_headers), vec![Event::Delivery(b"#1#2#xxx")]);
        assert_eq!(
            all(b"\x09\x95\x03\x80\xa11\x01\xa2no"),
            vec![Event::Failure(Cow::Borrowed("no"))]
        );
        assert_eq!(
            all(b"\x05\x93\x07\xa1x\xc2"),
            vec![Event::Failure(Cow::Borrowed("Close: x"))]
        );
        assert_eq!(all(&PING), vec![Event::Other]);
    }

    #[test]
    fn broken_frames_are_failures_not_panics() {
        for frame in [
            &b"\x80"[..],
            b"\xff\xff\xff\xff\xff\x01",
            b"\x05\x95\x03",
            b"\x02\xa1x",
            b"\x04\x95\x03\x80\xa1",
            b"\x05\x94\x03\x80\xa11",
        ] {
            let events = all(frame);
            assert!(
                matches!(events.last(), Some(Event::Failure(_))),
                "{frame:02x?} gave {events:?}"
            );
        }
    }
}
