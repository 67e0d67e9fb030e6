//! The Rust client against our server: the `conformance` hub served in-process
//! on a loopback port, called through the proxy `#[signal::hub]` generates, over
//! every transport and both protocols.

// The raw `/echo` endpoint is not used here.
mod common;
#[allow(dead_code)]
#[path = "../examples/support/conformance_hub.rs"]
mod conformance_hub;

use std::sync::Arc;

use common::within;
use conformance_hub::ConformanceHub;
use futures_util::StreamExt;
use signal::protocol::{HubProtocol, InvokeError, Payload};
use signal::{HubOptions, TransportType};
use signal_client::{ConnectionState, HubConnection, JsonHubProtocol, MessagePackHubProtocol};
use signal_examples_api::conformance::{
    Conformance, ConformanceClient, ConformanceClientHandler, ConformanceProxy, Person,
};
use tokio::sync::mpsc;

/// Serves the conformance hub with `configure`d options; returns its address.
async fn serve_conformance(configure: impl FnOnce(&mut HubOptions)) -> std::net::SocketAddr {
    let hub = ConformanceHub.into_hub().configure(|o| {
        o.stateful_reconnect = true;
        configure(o);
    });
    common::serve_router(axum::Router::new().nest("/conformance", hub.router())).await
}

/// Every transport with every protocol it can carry.
fn matrix() -> Vec<(TransportType, Arc<dyn HubProtocol>)> {
    let mut out: Vec<(TransportType, Arc<dyn HubProtocol>)> = Vec::new();
    for transport in TransportType::ALL {
        out.push((transport, Arc::new(JsonHubProtocol)));
        if transport != TransportType::ServerSentEvents {
            out.push((transport, Arc::new(MessagePackHubProtocol)));
        }
    }
    out
}

fn builder(
    addr: std::net::SocketAddr,
    transport: TransportType,
    protocol: &Arc<dyn HubProtocol>,
) -> signal_client::HubConnectionBuilder {
    let builder =
        HubConnection::builder(format!("http://{addr}/conformance")).transports([transport]);
    if protocol.name() == "json" {
        builder.protocol(JsonHubProtocol)
    } else {
        builder.protocol(MessagePackHubProtocol)
    }
}

/// What the untyped handlers saw, in order.
fn record(connection: &HubConnection, method: &'static str) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    connection.on(method, move |arguments| {
        let tx = tx.clone();
        async move {
            let texts: Vec<String> = (0..arguments.len())
                .map(|i| arguments.get::<String>(i, "text").unwrap_or_default())
                .collect();
            let _ = tx.send(texts.join("|"));
            Ok(None)
        }
    });
    rx
}

#[tokio::test]
async fn every_unary_method_over_every_transport_and_protocol() {
    let addr = serve_conformance(|_| {}).await;
    for (transport, protocol) in matrix() {
        let case = format!("{transport} / {}", protocol.name());
        let connection = builder(addr, transport, &protocol).build().unwrap();
        within(&case, connection.start())
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(connection.transport(), Some(transport), "{case}");
        let hub = ConformanceProxy::new(&connection);
        assert_eq!(hub.echo("hi".into()).await.unwrap(), "hi", "{case}");
        assert_eq!(hub.add(2, 40).await.unwrap(), 42, "{case}");
        let person = Person {
            name: "Ada".into(),
            age: 36,
            tags: vec!["math".into()],
            address: None,
        };
        let back = hub.echo_person(person).await.unwrap();
        assert_eq!((back.name.as_str(), back.age), ("Ada", 36), "{case}");
        match hub.fail("nope".into()).await {
            Err(InvokeError::Hub(message)) => assert_eq!(
                message,
                "An unexpected error occurred invoking 'fail' on the server. HubException: nope",
                "{case}"
            ),
            other => panic!("{case}: {other:?}"),
        }
        hub.panic_now().await.unwrap();
        assert_eq!(hub.transport().await.unwrap(), transport.as_str(), "{case}");
        assert_eq!(
            Some(hub.connection_id().await.unwrap()),
            connection.connection_id(),
            "{case}"
        );
        // One connection's invocations complete in order.
        let (slow, fast) = tokio::join!(hub.delay(100, "slow".into()), hub.delay(0, "fast".into()));
        assert_eq!(
            (slow.unwrap(), fast.unwrap()),
            ("slow".into(), "fast".into()),
            "{case}"
        );
        within(&case, connection.stop()).await;
        assert_eq!(connection.state(), ConnectionState::Disconnected, "{case}");
    }
}

#[tokio::test]
async fn untyped_calls_and_handlers() {
    let addr = serve_conformance(|_| {}).await;
    let connection = HubConnection::builder(format!("http://{addr}/conformance"))
        .build()
        .unwrap();
    let mut messages = record(&connection, "message");
    connection.start().await.unwrap();
    let sum: i64 = connection.invoke("add", (1, 2)).await.unwrap();
    assert_eq!(sum, 3);
    connection.send("sendToCaller", ("to me",)).await.unwrap();
    assert_eq!(within("message", messages.recv()).await.unwrap(), "to me");
    let items: Vec<u32> = connection
        .stream::<u32>("counter", (3, 0))
        .await
        .unwrap()
        .map(|item| item.unwrap())
        .collect()
        .await;
    assert_eq!(items, [0, 1, 2]);
    // Client results: no handler, a handler that fails, one that answers.
    let ask = |question: &str| connection.invoke::<String>("askCaller", (question.to_owned(),));
    let error = within("askCaller", ask("anyone?")).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("Client didn't provide a result."),
        "{error}"
    );
    connection.on("ask", |arguments| async move {
        let question: String = arguments.get(0, "question").map_err(|e| e.to_string())?;
        if question == "fail?" {
            Err("I refuse".to_owned())
        } else {
            Ok(Some(Payload::value(format!("yes: {question}"))))
        }
    });
    let error = within("askCaller", ask("fail?")).await.unwrap_err();
    assert!(error.to_string().contains("I refuse"), "{error}");
    assert_eq!(within("askCaller", ask("ok?")).await.unwrap(), "yes: ok?");
    connection.stop().await;
}

#[tokio::test]
async fn an_invocation_timeout_bounds_a_call() {
    let addr = serve_conformance(|_| {}).await;
    let connection = HubConnection::builder(format!("http://{addr}/conformance"))
        .invocation_timeout(std::time::Duration::from_millis(100))
        .build()
        .unwrap();
    within("start", connection.start()).await.unwrap();
    let hub = ConformanceProxy::new(&connection);
    match within("delay", hub.delay(2_000, "late".into())).await {
        Err(InvokeError::Timeout(limit)) => assert_eq!(limit.as_millis(), 100),
        other => panic!("{other:?}"),
    }
    // The connection goes on; the late Completion will find no caller.
    assert_eq!(connection.state(), ConnectionState::Connected);
    connection.stop().await;
}

/// A `ConformanceClient` that reports what the server called.
struct Recorder {
    seen: mpsc::UnboundedSender<String>,
}

impl ConformanceClient for Recorder {
    async fn message(&self, text: String) {
        let _ = self.seen.send(format!("message {text}"));
    }

    async fn group_message(&self, group: String, text: String) {
        let _ = self.seen.send(format!("groupMessage {group} {text}"));
    }

    async fn ask(&self, question: String) -> String {
        let _ = self.seen.send(format!("ask {question}"));
        format!("the answer to {question}")
    }
}

/// A started connection with a [`Recorder`] registered, and what it records.
async fn recorded(
    addr: std::net::SocketAddr,
    transport: TransportType,
    protocol: &Arc<dyn HubProtocol>,
) -> (HubConnection, mpsc::UnboundedReceiver<String>) {
    let connection = builder(addr, transport, protocol).build().unwrap();
    let (seen, rx) = mpsc::unbounded_channel();
    connection.register(ConformanceClientHandler::new(Recorder { seen }));
    within("start", connection.start()).await.unwrap();
    (connection, rx)
}

async fn next(seen: &mut mpsc::UnboundedReceiver<String>) -> String {
    within("a client method call", seen.recv()).await.unwrap()
}

#[tokio::test]
async fn client_methods_and_client_results_over_every_transport_and_protocol() {
    let addr = serve_conformance(|_| {}).await;
    for (transport, protocol) in matrix() {
        let case = format!("{transport} / {}", protocol.name());
        let (a, mut seen_a) = recorded(addr, transport, &protocol).await;
        let (b, mut seen_b) = recorded(addr, transport, &protocol).await;
        let hub_a = ConformanceProxy::new(&a);
        let hub_b = ConformanceProxy::new(&b);

        hub_a.send_to_caller("mine".into()).await.unwrap();
        assert_eq!(next(&mut seen_a).await, "message mine", "{case}");

        hub_a.send_to_others("for b".into()).await.unwrap();
        assert_eq!(next(&mut seen_b).await, "message for b", "{case}");

        let b_id = hub_b.connection_id().await.unwrap();
        hub_a
            .send_to_connection(b_id, "direct".into())
            .await
            .unwrap();
        assert_eq!(next(&mut seen_b).await, "message direct", "{case}");

        hub_a.broadcast("all".into()).await.unwrap();
        assert_eq!(next(&mut seen_a).await, "message all", "{case}");
        assert_eq!(next(&mut seen_b).await, "message all", "{case}");

        hub_b.join_group("g".into()).await.unwrap();
        hub_a
            .send_to_group("g".into(), "to g".into())
            .await
            .unwrap();
        assert_eq!(next(&mut seen_b).await, "groupMessage g to g", "{case}");
        hub_b.leave_group("g".into()).await.unwrap();
        hub_a
            .send_to_group("g".into(), "nobody".into())
            .await
            .unwrap();
        // a's own message orders after the group send: b got nothing in between.
        hub_b.send_to_caller("after".into()).await.unwrap();
        assert_eq!(next(&mut seen_b).await, "message after", "{case}");

        let answer = hub_a.ask_caller("life".into()).await.unwrap();
        assert_eq!(answer, "the answer to life", "{case}");
        assert_eq!(next(&mut seen_a).await, "ask life", "{case}");

        a.stop().await;
        b.stop().await;
        assert!(
            seen_a.try_recv().is_err() && seen_b.try_recv().is_err(),
            "{case}"
        );
    }
}

#[tokio::test]
async fn streams_both_ways_over_every_transport_and_protocol() {
    let addr = serve_conformance(|_| {}).await;
    for (transport, protocol) in matrix() {
        let case = format!("{transport} / {}", protocol.name());
        let connection = builder(addr, transport, &protocol).build().unwrap();
        within(&case, connection.start()).await.unwrap();
        let hub = ConformanceProxy::new(&connection);
        let items: Vec<u32> = hub
            .counter(5, 0)
            .await
            .unwrap()
            .map(|item| item.unwrap())
            .collect()
            .await;
        assert_eq!(items, [0, 1, 2, 3, 4], "{case}");

        // At most the server's upload buffer (10 items): see
        // `an_upload_longer_than_the_servers_buffer`.
        let numbers = futures_util::stream::iter(1..=10i64);
        assert_eq!(
            within(&format!("sum {case}"), hub.sum(numbers))
                .await
                .unwrap(),
            55,
            "{case}"
        );

        // Dropping a stream mid-way leaves the connection usable (that the
        // server stops is shown by `dropping_a_server_stream_cancels_it_on_the_server`).
        let mut endless = hub.counter(1_000_000, 10).await.unwrap();
        assert_eq!(
            within(&format!("first item {case}"), endless.next())
                .await
                .unwrap()
                .unwrap(),
            0
        );
        drop(endless);
        assert_eq!(
            within(&case, hub.echo("after".into())).await.unwrap(),
            "after",
            "{case}"
        );
        connection.stop().await;
    }
}

/// More upload items than the server's stream buffer (10) arriving before the
/// hub method reads them: the server's session waits for room while the method,
/// in a task of its own, makes it.
#[tokio::test]
async fn an_upload_longer_than_the_servers_buffer() {
    let addr = serve_conformance(|_| {}).await;
    for (transport, protocol) in matrix() {
        let case = format!("{transport} / {}", protocol.name());
        let connection = builder(addr, transport, &protocol).build().unwrap();
        within(&case, connection.start()).await.unwrap();
        let hub = ConformanceProxy::new(&connection);
        let numbers = futures_util::stream::iter(1..=1000i64);
        assert_eq!(
            within(&case, hub.sum(numbers)).await.unwrap(),
            500500,
            "{case}"
        );
        connection.stop().await;
    }
}

#[tokio::test]
async fn the_proxy_uploads_in_process_too() {
    let hub = ConformanceHub.into_hub().in_process();
    let connection = within("connect", hub.connect()).await.unwrap();
    let proxy = ConformanceProxy::new(connection);
    let numbers = futures_util::stream::iter(1..=100i64);
    assert_eq!(within("sum", proxy.sum(numbers)).await.unwrap(), 5050);
    let empty = futures_util::stream::iter(Vec::<i64>::new());
    assert_eq!(within("sum", proxy.sum(empty)).await.unwrap(), 0);
}

#[tokio::test]
async fn pings_keep_an_idle_connection_alive_both_ways() {
    let short = std::time::Duration::from_millis(300);
    let addr = serve_conformance(|o| {
        o.keep_alive_interval = short / 3;
        o.client_timeout = short;
    })
    .await;
    for transport in TransportType::ALL {
        let connection = HubConnection::builder(format!("http://{addr}/conformance"))
            .transports([transport])
            .keep_alive_interval(short / 3)
            .server_timeout(short)
            .build()
            .unwrap();
        let (closed_tx, mut closed) = mpsc::unbounded_channel();
        connection.on_closed(move |error| {
            let _ = closed_tx.send(error.map(ToString::to_string));
        });
        within("start", connection.start()).await.unwrap();
        // Idle for four of either side's timeouts: only pings flow.
        tokio::time::sleep(short * 4).await;
        assert!(closed.try_recv().is_err(), "{transport}: closed while idle");
        let hub = ConformanceProxy::new(&connection);
        assert_eq!(
            hub.echo("awake".into()).await.unwrap(),
            "awake",
            "{transport}"
        );
        connection.stop().await;
    }
}
