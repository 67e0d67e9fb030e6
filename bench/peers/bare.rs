//! The floor: a bare tokio-tungstenite server with no protocol on top.
//!
//! A text frame starting with `e` is sent back as it is (echo); one starting with
//! `b` is sent, as it is, to every other connection (broadcast). Buffers are the
//! ones signal's WebSocket transport uses (4 KiB read, writes at once), and a
//! broadcast shares one buffer among the recipients, so what is measured is the
//! cost of tokio + tungstenite alone.
//!
//! Run: `PORT=5000 bare-server`; prints `listening on http://127.0.0.1:PORT`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Registry = Mutex<HashMap<u64, mpsc::UnboundedSender<Utf8Bytes>>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "5000".into());
    let listener = TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let registry: Arc<Registry> = Arc::default();
    let ids = AtomicU64::new(0);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let id = ids.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(stream, id, registry.clone()));
            }
            // Out of descriptors, say: wait rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve(stream: TcpStream, id: u64, registry: Arc<Registry>) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    registry.lock().expect("registry").insert(id, tx);
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if text.as_str().starts_with('b') {
                        let registry = registry.lock().expect("registry");
                        for (other, tx) in registry.iter() {
                            if *other != id {
                                let _ = tx.send(text.clone());
                            }
                        }
                    } else if ws.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            Some(text) = rx.recv() => {
                // Whatever else is queued goes out in the same write.
                let mut result = ws.feed(Message::Text(text)).await;
                while let (Ok(()), Ok(more)) = (&result, rx.try_recv()) {
                    result = ws.feed(Message::Text(more)).await;
                }
                if result.is_err() || ws.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    registry.lock().expect("registry").remove(&id);
}
