//! Server-Sent Events: an event stream down, POSTs up. Text only (JSON).

use bytes::{Bytes, BytesMut};
use signal_core::{TransferFormat, TransportType};
use tokio::sync::mpsc;

use super::{Endpoint, INCOMING_CAPACITY, Incoming, Transport, error_chain, post_loop};

/// Opens the event stream at `endpoint`'s URL.
pub(crate) async fn connect(endpoint: &Endpoint) -> Result<Transport, String> {
    let request = endpoint
        .http
        .get(endpoint.url.clone())
        .headers(endpoint.headers.clone())
        .header(http::header::ACCEPT, "text/event-stream");
    let mut response = tokio::time::timeout(endpoint.timeout, request.send())
        .await
        .map_err(|_| {
            format!(
                "the event stream was not answered within {:?}",
                endpoint.timeout
            )
        })?
        .map_err(|e| error_chain(&e))?;
    if !response.status().is_success() {
        return Err(format!(
            "the event stream was answered with {}",
            response.status()
        ));
    }
    let (in_tx, in_rx) = mpsc::channel::<Incoming>(INCOMING_CAPACITY);
    let (out_tx, out_rx) = mpsc::unbounded_channel::<(Bytes, TransferFormat)>();
    let writer = tokio::spawn(post_loop(endpoint.clone(), out_rx, in_tx.clone()));
    let reader = tokio::spawn(async move {
        let mut events = EventReader::default();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    for data in events.push(&chunk) {
                        if in_tx.send(Ok(data)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    let _ = in_tx.send(Err(error_chain(&error))).await;
                    return;
                }
            }
        }
    });
    Ok(Transport::new(
        TransportType::ServerSentEvents,
        out_tx,
        in_rx,
        writer,
        vec![reader],
    ))
}

/// Cuts an event stream into the data of its events: `data:` lines joined by
/// `\n`, an event ending at a blank line; comments and other fields ignored.
#[derive(Default)]
pub(crate) struct EventReader {
    line: BytesMut,
    data: Option<BytesMut>,
}

impl EventReader {
    /// Adds a chunk and returns the data of every event it completes.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        let mut events = Vec::new();
        for &byte in chunk {
            if byte != b'\n' {
                self.line.extend_from_slice(&[byte]);
                continue;
            }
            let mut line = self.line.split();
            if line.last() == Some(&b'\r') {
                line.truncate(line.len() - 1);
            }
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    events.push(data.freeze());
                }
            } else if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                match &mut self.data {
                    Some(data) => {
                        data.extend_from_slice(b"\n");
                        data.extend_from_slice(value);
                    }
                    None => self.data = Some(BytesMut::from(value)),
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::EventReader;

    #[test]
    fn events_are_cut_at_blank_lines_across_chunks() {
        let mut reader = EventReader::default();
        assert!(
            reader.push(b":\r\n\r\n").is_empty(),
            "a comment is no event"
        );
        assert!(reader.push(b"data: {\"type\":6}\x1e\r").is_empty());
        assert_eq!(reader.push(b"\n\r\n"), vec![&b"{\"type\":6}\x1e"[..]]);
        assert_eq!(
            reader.push(b"data: a\ndata: b\n\ndata:c\n\n"),
            vec![&b"a\nb"[..], &b"c"[..]]
        );
    }
}
