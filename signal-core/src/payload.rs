//! Protocol-neutral values: arguments, results and stream items.
//!
//! A value that arrived from a client stays in the encoding it came in ([`Payload::Json`]
//! or [`Payload::MessagePack`]) until the receiving method decodes it, straight into the
//! type it declares ([`Payload::decode`]). A value the server sends is kept as a
//! [`Payload::Value`] and encoded by whichever protocol writes it, so a broadcast to JSON
//! and MessagePack clients encodes it once per protocol and never converts between the
//! two.
//!
//! Both protocols give a type the same serde representation, the one serde_json gives
//! it: structs are maps with string keys (MessagePack maps, as ASP.NET Core's contractless
//! resolver and the JavaScript MessagePack client produce), enums are externally tagged
//! (`"Unit"`, `{"Newtype": value}`, `{"Struct": {…}}`) unless serde attributes say
//! otherwise, `Option` is the value or nil, sequences and tuples are arrays. Two
//! exceptions come from rmp-serde: a unit struct is an empty array in MessagePack (null
//! in JSON), and `i128`/`u128` are 16 bytes of binary. Bytes written with
//! `serialize_bytes` (`serde_bytes`) are MessagePack `bin`, and an array of numbers in
//! JSON.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

mod json_text;
mod raw_json;

pub use json_text::JsonText;

/// How deep a MessagePack payload may nest when it is decoded: the same limit
/// serde_json applies to JSON, so that hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 128;

/// One value of a hub message: an argument, a result or a stream item.
#[derive(Clone)]
pub enum Payload {
    /// Raw JSON text, as it arrived in a JSON message (or was encoded eagerly).
    Json(JsonText),
    /// Exactly one MessagePack value, as it arrived in a MessagePack message: a
    /// slice of the received frame, not a copy. Whoever builds one by hand must put
    /// exactly one whole value in it ([`Payload::messagepack`] checks that).
    MessagePack(Bytes),
    /// A value to send, encoded by whichever protocol writes the message, each
    /// protocol at most once per message.
    Value(Arc<dyn erased_serde::Serialize + Send + Sync>),
}

/// A payload could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// JSON text did not match the type, or a value could not be written as JSON.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// A MessagePack value did not match the type.
    #[error("{}", decode_message(.0))]
    MessagePackDecode(#[from] rmp_serde::decode::Error),
    /// A value could not be written as MessagePack.
    #[error("{0}")]
    MessagePackEncode(#[from] rmp_serde::encode::Error),
    /// Bytes given as a MessagePack payload are not exactly one MessagePack value.
    #[error("not a single MessagePack value: {0}")]
    NotOneValue(String),
}

/// rmp-serde's text, but where it names a marker (its fast path for numbers and
/// booleans) a sentence in serde's words.
fn decode_message(error: &rmp_serde::decode::Error) -> String {
    use rmp_serde::decode::Error;
    match error {
        Error::TypeMismatch(rmp::Marker::Reserved) => {
            "found the byte 0xc1, which MessagePack reserves and no value starts with".to_owned()
        }
        Error::TypeMismatch(marker) => format!(
            "invalid type: {}, expected a number or a boolean",
            crate::protocol::messagepack::describe(*marker)
        ),
        other => other.to_string(),
    }
}

impl Payload {
    /// A value to be encoded later by each protocol that writes it.
    pub fn value<T: Serialize + Send + Sync + 'static>(value: T) -> Payload {
        Payload::Value(Arc::new(value))
    }

    /// The payload `null` (MessagePack nil).
    pub fn null() -> Payload {
        Payload::Value(Arc::new(()))
    }

    /// Encodes `value` as JSON now.
    pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Payload, PayloadError> {
        Ok(Payload::Json(
            serde_json::value::to_raw_value(value)?.into(),
        ))
    }

    /// Encodes `value` as MessagePack now, with the representation described in the
    /// [module documentation](self).
    pub fn to_messagepack<T: Serialize + ?Sized>(value: &T) -> Result<Payload, PayloadError> {
        let mut out = Vec::new();
        write_messagepack(&mut out, value)?;
        Ok(Payload::MessagePack(Bytes::from(out)))
    }

    /// Raw JSON text, checked to be one JSON value.
    pub fn json(text: impl Into<String>) -> Result<Payload, PayloadError> {
        Ok(Payload::Json(JsonText::new(text)?))
    }

    /// MessagePack bytes, checked to hold exactly one value.
    pub fn messagepack(bytes: impl Into<Bytes>) -> Result<Payload, PayloadError> {
        let bytes = bytes.into();
        match crate::protocol::messagepack::value_length(&bytes) {
            Ok(length) if length == bytes.len() => Ok(Payload::MessagePack(bytes)),
            Ok(length) => Err(PayloadError::NotOneValue(format!(
                "{} byte(s) follow the value",
                bytes.len() - length
            ))),
            Err(error) => Err(PayloadError::NotOneValue(error.to_string())),
        }
    }

    /// Decodes the payload into `T`, straight from its encoding.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        match self {
            Payload::Json(raw) => Ok(T::deserialize(raw_json::RawJson(raw.get()))?),
            Payload::MessagePack(bytes) => Ok(read_messagepack(bytes)?),
            // An outgoing value read back (tests, in-process loops): through JSON
            // text, the representation every protocol shares.
            Payload::Value(value) => Ok(serde_json::from_slice(&serde_json::to_vec(&**value)?)?),
        }
    }

    /// The raw JSON text, for a JSON payload.
    pub fn as_json(&self) -> Option<&JsonText> {
        match self {
            Payload::Json(raw) => Some(raw),
            _ => None,
        }
    }

    /// The MessagePack bytes, for a MessagePack payload.
    pub fn as_messagepack(&self) -> Option<&Bytes> {
        match self {
            Payload::MessagePack(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// A rough size in bytes, for sizing output buffers.
    pub(crate) fn size_hint(&self) -> usize {
        match self {
            Payload::Json(raw) => raw.get().len(),
            Payload::MessagePack(bytes) => bytes.len(),
            Payload::Value(_) => 16,
        }
    }
}

impl From<Box<RawValue>> for Payload {
    fn from(raw: Box<RawValue>) -> Self {
        Payload::Json(raw.into())
    }
}

impl From<JsonText> for Payload {
    fn from(text: JsonText) -> Self {
        Payload::Json(text)
    }
}

/// Serializes the payload into any serde format. JSON and MessagePack payloads are
/// transcoded value by value; the hub protocols do not use this for their own
/// encoding (they copy a payload already in their encoding as it is).
impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Payload::Json(raw) => {
                let mut de = serde_json::Deserializer::from_str(raw.get());
                serde_transcode::transcode(&mut de, serializer)
            }
            Payload::MessagePack(bytes) => {
                let mut de = messagepack_deserializer(bytes);
                serde_transcode::transcode(&mut de, serializer)
            }
            Payload::Value(value) => value.serialize(serializer),
        }
    }
}

/// Payloads are equal when they have the same encoding and the same bytes; two
/// values compare by their JSON text. A JSON and a MessagePack payload are never
/// equal, even when they hold the same value.
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Payload::Json(a), Payload::Json(b)) => a.get() == b.get(),
            (Payload::MessagePack(a), Payload::MessagePack(b)) => a == b,
            (Payload::Value(a), Payload::Value(b)) => {
                Arc::ptr_eq(a, b)
                    || matches!(
                        (serde_json::to_string(&**a), serde_json::to_string(&**b)),
                        (Ok(a), Ok(b)) if a == b
                    )
            }
            _ => false,
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Json(raw) => f.debug_tuple("Json").field(&raw.get()).finish(),
            Payload::MessagePack(bytes) => f.debug_tuple("MessagePack").field(bytes).finish(),
            Payload::Value(value) => match serde_json::to_string(&**value) {
                Ok(json) => f.debug_tuple("Value").field(&json).finish(),
                Err(_) => f.write_str("Value(..)"),
            },
        }
    }
}

/// Writes `value` as one MessagePack value: structs as maps with string keys, the
/// human-readable representation (as serde_json, so that e.g. a UUID or an IP
/// address is a string in both protocols).
pub(crate) fn write_messagepack<W: Write, T: Serialize + ?Sized>(
    out: W,
    value: &T,
) -> Result<(), rmp_serde::encode::Error> {
    let mut serializer = rmp_serde::Serializer::new(out)
        .with_struct_map()
        .with_human_readable();
    value.serialize(&mut serializer)
}

/// The deserializer matching [`write_messagepack`].
pub(crate) fn messagepack_deserializer(
    bytes: &[u8],
) -> rmp_serde::Deserializer<
    rmp_serde::decode::ReadRefReader<'_, [u8]>,
    rmp_serde::config::HumanReadableConfig<rmp_serde::config::DefaultConfig>,
> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes).with_human_readable();
    de.set_max_depth(MAX_DEPTH);
    de
}

fn read_messagepack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    T::deserialize(&mut messagepack_deserializer(bytes))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::json;

    use super::*;

    /// Bytes written with `serialize_bytes`: MessagePack `bin`, JSON an array of numbers.
    #[derive(Debug, Clone, PartialEq)]
    struct Blob(Vec<u8>);

    impl Serialize for Blob {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Blob {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Blob;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                    Ok(Blob(v.to_vec()))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Blob, A::Error> {
                    let mut out = Vec::new();
                    while let Some(b) = seq.next_element()? {
                        out.push(b);
                    }
                    Ok(Blob(out))
                }
            }
            deserializer.deserialize_bytes(Visitor)
        }
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Inner {
        name: String,
        score: f64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Unit,
        Newtype(u32),
        Tuple(i8, i8),
        Struct { w: u16, h: u16 },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "kind", rename_all = "camelCase")]
    enum Tagged {
        Circle { radius: f64 },
        Empty,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "t", content = "c")]
    enum Adjacent {
        A(String),
        B { n: i64 },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Untagged {
        Number(i64),
        Text(String),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Meters(f64);

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Everything {
        user_id: u64,
        negative: i32,
        inner: Inner,
        maybe: Option<Inner>,
        nothing: Option<u8>,
        list: Vec<i64>,
        nested: Vec<Vec<Inner>>,
        map: HashMap<String, Inner>,
        ordered: BTreeMap<String, Option<bool>>,
        tuple: (u8, String, bool),
        shapes: Vec<Shape>,
        tagged: Vec<Tagged>,
        adjacent: Vec<Adjacent>,
        untagged: Vec<Untagged>,
        blob: Blob,
        meters: Meters,
        text: char,
        unit: (),
    }

    fn everything() -> Everything {
        let inner = |name: &str, score| Inner {
            name: name.into(),
            score,
        };
        Everything {
            user_id: u64::MAX,
            negative: -70_000,
            inner: inner("a", 1.5),
            maybe: Some(inner("b", -0.25)),
            nothing: None,
            list: vec![0, -1, 127, 128, 255, 256, 65_536, i64::MIN],
            nested: vec![vec![], vec![inner("c", 2.0)]],
            map: HashMap::from([
                ("k1".into(), inner("d", 0.0)),
                ("k2".into(), inner("e", 3.25)),
            ]),
            ordered: BTreeMap::from([("x".into(), Some(true)), ("y".into(), None)]),
            tuple: (7, "seven".into(), false),
            shapes: vec![
                Shape::Unit,
                Shape::Newtype(9),
                Shape::Tuple(-1, 1),
                Shape::Struct { w: 3, h: 4 },
            ],
            tagged: vec![Tagged::Circle { radius: 0.5 }, Tagged::Empty],
            adjacent: vec![Adjacent::A("x".into()), Adjacent::B { n: -2 }],
            untagged: vec![Untagged::Number(5), Untagged::Text("five".into())],
            blob: Blob(vec![0, 1, 254, 255]),
            meters: Meters(12.5),
            text: 'é',
            unit: (),
        }
    }

    /// A decoded MessagePack value as the JSON value of the same shape: maps must
    /// have string keys, `bin` becomes an array of numbers (as serde_json writes
    /// `serialize_bytes`).
    fn as_json(value: rmpv::Value) -> serde_json::Value {
        use rmpv::Value as V;
        match value {
            V::Nil => serde_json::Value::Null,
            V::Boolean(b) => b.into(),
            V::Integer(i) => match i.as_u64() {
                Some(u) => u.into(),
                None => i.as_i64().expect("an integer fits in i64 or u64").into(),
            },
            V::F32(f) => f64::from(f).into(),
            V::F64(f) => f.into(),
            V::String(s) => s.into_str().expect("UTF-8").into(),
            V::Binary(b) => b.into(),
            V::Array(items) => items.into_iter().map(as_json).collect(),
            V::Map(entries) => entries
                .into_iter()
                .map(|(k, v)| match k {
                    V::String(k) => (k.into_str().expect("UTF-8"), as_json(v)),
                    other => panic!("a map key is not a string: {other}"),
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
            V::Ext(..) => panic!("no extension types expected"),
        }
    }

    fn messagepack_as_json<T: Serialize>(value: &T) -> serde_json::Value {
        let Payload::MessagePack(bytes) = Payload::to_messagepack(value).unwrap() else {
            unreachable!()
        };
        let mut slice = &bytes[..];
        let decoded = rmpv::decode::read_value(&mut slice).unwrap();
        assert!(slice.is_empty(), "one value, nothing after it");
        as_json(decoded)
    }

    #[test]
    fn both_protocols_give_a_type_the_same_representation() {
        let value = everything();
        let json = serde_json::to_value(&value).unwrap();
        assert_eq!(messagepack_as_json(&value), json);
        // Spot checks of the shape itself.
        assert_eq!(json["userId"], json!(u64::MAX));
        assert_eq!(json["inner"], json!({"name": "a", "score": 1.5}));
        assert_eq!(json["nothing"], json!(null));
        assert_eq!(
            json["shapes"],
            json!(["Unit", {"Newtype": 9}, {"Tuple": [-1, 1]}, {"Struct": {"w": 3, "h": 4}}])
        );
        assert_eq!(
            json["tagged"],
            json!([{"kind": "circle", "radius": 0.5}, {"kind": "empty"}])
        );
        assert_eq!(
            json["adjacent"],
            json!([{"t": "A", "c": "x"}, {"t": "B", "c": {"n": -2}}])
        );
        assert_eq!(json["untagged"], json!([5, "five"]));
        assert_eq!(json["tuple"], json!([7, "seven", false]));
        assert_eq!(json["blob"], json!([0, 1, 254, 255]));
        assert_eq!(json["meters"], json!(12.5));
        // Each type on its own, at the top level too.
        assert_eq!(messagepack_as_json(&Shape::Unit), json!("Unit"));
        assert_eq!(messagepack_as_json(&Some(3)), json!(3));
        assert_eq!(messagepack_as_json(&None::<u8>), json!(null));
        assert_eq!(messagepack_as_json(&(1, "a")), json!([1, "a"]));
        assert_eq!(
            messagepack_as_json(&Tagged::Empty),
            serde_json::to_value(Tagged::Empty).unwrap()
        );
    }

    #[test]
    fn each_encoding_decodes_straight_into_the_type() {
        let value = everything();
        let msgpack = Payload::to_messagepack(&value).unwrap();
        assert_eq!(msgpack.decode::<Everything>().unwrap(), value);
        let json = Payload::to_json(&value).unwrap();
        assert_eq!(json.decode::<Everything>().unwrap(), value);
        let deferred = Payload::value(value.clone());
        assert_eq!(deferred.decode::<Everything>().unwrap(), value);
        // What the JavaScript client sends for a struct: a map, keys in any order.
        let from_js = Payload::messagepack(
            &b"\x82\xa5score\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\xa4name\xa1z"[..],
        )
        .unwrap();
        assert_eq!(
            from_js.decode::<Inner>().unwrap(),
            Inner {
                name: "z".into(),
                score: 1.5
            }
        );
    }

    #[test]
    fn decoding_errors_read_alike_in_both_encodings() {
        let json = Payload::json("\"x\"").unwrap().decode::<i64>().unwrap_err();
        let msgpack = Payload::to_messagepack("x")
            .unwrap()
            .decode::<i64>()
            .unwrap_err();
        assert_eq!(
            json.to_string(),
            "invalid type: string \"x\", expected i64 at line 1 column 3"
        );
        // rmp-serde reads numbers without serde's visitor: its own words.
        assert_eq!(
            msgpack.to_string(),
            "invalid type: a string, expected a number or a boolean"
        );
        let msgpack = Payload::to_messagepack(&300)
            .unwrap()
            .decode::<u8>()
            .unwrap_err();
        assert_eq!(
            msgpack.to_string(),
            "invalid value: integer `300`, expected u8"
        );
        let err = Payload::to_messagepack(&json!({"name": "a"}))
            .unwrap()
            .decode::<Inner>()
            .unwrap_err();
        assert_eq!(err.to_string(), "missing field `score`");
    }

    #[test]
    fn messagepack_bytes_must_hold_one_value() {
        assert!(Payload::messagepack(&b"\x2a"[..]).is_ok());
        assert_eq!(
            Payload::messagepack(&b"\x2a\x2a"[..])
                .unwrap_err()
                .to_string(),
            "not a single MessagePack value: 1 byte(s) follow the value"
        );
        assert!(
            Payload::messagepack(&b"\x92\x01"[..])
                .unwrap_err()
                .to_string()
                .starts_with("not a single MessagePack value: the message ends")
        );
        assert!(Payload::messagepack(Bytes::new()).is_err());
        assert!(Payload::json("{").is_err());
    }

    #[test]
    fn payloads_serialize_into_any_format() {
        let msgpack = Payload::to_messagepack(&everything()).unwrap();
        let json = Payload::to_json(&everything()).unwrap();
        let deferred = Payload::value(everything());
        let expected = serde_json::to_value(everything()).unwrap();
        for payload in [&msgpack, &json, &deferred] {
            assert_eq!(serde_json::to_value(payload).unwrap(), expected);
        }
        assert_eq!(serde_json::to_string(&Payload::null()).unwrap(), "null");
        assert_eq!(
            Payload::to_messagepack(&Payload::json("[1,{\"a\":null}]").unwrap()).unwrap(),
            Payload::MessagePack(Bytes::from_static(b"\x92\x01\x81\xa1a\xc0"))
        );
    }

    #[test]
    fn equality_and_debug() {
        assert_eq!(Payload::value(1), Payload::value(1));
        assert_ne!(Payload::value(1), Payload::value(2));
        assert_eq!(Payload::json("1").unwrap(), Payload::json("1").unwrap());
        assert_ne!(Payload::json("1").unwrap(), Payload::value(1));
        assert_eq!(format!("{:?}", Payload::value([1, 2])), "Value(\"[1,2]\")");
        assert_eq!(
            format!("{:?}", Payload::json("[1]").unwrap()),
            "Json(\"[1]\")"
        );
        assert_eq!(
            format!("{:?}", Payload::messagepack(&b"\x01"[..]).unwrap()),
            "MessagePack(b\"\\x01\")"
        );
    }
}
