//! Server behaviour the official clients cannot show in a test of reasonable
//! length: keep-alive pings, timeouts, and the raw shape of the HTTP transports.
//! Each test runs a real server on a loopback port with short timeouts and talks
//! to it over real WebSockets and HTTP.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use signal::{BoxFuture, Call, Context, Hub, HubDispatch, HubOptions, InvocationError, Output};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// A hub that reports its lifecycle events.
struct Probe {
    events: Mutex<mpsc::UnboundedSender<String>>,
}

impl HubDispatch for Probe {
    type Client = ();

    fn descriptor(&self) -> signal::protocol::HubDescriptor {
        signal::protocol::descriptor::DescriptorBuilder::new().finish("Probe", "", vec![], None)
    }

    fn dispatch<'a>(
        &'a self,
        _cx: &'a Context,
        call: Call,
    ) -> BoxFuture<'a, Result<Output, InvocationError>> {
        Box::pin(async move {
            match call.target.as_str() {
                "echo" => {
                    let text: String = call
                        .arguments
                        .get(0, "text")
                        .map_err(|e| InvocationError::arguments("echo", e))?;
                    Output::value("echo", &text)
                }
                _ => Err(InvocationError::UnknownMethod(call.target.clone())),
            }
        })
    }

    fn on_connected<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, ()> {
        let event = format!("connected {}", cx.transport());
        Box::pin(async move {
            let _ = self.events.lock().unwrap().send(event);
        })
    }

    fn on_disconnected<'a>(
        &'a self,
        _cx: &'a Context,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        let event = format!("disconnected {}", error.unwrap_or(""));
        Box::pin(async move {
            let _ = self.events.lock().unwrap().send(event);
        })
    }
}

async fn serve(options: HubOptions) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let hub = Hub::new(Probe {
        events: Mutex::new(tx),
    })
    .with_options(options);
    let app = axum::Router::new().nest("/hub", hub.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rx)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_socket(addr: SocketAddr) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/hub"))
        .await
        .unwrap();
    socket
}

async fn handshake(socket: &mut Socket) {
    socket
        .send(Message::text("{\"protocol\":\"json\",\"version\":1}\u{1e}"))
        .await
        .unwrap();
    assert_eq!(next_text(socket).await.as_deref(), Some("{}\u{1e}"));
}

/// The next text frame, or `None` when the socket closes first.
async fn next_text(socket: &mut Socket) -> Option<String> {
    let deadline = Duration::from_secs(5);
    loop {
        match tokio::time::timeout(deadline, socket.next())
            .await
            .expect("the server answered in time")
        {
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("the hub reported in time")
        .expect("the hub is alive")
}

fn options(f: impl FnOnce(&mut HubOptions)) -> HubOptions {
    let mut options = HubOptions::default();
    f(&mut options);
    options
}

#[tokio::test]
async fn idle_connections_get_pings() {
    let (addr, _events) = serve(options(|o| {
        o.keep_alive_interval = Duration::from_millis(100)
    }))
    .await;
    let mut socket = open_socket(addr).await;
    handshake(&mut socket).await;
    assert_eq!(
        next_text(&mut socket).await.as_deref(),
        Some("{\"type\":6}\u{1e}")
    );
    assert_eq!(
        next_text(&mut socket).await.as_deref(),
        Some("{\"type\":6}\u{1e}")
    );
}

#[tokio::test]
async fn a_silent_client_is_closed_with_an_error() {
    let (addr, mut events) = serve(options(|o| {
        o.keep_alive_interval = Duration::from_secs(60);
        o.client_timeout = Duration::from_millis(300);
    }))
    .await;
    let mut socket = open_socket(addr).await;
    handshake(&mut socket).await;
    assert_eq!(next_event(&mut events).await, "connected WebSockets");
    let close = next_text(&mut socket).await.expect("a Close message");
    assert!(close.starts_with("{\"type\":7,\"error\":"), "{close}");
    assert!(close.contains("client timeout"), "{close}");
    assert_eq!(next_text(&mut socket).await, None);
    let disconnected = next_event(&mut events).await;
    assert!(disconnected.contains("client timeout"), "{disconnected}");
}

#[tokio::test]
async fn messages_keep_a_client_alive() {
    let (addr, _events) = serve(options(|o| o.client_timeout = Duration::from_millis(400))).await;
    let mut socket = open_socket(addr).await;
    handshake(&mut socket).await;
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let record = format!(
            "{{\"type\":1,\"invocationId\":\"{i}\",\"target\":\"echo\",\"arguments\":[\"x\"]}}\u{1e}"
        );
        socket.send(Message::text(record)).await.unwrap();
        let answer = next_text(&mut socket).await.expect("a completion");
        assert!(answer.starts_with("{\"type\":3"), "{answer}");
    }
}

#[tokio::test]
async fn no_handshake_in_time_closes_the_socket() {
    let (addr, mut events) = serve(options(|o| {
        o.handshake_timeout = Duration::from_millis(200)
    }))
    .await;
    let mut socket = open_socket(addr).await;
    assert_eq!(next_text(&mut socket).await, None);
    // The connection never started, so the hub saw nothing.
    assert!(events.try_recv().is_err());
}

#[tokio::test]
async fn handshake_and_messages_in_one_frame() {
    let (addr, _events) = serve(HubOptions::default()).await;
    let mut socket = open_socket(addr).await;
    socket
        .send(Message::text(
            "{\"protocol\":\"json\",\"version\":2}\u{1e}{\"type\":1,\"invocationId\":\"1\",\"target\":\"echo\",\"arguments\":[\"hi\"]}\u{1e}",
        ))
        .await
        .unwrap();
    assert_eq!(next_text(&mut socket).await.as_deref(), Some("{}\u{1e}"));
    assert_eq!(
        next_text(&mut socket).await.as_deref(),
        Some("{\"type\":3,\"invocationId\":\"1\",\"result\":\"hi\"}\u{1e}")
    );
}

async fn negotiate(client: &reqwest::Client, addr: SocketAddr) -> String {
    let body = client
        .post(format!("http://{addr}/hub/negotiate?negotiateVersion=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["connectionToken"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn server_sent_events_frame_each_message() {
    let (addr, _events) = serve(HubOptions::default()).await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, addr).await;
    let mut events = client
        .get(format!("http://{addr}/hub?id={token}"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    assert_eq!(events.headers()["cache-control"], "no-cache");
    assert_eq!(&events.chunk().await.unwrap().unwrap()[..], b":\r\n");

    let post = |body: &'static str| {
        client
            .post(format!("http://{addr}/hub?id={token}"))
            .body(body)
            .send()
    };
    assert_eq!(
        post("{\"protocol\":\"json\",\"version\":1}\u{1e}")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        &events.chunk().await.unwrap().unwrap()[..],
        b"data: {}\x1e\r\n\r\n"
    );
    // Two records in one POST, each answered as its own event.
    post("{\"type\":1,\"invocationId\":\"1\",\"target\":\"echo\",\"arguments\":[\"a\"]}\u{1e}{\"type\":1,\"invocationId\":\"2\",\"target\":\"echo\",\"arguments\":[\"b\"]}\u{1e}")
        .await
        .unwrap();
    let mut received = Vec::new();
    while received.len() < 2 {
        let chunk = events.chunk().await.unwrap().unwrap();
        let text = String::from_utf8(chunk.to_vec()).unwrap();
        received.extend(text.split_terminator("\r\n\r\n").map(str::to_owned));
    }
    assert_eq!(
        received,
        [
            "data: {\"type\":3,\"invocationId\":\"1\",\"result\":\"a\"}\u{1e}",
            "data: {\"type\":3,\"invocationId\":\"2\",\"result\":\"b\"}\u{1e}",
        ]
    );
    // The same token cannot open a second receiving transport.
    let second = client
        .get(format!("http://{addr}/hub?id={token}"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 409);
}

#[tokio::test]
async fn long_polling_without_polls_ends_the_connection() {
    let (addr, mut events) = serve(options(|o| {
        o.long_polling_disconnect_timeout = Duration::from_millis(300);
    }))
    .await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, addr).await;
    let url = format!("http://{addr}/hub?id={token}");
    let first = client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.bytes().await.unwrap().is_empty());
    let handshake = client
        .post(&url)
        .body("{\"protocol\":\"json\",\"version\":1}\u{1e}")
        .send()
        .await
        .unwrap();
    assert_eq!(handshake.status(), 200);
    assert_eq!(next_event(&mut events).await, "connected LongPolling");
    // No further poll: the server gives up on the client.
    assert_eq!(next_event(&mut events).await, "disconnected ");
    // What was queued (the handshake answer) is still handed out; then the end.
    let late = client.get(&url).send().await.unwrap();
    assert_eq!(late.status(), 200);
    assert_eq!(late.text().await.unwrap(), "{}\u{1e}");
    let end = client.get(&url).send().await.unwrap().status();
    assert!(end == 204 || end == 404, "{end}");
}

#[tokio::test]
async fn long_polls_return_queued_records_then_204_after_delete() {
    let (addr, mut events) = serve(HubOptions::default()).await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, addr).await;
    let url = format!("http://{addr}/hub?id={token}");
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    client
        .post(&url)
        .body("{\"protocol\":\"json\",\"version\":1}\u{1e}")
        .send()
        .await
        .unwrap();
    // The handshake answer and two completions, all queued while no poll is pending.
    client
        .post(&url)
        .body("{\"type\":1,\"invocationId\":\"1\",\"target\":\"echo\",\"arguments\":[\"a\"]}\u{1e}{\"type\":1,\"invocationId\":\"2\",\"target\":\"echo\",\"arguments\":[\"b\"]}\u{1e}")
        .send()
        .await
        .unwrap();
    assert_eq!(next_event(&mut events).await, "connected LongPolling");
    let mut body = String::new();
    while body.matches('\u{1e}').count() < 3 {
        let poll = client.get(&url).send().await.unwrap();
        assert_eq!(poll.status(), 200);
        body.push_str(&poll.text().await.unwrap());
    }
    assert_eq!(
        body,
        "{}\u{1e}{\"type\":3,\"invocationId\":\"1\",\"result\":\"a\"}\u{1e}{\"type\":3,\"invocationId\":\"2\",\"result\":\"b\"}\u{1e}"
    );
    let pending = tokio::spawn({
        let client = client.clone();
        let url = url.clone();
        async move { client.get(&url).send().await.unwrap().status() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(client.delete(&url).send().await.unwrap().status(), 202);
    assert_eq!(pending.await.unwrap(), 204);
    assert_eq!(next_event(&mut events).await, "disconnected ");
}

#[tokio::test]
async fn oversized_posts_are_refused() {
    let (addr, _events) = serve(options(|o| o.maximum_receive_message_size = 1024)).await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, addr).await;
    let url = format!("http://{addr}/hub?id={token}");
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    let huge = "x".repeat(2 * 1024 * 1024);
    let answer = client.post(&url).body(huge).send().await.unwrap();
    assert_eq!(answer.status(), 413);
    let unknown = client
        .post(format!("http://{addr}/hub?id=nope"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn the_schema_endpoint_is_opt_in() {
    let client = reqwest::Client::new();
    let (closed, _events) = serve(HubOptions::default()).await;
    let answer = client
        .get(format!("http://{closed}/hub/schema"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);

    let (open, _events) = serve(options(|o| o.schema_endpoint = true)).await;
    let answer = client
        .get(format!("http://{open}/hub/schema"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    let document: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(document["name"], "Probe");
    assert!(document["methods"].is_array());
}

#[tokio::test]
async fn a_second_post_while_one_is_in_flight_is_409_until_it_ends() {
    use tokio::io::AsyncWriteExt;

    let (addr, _events) = serve(HubOptions::default()).await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, addr).await;
    let url = format!("http://{addr}/hub?id={token}");
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    // A POST whose body has not finished arriving.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        format!("POST /hub?id={token} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100\r\n\r\n{{")
            .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = client.post(&url).body("{}\u{1e}").send().await.unwrap();
    assert_eq!(second.status(), 409);
    // The slow client gives up mid-body: the connection takes POSTs again.
    drop(slow);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = client
        .post(&url)
        .body("{\"protocol\":\"json\",\"version\":1}\u{1e}")
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 200);
}

async fn negotiate_stateful(client: &reqwest::Client, addr: SocketAddr) -> String {
    let body = client
        .post(format!(
            "http://{addr}/hub/negotiate?negotiateVersion=1&useStatefulReconnect=true"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["useStatefulReconnect"], true, "{body}");
    value["connectionToken"].as_str().unwrap().to_owned()
}

async fn open_token(addr: SocketAddr, token: &str) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/hub?id={token}"))
        .await
        .unwrap();
    socket
}

#[tokio::test]
async fn stateful_reconnect_replays_what_was_not_acknowledged() {
    let (addr, mut events) = serve(options(|o| {
        o.stateful_reconnect = true;
        o.disconnect_timeout = Duration::from_millis(500);
    }))
    .await;
    let client = reqwest::Client::new();
    let token = negotiate_stateful(&client, addr).await;

    let mut socket = open_token(addr, &token).await;
    socket
        .send(Message::text("{\"protocol\":\"json\",\"version\":2}\u{1e}"))
        .await
        .unwrap();
    assert_eq!(next_text(&mut socket).await.as_deref(), Some("{}\u{1e}"));
    assert_eq!(next_event(&mut events).await, "connected WebSockets");
    socket
        .send(Message::text(
            "{\"type\":1,\"invocationId\":\"1\",\"target\":\"echo\",\"arguments\":[\"a\"]}\u{1e}",
        ))
        .await
        .unwrap();
    let completion = "{\"type\":3,\"invocationId\":\"1\",\"result\":\"a\"}\u{1e}";
    assert_eq!(next_text(&mut socket).await.as_deref(), Some(completion));
    // The socket drops before the client acknowledged anything.
    drop(socket);

    let mut socket = open_token(addr, &token).await;
    // No handshake on the new socket: the server announces its first
    // unacknowledged message and sends it again.
    assert_eq!(
        next_text(&mut socket).await.as_deref(),
        Some("{\"type\":9,\"sequenceId\":1}\u{1e}")
    );
    assert_eq!(next_text(&mut socket).await.as_deref(), Some(completion));
    // The client resends from its own message 1: invocation 1 again (a
    // duplicate, dropped) and the new invocation 2.
    socket
        .send(Message::text(
            "{\"type\":9,\"sequenceId\":1}\u{1e}{\"type\":1,\"invocationId\":\"1\",\"target\":\"echo\",\"arguments\":[\"a\"]}\u{1e}{\"type\":1,\"invocationId\":\"2\",\"target\":\"echo\",\"arguments\":[\"b\"]}\u{1e}",
        ))
        .await
        .unwrap();
    // Acks come on the server's own schedule (every second): skip them until
    // the completion, then wait for the one that covers invocation 2.
    let mut record = next_text(&mut socket).await.unwrap();
    while record.starts_with("{\"type\":8,") {
        record = next_text(&mut socket).await.unwrap();
    }
    assert_eq!(
        record,
        "{\"type\":3,\"invocationId\":\"2\",\"result\":\"b\"}\u{1e}"
    );
    loop {
        let record = next_text(&mut socket).await.unwrap();
        assert!(record.starts_with("{\"type\":8,"), "{record}");
        if record == "{\"type\":8,\"sequenceId\":2}\u{1e}" {
            break;
        }
    }
    assert!(
        events.try_recv().is_err(),
        "the connection survived the drop"
    );

    // Gone for longer than the disconnect timeout: the connection ends.
    drop(socket);
    assert_eq!(next_event(&mut events).await, "disconnected ");
}
