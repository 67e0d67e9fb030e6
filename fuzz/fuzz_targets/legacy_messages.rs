#![no_main]
//! What a 2.x client sends on a live connection: each input is the body of
//! one `send` (a form whose `data` is a hub invocation in 2.x's JSON: `H`, `M`,
//! `A`, `I`, `S`), on a connection negotiated, connected and started once, so
//! every execution reaches the invocation parser and the hub dispatch rather
//! than the token checks. Nothing may panic; every send is answered; the
//! connection stays usable (an `echo` after the input still answers).

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use libfuzzer_sys::fuzz_target;
use signal::legacy::LegacyEndpoint;
use tower::ServiceExt;

#[path = "http_common.rs"]
mod http_common;

use http_common::{Fuzz, FuzzHub, encode, runtime};

const DATA: &str = "%5B%7B%22name%22%3A%22fuzz%22%7D%5D";

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let _runtime = runtime().enter();
        let hub = FuzzHub.into_hub();
        let mut legacy = LegacyEndpoint::new()
            .rename("Fuzz", "fuzz")
            .key(b"fuzz")
            .configure(|o| {
                o.connection_timeout = Duration::from_millis(5);
                // The one connection never polls again: it must not time out.
                o.disconnect_timeout = Duration::from_secs(24 * 3600);
            });
        Router::new()
            .nest("/hub", hub.router_with_legacy(&mut legacy))
            .merge(legacy.router())
    })
}

async fn call(method: &str, uri: &str, body: Vec<u8>, form: bool) -> (u16, String) {
    let mut request = http::Request::builder().method(method).uri(uri);
    if form {
        request = request.header("content-type", "application/x-www-form-urlencoded");
    }
    let request = request.body(Body::from(body)).expect("a valid request");
    let response = tokio::time::timeout(Duration::from_secs(5), router().clone().oneshot(request))
        .await
        .expect("every request is answered")
        .expect("the router is infallible");
    let status = response.status().as_u16();
    let body = tokio::time::timeout(
        Duration::from_millis(50),
        axum::body::to_bytes(response.into_body(), 1 << 20),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|b| String::from_utf8_lossy(&b).into_owned())
    .unwrap_or_default();
    (status, body)
}

/// A connection negotiated, connected and started: its token, encoded.
async fn open() -> String {
    let (_, answer) = call(
        "GET",
        &format!("/signalr/negotiate?clientProtocol=2.1&connectionData={DATA}"),
        Vec::new(),
        false,
    )
    .await;
    let start = answer.find("\"ConnectionToken\":\"").expect("a token") + 19;
    let end = answer[start..].find('"').expect("a token's end") + start;
    let token = encode(
        &answer[start..end]
            .replace("\\u002B", "+")
            .replace("\\/", "/"),
    );
    let query = format!(
        "transport=longPolling&clientProtocol=2.1&connectionToken={token}&connectionData={DATA}"
    );
    let (status, _) = call(
        "POST",
        &format!("/signalr/connect?{query}"),
        Vec::new(),
        true,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call("GET", &format!("/signalr/start?{query}"), Vec::new(), false).await;
    assert_eq!(status, 200);
    query
}

fuzz_target!(|data: &[u8]| {
    router();
    static QUERY: Mutex<Option<String>> = Mutex::new(None);
    runtime().block_on(async {
        // Read into a binding first: a guard in the match's scrutinee would
        // live through its arms, and the arm below locks again.
        let known = QUERY.lock().unwrap().clone();
        let query = match known {
            Some(query) => query,
            None => {
                let query = open().await;
                *QUERY.lock().unwrap() = Some(query.clone());
                query
            }
        };
        let send = format!("/signalr/send?{query}");
        // Half the inputs as they are (any form body), half as the `data`
        // field (a 2.x invocation), where the parser is.
        let body = if data.first().is_some_and(|b| b & 1 == 0) {
            data[1..].to_vec()
        } else {
            let text = String::from_utf8_lossy(data.get(1..).unwrap_or_default());
            format!("data={}", encode(&text)).into_bytes()
        };
        let (status, _) = call("POST", &send, body, true).await;
        assert!(status < 500, "a send answered {status}");
        // The connection is still there and works.
        let (status, answer) = call(
            "POST",
            &send,
            b"data=%7B%22H%22%3A%22fuzz%22%2C%22M%22%3A%22echo%22%2C%22A%22%3A%5B%22ok%22%5D%2C%22I%22%3A0%7D".to_vec(),
            true,
        )
        .await;
        assert_eq!((status, answer.as_str()), (200, r#"{"R":"ok","I":"0"}"#));
    });
});
