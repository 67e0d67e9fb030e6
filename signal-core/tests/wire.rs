//! The JSON hub protocol against fixed bytes: each message type read from a
//! record as ASP.NET Core's `HubProtocol.md` writes it (pretty, in its field
//! order) or as the official clients send it, and written to exactly the bytes
//! the other side expects. Round trips alone would pass with both halves wrong
//! the same way; these strings are the other side of the wire.

use bytes::Bytes;
use signal_core::handshake::HandshakeError;
use signal_core::message::Headers;
use signal_core::{
    Arguments, CancelInvocation, Close, Completion, HandshakeRequest, HandshakeResponse,
    HubMessage, HubProtocol, Invocation, JsonHubProtocol, Payload, RecordReader, StreamInvocation,
    StreamItem,
};

fn raw(json: &str) -> Payload {
    Payload::json(json).unwrap()
}

/// Reads one record (without its separator) with the JSON protocol.
fn parse(record: impl AsRef<[u8]>) -> Result<Option<HubMessage>, signal_core::ProtocolError> {
    JsonHubProtocol.parse(&Bytes::copy_from_slice(record.as_ref()))
}

/// Writes `message` as a JSON record.
fn to_record(message: &HubMessage) -> Vec<u8> {
    JsonHubProtocol.to_bytes(message).unwrap().to_vec()
}

fn arguments(json: &[&str]) -> Arguments {
    Arguments::new(json.iter().map(|j| raw(j)).collect())
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `message` reads from `spec` (a record without its separator), and writes to
/// exactly `written` (separator included), which reads back as `message`.
#[track_caller]
fn wire(spec: &str, message: HubMessage, written: &str) {
    assert_eq!(
        parse(spec).unwrap(),
        Some(message.clone()),
        "reading {spec}"
    );
    let record = String::from_utf8(to_record(&message)).unwrap();
    assert_eq!(record, written);
    let without_separator = written.strip_suffix('\u{1e}').expect("a whole record");
    assert_eq!(
        parse(without_separator).unwrap(),
        Some(message),
        "reading back {written}"
    );
}

/// The error text reading `record` fails with.
#[track_caller]
fn malformed(record: &str) -> String {
    parse(record).expect_err(record).to_string()
}

#[test]
fn invocation() {
    wire(
        r#"{
            "type": 1,
            "invocationId": "123",
            "target": "Send",
            "arguments": [
                42,
                "Test Message"
            ]
        }"#,
        HubMessage::Invocation(Invocation {
            invocation_id: Some("123".into()),
            ..Invocation::new("Send", arguments(&["42", "\"Test Message\""]))
        }),
        "{\"type\":1,\"invocationId\":\"123\",\"target\":\"Send\",\"arguments\":[42,\"Test Message\"]}\u{1e}",
    );
}

#[test]
fn invocation_without_id() {
    wire(
        r#"{
            "type": 1,
            "target": "Send",
            "arguments": [
                42,
                "Test Message"
            ]
        }"#,
        HubMessage::Invocation(Invocation::new(
            "Send",
            arguments(&["42", "\"Test Message\""]),
        )),
        "{\"type\":1,\"target\":\"Send\",\"arguments\":[42,\"Test Message\"]}\u{1e}",
    );
}

#[test]
fn invocation_with_stream_ids() {
    wire(
        r#"{
            "type": 1,
            "invocationId": "123",
            "target": "Send",
            "arguments": [
                42
            ],
            "streamIds": [
                "1"
            ]
        }"#,
        HubMessage::Invocation(Invocation {
            invocation_id: Some("123".into()),
            stream_ids: vec!["1".into()],
            ..Invocation::new("Send", arguments(&["42"]))
        }),
        "{\"type\":1,\"invocationId\":\"123\",\"target\":\"Send\",\"arguments\":[42],\"streamIds\":[\"1\"]}\u{1e}",
    );
}

#[test]
fn invocation_with_headers() {
    wire(
        r#"{
            "type": 1,
            "headers": {
                "Foo": "Bar"
            },
            "invocationId": "123",
            "target": "Send",
            "arguments": [
                42,
                "Test Message"
            ]
        }"#,
        HubMessage::Invocation(Invocation {
            invocation_id: Some("123".into()),
            headers: headers(&[("Foo", "Bar")]),
            ..Invocation::new("Send", arguments(&["42", "\"Test Message\""]))
        }),
        "{\"type\":1,\"headers\":{\"Foo\":\"Bar\"},\"invocationId\":\"123\",\"target\":\"Send\",\"arguments\":[42,\"Test Message\"]}\u{1e}",
    );
}

#[test]
fn invocation_as_the_javascript_client_sends_it() {
    // Keys in alphabetical order, and an empty `streamIds`.
    wire(
        r#"{"arguments":[1,{"a":[true,null]}],"invocationId":"0","streamIds":[],"target":"add","type":1}"#,
        HubMessage::Invocation(Invocation {
            invocation_id: Some("0".into()),
            ..Invocation::new("add", arguments(&["1", "{\"a\":[true,null]}"]))
        }),
        "{\"type\":1,\"invocationId\":\"0\",\"target\":\"add\",\"arguments\":[1,{\"a\":[true,null]}]}\u{1e}",
    );
}

#[test]
fn stream_item() {
    wire(
        r#"{
            "type": 2,
            "invocationId": "123",
            "item": 42
        }"#,
        HubMessage::StreamItem(StreamItem {
            invocation_id: "123".into(),
            item: raw("42"),
            headers: Headers::new(),
        }),
        "{\"type\":2,\"invocationId\":\"123\",\"item\":42}\u{1e}",
    );
    wire(
        r#"{"type":2,"headers":{"a":"b"},"invocationId":"123","item":{"x":"y"}}"#,
        HubMessage::StreamItem(StreamItem {
            invocation_id: "123".into(),
            item: raw("{\"x\":\"y\"}"),
            headers: headers(&[("a", "b")]),
        }),
        "{\"type\":2,\"headers\":{\"a\":\"b\"},\"invocationId\":\"123\",\"item\":{\"x\":\"y\"}}\u{1e}",
    );
}

#[test]
fn completion_with_a_result() {
    wire(
        r#"{
            "type": 3,
            "invocationId": "123",
            "result": 42
        }"#,
        HubMessage::Completion(Completion::result("123", raw("42"))),
        "{\"type\":3,\"invocationId\":\"123\",\"result\":42}\u{1e}",
    );
}

#[test]
fn completion_with_an_error() {
    wire(
        r#"{
            "type": 3,
            "invocationId": "123",
            "error": "It didn't work!"
        }"#,
        HubMessage::Completion(Completion::error("123", "It didn't work!")),
        "{\"type\":3,\"invocationId\":\"123\",\"error\":\"It didn't work!\"}\u{1e}",
    );
}

#[test]
fn completion_without_a_result() {
    wire(
        r#"{
            "type": 3,
            "invocationId": "123"
        }"#,
        HubMessage::Completion(Completion::void("123")),
        "{\"type\":3,\"invocationId\":\"123\"}\u{1e}",
    );
}

#[test]
fn a_null_result_is_written_as_null() {
    // A method that returned `None`: the caller reads `null`, not "no result".
    let record = to_record(&HubMessage::Completion(Completion::result(
        "1",
        raw("null"),
    )));
    assert_eq!(
        String::from_utf8(record).unwrap(),
        "{\"type\":3,\"invocationId\":\"1\",\"result\":null}\u{1e}"
    );
}

#[test]
fn stream_invocation() {
    wire(
        r#"{
            "type": 4,
            "invocationId": "123",
            "target": "Send",
            "arguments": [
                42,
                "Test Message"
            ]
        }"#,
        HubMessage::StreamInvocation(StreamInvocation {
            invocation_id: "123".into(),
            target: "Send".into(),
            arguments: arguments(&["42", "\"Test Message\""]),
            stream_ids: vec![],
            headers: Headers::new(),
        }),
        "{\"type\":4,\"invocationId\":\"123\",\"target\":\"Send\",\"arguments\":[42,\"Test Message\"]}\u{1e}",
    );
    wire(
        r#"{"type":4,"invocationId":"7","target":"Sum","arguments":[],"streamIds":["1","2"]}"#,
        HubMessage::StreamInvocation(StreamInvocation {
            invocation_id: "7".into(),
            target: "Sum".into(),
            arguments: Arguments::default(),
            stream_ids: vec!["1".into(), "2".into()],
            headers: Headers::new(),
        }),
        "{\"type\":4,\"invocationId\":\"7\",\"target\":\"Sum\",\"arguments\":[],\"streamIds\":[\"1\",\"2\"]}\u{1e}",
    );
}

#[test]
fn cancel_invocation() {
    wire(
        r#"{
            "type": 5,
            "invocationId": "123"
        }"#,
        HubMessage::CancelInvocation(CancelInvocation {
            invocation_id: "123".into(),
            headers: Headers::new(),
        }),
        "{\"type\":5,\"invocationId\":\"123\"}\u{1e}",
    );
}

#[test]
fn ping() {
    wire(
        r#"{
            "type": 6
        }"#,
        HubMessage::Ping,
        "{\"type\":6}\u{1e}",
    );
}

#[test]
fn close() {
    wire(
        r#"{
            "type": 7
        }"#,
        HubMessage::Close(Close::default()),
        "{\"type\":7}\u{1e}",
    );
    wire(
        r#"{
            "type": 7,
            "error": "Connection closed because of an error!"
        }"#,
        HubMessage::Close(Close {
            error: Some("Connection closed because of an error!".into()),
            allow_reconnect: false,
        }),
        "{\"type\":7,\"error\":\"Connection closed because of an error!\"}\u{1e}",
    );
    wire(
        r#"{
            "type": 7,
            "error": "Connection closed because of an error!",
            "allowReconnect": true
        }"#,
        HubMessage::Close(Close {
            error: Some("Connection closed because of an error!".into()),
            allow_reconnect: true,
        }),
        "{\"type\":7,\"error\":\"Connection closed because of an error!\",\"allowReconnect\":true}\u{1e}",
    );
    // What a server shutdown sends.
    wire(
        r#"{"type":7,"allowReconnect":true}"#,
        HubMessage::Close(Close {
            error: None,
            allow_reconnect: true,
        }),
        "{\"type\":7,\"allowReconnect\":true}\u{1e}",
    );
    // `false` is the default, and not written.
    wire(
        r#"{"type":7,"allowReconnect":false}"#,
        HubMessage::Close(Close::default()),
        "{\"type\":7}\u{1e}",
    );
}

#[test]
fn ack_and_sequence() {
    wire(
        r#"{
            "type": 8,
            "sequenceId": 1394
        }"#,
        HubMessage::Ack { sequence_id: 1394 },
        "{\"type\":8,\"sequenceId\":1394}\u{1e}",
    );
    wire(
        r#"{
            "type": 9,
            "sequenceId": 1394
        }"#,
        HubMessage::Sequence { sequence_id: 1394 },
        "{\"type\":9,\"sequenceId\":1394}\u{1e}",
    );
}

#[test]
fn handshake_request_and_response() {
    let request = HandshakeRequest::parse(br#"{"protocol":"json","version":1}"#).unwrap();
    assert_eq!(
        request,
        HandshakeRequest {
            protocol: "json".into(),
            version: 1,
        }
    );
    assert_eq!(
        String::from_utf8(request.to_record()).unwrap(),
        "{\"protocol\":\"json\",\"version\":1}\u{1e}"
    );
    // Pretty, and with a field a future client may add.
    assert_eq!(
        HandshakeRequest::parse(
            br#"{
                "protocol": "json",
                "version": 2,
                "extension": true
            }"#
        )
        .unwrap(),
        HandshakeRequest {
            protocol: "json".into(),
            version: 2,
        }
    );
    assert_eq!(
        String::from_utf8(HandshakeResponse::ok().to_record()).unwrap(),
        "{}\u{1e}"
    );
    assert_eq!(
        String::from_utf8(
            HandshakeResponse::error("The protocol 'messagepack' is not supported.").to_record()
        )
        .unwrap(),
        "{\"error\":\"The protocol 'messagepack' is not supported.\"}\u{1e}"
    );
}

#[test]
fn a_malformed_handshake_names_the_problem() {
    let error: HandshakeError = HandshakeRequest::parse(br#"{"protocol":"json"}"#).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the handshake request is malformed: missing field `version` at line 1 column 19; expected {\"protocol\":\"json\",\"version\":1}"
    );
    assert_eq!(
        HandshakeRequest::parse(b"{\"type\":1}")
            .unwrap_err()
            .to_string(),
        "the handshake request is malformed: missing field `protocol` at line 1 column 10; expected {\"protocol\":\"json\",\"version\":1}"
    );
}

#[test]
fn a_frame_of_records_reads_as_its_messages() {
    // The handshake and a first message in one WebSocket frame, as clients send them.
    let frame = b"{\"protocol\":\"json\",\"version\":1}\x1e{\"type\":1,\"invocationId\":\"0\",\"target\":\"echo\",\"arguments\":[\"hi\"]}\x1e{\"type\":6}\x1e";
    let records = RecordReader::new(32 * 1024).push(frame).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(
        HandshakeRequest::parse(&records[0]).unwrap(),
        HandshakeRequest {
            protocol: "json".into(),
            version: 1,
        }
    );
    assert_eq!(
        parse(&records[1]).unwrap(),
        Some(HubMessage::Invocation(Invocation {
            invocation_id: Some("0".into()),
            ..Invocation::new("echo", arguments(&["\"hi\""]))
        }))
    );
    assert_eq!(parse(&records[2]).unwrap(), Some(HubMessage::Ping));
}

#[test]
fn unknown_message_types_and_fields_are_ignored() {
    assert_eq!(parse(b"{\"type\":99}").unwrap(), None);
    assert_eq!(
        parse(b"{\"type\":10,\"invocationId\":\"1\",\"something\":[1]}").unwrap(),
        None
    );
    assert_eq!(
        parse(b"{\"type\":6,\"future\":{\"field\":1}}").unwrap(),
        Some(HubMessage::Ping)
    );
}

#[test]
fn malformed_messages_name_the_problem() {
    let cases = [
        (
            "{not json",
            "malformed message: key must be a string at line 1 column 2",
        ),
        // serde reads an array as the fields in order: the first is the type.
        (
            "[1,2]",
            "malformed message: invalid type: integer `2`, expected a string at line 1 column 4",
        ),
        (
            "{\"type\":\"1\"}",
            "malformed message: invalid type: string \"1\", expected u8 at line 1 column 11",
        ),
        (
            "{\"target\":\"x\",\"arguments\":[]}",
            "malformed message: missing required property 'type'",
        ),
        (
            "{\"type\":1,\"arguments\":[]}",
            "malformed message: missing required property 'target' for message type 1",
        ),
        (
            "{\"type\":1,\"target\":\"x\"}",
            "malformed message: missing required property 'arguments' for message type 1",
        ),
        (
            "{\"type\":1,\"target\":\"x\",\"arguments\":{}}",
            "malformed message: invalid type: map, expected a sequence at line 1 column 35",
        ),
        (
            "{\"type\":2,\"item\":1}",
            "malformed message: missing required property 'invocationId' for message type 2",
        ),
        (
            "{\"type\":3}",
            "malformed message: missing required property 'invocationId' for message type 3",
        ),
        (
            "{\"type\":3,\"invocationId\":\"1\",\"result\":1,\"error\":\"x\"}",
            "malformed message: the 'error' and 'result' properties of a completion are mutually exclusive",
        ),
        (
            "{\"type\":4,\"target\":\"x\",\"arguments\":[]}",
            "malformed message: missing required property 'invocationId' for message type 4",
        ),
        (
            "{\"type\":5}",
            "malformed message: missing required property 'invocationId' for message type 5",
        ),
        (
            "{\"type\":8}",
            "malformed message: missing required property 'sequenceId' for message type 8",
        ),
        (
            "{\"type\":9}",
            "malformed message: missing required property 'sequenceId' for message type 9",
        ),
    ];
    for (record, error) in cases {
        assert_eq!(malformed(record), error, "reading {record}");
    }
}
