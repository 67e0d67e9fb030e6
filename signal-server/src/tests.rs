//! Session tests that need a transport the test controls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use signal_core::{Arguments, HubDescriptor, HubMessage, JsonHubProtocol, StreamInvocation};
use tokio::sync::mpsc;

use crate::connection::{
    ChannelOutgoing, ConnectionId, Duplex, Incoming, Message, Start, TransportSink,
};
use crate::frame::Frame;
use crate::hub::Hub;
use crate::hub::context::Context;
use crate::hub::dispatch::{BoxFuture, Call, HubDispatch, Output};
use crate::hub::error::InvocationError;
use crate::hub::session;
use tokio_util::sync::CancellationToken;

/// A hub whose `numbers` stream never ends, counting what it produced.
struct Producer {
    produced: Arc<AtomicUsize>,
    disconnected: Arc<AtomicUsize>,
}

impl HubDispatch for Producer {
    type Client = ();

    fn descriptor(&self) -> HubDescriptor {
        signal_core::descriptor::DescriptorBuilder::new().finish("Producer", "", vec![], None)
    }

    fn dispatch<'a>(
        &'a self,
        _cx: &'a Context,
        _call: Call,
    ) -> BoxFuture<'a, Result<Output, InvocationError>> {
        let produced = self.produced.clone();
        Box::pin(async move {
            let numbers = futures_util::stream::unfold(0u64, move |n| {
                let produced = produced.clone();
                async move {
                    produced.fetch_add(1, Ordering::SeqCst);
                    let raw = serde_json::value::to_raw_value(&n).expect("a number serializes");
                    Some((Ok(raw), n + 1))
                }
            });
            Ok(Output::Stream(Box::pin(numbers)))
        })
    }

    fn on_disconnected<'a>(
        &'a self,
        _cx: &'a Context,
        _error: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        self.disconnected.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }
}

fn record(message: &HubMessage) -> Bytes {
    Bytes::from(JsonHubProtocol.to_record(message))
}

/// Frames a stalled transport took: it takes `capacity`, then stalls like a
/// client that stopped reading.
struct Taken(mpsc::Receiver<Frame>);

impl Taken {
    fn load(&self, _: Ordering) -> usize {
        self.0.len()
    }
}

/// Runs a `numbers` stream into a transport that takes `capacity` frames.
async fn stall(
    capacity: usize,
    configure: impl FnOnce(&mut crate::HubOptions),
) -> (Arc<AtomicUsize>, Taken, Arc<AtomicUsize>) {
    let produced = Arc::new(AtomicUsize::new(0));
    let disconnected = Arc::new(AtomicUsize::new(0));
    let hub = Hub::new(Producer {
        produced: produced.clone(),
        disconnected: disconnected.clone(),
    })
    .configure(configure);
    let runtime = hub.into_runtime();
    let (to_server, from_client) = mpsc::channel::<Bytes>(8);
    let incoming: Incoming = Box::pin(futures_util::stream::unfold(
        from_client,
        |mut rx| async move {
            rx.recv()
                .await
                .map(|chunk| (Ok(Message::Binary(chunk)), rx))
        },
    ));
    let start = Start {
        id: ConnectionId::from("stalled"),
        token: None,
        user: None,
        transport: signal_core::TransportType::WebSockets,
        remote: None,
        stateful: false,
        early: Vec::new(),
    };
    let (frames, taken) = mpsc::channel(capacity);
    let outgoing = TransportSink::Channel(ChannelOutgoing::new(frames, CancellationToken::new()));
    let duplex = Duplex::new(incoming, outgoing, runtime.options.client_timeout);
    tokio::spawn(session::run(runtime, start, duplex));
    let taken = Taken(taken);
    to_server
        .send(Bytes::from_static(
            b"{\"protocol\":\"json\",\"version\":1}\x1e",
        ))
        .await
        .unwrap();
    to_server
        .send(record(&HubMessage::StreamInvocation(StreamInvocation {
            invocation_id: "1".into(),
            target: "numbers".into(),
            arguments: Arguments::default(),
            stream_ids: vec![],
            headers: Default::default(),
        })))
        .await
        .unwrap();
    // The client keeps its side open (and silent).
    std::mem::forget(to_server);
    (produced, taken, disconnected)
}

#[tokio::test]
async fn a_stalled_client_stops_the_producer_at_the_stream_window() {
    let (produced, taken, _) = stall(5, |o| o.stream_buffer_capacity = 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The handshake answer and four items reached the transport, which then
    // stalled (and with it the session: items written before the stall freed
    // their slots, but nothing polls the producer again until writes resume).
    // The producer ran at most a window (10) ahead.
    assert_eq!(taken.load(Ordering::SeqCst), 5);
    let produced = produced.load(Ordering::SeqCst);
    assert!(
        produced <= 4 + 10 + 1,
        "the producer ran ahead: {produced} items"
    );
    assert!(produced >= 10, "the window was not used: {produced} items");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_client_timeout() {
    let (_, _taken, disconnected) = stall(3, |o| o.client_timeout = Duration::from_millis(200)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(disconnected.load(Ordering::SeqCst), 0);
    for _ in 0..50 {
        if disconnected.load(Ordering::SeqCst) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the stalled connection was never dropped");
}
