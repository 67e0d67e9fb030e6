//! The MessagePack hub protocol (`messagepack`, versions 1 and 2, binary).
//!
//! Each message is a VarInt length prefix ([`framing`](super::framing)) and one
//! MessagePack array whose first element is the message type:
//!
//! | type | layout |
//! |---|---|
//! | Invocation | `[1, headers, invocationId \| nil, target, [arguments], [streamIds]]` |
//! | StreamItem | `[2, headers, invocationId, item]` |
//! | Completion | `[3, headers, invocationId, 1, error]`, `[3, headers, invocationId, 2]` (void), `[3, headers, invocationId, 3, result]` |
//! | StreamInvocation | `[4, headers, invocationId, target, [arguments], [streamIds]]` |
//! | CancelInvocation | `[5, headers, invocationId]` |
//! | Ping | `[6]`, always the two bytes `0x91 0x06` |
//! | Close | `[7, error \| nil, allowReconnect]` |
//! | Ack | `[8, sequenceId]` |
//! | Sequence | `[9, sequenceId]` |
//!
//! Headers are a map of strings to strings. As ASP.NET Core, the writer always writes
//! the six elements of an (stream) invocation, with an empty array when there are no
//! stream ids, and the three elements of a Close; the reader also accepts the
//! five-element invocation the JavaScript client sends when there are no stream ids,
//! the two-element Close of older peers, and elements past the ones it knows (later
//! versions may append some).
//!
//! Arguments, stream items and results are not decoded here: each is sliced from the
//! received frame as one [`Payload::MessagePack`] value, and decoded once, straight
//! into the type the receiving method declares.

use std::io::Write;

use bytes::buf::Writer;
use bytes::{BufMut, Bytes, BytesMut};
use rmp::Marker;

use super::framing::{Framing, MAX_LENGTH_PREFIX, MAX_PREFIXED_LENGTH, finish_length_prefixed};
use super::{HubProtocol, ProtocolError, WriteError};
use crate::message::{
    Arguments, CancelInvocation, Close, Completion, CompletionOutcome, Headers, HubMessage,
    Invocation, StreamInvocation, StreamItem,
};
use crate::negotiate::TransferFormat;
use crate::payload::{Payload, PayloadError, write_messagepack};

/// The MessagePack hub protocol: name `messagepack`, versions up to 2, binary transfer
/// format.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePackHubProtocol;

impl MessagePackHubProtocol {
    /// The protocol name sent in the handshake.
    pub const NAME: &'static str = "messagepack";

    /// The highest protocol version understood (2 adds stateful reconnect's Ack and
    /// Sequence).
    pub const MAX_VERSION: u32 = 2;
}

/// The framed Ping: length 2, then `[6]`.
const PING: [u8; 3] = [0x02, 0x91, 0x06];

const ERROR_RESULT: u8 = 1;
const VOID_RESULT: u8 = 2;
const NON_VOID_RESULT: u8 = 3;

/// What is wrong with a MessagePack message. Offsets count bytes from the start of
/// the message, after its length prefix.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MessagePackError {
    /// A length prefix of 0: there is no array.
    #[error("the message is empty; expected an array starting with the message type")]
    Empty,
    /// The array has no element, so no message type.
    #[error("the message is an empty array; its first element must be the message type")]
    EmptyArray,
    /// An element has the wrong MessagePack type.
    #[error("expected {expected} for '{field}' at byte {offset}, found {found}")]
    UnexpectedType {
        /// The element being read.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        found: &'static str,
        /// Where it starts.
        offset: usize,
    },
    /// The message ends before an element does.
    #[error("the message ends after {length} bytes, in the middle of '{field}'")]
    Truncated {
        /// The element being read.
        field: &'static str,
        /// The message's length.
        length: usize,
    },
    /// The array is too short for its message type.
    #[error("{message} message has at least {expected} elements, this one has {actual}")]
    TooFewElements {
        /// The message type, with its article ("an Invocation").
        message: &'static str,
        /// The fewest elements it has.
        expected: u32,
        /// The elements of this one.
        actual: u32,
    },
    /// A string is not UTF-8.
    #[error("'{field}' at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// The element being read.
        field: &'static str,
        /// Where it starts.
        offset: usize,
    },
    /// A string that identifies something is empty.
    #[error("'{field}' must not be empty")]
    EmptyString {
        /// The element being read.
        field: &'static str,
    },
    /// An integer is out of the range of its element.
    #[error("'{field}' is {value}, outside {range}")]
    OutOfRange {
        /// The element being read.
        field: &'static str,
        /// Its value.
        value: i128,
        /// The range it must be in.
        range: &'static str,
    },
    /// A Completion's result kind is none of 1, 2, 3.
    #[error("invalid completion result kind {0}; expected 1 (error), 2 (void) or 3 (result)")]
    ResultKind(i128),
}

type Result<T, E = MessagePackError> = std::result::Result<T, E>;

impl HubProtocol for MessagePackHubProtocol {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn max_version(&self) -> u32 {
        Self::MAX_VERSION
    }

    fn transfer_format(&self) -> TransferFormat {
        TransferFormat::Binary
    }

    fn framing(&self) -> Framing {
        Framing::LengthPrefixed
    }

    fn parse(&self, message: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
        Ok(parse(message)?)
    }

    fn write(&self, message: &HubMessage, out: &mut BytesMut) -> Result<(), WriteError> {
        if let HubMessage::Ping = message {
            out.put_slice(&PING);
            return Ok(());
        }
        let start = out.len();
        out.reserve(MAX_LENGTH_PREFIX + estimated_size(message));
        out.put_bytes(0, MAX_LENGTH_PREFIX);
        if let Err(error) = write_body(message, &mut (&mut *out).writer()) {
            out.truncate(start);
            return Err(error);
        }
        let length = out.len() - start - MAX_LENGTH_PREFIX;
        if length as u64 > MAX_PREFIXED_LENGTH {
            out.truncate(start);
            return Err(WriteError::TooLarge { length });
        }
        finish_length_prefixed(out, start);
        Ok(())
    }
}

fn parse(frame: &Bytes) -> Result<Option<HubMessage>> {
    if frame.is_empty() {
        return Err(MessagePackError::Empty);
    }
    let mut r = Reader::new(frame);
    let count = r.array_len("message")?;
    if count == 0 {
        return Err(MessagePackError::EmptyArray);
    }
    let message_type = r.integer("messageType")?;
    let (message, fewest) = match message_type {
        1 => ("an Invocation", 5),
        2 => ("a StreamItem", 4),
        3 => ("a Completion", 4),
        4 => ("a StreamInvocation", 5),
        5 => ("a CancelInvocation", 3),
        6 => ("a Ping", 1),
        7 => ("a Close", 2),
        8 => ("an Ack", 2),
        9 => ("a Sequence", 2),
        // Future protocol versions may add message types: old peers ignore them.
        _ => return Ok(None),
    };
    let too_few = |expected| MessagePackError::TooFewElements {
        message,
        expected,
        actual: count,
    };
    if count < fewest {
        return Err(too_few(fewest));
    }
    let message = match message_type {
        1 => {
            let headers = r.headers()?;
            // An empty id, as a nil one, means no Completion is expected.
            let invocation_id = r.string_or_nil("invocationId")?.filter(|id| !id.is_empty());
            HubMessage::Invocation(Invocation {
                invocation_id,
                target: r.non_empty_string("target")?,
                arguments: r.arguments(frame)?,
                stream_ids: if count > 5 {
                    r.stream_ids()?
                } else {
                    Vec::new()
                },
                headers,
            })
        }
        2 => HubMessage::StreamItem(StreamItem {
            headers: r.headers()?,
            invocation_id: r.non_empty_string("invocationId")?,
            item: r.payload(frame, "item")?,
        }),
        3 => {
            let headers = r.headers()?;
            let invocation_id = r.non_empty_string("invocationId")?;
            let kind = r.integer("resultKind")?;
            let outcome = match u8::try_from(kind) {
                Ok(VOID_RESULT) => CompletionOutcome::Void,
                Ok(ERROR_RESULT) if count < 5 => {
                    return Err(MessagePackError::TooFewElements {
                        message: "a Completion with an error",
                        expected: 5,
                        actual: count,
                    });
                }
                Ok(NON_VOID_RESULT) if count < 5 => {
                    return Err(MessagePackError::TooFewElements {
                        message: "a Completion with a result",
                        expected: 5,
                        actual: count,
                    });
                }
                Ok(ERROR_RESULT) => CompletionOutcome::Error(r.string("error")?),
                Ok(NON_VOID_RESULT) => CompletionOutcome::Result(r.payload(frame, "result")?),
                _ => return Err(MessagePackError::ResultKind(kind)),
            };
            HubMessage::Completion(Completion {
                invocation_id,
                outcome,
                headers,
            })
        }
        4 => {
            let headers = r.headers()?;
            HubMessage::StreamInvocation(StreamInvocation {
                invocation_id: r.non_empty_string("invocationId")?,
                target: r.non_empty_string("target")?,
                arguments: r.arguments(frame)?,
                stream_ids: if count > 5 {
                    r.stream_ids()?
                } else {
                    Vec::new()
                },
                headers,
            })
        }
        5 => HubMessage::CancelInvocation(CancelInvocation {
            headers: r.headers()?,
            invocation_id: r.non_empty_string("invocationId")?,
        }),
        6 => HubMessage::Ping,
        7 => HubMessage::Close(Close {
            error: r.string_or_nil("error")?,
            allow_reconnect: count > 2 && r.boolean("allowReconnect")?,
        }),
        8 => HubMessage::Ack {
            sequence_id: r.sequence_id()?,
        },
        _ => HubMessage::Sequence {
            sequence_id: r.sequence_id()?,
        },
    };
    Ok(Some(message))
}

/// The length of the one MessagePack value at the start of `bytes`.
pub(crate) fn value_length(bytes: &[u8]) -> Result<usize> {
    let mut r = Reader::new(bytes);
    r.skip_value("value")?;
    Ok(r.pos)
}

/// Reads the elements of one message, never past its end and without recursion.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn truncated(&self, field: &'static str) -> MessagePackError {
        MessagePackError::Truncated {
            field,
            length: self.buf.len(),
        }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(self.truncated(field));
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    /// A big-endian unsigned integer of `n` bytes (1, 2, 4 or 8).
    fn uint(&mut self, n: usize, field: &'static str) -> Result<u64> {
        Ok(self
            .take(n, field)?
            .iter()
            .fold(0, |value, &byte| (value << 8) | u64::from(byte)))
    }

    /// A length of `n` bytes, for a string, binary, array or map.
    fn len(&mut self, n: usize, field: &'static str) -> Result<usize> {
        // At most 4 bytes: fits in usize on the platforms Rust supports with std.
        Ok(self.uint(n, field)? as usize)
    }

    fn marker(&mut self, field: &'static str) -> Result<(Marker, usize)> {
        let offset = self.pos;
        let byte = *self.buf.get(offset).ok_or_else(|| self.truncated(field))?;
        self.pos += 1;
        Ok((Marker::from_u8(byte), offset))
    }

    fn array_len(&mut self, field: &'static str) -> Result<u32> {
        let (marker, offset) = self.marker(field)?;
        match marker {
            Marker::FixArray(n) => Ok(u32::from(n)),
            Marker::Array16 => Ok(self.uint(2, field)? as u32),
            Marker::Array32 => Ok(self.uint(4, field)? as u32),
            other => Err(unexpected(field, "an array", other, offset)),
        }
    }

    /// A map's length; nil reads as an empty map.
    fn map_len(&mut self, field: &'static str) -> Result<u32> {
        let (marker, offset) = self.marker(field)?;
        match marker {
            Marker::FixMap(n) => Ok(u32::from(n)),
            Marker::Map16 => Ok(self.uint(2, field)? as u32),
            Marker::Map32 => Ok(self.uint(4, field)? as u32),
            Marker::Null => Ok(0),
            other => Err(unexpected(field, "a map", other, offset)),
        }
    }

    fn string_or_nil(&mut self, field: &'static str) -> Result<Option<String>> {
        let (marker, offset) = self.marker(field)?;
        let len = match marker {
            Marker::Null => return Ok(None),
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => self.len(1, field)?,
            Marker::Str16 => self.len(2, field)?,
            Marker::Str32 => self.len(4, field)?,
            other => return Err(unexpected(field, "a string", other, offset)),
        };
        let bytes = self.take(len, field)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some(text.to_owned())),
            Err(_) => Err(MessagePackError::InvalidUtf8 { field, offset }),
        }
    }

    fn string(&mut self, field: &'static str) -> Result<String> {
        let offset = self.pos;
        self.string_or_nil(field)?
            .ok_or(MessagePackError::UnexpectedType {
                field,
                expected: "a string",
                found: "nil",
                offset,
            })
    }

    fn non_empty_string(&mut self, field: &'static str) -> Result<String> {
        let text = self.string(field)?;
        if text.is_empty() {
            return Err(MessagePackError::EmptyString { field });
        }
        Ok(text)
    }

    fn integer(&mut self, field: &'static str) -> Result<i128> {
        let (marker, offset) = self.marker(field)?;
        let value = match marker {
            Marker::FixPos(n) => i128::from(n),
            Marker::FixNeg(n) => i128::from(n),
            Marker::U8 => i128::from(self.uint(1, field)?),
            Marker::U16 => i128::from(self.uint(2, field)?),
            Marker::U32 => i128::from(self.uint(4, field)?),
            Marker::U64 => i128::from(self.uint(8, field)?),
            Marker::I8 => i128::from(self.uint(1, field)? as u8 as i8),
            Marker::I16 => i128::from(self.uint(2, field)? as u16 as i16),
            Marker::I32 => i128::from(self.uint(4, field)? as u32 as i32),
            Marker::I64 => i128::from(self.uint(8, field)? as i64),
            other => return Err(unexpected(field, "an integer", other, offset)),
        };
        Ok(value)
    }

    fn boolean(&mut self, field: &'static str) -> Result<bool> {
        match self.marker(field)? {
            (Marker::True, _) => Ok(true),
            (Marker::False, _) => Ok(false),
            (other, offset) => Err(unexpected(field, "a boolean", other, offset)),
        }
    }

    fn sequence_id(&mut self) -> Result<u64> {
        let value = self.integer("sequenceId")?;
        u64::try_from(value).map_err(|_| MessagePackError::OutOfRange {
            field: "sequenceId",
            value,
            range: "0 to 2^64 - 1",
        })
    }

    fn headers(&mut self) -> Result<Headers> {
        let count = self.map_len("headers")?;
        let mut headers = Headers::new();
        for _ in 0..count {
            let key = self.string("headers")?;
            let value = self.string("headers")?;
            headers.insert(key, value);
        }
        Ok(headers)
    }

    /// The stream ids; nil reads as none.
    fn stream_ids(&mut self) -> Result<Vec<String>> {
        if self.buf.get(self.pos) == Some(&Marker::Null.to_u8()) {
            self.pos += 1;
            return Ok(Vec::new());
        }
        let count = self.array_len("streamIds")?;
        self.ensure_room(count, "streamIds")?;
        (0..count)
            .map(|_| self.non_empty_string("streamIds"))
            .collect()
    }

    fn arguments(&mut self, frame: &Bytes) -> Result<Arguments> {
        let count = self.array_len("arguments")?;
        self.ensure_room(count, "arguments")?;
        (0..count)
            .map(|_| self.payload(frame, "arguments"))
            .collect()
    }

    /// Fails at once when `count` elements, at least a byte each, cannot fit in
    /// what is left (rather than allocating room for them).
    fn ensure_room(&self, count: u32, field: &'static str) -> Result<()> {
        if count as usize > self.buf.len() - self.pos {
            return Err(self.truncated(field));
        }
        Ok(())
    }

    /// One value, sliced from `frame` (the buffer this reader reads).
    fn payload(&mut self, frame: &Bytes, field: &'static str) -> Result<Payload> {
        let start = self.pos;
        self.skip_value(field)?;
        Ok(Payload::MessagePack(frame.slice(start..self.pos)))
    }

    /// Steps over one value, nested arrays and maps included, counting the values
    /// still to read instead of recursing: any depth is safe.
    fn skip_value(&mut self, field: &'static str) -> Result<()> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let (marker, offset) = self.marker(field)?;
            let skip = match marker {
                Marker::FixPos(_)
                | Marker::FixNeg(_)
                | Marker::Null
                | Marker::True
                | Marker::False => 0,
                Marker::U8 | Marker::I8 => 1,
                Marker::U16 | Marker::I16 => 2,
                Marker::U32 | Marker::I32 | Marker::F32 => 4,
                Marker::U64 | Marker::I64 | Marker::F64 => 8,
                Marker::FixStr(n) => usize::from(n),
                Marker::Str8 | Marker::Bin8 => self.len(1, field)?,
                Marker::Str16 | Marker::Bin16 => self.len(2, field)?,
                Marker::Str32 | Marker::Bin32 => self.len(4, field)?,
                // An extension: its type byte, then its data.
                Marker::FixExt1 => 2,
                Marker::FixExt2 => 3,
                Marker::FixExt4 => 5,
                Marker::FixExt8 => 9,
                Marker::FixExt16 => 17,
                Marker::Ext8 => 1 + self.len(1, field)?,
                Marker::Ext16 => 1 + self.len(2, field)?,
                Marker::Ext32 => 1 + self.len(4, field)?,
                Marker::FixArray(n) => {
                    pending += u64::from(n);
                    0
                }
                Marker::Array16 => {
                    pending += self.uint(2, field)?;
                    0
                }
                Marker::Array32 => {
                    pending += self.uint(4, field)?;
                    0
                }
                Marker::FixMap(n) => {
                    pending += 2 * u64::from(n);
                    0
                }
                Marker::Map16 => {
                    pending += 2 * self.uint(2, field)?;
                    0
                }
                Marker::Map32 => {
                    pending += 2 * self.uint(4, field)?;
                    0
                }
                Marker::Reserved => {
                    return Err(unexpected(field, "a MessagePack value", marker, offset));
                }
            };
            self.take(skip, field)?;
            // Every value takes at least a byte.
            if pending > (self.buf.len() - self.pos) as u64 {
                return Err(self.truncated(field));
            }
        }
        Ok(())
    }
}

fn unexpected(
    field: &'static str,
    expected: &'static str,
    marker: Marker,
    offset: usize,
) -> MessagePackError {
    MessagePackError::UnexpectedType {
        field,
        expected,
        found: describe(marker),
        offset,
    }
}

pub(crate) fn describe(marker: Marker) -> &'static str {
    match marker {
        Marker::FixPos(_)
        | Marker::FixNeg(_)
        | Marker::U8
        | Marker::U16
        | Marker::U32
        | Marker::U64
        | Marker::I8
        | Marker::I16
        | Marker::I32
        | Marker::I64 => "an integer",
        Marker::Null => "nil",
        Marker::True | Marker::False => "a boolean",
        Marker::F32 | Marker::F64 => "a float",
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => "a string",
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => "binary data",
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => "an array",
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => "a map",
        Marker::FixExt1
        | Marker::FixExt2
        | Marker::FixExt4
        | Marker::FixExt8
        | Marker::FixExt16
        | Marker::Ext8
        | Marker::Ext16
        | Marker::Ext32 => "an extension value",
        Marker::Reserved => "the reserved byte 0xc1",
    }
}

type Out<'a> = Writer<&'a mut BytesMut>;

/// Writing into a `BytesMut` cannot fail; the error type of the writer says it can.
fn write_failed(error: impl std::fmt::Display) -> WriteError {
    WriteError::Payload {
        protocol: MessagePackHubProtocol::NAME,
        source: PayloadError::MessagePackEncode(rmp_serde::encode::Error::Syntax(
            error.to_string(),
        )),
    }
}

fn write_body(message: &HubMessage, w: &mut Out<'_>) -> Result<(), WriteError> {
    match message {
        HubMessage::Invocation(m) => {
            put_array_len(w, 6)?;
            put_uint(w, 1)?;
            put_headers(w, &m.headers)?;
            // As ASP.NET Core: no id and an empty one are both nil.
            match m.invocation_id.as_deref() {
                Some(id) if !id.is_empty() => put_str(w, id)?,
                _ => rmp::encode::write_nil(w).map_err(write_failed)?,
            }
            put_str(w, &m.target)?;
            put_arguments(w, &m.arguments)?;
            put_stream_ids(w, &m.stream_ids)
        }
        HubMessage::StreamItem(m) => {
            put_array_len(w, 4)?;
            put_uint(w, 2)?;
            put_headers(w, &m.headers)?;
            put_str(w, &m.invocation_id)?;
            put_payload(w, &m.item)
        }
        HubMessage::Completion(m) => {
            let kind = match m.outcome {
                CompletionOutcome::Error(_) => ERROR_RESULT,
                CompletionOutcome::Void => VOID_RESULT,
                CompletionOutcome::Result(_) => NON_VOID_RESULT,
            };
            put_array_len(w, if kind == VOID_RESULT { 4 } else { 5 })?;
            put_uint(w, 3)?;
            put_headers(w, &m.headers)?;
            put_str(w, &m.invocation_id)?;
            put_uint(w, u64::from(kind))?;
            match &m.outcome {
                CompletionOutcome::Error(error) => put_str(w, error),
                CompletionOutcome::Result(result) => put_payload(w, result),
                CompletionOutcome::Void => Ok(()),
            }
        }
        HubMessage::StreamInvocation(m) => {
            put_array_len(w, 6)?;
            put_uint(w, 4)?;
            put_headers(w, &m.headers)?;
            put_str(w, &m.invocation_id)?;
            put_str(w, &m.target)?;
            put_arguments(w, &m.arguments)?;
            put_stream_ids(w, &m.stream_ids)
        }
        HubMessage::CancelInvocation(m) => {
            put_array_len(w, 3)?;
            put_uint(w, 5)?;
            put_headers(w, &m.headers)?;
            put_str(w, &m.invocation_id)
        }
        HubMessage::Ping => {
            put_array_len(w, 1)?;
            put_uint(w, 6)
        }
        HubMessage::Close(m) => {
            put_array_len(w, 3)?;
            put_uint(w, 7)?;
            // As ASP.NET Core: no error and an empty one are both nil.
            match m.error.as_deref() {
                Some(error) if !error.is_empty() => put_str(w, error)?,
                _ => rmp::encode::write_nil(w).map_err(write_failed)?,
            }
            rmp::encode::write_bool(w, m.allow_reconnect).map_err(write_failed)
        }
        HubMessage::Ack { sequence_id } => {
            put_array_len(w, 2)?;
            put_uint(w, 8)?;
            put_uint(w, *sequence_id)
        }
        HubMessage::Sequence { sequence_id } => {
            put_array_len(w, 2)?;
            put_uint(w, 9)?;
            put_uint(w, *sequence_id)
        }
    }
}

fn length(n: usize) -> Result<u32, WriteError> {
    u32::try_from(n).map_err(|_| WriteError::TooLarge { length: n })
}

fn put_array_len(w: &mut Out<'_>, n: usize) -> Result<(), WriteError> {
    rmp::encode::write_array_len(w, length(n)?).map_err(write_failed)?;
    Ok(())
}

fn put_uint(w: &mut Out<'_>, value: u64) -> Result<(), WriteError> {
    rmp::encode::write_uint(w, value).map_err(write_failed)?;
    Ok(())
}

fn put_str(w: &mut Out<'_>, text: &str) -> Result<(), WriteError> {
    length(text.len())?;
    rmp::encode::write_str(w, text).map_err(write_failed)
}

fn put_headers(w: &mut Out<'_>, headers: &Headers) -> Result<(), WriteError> {
    rmp::encode::write_map_len(w, length(headers.len())?).map_err(write_failed)?;
    for (key, value) in headers {
        put_str(w, key)?;
        put_str(w, value)?;
    }
    Ok(())
}

fn put_stream_ids(w: &mut Out<'_>, ids: &[String]) -> Result<(), WriteError> {
    put_array_len(w, ids.len())?;
    ids.iter().try_for_each(|id| put_str(w, id))
}

fn put_arguments(w: &mut Out<'_>, arguments: &Arguments) -> Result<(), WriteError> {
    put_array_len(w, arguments.len())?;
    arguments.iter().try_for_each(|a| put_payload(w, a))
}

/// A payload as MessagePack: MessagePack bytes copied as they are, a value
/// serialized by rmp-serde (structs as maps), JSON transcoded value by value. The
/// server avoids the transcoding by sending values ([`Payload::Value`]), which each
/// protocol encodes itself.
fn put_payload(w: &mut Out<'_>, payload: &Payload) -> Result<(), WriteError> {
    let failed = |source: rmp_serde::encode::Error| WriteError::Payload {
        protocol: MessagePackHubProtocol::NAME,
        source: PayloadError::MessagePackEncode(source),
    };
    match payload {
        Payload::MessagePack(bytes) => w.write_all(bytes).map_err(write_failed),
        // A value serializes itself; JSON text is transcoded (`Payload`'s
        // `Serialize`).
        Payload::Value(_) | Payload::Json(_) => write_messagepack(&mut *w, payload).map_err(failed),
    }
}

/// Room for the message's payloads plus its fields.
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
    payload + 48
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::framing::{RecordError, write_length_prefixed};

    /// The protocol's bytes for a message body: its VarInt length, then the body.
    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_length_prefixed(&mut out, body);
        out.to_vec()
    }

    fn parse(body: &[u8]) -> Result<Option<HubMessage>, ProtocolError> {
        MessagePackHubProtocol.parse(&Bytes::copy_from_slice(body))
    }

    fn write(message: &HubMessage) -> Vec<u8> {
        MessagePackHubProtocol.to_bytes(message).unwrap().to_vec()
    }

    fn error(body: &[u8]) -> MessagePackError {
        match parse(body) {
            Err(ProtocolError::MessagePack(error)) => error,
            other => panic!("expected a MessagePack error for {body:x?}, got {other:?}"),
        }
    }

    /// One MessagePack value, as a payload.
    fn mp(bytes: &'static [u8]) -> Payload {
        Payload::MessagePack(Bytes::from_static(bytes))
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Parsing `body` gives `message`, and writing `message` gives exactly `body`,
    /// framed.
    fn both_ways(body: &[u8], message: HubMessage) {
        assert_eq!(
            parse(body).unwrap(),
            Some(message.clone()),
            "parsing {body:x?}"
        );
        assert_eq!(write(&message), framed(body), "writing {message:?}");
    }

    fn invocation(id: Option<&str>, arguments: Vec<Payload>, stream_ids: &[&str]) -> Invocation {
        Invocation {
            invocation_id: id.map(str::to_owned),
            target: "method".into(),
            arguments: Arguments::new(arguments),
            stream_ids: stream_ids.iter().map(|s| (*s).to_owned()).collect(),
            headers: Headers::new(),
        }
    }

    // The byte examples of HubProtocol.md, "MessagePack (MsgPack) encoding".

    #[test]
    fn invocation_example() {
        both_ways(
            b"\x96\x01\x80\xa3xyz\xa6method\x91\x2a\x90",
            HubMessage::Invocation(invocation(Some("xyz"), vec![mp(b"\x2a")], &[])),
        );
    }

    #[test]
    fn non_blocking_invocation() {
        both_ways(
            b"\x96\x01\x80\xc0\xa6method\x91\x2a\x90",
            HubMessage::Invocation(invocation(None, vec![mp(b"\x2a")], &[])),
        );
        // An empty id means the same, as in ASP.NET Core, both ways.
        let mut empty = invocation(None, vec![mp(b"\x2a")], &[]);
        empty.invocation_id = Some(String::new());
        assert_eq!(
            write(&HubMessage::Invocation(empty)),
            framed(b"\x96\x01\x80\xc0\xa6method\x91\x2a\x90")
        );
        assert_eq!(
            parse(b"\x96\x01\x80\xa0\xa6method\x91\x2a\x90").unwrap(),
            Some(HubMessage::Invocation(invocation(
                None,
                vec![mp(b"\x2a")],
                &[]
            )))
        );
    }

    #[test]
    fn invocation_with_headers() {
        let mut message = invocation(Some("xyz"), vec![mp(b"\x2a")], &[]);
        message.headers = headers(&[("x", "y"), ("z", "z")]);
        both_ways(
            b"\x96\x01\x82\xa1x\xa1y\xa1z\xa1z\xa3xyz\xa6method\x91\x2a\x90",
            HubMessage::Invocation(message),
        );
    }

    #[test]
    fn invocation_with_stream_ids() {
        both_ways(
            b"\x96\x01\x80\xa3xyz\xa6method\x90\x92\xa11\xa12",
            HubMessage::Invocation(invocation(Some("xyz"), vec![], &["1", "2"])),
        );
    }

    #[test]
    fn invocation_of_five_elements_as_the_javascript_client_sends_it() {
        assert_eq!(
            parse(b"\x95\x01\x80\xc0\xa6method\x92\x2a\xa2hi").unwrap(),
            Some(HubMessage::Invocation(invocation(
                None,
                vec![mp(b"\x2a"), mp(b"\xa2hi")],
                &[]
            )))
        );
        // nil stream ids read as none.
        assert_eq!(
            parse(b"\x96\x01\x80\xc0\xa6method\x90\xc0").unwrap(),
            Some(HubMessage::Invocation(invocation(None, vec![], &[])))
        );
        // Elements a later version may append are skipped.
        assert_eq!(
            parse(b"\x97\x01\x80\xc0\xa6method\x90\x90\xa5extra").unwrap(),
            Some(HubMessage::Invocation(invocation(None, vec![], &[])))
        );
    }

    #[test]
    fn stream_invocation() {
        both_ways(
            b"\x96\x04\x80\xa3xyz\xa6method\x91\x2a\x90",
            HubMessage::StreamInvocation(StreamInvocation {
                invocation_id: "xyz".into(),
                target: "method".into(),
                arguments: Arguments::new(vec![mp(b"\x2a")]),
                stream_ids: vec![],
                headers: Headers::new(),
            }),
        );
        assert!(matches!(
            parse(b"\x95\x04\x80\xa3xyz\xa6method\x91\x2a").unwrap(),
            Some(HubMessage::StreamInvocation(_))
        ));
    }

    #[test]
    fn stream_item() {
        both_ways(
            b"\x94\x02\x80\xa3xyz\x2a",
            HubMessage::StreamItem(StreamItem::new("xyz", mp(b"\x2a"))),
        );
        // A structured item is sliced whole.
        let mut item = StreamItem::new("xyz", mp(b"\x82\xa1a\x91\xc3\xa1b\xc0"));
        item.headers = headers(&[("k", "v")]);
        both_ways(
            b"\x94\x02\x81\xa1k\xa1v\xa3xyz\x82\xa1a\x91\xc3\xa1b\xc0",
            HubMessage::StreamItem(item),
        );
    }

    #[test]
    fn completion_with_an_error() {
        both_ways(
            b"\x95\x03\x80\xa3xyz\x01\xa5Error",
            HubMessage::Completion(Completion::error("xyz", "Error")),
        );
    }

    #[test]
    fn completion_without_a_result() {
        both_ways(
            b"\x94\x03\x80\xa3xyz\x02",
            HubMessage::Completion(Completion::void("xyz")),
        );
    }

    #[test]
    fn completion_with_a_result() {
        both_ways(
            b"\x95\x03\x80\xa3xyz\x03\x2a",
            HubMessage::Completion(Completion::result("xyz", mp(b"\x2a"))),
        );
        // A nil result is a result (a method returning null), not void.
        both_ways(
            b"\x95\x03\x80\xa3xyz\x03\xc0",
            HubMessage::Completion(Completion::result("xyz", mp(b"\xc0"))),
        );
    }

    #[test]
    fn cancel_invocation() {
        both_ways(
            b"\x93\x05\x80\xa3xyz",
            HubMessage::CancelInvocation(CancelInvocation {
                invocation_id: "xyz".into(),
                headers: Headers::new(),
            }),
        );
    }

    #[test]
    fn ping_is_always_the_same_two_bytes() {
        both_ways(b"\x91\x06", HubMessage::Ping);
        assert_eq!(write(&HubMessage::Ping), [0x02, 0x91, 0x06]);
        // Whatever follows the type in a Ping is ignored.
        assert_eq!(parse(b"\x92\x06\x80").unwrap(), Some(HubMessage::Ping));
    }

    #[test]
    fn close() {
        // The two-element form of the spec's example (and of older peers) is read;
        // the writer always adds allowReconnect, as ASP.NET Core.
        let close = HubMessage::Close(Close {
            error: Some("xyz".into()),
            allow_reconnect: false,
        });
        assert_eq!(parse(b"\x92\x07\xa3xyz").unwrap(), Some(close.clone()));
        both_ways(b"\x93\x07\xa3xyz\xc2", close);
        both_ways(
            b"\x93\x07\xa3xyz\xc3",
            HubMessage::Close(Close {
                error: Some("xyz".into()),
                allow_reconnect: true,
            }),
        );
        both_ways(b"\x93\x07\xc0\xc2", HubMessage::Close(Close::default()));
        // What the JavaScript client sends.
        assert_eq!(
            parse(b"\x92\x07\xc0").unwrap(),
            Some(HubMessage::Close(Close::default()))
        );
    }

    #[test]
    fn ack_and_sequence() {
        // The spec's examples use a uint8 (any integer width is fine); the writer
        // uses the shortest.
        assert_eq!(
            parse(b"\x92\x08\xcc\x24").unwrap(),
            Some(HubMessage::Ack { sequence_id: 36 })
        );
        both_ways(b"\x92\x08\x24", HubMessage::Ack { sequence_id: 36 });
        assert_eq!(
            parse(b"\x92\x09\xcc\x13").unwrap(),
            Some(HubMessage::Sequence { sequence_id: 19 })
        );
        both_ways(b"\x92\x09\x13", HubMessage::Sequence { sequence_id: 19 });
        both_ways(
            b"\x92\x09\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
            HubMessage::Sequence {
                sequence_id: u64::MAX,
            },
        );
        both_ways(
            b"\x92\x08\xcd\x01\x00",
            HubMessage::Ack { sequence_id: 256 },
        );
    }

    #[test]
    fn unknown_message_types_are_ignored() {
        assert_eq!(parse(b"\x91\x0a").unwrap(), None);
        assert_eq!(parse(b"\x93\x63\x80\xa3xyz").unwrap(), None);
        assert_eq!(parse(b"\x91\xcd\x01\x01").unwrap(), None);
        assert_eq!(parse(b"\x91\xff").unwrap(), None);
    }

    #[test]
    fn values_are_encoded_by_the_protocol_that_writes_them() {
        let expected = framed(b"\x96\x01\x80\xa3xyz\xa6method\x92\x2a\xa2hi\x90");
        // A deferred value, serialized by rmp-serde.
        let values = invocation(
            Some("xyz"),
            vec![Payload::value(42), Payload::value("hi")],
            &[],
        );
        assert_eq!(write(&HubMessage::Invocation(values)), expected);
        // JSON text, transcoded.
        let json = invocation(
            Some("xyz"),
            vec![
                Payload::json("42").unwrap(),
                Payload::json("\"hi\"").unwrap(),
            ],
            &[],
        );
        assert_eq!(write(&HubMessage::Invocation(json)), expected);

        #[derive(serde::Serialize)]
        struct Point {
            x: i32,
            y: Option<i32>,
        }
        let item = StreamItem::new("1", Payload::value(Point { x: -1, y: None }));
        assert_eq!(
            write(&HubMessage::StreamItem(item)),
            framed(b"\x94\x02\x80\xa11\x82\xa1x\xff\xa1y\xc0")
        );
    }

    #[test]
    fn arguments_decode_straight_into_their_types() {
        let Some(HubMessage::Invocation(message)) =
            parse(b"\x95\x01\x80\xc0\xa3add\x93\x28\x02\x92\xa1a\xc3").unwrap()
        else {
            panic!("not an invocation");
        };
        let arguments = &message.arguments;
        assert_eq!(arguments.get::<i32>(0, "a").unwrap(), 40);
        assert_eq!(arguments.get::<u8>(1, "b").unwrap(), 2);
        assert_eq!(
            arguments.get::<(String, bool)>(2, "c").unwrap(),
            ("a".to_owned(), true)
        );
        assert_eq!(
            arguments.get::<String>(0, "a").unwrap_err().to_string(),
            "Error binding argument 'a' (position 0): invalid type: integer `40`, expected a string."
        );
        assert_eq!(
            arguments.get::<i32>(3, "d").unwrap_err().to_string(),
            "Invocation provides 3 argument(s) but target expects 4."
        );
    }

    #[test]
    fn several_messages_in_one_chunk() {
        let bodies: [&[u8]; 4] = [
            b"\x96\x01\x80\xa3xyz\xa6method\x91\x2a\x90",
            b"\x91\x06",
            b"\x94\x03\x80\xa3xyz\x02",
            b"\x92\x08\x24",
        ];
        let chunk: Vec<u8> = bodies.iter().flat_map(|b| framed(b)).collect();
        let mut reader = MessagePackHubProtocol.reader(32 * 1024);
        let messages = reader.push(&chunk).unwrap();
        assert_eq!(messages.len(), 4);
        let parsed: Vec<_> = messages
            .iter()
            .map(|m| MessagePackHubProtocol.parse(m).unwrap().unwrap())
            .collect();
        assert_eq!(parsed[1], HubMessage::Ping);
        assert_eq!(parsed[3], HubMessage::Ack { sequence_id: 36 });

        // Split at every byte boundary, the same messages come out.
        for split in 0..=chunk.len() {
            let mut reader = MessagePackHubProtocol.reader(32 * 1024);
            let mut out = reader.push(&chunk[..split]).unwrap();
            out.extend(reader.push(&chunk[split..]).unwrap());
            assert_eq!(out, messages, "split at {split}");
        }
    }

    #[test]
    fn a_message_over_the_limit_is_refused_by_its_prefix() {
        let mut reader = MessagePackHubProtocol.reader(32 * 1024);
        let err = ProtocolError::from(reader.push(&[0x80, 0x80, 0x80, 0x80, 0x10]).unwrap_err());
        assert_eq!(
            err.to_string(),
            "The maximum message size of 32768B was exceeded. The message size can be configured in HubOptions."
        );
        let mut reader = MessagePackHubProtocol.reader(32 * 1024);
        assert_eq!(
            reader.push(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(RecordError::LengthPrefixTooLong)
        );
    }

    #[test]
    fn malformed_messages_name_the_problem() {
        use MessagePackError as E;
        assert_eq!(error(b""), E::Empty);
        assert_eq!(error(b"\x90"), E::EmptyArray);
        assert_eq!(
            error(b"\x2a").to_string(),
            "expected an array for 'message' at byte 0, found an integer"
        );
        assert_eq!(
            error(b"\x92\xa1x\x01").to_string(),
            "expected an integer for 'messageType' at byte 1, found a string"
        );
        assert_eq!(
            error(b"\x92\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\x01").to_string(),
            "expected an integer for 'messageType' at byte 1, found a float"
        );
        assert_eq!(
            error(b"\x96\x01\x80\xa3x").to_string(),
            "the message ends after 5 bytes, in the middle of 'invocationId'"
        );
        assert_eq!(
            error(b"\x96\x01\x80\xc0\x2a\x91\x2a\x90").to_string(),
            "expected a string for 'target' at byte 4, found an integer"
        );
        assert_eq!(
            error(b"\x96\x01\x80\xc0\xa1m\x2a\x90").to_string(),
            "expected an array for 'arguments' at byte 6, found an integer"
        );
        assert_eq!(
            error(b"\x94\x02\x91\xa3xyz\x2a").to_string(),
            "expected a map for 'headers' at byte 2, found an array"
        );
        assert_eq!(
            error(b"\x94\x02\x81\xa1k\x01\xa3xyz\x2a").to_string(),
            "expected a string for 'headers' at byte 5, found an integer"
        );
        assert_eq!(
            error(b"\x95\x01\x80\xc0\xa2\xff\xfe\x90").to_string(),
            "'target' at byte 4 is not valid UTF-8"
        );
        assert_eq!(
            error(b"\x95\x01\x80\xc0\xa0\x90").to_string(),
            "'target' must not be empty"
        );
        assert_eq!(
            error(b"\x93\x01\x80\xc0").to_string(),
            "an Invocation message has at least 5 elements, this one has 3"
        );
        assert_eq!(
            error(b"\x92\x02\x80").to_string(),
            "a StreamItem message has at least 4 elements, this one has 2"
        );
        assert_eq!(
            error(b"\x94\x03\x80\xa3xyz\x07").to_string(),
            "invalid completion result kind 7; expected 1 (error), 2 (void) or 3 (result)"
        );
        assert_eq!(
            error(b"\x94\x03\x80\xa3xyz\x03").to_string(),
            "a Completion with a result message has at least 5 elements, this one has 4"
        );
        assert_eq!(
            error(b"\x95\x03\x80\xa3xyz\x01\xc0").to_string(),
            "expected a string for 'error' at byte 8, found nil"
        );
        assert_eq!(
            error(b"\x94\x02\x80\xc0\x2a").to_string(),
            "expected a string for 'invocationId' at byte 3, found nil"
        );
        assert_eq!(
            error(b"\x92\x08\xff").to_string(),
            "'sequenceId' is -1, outside 0 to 2^64 - 1"
        );
        assert_eq!(
            error(b"\x93\x07\xc0\x01").to_string(),
            "expected a boolean for 'allowReconnect' at byte 3, found an integer"
        );
        // An array announcing more elements than there are bytes fails at once.
        assert_eq!(
            error(b"\x96\x01\x80\xc0\xa1m\xdd\xff\xff\xff\xff\x01").to_string(),
            "the message ends after 12 bytes, in the middle of 'arguments'"
        );
        assert_eq!(
            error(b"\x94\x02\x80\xa1x\x91\xdf\xff\xff\xff\xff").to_string(),
            "the message ends after 11 bytes, in the middle of 'item'"
        );
        assert_eq!(
            error(b"\x94\x02\x80\xa1x\xc1").to_string(),
            "expected a MessagePack value for 'item' at byte 5, found the reserved byte 0xc1"
        );
        assert_eq!(
            error(b"\x94\x02\x80\xa1x\xa5abc").to_string(),
            "the message ends after 9 bytes, in the middle of 'item'"
        );
        // As the connection's Close error reads it.
        assert_eq!(
            parse(b"\x90").unwrap_err().to_string(),
            "malformed MessagePack message: the message is an empty array; its first element must be the message type"
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        let mut body = b"\x94\x02\x80\xa1x".to_vec();
        body.extend(std::iter::repeat_n(0x91, 100_000));
        body.push(0x01);
        let Some(HubMessage::StreamItem(item)) = parse(&body).unwrap() else {
            panic!("not a stream item");
        };
        let err = item.item.decode::<serde_json::Value>().unwrap_err();
        assert_eq!(err.to_string(), "depth limit exceeded");
    }

    /// A small deterministic generator, so that failures reproduce.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Reads `input` as a client's bytes, as a session would, and exercises
    /// whatever parses: no input may panic.
    fn read_everything(input: &[u8]) {
        let mut reader = MessagePackHubProtocol.reader(64 * 1024);
        let Ok(messages) = reader.push(input) else {
            return;
        };
        for message in messages {
            let Ok(Some(message)) = MessagePackHubProtocol.parse(&message) else {
                continue;
            };
            let payloads: Vec<&Payload> = match &message {
                HubMessage::Invocation(m) => m.arguments.iter().collect(),
                HubMessage::StreamInvocation(m) => m.arguments.iter().collect(),
                HubMessage::StreamItem(m) => vec![&m.item],
                HubMessage::Completion(Completion {
                    outcome: CompletionOutcome::Result(r),
                    ..
                }) => vec![r],
                _ => vec![],
            };
            for payload in payloads {
                let _ = payload.decode::<serde_json::Value>();
                let _ = payload.decode::<(i64, String)>();
            }
            let _ = MessagePackHubProtocol.to_bytes(&message);
            let _ = super::super::JsonHubProtocol.to_bytes(&message);
        }
    }

    #[test]
    fn no_prefix_or_corruption_of_valid_messages_panics() {
        let bodies: [&[u8]; 12] = [
            b"\x96\x01\x82\xa1x\xa1y\xa1z\xa1z\xa3xyz\xa6method\x91\x2a\x90",
            b"\x96\x01\x80\xc0\xa6method\x93\x2a\x82\xa1a\x91\xc3\xa1b\xc0\xc4\x02\x01\x02\x91\xa11",
            b"\x96\x04\x80\xa3xyz\xa6method\x91\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\x90",
            b"\x94\x02\x80\xa3xyz\x92\xd9\x03abc\xd4\x01\x02",
            b"\x95\x03\x80\xa3xyz\x01\xa5Error",
            b"\x94\x03\x80\xa3xyz\x02",
            b"\x95\x03\x80\xa3xyz\x03\x81\xa1k\x93\x01\xd0\x80\xcd\x01\x00",
            b"\x93\x05\x80\xa3xyz",
            b"\x91\x06",
            b"\x93\x07\xa3xyz\xc3",
            b"\x92\x08\xcc\x24",
            b"\x92\x09\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
        ];
        let stream: Vec<u8> = bodies.iter().flat_map(|b| framed(b)).collect();
        for end in 0..=stream.len() {
            read_everything(&stream[..end]);
        }
        let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
        for body in bodies {
            let original = framed(body);
            for _ in 0..2_000 {
                let mut input = original.clone();
                for _ in 0..=random.next() % 3 {
                    let at = (random.next() as usize) % input.len();
                    input[at] = random.next() as u8;
                }
                read_everything(&input);
                // The body alone, without its prefix, straight to the parser.
                let _ = MessagePackHubProtocol.parse(&Bytes::copy_from_slice(&input[1..]));
            }
        }
    }
}
