//! A thousand connections opening and closing in a loop leave nothing behind:
//! no connection, group or user entry, over every transport and both
//! protocols, whether a client says goodbye or just goes away. The clients
//! are signal's Rust client; users come from an `Identity` an authentication
//! layer leaves on each request.

mod common;
#[allow(dead_code)]
#[path = "../examples/support/conformance_hub.rs"]
mod conformance_hub;

use std::sync::Arc;
use std::time::Duration;

use conformance_hub::ConformanceHub;
use signal::auth::Identity;
use signal::protocol::HubProtocol;
use signal::{Hub, TransportType};
use signal_client::{HubConnection, JsonHubProtocol, MessagePackHubProtocol};
use signal_examples_api::conformance::Conformance;

/// Names each request's user after its `x-user` header.
async fn identify(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (mut parts, body) = request.into_parts();
    if let Some(user) = parts.headers.get("x-user").and_then(|v| v.to_str().ok()) {
        let identity = Identity::new(user);
        parts.extensions.insert(identity);
    }
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

const CONNECTIONS: usize = 1_000;
const AT_ONCE: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_come_and_go_and_leave_nothing_behind() {
    let hub: Hub<_> = ConformanceHub.into_hub().configure(|o| {
        // A long-polling client that goes away without a DELETE is noticed
        // after this long without a poll.
        o.long_polling_disconnect_timeout = Duration::from_millis(300);
    });
    let handle = hub.handle();
    let app = axum::Router::new()
        .nest("/conformance", hub.router())
        .layer(axum::middleware::from_fn(identify));
    let addr = common::serve_router(app).await;

    let kinds: Vec<(TransportType, Arc<dyn HubProtocol>)> = vec![
        (TransportType::WebSockets, Arc::new(JsonHubProtocol)),
        (TransportType::WebSockets, Arc::new(MessagePackHubProtocol)),
        (TransportType::ServerSentEvents, Arc::new(JsonHubProtocol)),
        (TransportType::LongPolling, Arc::new(JsonHubProtocol)),
        (TransportType::LongPolling, Arc::new(MessagePackHubProtocol)),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..AT_ONCE {
        let kinds = kinds.clone();
        tasks.spawn(async move {
            for round in 0..CONNECTIONS / AT_ONCE {
                let n = worker * (CONNECTIONS / AT_ONCE) + round;
                let (transport, protocol) = &kinds[n % kinds.len()];
                let builder = HubConnection::builder(format!("http://{addr}/conformance"))
                    .transports([*transport])
                    .header("x-user", &format!("user{}", n % 40));
                let builder = if protocol.name() == "json" {
                    builder.protocol(JsonHubProtocol)
                } else {
                    builder.protocol(MessagePackHubProtocol)
                };
                let connection = builder.build().unwrap();
                connection
                    .start()
                    .await
                    .unwrap_or_else(|e| panic!("connection {n} over {transport}: {e}"));
                let id = connection.connection_id().unwrap();
                for group in [format!("g{}", n % 7), "everyone".to_owned()] {
                    connection
                        .invoke::<()>("addToGroup", (id.clone(), group))
                        .await
                        .unwrap();
                }
                let user: Option<String> = connection.invoke("userId", ()).await.unwrap();
                assert_eq!(user, Some(format!("user{}", n % 40)));
                if n % 3 == 0 {
                    // Gone without a goodbye: the transport just ends.
                    drop(connection);
                } else {
                    connection.stop().await;
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    common::eventually("every connection to be gone", || {
        handle.connection_count() == 0
    })
    .await;
    assert_eq!(handle.group_count(), 0, "group entries left behind");
    assert_eq!(handle.user_count(), 0, "user entries left behind");
    let metrics = handle.metrics();
    assert_eq!(metrics.connections_opened, CONNECTIONS as u64);
    assert_eq!(metrics.connections_closed, CONNECTIONS as u64);
}
