//! The socketioxide peer: socket.io in Rust, with its defaults, behind axum.
//!
//! `echo` answers with an ack carrying the same data; `broadcast` emits `message`
//! with the data to every other socket. Run: `PORT=5000 socketioxide-server`;
//! prints `listening on http://127.0.0.1:PORT`.

use axum::serve::ListenerExt;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", async |socket: SocketRef| {
        socket.on("echo", async |Data::<Value>(data), ack: AckSender| {
            let _ = ack.send(&data);
        });
        socket.on(
            "broadcast",
            async |socket: SocketRef, Data::<Value>(data)| {
                let _ = socket.broadcast().emit("message", &data).await;
            },
        );
    });
    let app = axum::Router::new()
        .route("/", axum::routing::get(async || "socketioxide peer"))
        .layer(layer);
    let port = std::env::var("PORT").unwrap_or_else(|_| "5000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
