//! The handshake: the client's first record names a hub protocol and version;
//! the server picks the protocol or refuses, in the transport's format.

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use signal_core::{
    HandshakeRequest, HandshakeResponse, ProtocolSet, RecordError, RecordReader,
    RegisteredProtocol, TransferFormat, TransportType,
};

use crate::connection::{Duplex, Event, TransportClosed};
use crate::frame::Outbound;

/// A handshake the server accepted.
pub(super) struct Accepted {
    pub(super) protocol: RegisteredProtocol,
    pub(super) version: u32,
    /// The bytes after the handshake record: the protocol's first messages.
    pub(super) rest: Bytes,
}

/// Reads until the handshake record and picks the protocol it asks for among
/// `protocols`, refusing one that `transport` cannot carry. `Err(Some(text))`
/// refuses the handshake with `text`; `Err(None)` means the client left first.
pub(super) async fn read_handshake(
    duplex: &mut Duplex,
    protocols: &ProtocolSet,
    transport: TransportType,
    limit: usize,
) -> Result<Accepted, Option<String>> {
    // The handshake is a JSON record whatever protocol it asks for.
    let mut reader = RecordReader::new(limit);
    loop {
        let chunk = match duplex.recv().await.ok_or(None)? {
            Event::Data(message) => message.into_bytes(),
            Event::Oversized => return Err(Some(RecordError::TooLarge { limit }.to_string())),
            // Before the handshake there is nothing to resume.
            Event::Lost | Event::Reattached => return Err(None),
        };
        let Some((record, rest)) = reader
            .push_until_record(chunk)
            .map_err(|e| Some(e.to_string()))?
        else {
            continue;
        };
        let request = HandshakeRequest::parse(&record).map_err(|e| Some(e.to_string()))?;
        // Version 0 is accepted as ASP.NET Core accepts it: some third-party
        // clients send the negotiate version there.
        let protocol = protocols
            .select_for(&request, transport.transfer_formats())
            .map_err(|refusal| Some(refusal.to_string()))?;
        return Ok(Accepted {
            protocol,
            version: request.version,
            rest,
        });
    }
}

/// The handshake answer, always JSON text, in a frame of `format`.
pub(super) fn handshake_answer(response: &HandshakeResponse, format: TransferFormat) -> Outbound {
    let record = response.to_record();
    match (format, String::from_utf8(record)) {
        (TransferFormat::Text, Ok(text)) => Outbound::text_message(Utf8Bytes::from(text)),
        (_, Ok(text)) => Outbound::binary_message(Bytes::from(text)),
        (_, Err(error)) => Outbound::binary_message(Bytes::from(error.into_bytes())),
    }
}

/// A write before the link exists (the handshake answer), bounded like the
/// handshake itself.
pub(super) async fn write_handshake(
    duplex: &mut Duplex,
    answer: Outbound,
    timeout: std::time::Duration,
) -> Result<(), TransportClosed> {
    let write = async {
        duplex.feed(answer).await?;
        duplex.flush().await
    };
    tokio::time::timeout(timeout, write)
        .await
        .unwrap_or(Err(TransportClosed))
}
