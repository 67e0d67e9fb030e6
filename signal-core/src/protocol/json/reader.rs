//! The JSON hub protocol's quick read of a message's envelope.
//!
//! serde_json's derive reads a message's eleven optional properties through its
//! generic machinery (a key into a scratch buffer, matched, each value behind an
//! `Option`): about 2,700 instructions for a small invocation, a sixth of a whole
//! echo call. This reader walks the record's object itself for the shapes clients
//! send (property names and strings without escapes, small integers, booleans) and
//! hands each structured value (arguments, results, items, stream ids, headers) to
//! serde_json.
//!
//! It never decides anything on its own: on anything else (an escape, `null`, an
//! unknown or repeated property, a number that is not a plain integer, malformed
//! JSON) it gives up and the caller parses the record with serde_json, so every
//! error is serde_json's. The tests check that whatever it reads, serde_json reads
//! the same.
//!
//! One difference is left: serde_json limits nesting to 128 levels from where it
//! starts, and a structured value read here starts the count at itself, not at the
//! record's object: it may nest a level or two deeper than through the whole
//! record (an argument 128 levels, not 126).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::WireMessage;
use super::writer::{escape_in_word, needs_escape};
use crate::message::{Arguments, Headers};
use crate::payload::{JsonText, Payload};

/// The record's message, or `None` when serde_json must read it.
pub(super) fn read(text: &str) -> Option<WireMessage> {
    let mut cursor = Cursor { text, at: 0 };
    let mut wire = WireMessage::default();
    let mut seen = 0_u16;
    cursor.skip_whitespace();
    cursor.eat(b'{')?;
    cursor.skip_whitespace();
    if cursor.eat(b'}').is_none() {
        loop {
            let name = cursor.plain_string()?;
            cursor.skip_whitespace();
            cursor.eat(b':')?;
            cursor.skip_whitespace();
            let property = match name {
                "type" => {
                    wire.message_type = Some(u8::try_from(cursor.integer()?).ok()?);
                    0
                }
                "invocationId" => {
                    wire.invocation_id = Some(cursor.plain_string()?.to_owned());
                    1
                }
                "target" => {
                    wire.target = Some(cursor.plain_string()?.to_owned());
                    2
                }
                "arguments" => {
                    // `null` (no arguments at all) is left to serde_json's path,
                    // which reports it.
                    wire.arguments = Some(cursor.arguments()?);
                    3
                }
                "streamIds" => {
                    cursor.peek(b'[')?;
                    wire.stream_ids = Some(cursor.value::<Vec<String>>()?);
                    4
                }
                "item" => {
                    wire.item = Some(cursor.value::<Box<RawValue>>()?);
                    5
                }
                "result" => {
                    wire.result = Some(cursor.value::<Box<RawValue>>()?);
                    6
                }
                "error" => {
                    wire.error = Some(cursor.plain_string()?.to_owned());
                    7
                }
                "allowReconnect" => {
                    wire.allow_reconnect = Some(cursor.boolean()?);
                    8
                }
                "sequenceId" => {
                    wire.sequence_id = Some(cursor.integer()?);
                    9
                }
                "headers" => {
                    cursor.peek(b'{')?;
                    wire.headers = cursor.value::<Headers>()?;
                    10
                }
                // Ignored by serde_json's path, which skips the value.
                _ => return None,
            };
            // A repeated property is serde_json's error to report.
            if seen & (1 << property) != 0 {
                return None;
            }
            seen |= 1 << property;
            cursor.skip_whitespace();
            match cursor.next()? {
                b',' => cursor.skip_whitespace(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    cursor.skip_whitespace();
    (cursor.at == text.len()).then_some(wire)
}

/// The length of a string's run up to its closing quote, if nothing in it is
/// escaped (or is a control character, which JSON does not allow).
fn plain_length(rest: &[u8]) -> Option<usize> {
    // Names and ids are short: eight bytes at a time (the record goes on after
    // them).
    let mut at = 0;
    while at < 32 {
        let Some(word) = rest.get(at..at + 8) else {
            let tail = rest
                .get(at..)?
                .iter()
                .position(|&byte| needs_escape(byte))?;
            at += tail;
            return (rest[at] == b'"').then_some(at);
        };
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        if let Some(found) = escape_in_word(word) {
            at += found;
            return (rest[at] == b'"').then_some(at);
        }
        at += 8;
    }
    // A long string: memchr's vector search for the quote or a backslash, then
    // the run's smallest byte, taken without an early exit so that it is
    // computed many bytes at a time, for a control character.
    let end = at + memchr::memchr2(b'"', b'\\', &rest[at..])?;
    let lowest = rest[at..end]
        .iter()
        .fold(u8::MAX, |low, &byte| low.min(byte));
    (lowest >= 0x20 && rest[end] == b'"').then_some(end)
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn next(&mut self) -> Option<u8> {
        let byte = *self.text.as_bytes().get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn eat(&mut self, expected: u8) -> Option<()> {
        self.peek(expected)?;
        self.at += 1;
        Some(())
    }

    fn peek(&self, expected: u8) -> Option<()> {
        (self.text.as_bytes().get(self.at) == Some(&expected)).then_some(())
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.as_bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// A string with nothing escaped in it, without its quotes.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let rest = self.text.as_bytes().get(start..)?;
        let length = plain_length(rest)?;
        self.at = start + length + 1;
        self.text.get(start..start + length)
    }

    /// An array of arguments, each kept as its text: a plain string taken as it
    /// is (the scan for its end has checked it), any other value read by
    /// serde_json.
    fn arguments(&mut self) -> Option<Arguments> {
        self.eat(b'[')?;
        let mut arguments = Arguments::default();
        self.skip_whitespace();
        if self.eat(b']').is_some() {
            return Some(arguments);
        }
        loop {
            let start = self.at;
            let argument = match self.plain_string() {
                Some(_) => JsonText::checked(self.text.get(start..self.at)?),
                None => {
                    self.at = start;
                    self.value::<Box<RawValue>>()?.into()
                }
            };
            arguments.push(Payload::Json(argument));
            self.skip_whitespace();
            match self.next()? {
                b',' => self.skip_whitespace(),
                b']' => return Some(arguments),
                _ => return None,
            }
        }
    }

    /// A non-negative integer as JSON writes it (no sign, fraction, exponent or
    /// leading zero); what follows it is checked by the caller.
    fn integer(&mut self) -> Option<u64> {
        let digits = self.text.as_bytes()[self.at..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        let text = &self.text.as_bytes()[self.at..self.at + digits];
        if digits == 0 || (digits > 1 && text[0] == b'0') {
            return None;
        }
        let value = text.iter().try_fold(0_u64, |value, digit| {
            value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
        })?;
        self.at += digits;
        Some(value)
    }

    fn boolean(&mut self) -> Option<bool> {
        let rest = &self.text.as_bytes()[self.at..];
        let (value, length) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.at += length;
        Some(value)
    }

    /// One whole JSON value, read by serde_json from here on.
    fn value<T: Deserialize<'a>>(&mut self) -> Option<T> {
        let mut values =
            serde_json::Deserializer::from_str(self.text.get(self.at..)?).into_iter::<T>();
        let value = values.next()?.ok()?;
        self.at += values.byte_offset();
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::json::message;
    use crate::protocol::json::tests::xorshift;

    /// What both paths make of `text`: serde_json's verdict, and the quick read's
    /// when it reads the record at all, which must be the same.
    fn same(text: &str) -> bool {
        let Some(quick) = read(text) else {
            return false;
        };
        let quick = message(quick);
        let wire: WireMessage = serde_json::from_str(text)
            .unwrap_or_else(|error| panic!("read {text:?}, which serde_json refuses: {error}"));
        assert_eq!(
            format!("{quick:?}"),
            format!("{:?}", message(wire)),
            "{text}"
        );
        true
    }

    const RECORDS: &[&str] = &[
        r#"{"type":1,"invocationId":"0","target":"echo","arguments":["hello"]}"#,
        r#"{"arguments":[1,2],"invocationId":"0","streamIds":[],"target":"add","type":1}"#,
        r#"{"type":1,"target":"send","arguments":[{"a":[1,"x\"y",null]},true,-1.5e3,"é"],"headers":{"k":"v"}}"#,
        r#" { "type" : 4 , "invocationId" : "7" , "target" : "count" , "arguments" : [ 3 , 10 ] , "streamIds" : [ "1" , "2" ] } "#,
        r#"{"type":2,"invocationId":"1","item":{"k":[1.5,null]}}"#,
        r#"{"type":3,"invocationId":"1","result":42}"#,
        r#"{"type":3,"invocationId":"1","result":null}"#,
        r#"{"type":3,"invocationId":"1","error":"boom"}"#,
        r#"{"type":3,"invocationId":"1"}"#,
        r#"{"type":5,"invocationId":"1"}"#,
        r#"{"type":6}"#,
        r#"{"type":7,"error":"bye","allowReconnect":true}"#,
        r#"{"type":8,"sequenceId":18446744073709551615}"#,
        r#"{"type":9,"sequenceId":0}"#,
        r#"{"type":1,"target":"abcdefghijklmnopqrstuvwx","arguments":["abcdefghijklmnopqrstuvwxyz0123456789"]}"#,
    ];

    #[test]
    fn reads_what_clients_send_as_serde_json_does() {
        for &record in RECORDS {
            assert!(same(record), "not read quickly: {record}");
        }
        // Read quickly and refused the same way afterwards.
        for record in [
            "{}",
            r#"{"type":1,"arguments":[]}"#,
            r#"{"type":3,"invocationId":"1","result":1,"error":"x"}"#,
            r#"{"type":200}"#,
            r#"{"type":7,"allowReconnect":false}"#,
            // An escaped argument is serde_json's to read, the rest quickly.
            r#"{"type":1,"target":"t","arguments":["abcdefghijklmnopqrstuvwxyz\u0041","\n"]}"#,
        ] {
            assert!(same(record), "not read quickly: {record}");
        }
    }

    #[test]
    fn leaves_everything_else_to_serde_json() {
        for record in [
            r#"{"type":1,"target":"a\"b","arguments":[]}"#,
            r#"{"type":1,"target":null,"arguments":[]}"#,
            r#"{"type":1,"target":"t","arguments":null}"#,
            r#"{"type":1,"target":"t","arguments":5}"#,
            r#"{"type":1,"target":"t","arguments":[1,]}"#,
            r#"{"type":256}"#,
            r#"{"type":01}"#,
            r#"{"type":-1}"#,
            r#"{"type":1.0}"#,
            r#"{"type":1e0}"#,
            r#"{"type":"1"}"#,
            r#"{"type":8,"sequenceId":18446744073709551616}"#,
            r#"{"type":7,"allowReconnect":truex}"#,
            r#"{"type":7,"allowReconnect":null}"#,
            r#"{"type":6,"type":6}"#,
            r#"{"type":6,"extra":1}"#,
            r#"{"ty\u0070e":6}"#,
            r#"{"type":6}x"#,
            r#"{"type":6},"#,
            r#"{"type":6"#,
            r#"{"type":6,}"#,
            r#"{"type" 6}"#,
            r#"{"headers":null,"type":6}"#,
            r#"{"type":1,"target":"t","arguments":[],"streamIds":["1",2]}"#,
            "[1]",
            "",
            "{\"type\":1,\"target\":\"tab\there\",\"arguments\":[]}",
            "{\"type\":1,\"target\":\"abcdefghijklmnopqrstuvwxyz\t\",\"arguments\":[]}",
            r#"{"type":1,"target":"abcdefghijklmnopqrstuvwxyz\"","arguments":[]}"#,
            "{\"type\":1,\"target\":\"t\",\"arguments\":[\"abcdefghijklmnopqrstuvwxyz0123456789\t\"]}",
        ] {
            assert!(read(record).is_none(), "read quickly: {record}");
        }
    }

    #[test]
    fn agrees_with_serde_json_on_every_prefix_and_corruption() {
        // One- and two-byte corruptions, the same ones every run.
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        const BYTES: &[u8] = b"{}[]\":, \\0129.-enultrfasx";
        let mut read_quickly = 0;
        for &record in RECORDS {
            for end in 0..=record.len() {
                if let Some(prefix) = record.get(..end) {
                    read_quickly += usize::from(same(prefix));
                }
            }
            for _ in 0..2_000 {
                let mut input = record.as_bytes().to_vec();
                for _ in 0..1 + next() % 2 {
                    let at = (next() as usize) % input.len();
                    input[at] = BYTES[(next() as usize) % BYTES.len()];
                }
                if let Ok(text) = std::str::from_utf8(&input) {
                    read_quickly += usize::from(same(text));
                }
            }
        }
        // Corruptions that leave a valid message (a digit for a digit, say)
        // are read quickly too.
        assert!(read_quickly > 1_000, "{read_quickly}");
    }
}
