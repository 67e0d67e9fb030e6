//! Encoded messages on their way to a transport.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use signal_core::{HubMessage, JsonHubProtocol};
use tokio::sync::OwnedSemaphorePermit;

/// One encoded record, shared (not copied) by every connection it goes to.
///
/// A pointer wide, so that each connection's outgoing queue stays small: an
/// idle connection's queue preallocates room for a block of frames.
#[derive(Debug, Clone)]
pub(crate) struct Frame(Arc<Encoded>);

#[derive(Debug)]
struct Encoded {
    payload: Payload,
    /// Whether the message counts in stateful reconnect's sequence (types 1–5).
    sequenced: bool,
    /// A server stream's window slot, freed once the frame has been handed to
    /// the transport (and dropped): it bounds how far a producer runs ahead.
    _slot: Option<OwnedSemaphorePermit>,
}

/// Text goes out as WebSocket text frames, binary as binary frames.
#[derive(Debug)]
enum Payload {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Frame {
    /// A text message of a raw connection.
    pub(crate) fn text(text: Utf8Bytes) -> Frame {
        Frame(Arc::new(Encoded {
            payload: Payload::Text(text),
            sequenced: false,
            _slot: None,
        }))
    }

    /// A binary message of a raw connection.
    pub(crate) fn binary(bytes: Bytes) -> Frame {
        Frame(Arc::new(Encoded {
            payload: Payload::Binary(bytes),
            sequenced: false,
            _slot: None,
        }))
    }

    /// Encodes a hub message once, however many connections receive it.
    pub(crate) fn encode(message: &HubMessage) -> Frame {
        Frame::new(
            JsonHubProtocol.to_record(message),
            (1..=5).contains(&message.message_type()),
            None,
        )
    }

    /// A server stream's item, holding `slot` until it is written.
    pub(crate) fn stream_item(message: &HubMessage, slot: OwnedSemaphorePermit) -> Frame {
        Frame::new(JsonHubProtocol.to_record(message), true, Some(slot))
    }

    /// A record outside the hub protocol's sequence (the handshake answer).
    pub(crate) fn unsequenced(record: Vec<u8>) -> Frame {
        Frame::new(record, false, None)
    }

    fn new(record: Vec<u8>, sequenced: bool, slot: Option<OwnedSemaphorePermit>) -> Frame {
        Frame(Arc::new(Encoded {
            payload: Payload::Text(
                String::from_utf8(record)
                    .expect("JSON records are UTF-8")
                    .into(),
            ),
            sequenced,
            _slot: slot,
        }))
    }

    /// The encoded bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0.payload {
            Payload::Text(text) => text.as_str().as_bytes(),
            Payload::Binary(bytes) => bytes,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_bytes().len()
    }

    pub(crate) fn is_sequenced(&self) -> bool {
        self.0.sequenced
    }

    /// The text, shared, when the frame is text.
    pub(crate) fn text_payload(&self) -> Option<Utf8Bytes> {
        match &self.0.payload {
            Payload::Text(text) => Some(text.clone()),
            Payload::Binary(_) => None,
        }
    }

    /// The bytes, shared.
    pub(crate) fn bytes(&self) -> Bytes {
        match &self.0.payload {
            Payload::Text(text) => Bytes::from(text.clone()),
            Payload::Binary(bytes) => bytes.clone(),
        }
    }
}
