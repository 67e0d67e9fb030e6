//! Scale-out on a real Redis: three nodes (each a hub with its own Redis
//! backplane, as three servers would be) and raw clients spread over them.
//! Every target reaches exactly its recipients wherever they are connected;
//! group changes and client results cross nodes; a Redis restart loses
//! nothing but what was sent while it was down; what another node (or
//! anyone) publishes that cannot be read harms nothing.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use signal::protocol::Arguments;
use signal::{ClientResultError, HubLifetimeManager, HubOptions, SendError, Target};
use signal_redis::Redis;

use common::{
    RedisServer, Server, SseClient, WsClient, invocation, poll, post, record, serve_hub, until,
    within,
};

struct Node {
    server: Server,
    redis: Arc<Redis>,
}

async fn node(redis: &RedisServer) -> Node {
    node_with(redis, HubOptions::default()).await
}

async fn node_with(redis: &RedisServer, options: HubOptions) -> Node {
    let manager = Arc::new(Redis::new(&redis.url()).unwrap());
    let shared = manager.clone();
    let server = serve_hub(options, move |hub| {
        hub.user_id(|parts| {
            let query = parts.uri.query()?;
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("user="))
                .map(str::to_owned)
        })
        .lifetime_manager(shared)
    })
    .await;
    within("the node's subscriptions", manager.ready()).await;
    Node {
        server,
        redis: manager,
    }
}

struct Peer {
    id: String,
    ws: WsClient,
}

/// A client of `node`, negotiated (to learn its id) as `user`.
async fn connect(node: &Node, user: &str) -> Peer {
    let addr = node.server.addr;
    let (id, token) = negotiated(&reqwest::Client::new(), addr, &format!("&user={user}")).await;
    let mut ws = WsClient::open(addr, &format!("?id={token}&user={user}")).await;
    ws.handshake(1).await;
    Peer { id, ws }
}

fn message(text: &str) -> String {
    record(&format!(
        "{{\"type\":1,\"target\":\"m\",\"arguments\":[\"{text}\"]}}"
    ))
}

fn args(text: &str) -> Arguments {
    Arguments::from_values([text.to_owned()])
}

/// After a send of `step`, sends an end marker to all from the same node:
/// each peer gets `step` (if it is among `receivers`) and then the marker,
/// and nothing in between, so a message that went astray fails the test.
async fn check(node: &Node, peers: &mut [&mut Peer], step: &str, receivers: &[usize]) {
    let end = format!("end of {step}");
    node.server
        .handle
        .clients()
        .all()
        .send("m", args(&end))
        .await
        .unwrap();
    for (i, peer) in peers.iter_mut().enumerate() {
        if receivers.contains(&i) {
            assert_eq!(
                peer.ws.next_message().await.as_deref(),
                Some(message(step).as_str()),
                "peer {i} receives {step}"
            );
        }
        assert_eq!(
            peer.ws.next_message().await.as_deref(),
            Some(message(&end).as_str()),
            "peer {i} receives nothing else for {step}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_target_reaches_its_recipients_on_every_node() {
    let redis = RedisServer::start().await;
    let (a, b, c) = (node(&redis).await, node(&redis).await, node(&redis).await);
    let mut a1 = connect(&a, "ada").await;
    let mut b1 = connect(&b, "bob").await;
    let mut c1 = connect(&c, "ada").await;
    let mut c2 = connect(&c, "cy").await;
    let ids = [&a1.id, &b1.id, &c1.id, &c2.id].map(|id| id.to_owned());
    let hub = a.server.handle.clone();

    // Group changes from node A for connections that B and C hold: each is
    // acknowledged by its node before `add` returns.
    hub.groups().add(ids[1].as_str(), "g").await.unwrap();
    hub.groups().add(ids[2].as_str(), "g").await.unwrap();
    hub.groups().add(ids[0].as_str(), "g").await.unwrap();
    hub.groups().add(ids[3].as_str(), "h").await.unwrap();
    hub.groups().add(ids[2].as_str(), "h").await.unwrap();

    let mut peers = [&mut a1, &mut b1, &mut c1, &mut c2];
    let clients = hub.clients();
    clients.all().send("m", args("all")).await.unwrap();
    check(&a, &mut peers, "all", &[0, 1, 2, 3]).await;

    clients
        .all_except([ids[1].as_str(), ids[3].as_str()])
        .send("m", args("all except"))
        .await
        .unwrap();
    check(&a, &mut peers, "all except", &[0, 2]).await;

    clients
        .client(ids[3].as_str())
        .send("m", args("one"))
        .await
        .unwrap();
    check(&a, &mut peers, "one", &[3]).await;

    clients
        .clients([ids[0].as_str(), ids[1].as_str(), ids[1].as_str()])
        .send("m", args("several"))
        .await
        .unwrap();
    check(&a, &mut peers, "several", &[0, 1]).await;

    clients.group("g").send("m", args("group")).await.unwrap();
    check(&a, &mut peers, "group", &[0, 1, 2]).await;

    clients
        .group_except("g", [ids[2].as_str()])
        .send("m", args("group except"))
        .await
        .unwrap();
    check(&a, &mut peers, "group except", &[0, 1]).await;

    clients
        .groups(["h"])
        .send("m", args("groups"))
        .await
        .unwrap();
    check(&a, &mut peers, "groups", &[2, 3]).await;

    clients.user("ada").send("m", args("user")).await.unwrap();
    check(&a, &mut peers, "user", &[0, 2]).await;

    clients
        .users(["bob", "cy"])
        .send("m", args("users"))
        .await
        .unwrap();
    check(&a, &mut peers, "users", &[1, 3]).await;

    // Sent from node C this time: the others of the caller's groups and all
    // but the sender, as a hub method on C would.
    c.server
        .handle
        .clients()
        .group_except("g", [ids[2].as_str()])
        .send("m", args("others in group"))
        .await
        .unwrap();
    check(&c, &mut peers, "others in group", &[0, 1]).await;

    // A removal from another node, acknowledged there too.
    hub.groups().remove(ids[1].as_str(), "g").await.unwrap();
    clients
        .group("g")
        .send("m", args("after removal"))
        .await
        .unwrap();
    check(&a, &mut peers, "after removal", &[0, 2]).await;

    // A connection that ends leaves its node's subscriptions with it.
    drop(c2);
    until("c2's node forgets it", || {
        let count = c.redis.local().connection_count();
        async move { count == 1 }
    })
    .await;
    let mut peers = [&mut a1, &mut b1, &mut c1];
    clients
        .group("h")
        .send("m", args("h after c2"))
        .await
        .unwrap();
    check(&a, &mut peers, "h after c2", &[2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_change_for_a_connection_no_node_holds_fails_at_once() {
    let redis = RedisServer::start().await;
    let (a, _b) = (node(&redis).await, node(&redis).await);
    let _a1 = connect(&a, "ada").await;
    let result = within(
        "the group change",
        a.server.handle.groups().add("nobody", "g"),
    )
    .await;
    assert_eq!(result, Err(SendError::NotConnected("nobody".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_result_crosses_nodes_and_a_disconnect_ends_it() {
    let redis = RedisServer::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let _a1 = connect(&a, "ada").await;
    let mut b1 = connect(&b, "bob").await;
    let hub = a.server.handle.clone();
    let id = b1.id.clone();
    let asking = tokio::spawn(async move {
        hub.clients()
            .client(id.as_str())
            .invoke::<String>("question", args("name?"))
            .await
    });
    let invocation = b1.ws.next_message().await.unwrap();
    let value: serde_json::Value =
        serde_json::from_str(invocation.trim_end_matches('\u{1e}')).unwrap();
    assert_eq!(value["target"], "question");
    assert_eq!(value["arguments"], serde_json::json!(["name?"]));
    let invocation_id = value["invocationId"].as_str().unwrap();
    b1.ws
        .send(&record(&format!(
            "{{\"type\":3,\"invocationId\":\"{invocation_id}\",\"result\":\"bob\"}}"
        )))
        .await;
    assert_eq!(
        within("the answer", asking).await.unwrap(),
        Ok("bob".into())
    );

    // The client leaves instead of answering: the caller hears so from B.
    let hub = a.server.handle.clone();
    let id = b1.id.clone();
    let asking = tokio::spawn(async move {
        hub.clients()
            .client(id.as_str())
            .invoke::<String>("question", args("still there?"))
            .await
    });
    b1.ws.next_message().await.unwrap();
    drop(b1);
    assert_eq!(
        within("the answer", asking).await.unwrap(),
        Err(ClientResultError::Client("Connection disconnected.".into()))
    );

    // Nobody holds it any more.
    let result = a
        .server
        .handle
        .clients()
        .client("gone")
        .invoke::<String>("question", args("?"))
        .await;
    assert_eq!(
        result,
        Err(ClientResultError::Send(SendError::NotConnected(
            "gone".into()
        )))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_publishes_asp_net_cores_bytes_and_reads_theirs() {
    let redis = RedisServer::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut a1 = connect(&a, "ada").await;
    let mut b1 = connect(&b, "bob").await;

    // What node A publishes on `Probe:all`, read by a plain subscriber.
    let client = redis_client(&redis);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut subscriber = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_push_sender(tx),
        )
        .await
        .unwrap();
    subscriber.subscribe("Probe:all").await.unwrap();
    a.server
        .handle
        .clients()
        .all()
        .send("m", args("x"))
        .await
        .unwrap();
    let payload = loop {
        let push = within("the published message", rx.recv()).await.unwrap();
        if push.kind == redis::PushKind::Message {
            break match &push.data[1] {
                redis::Value::BulkString(bytes) => bytes.clone(),
                other => panic!("{other:?}"),
            };
        }
    };
    let json = b"{\"type\":1,\"target\":\"m\",\"arguments\":[\"x\"]}\x1e";
    // [1, {}, nil, "m", ["x"], []] with its length in front.
    let msgpack = b"\x0a\x96\x01\x80\xc0\xa1m\x91\xa1x\x90";
    let server = a.redis.server_name().unwrap().to_owned();
    let mut expected = vec![0x95, 0x90, 0x82, 0xa4];
    expected.extend_from_slice(b"json");
    expected.extend_from_slice(&[0xc4, json.len() as u8]);
    expected.extend_from_slice(json);
    expected.push(0xab);
    expected.extend_from_slice(b"messagepack");
    expected.extend_from_slice(&[0xc4, msgpack.len() as u8]);
    expected.extend_from_slice(msgpack);
    expected.extend_from_slice(&[0xc0, 0xc0, 0xd9, server.len() as u8]);
    expected.extend_from_slice(server.as_bytes());
    assert_eq!(payload, expected);
    assert_eq!(a1.ws.next_message().await, Some(message("x")));
    assert_eq!(b1.ws.next_message().await, Some(message("x")));

    // What an ASP.NET Core node publishes: two items, and here JSON only. The
    // JSON frame passes through unchanged.
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut aspnet = vec![0x92, 0x91, 0xa1, b'z', 0x81, 0xa4];
    aspnet.extend_from_slice(b"json");
    let frame = b"{\"type\":1,\"target\":\"m\",\"arguments\":[\"from .NET\"]}\x1e";
    aspnet.extend_from_slice(&[0xc4, frame.len() as u8]);
    aspnet.extend_from_slice(frame);
    let _: usize = redis::cmd("PUBLISH")
        .arg("Probe:all")
        .arg(aspnet)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(a1.ws.next_message().await, Some(message("from .NET")));
    assert_eq!(b1.ws.next_message().await, Some(message("from .NET")));

    // Garbage on every channel kind: logged and dropped; delivery goes on.
    for channel in [
        "Probe:all".to_owned(),
        "Probe:internal:groups".to_owned(),
        format!("Probe:connection:{}", b1.id),
        format!("Probe:internal:ack:{server}"),
        format!("Probe:internal:return:{server}"),
        "Probe:user:bob".to_owned(),
    ] {
        for junk in [
            &b""[..],
            b"\x92",
            b"\xc1\xc1",
            b"\x92\x90\x81\xa7unknown\xc4\x01x",
        ] {
            let _: usize = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(junk)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    a.server
        .handle
        .clients()
        .all()
        .send("m", args("still fine"))
        .await
        .unwrap();
    assert_eq!(a1.ws.next_message().await, Some(message("still fine")));
    assert_eq!(b1.ws.next_message().await, Some(message("still fine")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_across_nodes_resumes_after_a_redis_restart() {
    let mut redis = RedisServer::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut a1 = connect(&a, "ada").await;
    let mut b1 = connect(&b, "bob").await;
    let clients = a.server.handle.clients();
    clients.all().send("m", args("before")).await.unwrap();
    assert_eq!(a1.ws.next_message().await, Some(message("before")));
    assert_eq!(b1.ws.next_message().await, Some(message("before")));

    redis.stop();
    // Local delivery goes on; the send says the other nodes were not reached.
    let result = within(
        "a send while Redis is down",
        clients.all().send("m", args("down")),
    )
    .await;
    assert!(matches!(result, Err(SendError::Backplane(_))), "{result:?}");
    assert_eq!(a1.ws.next_message().await, Some(message("down")));

    redis.restart().await;
    // Once the nodes have reconnected and resubscribed, sends cross again:
    // B sees one of the probes, then exactly the message after it.
    let mut attempt = 0;
    loop {
        attempt += 1;
        assert!(attempt < 200, "delivery across nodes did not resume");
        let _ = clients.all().send("m", args("probe")).await;
        assert_eq!(a1.ws.next_message().await, Some(message("probe")));
        let got = tokio::time::timeout(Duration::from_millis(100), b1.ws.next_message()).await;
        if let Ok(Some(record)) = got {
            assert_eq!(record, message("probe"));
            break;
        }
    }
    // B may still have further probes in flight; "after" comes after them.
    clients.all().send("m", args("after")).await.unwrap();
    assert_eq!(a1.ws.next_message().await, Some(message("after")));
    loop {
        let record = b1.ws.next_message().await.unwrap();
        if record != message("probe") {
            assert_eq!(record, message("after"));
            break;
        }
    }
}

fn redis_client(server: &RedisServer) -> redis::Client {
    use redis::IntoConnectionInfo;
    let info = server.url().into_connection_info().unwrap();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(settings)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_groups_are_listed_across_the_cluster() {
    let redis = RedisServer::start().await;
    let (a, b, c) = (node(&redis).await, node(&redis).await, node(&redis).await);
    let a1 = connect(&a, "ada").await;
    let b1 = connect(&b, "bob").await;
    let c1 = connect(&c, "cy").await;
    let hub = b.server.handle.clone();
    hub.groups().add(a1.id.as_str(), "g").await.unwrap();
    hub.groups().add(c1.id.as_str(), "g").await.unwrap();
    hub.groups().add(c1.id.as_str(), "h").await.unwrap();

    let mut all = vec![a1.id.clone(), b1.id.clone(), c1.id.clone()];
    all.sort();
    let listing = hub.connection_ids().await;
    assert_eq!((listing.items, listing.partial), (all, false));
    let listing = hub.group_names().await;
    assert_eq!(
        (listing.items, listing.partial),
        (vec!["g".to_owned(), "h".to_owned()], false)
    );
    let mut members = vec![a1.id.clone(), c1.id.clone()];
    members.sort();
    let listing = hub.group_members("g").await;
    assert_eq!((listing.items, listing.partial), (members, false));

    // A node that cannot answer (an ASP.NET Core node subscribes to `all`
    // but not to signal's request channel) makes the listing partial.
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut foreign = redis_client(&redis)
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_push_sender(tx),
        )
        .await
        .unwrap();
    foreign.subscribe("Probe:all").await.unwrap();
    let listing = hub.group_members("h").await;
    assert_eq!(
        (listing.items, listing.partial),
        (vec![c1.id.clone()], true)
    );
}

/// `POST /hub/negotiate?negotiateVersion=1{query}` at `addr`: the
/// connection's id and token.
async fn negotiated(http: &reqwest::Client, addr: SocketAddr, query: &str) -> (String, String) {
    let body = within(
        "negotiate",
        http.post(format!(
            "http://{addr}/hub/negotiate?negotiateVersion=1{query}"
        ))
        .send(),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    (
        value["connectionId"].as_str().unwrap().to_owned(),
        value["connectionToken"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_needs_no_sticky_sessions() {
    let redis = RedisServer::start().await;
    let nodes = [node(&redis).await, node(&redis).await, node(&redis).await];
    let at = |i: usize| nodes[i % 3].server.addr;
    let http = reqwest::Client::new();
    // Negotiate at node 0, and every later request at the next node: the
    // first poll claims the connection, the others are relayed to it.
    let (id, token) = negotiated(&http, nodes[0].server.addr, "").await;
    let handshake = record("{\"protocol\":\"json\",\"version\":1}");
    assert_eq!(post(&http, at(1), &token, handshake).await, 200);
    // The first poll only starts the connection, as in ASP.NET Core.
    assert_eq!(poll(&http, at(2), &token).await, (200, String::new()));
    assert_eq!(poll(&http, at(0), &token).await, (200, record("{}")));
    let holder = nodes
        .iter()
        .position(|n| n.redis.local().contains(&id.as_str().into()))
        .expect("a node holds the connection");
    assert_eq!(holder, 2, "the first poll's node holds it");
    for i in 3..9 {
        let text = format!("hop {i}");
        let call = invocation(&i.to_string(), "echo", &format!("\"{text}\""));
        assert_eq!(post(&http, at(i), &token, call).await, 200);
        let (status, body) = poll(&http, at(i + 1), &token).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            record(&format!(
                "{{\"type\":3,\"invocationId\":\"{i}\",\"result\":\"{text}\"}}"
            ))
        );
    }
    // A send to the connection from a node that does not hold it, then a
    // poll at a third.
    nodes[0]
        .server
        .handle
        .clients()
        .client(id.as_str())
        .send("m", args("pushed"))
        .await
        .unwrap();
    assert_eq!(poll(&http, at(1), &token).await, (200, message("pushed")));
    // DELETE at any node ends it; then every node says it is gone.
    let deleted = within(
        "the DELETE",
        http.delete(format!("http://{}/hub?id={token}", at(0)))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(deleted.status(), 202);
    // While the connection ends, a relayed poll may still hear 204 (ended)
    // from the holder; once it has ended, no node knows the token.
    until("the connection ends on its node", || {
        let http = http.clone();
        let addr = at(1);
        let token = token.clone();
        async move { poll(&http, addr, &token).await.0 == 404 }
    })
    .await;
    assert!(!nodes[holder].redis.local().contains(&id.as_str().into()));
    for i in 0..3 {
        assert_eq!(poll(&http, at(i), &token).await.0, 404);
    }
    // A token no node ever issued.
    assert_eq!(
        poll(&http, at(0), "forged").await,
        (404, "No Connection with that ID".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_and_websockets_need_no_sticky_sessions() {
    let redis = RedisServer::start().await;
    let nodes = [node(&redis).await, node(&redis).await, node(&redis).await];
    let http = reqwest::Client::new();

    // Server-Sent Events: negotiate at 0, the stream at 1, sends at 2 and 0.
    let (_, token) = negotiated(&http, nodes[0].server.addr, "").await;
    let mut events = SseClient::open(&http, nodes[1].server.addr, &token).await;
    let handshake = record("{\"protocol\":\"json\",\"version\":1}");
    assert_eq!(
        post(&http, nodes[2].server.addr, &token, handshake).await,
        200
    );
    assert_eq!(events.next().await, Some(format!("data: {}", record("{}"))));
    let call = invocation("1", "echo", "\"over sse\"");
    assert_eq!(post(&http, nodes[0].server.addr, &token, call).await, 200);
    assert_eq!(
        events.next().await,
        Some(format!(
            "data: {}",
            record("{\"type\":3,\"invocationId\":\"1\",\"result\":\"over sse\"}")
        ))
    );

    // WebSockets: negotiate at 2, the upgrade at 0.
    let (_, token) = negotiated(&http, nodes[2].server.addr, "").await;
    let mut ws = WsClient::open(nodes[0].server.addr, &format!("?id={token}")).await;
    ws.handshake(1).await;
    ws.send(&invocation("2", "echo", "\"over ws\"")).await;
    assert_eq!(
        ws.next_message().await,
        Some(record(
            "{\"type\":3,\"invocationId\":\"2\",\"result\":\"over ws\"}"
        ))
    );
    // The token was handed over once: another upgrade with it is refused.
    let refused = within(
        "a second upgrade",
        tokio_tungstenite::connect_async(format!("ws://{}/hub?id={token}", nodes[1].server.addr)),
    )
    .await;
    assert!(
        refused.is_err(),
        "a second transport for one token is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_reconnect_at_another_node_is_tunnelled_to_the_connection() {
    let redis = RedisServer::start().await;
    let stateful = || {
        let mut options = HubOptions::default();
        options.stateful_reconnect = true;
        options
    };
    let (a, b) = (
        node_with(&redis, stateful()).await,
        node_with(&redis, stateful()).await,
    );
    let http = reqwest::Client::new();
    let (id, token) = negotiated(&http, a.server.addr, "&useStatefulReconnect=true").await;
    let mut socket = WsClient::open(a.server.addr, &format!("?id={token}")).await;
    socket.handshake(2).await;
    socket.send(&invocation("1", "echo", "\"a\"")).await;
    assert_eq!(
        socket.next_message().await,
        Some(record(
            "{\"type\":3,\"invocationId\":\"1\",\"result\":\"a\"}"
        ))
    );
    drop(socket);

    // Back on node B: the socket is carried to A, where the connection
    // announces its first unacknowledged message and sends it again.
    let mut socket = WsClient::open(b.server.addr, &format!("?id={token}")).await;
    assert_eq!(
        socket.next().await,
        Some(record("{\"type\":9,\"sequenceId\":1}"))
    );
    assert_eq!(
        socket.next().await,
        Some(record(
            "{\"type\":3,\"invocationId\":\"1\",\"result\":\"a\"}"
        ))
    );
    socket
        .send(&format!(
            "{}{}",
            record("{\"type\":9,\"sequenceId\":2}"),
            invocation("2", "echo", "\"b\"")
        ))
        .await;
    assert_eq!(
        socket.next_message().await,
        Some(record(
            "{\"type\":3,\"invocationId\":\"2\",\"result\":\"b\"}"
        ))
    );
    // Still A's connection, reachable from anywhere.
    assert!(a.redis.local().contains(&id.as_str().into()));
    b.server
        .handle
        .clients()
        .client(id.as_str())
        .send("m", args("via b"))
        .await
        .unwrap();
    assert_eq!(socket.next_message().await, Some(message("via b")));
}
