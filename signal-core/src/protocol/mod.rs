//! Hub protocols as plug-ins: the [`HubProtocol`] trait, the two protocols ASP.NET
//! Core SignalR speaks ([`JsonHubProtocol`], [`MessagePackHubProtocol`]), the framing
//! they use, and [`ProtocolSet`], the protocols a hub offers.
//!
//! The client's handshake names a protocol and a version; the server looks it up in
//! its [`ProtocolSet`] ([`ProtocolSet::select`]) and from then on reads that
//! connection's bytes with the protocol's [`reader`](HubProtocol::reader), decodes each
//! message with [`parse`](HubProtocol::parse) and encodes with
//! [`write`](HubProtocol::write). Nothing else in the stack names a protocol:
//! arguments, results and stream items are protocol-neutral [`Payload`]s, and a
//! message sent to many connections is a
//! [`SerializedHubMessage`](crate::SerializedHubMessage), encoded once per protocol.
//!
//! [`Payload`]: crate::Payload

use std::fmt::Debug;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::handshake::HandshakeRequest;
use crate::message::HubMessage;
use crate::negotiate::TransferFormat;
use crate::payload::PayloadError;

pub mod framing;
pub mod json;
pub mod messagepack;

pub use framing::{FrameReader, Framing};
pub use json::JsonHubProtocol;
pub use messagepack::{MessagePackError, MessagePackHubProtocol};

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
    /// A MessagePack message does not have the layout of its type.
    #[error("malformed MessagePack message: {0}")]
    MessagePack(#[from] MessagePackError),
    /// The byte stream could not be cut into messages (a [`FrameReader`]'s error),
    /// for callers that handle reading and parsing as one step.
    #[error(transparent)]
    Framing(#[from] framing::RecordError),
}

/// A message could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// An argument, result or stream item could not be serialized.
    #[error("a value could not be serialized for the '{protocol}' protocol: {source}")]
    Payload {
        /// The protocol writing it.
        protocol: &'static str,
        /// What the serializer said.
        source: PayloadError,
    },
    /// The encoded message would exceed what a length prefix can announce.
    #[error("the message is {length} bytes long; messages over 2 GiB cannot be sent")]
    TooLarge {
        /// The encoded length.
        length: usize,
    },
    /// A [`SerializedHubMessage`](crate::SerializedHubMessage) built from bytes already
    /// framed for other protocols has no message to encode for this one.
    #[error("the message was received already encoded, and not for the '{protocol}' protocol")]
    NotAvailable {
        /// The protocol asked for.
        protocol: &'static str,
    },
}

/// A hub protocol: how hub messages are encoded on one connection.
///
/// Implementations are stateless (one value serves every connection) and never
/// panic on input: whatever bytes arrive, [`parse`](Self::parse) returns a message,
/// `None` or an error.
pub trait HubProtocol: Send + Sync + Debug + 'static {
    /// The name a client asks for in its handshake (`json`, `messagepack`).
    fn name(&self) -> &'static str;

    /// The highest version understood. A client asking for this version or a lower
    /// one is accepted.
    fn max_version(&self) -> u32;

    /// Whether the transport must carry text or bytes.
    fn transfer_format(&self) -> TransferFormat;

    /// How messages are delimited in the byte stream.
    fn framing(&self) -> Framing;

    /// Decodes one message, without its framing (as a [`FrameReader`] returns it).
    /// `Ok(None)` for a message type this protocol does not know: the hub protocol
    /// says to ignore those, so that future message types do not break old peers.
    fn parse(&self, message: &Bytes) -> Result<Option<HubMessage>, ProtocolError>;

    /// Decodes one message already known to be UTF-8 (a record of a WebSocket
    /// text frame, which the transport checked). The default copies it into bytes
    /// for [`parse`](Self::parse); a text protocol overrides it so as not to check
    /// the text a second time.
    fn parse_text(&self, message: &str) -> Result<Option<HubMessage>, ProtocolError> {
        self.parse(&Bytes::copy_from_slice(message.as_bytes()))
    }

    /// Appends `message`, framed, to `out`. On error nothing is appended.
    fn write(&self, message: &HubMessage, out: &mut BytesMut) -> Result<(), WriteError>;

    /// A reader for this protocol's framing, refusing messages longer than
    /// `max_message_size` bytes.
    fn reader(&self, max_message_size: usize) -> FrameReader {
        self.framing().reader(max_message_size)
    }

    /// Encodes `message`, framed, into bytes of its own.
    fn to_bytes(&self, message: &HubMessage) -> Result<Bytes, WriteError> {
        let mut out = BytesMut::new();
        self.write(message, &mut out)?;
        Ok(out.freeze())
    }
}

/// The most protocols one [`ProtocolSet`] holds: the size of a
/// [`SerializedHubMessage`](crate::SerializedHubMessage)'s cache.
pub const MAX_PROTOCOLS: usize = 4;

/// A protocol's index in its [`ProtocolSet`], below [`MAX_PROTOCOLS`]: where a
/// [`SerializedHubMessage`](crate::SerializedHubMessage) caches its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolId(u8);

impl ProtocolId {
    /// The id at `index`, if it is below [`MAX_PROTOCOLS`].
    pub fn new(index: usize) -> Option<ProtocolId> {
        (index < MAX_PROTOCOLS).then_some(ProtocolId(index as u8))
    }

    /// The index.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A protocol of a [`ProtocolSet`], with its id there. Cheap to clone; dereferences
/// to the protocol.
#[derive(Debug, Clone)]
pub struct RegisteredProtocol {
    id: ProtocolId,
    protocol: Arc<dyn HubProtocol>,
}

impl RegisteredProtocol {
    /// The protocol's id in its set.
    pub fn id(&self) -> ProtocolId {
        self.id
    }

    /// The protocol.
    pub fn protocol(&self) -> &Arc<dyn HubProtocol> {
        &self.protocol
    }
}

impl std::ops::Deref for RegisteredProtocol {
    type Target = dyn HubProtocol;

    fn deref(&self) -> &Self::Target {
        &*self.protocol
    }
}

/// A protocol could not be added to a [`ProtocolSet`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolSetError {
    /// The set already holds [`MAX_PROTOCOLS`] protocols.
    #[error("a hub offers at most {MAX_PROTOCOLS} protocols; '{0}' is one too many")]
    Full(&'static str),
    /// The set already holds a protocol of that name.
    #[error("the protocol '{0}' is offered twice")]
    Duplicate(&'static str),
}

/// Why a handshake request is refused. The texts are ASP.NET Core's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// No protocol of that name is offered.
    #[error("The protocol '{0}' is not supported.")]
    UnknownProtocol(String),
    /// The protocol is offered, but not in that version.
    #[error("The server does not support version {version} of the '{protocol}' protocol.")]
    UnsupportedVersion {
        /// The protocol's name, spelled as the client asked for it.
        protocol: String,
        /// The version asked for.
        version: u32,
    },
    /// The protocol needs a transfer format the connection's transport cannot
    /// carry (`messagepack` over Server-Sent Events).
    #[error(
        "Cannot use the '{protocol}' protocol on the current transport. The transport does not support '{format}' transfer format."
    )]
    UnsupportedTransferFormat {
        /// The protocol's name.
        protocol: &'static str,
        /// The transfer format it needs.
        format: TransferFormat,
    },
}

/// The protocols a hub offers, each with a stable [`ProtocolId`]. The default holds
/// `json` (id 0) and `messagepack` (id 1); removing one keeps the other's id.
#[derive(Debug, Clone)]
pub struct ProtocolSet {
    protocols: [Option<Arc<dyn HubProtocol>>; MAX_PROTOCOLS],
}

impl Default for ProtocolSet {
    fn default() -> Self {
        ProtocolSet::empty()
            .with(JsonHubProtocol)
            .with(MessagePackHubProtocol)
    }
}

impl ProtocolSet {
    /// A set offering no protocol.
    pub fn empty() -> Self {
        ProtocolSet {
            protocols: Default::default(),
        }
    }

    /// Adds `protocol` and returns the set.
    ///
    /// # Panics
    ///
    /// When the set is full or already has a protocol of that name: a
    /// configuration mistake. [`add`](Self::add) returns the error instead.
    #[must_use]
    pub fn with(mut self, protocol: impl HubProtocol) -> Self {
        if let Err(error) = self.add(Arc::new(protocol)) {
            panic!("{error}");
        }
        self
    }

    /// Adds `protocol` in the first free slot and returns it with its id.
    pub fn add(
        &mut self,
        protocol: Arc<dyn HubProtocol>,
    ) -> Result<RegisteredProtocol, ProtocolSetError> {
        if self.get(protocol.name()).is_some() {
            return Err(ProtocolSetError::Duplicate(protocol.name()));
        }
        let Some(index) = self.protocols.iter().position(Option::is_none) else {
            return Err(ProtocolSetError::Full(protocol.name()));
        };
        self.protocols[index] = Some(protocol.clone());
        Ok(RegisteredProtocol {
            id: ProtocolId(index as u8),
            protocol,
        })
    }

    /// Keeps only the protocols whose name `keep` accepts; their ids do not change.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        for slot in &mut self.protocols {
            if slot.as_ref().is_some_and(|p| !keep(p.name())) {
                *slot = None;
            }
        }
    }

    /// The protocol named `name` (compared without regard to ASCII case, as
    /// ASP.NET Core does).
    pub fn get(&self, name: &str) -> Option<RegisteredProtocol> {
        self.iter().find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// The protocol with id `id`.
    pub fn by_id(&self, id: ProtocolId) -> Option<RegisteredProtocol> {
        self.protocols[id.index()]
            .as_ref()
            .map(|protocol| RegisteredProtocol {
                id,
                protocol: protocol.clone(),
            })
    }

    /// The protocols offered, by id.
    pub fn iter(&self) -> impl Iterator<Item = RegisteredProtocol> + '_ {
        self.protocols
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                slot.as_ref().map(|protocol| RegisteredProtocol {
                    id: ProtocolId(index as u8),
                    protocol: protocol.clone(),
                })
            })
    }

    /// The names of the protocols offered.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.protocols.iter().flatten().map(|p| p.name())
    }

    /// How many protocols are offered.
    pub fn len(&self) -> usize {
        self.protocols.iter().flatten().count()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any protocol offered needs the given transfer format.
    pub fn needs(&self, format: TransferFormat) -> bool {
        self.protocols
            .iter()
            .flatten()
            .any(|p| p.transfer_format() == format)
    }

    /// The protocol a handshake asks for, or why it is refused. Any version up to
    /// the protocol's [`max_version`](HubProtocol::max_version) is accepted, 0
    /// included, as ASP.NET Core accepts it.
    pub fn select(
        &self,
        request: &HandshakeRequest,
    ) -> Result<RegisteredProtocol, HandshakeRefusal> {
        let protocol = self
            .get(&request.protocol)
            .ok_or_else(|| HandshakeRefusal::UnknownProtocol(request.protocol.clone()))?;
        if request.version > protocol.max_version() {
            return Err(HandshakeRefusal::UnsupportedVersion {
                protocol: request.protocol.clone(),
                version: request.version,
            });
        }
        Ok(protocol)
    }

    /// Like [`select`](Self::select), for a transport that carries only the
    /// transfer formats `supported`: a protocol needing another one is refused,
    /// as ASP.NET Core refuses `messagepack` over Server-Sent Events.
    pub fn select_for(
        &self,
        request: &HandshakeRequest,
        supported: &[TransferFormat],
    ) -> Result<RegisteredProtocol, HandshakeRefusal> {
        let protocol = self.select(request)?;
        if !supported.contains(&protocol.transfer_format()) {
            return Err(HandshakeRefusal::UnsupportedTransferFormat {
                protocol: protocol.name(),
                format: protocol.transfer_format(),
            });
        }
        Ok(protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(protocol: &str, version: u32) -> HandshakeRequest {
        HandshakeRequest {
            protocol: protocol.into(),
            version,
        }
    }

    #[test]
    fn the_default_set_offers_both_protocols() {
        let set = ProtocolSet::default();
        assert_eq!(set.names().collect::<Vec<_>>(), ["json", "messagepack"]);
        let json = set.select(&request("json", 1)).unwrap();
        assert_eq!(json.id().index(), 0);
        assert_eq!(json.transfer_format(), TransferFormat::Text);
        let msgpack = set.select(&request("messagepack", 2)).unwrap();
        assert_eq!(msgpack.id().index(), 1);
        assert_eq!(msgpack.transfer_format(), TransferFormat::Binary);
        assert_eq!(msgpack.framing(), Framing::LengthPrefixed);
        assert!(set.select(&request("json", 0)).is_ok());
        assert!(set.select(&request("MessagePack", 1)).is_ok());
    }

    #[test]
    fn refusals_read_as_asp_net_core_writes_them() {
        let set = ProtocolSet::default();
        assert_eq!(
            set.select(&request("xml", 1)).unwrap_err().to_string(),
            "The protocol 'xml' is not supported."
        );
        assert_eq!(
            set.select(&request("messagepack", 3))
                .unwrap_err()
                .to_string(),
            "The server does not support version 3 of the 'messagepack' protocol."
        );
        // The name as the client spelled it, as ASP.NET Core writes it.
        assert_eq!(
            set.select(&request("MessagePack", 3))
                .unwrap_err()
                .to_string(),
            "The server does not support version 3 of the 'MessagePack' protocol."
        );
        assert_eq!(
            set.select_for(&request("messagepack", 1), &[TransferFormat::Text])
                .unwrap_err()
                .to_string(),
            "Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format."
        );
        assert!(
            set.select_for(&request("json", 1), &[TransferFormat::Text])
                .is_ok()
        );
    }

    #[test]
    fn restricting_keeps_ids() {
        let mut set = ProtocolSet::default();
        set.retain(|name| name == "messagepack");
        assert_eq!(set.len(), 1);
        assert!(set.get("json").is_none());
        assert_eq!(set.get("messagepack").unwrap().id().index(), 1);
        assert!(!set.needs(TransferFormat::Text));
        assert!(set.needs(TransferFormat::Binary));
        // The free slot is reused.
        assert_eq!(set.add(Arc::new(JsonHubProtocol)).unwrap().id().index(), 0);
    }

    #[test]
    fn duplicates_and_overflow_are_refused() {
        let mut set = ProtocolSet::default();
        assert_eq!(
            set.add(Arc::new(JsonHubProtocol)).unwrap_err(),
            ProtocolSetError::Duplicate("json")
        );
        #[derive(Debug)]
        struct Custom(&'static str);
        impl HubProtocol for Custom {
            fn name(&self) -> &'static str {
                self.0
            }
            fn max_version(&self) -> u32 {
                1
            }
            fn transfer_format(&self) -> TransferFormat {
                TransferFormat::Text
            }
            fn framing(&self) -> Framing {
                Framing::Records
            }
            fn parse(&self, _: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
                Ok(None)
            }
            fn write(&self, _: &HubMessage, _: &mut BytesMut) -> Result<(), WriteError> {
                Ok(())
            }
        }
        set.add(Arc::new(Custom("a"))).unwrap();
        set.add(Arc::new(Custom("b"))).unwrap();
        assert_eq!(
            set.add(Arc::new(Custom("c"))).unwrap_err(),
            ProtocolSetError::Full("c")
        );
        assert_eq!(set.by_id(ProtocolId::new(3).unwrap()).unwrap().name(), "b");
        assert!(ProtocolId::new(MAX_PROTOCOLS).is_none());
    }
}
