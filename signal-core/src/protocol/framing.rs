//! How messages are delimited in a byte stream.
//!
//! Transports do not preserve message boundaries from the client: one WebSocket frame
//! or POST body may hold several messages, and one message may be split across frames.
//! The readers here reassemble messages from whatever chunks arrive, and enforce the
//! maximum message size before buffering a message, not after.
//!
//! - The text protocol (JSON) and the handshake end every record with the record
//!   separator `0x1E` ([`RecordReader`]).
//! - Binary protocols (MessagePack) put a VarInt length before every message
//!   ([`LengthPrefixReader`]): 7-bit groups, least significant first, the high bit set
//!   on every byte but the last, at most 5 bytes, at most 2 GiB.

use bytes::{BufMut, Bytes, BytesMut};

/// The ASCII record separator that ends every record.
pub const RECORD_SEPARATOR: u8 = 0x1E;

/// The longest VarInt length prefix, in bytes.
pub const MAX_LENGTH_PREFIX: usize = 5;

/// The largest message a length prefix may announce: 2 GiB - 1, as in ASP.NET Core.
pub const MAX_PREFIXED_LENGTH: u64 = i32::MAX as u64;

/// A message could not be read from the byte stream. The connection that sent it
/// is closed with this text; the reader is unusable afterwards.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// A message is, or announces that it is, longer than the maximum message size.
    /// The text is ASP.NET Core's, but for where the limit is set.
    #[error(
        "The maximum message size of {limit}B was exceeded. The message size can be configured in HubOptions."
    )]
    TooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A length prefix runs past its fifth byte (the high bit of the fifth byte is set).
    #[error(
        "malformed message: the length prefix of a binary message is longer than {MAX_LENGTH_PREFIX} bytes"
    )]
    LengthPrefixTooLong,
    /// A length prefix announces more than 2 GiB.
    #[error(
        "malformed message: the length prefix announces {length} bytes; messages over 2 GiB are not supported"
    )]
    LengthOverflow {
        /// The announced length.
        length: u64,
    },
}

/// How a protocol delimits its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Each message ends with [`RECORD_SEPARATOR`] (the JSON protocol).
    Records,
    /// Each message starts with its VarInt length (the MessagePack protocol).
    LengthPrefixed,
}

impl Framing {
    /// A reader for this framing that refuses messages longer than
    /// `max_message_size` bytes (separator or length prefix not counted).
    pub fn reader(self, max_message_size: usize) -> FrameReader {
        match self {
            Framing::Records => FrameReader::Records(RecordReader::new(max_message_size)),
            Framing::LengthPrefixed => {
                FrameReader::LengthPrefixed(LengthPrefixReader::new(max_message_size))
            }
        }
    }

    /// Appends `message` framed: followed by a separator, or preceded by its length.
    pub fn write(self, message: &[u8], out: &mut BytesMut) {
        match self {
            Framing::Records => write_record(out, message),
            Framing::LengthPrefixed => write_length_prefixed(out, message),
        }
    }
}

/// The messages one chunk completed, in order. The first is held apart, so
/// that a chunk with one message (as most are) allocates no list.
#[derive(Debug, Default)]
pub struct Messages {
    first: Option<Bytes>,
    rest: Vec<Bytes>,
}

impl Messages {
    fn push(&mut self, message: Bytes) {
        if self.first.is_none() {
            self.first = Some(message);
        } else {
            self.rest.push(message);
        }
    }

    /// How many messages there are.
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl IntoIterator for Messages {
    type Item = Bytes;
    type IntoIter = std::iter::Chain<std::option::IntoIter<Bytes>, std::vec::IntoIter<Bytes>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

impl From<Messages> for Vec<Bytes> {
    fn from(messages: Messages) -> Self {
        // The chain's length is exact: one allocation of the right size.
        messages.into_iter().collect()
    }
}

/// Reassembles the messages of either framing from chunks of bytes.
#[derive(Debug)]
pub enum FrameReader {
    /// Records ended by `0x1E`.
    Records(RecordReader),
    /// Messages preceded by their VarInt length.
    LengthPrefixed(LengthPrefixReader),
}

impl FrameReader {
    /// Adds a chunk and returns every message it completes, without framing.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, RecordError> {
        self.push_bytes(Bytes::copy_from_slice(chunk))
    }

    /// Like [`push`](Self::push) for a chunk already in a [`Bytes`]: messages that lie
    /// whole inside it are slices of it, not copies.
    pub fn push_bytes(&mut self, chunk: Bytes) -> Result<Vec<Bytes>, RecordError> {
        self.push_messages(chunk).map(Vec::from)
    }

    /// Like [`push_bytes`](Self::push_bytes), without a list allocated when the
    /// chunk completes one message (as most do).
    pub fn push_messages(&mut self, chunk: Bytes) -> Result<Messages, RecordError> {
        match self {
            FrameReader::Records(reader) => reader.push_messages(chunk),
            FrameReader::LengthPrefixed(reader) => reader.push_messages(chunk),
        }
    }

    /// The largest message this reader accepts, in bytes.
    pub fn max_message_size(&self) -> usize {
        match self {
            FrameReader::Records(reader) => reader.max_record_size(),
            FrameReader::LengthPrefixed(reader) => reader.max_message_size(),
        }
    }

    /// How many bytes wait for the rest of their message.
    pub fn pending(&self) -> usize {
        match self {
            FrameReader::Records(reader) => reader.pending(),
            FrameReader::LengthPrefixed(reader) => reader.pending(),
        }
    }
}

/// Reassembles records ended by `0x1E` from chunks of bytes, enforcing a maximum
/// record size.
#[derive(Debug)]
pub struct RecordReader {
    buffer: BytesMut,
    max_record_size: usize,
}

impl RecordReader {
    /// A reader that refuses records longer than `max_record_size` bytes
    /// (the separator not counted).
    pub fn new(max_record_size: usize) -> Self {
        RecordReader {
            buffer: BytesMut::new(),
            max_record_size,
        }
    }

    /// Adds a chunk and returns every record it completes, without separators.
    /// Bytes after the last separator stay buffered for the next chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, RecordError> {
        self.push_bytes(Bytes::copy_from_slice(chunk))
    }

    /// Like [`push`](Self::push) for a chunk already in a [`Bytes`]: records
    /// that lie whole inside it are slices of it, not copies.
    pub fn push_bytes(&mut self, chunk: Bytes) -> Result<Vec<Bytes>, RecordError> {
        self.push_messages(chunk).map(Vec::from)
    }

    /// Like [`push_bytes`](Self::push_bytes), without a list allocated when the
    /// chunk completes one record (as most do).
    pub fn push_messages(&mut self, chunk: Bytes) -> Result<Messages, RecordError> {
        let mut records = Messages::default();
        let mut rest = chunk;
        while let Some((record, after)) = self.next_record(rest)? {
            records.push(record);
            rest = after;
        }
        Ok(records)
    }

    /// Adds a chunk and stops at the first record it completes: returns that record
    /// and the bytes of the chunk after its separator, unread. For the handshake,
    /// which is a record in every protocol: what follows it may be binary, and must
    /// go to the reader of the protocol the handshake chose.
    ///
    /// Returns `None`, and keeps the chunk buffered, while no record is complete.
    pub fn push_until_record(
        &mut self,
        chunk: Bytes,
    ) -> Result<Option<(Bytes, Bytes)>, RecordError> {
        self.next_record(chunk)
    }

    /// The first record `chunk` completes and what follows it; or everything
    /// buffered, and `None`.
    fn next_record(&mut self, chunk: Bytes) -> Result<Option<(Bytes, Bytes)>, RecordError> {
        let too_large = RecordError::TooLarge {
            limit: self.max_record_size,
        };
        let Some(end) = memchr::memchr(RECORD_SEPARATOR, &chunk) else {
            if self.buffer.len() + chunk.len() > self.max_record_size {
                return Err(too_large);
            }
            self.buffer.extend_from_slice(&chunk);
            return Ok(None);
        };
        if self.buffer.len() + end > self.max_record_size {
            return Err(too_large);
        }
        let record = if self.buffer.is_empty() {
            chunk.slice(..end)
        } else {
            self.buffer.extend_from_slice(&chunk[..end]);
            self.buffer.split().freeze()
        };
        Ok(Some((record, chunk.slice(end + 1..))))
    }

    /// The largest record this reader accepts, in bytes.
    pub fn max_record_size(&self) -> usize {
        self.max_record_size
    }

    /// How many bytes wait for their separator.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

/// Appends `payload` and a separator to `out`.
pub fn write_record(out: &mut impl BufMut, payload: &[u8]) {
    out.put_slice(payload);
    out.put_u8(RECORD_SEPARATOR);
}

/// Reassembles messages preceded by their VarInt length from chunks of bytes,
/// enforcing a maximum message size as soon as a length prefix is complete, before
/// any of the message is buffered.
#[derive(Debug)]
pub struct LengthPrefixReader {
    state: State,
    /// The start of a message whose end has not arrived yet.
    buffer: BytesMut,
    max_message_size: usize,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading a length prefix: the value so far and how many bytes it took.
    Prefix { value: u64, bytes: u32 },
    /// Reading a message of `length` bytes.
    Body { length: usize },
}

const NEW_PREFIX: State = State::Prefix { value: 0, bytes: 0 };

impl LengthPrefixReader {
    /// A reader that refuses messages longer than `max_message_size` bytes (the
    /// length prefix not counted).
    pub fn new(max_message_size: usize) -> Self {
        LengthPrefixReader {
            state: NEW_PREFIX,
            buffer: BytesMut::new(),
            max_message_size,
        }
    }

    /// Adds a chunk and returns every message it completes, without their prefixes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, RecordError> {
        self.push_bytes(Bytes::copy_from_slice(chunk))
    }

    /// Like [`push`](Self::push) for a chunk already in a [`Bytes`]: messages that
    /// lie whole inside it are slices of it, not copies.
    pub fn push_bytes(&mut self, chunk: Bytes) -> Result<Vec<Bytes>, RecordError> {
        self.push_messages(chunk).map(Vec::from)
    }

    /// Like [`push_bytes`](Self::push_bytes), without a list allocated when the
    /// chunk completes one message (as most do).
    pub fn push_messages(&mut self, chunk: Bytes) -> Result<Messages, RecordError> {
        let mut messages = Messages::default();
        let mut at = 0;
        while at < chunk.len() {
            match self.state {
                State::Prefix { value, bytes } => {
                    let byte = chunk[at];
                    at += 1;
                    let value = value | (u64::from(byte & 0x7f) << (7 * bytes));
                    let bytes = bytes + 1;
                    if byte & 0x80 != 0 {
                        if bytes as usize == MAX_LENGTH_PREFIX {
                            return Err(RecordError::LengthPrefixTooLong);
                        }
                        self.state = State::Prefix { value, bytes };
                        continue;
                    }
                    let length = self.check_length(value)?;
                    if length == 0 {
                        messages.push(Bytes::new());
                        self.state = NEW_PREFIX;
                    } else {
                        self.state = State::Body { length };
                    }
                }
                State::Body { length } => {
                    let available = chunk.len() - at;
                    if self.buffer.is_empty() && available >= length {
                        messages.push(chunk.slice(at..at + length));
                        at += length;
                        self.state = NEW_PREFIX;
                        continue;
                    }
                    let take = available.min(length - self.buffer.len());
                    self.buffer.extend_from_slice(&chunk[at..at + take]);
                    at += take;
                    if self.buffer.len() == length {
                        messages.push(self.buffer.split().freeze());
                        self.state = NEW_PREFIX;
                    }
                }
            }
        }
        Ok(messages)
    }

    fn check_length(&self, length: u64) -> Result<usize, RecordError> {
        let too_large = RecordError::TooLarge {
            limit: self.max_message_size,
        };
        match usize::try_from(length) {
            Ok(length) if length > self.max_message_size => Err(too_large),
            Err(_) => Err(too_large),
            Ok(_) if length > MAX_PREFIXED_LENGTH => Err(RecordError::LengthOverflow { length }),
            Ok(length) => Ok(length),
        }
    }

    /// The largest message this reader accepts, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// How many bytes wait for the rest of their message (a partial length prefix
    /// included).
    pub fn pending(&self) -> usize {
        match self.state {
            State::Prefix { bytes, .. } => bytes as usize,
            State::Body { .. } => self.buffer.len(),
        }
    }
}

/// Encodes `length` as a VarInt into `prefix`; returns how many bytes it took (1 to
/// 5). Lengths past 2³⁵ - 1 do not fit; callers keep to [`MAX_PREFIXED_LENGTH`].
pub fn encode_length_prefix(length: usize, prefix: &mut [u8; MAX_LENGTH_PREFIX]) -> usize {
    let mut rest = length;
    for (i, byte) in prefix.iter_mut().enumerate() {
        let low = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest == 0 || i == MAX_LENGTH_PREFIX - 1 {
            *byte = low;
            return i + 1;
        }
        *byte = low | 0x80;
    }
    MAX_LENGTH_PREFIX
}

/// Appends `length` as a VarInt.
pub fn write_length_prefix(out: &mut impl BufMut, length: usize) {
    let mut prefix = [0; MAX_LENGTH_PREFIX];
    let n = encode_length_prefix(length, &mut prefix);
    out.put_slice(&prefix[..n]);
}

/// Appends `payload` preceded by its VarInt length.
pub fn write_length_prefixed(out: &mut impl BufMut, payload: &[u8]) {
    write_length_prefix(out, payload.len());
    out.put_slice(payload);
}

/// Frames a message written in place: `out[start..start + MAX_LENGTH_PREFIX]` was
/// reserved for the prefix and the message follows it to the end of `out`. Writes
/// the prefix right before the message and closes the gap left by unused prefix
/// bytes (one move of the message, no allocation).
pub(crate) fn finish_length_prefixed(out: &mut BytesMut, start: usize) {
    let body = start + MAX_LENGTH_PREFIX;
    let mut prefix = [0; MAX_LENGTH_PREFIX];
    let n = encode_length_prefix(out.len() - body, &mut prefix);
    out[body - n..body].copy_from_slice(&prefix[..n]);
    if n < MAX_LENGTH_PREFIX {
        let end = out.len();
        out.copy_within(body - n..end, start);
        out.truncate(end - (MAX_LENGTH_PREFIX - n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_records_in_one_chunk() {
        let mut reader = RecordReader::new(1024);
        let records = reader.push(b"{\"a\":1}\x1e{\"b\":2}\x1e").unwrap();
        assert_eq!(records, vec![&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
        assert_eq!(reader.pending(), 0);
    }

    #[test]
    fn messages_come_in_order_however_many_a_chunk_holds() {
        for count in 0..4 {
            let chunk: Vec<u8> = (0..count).flat_map(|i| [b'0' + i, 0x1e]).collect();
            let expected: Vec<Bytes> = (0..count).map(|i| Bytes::from(vec![b'0' + i])).collect();
            let messages = RecordReader::new(16).push_messages(chunk.into()).unwrap();
            assert_eq!(messages.len(), usize::from(count));
            assert_eq!(messages.is_empty(), count == 0);
            assert_eq!(messages.into_iter().collect::<Vec<_>>(), expected);
            let chunk: Vec<u8> = (0..count).flat_map(|i| [1, b'0' + i]).collect();
            let messages = LengthPrefixReader::new(16)
                .push_messages(chunk.into())
                .unwrap();
            assert_eq!(Vec::from(messages), expected);
        }
    }

    #[test]
    fn a_record_split_across_chunks() {
        let mut reader = RecordReader::new(1024);
        assert!(reader.push(b"{\"type\":").unwrap().is_empty());
        assert!(reader.push(b"6").unwrap().is_empty());
        let records = reader.push(b"}\x1e{\"ty").unwrap();
        assert_eq!(records, vec![&b"{\"type\":6}"[..]]);
        assert_eq!(reader.pending(), 4);
        let records = reader.push(b"pe\":6}\x1e").unwrap();
        assert_eq!(records, vec![&b"{\"type\":6}"[..]]);
    }

    #[test]
    fn byte_at_a_time() {
        let mut reader = RecordReader::new(1024);
        let input = b"{}\x1e{\"x\":[1,2]}\x1e";
        let mut out = Vec::new();
        for b in input {
            out.extend(reader.push(&[*b]).unwrap());
        }
        assert_eq!(out, vec![&b"{}"[..], &b"{\"x\":[1,2]}"[..]]);
    }

    #[test]
    fn oversized_record_is_refused_before_its_separator() {
        let mut reader = RecordReader::new(8);
        assert!(reader.push(b"12345").is_ok());
        assert_eq!(
            reader.push(b"6789"),
            Err(RecordError::TooLarge { limit: 8 })
        );
    }

    #[test]
    fn record_of_exactly_the_limit_is_accepted() {
        let mut reader = RecordReader::new(4);
        assert_eq!(reader.push(b"1234\x1e").unwrap(), vec![&b"1234"[..]]);
        assert_eq!(
            reader.push(b"12345\x1e"),
            Err(RecordError::TooLarge { limit: 4 })
        );
    }

    #[test]
    fn the_handshake_record_and_what_follows_it() {
        let mut reader = RecordReader::new(1024);
        assert_eq!(
            reader
                .push_until_record(Bytes::from_static(b"{\"protocol\":"))
                .unwrap(),
            None
        );
        // Binary data after the handshake may hold 0x1E: it is not split.
        let (record, rest) = reader
            .push_until_record(Bytes::from_static(b"\"messagepack\"}\x1e\x03\x91\x1e\x01"))
            .unwrap()
            .unwrap();
        assert_eq!(record, &b"{\"protocol\":\"messagepack\"}"[..]);
        assert_eq!(rest, &b"\x03\x91\x1e\x01"[..]);
        assert_eq!(reader.pending(), 0);
    }

    #[test]
    fn varint_examples_from_the_spec() {
        let mut prefix = [0; MAX_LENGTH_PREFIX];
        assert_eq!(encode_length_prefix(0x35, &mut prefix), 1);
        assert_eq!(prefix[..1], [0x35]);
        assert_eq!(encode_length_prefix(0x1480, &mut prefix), 2);
        assert_eq!(prefix[..2], [0x80, 0x29]);
        assert_eq!(encode_length_prefix(0x7fff_ffff, &mut prefix), 5);
        assert_eq!(prefix, [0xff, 0xff, 0xff, 0xff, 0x07]);
        assert_eq!(encode_length_prefix(127, &mut prefix), 1);
        assert_eq!(encode_length_prefix(128, &mut prefix), 2);
        assert_eq!(prefix[..2], [0x80, 0x01]);

        // "Hello\nWorld" and 0x01 0x02, as the spec frames them.
        let mut out = BytesMut::new();
        write_length_prefixed(&mut out, b"Hello\nWorld");
        write_length_prefixed(&mut out, &[0x01, 0x02]);
        assert_eq!(&out[..], b"\x0bHello\nWorld\x02\x01\x02");
        let mut reader = LengthPrefixReader::new(1024);
        assert_eq!(
            reader.push(&out).unwrap(),
            vec![&b"Hello\nWorld"[..], &[0x01, 0x02][..]]
        );
    }

    /// Messages of several sizes (1-, 2- and 3-byte prefixes, and empty).
    fn sample_stream() -> (Vec<Vec<u8>>, Vec<u8>) {
        let messages: Vec<Vec<u8>> = [3usize, 0, 200, 1, 20_000, 127, 128]
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
            .collect();
        let mut stream = BytesMut::new();
        for m in &messages {
            write_length_prefixed(&mut stream, m);
        }
        (messages, stream.to_vec())
    }

    #[test]
    fn length_prefixed_messages_in_one_chunk() {
        let (messages, stream) = sample_stream();
        let mut reader = LengthPrefixReader::new(1 << 20);
        assert_eq!(reader.push(&stream).unwrap(), messages);
        assert_eq!(reader.pending(), 0);
    }

    #[test]
    fn length_prefixed_messages_split_at_every_byte_boundary() {
        let (messages, stream) = sample_stream();
        for split in 0..=stream.len() {
            let mut reader = LengthPrefixReader::new(1 << 20);
            let mut out = reader.push(&stream[..split]).unwrap();
            out.extend(reader.push(&stream[split..]).unwrap());
            assert_eq!(out, messages, "split at {split}");
            assert_eq!(reader.pending(), 0);
        }
        // And one byte at a time, through the enum.
        let mut reader = Framing::LengthPrefixed.reader(1 << 20);
        let mut out = Vec::new();
        for b in &stream {
            out.extend(reader.push(&[*b]).unwrap());
        }
        assert_eq!(out, messages);
    }

    #[test]
    fn whole_messages_are_slices_of_the_chunk() {
        let mut stream = BytesMut::new();
        write_length_prefixed(&mut stream, b"abc");
        let chunk = stream.freeze();
        let mut reader = LengthPrefixReader::new(16);
        let out = reader.push_bytes(chunk.clone()).unwrap();
        assert_eq!(out[0].as_ptr(), chunk[1..].as_ptr());
    }

    #[test]
    fn a_length_over_the_limit_is_refused_before_the_message_arrives() {
        let mut reader = LengthPrefixReader::new(32 * 1024);
        // 4 GiB announced in five bytes: refused on the fifth, nothing buffered.
        let err = reader.push(&[0x80, 0x80, 0x80, 0x80, 0x10]).unwrap_err();
        assert_eq!(err, RecordError::TooLarge { limit: 32 * 1024 });
        assert_eq!(
            err.to_string(),
            "The maximum message size of 32768B was exceeded. The message size can be configured in HubOptions."
        );
        let mut reader = LengthPrefixReader::new(4);
        assert_eq!(
            reader.push(&[4, 1, 2, 3, 4]).unwrap(),
            vec![&[1, 2, 3, 4][..]]
        );
        assert_eq!(reader.push(&[5]), Err(RecordError::TooLarge { limit: 4 }));
    }

    #[test]
    fn a_prefix_of_six_bytes_is_refused() {
        let mut reader = LengthPrefixReader::new(usize::MAX);
        let err = reader
            .push(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01])
            .unwrap_err();
        assert_eq!(err, RecordError::LengthPrefixTooLong);
        assert!(err.to_string().contains("longer than 5 bytes"), "{err}");
        // Already refused on the fifth byte, split or not.
        let mut reader = LengthPrefixReader::new(usize::MAX);
        assert!(reader.push(&[0x80, 0x80]).unwrap().is_empty());
        assert!(reader.push(&[0x80, 0x80, 0x80]).is_err());
    }

    #[test]
    fn more_than_two_gib_is_refused_without_a_limit() {
        let mut reader = LengthPrefixReader::new(usize::MAX);
        let err = reader.push(&[0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap_err();
        assert_eq!(
            err,
            RecordError::LengthOverflow {
                length: 0xffff_ffff
            }
        );
        assert!(err.to_string().contains("over 2 GiB"), "{err}");
    }

    #[test]
    fn framing_in_place() {
        for len in [0usize, 1, 127, 128, 300, 16_384, 70_000] {
            let mut out = BytesMut::from(&b"xy"[..]);
            out.put_slice(&[0; MAX_LENGTH_PREFIX]);
            let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
            out.put_slice(&body);
            finish_length_prefixed(&mut out, 2);
            let mut expected = BytesMut::from(&b"xy"[..]);
            write_length_prefixed(&mut expected, &body);
            assert_eq!(out, expected, "length {len}");
        }
    }
}
