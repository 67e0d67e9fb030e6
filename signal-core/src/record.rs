//! Record framing of the text protocols: each JSON message (and the handshake) ends
//! with the record separator `0x1E`.
//!
//! Transports do not preserve record boundaries from the client: one WebSocket
//! frame or POST body may hold several records, and one record may be split across
//! frames. [`RecordReader`] reassembles records from whatever chunks arrive.

use bytes::{Bytes, BytesMut};

/// The ASCII record separator that ends every record.
pub const RECORD_SEPARATOR: u8 = 0x1E;

/// A record could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// A record grew past the maximum message size before its separator arrived.
    /// The text is ASP.NET Core's, but for where the limit is set.
    #[error(
        "The maximum message size of {limit}B was exceeded. The message size can be configured in HubOptions."
    )]
    TooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
}

/// Reassembles records from chunks of bytes, enforcing a maximum record size.
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
        let mut records = Vec::new();
        let mut start = 0;
        while let Some(offset) = memchr::memchr(RECORD_SEPARATOR, &chunk[start..]) {
            let end = start + offset;
            if self.buffer.len() + offset > self.max_record_size {
                return Err(RecordError::TooLarge {
                    limit: self.max_record_size,
                });
            }
            if self.buffer.is_empty() {
                records.push(chunk.slice(start..end));
            } else {
                self.buffer.extend_from_slice(&chunk[start..end]);
                records.push(self.buffer.split().freeze());
            }
            start = end + 1;
        }
        let rest = &chunk[start..];
        if self.buffer.len() + rest.len() > self.max_record_size {
            return Err(RecordError::TooLarge {
                limit: self.max_record_size,
            });
        }
        self.buffer.extend_from_slice(rest);
        Ok(records)
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
pub fn write_record(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(payload);
    out.push(RECORD_SEPARATOR);
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
}
