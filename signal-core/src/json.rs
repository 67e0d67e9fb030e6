//! The JSON hub protocol (`json`, version 1 and 2): one JSON object per record.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::message::{
    Arguments, CancelInvocation, Close, Completion, CompletionOutcome, Headers, HubMessage,
    Invocation, StreamInvocation, StreamItem,
};
use crate::record::RECORD_SEPARATOR;

/// A message could not be decoded. The connection that sent it is closed with this
/// text, so it names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON, or not an object of the expected shape.
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A field the message type requires is absent.
    #[error(
        "malformed message: missing required property '{property}' for message type {message_type}"
    )]
    MissingProperty {
        /// The numeric message type.
        message_type: u8,
        /// The absent property.
        property: &'static str,
    },
    /// A Completion carried both `result` and `error`.
    #[error(
        "malformed message: the 'error' and 'result' properties of a completion are mutually exclusive"
    )]
    ResultAndError,
    /// The record has no `type` field.
    #[error("malformed message: missing required property 'type'")]
    MissingType,
}

/// The JSON hub protocol: name `json`, versions 1 and 2, text transfer format.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonHubProtocol;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage {
    #[serde(rename = "type")]
    message_type: Option<u8>,
    invocation_id: Option<String>,
    target: Option<String>,
    arguments: Option<Vec<Box<RawValue>>>,
    stream_ids: Option<Vec<String>>,
    item: Option<Box<RawValue>>,
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

    /// The highest protocol version understood.
    pub const MAX_VERSION: u32 = 2;

    /// Decodes one record (without its separator). Returns `Ok(None)` for a message
    /// type this version does not know: the protocol says to ignore those.
    pub fn parse(&self, record: &[u8]) -> Result<Option<HubMessage>, ProtocolError> {
        let wire: WireMessage = serde_json::from_slice(record)?;
        let message_type = wire.message_type.ok_or(ProtocolError::MissingType)?;
        let missing = |property| ProtocolError::MissingProperty {
            message_type,
            property,
        };
        let message = match message_type {
            1 => HubMessage::Invocation(Invocation {
                invocation_id: wire.invocation_id,
                target: wire.target.ok_or_else(|| missing("target"))?,
                arguments: Arguments::new(wire.arguments.ok_or_else(|| missing("arguments"))?),
                stream_ids: wire.stream_ids.unwrap_or_default(),
                headers: wire.headers,
            }),
            2 => HubMessage::StreamItem(StreamItem {
                invocation_id: wire.invocation_id.ok_or_else(|| missing("invocationId"))?,
                item: wire.item.unwrap_or_else(null),
                headers: wire.headers,
            }),
            3 => {
                let outcome = match (wire.result, wire.error) {
                    (Some(_), Some(_)) => return Err(ProtocolError::ResultAndError),
                    (Some(result), None) => CompletionOutcome::Result(result),
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
                arguments: Arguments::new(wire.arguments.ok_or_else(|| missing("arguments"))?),
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

    /// Encodes `message` and its record separator, appending to `out`.
    pub fn write(&self, message: &HubMessage, out: &mut Vec<u8>) {
        let wire = match message {
            HubMessage::Invocation(m) => Out {
                message_type: 1,
                invocation_id: m.invocation_id.as_deref(),
                target: Some(&m.target),
                arguments: Some(&m.arguments),
                stream_ids: non_empty(&m.stream_ids),
                headers: non_empty_headers(&m.headers),
                ..Out::default()
            },
            HubMessage::StreamItem(m) => Out {
                message_type: 2,
                invocation_id: Some(&m.invocation_id),
                item: Some(&m.item),
                headers: non_empty_headers(&m.headers),
                ..Out::default()
            },
            HubMessage::Completion(m) => {
                let (result, error) = match &m.outcome {
                    CompletionOutcome::Void => (None, None),
                    CompletionOutcome::Result(r) => (Some(&**r), None),
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
                arguments: Some(&m.arguments),
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
        };
        // Writing JSON of owned, well-formed values into a Vec cannot fail.
        serde_json::to_writer(&mut *out, &wire).expect("hub messages always serialize");
        out.push(RECORD_SEPARATOR);
    }

    /// Encodes `message` as one record.
    pub fn to_record(&self, message: &HubMessage) -> Vec<u8> {
        let mut out = Vec::with_capacity(estimated_size(message));
        self.write(message, &mut out);
        out
    }
}

/// Room for the message's raw JSON payloads plus its fields, so that a large
/// result or argument is not copied through several reallocations.
fn estimated_size(message: &HubMessage) -> usize {
    let payload = match message {
        HubMessage::Invocation(m) => m.arguments.as_slice().iter().map(|a| a.get().len()).sum(),
        HubMessage::StreamInvocation(m) => {
            m.arguments.as_slice().iter().map(|a| a.get().len()).sum()
        }
        HubMessage::StreamItem(m) => m.item.get().len(),
        HubMessage::Completion(m) => match &m.outcome {
            CompletionOutcome::Result(r) => r.get().len(),
            CompletionOutcome::Error(e) => e.len(),
            CompletionOutcome::Void => 0,
        },
        _ => 0,
    };
    payload + 96
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is valid JSON")
}

fn non_empty(ids: &[String]) -> Option<&[String]> {
    (!ids.is_empty()).then_some(ids)
}

fn non_empty_headers(headers: &Headers) -> Option<&Headers> {
    (!headers.is_empty()).then_some(headers)
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
    arguments: Option<&'a Arguments>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_ids: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a RawValue>,
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
    use crate::record::RecordReader;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    fn round_trip(message: HubMessage) {
        let protocol = JsonHubProtocol;
        let record = protocol.to_record(&message);
        assert_eq!(*record.last().unwrap(), RECORD_SEPARATOR);
        let parsed = protocol
            .parse(&record[..record.len() - 1])
            .unwrap()
            .unwrap();
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
    fn writes_the_wire_shape() {
        let protocol = JsonHubProtocol;
        let record = protocol.to_record(&HubMessage::Completion(Completion::result(
            "1",
            raw("\"x\""),
        )));
        assert_eq!(
            record,
            b"{\"type\":3,\"invocationId\":\"1\",\"result\":\"x\"}\x1e"
        );
        assert_eq!(protocol.to_record(&HubMessage::Ping), b"{\"type\":6}\x1e");
        let invocation = HubMessage::Invocation(Invocation::new(
            "message",
            Arguments::from_values(["hello"]).unwrap(),
        ));
        assert_eq!(
            protocol.to_record(&invocation),
            b"{\"type\":1,\"target\":\"message\",\"arguments\":[\"hello\"]}\x1e"
        );
    }

    #[test]
    fn parses_what_the_js_client_sends() {
        let protocol = JsonHubProtocol;
        let input = b"{\"arguments\":[1,2],\"invocationId\":\"0\",\"streamIds\":[],\"target\":\"add\",\"type\":1}\x1e{\"type\":6}\x1e";
        let mut reader = RecordReader::new(32 * 1024);
        let records = reader.push(input).unwrap();
        let messages: Vec<_> = records
            .iter()
            .map(|r| protocol.parse(r).unwrap().unwrap())
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
        assert!(JsonHubProtocol.parse(b"{\"type\":99}").unwrap().is_none());
    }

    #[test]
    fn malformed_messages_name_the_problem() {
        let protocol = JsonHubProtocol;
        let err = protocol.parse(b"{not json").unwrap_err();
        assert!(err.to_string().starts_with("malformed message"), "{err}");
        let err = protocol.parse(b"{\"target\":\"x\"}").unwrap_err();
        assert!(matches!(err, ProtocolError::MissingType));
        let err = protocol
            .parse(b"{\"type\":1,\"arguments\":[]}")
            .unwrap_err();
        assert!(err.to_string().contains("'target'"), "{err}");
        let err = protocol
            .parse(b"{\"type\":3,\"invocationId\":\"1\",\"result\":1,\"error\":\"x\"}")
            .unwrap_err();
        assert!(matches!(err, ProtocolError::ResultAndError));
        assert!(protocol.parse(b"[1,2]").is_err());
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
}
