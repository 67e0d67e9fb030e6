//! A `#[signal::hub]` driven through its real `HubDispatch` over the in-process
//! transport (real handshake, session loop and JSON), through the generated
//! caller proxy and through raw invocations; and the descriptor it builds.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::{RawValue, to_raw_value};
use signal::protocol::{Arguments, Completion, InvokeError, Invoker, MethodKind, Payload};
use signal::{Context, HubDispatch, HubError, HubStream, InProcessConnection};

use common::{eventually, within};

/// A named type, used by both sides, to check `$defs` sharing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    x_pos: i32,
    y_pos: i32,
}

/// What the hub calls on its clients.
#[signal::client]
pub trait TestClient {
    /// A notification.
    async fn notify(&self, text: String);
    /// A point moved.
    async fn moved(&self, point: Point);
    /// A client result.
    async fn ask(&self, question: String) -> i64;
}

/// The hub under test.
#[signal::hub(client = TestClient)]
pub trait TestHub {
    /// Adds.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Mirrors a point; not async.
    fn mirror(&self, point: Point) -> Point;
    /// Both points, swapped.
    async fn swap(&self, a: Point, b: Point) -> (Point, Point);
    /// Fails with `why`.
    async fn fail(&self, why: String) -> Result<u8, HubError>;
    /// Fails with `why` as a .NET hub's `InvalidOperationException` would.
    async fn refuse(&self, why: String) -> Result<(), HubError>;
    /// Panics with `why` (a value-returning method, so the proxy waits for its Completion).
    async fn explode(&self, why: String) -> u8;
    /// Counts to `n`.
    async fn count(&self, n: u32) -> HubStream<u32>;
    /// Sends `notify(text)` to the caller.
    async fn notify_caller(
        &self,
        cx: &Context<dyn TestClient>,
        text: String,
    ) -> Result<(), HubError>;
    /// Asks a connection a question and returns its answer.
    async fn ask_client(
        &self,
        cx: &Context<dyn TestClient>,
        connection: String,
        question: String,
    ) -> Result<i64, HubError>;
    /// Fire and forget.
    async fn touch(&self);
    /// Renamed on the wire.
    #[signal::method(name = "Renamed")]
    async fn renamed(&self) -> String;
    /// Counts connections.
    async fn on_connected(&self, _cx: &Context<dyn TestClient>);
    /// Counts disconnections.
    async fn on_disconnected(&self, _cx: &Context<dyn TestClient>, _error: Option<&str>);
}

#[derive(Default)]
struct Counters {
    connected: AtomicUsize,
    disconnected: AtomicUsize,
    touched: AtomicUsize,
}

#[derive(Clone, Default)]
struct Impl(Arc<Counters>);

impl TestHub for Impl {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    fn mirror(&self, point: Point) -> Point {
        Point {
            x_pos: -point.x_pos,
            y_pos: -point.y_pos,
        }
    }

    async fn swap(&self, a: Point, b: Point) -> (Point, Point) {
        (b, a)
    }

    async fn fail(&self, why: String) -> Result<u8, HubError> {
        Err(HubError::new(why))
    }

    async fn refuse(&self, why: String) -> Result<(), HubError> {
        Err(HubError::new(why).with_kind("InvalidOperationException"))
    }

    async fn explode(&self, why: String) -> u8 {
        panic!("{why}");
    }

    async fn count(&self, n: u32) -> HubStream<u32> {
        Box::pin(futures_util::stream::iter((0..n).map(Ok)))
    }

    async fn notify_caller(
        &self,
        cx: &Context<dyn TestClient>,
        text: String,
    ) -> Result<(), HubError> {
        cx.clients().caller().notify(text).await?;
        Ok(())
    }

    async fn ask_client(
        &self,
        cx: &Context<dyn TestClient>,
        connection: String,
        question: String,
    ) -> Result<i64, HubError> {
        Ok(cx.clients().client(connection).ask(question).await?)
    }

    async fn touch(&self) {
        self.0.touched.fetch_add(1, Ordering::SeqCst);
    }

    async fn renamed(&self) -> String {
        "renamed".to_owned()
    }

    async fn on_connected(&self, _cx: &Context<dyn TestClient>) {
        self.0.connected.fetch_add(1, Ordering::SeqCst);
    }

    async fn on_disconnected(&self, _cx: &Context<dyn TestClient>, _error: Option<&str>) {
        self.0.disconnected.fetch_add(1, Ordering::SeqCst);
    }
}

fn hub() -> (Arc<Counters>, signal::InProcess<TestHubServer<Impl>>) {
    let hub = Impl::default();
    let counters = hub.0.clone();
    (counters, hub.into_hub().in_process())
}

/// The hub with detailed errors on.
fn detailed_hub() -> signal::InProcess<TestHubServer<Impl>> {
    Impl::default()
        .into_hub()
        .configure(|o| o.enable_detailed_errors = true)
        .in_process()
}

/// Arguments as raw JSON, as the in-process client receives them (so that they
/// compare equal to what it received).
fn args(values: &[serde_json::Value]) -> Arguments {
    values
        .iter()
        .map(|value| Payload::to_json(value).expect("JSON values serialize"))
        .collect()
}

/// The error text of a raw invocation that must fail.
async fn hub_error(connection: &InProcessConnection, method: &str, arguments: Arguments) -> String {
    match connection.invoke(method, arguments).await {
        Err(InvokeError::Hub(message)) => message,
        other => panic!("expected a hub error from {method}, got {other:?}"),
    }
}

/// ASP.NET Core's text for a method that does not exist.
fn no_such_method(method: &str) -> String {
    format!(
        "Failed to invoke '{method}' due to an error on the server. HubException: Method does not exist."
    )
}

#[tokio::test]
async fn typed_results_through_the_proxy() {
    let (_, hub) = hub();
    let proxy = TestHubProxy::new(hub.connect().await.unwrap());
    assert_eq!(proxy.add(2, 3).await.unwrap(), 5);
    let point = Point { x_pos: 1, y_pos: 2 };
    assert_eq!(
        proxy.mirror(point.clone()).await.unwrap(),
        Point {
            x_pos: -1,
            y_pos: -2
        }
    );
    let other = Point { x_pos: 3, y_pos: 4 };
    assert_eq!(
        proxy.swap(point.clone(), other.clone()).await.unwrap(),
        (other, point)
    );
    assert_eq!(proxy.renamed().await.unwrap(), "renamed");
    proxy.notify_caller("hi".into()).await.unwrap();
}

#[tokio::test]
async fn hub_errors_reach_the_caller() {
    let (_, hub) = hub();
    let proxy = TestHubProxy::new(hub.connect().await.unwrap());
    match proxy.fail("no such room".into()).await {
        Err(InvokeError::Hub(message)) => assert_eq!(
            message,
            "An unexpected error occurred invoking 'fail' on the server. HubException: no such room"
        ),
        other => panic!("expected a hub error, got {other:?}"),
    }
}

#[tokio::test]
async fn errors_of_another_kind_and_panics_carry_details_only_when_detailed_errors_are_on() {
    // ASP.NET Core's rule (ErrorMessageHelper): a HubException's message always
    // reaches the caller, any other exception's only with detailed errors.
    let (_, hub) = hub();
    let plain = TestHubProxy::new(hub.connect().await.unwrap());
    let detailed = TestHubProxy::new(detailed_hub().connect().await.unwrap());
    for (proxy, expected) in [
        (
            &plain,
            "An unexpected error occurred invoking 'refuse' on the server.",
        ),
        (
            &detailed,
            "An unexpected error occurred invoking 'refuse' on the server. InvalidOperationException: the room is closed",
        ),
    ] {
        match proxy.refuse("the room is closed".into()).await {
            Err(InvokeError::Hub(message)) => assert_eq!(message, expected),
            other => panic!("expected a hub error, got {other:?}"),
        }
    }
    for (proxy, expected) in [
        (
            &plain,
            "An unexpected error occurred invoking 'explode' on the server.",
        ),
        (
            &detailed,
            "An unexpected error occurred invoking 'explode' on the server. Exception: out of cheese",
        ),
    ] {
        match proxy.explode("out of cheese".into()).await {
            Err(InvokeError::Hub(message)) => assert_eq!(message, expected),
            other => panic!("expected a hub error, got {other:?}"),
        }
    }
    // A HubException reads the same either way.
    match detailed.fail("no such room".into()).await {
        Err(InvokeError::Hub(message)) => assert_eq!(
            message,
            "An unexpected error occurred invoking 'fail' on the server. HubException: no such room"
        ),
        other => panic!("expected a hub error, got {other:?}"),
    }
}

#[tokio::test]
async fn server_streams_arrive_typed() {
    let (_, hub) = hub();
    let proxy = TestHubProxy::new(hub.connect().await.unwrap());
    let items: Vec<u32> = proxy
        .count(4)
        .await
        .unwrap()
        .map(|item| item.unwrap())
        .collect()
        .await;
    assert_eq!(items, [0, 1, 2, 3]);
}

#[tokio::test]
async fn methods_match_without_case_and_by_their_wire_name() {
    let (_, hub) = hub();
    let connection = hub.connect().await.unwrap();
    let sum = connection
        .invoke("ADD", args(&[json!(1), json!(2)]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sum.as_json().map(|raw| raw.get()), Some("3"));
    let renamed = connection
        .invoke("renamed", Arguments::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.as_json().map(|raw| raw.get()), Some("\"renamed\""));
    // Errors name the method as the client spelled it, as ASP.NET Core does.
    assert_eq!(
        hub_error(&connection, "FAIL", args(&[json!("x")])).await,
        "An unexpected error occurred invoking 'FAIL' on the server. HubException: x"
    );
    assert_eq!(
        hub_error(&connection, "Add", args(&[json!(1)])).await,
        "Failed to invoke 'Add' due to an error on the server."
    );
    // The Rust name of a renamed method is not a wire name.
    assert_eq!(
        hub_error(&connection, "legacy", Arguments::default()).await,
        no_such_method("legacy")
    );
}

#[tokio::test]
async fn unknown_methods_and_hooks_are_not_callable() {
    let (_, hub) = hub();
    let connection = hub.connect().await.unwrap();
    for method in [
        "doesNotExist",
        "onConnected",
        "on_connected",
        "onDisconnected",
    ] {
        assert_eq!(
            hub_error(&connection, method, Arguments::default()).await,
            no_such_method(method)
        );
    }
}

#[tokio::test]
async fn argument_errors_carry_details_only_when_detailed_errors_are_on() {
    let (_, hub) = hub();
    let connection = hub.connect().await.unwrap();
    for arguments in [
        args(&[json!(1)]),
        args(&[json!(1), json!("two")]),
        args(&[json!(1), json!(2), json!(3)]),
    ] {
        assert_eq!(
            hub_error(&connection, "add", arguments).await,
            "Failed to invoke 'add' due to an error on the server."
        );
    }
    assert_eq!(
        hub_error(&connection, "mirror", args(&[json!({"x": 1})])).await,
        "Failed to invoke 'mirror' due to an error on the server."
    );

    let hub = detailed_hub();
    let connection = hub.connect().await.unwrap();
    assert_eq!(
        hub_error(&connection, "add", args(&[json!(1)])).await,
        "Failed to invoke 'add' due to an error on the server. InvalidDataException: Invocation provides 1 argument(s) but target expects 2."
    );
    let wrong_type = "InvalidDataException: Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked.";
    assert_eq!(
        hub_error(&connection, "add", args(&[json!(1), json!("two")])).await,
        format!("Failed to invoke 'add' due to an error on the server. {wrong_type}")
    );
    assert_eq!(
        hub_error(&connection, "mirror", args(&[json!({"x": 1})])).await,
        format!("Failed to invoke 'mirror' due to an error on the server. {wrong_type}")
    );
    // An unknown method reads the same either way.
    assert_eq!(
        hub_error(&connection, "doesNotExist", Arguments::default()).await,
        no_such_method("doesNotExist")
    );
}

#[tokio::test]
async fn streaming_and_non_streaming_methods_check_the_invocation_kind() {
    let (_, hub) = hub();
    let connection = hub.connect().await.unwrap();
    assert_eq!(
        hub_error(&connection, "count", args(&[json!(2)])).await,
        "The client attempted to invoke the streaming 'count' method with a non-streaming invocation."
    );
    let mut items = connection
        .stream("add", args(&[json!(1), json!(2)]))
        .await
        .unwrap();
    match items.next().await {
        Some(Err(InvokeError::Hub(message))) => assert_eq!(
            message,
            "The client attempted to invoke the non-streaming 'add' method with a streaming invocation."
        ),
        other => panic!("expected a kind error, got {other:?}"),
    }
}

#[tokio::test]
async fn client_methods_are_sent_typed() {
    let (_, hub) = hub();
    let connection = hub.connect().await.unwrap();
    connection
        .invoke("notifyCaller", args(&[json!("hello")]))
        .await
        .unwrap();
    let invocation = within("the notification", connection.next_invocation())
        .await
        .unwrap();
    assert_eq!(invocation.target, "notify");
    assert_eq!(invocation.invocation_id, None);
    assert_eq!(invocation.arguments, args(&[json!("hello")]));
}

#[tokio::test]
async fn client_results_round_trip() {
    let (_, hub) = hub();
    let asker = TestHubProxy::new(hub.connect().await.unwrap());
    let answerer = hub.connect().await.unwrap();
    let id = answerer.connection_id().to_string();
    let answering = tokio::spawn(async move {
        let invocation = within("the question", answerer.next_invocation())
            .await
            .unwrap();
        assert_eq!(invocation.target, "ask");
        assert_eq!(invocation.arguments, args(&[json!("six times seven?")]));
        let invocation_id = invocation.invocation_id.expect("a client result has an id");
        let answer: Box<RawValue> = to_raw_value(&42).unwrap();
        answerer
            .complete(Completion::result(invocation_id, answer))
            .await
            .unwrap();
        answerer
    });
    let answer = asker
        .ask_client(id, "six times seven?".into())
        .await
        .unwrap();
    assert_eq!(answer, 42);
    answering.await.unwrap();
}

#[tokio::test]
async fn a_client_error_becomes_a_hub_error() {
    let (_, hub) = hub();
    let asker = TestHubProxy::new(hub.connect().await.unwrap());
    let answerer = hub.connect().await.unwrap();
    let id = answerer.connection_id().to_string();
    tokio::spawn(async move {
        let invocation = within("the question", answerer.next_invocation())
            .await
            .unwrap();
        let invocation_id = invocation.invocation_id.unwrap();
        answerer
            .complete(Completion::error(invocation_id, "no handler"))
            .await
            .unwrap();
        answerer
    });
    match asker.ask_client(id, "?".into()).await {
        // The client's text reaches the hub method unchanged.
        Err(InvokeError::Hub(message)) => assert_eq!(
            message,
            "An unexpected error occurred invoking 'askClient' on the server. HubException: no handler"
        ),
        other => panic!("expected a hub error, got {other:?}"),
    }
}

#[tokio::test]
async fn hooks_and_fire_and_forget_run() {
    let (counters, hub) = hub();
    let connection = hub.connect().await.unwrap();
    eventually("on_connected", || {
        counters.connected.load(Ordering::SeqCst) == 1
    })
    .await;
    let proxy = TestHubProxy::new(connection);
    proxy.touch().await.unwrap();
    eventually("touch", || counters.touched.load(Ordering::SeqCst) == 1).await;
    proxy.0.close().await;
    eventually("on_disconnected", || {
        counters.disconnected.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[test]
fn the_descriptor_shares_named_types_between_hub_and_client() {
    let descriptor = <dyn TestHub>::descriptor();
    assert_eq!(
        descriptor,
        HubDispatch::descriptor(&TestHubServer(Impl::default()))
    );
    let value = serde_json::to_value(&descriptor).unwrap();

    assert_eq!(value["name"], "TestHub");
    assert_eq!(value["docs"], "The hub under test.");
    let methods = value["methods"].as_array().unwrap();
    let wire_names: Vec<&str> = methods
        .iter()
        .map(|m| m["wireName"].as_str().unwrap())
        .collect();
    assert_eq!(
        wire_names,
        [
            "add",
            "mirror",
            "swap",
            "fail",
            "refuse",
            "explode",
            "count",
            "notifyCaller",
            "askClient",
            "touch",
            "Renamed"
        ]
    );

    let add = &methods[0];
    assert_eq!(add["name"], "add");
    assert_eq!(add["kind"], "unary");
    assert_eq!(add["docs"], "Adds.");
    assert_eq!(add["parameters"][0]["name"], "a");
    assert_eq!(add["parameters"][0]["schema"]["type"], "integer");
    assert_eq!(add["returns"]["type"], "integer");

    // Point is described once, in `$defs`, and referenced by every use.
    let point_ref = json!({ "$ref": "#/$defs/Point" });
    assert_eq!(methods[1]["parameters"][0]["schema"], point_ref);
    assert_eq!(methods[1]["returns"], point_ref);
    assert_eq!(methods[2]["parameters"][0]["schema"], point_ref);
    assert_eq!(methods[2]["parameters"][1]["schema"], point_ref);
    let defs = value["$defs"].as_object().unwrap();
    assert_eq!(defs.len(), 1, "{defs:?}");
    assert_eq!(defs["Point"]["type"], "object");
    assert!(
        defs["Point"]["properties"]["xPos"].is_object(),
        "serde renames apply"
    );

    let kinds: Vec<MethodKind> = descriptor.methods.iter().map(|m| m.kind).collect();
    use MethodKind::*;
    assert_eq!(
        kinds,
        [
            Unary,
            Unary,
            Unary,
            Unary,
            Unary,
            Unary,
            ServerStream,
            Unary,
            Unary,
            FireAndForget,
            Unary
        ]
    );
    assert_eq!(value["methods"][6]["returns"]["type"], "integer");
    assert!(value["methods"][9].get("returns").is_none());
    assert!(value["methods"][7].get("returns").is_none());
    assert_eq!(
        value["methods"][7]["parameters"].as_array().unwrap().len(),
        1
    );

    let client = &value["client"];
    assert_eq!(client["name"], "TestClient");
    assert_eq!(client["docs"], "What the hub calls on its clients.");
    assert!(
        client.get("$defs").is_none(),
        "the hub holds the definitions"
    );
    let client_methods = client["methods"].as_array().unwrap();
    assert_eq!(client_methods[0]["kind"], "fireAndForget");
    assert_eq!(client_methods[1]["parameters"][0]["schema"], point_ref);
    assert_eq!(client_methods[2]["kind"], "clientResult");
    assert_eq!(client_methods[2]["returns"]["type"], "integer");
}

#[test]
fn a_client_descriptor_alone_carries_its_definitions() {
    let client = serde_json::to_value(<dyn TestClient>::descriptor()).unwrap();
    assert_eq!(
        client["methods"][1]["parameters"][0]["schema"]["$ref"],
        "#/$defs/Point"
    );
    assert_eq!(client["$defs"]["Point"]["type"], "object");
    assert_eq!(
        <dyn TestClient as signal::ClientContract>::descriptor(),
        Some(<dyn TestClient>::descriptor())
    );
}
