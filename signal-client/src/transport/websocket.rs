//! WebSockets: one socket both ways. JSON rides Text frames, MessagePack Binary
//! frames; the handshake, always JSON, goes as Text.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use signal_core::{TransferFormat, TransportType};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Endpoint, INCOMING_CAPACITY, Incoming, Transport, error_chain};

/// Opens the socket at `endpoint`'s URL (`http` → `ws`, `https` → `wss`).
pub(crate) async fn connect(endpoint: &Endpoint) -> Result<Transport, String> {
    let mut url = endpoint.url.clone();
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => return Err(format!("the URL scheme '{other}' cannot carry a WebSocket")),
    };
    url.set_scheme(scheme)
        .map_err(|()| format!("the URL '{url}' cannot take the scheme '{scheme}'"))?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .extend(endpoint.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    let (socket, _) =
        tokio::time::timeout(endpoint.timeout, tokio_tungstenite::connect_async(request))
            .await
            .map_err(|_| format!("the upgrade was not answered within {:?}", endpoint.timeout))?
            .map_err(|e| error_chain(&e))?;
    let (mut sink, mut stream) = socket.split();
    let (in_tx, in_rx) = mpsc::channel::<Incoming>(INCOMING_CAPACITY);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<(Bytes, TransferFormat)>();

    let writer_errors = in_tx.clone();
    let writer = tokio::spawn(async move {
        while let Some((bytes, format)) = out_rx.recv().await {
            let message = match format {
                TransferFormat::Text => match Utf8Bytes::try_from(bytes) {
                    Ok(text) => Message::Text(text),
                    Err(_) => {
                        tracing::error!("a text message is not UTF-8; it was not sent");
                        continue;
                    }
                },
                TransferFormat::Binary => Message::Binary(bytes),
            };
            if let Err(error) = sink.send(message).await {
                let _ = writer_errors
                    .send(Err(format!("a send failed: {}", error_chain(&error))))
                    .await;
                return;
            }
        }
        // Every handle dropped the queue: the connection is closing.
        let _ = sink.send(Message::Close(None)).await;
        let _ = sink.close().await;
    });

    let reader = tokio::spawn(async move {
        while let Some(message) = stream.next().await {
            let chunk = match message {
                Ok(Message::Text(text)) => Bytes::from(text),
                Ok(Message::Binary(bytes)) => bytes,
                Ok(Message::Close(frame)) => {
                    if let Some(frame) = frame
                        && !matches!(frame.code, CloseCode::Normal | CloseCode::Away)
                    {
                        let _ = in_tx
                            .send(Err(format!(
                                "the server closed the WebSocket with code {} ({})",
                                u16::from(frame.code),
                                frame.reason
                            )))
                            .await;
                    }
                    return;
                }
                Ok(_) => continue,
                Err(error) => {
                    let _ = in_tx.send(Err(error_chain(&error))).await;
                    return;
                }
            };
            if in_tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
    });
    Ok(Transport::new(
        TransportType::WebSockets,
        out_tx,
        in_rx,
        writer,
        vec![reader],
    ))
}
