//! Server behaviour as the wire shows it: keep-alive pings, timeouts, limits and
//! the texts they close with, invocation order, slow clients, stateful
//! reconnect, and the raw shape of the HTTP transports. Each test runs a real
//! server on a loopback port and talks to it over real WebSockets and HTTP.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use signal::HubOptions;
use signal::Target;
use signal::protocol::Arguments;
use tokio_tungstenite::tungstenite::Message;

const TOO_LARGE_32K: &str = "Connection closed with an error. InvalidDataException: The maximum message size of 32768B was exceeded. The message size can be configured in HubOptions.";

#[tokio::test]
async fn idle_connections_get_pings() {
    let server = serve(options(|o| {
        o.keep_alive_interval = Duration::from_millis(100)
    }))
    .await;
    let mut client = WsClient::connect(server.addr).await;
    assert_eq!(client.next().await.as_deref(), Some(PING));
    assert_eq!(client.next().await.as_deref(), Some(PING));
}

#[tokio::test]
async fn a_silent_client_is_closed_with_an_error() {
    let mut server = serve(options(|o| {
        o.keep_alive_interval = Duration::from_secs(60);
        o.client_timeout = Duration::from_millis(300);
    }))
    .await;
    let mut client = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    let reason = "Connection closed with an error. No message was received from the client within the client timeout (300ms).";
    assert_eq!(client.next().await, Some(close_with(reason)));
    client.expect_end().await;
    assert_eq!(server.events.next().await, format!("disconnected {reason}"));
}

#[tokio::test]
async fn messages_keep_a_client_alive() {
    let client_timeout = Duration::from_secs(1);
    let mut server = serve(options(|o| o.client_timeout = client_timeout)).await;
    let mut client = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    // Pings far more often than the timeout, for three timeouts' worth.
    let started = tokio::time::Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(50));
    while started.elapsed() < 3 * client_timeout {
        every.tick().await;
        client.send(PING).await;
    }
    client
        .send(&invocation("1", "echo", "\"still here\""))
        .await;
    assert_eq!(
        client.next_message().await,
        Some(completion("1", "\"still here\""))
    );
    assert_eq!(server.events.try_next(), None, "the connection never ended");
}

#[tokio::test]
async fn no_handshake_in_time_closes_the_socket() {
    let mut server = serve(options(|o| {
        o.handshake_timeout = Duration::from_millis(200)
    }))
    .await;
    let mut silent = WsClient::open(server.addr, "").await;
    silent.expect_end().await;
    // The connection never started: the first event the hub reports is the
    // next connection's.
    let _next = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
}

#[tokio::test]
async fn handshake_refusals_name_what_was_refused() {
    let server = serve(HubOptions::default()).await;
    for (request, error) in [
        (
            "{\"protocol\":\"xml\",\"version\":1}",
            "The protocol 'xml' is not supported.",
        ),
        (
            "{\"protocol\":\"MessagePack\",\"version\":3}",
            "The server does not support version 3 of the 'MessagePack' protocol.",
        ),
        (
            "{\"protocol\":\"json\",\"version\":3}",
            "The server does not support version 3 of the 'json' protocol.",
        ),
        (
            "{\"protocol\":\"json\"}",
            "the handshake request is malformed: missing field `version` at line 1 column 19; expected {\"protocol\":\"json\",\"version\":1}",
        ),
    ] {
        let mut client = WsClient::open(server.addr, "").await;
        client.send(&record(request)).await;
        assert_eq!(
            client.next().await,
            Some(record(&serde_json::json!({ "error": error }).to_string()))
        );
        client.expect_end().await;
    }
    // Version 0 is accepted, as ASP.NET Core accepts it.
    let mut client = WsClient::open(server.addr, "").await;
    client.handshake(0).await;

    // A hub restricted to JSON refuses MessagePack as any unknown protocol.
    let server = serve(options(|o| o.protocols.retain(|name| name == "json"))).await;
    let mut client = WsClient::open(server.addr, "").await;
    client
        .send(&record("{\"protocol\":\"messagepack\",\"version\":1}"))
        .await;
    assert_eq!(
        client.next().await,
        Some(record(
            "{\"error\":\"The protocol 'messagepack' is not supported.\"}"
        ))
    );
    client.expect_end().await;
}

#[tokio::test]
async fn handshake_and_messages_in_one_frame() {
    let server = serve(HubOptions::default()).await;
    let mut client = WsClient::open(server.addr, "").await;
    client
        .send(&format!(
            "{}{}",
            record("{\"protocol\":\"json\",\"version\":2}"),
            invocation("1", "echo", "\"hi\"")
        ))
        .await;
    assert_eq!(client.next().await.as_deref(), Some("{}\u{1e}"));
    assert_eq!(client.next().await, Some(completion("1", "\"hi\"")));
}

#[tokio::test]
async fn unknown_message_types_are_ignored() {
    let server = serve(HubOptions::default()).await;
    let mut client = WsClient::connect(server.addr).await;
    client
        .send(&format!(
            "{}{}",
            record("{\"type\":99,\"whatever\":[1]}"),
            invocation("1", "echo", "\"after\"")
        ))
        .await;
    assert_eq!(client.next().await, Some(completion("1", "\"after\"")));
}

#[tokio::test]
async fn a_panic_fails_only_its_call() {
    let server = serve(HubOptions::default()).await;
    let mut client = WsClient::connect(server.addr).await;
    client.send(&invocation("1", "panic", "")).await;
    assert_eq!(
        client.next().await,
        Some(record(
            "{\"type\":3,\"invocationId\":\"1\",\"error\":\"An unexpected error occurred invoking 'panic' on the server.\"}"
        ))
    );
    client.send(&invocation("2", "echo", "\"after\"")).await;
    assert_eq!(client.next().await, Some(completion("2", "\"after\"")));
}

#[tokio::test]
async fn failed_fire_and_forget_calls_get_no_completion() {
    let server = serve(HubOptions::default()).await;
    let mut client = WsClient::connect(server.addr).await;
    for fire_and_forget in [
        "{\"type\":1,\"target\":\"nope\",\"arguments\":[]}",
        "{\"type\":1,\"target\":\"echo\",\"arguments\":[1,2]}",
        "{\"type\":1,\"target\":\"panic\",\"arguments\":[]}",
    ] {
        client.send(&record(fire_and_forget)).await;
    }
    // The first record to come answers the call after them.
    client.send(&invocation("1", "echo", "\"after\"")).await;
    assert_eq!(client.next().await, Some(completion("1", "\"after\"")));
}

#[tokio::test]
async fn a_malformed_message_closes_with_what_was_wrong() {
    let mut server = serve(HubOptions::default()).await;
    let mut client = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    client
        .send(&record(
            "{\"type\":1,\"invocationId\":\"1\",\"arguments\":[]}",
        ))
        .await;
    let reason = "Connection closed with an error. InvalidDataException: malformed message: missing required property 'target' for message type 1";
    assert_eq!(client.next().await, Some(close_with(reason)));
    client.expect_end().await;
    assert_eq!(server.events.next().await, format!("disconnected {reason}"));
}

#[tokio::test]
async fn a_message_over_the_limit_closes_with_the_limit() {
    let server = serve(HubOptions::default()).await;
    // Past the hub's limit (32 KiB) within the WebSocket frame cap (128 KiB):
    // the record reader refuses it before its separator arrives.
    let mut client = WsClient::connect(server.addr).await;
    client.send(&"x".repeat(40 * 1024)).await;
    assert_eq!(client.next().await, Some(close_with(TOO_LARGE_32K)));
    client.expect_end().await;
    // Past the frame cap: the WebSocket layer refuses it, with the same Close.
    let mut client = WsClient::connect(server.addr).await;
    client.send(&"x".repeat(200 * 1024)).await;
    assert_eq!(client.next().await, Some(close_with(TOO_LARGE_32K)));
    client.expect_end().await;
}

#[tokio::test]
async fn an_upload_stream_id_in_use_closes_the_connection() {
    let server = serve(HubOptions::default()).await;
    let mut client = WsClient::connect(server.addr).await;
    let uploading = |id: &str| {
        record(&format!(
            "{{\"type\":1,\"invocationId\":\"{id}\",\"target\":\"echo\",\"arguments\":[\"a\"],\"streamIds\":[\"s1\"]}}"
        ))
    };
    // The first call never sees its stream completed, so `s1` stays in use.
    client.send(&uploading("1")).await;
    assert_eq!(client.next().await, Some(completion("1", "\"a\"")));
    client.send(&uploading("2")).await;
    assert_eq!(
        client.next().await,
        Some(close_with(
            "Connection closed with an error. InvalidDataException: The stream id 's1' is already in use."
        ))
    );
    client.expect_end().await;
}

#[tokio::test]
async fn invocations_of_one_connection_run_in_order() {
    let mut server = serve(HubOptions::default()).await;
    let mut client = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    // One frame: both calls are queued before the first starts.
    client
        .send(&format!(
            "{}{}",
            invocation("1", "wait", "\"slow\""),
            invocation("2", "echo", "\"fast\"")
        ))
        .await;
    assert_eq!(server.events.next().await, "waiting slow");
    // Had `echo` run beside `wait`, its completion would already be on its way,
    // ahead of the one `wait` can only send once the gate opens.
    server.gate.add_permits(1);
    assert_eq!(client.next().await, Some(completion("1", "\"slow\"")));
    assert_eq!(client.next().await, Some(completion("2", "\"fast\"")));
}

#[tokio::test]
async fn the_pending_invocation_cap_closes_only_the_flooding_connection() {
    let mut server = serve(options(|o| {
        o.pending_invocation_capacity = 2;
        // How long the close waits for the held call: it never returns.
        o.shutdown_timeout = Duration::from_millis(100);
    }))
    .await;
    let mut flooder = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    let mut bystander = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");

    flooder.send(&invocation("1", "wait", "\"held\"")).await;
    assert_eq!(server.events.next().await, "waiting held");
    // Three calls wait behind the held one: one more than the cap. The Ping
    // after them is something more for the connection to read.
    for id in ["2", "3", "4", "5"] {
        flooder.send(&invocation(id, "echo", "\"x\"")).await;
    }
    flooder.send(PING).await;
    let reason = "Connection closed with an error. More than 2 invocations were waiting to run.";
    assert_eq!(flooder.next().await, Some(close_with(reason)));
    flooder.expect_end().await;
    assert_eq!(server.events.next().await, format!("disconnected {reason}"));

    bystander
        .send(&invocation("1", "echo", "\"unaffected\""))
        .await;
    assert_eq!(
        bystander.next().await,
        Some(completion("1", "\"unaffected\""))
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_and_the_others_get_every_message() {
    const CAPACITY: usize = 8;
    // Far more than the loopback socket buffers and the queue hold together.
    const MOST: usize = 1024;
    let mut server = serve(options(|o| {
        o.outgoing_queue_capacity = CAPACITY;
        // Also how long a write to the stalled socket may block.
        o.client_timeout = Duration::from_secs(2);
    }))
    .await;
    let mut reader = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    let stalled = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    // The stalled client stops reading but keeps sending, so that only its
    // reading can get it closed.
    let (mut stalled_sink, mut stalled_stream) = stalled.into_socket().split();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        loop {
            every.tick().await;
            if stalled_sink.send(Message::text(PING)).await.is_err() {
                break;
            }
        }
    });

    let payload = "x".repeat(64 * 1024);
    let tick = |n: usize| {
        record(&format!(
            "{{\"type\":1,\"target\":\"tick\",\"arguments\":[{n},\"{payload}\"]}}"
        ))
    };
    // In step with the reader, so that only the stalled client falls behind.
    let mut sent = 0;
    let disconnected = loop {
        if let Some(event) = server.events.try_next() {
            break event;
        }
        if sent == MOST {
            // The stalled connection ends once its blocked write gives up;
            // the reader keeps sending meanwhile, so that only the stalled
            // one can be timed out.
            let mut every = tokio::time::interval(Duration::from_millis(100));
            break within("the stalled connection to end", async {
                loop {
                    tokio::select! {
                        event = server.events.next() => break event,
                        _ = every.tick() => reader.send(PING).await,
                    }
                }
            })
            .await;
        }
        let arguments = Arguments::from_values([serde_json::json!(sent), payload.clone().into()]);
        server
            .handle
            .clients()
            .all()
            .send("tick", arguments)
            .await
            .unwrap();
        let received = reader.next_message().await.expect("the reader is served");
        assert!(received == tick(sent), "the reader got tick {sent}");
        reader.send(PING).await;
        sent += 1;
    };
    assert_eq!(
        disconnected,
        "disconnected Connection closed with an error. The client did not keep up: 8 messages were waiting to be sent to it."
    );
    eventually("the stalled connection to be gone", || {
        server.handle.connection_count() == 1
    })
    .await;

    reader
        .send(&invocation("1", "echo", "\"unaffected\""))
        .await;
    assert_eq!(
        reader.next_message().await,
        Some(completion("1", "\"unaffected\""))
    );

    // What the stalled client did get is every message up to some point, in
    // order; then its socket ends.
    let mut got = 0;
    while let Some(Ok(Message::Text(text))) =
        within("the stalled socket to end", stalled_stream.next()).await
    {
        for record in text.as_str().split_inclusive(RS) {
            assert!(record == tick(got), "the stalled client got tick {got}");
            got += 1;
        }
    }
    assert!(got < sent, "the stalled client was not served everything");
}

/// Invokes `target` and returns the record that answers it.
async fn call(client: &mut WsClient, target: &str, arguments: &str) -> String {
    client.send(&invocation("1", target, arguments)).await;
    client.next_message().await.expect("an answer")
}

#[tokio::test]
async fn items_are_kept_per_connection() {
    let server = serve(HubOptions::default()).await;
    let mut a = WsClient::connect(server.addr).await;
    let mut b = WsClient::connect(server.addr).await;
    assert_eq!(
        call(&mut a, "remember", "\"a1\"").await,
        completion("1", "null")
    );
    assert_eq!(call(&mut b, "recall", "").await, completion("1", "null"));
    assert_eq!(call(&mut a, "recall", "").await, completion("1", "\"a1\""));
    assert_eq!(
        call(&mut a, "remember", "\"a2\"").await,
        completion("1", "\"a1\"")
    );
    assert_eq!(
        call(&mut b, "remember", "\"b1\"").await,
        completion("1", "null")
    );
    assert_eq!(call(&mut a, "recall", "").await, completion("1", "\"a2\""));
    assert_eq!(call(&mut b, "recall", "").await, completion("1", "\"b1\""));
}

#[tokio::test]
async fn server_sent_events_frame_each_message() {
    let server = serve(HubOptions::default()).await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, server.addr, false).await.token;
    let mut events = SseClient::open(&client, server.addr, &token).await;
    assert_eq!(
        post(
            &client,
            server.addr,
            &token,
            record("{\"protocol\":\"json\",\"version\":1}")
        )
        .await,
        200
    );
    assert_eq!(events.next().await.as_deref(), Some("data: {}\u{1e}"));
    // Two records in one POST, each answered as its own event.
    let body = format!(
        "{}{}",
        invocation("1", "echo", "\"a\""),
        invocation("2", "echo", "\"b\"")
    );
    assert_eq!(post(&client, server.addr, &token, body).await, 200);
    assert_eq!(
        events.next().await,
        Some(format!("data: {}", completion("1", "\"a\"")))
    );
    assert_eq!(
        events.next().await,
        Some(format!("data: {}", completion("2", "\"b\"")))
    );
    // The same token cannot open a second receiving transport.
    let second = client
        .get(format!("http://{}/hub?id={token}", server.addr))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 409);
}

#[tokio::test]
async fn server_sent_events_get_pings() {
    let server = serve(options(|o| {
        o.keep_alive_interval = Duration::from_millis(100)
    }))
    .await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, server.addr, false).await.token;
    let mut events = SseClient::open(&client, server.addr, &token).await;
    post(
        &client,
        server.addr,
        &token,
        record("{\"protocol\":\"json\",\"version\":1}"),
    )
    .await;
    assert_eq!(events.next().await.as_deref(), Some("data: {}\u{1e}"));
    assert_eq!(events.next().await, Some(format!("data: {PING}")));
    assert_eq!(events.next().await, Some(format!("data: {PING}")));
}

#[tokio::test]
async fn no_handshake_in_time_ends_the_http_transports() {
    let mut server = serve(options(|o| {
        o.handshake_timeout = Duration::from_millis(200)
    }))
    .await;
    let client = reqwest::Client::new();

    let token = negotiate(&client, server.addr, false).await.token;
    let mut events = SseClient::open(&client, server.addr, &token).await;
    assert_eq!(events.next().await, None);

    let token = negotiate(&client, server.addr, false).await.token;
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, String::new())
    );
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (204, String::new())
    );

    // Neither connection started: the first event is the next connection's.
    let _next = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
}

#[tokio::test]
async fn long_polling_without_polls_ends_the_connection() {
    let mut server = serve(options(|o| {
        o.long_polling_disconnect_timeout = Duration::from_millis(300);
    }))
    .await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, server.addr, false).await.token;
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, String::new())
    );
    let handshake = record("{\"protocol\":\"json\",\"version\":1}");
    assert_eq!(post(&client, server.addr, &token, handshake).await, 200);
    assert_eq!(server.events.next().await, "connected LongPolling");
    // No further poll: the server gives up on the client.
    assert_eq!(server.events.next().await, "disconnected ");
    // What was queued (the handshake answer) is still handed out; then the end.
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, "{}\u{1e}".to_owned())
    );
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (204, String::new())
    );
}

#[tokio::test]
async fn long_polling_may_post_its_handshake_before_the_first_poll() {
    // ASP.NET Core accepts this order; some clients send the handshake first.
    let mut server = serve(HubOptions::default()).await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, server.addr, false).await.token;
    let handshake = record("{\"protocol\":\"json\",\"version\":1}");
    let echo = invocation("1", "echo", "\"early\"");
    assert_eq!(post(&client, server.addr, &token, handshake).await, 200);
    assert_eq!(post(&client, server.addr, &token, echo).await, 200);
    // The first poll starts the connection, as ever.
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, String::new())
    );
    assert_eq!(server.events.next().await, "connected LongPolling");
    let mut body = String::new();
    while body.matches(RS).count() < 2 {
        let (status, text) = poll(&client, server.addr, &token).await;
        assert_eq!(status, 200);
        body.push_str(&text);
    }
    assert_eq!(
        body,
        "{}\u{1e}{\"type\":3,\"invocationId\":\"1\",\"result\":\"early\"}\u{1e}"
    );
}

#[tokio::test]
async fn posts_before_the_first_poll_are_few_and_small() {
    // A client that never polls cannot make the server hold much for it.
    let server = serve(HubOptions::default()).await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, server.addr, false).await.token;
    let too_big = "x".repeat(32 * 1024 + 1);
    let answer = within(
        "the oversized early POST",
        client
            .post(format!("http://{}/hub?id={token}", server.addr))
            .body(too_big)
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 413);
    assert_eq!(
        answer.text().await.unwrap(),
        "The request body exceeds 32768 bytes."
    );
    for n in 0..4 {
        let body = invocation(&n.to_string(), "echo", "\"early\"");
        assert_eq!(post(&client, server.addr, &token, body).await, 200);
    }
    let fifth = invocation("4", "echo", "\"early\"");
    assert_eq!(post(&client, server.addr, &token, fifth).await, 404);
}

#[tokio::test]
async fn a_post_for_a_token_never_negotiated_is_404() {
    let server = serve(HubOptions::default()).await;
    let client = reqwest::Client::new();
    assert_eq!(
        post(&client, server.addr, "no-such-token", record("{}")).await,
        404
    );
}

/// Negotiates a long-polling connection, starts it, and completes its handshake.
async fn long_polling(client: &reqwest::Client, server: &mut Server) -> String {
    let token = negotiate(client, server.addr, false).await.token;
    assert_eq!(
        poll(client, server.addr, &token).await,
        (200, String::new())
    );
    let handshake = record("{\"protocol\":\"json\",\"version\":1}");
    assert_eq!(post(client, server.addr, &token, handshake).await, 200);
    assert_eq!(server.events.next().await, "connected LongPolling");
    token
}

#[tokio::test]
async fn long_polls_return_queued_records_then_204_after_delete() {
    let mut server = serve(HubOptions::default()).await;
    let client = reqwest::Client::new();
    let token = long_polling(&client, &mut server).await;
    // Two completions, queued with the handshake answer while no poll is pending.
    let body = format!(
        "{}{}",
        invocation("1", "echo", "\"a\""),
        invocation("2", "echo", "\"b\"")
    );
    assert_eq!(post(&client, server.addr, &token, body).await, 200);
    let mut body = String::new();
    while body.matches(RS).count() < 3 {
        let (status, text) = poll(&client, server.addr, &token).await;
        assert_eq!(status, 200);
        body.push_str(&text);
    }
    assert_eq!(
        body,
        format!(
            "{{}}{RS}{}{}",
            completion("1", "\"a\""),
            completion("2", "\"b\"")
        )
    );
    // A poll pending when DELETE comes gets 204, and so does one that comes
    // after it: either way the client sees the end.
    let pending = tokio::spawn({
        let client = client.clone();
        let addr = server.addr;
        let token = token.clone();
        async move { poll(&client, addr, &token).await }
    });
    let deleted = client
        .delete(format!("http://{}/hub?id={token}", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202);
    assert_eq!(
        within("the pending poll", pending).await.unwrap(),
        (204, String::new())
    );
    assert_eq!(server.events.next().await, "disconnected ");
}

#[tokio::test]
async fn a_newer_poll_ends_the_older() {
    let mut server = serve(HubOptions::default()).await;
    let client = reqwest::Client::new();
    let token = long_polling(&client, &mut server).await;
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, "{}\u{1e}".to_owned())
    );
    // Whichever of two polls arrives second replaces the first, which gets
    // 204; the survivor gets what comes next.
    let spawn_poll = || {
        let client = client.clone();
        let addr = server.addr;
        let token = token.clone();
        tokio::spawn(async move { poll(&client, addr, &token).await })
    };
    let mut first = spawn_poll();
    let mut second = spawn_poll();
    let (ended, survivor) = within("one poll to end", async {
        tokio::select! {
            ended = &mut first => (ended, second),
            ended = &mut second => (ended, first),
        }
    })
    .await;
    assert_eq!(ended.unwrap(), (204, String::new()));
    let echo = invocation("1", "echo", "\"next\"");
    assert_eq!(post(&client, server.addr, &token, echo).await, 200);
    assert_eq!(
        within("the surviving poll", survivor).await.unwrap(),
        (200, completion("1", "\"next\""))
    );
}

#[tokio::test]
async fn an_idle_long_poll_is_answered_empty_after_the_hold() {
    let mut server = serve(options(|o| {
        o.long_polling_timeout = Duration::from_millis(200)
    }))
    .await;
    let client = reqwest::Client::new();
    let token = long_polling(&client, &mut server).await;
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, "{}\u{1e}".to_owned())
    );
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, String::new())
    );
    // The connection goes on.
    let echo = invocation("1", "echo", "\"alive\"");
    assert_eq!(post(&client, server.addr, &token, echo).await, 200);
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, completion("1", "\"alive\""))
    );
}

#[tokio::test]
async fn oversized_posts_are_refused_and_close_the_connection() {
    let mut server = serve(options(|o| o.maximum_receive_message_size = 1024)).await;
    let client = reqwest::Client::new();
    let token = long_polling(&client, &mut server).await;
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, "{}\u{1e}".to_owned())
    );
    // Past the POST limit (1 MiB at least): refused before it is read whole.
    let huge = "x".repeat(2 * 1024 * 1024);
    assert_eq!(post(&client, server.addr, &token, huge).await, 413);
    let reason = "Connection closed with an error. InvalidDataException: The maximum message size of 1024B was exceeded. The message size can be configured in HubOptions.";
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, close_with(reason))
    );
    assert_eq!(server.events.next().await, format!("disconnected {reason}"));
    assert_eq!(post(&client, server.addr, "nope", "{}").await, 404);
}

#[tokio::test]
async fn a_posted_record_over_the_limit_closes_the_connection() {
    let mut server = serve(HubOptions::default()).await;
    let client = reqwest::Client::new();
    let token = long_polling(&client, &mut server).await;
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, "{}\u{1e}".to_owned())
    );
    let record = format!("\"{}\"{RS}", "x".repeat(40 * 1024));
    assert_eq!(post(&client, server.addr, &token, record).await, 200);
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, close_with(TOO_LARGE_32K))
    );
}

#[tokio::test]
async fn the_schema_endpoint_is_opt_in() {
    let client = reqwest::Client::new();
    let closed = serve(HubOptions::default()).await;
    let answer = client
        .get(format!("http://{}/hub/schema", closed.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);

    let open = serve(options(|o| o.schema_endpoint = true)).await;
    let answer = client
        .get(format!("http://{}/hub/schema", open.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    let document: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(document["name"], "Probe");
    assert!(document["methods"].is_array());
}

/// A hub given its path mounts its routes there itself, to be merged: the same
/// routes as nested under that path, each answering as it does nested.
#[tokio::test]
async fn a_hub_with_a_path_is_merged_with_the_routes_nest_would_give() {
    let server = common::serve_mounted(
        options(|o| o.schema_endpoint = true),
        |hub| hub.path("/hub"),
        |hub| axum::Router::new().merge(hub.router()),
    )
    .await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", server.addr);

    let negotiate = client
        .post(url("/hub/negotiate?negotiateVersion=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(negotiate.status(), 200);
    let answer: serde_json::Value = serde_json::from_str(&negotiate.text().await.unwrap()).unwrap();
    let token = answer["connectionToken"].as_str().unwrap();
    let mut negotiated = WsClient::open(server.addr, &format!("?id={token}")).await;
    negotiated.handshake(1).await;
    assert_eq!(
        call(&mut negotiated, "echo", "\"merged\"").await,
        completion("1", "\"merged\"")
    );
    let mut direct = WsClient::connect(server.addr).await;
    assert_eq!(
        call(&mut direct, "echo", "\"direct\"").await,
        completion("1", "\"direct\"")
    );
    let schema = client.get(url("/hub/schema")).send().await.unwrap();
    assert_eq!(schema.status(), 200);
    // Where `nest` answers nothing, neither do the merged routes.
    for path in ["/hub/", "/hub/other", "/negotiate", "/"] {
        let answer = client.get(url(path)).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
    }
}

#[tokio::test]
#[should_panic(expected = "a hub's path starts with `/` and does not end with one")]
async fn a_hub_path_must_be_absolute_without_a_trailing_slash() {
    common::serve_mounted(
        HubOptions::default(),
        |hub| hub.path("/hub/"),
        |hub| axum::Router::new().merge(hub.router()),
    )
    .await;
}

#[tokio::test]
async fn a_second_post_while_one_is_in_flight_is_409_until_it_ends() {
    use tokio::io::AsyncWriteExt;

    let server = serve(HubOptions::default()).await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, server.addr, false).await.token;
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, String::new())
    );
    // A POST whose body has not finished arriving.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /hub?id={token} HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n{{",
        server.addr
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    // Empty POSTs (harmless to the session) until the server has the slow one.
    until("the slow POST to be in flight", || async {
        post(&client, server.addr, &token, "").await == 409
    })
    .await;
    // The slow client gives up mid-body: the connection takes POSTs again.
    drop(slow);
    until("the slow POST to end", || async {
        post(&client, server.addr, &token, "").await == 200
    })
    .await;
    let handshake = record("{\"protocol\":\"json\",\"version\":1}");
    assert_eq!(post(&client, server.addr, &token, handshake).await, 200);
    assert_eq!(
        poll(&client, server.addr, &token).await,
        (200, "{}\u{1e}".to_owned())
    );
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let server = serve_hub(HubOptions::default(), |hub| {
        hub.allow_origins(["https://app.example"]).unwrap()
    })
    .await;
    let client = reqwest::Client::new();
    let negotiate_url = format!("http://{}/hub/negotiate?negotiateVersion=1", server.addr);

    let preflight = client
        .request(reqwest::Method::OPTIONS, &negotiate_url)
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "x-requested-with,x-signalr-user-agent,authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    let headers = preflight.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert_eq!(
        headers["access-control-allow-headers"],
        "x-requested-with,x-signalr-user-agent,authorization,content-type"
    );
    assert_eq!(
        headers["access-control-allow-methods"],
        "GET,POST,DELETE,OPTIONS"
    );

    let allowed = client
        .post(&negotiate_url)
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );

    // Another origin gets no CORS headers, so its browser refuses the answer.
    let refused = client
        .post(&negotiate_url)
        .header("Origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn websocket_upgrades_from_other_origins_are_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let server = serve_hub(HubOptions::default(), |hub| {
        hub.allow_origins(["https://app.example"]).unwrap()
    })
    .await;
    let upgrade = |origin: &str| {
        let mut request = format!("ws://{}/hub", server.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    match upgrade("https://elsewhere.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            assert_eq!(
                response.body().as_deref(),
                Some(&b"WebSocket connections from this origin are not allowed."[..])
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(upgrade("https://app.example").await.is_ok());
    let own = format!("http://{}", server.addr);
    assert!(upgrade(&own).await.is_ok());
}

/// A stateful connection whose socket dropped after one call (`echo("a")`),
/// before the client acknowledged anything: the client is back on a new socket
/// (no new negotiate, no handshake), where the server announced its first
/// unacknowledged message and sent it again.
async fn back_after_a_drop(server: &mut Server) -> WsClient {
    let client = reqwest::Client::new();
    let token = negotiate(&client, server.addr, true).await.token;
    let mut socket = WsClient::open_token(server.addr, &token).await;
    socket.handshake(2).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    socket.send(&invocation("1", "echo", "\"a\"")).await;
    assert_eq!(socket.next_message().await, Some(completion("1", "\"a\"")));
    drop(socket);

    let mut socket = WsClient::open_token(server.addr, &token).await;
    assert_eq!(
        socket.next().await,
        Some(record("{\"type\":9,\"sequenceId\":1}"))
    );
    assert_eq!(socket.next().await, Some(completion("1", "\"a\"")));
    socket
}

#[tokio::test]
async fn stateful_reconnect_replays_what_was_not_acknowledged() {
    let mut server = serve(options(|o| {
        o.stateful_reconnect = true;
        o.disconnect_timeout = Duration::from_secs(2);
    }))
    .await;
    let mut socket = back_after_a_drop(&mut server).await;
    // The client resends from its own message 1: invocation 1 again (a
    // duplicate, dropped) and the new invocation 2.
    socket
        .send(&format!(
            "{}{}{}",
            record("{\"type\":9,\"sequenceId\":1}"),
            invocation("1", "echo", "\"a\""),
            invocation("2", "echo", "\"b\"")
        ))
        .await;
    // Acks come on the server's own schedule (every second), before or after
    // the completion: wait for both the completion and the Ack that covers
    // invocation 2. An Ack for message 1 may come too, from before the drop.
    let (mut completed, mut acknowledged) = (false, false);
    while !(completed && acknowledged) {
        match socket.next().await.unwrap() {
            record if record == completion("2", "\"b\"") => completed = true,
            record if record == "{\"type\":8,\"sequenceId\":2}\u{1e}" => acknowledged = true,
            record if record == "{\"type\":8,\"sequenceId\":1}\u{1e}" => {}
            other => panic!("unexpected {other}"),
        }
    }
    // Gone for longer than the disconnect timeout: the connection ends, and
    // only now (the replay above showed it survived the first drop).
    drop(socket);
    assert_eq!(server.events.next().await, "disconnected ");
}

#[tokio::test]
async fn stateful_reconnect_never_replays_what_was_acknowledged_and_keeps_groups_and_items() {
    let mut server = serve(options(|o| o.stateful_reconnect = true)).await;
    let client = reqwest::Client::new();
    let negotiated = negotiate(&client, server.addr, true).await;
    let token = negotiated.token;

    let mut socket = WsClient::open_token(server.addr, &token).await;
    socket.handshake(2).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    socket.send(&invocation("1", "join", "\"room\"")).await;
    assert_eq!(
        socket.next_message().await,
        Some(record("{\"type\":3,\"invocationId\":\"1\"}"))
    );
    socket.send(&invocation("2", "remember", "\"kept\"")).await;
    assert_eq!(socket.next_message().await, Some(completion("2", "null")));
    // The client acknowledges the server's messages 1 and 2; the completion of
    // the next call shows the server has read the Ack.
    socket.send(&record("{\"type\":8,\"sequenceId\":2}")).await;
    socket.send(&invocation("3", "echo", "\"c\"")).await;
    assert_eq!(socket.next_message().await, Some(completion("3", "\"c\"")));
    drop(socket);

    let mut socket = WsClient::open_token(server.addr, &token).await;
    // Only message 3 was unacknowledged: it alone comes again.
    assert_eq!(
        socket.next().await,
        Some(record("{\"type\":9,\"sequenceId\":3}"))
    );
    assert_eq!(socket.next().await, Some(completion("3", "\"c\"")));
    // The server read the client's messages 1 to 3: the client goes on at 4.
    socket.send(&record("{\"type\":9,\"sequenceId\":4}")).await;
    socket.send(&invocation("4", "recall", "")).await;
    assert_eq!(
        socket.next_message().await,
        Some(completion("4", "\"kept\""))
    );
    server
        .handle
        .clients()
        .group("room")
        .send("note", Arguments::from_values(["still a member"]))
        .await
        .unwrap();
    assert_eq!(
        socket.next_message().await,
        Some(record(
            "{\"type\":1,\"target\":\"note\",\"arguments\":[\"still a member\"]}"
        ))
    );
    assert_eq!(server.handle.connection_count(), 1);
    assert_eq!(server.events.try_next(), None, "the connection never ended");
}

#[tokio::test]
async fn a_sequence_past_what_the_server_received_closes_the_connection() {
    let mut server = serve(options(|o| o.stateful_reconnect = true)).await;
    let mut socket = back_after_a_drop(&mut server).await;
    // The server received one message; the client claims to go on at 5.
    socket.send(&record("{\"type\":9,\"sequenceId\":5}")).await;
    let reason = "Connection closed with an error. InvalidOperationException: Sequence ID greater than amount of messages we've received.";
    assert_eq!(socket.next_message().await, Some(close_with(reason)));
    socket.expect_end().await;
    assert_eq!(server.events.next().await, format!("disconnected {reason}"));
}

// ------------------------------------------------------------ MessagePack

/// `"hi"` as MessagePack.
const HI: &[u8] = b"\xa2hi";

#[tokio::test]
async fn messagepack_invocations_complete_in_messagepack() {
    let mut server = serve(HubOptions::default()).await;
    let mut client = MsgPackClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    // `[1, {}, "1", "echo", ["hi"], []]`, as the JS client writes it.
    client
        .send(b"\x0f\x96\x01\x80\xa11\xa4echo\x91\xa2hi\x90")
        .await;
    // `[3, {}, "1", 3, "hi"]`: a result.
    assert_eq!(
        client.next().await.as_deref(),
        Some(&b"\x09\x95\x03\x80\xa11\x03\xa2hi"[..])
    );
    // The JS client's five-element invocation (no stream ids) reads too, and a
    // `null` result is a result (kind 3, nil), as ASP.NET Core writes it.
    client.send(b"\x0d\x95\x01\x80\xa12\xa6recall\x90").await;
    assert_eq!(
        client.next().await.as_deref(),
        Some(&b"\x07\x95\x03\x80\xa12\x03\xc0"[..])
    );
    // A void method, and one that fails: kind 2, kind 1 with ASP.NET Core's text.
    client
        .send(&msgpack::invocation(
            Some("3"),
            "join",
            &[&msgpack::str("room")],
        ))
        .await;
    assert_eq!(client.next().await, Some(msgpack::completion_void("3")));
    client
        .send(&msgpack::invocation(Some("4"), "nope", &[]))
        .await;
    assert_eq!(
        client.next().await,
        Some(msgpack::completion_error(
            "4",
            "Failed to invoke 'nope' due to an error on the server. HubException: Method does not exist."
        ))
    );
    client
        .send(&msgpack::invocation(Some("5"), "panic", &[]))
        .await;
    assert_eq!(
        client.next().await,
        Some(msgpack::completion_error(
            "5",
            "An unexpected error occurred invoking 'panic' on the server."
        ))
    );
    // An argument of the wrong type is decoded straight from MessagePack and
    // refused as it is in JSON.
    client
        .send(&msgpack::invocation(Some("6"), "echo", &[&msgpack::int(7)]))
        .await;
    assert_eq!(
        client.next().await,
        Some(msgpack::completion_error(
            "6",
            "Failed to invoke 'echo' due to an error on the server."
        ))
    );
}

#[tokio::test]
async fn a_broadcast_reaches_each_client_in_its_protocol() {
    let server = serve(HubOptions::default()).await;
    let mut json = WsClient::connect(server.addr).await;
    let mut binary = MsgPackClient::connect(server.addr).await;
    server
        .handle
        .clients()
        .all()
        .send("note", Arguments::from_values(["x"]))
        .await
        .unwrap();
    assert_eq!(
        json.next_message().await,
        Some(record(
            "{\"type\":1,\"target\":\"note\",\"arguments\":[\"x\"]}"
        ))
    );
    // `[1, {}, nil, "note", ["x"], []]`
    assert_eq!(
        binary.next_message().await.as_deref(),
        Some(&b"\x0d\x96\x01\x80\xc0\xa4note\x91\xa1x\x90"[..])
    );
    // A structured value has the same shape in both: a map with string keys.
    #[derive(serde::Serialize)]
    struct Point {
        x: i32,
        y: i32,
    }
    server
        .handle
        .clients()
        .all()
        .send("moved", Arguments::from_values([Point { x: 1, y: -1 }]))
        .await
        .unwrap();
    assert_eq!(
        json.next_message().await,
        Some(record(
            "{\"type\":1,\"target\":\"moved\",\"arguments\":[{\"x\":1,\"y\":-1}]}"
        ))
    );
    let point: &[u8] = b"\x82\xa1x\x01\xa1y\xff";
    assert_eq!(
        binary.next_message().await,
        Some(msgpack::invocation(None, "moved", &[point]))
    );
}

#[tokio::test]
async fn idle_messagepack_connections_get_the_two_byte_ping() {
    let server = serve(options(|o| {
        o.keep_alive_interval = Duration::from_millis(100)
    }))
    .await;
    let mut client = MsgPackClient::connect(server.addr).await;
    assert_eq!(client.next().await.as_deref(), Some(msgpack::PING));
}

#[tokio::test]
async fn messagepack_streams_run_both_ways_and_cancel() {
    let mut server = serve(HubOptions::default()).await;
    let mut client = MsgPackClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");

    // Server to client: items, then a void completion.
    client
        .send(&msgpack::stream_invocation(
            "1",
            "count",
            &[&msgpack::int(3)],
        ))
        .await;
    for n in 0..3 {
        assert_eq!(
            client.next().await,
            Some(msgpack::stream_item("1", &msgpack::int(n)))
        );
    }
    assert_eq!(client.next().await, Some(msgpack::completion_void("1")));

    // Cancelled by the client: the producer is told, the stream completes.
    client
        .send(&msgpack::stream_invocation("2", "forever", &[]))
        .await;
    assert_eq!(
        client.next().await,
        Some(msgpack::stream_item("2", &msgpack::int(0)))
    );
    client.send(&msgpack::cancel("2")).await;
    assert_eq!(server.events.next().await, "stream cancelled");
    loop {
        let message = client.next().await.expect("the stream completes");
        if message == msgpack::completion_void("2") {
            break;
        }
        assert_eq!(
            message[..7],
            msgpack::stream_item("2", &[0])[..7],
            "an item"
        );
    }

    // Client to server: an upload stream of numbers, summed.
    client
        .send(&msgpack::invocation_with_streams("3", "sum", &[], &["s"]))
        .await;
    for n in [1, 2, 39] {
        client
            .send(&msgpack::stream_item("s", &msgpack::int(n)))
            .await;
    }
    client.send(&msgpack::completion_void("s")).await;
    assert_eq!(
        client.next().await,
        Some(msgpack::completion("3", &msgpack::int(42)))
    );

    // The wrong invocation kind gets ASP.NET Core's sentence.
    client
        .send(&msgpack::invocation(
            Some("4"),
            "count",
            &[&msgpack::int(1)],
        ))
        .await;
    assert_eq!(
        client.next().await,
        Some(msgpack::completion_error(
            "4",
            "The client attempted to invoke the streaming 'count' method with a non-streaming invocation."
        ))
    );
}

#[tokio::test]
async fn messagepack_client_results_round_trip() {
    let server = serve(HubOptions::default()).await;
    let mut client = MsgPackClient::connect(server.addr).await;
    client
        .send(&msgpack::invocation(
            Some("1"),
            "ask",
            &[&msgpack::str("six times seven?")],
        ))
        .await;
    // The server asks with an invocation id of its own.
    let question = client.next().await.unwrap();
    let id = "1";
    assert_eq!(
        question,
        msgpack::invocation(Some(id), "question", &[&msgpack::str("six times seven?")])
    );
    client
        .send(&msgpack::completion(id, &msgpack::str("42")))
        .await;
    assert_eq!(
        client.next().await,
        Some(msgpack::completion("1", &msgpack::str("42")))
    );
    // An error from the client is passed through unchanged.
    client
        .send(&msgpack::invocation(
            Some("2"),
            "ask",
            &[&msgpack::str("?")],
        ))
        .await;
    let _question = client.next().await.unwrap();
    client
        .send(&msgpack::completion_error(
            "2",
            "Client didn't provide a result.",
        ))
        .await;
    assert_eq!(
        client.next().await,
        Some(msgpack::completion_error(
            "2",
            "An unexpected error occurred invoking 'ask' on the server. HubException: Client didn't provide a result."
        ))
    );
}

/// Opens a MessagePack connection, sends `bytes`, and expects exactly the Close
/// carrying `error`, then the end; the hub reports the same error.
async fn closes_with(server: &mut Server, bytes: &[u8], error: &str) {
    let mut client = MsgPackClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    client.send(bytes).await;
    assert_eq!(
        client.next().await,
        Some(msgpack::close(Some(error), false)),
        "after sending {bytes:?}"
    );
    client.expect_end().await;
    assert_eq!(server.events.next().await, format!("disconnected {error}"));
}

#[tokio::test]
async fn malformed_messagepack_closes_only_its_connection_saying_what_was_wrong() {
    let mut server = serve(HubOptions::default()).await;
    let mut bystander = MsgPackClient::connect(server.addr).await;
    let mut json = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    assert_eq!(server.events.next().await, "connected WebSockets");

    let invalid = "Connection closed with an error. InvalidDataException:";
    // A length prefix running past its fifth byte.
    closes_with(
        &mut server,
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        &format!(
            "{invalid} malformed message: the length prefix of a binary message is longer than 5 bytes"
        ),
    )
    .await;
    // Five bytes announcing 4 GiB: refused by the size limit before any of it
    // is buffered.
    closes_with(&mut server, &[0x80, 0x80, 0x80, 0x80, 0x10], TOO_LARGE_32K).await;
    // An array announcing six elements, holding two.
    closes_with(
        &mut server,
        b"\x03\x96\x01\x80",
        &format!(
            "{invalid} malformed MessagePack message: the message ends after 3 bytes, in the middle of 'invocationId'"
        ),
    )
    .await;
    // A target that is a number.
    closes_with(
        &mut server,
        b"\x08\x96\x01\x80\xa11\x2a\x90\x90",
        &format!(
            "{invalid} malformed MessagePack message: expected a string for 'target' at byte 5, found an integer"
        ),
    )
    .await;
    // A message type that is a string.
    closes_with(
        &mut server,
        b"\x03\x91\xa11",
        &format!(
            "{invalid} malformed MessagePack message: expected an integer for 'messageType' at byte 1, found a string"
        ),
    )
    .await;

    // Nothing happened to the other connections.
    bystander
        .send(&msgpack::invocation(Some("1"), "echo", &[HI]))
        .await;
    assert_eq!(
        bystander.next_message().await,
        Some(msgpack::completion("1", HI))
    );
    json.send(&invocation("1", "echo", "\"hi\"")).await;
    assert_eq!(json.next_message().await, Some(completion("1", "\"hi\"")));
    assert_eq!(server.events.try_next(), None, "no other connection ended");
}

#[tokio::test]
async fn a_messagepack_message_over_the_limit_closes_with_the_limit() {
    let mut server = serve(options(|o| o.maximum_receive_message_size = 64)).await;
    let mut client = MsgPackClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    let text = "x".repeat(80);
    client
        .send(&msgpack::invocation(
            Some("1"),
            "echo",
            &[&msgpack::str(&text)],
        ))
        .await;
    let reason = "Connection closed with an error. InvalidDataException: The maximum message size of 64B was exceeded. The message size can be configured in HubOptions.";
    assert_eq!(
        client.next().await,
        Some(msgpack::close(Some(reason), false))
    );
    client.expect_end().await;
}

#[tokio::test]
async fn messagepack_messages_split_across_frames_and_batched_in_one() {
    let server = serve(HubOptions::default()).await;
    let mut client = MsgPackClient::open(server.addr, "").await;
    // The handshake and a first message in one binary frame: the bytes after
    // the handshake record are MessagePack, handed on unsplit (0x1E inside).
    let mut first = b"{\"protocol\":\"messagepack\",\"version\":1}\x1e".to_vec();
    let record_separator: &[u8] = b"\xa1\x1e";
    first.extend(msgpack::invocation(Some("1"), "echo", &[record_separator]));
    client.send(&first).await;
    client.expect_handshake_answer().await;
    assert_eq!(
        client.next().await,
        Some(msgpack::completion("1", record_separator))
    );
    // One message split across frames, then two in one frame.
    let two = msgpack::invocation(Some("2"), "echo", &[HI]);
    let (a, b) = two.split_at(5);
    client.send(a).await;
    client.send(b).await;
    assert_eq!(client.next().await, Some(msgpack::completion("2", HI)));
    let mut both = msgpack::invocation(Some("3"), "echo", &[HI]);
    both.extend(msgpack::invocation(Some("4"), "echo", &[HI]));
    client.send(&both).await;
    assert_eq!(client.next().await, Some(msgpack::completion("3", HI)));
    assert_eq!(client.next().await, Some(msgpack::completion("4", HI)));
}

#[tokio::test]
async fn messagepack_over_server_sent_events_is_refused_in_the_handshake() {
    let server = serve(HubOptions::default()).await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, server.addr, false).await.token;
    let mut events = SseClient::open(&client, server.addr, &token).await;
    let handshake = record("{\"protocol\":\"messagepack\",\"version\":1}");
    assert_eq!(post(&client, server.addr, &token, handshake).await, 200);
    // ASP.NET Core's text (`HubConnectionContext.HandshakeAsync`), as JSON text.
    assert_eq!(
        events.next().await.as_deref(),
        Some(
            "data: {\"error\":\"Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format.\"}\u{1e}"
        )
    );
    assert_eq!(events.next().await, None, "the event stream ends");
}

#[tokio::test]
async fn messagepack_over_long_polling_comes_as_octet_stream() {
    let server = serve(HubOptions::default()).await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, server.addr, false).await.token;
    let url = format!("http://{}/hub?id={token}", server.addr);
    let poll = || async {
        let answer = within("a long poll", client.get(&url).send())
            .await
            .unwrap();
        let content_type = answer
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        (content_type, answer.bytes().await.unwrap().to_vec())
    };
    // The first poll starts the connection.
    assert_eq!(poll().await.1, b"");
    let post_binary = |body: Vec<u8>| {
        client
            .post(&url)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
    };
    let mut handshake = b"{\"protocol\":\"messagepack\",\"version\":1}\x1e".to_vec();
    handshake.extend(msgpack::invocation(Some("1"), "echo", &[HI]));
    assert_eq!(
        within("a POST", post_binary(handshake))
            .await
            .unwrap()
            .status(),
        200
    );
    let mut body = Vec::new();
    while body.len() < 3 + msgpack::completion("1", HI).len() {
        let (content_type, bytes) = poll().await;
        if !bytes.is_empty() {
            assert_eq!(content_type.as_deref(), Some("application/octet-stream"));
        }
        body.extend(bytes);
    }
    let mut expected = b"{}\x1e".to_vec();
    expected.extend(msgpack::completion("1", HI));
    assert_eq!(body, expected);
}

#[tokio::test]
async fn messagepack_stateful_reconnect_acks_and_replays_in_messagepack() {
    let mut server = serve(options(|o| o.stateful_reconnect = true)).await;
    let client = reqwest::Client::new();
    let token = negotiate(&client, server.addr, true).await.token;

    let mut socket = MsgPackClient::open_token(server.addr, &token).await;
    socket.handshake(2).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    socket
        .send(&msgpack::invocation(Some("1"), "echo", &[HI]))
        .await;
    // The completion, and the server's Ack of the client's message 1 in
    // MessagePack: the Ack comes on the server's schedule (every second), so
    // before or after the completion.
    let (mut completed, mut acknowledged) = (false, false);
    while !(completed && acknowledged) {
        match socket.next().await.unwrap() {
            message if message == msgpack::completion("1", HI) => completed = true,
            message if message == msgpack::ack(1) => acknowledged = true,
            message => assert_eq!(message, msgpack::PING, "only pings meanwhile"),
        }
    }
    drop(socket);

    let mut socket = MsgPackClient::open_token(server.addr, &token).await;
    // No handshake on the new socket: Sequence, then the unacknowledged
    // completion again, as it was sent.
    assert_eq!(socket.next().await, Some(msgpack::sequence(1)));
    assert_eq!(socket.next().await, Some(msgpack::completion("1", HI)));
    // The client acknowledges it and goes on at its message 2.
    socket.send(&msgpack::ack(1)).await;
    socket.send(&msgpack::sequence(2)).await;
    socket
        .send(&msgpack::invocation(Some("2"), "echo", &[HI]))
        .await;
    assert_eq!(
        socket.next_message().await,
        Some(msgpack::completion("2", HI))
    );
    drop(socket);

    // Only the unacknowledged completion 2 comes again.
    let mut socket = MsgPackClient::open_token(server.addr, &token).await;
    assert_eq!(socket.next().await, Some(msgpack::sequence(2)));
    assert_eq!(socket.next().await, Some(msgpack::completion("2", HI)));
    // A Sequence past what the server received closes, in MessagePack.
    socket.send(&msgpack::sequence(9)).await;
    let reason = "Connection closed with an error. InvalidOperationException: Sequence ID greater than amount of messages we've received.";
    assert_eq!(
        socket.next_message().await,
        Some(msgpack::close(Some(reason), false))
    );
    socket.expect_end().await;
}

#[tokio::test]
async fn shutdown_closes_messagepack_clients_with_allow_reconnect() {
    let server = serve(HubOptions::default()).await;
    let mut client = MsgPackClient::connect(server.addr).await;
    within("the shutdown", server.handle.shutdown(WAIT)).await;
    assert_eq!(
        client.next_message().await,
        Some(msgpack::close(None, true))
    );
    client.expect_end().await;
}

#[tokio::test]
async fn a_value_one_protocol_cannot_encode_fails_only_for_that_protocol() {
    let server = serve(HubOptions::default()).await;
    let mut json = WsClient::connect(server.addr).await;
    let mut binary = MsgPackClient::connect(server.addr).await;
    // A map with non-string keys: MessagePack has them, JSON does not. The call
    // fails for the JSON caller, with ASP.NET Core's text, and only the call.
    json.send(&invocation("1", "pairs", "")).await;
    assert_eq!(
        json.next_message().await,
        Some(record(
            "{\"type\":3,\"invocationId\":\"1\",\"error\":\"An unexpected error occurred invoking 'pairs' on the server.\"}"
        ))
    );
    binary
        .send(&msgpack::invocation(Some("1"), "pairs", &[]))
        .await;
    assert_eq!(
        binary.next_message().await,
        Some(msgpack::completion("1", PAIRS))
    );
    // A broadcast of it reaches the MessagePack client; the JSON client misses
    // only that message.
    let clients = server.handle.clients();
    let all = clients.all();
    all.send("pairs", Arguments::from_values([pairs()]))
        .await
        .unwrap();
    all.send("note", Arguments::from_values(["after"]))
        .await
        .unwrap();
    assert_eq!(
        json.next_message().await,
        Some(record(
            "{\"type\":1,\"target\":\"note\",\"arguments\":[\"after\"]}"
        ))
    );
    assert_eq!(
        binary.next_message().await,
        Some(msgpack::invocation(None, "pairs", &[PAIRS]))
    );
    assert_eq!(
        binary.next_message().await,
        Some(msgpack::invocation(None, "note", &[&msgpack::str("after")]))
    );

    // With detailed errors, the caller learns why.
    let server = serve(options(|o| o.enable_detailed_errors = true)).await;
    let mut json = WsClient::connect(server.addr).await;
    json.send(&invocation("1", "pairs", "")).await;
    assert_eq!(
        json.next_message().await,
        Some(record(
            "{\"type\":3,\"invocationId\":\"1\",\"error\":\"An unexpected error occurred invoking 'pairs' on the server. SerializationException: a value could not be serialized for the 'json' protocol: key must be a string\"}"
        ))
    );
}
