//! The Rust client's lifecycle against real servers: refused handshakes, wrong
//! URLs and silent servers (each a clear error, no hang), bad input, a server
//! restart with automatic reconnect, and a dropped TCP connection healed by
//! stateful reconnect with nothing lost or repeated.

// The raw `/echo` endpoint is not used here.
mod common;
#[allow(dead_code)]
#[path = "../examples/support/conformance_hub.rs"]
mod conformance_hub;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::any;
use bytes::{Bytes, BytesMut};
use common::within;
use conformance_hub::ConformanceHub;
use futures_util::StreamExt;
use signal::protocol::{
    Framing, HubMessage, HubProtocol, InvokeError, JsonHubProtocol, ProtocolError, TransferFormat,
    WriteError,
};
use signal::{HubHandle, TransportType};
use signal_client::{ConnectionState, Delays, Error, HubConnection};
use signal_examples_api::conformance::{Conformance, ConformanceClient, ConformanceProxy};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

/// A server of the conformance hub that can be stopped, freeing its port.
struct Running {
    addr: SocketAddr,
    handle: HubHandle<dyn ConformanceClient>,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

async fn serve_on(addr: SocketAddr) -> Running {
    let hub = ConformanceHub
        .into_hub()
        .configure(|o| o.stateful_reconnect = true);
    let handle = hub.handle();
    let app = axum::Router::new().nest("/conformance", hub.router());
    // A restart binds the port the previous server freed; another test's
    // outgoing connection may hold it for a moment.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let listener = loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => break listener,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%error, "port busy; binding again");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("cannot bind {addr}: {error}"),
        }
    };
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running {
        addr,
        handle,
        stop,
        done,
    }
}

impl Running {
    /// Closes every connection (with `allowReconnect`) and stops listening.
    async fn shut_down(self) {
        let _ = self.stop.send(());
        self.handle.shutdown(Duration::from_secs(2)).await;
        within("the server to stop", self.done).await.unwrap();
    }
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/conformance")
}

/// JSON under a name the server does not offer.
#[derive(Debug)]
struct Unknown;

impl HubProtocol for Unknown {
    fn name(&self) -> &'static str {
        "xml"
    }
    fn max_version(&self) -> u32 {
        1
    }
    fn transfer_format(&self) -> TransferFormat {
        TransferFormat::Text
    }
    fn framing(&self) -> Framing {
        Framing::Records
    }
    fn parse(&self, message: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
        JsonHubProtocol.parse(message)
    }
    fn write(&self, message: &HubMessage, out: &mut BytesMut) -> Result<(), WriteError> {
        JsonHubProtocol.write(message, out)
    }
}

#[tokio::test]
async fn a_refused_handshake_is_a_clear_error() {
    let server = serve_on("127.0.0.1:0".parse().unwrap()).await;
    let connection = HubConnection::builder(url(server.addr))
        .protocol(Unknown)
        .build()
        .unwrap();
    match within("start", connection.start()).await {
        Err(Error::HandshakeRefused(reason)) => {
            assert_eq!(reason, "The protocol 'xml' is not supported.")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(connection.state(), ConnectionState::Disconnected);
}

#[tokio::test]
async fn wrong_urls_are_clear_errors() {
    let server = serve_on("127.0.0.1:0".parse().unwrap()).await;
    let connection = HubConnection::builder(format!("http://{}/nowhere", server.addr))
        .build()
        .unwrap();
    let error = within("start", connection.start()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("the server answered 404 Not Found; is a hub mapped at this URL?"),
        "{error}"
    );

    // Nobody listens on the port.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = free.local_addr().unwrap();
    drop(free);
    let connection = HubConnection::builder(url(closed)).build().unwrap();
    match within("start", connection.start()).await {
        Err(Error::Negotiate { reason, .. }) => assert!(reason.contains("onnect"), "{reason}"),
        other => panic!("{other:?}"),
    }

    assert!(matches!(
        HubConnection::builder("not a url").build(),
        Err(Error::InvalidUrl { .. })
    ));
    assert!(matches!(
        HubConnection::builder("ftp://host/hub").build(),
        Err(Error::InvalidUrl { .. })
    ));
    // Calls on a connection that never started fail at once.
    let idle = HubConnection::builder(url(server.addr)).build().unwrap();
    match ConformanceProxy::new(&idle).echo("x".into()).await {
        Err(InvokeError::Connection(reason)) => {
            assert!(reason.contains("not connected"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Accepts TCP connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = silent.accept().await {
            keep.lock().unwrap().push(socket);
        }
    });
    let connection = HubConnection::builder(url(addr))
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    match within("start", connection.start()).await {
        Err(Error::Negotiate { reason, .. }) => {
            assert_eq!(reason, "no answer within 300ms")
        }
        other => panic!("{other:?}"),
    }
    let skipping = HubConnection::builder(url(addr))
        .skip_negotiation(true)
        .transports([TransportType::WebSockets])
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    match within("start", skipping.start()).await {
        Err(Error::NoTransport(reason)) | Err(Error::Transport { reason, .. }) => {
            assert!(reason.contains("not answered within 300ms"), "{reason}")
        }
        other => panic!("{other:?}"),
    }

    // A WebSocket that opens, then never answers the handshake.
    let app = axum::Router::new().route(
        "/hub",
        any(|ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut socket| async move { while socket.recv().await.is_some() {} })
        }),
    );
    let addr = common::serve_router(app).await;
    let connection = HubConnection::builder(format!("http://{addr}/hub"))
        .skip_negotiation(true)
        .handshake_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    match within("start", connection.start()).await {
        Err(Error::Timeout(after)) => assert_eq!(after, Duration::from_millis(300)),
        other => panic!("{other:?}"),
    }
}

/// A WebSocket hub endpoint that accepts the handshake, then sends `messages`.
async fn scripted(messages: &'static [&'static str]) -> SocketAddr {
    let app = axum::Router::new().route(
        "/hub",
        any(move |ws: WebSocketUpgrade| async move {
            ws.on_upgrade(move |mut socket| async move {
                let _ = socket.recv().await;
                let _ = socket.send(Message::Text("{}\u{1e}".into())).await;
                // Wait for the client's first invocation, then answer with the script.
                let _ = socket.recv().await;
                for message in messages {
                    let _ = socket.send(Message::Text((*message).into())).await;
                }
                while socket.recv().await.is_some() {}
            })
        }),
    );
    common::serve_router(app).await
}

/// Like [`scripted`], for MessagePack: the script goes in binary frames.
async fn scripted_binary(messages: &'static [&'static [u8]]) -> SocketAddr {
    let app = axum::Router::new().route(
        "/hub",
        any(move |ws: WebSocketUpgrade| async move {
            ws.on_upgrade(move |mut socket| async move {
                let _ = socket.recv().await;
                let _ = socket.send(Message::Text("{}\u{1e}".into())).await;
                let _ = socket.recv().await;
                for message in messages {
                    let _ = socket
                        .send(Message::Binary(Bytes::from_static(message)))
                        .await;
                }
                while socket.recv().await.is_some() {}
            })
        }),
    );
    common::serve_router(app).await
}

#[tokio::test]
async fn bad_messagepack_from_a_server_is_an_error_never_a_panic_or_a_hang() {
    let cases: &[(&[&[u8]], &str)] = &[
        // A message that is no MessagePack array.
        (&[b"\x01\xc1"], "malformed"),
        // A length prefix running past five bytes.
        (&[b"\xff\xff\xff\xff\xff\x01"], "length prefix"),
        // A Completion missing its fields.
        (&[b"\x02\x91\x03"], "malformed"),
    ];
    for (script, expected) in cases {
        let addr = scripted_binary(script).await;
        let connection = HubConnection::builder(format!("http://{addr}/hub"))
            .skip_negotiation(true)
            .protocol(signal_client::MessagePackHubProtocol)
            .build()
            .unwrap();
        within("start", connection.start()).await.unwrap();
        let error = within("the call", connection.invoke::<String>("echo", ("x",)))
            .await
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{script:?}: {error}");
        let mut states = connection.state_changes();
        within(
            "disconnected",
            states.wait_for(|s| *s == ConnectionState::Disconnected),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn bad_input_from_a_server_is_an_error_never_a_panic_or_a_hang() {
    let cases: &[(&[&str], &str)] = &[
        (&["not json\u{1e}"], "malformed"),
        (&["{\"type\":3}\u{1e}"], "malformed"),
        (&["{\"type\":7,\"error\":\"bye\"}\u{1e}"], "bye"),
    ];
    for (script, expected) in cases {
        let addr = scripted(script).await;
        let connection = HubConnection::builder(format!("http://{addr}/hub"))
            .skip_negotiation(true)
            .build()
            .unwrap();
        let (closed_tx, mut closed) = mpsc::unbounded_channel();
        connection.on_closed(move |error| {
            let _ = closed_tx.send(error.map(ToString::to_string));
        });
        within("start", connection.start()).await.unwrap();
        let error = within("the call", connection.invoke::<String>("echo", ("x",)))
            .await
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{script:?}: {error}");
        let reason = within("closed", closed.recv()).await.unwrap().unwrap();
        assert!(reason.contains(expected), "{script:?}: {reason}");
        assert_eq!(connection.state(), ConnectionState::Disconnected);
    }

    // A message over the client's limit ends the connection, saying so.
    let addr = scripted(&["{\"type\":1,\"target\":\"message\",\"arguments\":[\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"]}\u{1e}"]).await;
    let connection = HubConnection::builder(format!("http://{addr}/hub"))
        .skip_negotiation(true)
        .max_message_size(64)
        .build()
        .unwrap();
    within("start", connection.start()).await.unwrap();
    let error = within("the call", connection.invoke::<String>("echo", ("x",)))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("The maximum message size of 64B was exceeded"),
        "{error}"
    );

    // Unknown message types, completions and stream items for no call are
    // ignored; the call still gets its answer.
    let addr = scripted(&[
        "{\"type\":99}\u{1e}",
        "{\"type\":3,\"invocationId\":\"nobody\",\"result\":1}\u{1e}",
        "{\"type\":2,\"invocationId\":\"nobody\",\"item\":1}\u{1e}",
        "{\"type\":3,\"invocationId\":\"0\",\"result\":\"fine\"}\u{1e}",
    ])
    .await;
    let connection = HubConnection::builder(format!("http://{addr}/hub"))
        .skip_negotiation(true)
        .build()
        .unwrap();
    within("start", connection.start()).await.unwrap();
    let answer: String = within("the call", connection.invoke("echo", ("x",)))
        .await
        .unwrap();
    assert_eq!(answer, "fine");
    connection.stop().await;
}

#[tokio::test]
async fn the_server_timeout_ends_a_silent_connection() {
    // Handshake accepted, then silence: no pings.
    let addr = scripted(&[]).await;
    let connection = HubConnection::builder(format!("http://{addr}/hub"))
        .skip_negotiation(true)
        .server_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    within("start", connection.start()).await.unwrap();
    let error = within("the call", connection.invoke::<String>("echo", ("x",)))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("server timeout (300ms)"),
        "{error}"
    );
}

#[tokio::test]
async fn a_restarted_server_is_reconnected_to_over_every_transport() {
    for transport in TransportType::ALL {
        let server = serve_on("127.0.0.1:0".parse().unwrap()).await;
        let addr = server.addr;
        let connection = HubConnection::builder(url(addr))
            .transports([transport])
            .with_retry_policy(|context: &signal_client::RetryContext| {
                (context.previous_retry_count < 200).then_some(Duration::from_millis(25))
            })
            .build()
            .unwrap();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let tx = events_tx.clone();
        connection.on_reconnecting(move |error| {
            let _ = tx.send(format!("reconnecting: {error}"));
        });
        let tx = events_tx.clone();
        connection.on_reconnected(move |id| {
            let _ = tx.send(format!("reconnected {}", id.is_some()));
        });
        connection.on_closed(move |error| {
            let _ = events_tx.send(format!("closed {error:?}"));
        });
        within("start", connection.start()).await.unwrap();
        let hub = ConformanceProxy::new(&connection);
        let first_id = hub.connection_id().await.unwrap();

        server.shut_down().await;
        let event = within("reconnecting", events.recv()).await.unwrap();
        assert!(event.starts_with("reconnecting: "), "{transport}: {event}");
        let restarted = serve_on(addr).await;
        assert_eq!(
            within("reconnected", events.recv()).await.unwrap(),
            "reconnected true",
            "{transport}"
        );
        assert_eq!(connection.state(), ConnectionState::Connected);
        assert_eq!(connection.transport(), Some(transport));
        let second_id = hub.connection_id().await.unwrap();
        assert_ne!(first_id, second_id, "{transport}: a new connection");
        assert_eq!(hub.echo("back".into()).await.unwrap(), "back");

        connection.stop().await;
        assert_eq!(
            within("closed", events.recv()).await.unwrap(),
            "closed None",
            "{transport}"
        );
        restarted.shut_down().await;
    }
}

#[tokio::test]
async fn without_reconnect_a_connection_closes_with_the_reason_or_none() {
    // A server shutting down closes cleanly: closed without an error.
    let server = serve_on("127.0.0.1:0".parse().unwrap()).await;
    let connection = HubConnection::builder(url(server.addr)).build().unwrap();
    let (tx, mut closed) = mpsc::unbounded_channel();
    connection.on_closed(move |error| {
        let _ = tx.send(error.map(ToString::to_string));
    });
    within("start", connection.start()).await.unwrap();
    server.shut_down().await;
    assert_eq!(within("closed", closed.recv()).await.unwrap(), None);
    assert_eq!(connection.state(), ConnectionState::Disconnected);

    // A lost TCP connection is an error, with its reason.
    let server = serve_on("127.0.0.1:0".parse().unwrap()).await;
    let (front, cut) = proxy(server.addr).await;
    let connection = HubConnection::builder(url(front))
        .transports([TransportType::WebSockets])
        .build()
        .unwrap();
    let (tx, mut closed) = mpsc::unbounded_channel();
    connection.on_closed(move |error| {
        let _ = tx.send(error.map(ToString::to_string));
    });
    within("start", connection.start()).await.unwrap();
    cut.send_modify(|n| *n += 1);
    let reason = within("closed", closed.recv()).await.unwrap();
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.starts_with("the connection was lost: ")),
        "{reason:?}"
    );
    server.shut_down().await;

    // The default retry policy: 0, 2, 10, 30 s, then give up.
    let delays = Delays::default();
    assert_eq!(delays.0, [0, 2, 10, 30].map(Duration::from_secs).to_vec());
}

/// A TCP proxy in front of `target` whose live connections can be cut.
async fn proxy(target: SocketAddr) -> (SocketAddr, watch::Sender<u32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cut, _) = watch::channel(0u32);
    let cuts = cut.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let mut cut = cuts.subscribe();
            cut.mark_unchanged();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut.changed() => {}
                }
            });
        }
    });
    (addr, cut)
}

#[tokio::test]
async fn stateful_reconnect_heals_a_dropped_tcp_connection_with_nothing_lost_or_repeated() {
    let server = serve_on("127.0.0.1:0".parse().unwrap()).await;
    let (front, cut) = proxy(server.addr).await;
    let connection = HubConnection::builder(url(front))
        .transports([TransportType::WebSockets])
        .with_stateful_reconnect()
        .build()
        .unwrap();
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    connection.on_closed(move |error| {
        let _ = closed_tx.send(error.map(ToString::to_string));
    });
    within("start", connection.start()).await.unwrap();
    let hub = ConformanceProxy::new(&connection);
    let id = hub.connection_id().await.unwrap();

    let mut items = hub.counter(60, 10).await.unwrap();
    let mut seen = Vec::new();
    while let Some(item) = within("an item", items.next()).await {
        let item = item.unwrap();
        seen.push(item);
        if item == 20 || item == 40 {
            cut.send_modify(|n| *n += 1);
        }
    }
    assert_eq!(seen, (0..60).collect::<Vec<_>>(), "0 lost, 0 repeated");
    assert_eq!(
        hub.connection_id().await.unwrap(),
        id,
        "the same connection"
    );
    assert_eq!(hub.echo("still here".into()).await.unwrap(), "still here");
    connection.stop().await;
    assert_eq!(within("closed", closed.recv()).await.unwrap(), None);
    server.shut_down().await;
}

#[tokio::test]
async fn negotiate_redirects_carry_their_access_token_to_every_request() {
    let hub = ConformanceHub.into_hub();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    let (addr_tx, addr_rx) = watch::channel(None::<SocketAddr>);
    let app = axum::Router::new()
        .nest("/conformance", hub.router())
        .route(
            "/relay/negotiate",
            axum::routing::post(move || {
                let addr = addr_rx.borrow().expect("the address is known");
                async move {
                    axum::Json(serde_json::json!({
                        "url": format!("http://{addr}/conformance"),
                        "accessToken": "from-redirect",
                    }))
                }
            }),
        )
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let header = |name: &str| {
                    request
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned()
                };
                record.lock().unwrap().push(format!(
                    "{} {} {} {}",
                    request.method(),
                    request.uri().path(),
                    header("authorization"),
                    header("x-tenant"),
                ));
                next.run(request)
            },
        ));
    let addr = common::serve_router(app).await;
    addr_tx.send_replace(Some(addr));
    for transport in TransportType::ALL {
        seen.lock().unwrap().clear();
        let connection = HubConnection::builder(format!("http://{addr}/relay"))
            .transports([transport])
            .access_token(|| async { Some("from-provider".to_owned()) })
            .header("X-Tenant", "blue")
            .build()
            .unwrap();
        within("start", connection.start()).await.unwrap();
        let hub = ConformanceProxy::new(&connection);
        assert_eq!(hub.echo("relayed".into()).await.unwrap(), "relayed");
        connection.stop().await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen[0], "POST /relay/negotiate Bearer from-provider blue",
            "{transport}"
        );
        assert_eq!(
            seen[1], "POST /conformance/negotiate Bearer from-redirect blue",
            "{transport}"
        );
        assert!(seen.len() > 2, "{transport}: {seen:?}");
        for request in &seen[2..] {
            assert!(
                request.ends_with(" /conformance Bearer from-redirect blue"),
                "{transport}: {request}"
            );
        }
    }
}

#[tokio::test]
async fn configurations_that_cannot_work_say_why() {
    let server = serve_on("127.0.0.1:0".parse().unwrap()).await;
    // Server-Sent Events carry text; MessagePack is binary.
    let connection = HubConnection::builder(url(server.addr))
        .transports([TransportType::ServerSentEvents])
        .protocol(signal_client::MessagePackHubProtocol)
        .build()
        .unwrap();
    match within("start", connection.start()).await {
        Err(Error::NoTransport(reason)) => {
            assert_eq!(reason, "ServerSentEvents cannot carry Binary messages")
        }
        other => panic!("{other:?}"),
    }
    let connection = HubConnection::builder(url(server.addr))
        .skip_negotiation(true)
        .transports([TransportType::LongPolling])
        .build()
        .unwrap();
    assert!(matches!(
        within("start", connection.start()).await,
        Err(Error::NoTransport(_))
    ));
    // Skipping negotiation reaches the hub straight over a WebSocket.
    let connection = HubConnection::builder(url(server.addr))
        .skip_negotiation(true)
        .build()
        .unwrap();
    within("start", connection.start()).await.unwrap();
    assert_eq!(connection.connection_id(), None);
    let hub = ConformanceProxy::new(&connection);
    assert_eq!(hub.transport().await.unwrap(), "WebSockets");
    // Starting twice is refused while started.
    assert!(matches!(
        connection.start().await,
        Err(Error::AlreadyStarted(ConnectionState::Connected))
    ));
    connection.stop().await;
    // A stopped connection starts again.
    within("start again", connection.start()).await.unwrap();
    assert_eq!(hub.echo("again".into()).await.unwrap(), "again");
    // Dropping the last handle stops it.
    let mut states = connection.state_changes();
    drop(connection);
    within(
        "the dropped connection to stop",
        states.wait_for(|s| *s == ConnectionState::Disconnected),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn stateful_reconnect_replays_what_the_client_sent_into_a_dead_socket() {
    let server = serve_on("127.0.0.1:0".parse().unwrap()).await;
    let (front, cut) = proxy(server.addr).await;
    let connection = HubConnection::builder(url(front))
        .transports([TransportType::WebSockets])
        .with_stateful_reconnect()
        .build()
        .unwrap();
    let (tx, mut messages) = mpsc::unbounded_channel();
    connection.on("message", move |arguments| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(
                arguments
                    .get::<String>(0, "text")
                    .map_err(|e| e.to_string())?,
            );
            Ok(None)
        }
    });
    within("start", connection.start()).await.unwrap();
    let hub = ConformanceProxy::new(&connection);
    for round in 0..3 {
        cut.send_modify(|n| *n += 1);
        // Fire-and-forget invocations race the cut: some go into the dead
        // socket before the client notices it is gone.
        for i in 0..20 {
            let send = connection.send("sendToCaller", (format!("{round}-{i}"),));
            within("a send", send).await.unwrap();
        }
        for i in 0..20 {
            let text = within("a message", messages.recv()).await.unwrap();
            assert_eq!(text, format!("{round}-{i}"), "0 lost, 0 repeated, in order");
        }
    }
    assert_eq!(
        within("a call", hub.echo("after".into())).await.unwrap(),
        "after"
    );
    assert!(messages.try_recv().is_err(), "nothing repeated");
    connection.stop().await;
    server.shut_down().await;
}

/// A TCP proxy in front of `target` that keeps what the server sent.
async fn tapped_proxy(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tap = Arc::new(Mutex::new(Vec::new()));
    let kept = tap.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            let (mut client_read, mut client_write) = inbound.into_split();
            let (mut server_read, mut server_write) = outbound.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = server_read.read(&mut buffer).await {
                    if n == 0 || client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                    kept.lock().unwrap().extend_from_slice(&buffer[..n]);
                }
            });
        }
    });
    (addr, tap)
}

#[tokio::test]
async fn dropping_a_server_stream_cancels_it_on_the_server() {
    let server = serve_on("127.0.0.1:0".parse().unwrap()).await;
    let (front, tap) = tapped_proxy(server.addr).await;
    let connection = HubConnection::builder(url(front))
        .transports([TransportType::WebSockets])
        .build()
        .unwrap();
    within("start", connection.start()).await.unwrap();
    let hub = ConformanceProxy::new(&connection);
    // The connection's first call: invocation id 0. A million items, one every
    // 10 ms: only a CancelInvocation ends it within the test.
    let mut endless = hub.counter(1_000_000, 10).await.unwrap();
    assert_eq!(within("an item", endless.next()).await.unwrap().unwrap(), 0);
    drop(endless);
    // A cancelled stream still gets its Completion from the server.
    common::eventually("the server to complete the cancelled stream", || {
        let seen = tap.lock().unwrap();
        seen.split(|b| *b == 0x1e).any(|record| {
            let text = String::from_utf8_lossy(record);
            text.contains("\"type\":3") && text.contains("\"invocationId\":\"0\"")
        })
    })
    .await;
    connection.stop().await;
    server.shut_down().await;
}

#[tokio::test]
async fn a_failing_transport_falls_back_to_the_next_in_the_servers_order() {
    let negotiations = Arc::new(Mutex::new(0u32));
    let counted = negotiations.clone();
    let hub = ConformanceHub.into_hub().configure(|o| {
        o.transports = vec![
            TransportType::WebSockets,
            TransportType::LongPolling,
            TransportType::ServerSentEvents,
        ]
    });
    // WebSocket upgrades are refused, as by a proxy that does not pass them.
    let app = axum::Router::new()
        .nest("/conformance", hub.router())
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                if request.uri().path().ends_with("/negotiate") {
                    *counted.lock().unwrap() += 1;
                }
                let upgrade = request.headers().contains_key("upgrade");
                async move {
                    if upgrade {
                        axum::http::StatusCode::BAD_GATEWAY.into_response()
                    } else {
                        next.run(request).await
                    }
                }
            },
        ));
    let addr = common::serve_router(app).await;
    let connection = HubConnection::builder(url(addr)).build().unwrap();
    within("start", connection.start()).await.unwrap();
    assert_eq!(connection.transport(), Some(TransportType::LongPolling));
    let hub = ConformanceProxy::new(&connection);
    assert_eq!(hub.transport().await.unwrap(), "LongPolling");
    assert_eq!(
        *negotiations.lock().unwrap(),
        2,
        "a failed transport's connection is gone: negotiate afresh"
    );
    connection.stop().await;

    // With WebSockets alone allowed, the failure says what happened.
    let connection = HubConnection::builder(url(addr))
        .transports([TransportType::WebSockets])
        .build()
        .unwrap();
    match within("start", connection.start()).await {
        Err(Error::NoTransport(reason)) => {
            assert!(reason.starts_with("WebSockets: "), "{reason}");
            assert!(reason.contains("502"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
