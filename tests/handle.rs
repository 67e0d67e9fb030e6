//! Sending from outside hub methods through a `HubHandle` (every target, over
//! in-process connections: the real session loop and codec), and shutting a
//! hub down (over real WebSockets, where the Close message's flags show).

mod common;

use std::time::Duration;

use common::*;
use signal::Target;
use signal::protocol::{Arguments, Invocation, InvokeError};
use signal::{ConnectionId, Context, HubError, HubOptions, InProcessConnection};

/// What the feed pushes to its subscribers.
#[signal::client]
pub trait FeedClient {
    /// A new value.
    async fn update(&self, value: u32);
}

/// Clients subscribe; a background task publishes.
#[signal::hub(client = FeedClient)]
pub trait Feed {
    /// Joins the `feed` group.
    async fn subscribe(&self, cx: &Context<dyn FeedClient>) -> Result<(), HubError>;
}

struct FeedHub;

impl Feed for FeedHub {
    async fn subscribe(&self, cx: &Context<dyn FeedClient>) -> Result<(), HubError> {
        Ok(cx.groups().add(cx.connection_id().clone(), "feed").await?)
    }
}

fn value_of(invocation: &Invocation) -> u32 {
    assert_eq!(invocation.target, "update");
    invocation.arguments.get(0, "value").unwrap()
}

async fn next(connection: &InProcessConnection) -> Option<Invocation> {
    within("a message from the hub", connection.next_invocation()).await
}

#[tokio::test]
async fn a_background_task_reaches_a_group_and_everyone() {
    let hub = FeedHub.into_hub().in_process();
    let handle = hub.handle();
    let subscriber = hub.connect().await.unwrap();
    let bystander = hub.connect().await.unwrap();
    let proxy = FeedProxy::new(&subscriber);
    proxy.subscribe().await.unwrap();
    assert_eq!(handle.connection_count(), 2);
    assert_eq!(handle.group_count(), 1);

    let publisher = tokio::spawn({
        let handle = handle.clone();
        async move {
            for value in 1..=3 {
                handle.clients().group("feed").update(value).await.unwrap();
            }
            handle.clients().all().update(100).await.unwrap();
        }
    });
    publisher.await.unwrap();

    for expected in [1, 2, 3, 100] {
        assert_eq!(value_of(&next(&subscriber).await.unwrap()), expected);
    }
    // The bystander is not in the group: the broadcast is the first it gets.
    assert_eq!(value_of(&next(&bystander).await.unwrap()), 100);

    // Group membership ends with the connection.
    subscriber.close().await;
    eventually("the group to empty", || handle.group_count() == 0).await;
    assert_eq!(handle.connection_count(), 1);
}

#[tokio::test]
async fn every_target_reaches_exactly_its_connections() {
    let hub = FeedHub.into_hub().in_process();
    let handle = hub.handle();
    // a and b are ada's, c is bob's, d is anonymous; groups: g1 = {a, b},
    // g2 = {b, c}.
    let a = hub.connect_as(Some("ada")).await.unwrap();
    let b = hub.connect_as(Some("ada")).await.unwrap();
    let c = hub.connect_as(Some("bob")).await.unwrap();
    let d = hub.connect().await.unwrap();
    let id = |connection: &InProcessConnection| connection.connection_id().clone();
    let groups = handle.groups();
    for (connection, group) in [(&a, "g1"), (&b, "g1"), (&b, "g2"), (&c, "g2"), (&d, "g2")] {
        groups.add(id(connection), group).await.unwrap();
    }
    groups.remove(id(&d), "g2").await.unwrap();
    let clients = handle.clients();

    clients.all().update(1).await.unwrap();
    clients
        .all_except([id(&a), id(&b)])
        .update(2)
        .await
        .unwrap();
    clients.client(id(&c)).update(3).await.unwrap();
    // Listed twice, sent once.
    clients
        .clients([id(&a), id(&d), id(&a)])
        .update(4)
        .await
        .unwrap();
    clients.group("g1").update(5).await.unwrap();
    // b is in both groups and gets it once.
    clients.groups(["g1", "g2"]).update(6).await.unwrap();
    clients
        .group_except("g2", [id(&c)])
        .update(7)
        .await
        .unwrap();
    clients.user("ada").update(8).await.unwrap();
    clients.users(["ada", "bob"]).update(9).await.unwrap();
    // Nobody: a connection that is not connected, a group and a user without
    // members. None of these is an error.
    clients
        .client(ConnectionId::from("gone"))
        .update(10)
        .await
        .unwrap();
    clients.group("empty").update(11).await.unwrap();
    clients.user("nobody").update(12).await.unwrap();
    // The last value reaches everyone: what each got before it is all it got.
    clients.all().update(1000).await.unwrap();

    for (name, connection, expected) in [
        ("a", &a, vec![1, 4, 5, 6, 8, 9, 1000]),
        ("b", &b, vec![1, 5, 6, 7, 8, 9, 1000]),
        ("c", &c, vec![1, 2, 3, 6, 9, 1000]),
        ("d", &d, vec![1, 2, 4, 1000]),
    ] {
        let mut received = Vec::new();
        while received.last() != Some(&1000) {
            received.push(value_of(&next(connection).await.unwrap()));
        }
        assert_eq!(received, expected, "what {name} received");
    }
}

#[tokio::test]
async fn the_user_id_hook_names_the_connections_of_a_user() {
    // The user is the `user` query parameter, as an authentication layer
    // might have left it in the request.
    let server = serve_hub(HubOptions::default(), |hub| {
        hub.user_id(|request| {
            let query = request.uri.query()?;
            query.strip_prefix("user=").map(str::to_owned)
        })
    })
    .await;
    let mut ada_1 = WsClient::open(server.addr, "?user=ada").await;
    ada_1.handshake(1).await;
    let mut ada_2 = WsClient::open(server.addr, "?user=ada").await;
    ada_2.handshake(1).await;
    let mut bob = WsClient::open(server.addr, "?user=bob").await;
    bob.handshake(1).await;
    let send = |user: &'static str, text: &'static str| {
        let clients = server.handle.clients();
        async move {
            clients
                .user(user)
                .send("note", Arguments::from_values([text]))
                .await
                .unwrap()
        }
    };
    let note = |text: &str| {
        record(&format!(
            "{{\"type\":1,\"target\":\"note\",\"arguments\":[\"{text}\"]}}"
        ))
    };
    send("ada", "for ada").await;
    send("bob", "for bob").await;
    assert_eq!(ada_1.next().await, Some(note("for ada")));
    assert_eq!(ada_2.next().await, Some(note("for ada")));
    assert_eq!(bob.next().await, Some(note("for bob")));
    // ada's connections got nothing in between.
    server
        .handle
        .clients()
        .all()
        .send("note", Arguments::from_values(["for all"]))
        .await
        .unwrap();
    assert_eq!(ada_1.next().await, Some(note("for all")));
    assert_eq!(ada_2.next().await, Some(note("for all")));
}

/// A client that is asked a question.
#[signal::client]
pub trait AskedClient {
    /// The question; the answer is a client result.
    async fn question(&self, text: String) -> String;
}

/// Asks the caller.
#[signal::hub(client = AskedClient)]
pub trait Asker {
    /// Asks the caller's `question` and returns the answer.
    async fn ask(&self, cx: &Context<dyn AskedClient>) -> Result<String, HubError>;
}

struct AskerHub;

impl Asker for AskerHub {
    async fn ask(&self, cx: &Context<dyn AskedClient>) -> Result<String, HubError> {
        Ok(cx.clients().caller().question("ready?".into()).await?)
    }
}

/// The text of the hub error a call must have ended with.
fn hub_error<T: std::fmt::Debug>(result: Result<T, InvokeError>) -> String {
    match result {
        Err(InvokeError::Hub(message)) => message,
        other => panic!("expected a hub error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_result_that_never_comes_times_out() {
    let hub = AskerHub
        .into_hub()
        .configure(|o| o.client_result_timeout = Duration::from_millis(200))
        .in_process();
    let connection = hub.connect().await.unwrap();
    let proxy = AskerProxy::new(&connection);
    let timed_out = "An unexpected error occurred invoking 'ask' on the server. HubException: the client did not answer within 200ms; raise HubOptions::client_result_timeout if it needs longer";
    let (answer, question) = within("the hub method to give up", async {
        tokio::join!(proxy.ask(), next(&connection))
    })
    .await;
    // The question arrived, went unanswered, and the hub method got an error.
    assert_eq!(question.unwrap().target, "question");
    assert_eq!(hub_error(answer), timed_out);
    // The connection goes on.
    let (again, question) = within("the second question", async {
        tokio::join!(proxy.ask(), next(&connection))
    })
    .await;
    assert_eq!(question.unwrap().target, "question");
    assert_eq!(hub_error(again), timed_out);
}

#[tokio::test]
async fn shutdown_closes_every_connection_and_waits_for_them() {
    let hub = FeedHub.into_hub().in_process();
    let handle = hub.handle();
    let mut connections = Vec::new();
    for _ in 0..3 {
        connections.push(hub.connect().await.unwrap());
    }
    assert_eq!(handle.connection_count(), 3);
    within("shutdown", handle.shutdown(Duration::from_secs(5))).await;
    assert_eq!(handle.connection_count(), 0);
    for connection in &connections {
        assert!(
            next(connection).await.is_none(),
            "the connection was closed"
        );
    }
}

#[tokio::test]
async fn shutdown_lets_running_invocations_finish_then_asks_clients_to_reconnect() {
    let mut server = serve(HubOptions::default()).await;
    let mut busy = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    let mut idle = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    busy.send(&invocation("1", "wait", "\"finished\"")).await;
    assert_eq!(server.events.next().await, "waiting finished");

    let shutdown = tokio::spawn({
        let handle = server.handle.clone();
        async move { handle.shutdown(Duration::from_secs(30)).await }
    });
    // The idle connection's Close shows the shutdown has begun; only then may
    // the running call finish.
    assert_eq!(idle.next().await.as_deref(), Some(CLOSE_RECONNECT));
    idle.expect_end().await;
    server.gate.add_permits(1);
    assert_eq!(busy.next().await, Some(completion("1", "\"finished\"")));
    assert_eq!(busy.next().await.as_deref(), Some(CLOSE_RECONNECT));
    busy.expect_end().await;
    within("shutdown", shutdown).await.unwrap();
    assert_eq!(server.handle.connection_count(), 0);
}

#[tokio::test]
async fn shutdown_closes_a_connection_whose_invocation_outlasts_the_shutdown_timeout() {
    let mut server = serve(options(|o| o.shutdown_timeout = Duration::from_millis(200))).await;
    let mut busy = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    // This call never returns.
    busy.send(&invocation("1", "wait", "\"never\"")).await;
    assert_eq!(server.events.next().await, "waiting never");
    within("shutdown", server.handle.shutdown(Duration::from_secs(30))).await;
    assert_eq!(server.handle.connection_count(), 0);
    assert_eq!(busy.next().await.as_deref(), Some(CLOSE_RECONNECT));
    busy.expect_end().await;
}

#[tokio::test]
async fn shutdown_returns_after_its_timeout_and_the_close_still_comes() {
    let mut server = serve(options(|o| o.shutdown_timeout = Duration::from_secs(60))).await;
    let mut busy = WsClient::connect(server.addr).await;
    assert_eq!(server.events.next().await, "connected WebSockets");
    busy.send(&invocation("1", "wait", "\"late\"")).await;
    assert_eq!(server.events.next().await, "waiting late");
    // The connection waits for its call longer than shutdown waits for it.
    within(
        "shutdown",
        server.handle.shutdown(Duration::from_millis(200)),
    )
    .await;
    assert_eq!(server.handle.connection_count(), 1);
    server.gate.add_permits(1);
    assert_eq!(busy.next().await, Some(completion("1", "\"late\"")));
    assert_eq!(busy.next().await.as_deref(), Some(CLOSE_RECONNECT));
    busy.expect_end().await;
    eventually("the connection to end", || {
        server.handle.connection_count() == 0
    })
    .await;
}

/// A lifetime manager that records what goes through the seam, then delivers
/// on this node: what a backplane sees.
#[derive(Default)]
struct Recording {
    local: signal::LocalLifetimeManager,
    seen: std::sync::Mutex<Vec<String>>,
}

impl signal::HubLifetimeManager for Recording {
    fn local(&self) -> &signal::LocalLifetimeManager {
        &self.local
    }

    fn on_connected<'a>(
        &'a self,
        connection: &'a ConnectionId,
        user: Option<&'a str>,
    ) -> signal::BoxFuture<'a, ()> {
        self.record(format!("connected {} {user:?}", connection.as_str().len()));
        Box::pin(async {})
    }

    fn on_disconnected<'a>(&'a self, _connection: &'a ConnectionId) -> signal::BoxFuture<'a, ()> {
        self.record("disconnected".to_owned());
        Box::pin(async {})
    }

    fn send<'a>(
        &'a self,
        recipients: &'a signal::Recipients,
        message: signal::protocol::SerializedHubMessage,
    ) -> signal::BoxFuture<'a, Result<(), signal::SendError>> {
        self.record(format!("send {recipients:?}"));
        self.local.send_local(recipients, message);
        Box::pin(async { Ok(()) })
    }

    fn add_to_group<'a>(
        &'a self,
        connection: &'a ConnectionId,
        group: &'a str,
    ) -> signal::BoxFuture<'a, Result<(), signal::SendError>> {
        self.record(format!("add to {group}"));
        let result = if self.local.add_to_group(connection, group) {
            Ok(())
        } else {
            Err(signal::SendError::Backplane(
                "no such connection".to_owned(),
            ))
        };
        Box::pin(async move { result })
    }
}

impl Recording {
    fn record(&self, event: String) {
        self.seen.lock().unwrap().push(event);
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn every_send_and_group_change_goes_through_the_lifetime_manager() {
    let recording = std::sync::Arc::new(Recording::default());
    let hub = FeedHub
        .into_hub()
        .lifetime_manager(recording.clone())
        .in_process();
    let handle = hub.handle();
    let subscriber = hub.connect_as(Some("ada")).await.unwrap();
    FeedProxy::new(&subscriber).subscribe().await.unwrap();
    handle.clients().group("feed").update(7).await.unwrap();
    let delivered = within("the update", subscriber.next_invocation())
        .await
        .unwrap();
    assert_eq!(value_of(&delivered), 7);
    // A manager's error reaches the sender as it said it.
    assert_eq!(
        handle.groups().add("nobody", "feed").await,
        Err(signal::SendError::Backplane(
            "no such connection".to_owned()
        ))
    );
    subscriber.close().await;
    eventually("the disconnect to reach the manager", || {
        recording.seen().last().map(String::as_str) == Some("disconnected")
    })
    .await;
    assert_eq!(
        recording.seen(),
        [
            // Ids are random: their length shows one was passed.
            "connected 22 Some(\"ada\")".to_owned(),
            "add to feed".to_owned(),
            "send Groups { names: [\"feed\"], except: [] }".to_owned(),
            "add to feed".to_owned(),
            "disconnected".to_owned(),
        ]
    );
}
