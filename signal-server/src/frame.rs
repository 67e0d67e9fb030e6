//! Encoded messages on their way to a transport.
//!
//! A [`Frame`] is what a send queues: a raw connection's message, or a hub message
//! that every recipient encodes for its own protocol, each protocol at most once
//! ([`SerializedHubMessage`]). A connection turns it into an [`Outbound`], the
//! frame as its transport writes it, right before writing; the bytes stay shared.

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use signal_core::{
    MAX_PROTOCOLS, ProtocolId, RegisteredProtocol, SerializedHubMessage, TransferFormat, WriteError,
};
use tokio::sync::OwnedSemaphorePermit;

/// One message on its way to one or many connections, shared (not copied) by
/// every connection it goes to.
///
/// A pointer wide, so that each connection's outgoing queue stays small: an
/// idle connection's queue preallocates room for a block of frames.
#[derive(Debug, Clone)]
pub(crate) struct Frame(Arc<Encoded>);

#[derive(Debug)]
struct Encoded {
    body: Body,
    /// A server stream's window slot, freed once the frame has been written
    /// (and dropped): it bounds how far a producer runs ahead of its client.
    _slot: Option<OwnedSemaphorePermit>,
}

// Boxing the hub variant would cost every hub message a second allocation; a raw
// message's frame carries the unused room instead (still one allocation).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Body {
    /// A raw connection's text message, or a hub's handshake answer.
    Text(Utf8Bytes),
    /// A raw connection's binary message, or a hub's handshake answer to a
    /// binary protocol.
    Binary(Bytes),
    /// A hub message, encoded per protocol on first use.
    Hub(HubBody),
    /// A hub message for one connection, already encoded in its protocol (a
    /// Completion, a stream item, a send to one client): no caches to carry.
    Framed {
        protocol: ProtocolId,
        payload: Framed,
        sequenced: bool,
    },
}

#[derive(Debug)]
enum Framed {
    Text(Utf8Bytes),
    Binary(Bytes),
}

#[derive(Debug)]
struct HubBody {
    message: SerializedHubMessage,
    /// Each text protocol's encoding as checked UTF-8, which WebSocket text
    /// frames need: checked once per protocol, not once per recipient.
    text: [OnceLock<Utf8Bytes>; MAX_PROTOCOLS],
}

/// A frame could not be written on a connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EncodeError {
    /// The connection's protocol could not encode the message.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A text protocol wrote bytes that are not UTF-8.
    #[error("the '{0}' protocol is a text protocol, but it wrote bytes that are not UTF-8")]
    NotUtf8(&'static str),
    /// A hub message reached a connection that speaks no hub protocol.
    #[error("a hub message cannot be sent on a raw connection")]
    NoProtocol,
    /// A message encoded for one connection reached one of another protocol.
    #[error("a message encoded for another protocol cannot be sent on a '{0}' connection")]
    OtherProtocol(&'static str),
}

impl Frame {
    /// A text message of a raw connection, or a handshake answer.
    pub(crate) fn text(text: Utf8Bytes) -> Frame {
        Frame::new(Body::Text(text), None)
    }

    /// A binary message of a raw connection, or a handshake answer.
    pub(crate) fn binary(bytes: Bytes) -> Frame {
        Frame::new(Body::Binary(bytes), None)
    }

    /// A hub message, encoded for each recipient's protocol when it is written,
    /// once per protocol however many connections receive it.
    pub(crate) fn hub(message: impl Into<SerializedHubMessage>) -> Frame {
        Frame::new(Body::Hub(HubBody::new(message.into())), None)
    }

    /// A hub message for one connection, `framed` already in its `protocol`;
    /// a stream item holds its window `slot` until it is written.
    pub(crate) fn framed(
        protocol: &RegisteredProtocol,
        framed: Bytes,
        sequenced: bool,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Frame {
        let payload = match protocol.transfer_format() {
            TransferFormat::Binary => Framed::Binary(framed),
            TransferFormat::Text => match Utf8Bytes::try_from(framed.clone()) {
                Ok(text) => Framed::Text(text),
                // Left to `outbound`, which reports the protocol's fault.
                Err(_) => {
                    let message =
                        SerializedHubMessage::from_framed(protocol.id(), framed, sequenced);
                    return Frame::new(Body::Hub(HubBody::new(message)), slot);
                }
            },
        };
        let body = Body::Framed {
            protocol: protocol.id(),
            payload,
            sequenced,
        };
        Frame::new(body, slot)
    }

    fn new(body: Body, slot: Option<OwnedSemaphorePermit>) -> Frame {
        Frame(Arc::new(Encoded { body, _slot: slot }))
    }

    /// Whether the frame counts in stateful reconnect's sequence (hub messages
    /// of types 1–5).
    pub(crate) fn is_sequenced(&self) -> bool {
        match &self.0.body {
            Body::Hub(hub) => hub.message.is_sequenced(),
            Body::Framed { sequenced, .. } => *sequenced,
            Body::Text(_) | Body::Binary(_) => false,
        }
    }

    /// The hub message, when the frame is one to be encoded per protocol (the
    /// 2.x layer reads it when a backplane gave it only other protocols' bytes).
    pub(crate) fn serialized(&self) -> Option<&SerializedHubMessage> {
        match &self.0.body {
            Body::Hub(hub) => Some(&hub.message),
            _ => None,
        }
    }

    /// The frame as a connection speaking `protocol` writes it (`None` for a
    /// raw connection): a hub message is encoded now unless it already was for
    /// that protocol. Raw frames go out as they are.
    pub(crate) fn outbound(
        self,
        protocol: Option<&RegisteredProtocol>,
    ) -> Result<Outbound, EncodeError> {
        let form = match &self.0.body {
            Body::Text(_) | Body::Binary(_) => Form::Raw,
            Body::Framed { protocol: id, .. } => {
                let protocol = protocol.ok_or(EncodeError::NoProtocol)?;
                if protocol.id() != *id {
                    return Err(EncodeError::OtherProtocol(protocol.name()));
                }
                Form::Raw
            }
            Body::Hub(hub) => {
                let protocol = protocol.ok_or(EncodeError::NoProtocol)?;
                let id = protocol.id();
                // Every recipient but the first of each protocol finds its
                // encoding here and only reads the caches.
                match protocol.transfer_format() {
                    TransferFormat::Binary => {
                        if hub.message.cached(id).is_none() {
                            hub.message.framed(protocol)?;
                        }
                        Form::Binary(id)
                    }
                    TransferFormat::Text => {
                        let slot = &hub.text[id.index()];
                        if slot.get().is_none() {
                            let text = Utf8Bytes::try_from(hub.message.framed(protocol)?)
                                .map_err(|_| EncodeError::NotUtf8(protocol.name()))?;
                            // A racing recipient stores the same text; either wins.
                            let _ = slot.set(text);
                        }
                        Form::Text(id)
                    }
                }
            }
        };
        Ok(Outbound { frame: self, form })
    }
}

impl HubBody {
    fn new(message: SerializedHubMessage) -> Self {
        HubBody {
            message,
            text: Default::default(),
        }
    }
}

/// A frame as one connection writes it: its bytes in that connection's
/// protocol, text or binary. Made by [`Frame::outbound`], which encodes what is
/// needed; reading it never encodes. Two pointers wide, and it keeps the frame
/// (and its stream window slot) alive until the transport is done with it.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    frame: Frame,
    form: Form,
}

#[derive(Debug, Clone, Copy)]
enum Form {
    Raw,
    Text(ProtocolId),
    Binary(ProtocolId),
}

impl Outbound {
    /// A text message that goes to one connection as it is (a handshake answer).
    pub(crate) fn text_message(text: Utf8Bytes) -> Outbound {
        Outbound {
            frame: Frame::text(text),
            form: Form::Raw,
        }
    }

    /// A binary message that goes to one connection as it is.
    pub(crate) fn binary_message(bytes: Bytes) -> Outbound {
        Outbound {
            frame: Frame::binary(bytes),
            form: Form::Raw,
        }
    }

    /// The text, when the frame goes out as text. [`Frame::outbound`] stored it
    /// before making this, so it is there for a text form.
    fn encoded_text(&self) -> Option<&Utf8Bytes> {
        match (&self.frame.0.body, self.form) {
            (Body::Text(text), _)
            | (
                Body::Framed {
                    payload: Framed::Text(text),
                    ..
                },
                _,
            ) => Some(text),
            (Body::Hub(hub), Form::Text(id)) => hub.text[id.index()].get(),
            _ => None,
        }
    }

    /// The bytes, when the frame goes out as bytes (stored, like the text).
    fn encoded_bytes(&self) -> Option<&Bytes> {
        match (&self.frame.0.body, self.form) {
            (Body::Binary(bytes), _)
            | (
                Body::Framed {
                    payload: Framed::Binary(bytes),
                    ..
                },
                _,
            ) => Some(bytes),
            (Body::Hub(hub), Form::Binary(id)) => hub.message.cached(id),
            _ => None,
        }
    }

    /// The text, shared, when the frame goes out as text.
    pub(crate) fn text(&self) -> Option<Utf8Bytes> {
        self.encoded_text().cloned()
    }

    /// Whether the frame goes out as bytes rather than text.
    pub(crate) fn is_binary(&self) -> bool {
        self.encoded_text().is_none()
    }

    /// The encoded bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self.encoded_text() {
            Some(text) => text.as_str().as_bytes(),
            None => self.encoded_bytes().map_or(&[], |bytes| bytes),
        }
    }

    /// The encoded bytes, shared.
    pub(crate) fn bytes(&self) -> Bytes {
        match self.encoded_text() {
            Some(text) => Bytes::from(text.clone()),
            None => self.encoded_bytes().cloned().unwrap_or_default(),
        }
    }

    /// How many bytes go out.
    pub(crate) fn len(&self) -> usize {
        self.as_bytes().len()
    }
}

#[cfg(test)]
mod tests {
    use signal_core::{HubMessage, ProtocolSet};

    use super::*;

    #[test]
    fn frames_stay_small() {
        assert_eq!(std::mem::size_of::<Frame>(), std::mem::size_of::<usize>());
        assert!(std::mem::size_of::<Outbound>() <= 2 * std::mem::size_of::<usize>());
    }

    #[test]
    fn each_protocol_gets_its_encoding_shared_by_its_recipients() {
        let set = ProtocolSet::default();
        let json = set.get("json").unwrap();
        let msgpack = set.get("messagepack").unwrap();
        let frame = Frame::hub(HubMessage::Ping);
        let a = frame.clone().outbound(Some(&json)).unwrap();
        let b = frame.clone().outbound(Some(&json)).unwrap();
        assert_eq!(a.text().unwrap().as_str(), "{\"type\":6}\u{1e}");
        assert_eq!(a.as_bytes().as_ptr(), b.as_bytes().as_ptr());
        assert!(!a.is_binary());
        let c = frame.clone().outbound(Some(&msgpack)).unwrap();
        assert!(c.is_binary());
        assert!(c.text().is_none());
        assert_eq!(c.as_bytes(), b"\x02\x91\x06");
        assert_eq!(c.len(), 3);
        assert!(matches!(frame.outbound(None), Err(EncodeError::NoProtocol)));
    }

    #[test]
    fn raw_frames_go_out_as_they_are() {
        let text = Frame::text(Utf8Bytes::from_static("hi"));
        let out = text.outbound(None).unwrap();
        assert_eq!(out.text().unwrap().as_str(), "hi");
        let binary = Frame::binary(Bytes::from_static(b"\x00\x01"));
        let out = binary
            .clone()
            .outbound(ProtocolSet::default().get("json").as_ref())
            .unwrap();
        assert!(out.is_binary());
        assert_eq!(out.bytes(), &b"\x00\x01"[..]);
        assert!(!binary.is_sequenced());
    }
}
