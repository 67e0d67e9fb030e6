//! Raw (persistent) connections from Rust: what the handler sees of how a
//! connection started, over WebSockets and long polling. (The official
//! client's HttpConnection against the conformance example's `/echo` is in
//! tests/js/persistent.test.mjs.)

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use signal::persistent::{Connection, Message, PersistentConnection};
use tokio_tungstenite::tungstenite;

/// Tells the client what its connection's request carried, then echoes.
async fn describe_then_echo(mut connection: Connection) {
    let request = connection.request();
    let description = format!(
        "{} {} {:?}",
        request.uri.path(),
        request.uri.query().unwrap_or(""),
        request.headers.get("x-team").map(|v| v.to_str().unwrap()),
    );
    let sender = connection.sender();
    sender
        .send(Message::Text(description.into()))
        .await
        .unwrap();
    while let Some(message) = connection.next().await {
        if sender.send(message).await.is_err() {
            break;
        }
    }
}

async fn serve_raw() -> std::net::SocketAddr {
    let endpoint = PersistentConnection::new(describe_then_echo);
    serve_router(axum::Router::new().nest("/hub", endpoint.router())).await
}

#[tokio::test]
async fn a_websocket_connection_sees_its_request_and_gets_its_messages_back() {
    let addr = serve_raw().await;
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{addr}/hub?room=blue"
    ))
    .unwrap();
    request
        .headers_mut()
        .insert("x-team", "red".parse().unwrap());
    let (mut socket, _) = within("the upgrade", tokio_tungstenite::connect_async(request))
        .await
        .unwrap();
    // Without negotiate the request is the upgrade itself, query and headers.
    assert_eq!(
        within("a message", socket.next()).await.unwrap().unwrap(),
        tungstenite::Message::text("/ room=blue Some(\"red\")")
    );
    socket
        .send(tungstenite::Message::binary(vec![0u8, 1, 2]))
        .await
        .unwrap();
    assert_eq!(
        within("a message", socket.next()).await.unwrap().unwrap(),
        tungstenite::Message::binary(vec![0u8, 1, 2])
    );
}

#[tokio::test]
async fn a_long_polling_connection_sees_its_first_poll() {
    let addr = serve_raw().await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, addr, false).await.token;
    let first = within(
        "the first poll",
        client
            .get(format!("http://{addr}/hub?id={token}&room=green"))
            .header("x-team", "blue")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(first.status(), 200);
    let (status, body) = poll(&client, addr, &token).await;
    assert_eq!(
        (status, body),
        (200, format!("/ id={token}&room=green Some(\"blue\")"))
    );
}
