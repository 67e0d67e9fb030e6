//! Encoded messages on their way to a transport.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use signal_core::{HubMessage, JsonHubProtocol};
use tokio::sync::OwnedSemaphorePermit;

/// One encoded record, shared (not copied) by every connection it goes to.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    payload: Utf8Bytes,
    /// Whether the message counts in stateful reconnect's sequence (types 1–5).
    sequenced: bool,
    /// A server stream's window slot, freed once the frame has been handed to
    /// the transport: it bounds how far a producer runs ahead of its client.
    _slot: Option<Arc<OwnedSemaphorePermit>>,
}

impl Frame {
    /// Encodes a hub message once, however many connections receive it.
    pub(crate) fn encode(message: &HubMessage) -> Frame {
        let record = JsonHubProtocol.to_record(message);
        Frame {
            payload: String::from_utf8(record)
                .expect("JSON records are UTF-8")
                .into(),
            sequenced: (1..=5).contains(&message.message_type()),
            _slot: None,
        }
    }

    /// The frame, holding `slot` until it is written (and dropped).
    pub(crate) fn holding(mut self, slot: OwnedSemaphorePermit) -> Frame {
        self._slot = Some(Arc::new(slot));
        self
    }

    /// A record outside the hub protocol's sequence (the handshake answer).
    pub(crate) fn unsequenced(record: Vec<u8>) -> Frame {
        Frame {
            payload: String::from_utf8(record)
                .expect("JSON records are UTF-8")
                .into(),
            sequenced: false,
            _slot: None,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        self.payload.as_str()
    }

    pub(crate) fn len(&self) -> usize {
        self.payload.len()
    }

    pub(crate) fn is_sequenced(&self) -> bool {
        self.sequenced
    }

    pub(crate) fn payload(&self) -> Utf8Bytes {
        self.payload.clone()
    }
}
