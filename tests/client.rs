//! The Rust client against our server: the `conformance` hub served in-process
//! on a loopback port, called through the proxy `#[signal::hub]` generates, over
//! every transport and both protocols.

// The raw `/echo` endpoint is not used here.
mod common;
#[allow(dead_code)]
#[path = "../examples/support/conformance_hub.rs"]
mod conformance_hub;

use std::sync::Arc;
use std::time::Duration;

use common::{WAIT, within};
use conformance_hub::ConformanceHub;
use futures_util::StreamExt;
use signal::protocol::{HubProtocol, InvokeError, Payload};
use signal::{HubOptions, TransportType};
use signal_client::{
    ConnectionState, Error, HubConnection, JsonHubProtocol, MessagePackHubProtocol,
};
use signal_examples_api::conformance::{Conformance, ConformanceProxy, Person};
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
    let _ = Payload::null();
    let _ = WAIT;
    let _: Option<Error> = None;
    let _ = Duration::ZERO;
}
