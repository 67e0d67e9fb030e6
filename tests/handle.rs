//! Sending from outside hub methods through a `HubHandle`, and shutting a hub
//! down, over in-process connections (the real session loop and codec).

use std::time::Duration;

use signal::protocol::Invocation;
use signal::{Context, HubError};

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

async fn next(connection: &signal::InProcessConnection) -> Option<Invocation> {
    tokio::time::timeout(Duration::from_secs(5), connection.next_invocation())
        .await
        .expect("the hub answered in time")
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
    for _ in 0..100 {
        if handle.group_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handle.group_count(), 0);
    assert_eq!(handle.connection_count(), 1);
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
    handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(handle.connection_count(), 0);
    for connection in &connections {
        assert!(
            next(connection).await.is_none(),
            "the connection was closed"
        );
    }
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

#[tokio::test]
async fn a_client_result_that_never_comes_times_out() {
    let hub = AskerHub
        .into_hub()
        .configure(|o| o.client_result_timeout = Duration::from_millis(200))
        .in_process();
    let connection = hub.connect().await.unwrap();
    let proxy = AskerProxy::new(&connection);
    let started = std::time::Instant::now();
    let (answer, question) = tokio::join!(proxy.ask(), next(&connection));
    // The question arrived, went unanswered, and the hub method got an error in time.
    assert_eq!(question.unwrap().target, "question");
    let error = answer.unwrap_err().to_string();
    assert!(error.contains("did not answer within 200ms"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The connection goes on.
    let (again, question) = tokio::join!(proxy.ask(), next(&connection));
    assert!(again.is_err() && question.is_some());
}
