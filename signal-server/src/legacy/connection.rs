//! One 2.x connection: its messages with their cursor, kept in a bounded
//! replay buffer so a client that comes back (`/reconnect`, or the next long
//! poll) gets everything after the cursor it echoes — or, when that is no
//! longer buffered, is told to start over instead of silently missing some.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rand::RngCore;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::connection::ConnectionId;
use crate::lifetime::ConnectionHandle;

use super::hubs::LegacyHub;

/// Why a cursor cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CursorError {
    /// The cursor was not written for this connection.
    #[error(
        "The messageId does not belong to this connection. Send back the cursor ('C') this connection received."
    )]
    Foreign,
    /// Messages after the cursor are no longer buffered.
    #[error(
        "The connection missed messages while it was away: more were sent after its cursor than the server keeps ({} messages, {} bytes). Stop and start the connection again.",
        .0.messages,
        .0.bytes
    )]
    Gap(Capacity),
}

/// What a receive request gets: messages after its cursor, and the new cursor.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) cursor: String,
    /// The sequence number the cursor names.
    pub(crate) last: u64,
    pub(crate) messages: Vec<Bytes>,
}

/// How much one connection's replay buffer keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Capacity {
    /// At most this many messages.
    pub(crate) messages: usize,
    /// At most this many bytes of messages (the newest is kept whatever its size).
    pub(crate) bytes: usize,
}

struct Buffer {
    /// Messages with their sequence numbers, oldest first.
    messages: VecDeque<(u64, Bytes)>,
    /// Their total length.
    bytes: usize,
    /// The sequence number of the last message pushed (0: none yet).
    last: u64,
    /// How many receive requests are open now.
    receivers: usize,
    /// When the last receive request ended (for the disconnect timeout).
    idle_since: Instant,
}

/// The hub handles of a connection: one per hub it reached.
pub(crate) struct HubLink {
    pub(crate) hub: Arc<dyn LegacyHub>,
    pub(crate) handle: Arc<ConnectionHandle>,
    /// Whether the hub is in the client's `connectionData` (registered, and
    /// gets `on_connected`/`on_disconnected`).
    pub(crate) subscribed: bool,
}

/// One 2.x connection, shared by its requests.
pub(crate) struct LegacyConnection {
    pub(crate) id: ConnectionId,
    pub(crate) user: Option<Arc<str>>,
    /// Prefix of this connection's cursors: a cursor of another connection
    /// (or of an earlier life of this id) is recognised and refused.
    tag: String,
    capacity: Capacity,
    buffer: Mutex<Buffer>,
    /// The last sequence number, for receivers waiting for more.
    last: watch::Sender<u64>,
    /// Bumped by each receive request; an older one sees it and ends.
    receiver: watch::Sender<u64>,
    pub(crate) ended: CancellationToken,
    ending: AtomicBool,
    pub(crate) started: AtomicBool,
    /// Hub calls of one connection run one at a time, in order.
    pub(crate) calls: tokio::sync::Mutex<()>,
    pub(crate) hubs: Mutex<Vec<HubLink>>,
    /// The groups last sent to the client in a groups token (`G`).
    pub(crate) sent_groups: Mutex<Vec<String>>,
    next_receiver: AtomicU64,
    /// A raw connection's way to its handler, once started.
    pub(crate) raw: Mutex<Option<tokio::sync::mpsc::Sender<crate::connection::Message>>>,
    /// The connect request, for hub code and authorization.
    pub(crate) request: Option<Arc<crate::connection::KeptRequest>>,
}

impl LegacyConnection {
    pub(crate) fn new(id: ConnectionId, user: Option<Arc<str>>, capacity: Capacity) -> Self {
        let mut tag = [0u8; 4];
        rand::rng().fill_bytes(&mut tag);
        LegacyConnection {
            id,
            user,
            tag: tag.iter().map(|b| format!("{b:02x}")).collect(),
            capacity: Capacity {
                messages: capacity.messages.max(1),
                bytes: capacity.bytes,
            },
            buffer: Mutex::new(Buffer {
                messages: VecDeque::new(),
                bytes: 0,
                last: 0,
                receivers: 0,
                idle_since: Instant::now(),
            }),
            last: watch::Sender::new(0),
            receiver: watch::Sender::new(0),
            ended: CancellationToken::new(),
            ending: AtomicBool::new(false),
            started: AtomicBool::new(false),
            calls: tokio::sync::Mutex::new(()),
            hubs: Mutex::default(),
            sent_groups: Mutex::default(),
            next_receiver: AtomicU64::new(1),
            raw: Mutex::default(),
            request: None,
        }
    }

    /// Keeps the connect request, for hub code and authorization.
    pub(crate) fn with_request(mut self, request: &http::request::Parts) -> Self {
        self.request = Some(crate::connection::keep_request(request.clone()));
        self
    }

    fn cursor(&self, seq: u64) -> String {
        format!("{}-{seq:X}", self.tag)
    }

    /// The sequence number of the last message pushed.
    pub(crate) fn last_seq(&self) -> u64 {
        self.buffer.lock().expect("buffer lock").last
    }

    /// The cursor of "now": nothing sent so far is after it.
    #[cfg(test)]
    pub(crate) fn current_cursor(&self) -> String {
        self.cursor(self.buffer.lock().expect("buffer lock").last)
    }

    /// The sequence number a client's cursor names.
    pub(crate) fn parse_cursor(&self, cursor: &str) -> Result<u64, CursorError> {
        let (tag, seq) = cursor.rsplit_once('-').ok_or(CursorError::Foreign)?;
        if tag != self.tag {
            return Err(CursorError::Foreign);
        }
        let seq = u64::from_str_radix(seq, 16).map_err(|_| CursorError::Foreign)?;
        if seq > self.buffer.lock().expect("buffer lock").last {
            return Err(CursorError::Foreign);
        }
        Ok(seq)
    }

    /// Appends a message for the client; the oldest are dropped past the
    /// buffer's capacity (a client still behind them is told to start over).
    pub(crate) fn push(&self, message: Bytes) -> u64 {
        let last = {
            let mut buffer = self.buffer.lock().expect("buffer lock");
            buffer.last += 1;
            let seq = buffer.last;
            buffer.bytes += message.len();
            buffer.messages.push_back((seq, message));
            while buffer.messages.len() > self.capacity.messages
                || (buffer.bytes > self.capacity.bytes && buffer.messages.len() > 1)
            {
                if let Some((_, old)) = buffer.messages.pop_front() {
                    buffer.bytes -= old.len();
                }
            }
            seq
        };
        self.last.send_replace(last);
        last
    }

    /// Up to `max` messages after `after`, with the cursor after them.
    pub(crate) fn read_after(&self, after: u64, max: usize) -> Result<Batch, CursorError> {
        let buffer = self.buffer.lock().expect("buffer lock");
        let oldest = buffer.messages.front().map_or(buffer.last + 1, |(s, _)| *s);
        if after + 1 < oldest {
            return Err(CursorError::Gap(self.capacity));
        }
        let messages: Vec<(u64, Bytes)> = buffer
            .messages
            .iter()
            .filter(|(seq, _)| *seq > after)
            .take(max)
            .cloned()
            .collect();
        let last = messages.last().map_or(after, |(seq, _)| *seq);
        Ok(Batch {
            cursor: self.cursor(last),
            last,
            messages: messages.into_iter().map(|(_, m)| m).collect(),
        })
    }

    /// Waits until a message after `after` is pushed.
    pub(crate) fn watch_last(&self) -> watch::Receiver<u64> {
        self.last.subscribe()
    }

    /// Registers a new receive request, replacing any older one.
    pub(crate) fn open_receiver(self: &Arc<Self>) -> Receiver {
        let generation = self.next_receiver.fetch_add(1, Ordering::Relaxed);
        self.receiver.send_replace(generation);
        self.buffer.lock().expect("buffer lock").receivers += 1;
        Receiver {
            connection: self.clone(),
            generation,
            replaced: self.receiver.subscribe(),
        }
    }

    /// How long no receive request has been open; `None` while one is.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        let buffer = self.buffer.lock().expect("buffer lock");
        (buffer.receivers == 0).then_some(buffer.idle_since)
    }

    /// Marks the connection ended; true for the first caller only, who then
    /// runs the disconnect.
    pub(crate) fn begin_end(&self) -> bool {
        let first = !self.ending.swap(true, Ordering::AcqRel);
        self.ended.cancel();
        first
    }

    /// The qualified names (`Hub.group`) of the groups the connection is in.
    pub(crate) fn group_names(&self) -> Vec<String> {
        let hubs = self.hubs.lock().expect("hubs lock");
        let mut names: Vec<String> = hubs
            .iter()
            .flat_map(|link| {
                link.handle
                    .group_names()
                    .into_iter()
                    .map(|group| format!("{}.{group}", link.hub.name()))
            })
            .collect();
        names.sort();
        names
    }
}

/// An open receive request; dropping it marks the connection idle again.
pub(crate) struct Receiver {
    connection: Arc<LegacyConnection>,
    generation: u64,
    replaced: watch::Receiver<u64>,
}

impl Receiver {
    /// Resolves once a newer receive request for the connection opened.
    pub(crate) async fn replaced(&mut self) {
        let generation = self.generation;
        let _ = self.replaced.wait_for(|g| *g != generation).await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut buffer = self.connection.buffer.lock().expect("buffer lock");
        buffer.receivers = buffer.receivers.saturating_sub(1);
        buffer.idle_since = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_replay_what_followed_them_and_refuse_gaps_and_strangers() {
        let capacity = Capacity {
            messages: 3,
            bytes: 1024,
        };
        let connection = LegacyConnection::new("a".into(), None, capacity);
        let start = connection.current_cursor();
        let after = connection.parse_cursor(&start).unwrap();
        connection.push(Bytes::from_static(b"1"));
        connection.push(Bytes::from_static(b"2"));
        let batch = connection.read_after(after, 10).unwrap();
        assert_eq!(
            batch.messages,
            vec![Bytes::from_static(b"1"), Bytes::from_static(b"2")]
        );
        let second = connection.parse_cursor(&batch.cursor).unwrap();
        assert!(
            connection
                .read_after(second, 10)
                .unwrap()
                .messages
                .is_empty()
        );
        for n in 3..=5 {
            connection.push(Bytes::from(n.to_string()));
        }
        // 3, 4, 5 are buffered; 1 and 2 are gone, so the first cursor is stale.
        assert_eq!(
            connection.read_after(after, 10).unwrap_err(),
            CursorError::Gap(capacity)
        );
        assert_eq!(connection.read_after(second, 10).unwrap().messages.len(), 3);
        let other = LegacyConnection::new("b".into(), None, capacity);
        assert_eq!(
            other.parse_cursor(&batch.cursor).unwrap_err(),
            CursorError::Foreign
        );
        assert_eq!(
            connection.parse_cursor("nonsense").unwrap_err(),
            CursorError::Foreign
        );
    }

    #[test]
    fn the_buffer_keeps_at_most_its_bytes_but_always_the_newest() {
        let connection = LegacyConnection::new(
            "a".into(),
            None,
            Capacity {
                messages: 100,
                bytes: 10,
            },
        );
        connection.push(Bytes::from_static(b"123456"));
        connection.push(Bytes::from_static(b"7890"));
        assert_eq!(connection.read_after(0, 10).unwrap().messages.len(), 2);
        connection.push(Bytes::from_static(b"a very long message"));
        assert!(connection.read_after(1, 10).is_err());
        assert_eq!(
            connection.read_after(2, 10).unwrap().messages,
            vec![Bytes::from_static(b"a very long message")]
        );
    }
}
