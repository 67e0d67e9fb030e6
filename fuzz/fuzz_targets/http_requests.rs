#![no_main]
//! The HTTP endpoints, as a client on the internet reaches them: negotiate,
//! the Core transports (POST, GET, DELETE on the hub's path), and the 2.x
//! layer (negotiate, connect, send, poll, abort, ping, start, the proxy
//! script). Each input is a few requests with any method, query and body; in
//! a query, `{T}` stands for a freshly negotiated Core connection token and
//! `{L}` for a 2.x one, so that the fuzzer reaches past the token checks.
//! Nothing may panic, and every request must be answered.

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::Router;
use axum::body::Body;
use libfuzzer_sys::fuzz_target;
use signal::legacy::LegacyEndpoint;
use tower::ServiceExt;

#[path = "http_common.rs"]
mod http_common;

use http_common::{Fuzz, FuzzHub, encode, runtime};

const PATHS: &[&str] = &[
    "/hub/negotiate",
    "/hub",
    "/signalr/negotiate",
    "/signalr/connect",
    "/signalr/reconnect",
    "/signalr/start",
    "/signalr/send",
    "/signalr/poll",
    "/signalr/abort",
    "/signalr/ping",
    "/signalr/hubs",
];

#[derive(Arbitrary, Debug)]
struct Request {
    method: u8,
    path: u8,
    query: String,
    body: Vec<u8>,
    accept_events: bool,
    form: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    requests: Vec<Request>,
}

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let _runtime = runtime().enter();
        {
            let hub = FuzzHub.into_hub().configure(|o| {
                // Polls answer at once, so that each input runs quickly.
                o.long_polling_timeout = Duration::from_millis(5);
            });
            let mut legacy = LegacyEndpoint::new().rename("Fuzz", "fuzz").configure(|o| {
                o.enable_jsonp = true;
                o.connection_timeout = Duration::from_millis(5);
            });
            Router::new()
                .nest("/hub", hub.router_with_legacy(&mut legacy))
                .merge(legacy.router())
        }
    })
}

async fn call(method: &str, uri: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Option<String> {
    let mut request = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::from(body)).ok()?;
    let response = tokio::time::timeout(Duration::from_secs(5), router().clone().oneshot(request))
        .await
        .expect("every request is answered")
        .expect("the router is infallible");
    // Streams (SSE, forever frame) are read a little, then dropped, as a
    // client that goes away.
    let body = tokio::time::timeout(
        Duration::from_millis(20),
        axum::body::to_bytes(response.into_body(), 1 << 20),
    )
    .await
    .ok()?
    .ok()?;
    String::from_utf8(body.to_vec()).ok()
}

/// The value of `"key":"…"` in a JSON document, unescaped enough for tokens.
fn field(document: &str, key: &str) -> Option<String> {
    let start = document.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = document[start..].find('"')? + start;
    Some(
        document[start..end]
            .replace("\\u002B", "+")
            .replace("\\/", "/"),
    )
}

fuzz_target!(|input: Input| {
    router();
    runtime().block_on(async {
        let core = call("POST", "/hub/negotiate?negotiateVersion=1", Vec::new(), &[])
            .await
            .and_then(|answer| field(&answer, "connectionToken"))
            .unwrap_or_default();
        let legacy = call(
            "GET",
            "/signalr/negotiate?clientProtocol=2.1&connectionData=%5B%7B%22name%22%3A%22fuzz%22%7D%5D",
            Vec::new(),
            &[],
        )
        .await
        .and_then(|answer| field(&answer, "ConnectionToken"))
        .unwrap_or_default();
        for request in input.requests.into_iter().take(4) {
            let method = ["GET", "POST", "DELETE", "OPTIONS"][usize::from(request.method % 4)];
            let path = PATHS[usize::from(request.path) % PATHS.len()];
            let query = request
                .query
                .replace("{T}", &encode(&core))
                .replace("{L}", &encode(&legacy));
            let uri = format!("{path}?{query}");
            let mut headers = Vec::new();
            if request.accept_events {
                headers.push(("accept", "text/event-stream"));
            }
            if request.form {
                headers.push(("content-type", "application/x-www-form-urlencoded"));
            }
            let _ = call(method, &uri, request.body, &headers).await;
        }
    });
});
