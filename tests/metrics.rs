//! The hub's metrics: the snapshot a `HubHandle` reads, and what a `metrics`
//! recorder is given, after real clients (the Rust client over each transport,
//! JSON and MessagePack) connected, invoked, joined groups and left.

mod common;

use std::collections::BTreeMap;

use common::{eventually, within};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use signal::{Context, HubError, HubHandle, HubMetrics, TransportType};
use signal_client::{HubConnection, JsonHubProtocol, MessagePackHubProtocol};

/// What the counted hubs call on their clients.
#[signal::client]
pub trait CountedClient {
    /// A text sent to a group.
    async fn shout(&self, text: String);
}

/// A hub whose calls are counted.
#[signal::hub(client = CountedClient)]
pub trait Counted {
    /// `a + b`.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Joins `group`.
    async fn join(&self, cx: &Context<dyn CountedClient>, group: String) -> Result<(), HubError>;
    /// Leaves `group`.
    async fn leave(&self, cx: &Context<dyn CountedClient>, group: String) -> Result<(), HubError>;
    /// Sends `text` to `group`'s members.
    async fn shout_to(
        &self,
        cx: &Context<dyn CountedClient>,
        group: String,
        text: String,
    ) -> Result<(), HubError>;
}

/// The same contract under another hub name, so that the recorder test's
/// figures (labelled `hub="Recorded"`) are its own.
#[signal::hub(client = CountedClient)]
pub trait Recorded {
    /// `a + b`.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Joins `group`.
    async fn join(&self, cx: &Context<dyn CountedClient>, group: String) -> Result<(), HubError>;
}

struct CountedHub;

impl Counted for CountedHub {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn join(&self, cx: &Context<dyn CountedClient>, group: String) -> Result<(), HubError> {
        Ok(cx.groups().add(cx.connection_id().clone(), &group).await?)
    }

    async fn leave(&self, cx: &Context<dyn CountedClient>, group: String) -> Result<(), HubError> {
        Ok(cx
            .groups()
            .remove(cx.connection_id().clone(), &group)
            .await?)
    }

    async fn shout_to(
        &self,
        cx: &Context<dyn CountedClient>,
        group: String,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().group(&group).shout(text).await?)
    }
}

impl Recorded for CountedHub {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn join(&self, cx: &Context<dyn CountedClient>, group: String) -> Result<(), HubError> {
        Ok(cx.groups().add(cx.connection_id().clone(), &group).await?)
    }
}

/// A started client of the hub at `url` over `transport`, JSON or MessagePack.
async fn connect(url: String, transport: TransportType, msgpack: bool) -> HubConnection {
    let builder = HubConnection::builder(url).transports([transport]);
    let builder = if msgpack {
        builder.protocol(MessagePackHubProtocol)
    } else {
        builder.protocol(JsonHubProtocol)
    };
    let connection = builder.build().expect("a client");
    within("the client to start", connection.start())
        .await
        .expect("the client starts");
    connection
}

fn counts(pairs: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
    pairs.iter().copied().collect()
}

async fn settled<C: ?Sized + signal::ClientContract>(
    handle: &HubHandle<C>,
    what: &str,
    check: impl Fn(&HubMetrics) -> bool,
) -> HubMetrics {
    eventually(what, || check(&handle.metrics())).await;
    handle.metrics()
}

#[tokio::test]
async fn the_snapshot_counts_connections_messages_invocations_and_groups() {
    let hub = Counted::into_hub(CountedHub);
    let handle = hub.handle();
    let addr = common::serve_router(axum::Router::new().nest("/counted", hub.router())).await;
    let url = format!("http://{addr}/counted");
    assert_eq!(handle.metrics(), HubMetrics::default());

    let ws = connect(url.clone(), TransportType::WebSockets, false).await;
    let lp = connect(url.clone(), TransportType::LongPolling, true).await;
    let sse = connect(url.clone(), TransportType::ServerSentEvents, false).await;
    let opened = settled(&handle, "three connections", |m| m.connections == 3).await;
    assert_eq!(
        opened.connections_by_transport,
        counts(&[
            ("LongPolling", 1),
            ("ServerSentEvents", 1),
            ("WebSockets", 1)
        ])
    );
    assert_eq!(
        opened.connections_by_protocol,
        counts(&[("json", 2), ("messagepack", 1)])
    );
    assert_eq!(opened.connections_over(TransportType::LongPolling), 1);
    assert_eq!(opened.connections_speaking("messagepack"), 1);
    assert_eq!(
        (opened.connections_opened, opened.connections_closed),
        (3, 0)
    );
    assert_eq!(opened.invocations, 0);
    assert_eq!(opened.messages_received, 0);
    assert_eq!(opened.messages_sent, 0);
    assert_eq!(opened.groups, 0);

    let ws_hub = CountedProxy::new(&ws);
    let lp_hub = CountedProxy::new(&lp);
    assert_eq!(ws_hub.add(2, 40).await.unwrap(), 42);
    ws_hub.join("g".into()).await.unwrap();
    lp_hub.join("g".into()).await.unwrap();
    // Two members get the shout, and the caller its Completion.
    ws_hub.shout_to("g".into(), "hey".into()).await.unwrap();
    let busy = settled(&handle, "the invocations", |m| m.messages_sent == 6).await;
    assert_eq!(busy.invocations, 4);
    assert_eq!(busy.messages_received, 4);
    assert_eq!(busy.groups, 1);

    // A member leaving its group, then its connection.
    lp_hub.leave("g".into()).await.unwrap();
    within("the long polling client to stop", lp.stop()).await;
    let after = settled(&handle, "the long polling connection to end", |m| {
        m.connections == 2
    })
    .await;
    assert_eq!(
        after.connections_by_transport,
        counts(&[("ServerSentEvents", 1), ("WebSockets", 1)])
    );
    assert_eq!(after.connections_by_protocol, counts(&[("json", 2)]));
    assert_eq!((after.connections_opened, after.connections_closed), (3, 1));
    assert_eq!(after.invocations, 5);
    // The leave, and the client's Close.
    assert_eq!(after.messages_received, 6);
    assert_eq!(after.messages_sent, 7);
    assert_eq!(after.groups, 1);

    // The group ends with its last member's connection.
    within("the WebSocket client to stop", ws.stop()).await;
    within("the SSE client to stop", sse.stop()).await;
    let end = settled(&handle, "every connection to end", |m| m.connections == 0).await;
    assert_eq!(end.connections_by_transport, BTreeMap::new());
    assert_eq!((end.connections_opened, end.connections_closed), (3, 3));
    assert_eq!(end.groups, 0);
}

#[tokio::test]
async fn a_recorder_is_given_the_figures_by_name_and_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("no other recorder in this test binary");

    let hub = Recorded::into_hub(CountedHub);
    let handle = hub.handle();
    let addr = common::serve_router(axum::Router::new().nest("/recorded", hub.router())).await;
    let url = format!("http://{addr}/recorded");
    let ws = connect(url.clone(), TransportType::WebSockets, false).await;
    let lp = connect(url.clone(), TransportType::LongPolling, true).await;
    let ws_hub = RecordedProxy::new(&ws);
    assert_eq!(ws_hub.add(1, 2).await.unwrap(), 3);
    ws_hub.join("g".into()).await.unwrap();
    assert_eq!(RecordedProxy::new(&lp).add(3, 4).await.unwrap(), 7);
    within("the long polling client to stop", lp.stop()).await;
    let end = settled(&handle, "the long polling connection to end", |m| {
        m.connections_closed == 1
    })
    .await;

    // The recorder saw what the snapshot says, under the documented names.
    let mut seen: Vec<String> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key()
                .labels()
                .any(|l| l.key() == "hub" && l.value() == "Recorded")
        })
        .map(|(key, _, _, value)| {
            let labels: Vec<String> = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(n) => n.to_string(),
                DebugValue::Gauge(g) => g.to_string(),
                DebugValue::Histogram(h) => format!("{h:?}"),
            };
            format!("{}{{{}}} {value}", key.key().name(), labels.join(","))
        })
        .collect();
    seen.sort();
    let ws_labels = "hub=Recorded,transport=WebSockets,protocol=json";
    let lp_labels = "hub=Recorded,transport=LongPolling,protocol=messagepack";
    let mut expected = vec![
        format!("signal_connections{{{ws_labels}}} 1"),
        format!("signal_connections{{{lp_labels}}} 0"),
        format!("signal_connections_opened_total{{{ws_labels}}} 1"),
        format!("signal_connections_opened_total{{{lp_labels}}} 1"),
        format!("signal_connections_closed_total{{{lp_labels}}} 1"),
        // Registered with the first connection of its labels, as the other
        // handles are: a counter at zero, not a missing series.
        format!("signal_connections_closed_total{{{ws_labels}}} 0"),
        format!("signal_invocations_total{{{ws_labels}}} 2"),
        format!("signal_invocations_total{{{lp_labels}}} 1"),
        format!("signal_messages_received_total{{{ws_labels}}} 2"),
        format!("signal_messages_received_total{{{lp_labels}}} 2"),
        format!("signal_messages_sent_total{{{ws_labels}}} 2"),
        format!("signal_messages_sent_total{{{lp_labels}}} 1"),
        "signal_groups{hub=Recorded} 1".to_owned(),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    // The long polling client's Close counts as a message in.
    assert_eq!(
        (end.invocations, end.messages_received, end.messages_sent),
        (3, 4, 3)
    );
}
