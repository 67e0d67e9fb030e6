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

fn describe(marker: Marker) -> &'static str {
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
            match &m.invocation_id {
                Some(id) => put_str(w, id)?,
                None => rmp::encode::write_nil(w).map_err(write_failed)?,
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
