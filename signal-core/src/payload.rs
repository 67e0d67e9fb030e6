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

/// How deep a MessagePack payload may nest when it is decoded: the same limit
/// serde_json applies to JSON, so that hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 128;

/// One value of a hub message: an argument, a result or a stream item.
#[derive(Clone)]
pub enum Payload {
    /// Raw JSON text, as it arrived in a JSON message (or was encoded eagerly).
    Json(Box<RawValue>),
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
    #[error("{0}")]
    MessagePackDecode(#[from] rmp_serde::decode::Error),
    /// A value could not be written as MessagePack.
    #[error("{0}")]
    MessagePackEncode(#[from] rmp_serde::encode::Error),
    /// Bytes given as a MessagePack payload are not exactly one MessagePack value.
    #[error("not a single MessagePack value: {0}")]
    NotOneValue(String),
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
        Ok(Payload::Json(serde_json::value::to_raw_value(value)?))
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
        Ok(Payload::Json(RawValue::from_string(text.into())?))
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
            Payload::Json(raw) => Ok(serde_json::from_str(raw.get())?),
            Payload::MessagePack(bytes) => Ok(read_messagepack(bytes)?),
            // An outgoing value read back (tests, in-process loops): through JSON
            // text, the representation every protocol shares.
            Payload::Value(value) => Ok(serde_json::from_slice(&serde_json::to_vec(&**value)?)?),
        }
    }

    /// The raw JSON text, for a JSON payload.
    pub fn as_json(&self) -> Option<&RawValue> {
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
        Payload::Json(raw)
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
