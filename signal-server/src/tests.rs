//! Session tests that need a transport the test controls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use signal_core::{
    Arguments, HubDescriptor, HubMessage, HubProtocol, JsonHubProtocol, Payload, StreamInvocation,
};
use tokio::sync::mpsc;

use crate::connection::{ConnectionId, Duplex, Start};
use crate::frame::Outbound;
use crate::hub::Hub;
use crate::hub::context::Context;
use crate::hub::dispatch::{BoxFuture, Call, HubDispatch, Output};
use crate::hub::error::InvocationError;
use crate::hub::session;

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
                    Some((Ok(Payload::value(n)), n + 1))
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
    JsonHubProtocol
        .to_bytes(message)
        .expect("a test message encodes")
}

/// Frames a stalled transport took: it takes `capacity`, then stalls like a
/// client that stopped reading.
struct Taken(mpsc::Receiver<Outbound>);

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
    let start = Start {
        id: ConnectionId::from("stalled"),
        token: None,
        user: None,
        transport: signal_core::TransportType::WebSockets,
        remote: None,
        stateful: false,
        early: Vec::new(),
        request: None,
    };
    let (frames, taken) = mpsc::channel(capacity);
    let duplex = Duplex::in_process(from_client, frames, runtime.options.client_timeout);
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

/// Lets every task run until none can go further. With the clock paused (as
/// in these tests), time moves only once all tasks wait, so this is a point of
/// quiescence, not a guess at how long work takes.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Waits (in paused time) until `check` holds.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_client_stops_the_producer_at_the_stream_window() {
    let (produced, taken, _) = stall(5, |o| o.stream_buffer_capacity = 10).await;
    settle().await;

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

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_dropped_after_the_client_timeout() {
    let (_, _taken, disconnected) =
        stall(3, |o| o.client_timeout = Duration::from_millis(200)).await;
    settle().await;
    assert_eq!(disconnected.load(Ordering::SeqCst), 0);
    eventually("the stalled connection to be dropped", || {
        disconnected.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[test]
fn defaults_are_asp_net_cores() {
    let o = crate::HubOptions::default();
    assert_eq!(o.keep_alive_interval, Duration::from_secs(15));
    assert_eq!(o.client_timeout, Duration::from_secs(30));
    assert_eq!(o.handshake_timeout, Duration::from_secs(15));
    assert_eq!(o.maximum_receive_message_size, 32 * 1024);
    // One at a time: a connection's invocations run in order.
    assert_eq!(o.maximum_parallel_invocations, 1);
    assert_eq!(o.stream_buffer_capacity, 10);
    assert_eq!(o.client_result_timeout, Duration::from_secs(30));
    assert!(!o.stateful_reconnect);
    assert_eq!(o.stateful_reconnect_buffer_size, 100_000);
    assert_eq!(o.long_polling_timeout, Duration::from_secs(90));
    assert_eq!(o.long_polling_disconnect_timeout, Duration::from_secs(15));
    assert!(!o.enable_detailed_errors);
    assert_eq!(o.transports, signal_core::TransportType::ALL);
}

mod origins {
    //! Which WebSocket upgrades `origin_allowed` admits.

    use http::request::Parts;

    use crate::connection::{origin_allowed, parse_origins};

    fn request(host: Option<&str>, origin: Option<&str>) -> Parts {
        let mut request = http::Request::builder();
        if let Some(host) = host {
            request = request.header(http::header::HOST, host);
        }
        if let Some(origin) = origin {
            request = request.header(http::header::ORIGIN, origin);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[track_caller]
    fn check(allowed: &[&str], host: Option<&str>, origin: Option<&str>, expected: bool) {
        assert_eq!(
            origin_allowed(&parse_origins(allowed).unwrap(), &request(host, origin)),
            expected,
            "allowed {allowed:?}, Host {host:?}, Origin {origin:?}"
        );
    }

    #[test]
    fn without_an_origin_the_client_is_not_a_browser_and_is_admitted() {
        check(&[], Some("example.com"), None, true);
        check(&[], None, None, true);
    }

    #[test]
    fn the_hubs_own_origin_is_admitted() {
        check(&[], Some("example.com"), Some("https://example.com"), true);
        check(
            &[],
            Some("127.0.0.1:5000"),
            Some("http://127.0.0.1:5000"),
            true,
        );
        // A trailing slash, and host names compared without case.
        check(&[], Some("example.com"), Some("https://example.com/"), true);
        check(&[], Some("Example.COM"), Some("https://example.com"), true);
        check(&[], Some("example.com"), Some("HTTPS://EXAMPLE.COM"), true);
    }

    #[test]
    fn another_host_or_port_is_refused() {
        check(
            &[],
            Some("example.com"),
            Some("https://evil.example"),
            false,
        );
        check(
            &[],
            Some("example.com:8080"),
            Some("https://example.com"),
            false,
        );
        check(
            &[],
            Some("example.com"),
            Some("https://example.com:8080"),
            false,
        );
        check(
            &[],
            Some("127.0.0.1:5000"),
            Some("http://127.0.0.1:5001"),
            false,
        );
        // No Host to compare with.
        check(&[], None, Some("https://example.com"), false);
    }

    #[test]
    fn an_opaque_null_origin_is_refused() {
        check(&[], Some("example.com"), Some("null"), false);
        check(&["https://app.example"], Some("null"), Some("null"), false);
    }

    #[test]
    fn allowed_origins_are_admitted_from_any_host() {
        // Listed with a trailing slash; browsers send none.
        let allowed = ["https://app.example/"];
        check(
            &allowed,
            Some("api.example"),
            Some("https://app.example"),
            true,
        );
        check(
            &allowed,
            Some("api.example"),
            Some("http://app.example"),
            false,
        );
        check(
            &allowed,
            Some("api.example"),
            Some("https://app.example:8443"),
            false,
        );
        check(
            &allowed,
            Some("api.example"),
            Some("https://other.example"),
            false,
        );
    }
}
