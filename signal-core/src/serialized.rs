//! A hub message on its way to many connections, encoded once per protocol.
//!
//! A broadcast to ten thousand connections must not serialize its arguments ten
//! thousand times, yet the connections may speak different protocols, and which ones
//! is only known while the message is delivered. [`SerializedHubMessage`] keeps the
//! message and fills, on first use, one cache slot per protocol
//! ([`ProtocolId`]): the first JSON recipient encodes it for JSON, the first
//! MessagePack recipient for MessagePack, and every other recipient shares those
//! bytes ([`Bytes`] clones are reference counts). A protocol no recipient speaks costs
//! nothing.
//!
//! It is also what crosses a backplane: a server that receives a message from another
//! server gets it already framed for each protocol in use there, and builds a
//! `SerializedHubMessage` from those bytes ([`from_framed`](SerializedHubMessage::from_framed))
//! without decoding them.

use std::sync::OnceLock;

use bytes::Bytes;

use crate::message::HubMessage;
use crate::protocol::{MAX_PROTOCOLS, ProtocolId, RegisteredProtocol, WriteError};

/// A hub message with its encodings, each computed at most once. Share it behind an
/// `Arc` between the connections it goes to.
#[derive(Debug, Clone)]
pub struct SerializedHubMessage {
    message: Option<HubMessage>,
    sequenced: bool,
    framed: [OnceLock<Bytes>; MAX_PROTOCOLS],
}

impl SerializedHubMessage {
    /// A message not yet encoded for any protocol.
    pub fn new(message: HubMessage) -> Self {
        SerializedHubMessage {
            sequenced: message.is_sequenced(),
            message: Some(message),
            framed: Default::default(),
        }
    }

    /// A message known only as bytes already framed for `protocol` (from a
    /// backplane). `sequenced` says whether it counts in stateful reconnect's
    /// sequence ([`HubMessage::is_sequenced`]). Add the encodings for other protocols
    /// with [`with_framed`](Self::with_framed); asking for one that was not given
    /// fails with [`WriteError::NotAvailable`].
    pub fn from_framed(protocol: ProtocolId, framed: Bytes, sequenced: bool) -> Self {
        SerializedHubMessage {
            message: None,
            sequenced,
            framed: Default::default(),
        }
        .with_framed(protocol, framed)
    }

    /// Adds the message's bytes framed for `protocol`, unless that encoding is
    /// already there.
    #[must_use]
    pub fn with_framed(self, protocol: ProtocolId, framed: Bytes) -> Self {
        let _ = self.framed[protocol.index()].set(framed);
        self
    }

    /// The message, unless it was built from framed bytes only.
    pub fn message(&self) -> Option<&HubMessage> {
        self.message.as_ref()
    }

    /// Whether the message counts in stateful reconnect's sequence (types 1 to 5):
    /// such messages are buffered until acknowledged and replayed after a reconnect.
    pub fn is_sequenced(&self) -> bool {
        self.sequenced
    }

    /// The message framed for `protocol`: from the cache, or encoded now and cached.
    /// An encoding error is not cached (the next call encodes again, and fails again).
    pub fn framed(&self, protocol: &RegisteredProtocol) -> Result<Bytes, WriteError> {
        let slot = &self.framed[protocol.id().index()];
        if let Some(framed) = slot.get() {
            return Ok(framed.clone());
        }
        let message = self.message.as_ref().ok_or(WriteError::NotAvailable {
            protocol: protocol.name(),
        })?;
        let framed = protocol.to_bytes(message)?;
        // Two threads may race to encode; both results are the same bytes, and the
        // first stored wins.
        Ok(slot.get_or_init(|| framed).clone())
    }

    /// The bytes framed for `protocol`, if they have been computed or given.
    pub fn cached(&self, protocol: ProtocolId) -> Option<&Bytes> {
        self.framed[protocol.index()].get()
    }
}

impl From<HubMessage> for SerializedHubMessage {
    fn from(message: HubMessage) -> Self {
        SerializedHubMessage::new(message)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::BytesMut;

    use super::*;
    use crate::message::{Arguments, Invocation};
    use crate::negotiate::TransferFormat;
    use crate::protocol::{
        Framing, HubProtocol, JsonHubProtocol, MessagePackHubProtocol, ProtocolError, ProtocolSet,
    };

    /// Wraps a protocol and counts its encodings.
    #[derive(Debug)]
    struct Counting<P> {
        inner: P,
        writes: Arc<AtomicUsize>,
    }

    impl<P: HubProtocol> HubProtocol for Counting<P> {
        fn name(&self) -> &'static str {
            self.inner.name()
        }
        fn max_version(&self) -> u32 {
            self.inner.max_version()
        }
        fn transfer_format(&self) -> TransferFormat {
            self.inner.transfer_format()
        }
        fn framing(&self) -> Framing {
            self.inner.framing()
        }
        fn parse(&self, message: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
            self.inner.parse(message)
        }
        fn write(&self, message: &HubMessage, out: &mut BytesMut) -> Result<(), WriteError> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.inner.write(message, out)
        }
    }

    fn broadcast() -> HubMessage {
        HubMessage::Invocation(Invocation::new(
            "news",
            Arguments::from_values(["extra", "extra"]),
        ))
    }

    #[test]
    fn a_broadcast_encodes_once_per_protocol_in_use() {
        let json_writes = Arc::new(AtomicUsize::new(0));
        let msgpack_writes = Arc::new(AtomicUsize::new(0));
        let set = ProtocolSet::empty()
            .with(Counting {
                inner: JsonHubProtocol,
                writes: json_writes.clone(),
            })
            .with(Counting {
                inner: MessagePackHubProtocol,
                writes: msgpack_writes.clone(),
            });
        let json = set.get("json").unwrap();
        let msgpack = set.get("messagepack").unwrap();
        let message = SerializedHubMessage::new(broadcast());
        assert!(message.cached(json.id()).is_none());

        // 1000 recipients, one in four on MessagePack.
        let mut sent = Vec::new();
        for i in 0..1000 {
            let protocol = if i % 4 == 0 { &msgpack } else { &json };
            sent.push(message.framed(protocol).unwrap());
        }
        assert_eq!(json_writes.load(Ordering::Relaxed), 1);
        assert_eq!(msgpack_writes.load(Ordering::Relaxed), 1);
        // Shared, not copied.
        assert_eq!(sent[1].as_ptr(), sent[2].as_ptr());
        assert_eq!(
            sent[0],
            MessagePackHubProtocol.to_bytes(&broadcast()).unwrap()
        );
        assert_eq!(sent[1], JsonHubProtocol.to_bytes(&broadcast()).unwrap());
    }

    #[test]
    fn only_the_protocols_used_are_encoded() {
        let msgpack_writes = Arc::new(AtomicUsize::new(0));
        let set = ProtocolSet::empty().with(JsonHubProtocol).with(Counting {
            inner: MessagePackHubProtocol,
            writes: msgpack_writes.clone(),
        });
        let json = set.get("json").unwrap();
        let message = SerializedHubMessage::new(broadcast());
        let framed = message.framed(&json).unwrap();
        assert_eq!(
            framed,
            &b"{\"type\":1,\"target\":\"news\",\"arguments\":[\"extra\",\"extra\"]}\x1e"[..]
        );
        assert_eq!(message.cached(json.id()), Some(&framed));
        assert_eq!(msgpack_writes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn built_from_framed_bytes() {
        let set = ProtocolSet::default();
        let json = set.get("json").unwrap();
        let msgpack = set.get("messagepack").unwrap();
        let bytes = Bytes::from_static(b"\x02\x91\x06");
        let message = SerializedHubMessage::from_framed(msgpack.id(), bytes.clone(), false);
        assert!(message.message().is_none());
        assert!(!message.is_sequenced());
        assert_eq!(message.framed(&msgpack).unwrap(), bytes);
        let err = message.framed(&json).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the message was received already encoded, and not for the 'json' protocol"
        );
        let message = message.with_framed(json.id(), Bytes::from_static(b"{\"type\":6}\x1e"));
        assert_eq!(message.framed(&json).unwrap(), &b"{\"type\":6}\x1e"[..]);
    }

    #[test]
    fn sequenced_messages_are_types_one_to_five() {
        assert!(SerializedHubMessage::new(broadcast()).is_sequenced());
        assert!(!SerializedHubMessage::new(HubMessage::Ping).is_sequenced());
        assert!(!SerializedHubMessage::from(HubMessage::Ack { sequence_id: 1 }).is_sequenced());
    }
}
