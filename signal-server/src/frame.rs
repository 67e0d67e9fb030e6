//! Encoded messages on their way to a transport.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
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
    payload: Utf8Bytes,
    /// Whether the message counts in stateful reconnect's sequence (types 1–5).
    sequenced: bool,
    /// A server stream's window slot, freed once the frame has been handed to
    /// the transport (and dropped): it bounds how far a producer runs ahead.
    _slot: Option<OwnedSemaphorePermit>,
}

impl Frame {
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
            payload: String::from_utf8(record)
                .expect("JSON records are UTF-8")
                .into(),
            sequenced,
            _slot: slot,
        }))
    }

    pub(crate) fn as_str(&self) -> &str {
        self.0.payload.as_str()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.payload.len()
    }

    pub(crate) fn is_sequenced(&self) -> bool {
        self.0.sequenced
    }

    pub(crate) fn payload(&self) -> Utf8Bytes {
        self.0.payload.clone()
    }
}
