//! The JSON hub protocol (`json`, versions 1 and 2): one JSON object per record, each
//! record ended by `0x1E`.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::framing::{Framing, RECORD_SEPARATOR};
use super::{HubProtocol, ProtocolError, WriteError};
use crate::message::{
    Arguments, CancelInvocation, Close, Completion, CompletionOutcome, Headers, HubMessage,
    Invocation, StreamInvocation, StreamItem,
};
use crate::negotiate::TransferFormat;
use crate::payload::{JsonText, Payload, PayloadError};

mod reader;
mod writer;

/// The JSON hub protocol: name `json`, versions up to 2, text transfer format.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonHubProtocol;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireMessage {
    #[serde(rename = "type")]
    message_type: Option<u8>,
    invocation_id: Option<String>,
    target: Option<String>,
    #[serde(default, deserialize_with = "payloads")]
    arguments: Option<Arguments>,
    stream_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    item: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    result: Option<Box<RawValue>>,
    error: Option<String>,
    allow_reconnect: Option<bool>,
    sequence_id: Option<u64>,
    #[serde(default)]
    headers: Headers,
}

impl JsonHubProtocol {
    /// The protocol name sent in the handshake.
    pub const NAME: &'static str = "json";

    /// The highest protocol version understood (2 adds stateful reconnect's Ack and
    /// Sequence).
    pub const MAX_VERSION: u32 = 2;
}

/// A property that is present, `null` included: `"result": null` is a result (a
/// method that returned null), not a void completion, as in ASP.NET Core.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

/// The arguments, each kept as its raw JSON text, read straight into the
/// message's list (not into a list of raw values first); `null` is no arguments,
/// as it was for `Option<Vec<_>>`.
fn payloads<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Arguments>, D::Error> {
    Ok(Option::<Payloads>::deserialize(deserializer)?.map(|payloads| payloads.0))
}

/// A JSON array of arguments, each kept as its raw text.
struct Payloads(Arguments);

impl<'de> Deserialize<'de> for Payloads {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(Payloads(Arguments::default()))
    }
}

impl<'de> serde::de::Visitor<'de> for Payloads {
    type Value = Payloads;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<Payloads, A::Error> {
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            self.0.push(Payload::Json(raw.into()));
        }
        Ok(self)
    }
}

/// The message a record's properties make, or why they make none.
fn message(wire: WireMessage) -> Result<Option<HubMessage>, ProtocolError> {
    let message_type = wire.message_type.ok_or(ProtocolError::MissingType)?;
    let missing = |property| ProtocolError::MissingProperty {
        message_type,
        property,
    };
    let message = match message_type {
        1 => HubMessage::Invocation(Invocation {
            invocation_id: wire.invocation_id,
            target: wire.target.ok_or_else(|| missing("target"))?,
            arguments: wire.arguments.ok_or_else(|| missing("arguments"))?,
            stream_ids: wire.stream_ids.unwrap_or_default(),
            headers: wire.headers,
        }),
        2 => HubMessage::StreamItem(StreamItem {
            invocation_id: wire.invocation_id.ok_or_else(|| missing("invocationId"))?,
            item: Payload::Json(
                wire.item
                    .map_or_else(|| JsonText::checked("null"), JsonText::from),
            ),
            headers: wire.headers,
        }),
        3 => {
            let outcome = match (wire.result, wire.error) {
                (Some(_), Some(_)) => return Err(ProtocolError::ResultAndError),
                (Some(result), None) => CompletionOutcome::Result(Payload::Json(result.into())),
                (None, Some(error)) => CompletionOutcome::Error(error),
                (None, None) => CompletionOutcome::Void,
            };
            HubMessage::Completion(Completion {
                invocation_id: wire.invocation_id.ok_or_else(|| missing("invocationId"))?,
                outcome,
                headers: wire.headers,
            })
        }
        4 => HubMessage::StreamInvocation(StreamInvocation {
            invocation_id: wire.invocation_id.ok_or_else(|| missing("invocationId"))?,
            target: wire.target.ok_or_else(|| missing("target"))?,
            arguments: wire.arguments.ok_or_else(|| missing("arguments"))?,
            stream_ids: wire.stream_ids.unwrap_or_default(),
            headers: wire.headers,
        }),
        5 => HubMessage::CancelInvocation(CancelInvocation {
            invocation_id: wire.invocation_id.ok_or_else(|| missing("invocationId"))?,
            headers: wire.headers,
        }),
        6 => HubMessage::Ping,
        7 => HubMessage::Close(Close {
            error: wire.error,
            allow_reconnect: wire.allow_reconnect.unwrap_or(false),
        }),
        8 => HubMessage::Ack {
            sequence_id: wire.sequence_id.ok_or_else(|| missing("sequenceId"))?,
        },
        9 => HubMessage::Sequence {
            sequence_id: wire.sequence_id.ok_or_else(|| missing("sequenceId"))?,
        },
        _ => return Ok(None),
    };
    Ok(Some(message))
}

impl HubProtocol for JsonHubProtocol {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn max_version(&self) -> u32 {
        Self::MAX_VERSION
    }

    fn transfer_format(&self) -> TransferFormat {
        TransferFormat::Text
    }

    fn framing(&self) -> Framing {
        Framing::Records
    }

    fn parse(&self, record: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
        // One UTF-8 check of the whole record: parsing bytes checks each
        // string and raw argument on its own, which cost more than the message's
        // parse of its structure for a small call. Bytes that are not UTF-8 are
        // parsed as bytes, so that serde_json's error says where.
        match std::str::from_utf8(record) {
            Ok(text) => self.parse_text(text),
            Err(_) => message(serde_json::from_slice(record)?),
        }
    }

    fn parse_text(&self, record: &str) -> Result<Option<HubMessage>, ProtocolError> {
        let wire = match reader::read(record) {
            Some(wire) => wire,
            None => serde_json::from_str(record)?,
        };
        message(wire)
    }

    fn write(&self, message: &HubMessage, out: &mut BytesMut) -> Result<(), WriteError> {
        let start = out.len();
        out.reserve(estimated_size(message));
        let written = match envelope(message) {
            Some(envelope) => envelope.write(out),
            None => writer::write(out, &wire(message)),
        };
        // Writing into a BytesMut cannot fail; a value's Serialize impl can.
        if let Err(error) = written {
            out.truncate(start);
            return Err(WriteError::Payload {
                protocol: Self::NAME,
                source: PayloadError::Json(error),
            });
        }
        out.put_u8(RECORD_SEPARATOR);
        Ok(())
    }
}

/// The messages a server sends most (a call's completion, a stream's item, an
/// invocation of a client method), written without the derive's machinery: the
/// same bytes as [`Out`], in its property order, for a message without headers.
enum Envelope<'a> {
    Completion(&'a Completion),
    StreamItem(&'a StreamItem),
    Invocation(&'a Invocation),
}

fn envelope(message: &HubMessage) -> Option<Envelope<'_>> {
    match message {
        HubMessage::Completion(m) if m.headers.is_empty() => Some(Envelope::Completion(m)),
        HubMessage::StreamItem(m) if m.headers.is_empty() => Some(Envelope::StreamItem(m)),
        HubMessage::Invocation(m) if m.headers.is_empty() && m.stream_ids.is_empty() => {
            Some(Envelope::Invocation(m))
        }
        _ => None,
    }
}

impl Envelope<'_> {
    fn write(&self, out: &mut BytesMut) -> Result<(), serde_json::Error> {
        match self {
            Envelope::Completion(m) => {
                out.put_slice(b"{\"type\":3,\"invocationId\":");
                writer::write_str(out, &m.invocation_id);
                match &m.outcome {
                    CompletionOutcome::Void => {}
                    CompletionOutcome::Result(result) => {
                        out.put_slice(b",\"result\":");
                        write_payload(out, result)?;
                    }
                    CompletionOutcome::Error(error) => {
                        out.put_slice(b",\"error\":");
                        writer::write_str(out, error);
                    }
                }
            }
            Envelope::StreamItem(m) => {
                out.put_slice(b"{\"type\":2,\"invocationId\":");
                writer::write_str(out, &m.invocation_id);
                out.put_slice(b",\"item\":");
                write_payload(out, &m.item)?;
            }
            Envelope::Invocation(m) => {
                out.put_slice(b"{\"type\":1,");
                if let Some(invocation_id) = &m.invocation_id {
                    out.put_slice(b"\"invocationId\":");
                    writer::write_str(out, invocation_id);
                    out.put_u8(b',');
                }
                out.put_slice(b"\"target\":");
                writer::write_str(out, &m.target);
                out.put_slice(b",\"arguments\":[");
                for (index, argument) in m.arguments.iter().enumerate() {
                    if index > 0 {
                        out.put_u8(b',');
                    }
                    write_payload(out, argument)?;
                }
                out.put_u8(b']');
            }
        }
        out.put_u8(b'}');
        Ok(())
    }
}

/// A payload in the envelope: JSON text as it is, anything else by the writer.
fn write_payload(out: &mut BytesMut, payload: &Payload) -> Result<(), serde_json::Error> {
    match payload {
        Payload::Json(text) => {
            out.put_slice(text.get().as_bytes());
            Ok(())
        }
        other => writer::write(out, &JsonPayload(other)),
    }
}

/// A message as the derive writes it.
fn wire(message: &HubMessage) -> Out<'_> {
    match message {
        HubMessage::Invocation(m) => Out {
            message_type: 1,
            invocation_id: m.invocation_id.as_deref(),
            target: Some(&m.target),
            arguments: Some(JsonArguments(&m.arguments)),
            stream_ids: non_empty(&m.stream_ids),
            headers: non_empty_headers(&m.headers),
            ..Out::default()
        },
        HubMessage::StreamItem(m) => Out {
            message_type: 2,
            invocation_id: Some(&m.invocation_id),
            item: Some(JsonPayload(&m.item)),
            headers: non_empty_headers(&m.headers),
            ..Out::default()
        },
        HubMessage::Completion(m) => {
            let (result, error) = match &m.outcome {
                CompletionOutcome::Void => (None, None),
                CompletionOutcome::Result(r) => (Some(JsonPayload(r)), None),
                CompletionOutcome::Error(e) => (None, Some(e.as_str())),
            };
            Out {
                message_type: 3,
                invocation_id: Some(&m.invocation_id),
                result,
                error,
                headers: non_empty_headers(&m.headers),
                ..Out::default()
            }
        }
        HubMessage::StreamInvocation(m) => Out {
            message_type: 4,
            invocation_id: Some(&m.invocation_id),
            target: Some(&m.target),
            arguments: Some(JsonArguments(&m.arguments)),
            stream_ids: non_empty(&m.stream_ids),
            headers: non_empty_headers(&m.headers),
            ..Out::default()
        },
        HubMessage::CancelInvocation(m) => Out {
            message_type: 5,
            invocation_id: Some(&m.invocation_id),
            headers: non_empty_headers(&m.headers),
            ..Out::default()
        },
        HubMessage::Ping => Out {
            message_type: 6,
            ..Out::default()
        },
        HubMessage::Close(m) => Out {
            message_type: 7,
            error: m.error.as_deref(),
            allow_reconnect: m.allow_reconnect.then_some(true),
            ..Out::default()
        },
        HubMessage::Ack { sequence_id } => Out {
            message_type: 8,
            sequence_id: Some(*sequence_id),
            ..Out::default()
        },
        HubMessage::Sequence { sequence_id } => Out {
            message_type: 9,
            sequence_id: Some(*sequence_id),
            ..Out::default()
        },
    }
}

/// Room for the message's payloads plus its fields, so that a large result or
/// argument is not copied through several reallocations.
fn estimated_size(message: &HubMessage) -> usize {
    let payload = match message {
        HubMessage::Invocation(m) => m.arguments.iter().map(Payload::size_hint).sum(),
        HubMessage::StreamInvocation(m) => m.arguments.iter().map(Payload::size_hint).sum(),
        HubMessage::StreamItem(m) => m.item.size_hint(),
        HubMessage::Completion(m) => match &m.outcome {
            CompletionOutcome::Result(r) => r.size_hint(),
            CompletionOutcome::Error(e) => e.len(),
            CompletionOutcome::Void => 0,
        },
        _ => 0,
    };
    payload + 96
}

fn non_empty(ids: &[String]) -> Option<&[String]> {
    (!ids.is_empty()).then_some(ids)
}

fn non_empty_headers(headers: &Headers) -> Option<&Headers> {
    (!headers.is_empty()).then_some(headers)
}

/// A payload as JSON: raw JSON copied as it is, a value serialized as serde_json would,
/// MessagePack transcoded. The server avoids the transcoding by sending values
/// ([`Payload::Value`]), which each protocol encodes itself.
struct JsonPayload<'a>(&'a Payload);

impl Serialize for JsonPayload<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            // serde_json's serializer writes a RawValue verbatim. Made again here
            // (and checked again) only for the rare messages the derive writes:
            // the envelope writes JSON text as it is.
            Payload::Json(text) => text.to_raw_value().serialize(serializer),
            other => other.serialize(serializer),
        }
    }
}

struct JsonArguments<'a>(&'a Arguments);

impl Serialize for JsonArguments<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(JsonPayload))
    }
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Out<'a> {
    #[serde(rename = "type")]
    message_type: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<&'a Headers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invocation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<JsonArguments<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_ids: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<JsonPayload<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<JsonPayload<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_reconnect: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_id: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::framing::RecordReader;

    /// A fixed pseudo-random sequence (xorshift) for corrupting records.
    pub(super) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    fn raw(s: &str) -> Payload {
        Payload::json(s).unwrap()
    }

    fn to_record(message: &HubMessage) -> Vec<u8> {
        JsonHubProtocol.to_bytes(message).unwrap().to_vec()
    }

    fn parse(record: &[u8]) -> Result<Option<HubMessage>, ProtocolError> {
        JsonHubProtocol.parse(&Bytes::copy_from_slice(record))
    }

    fn round_trip(message: HubMessage) {
        let record = to_record(&message);
        assert_eq!(*record.last().unwrap(), RECORD_SEPARATOR);
        let parsed = parse(&record[..record.len() - 1]).unwrap().unwrap();
        assert_eq!(parsed, message);
    }

    #[test]
    fn every_message_type_round_trips() {
        let mut headers = Headers::new();
        headers.insert("k".into(), "v".into());
        round_trip(HubMessage::Invocation(Invocation {
            invocation_id: Some("1".into()),
            target: "echo".into(),
            arguments: Arguments::new(vec![raw("\"hi\""), raw("{\"a\":[1,2]}")]),
            stream_ids: vec!["s1".into()],
            headers: headers.clone(),
        }));
        round_trip(HubMessage::Invocation(Invocation::new(
            "fire",
            Arguments::default(),
        )));
        round_trip(HubMessage::StreamItem(StreamItem {
            invocation_id: "2".into(),
            item: raw("42"),
            headers: Headers::new(),
        }));
        round_trip(HubMessage::Completion(Completion::void("3")));
        round_trip(HubMessage::Completion(Completion::result("3", raw("[1]"))));
        round_trip(HubMessage::Completion(Completion::error("3", "boom")));
        round_trip(HubMessage::Completion(Completion::result("3", raw("null"))));
        round_trip(HubMessage::StreamInvocation(StreamInvocation {
            invocation_id: "4".into(),
            target: "counter".into(),
            arguments: Arguments::new(vec![raw("3"), raw("10")]),
            stream_ids: vec![],
            headers: Headers::new(),
        }));
        round_trip(HubMessage::CancelInvocation(CancelInvocation {
            invocation_id: "4".into(),
            headers: Headers::new(),
        }));
        round_trip(HubMessage::Ping);
        round_trip(HubMessage::Close(Close::default()));
        round_trip(HubMessage::Close(Close {
            error: Some("bye".into()),
            allow_reconnect: true,
        }));
        round_trip(HubMessage::Ack { sequence_id: 7 });
        round_trip(HubMessage::Sequence { sequence_id: 8 });
    }

    #[test]
    fn the_quick_envelope_writes_what_the_derive_writes() {
        let payloads = || {
            [
                raw("{\"a\":[1,\"x\\\"y\",null]}"),
                raw("null"),
                Payload::value("tab\there \"quoted\" é"),
                Payload::value(serde_json::json!({"k": [1.5, true]})),
                Payload::messagepack(&b"\x92\x01\xa1x"[..]).unwrap(),
            ]
        };
        let mut messages = vec![
            HubMessage::Completion(Completion::void("1")),
            HubMessage::Completion(Completion::error("id \"2\"", "it \\ failed\n")),
            HubMessage::Invocation(Invocation::new("none", Arguments::default())),
        ];
        for payload in payloads() {
            messages.push(HubMessage::Completion(Completion::result("3", payload)));
        }
        for payload in payloads() {
            messages.push(HubMessage::StreamItem(StreamItem::new("4\u{1}", payload)));
        }
        messages.push(HubMessage::Invocation(Invocation::new(
            "send",
            Arguments::new(payloads().to_vec()),
        )));
        messages.push(HubMessage::Invocation(Invocation {
            invocation_id: Some("5".into()),
            ..Invocation::new("ask", Arguments::new(payloads().to_vec()))
        }));
        for message in &messages {
            let mut quick = BytesMut::new();
            envelope(message)
                .expect("a message the envelope writes")
                .write(&mut quick)
                .unwrap();
            let mut derived = BytesMut::new();
            writer::write(&mut derived, &wire(message)).unwrap();
            assert_eq!(quick, derived);
        }
        // Headers and stream ids go through the derive.
        let mut headers = Headers::new();
        headers.insert("k".into(), "v".into());
        let with_headers = HubMessage::Completion(Completion {
            headers,
            ..Completion::void("1")
        });
        assert!(envelope(&with_headers).is_none());
        let with_streams = HubMessage::Invocation(Invocation {
            stream_ids: vec!["1".into()],
            ..Invocation::new("upload", Arguments::default())
        });
        assert!(envelope(&with_streams).is_none());
    }

    #[test]
    fn writes_the_wire_shape() {
        let record = to_record(&HubMessage::Completion(Completion::result(
            "1",
            raw("\"x\""),
        )));
        assert_eq!(
            record,
            b"{\"type\":3,\"invocationId\":\"1\",\"result\":\"x\"}\x1e"
        );
        assert_eq!(to_record(&HubMessage::Ping), b"{\"type\":6}\x1e");
        let invocation = HubMessage::Invocation(Invocation::new(
            "message",
            Arguments::from_values(["hello"]),
        ));
        assert_eq!(
            to_record(&invocation),
            b"{\"type\":1,\"target\":\"message\",\"arguments\":[\"hello\"]}\x1e"
        );
    }

    #[test]
    fn parses_what_the_js_client_sends() {
        let input = b"{\"arguments\":[1,2],\"invocationId\":\"0\",\"streamIds\":[],\"target\":\"add\",\"type\":1}\x1e{\"type\":6}\x1e";
        let mut reader = RecordReader::new(32 * 1024);
        let records = reader.push(input).unwrap();
        let messages: Vec<_> = records
            .iter()
            .map(|r| JsonHubProtocol.parse(r).unwrap().unwrap())
            .collect();
        match &messages[0] {
            HubMessage::Invocation(inv) => {
                assert_eq!(inv.target, "add");
                assert_eq!(inv.invocation_id.as_deref(), Some("0"));
                assert_eq!(inv.arguments.get::<i64>(1, "b").unwrap(), 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(messages[1], HubMessage::Ping);
    }

    #[test]
    fn unknown_message_types_are_ignored() {
        assert!(parse(b"{\"type\":99}").unwrap().is_none());
    }

    #[test]
    fn malformed_messages_name_the_problem() {
        let err = parse(b"{not json").unwrap_err();
        assert!(err.to_string().starts_with("malformed message"), "{err}");
        let err = parse(b"{\"target\":\"x\"}").unwrap_err();
        assert!(matches!(err, ProtocolError::MissingType));
        let err = parse(b"{\"type\":1,\"arguments\":[]}").unwrap_err();
        assert!(err.to_string().contains("'target'"), "{err}");
        // `arguments: null` is a missing property; not an array, serde's text.
        let err = parse(b"{\"type\":1,\"target\":\"t\",\"arguments\":null}").unwrap_err();
        assert!(err.to_string().contains("'arguments'"), "{err}");
        let err = parse(b"{\"type\":1,\"target\":\"t\",\"arguments\":5}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed message: invalid type: integer `5`, expected a sequence at line 1 column 36"
        );
        let err =
            parse(b"{\"type\":3,\"invocationId\":\"1\",\"result\":1,\"error\":\"x\"}").unwrap_err();
        assert!(matches!(err, ProtocolError::ResultAndError));
        let err = parse(b"{\"type\":3,\"invocationId\":\"1\",\"result\":null,\"error\":\"x\"}")
            .unwrap_err();
        assert!(matches!(err, ProtocolError::ResultAndError));
        assert!(parse(b"[1,2]").is_err());
    }

    #[test]
    fn argument_errors_name_the_parameter() {
        let args = Arguments::new(vec![raw("\"x\"")]);
        let err = args.get::<i64>(0, "a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Error binding argument 'a' (position 0): invalid type: string \"x\", expected i64."
        );
        assert_eq!(
            args.expect_len(2).unwrap_err().to_string(),
            "Invocation provides 1 argument(s) but target expects 2."
        );
    }

    #[test]
    fn payloads_of_any_encoding_are_written_as_json() {
        let item = |payload| to_record(&HubMessage::StreamItem(StreamItem::new("1", payload)));
        let expected = b"{\"type\":2,\"invocationId\":\"1\",\"item\":{\"a\":[1,true,null]}}\x1e";
        assert_eq!(item(raw("{\"a\":[1,true,null]}")), expected);
        assert_eq!(
            item(Payload::value(serde_json::json!({"a": [1, true, null]}))),
            expected
        );
        // MessagePack from a client (a client result passed on, say), transcoded.
        assert_eq!(
            item(Payload::messagepack(&b"\x81\xa1a\x93\x01\xc3\xc0"[..]).unwrap()),
            expected
        );
    }

    #[test]
    fn a_value_that_cannot_be_json_is_an_error_and_writes_nothing() {
        let mut map = std::collections::HashMap::new();
        map.insert((1, 2), "tuple keys are not JSON");
        let message = HubMessage::Completion(Completion::result("7", Payload::value(map)));
        let mut out = BytesMut::from(&b"before"[..]);
        let err = JsonHubProtocol.write(&message, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a value could not be serialized for the 'json' protocol: key must be a string"
        );
        assert_eq!(&out[..], b"before");
        // The same value is fine in MessagePack, whose map keys may be anything.
        assert!(
            crate::protocol::MessagePackHubProtocol
                .to_bytes(&message)
                .is_ok()
        );
    }

    #[test]
    fn no_prefix_or_corruption_of_valid_records_panics() {
        let records: [&[u8]; 5] = [
            b"{\"type\":1,\"invocationId\":\"1\",\"target\":\"a\",\"arguments\":[1,\"x\",{\"b\":[]}],\"streamIds\":[\"2\"]}",
            b"{\"type\":2,\"invocationId\":\"1\",\"item\":[1.5,null]}",
            b"{\"type\":3,\"invocationId\":\"1\",\"result\":{\"k\":\"v\"},\"headers\":{\"a\":\"b\"}}",
            b"{\"type\":7,\"error\":\"x\",\"allowReconnect\":true}",
            b"{\"type\":8,\"sequenceId\":12}",
        ];
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        for record in records {
            for end in 0..=record.len() {
                let _ = parse(&record[..end]);
            }
            for _ in 0..1_000 {
                let mut input = record.to_vec();
                let at = (next() as usize) % input.len();
                input[at] = next() as u8;
                if let Ok(Some(message)) = parse(&input) {
                    let _ = JsonHubProtocol.to_bytes(&message);
                    let _ = crate::protocol::MessagePackHubProtocol.to_bytes(&message);
                }
            }
        }
    }
}
