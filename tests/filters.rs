//! Hub filters and authorization over in-process connections (the real session
//! loop and codec): the order filters run in, what they see, refusing a call,
//! lifecycle filters, `#[signal::authorize]` per hub and per method with named
//! policies, and what the descriptor records. Negotiate and transport requests
//! of a hub that requires a user are refused over real HTTP.

mod common;

use std::sync::{Arc, Mutex};

use common::within;
use serde_json::json;
use signal::auth::Identity;
use signal::filter::{FilterResult, HubFilter, HubFilters, Invocation, Lifecycle, Next};
use signal::protocol::{Arguments, Authorize, InvokeError, Invoker, Payload};
use signal::{BoxFuture, Context, HubError, InProcessConnection, InvocationError};

/// A hub whose methods say what ran.
#[signal::hub]
#[signal::authorize]
pub trait Vault {
    /// Anyone signed in.
    async fn read(&self, cx: &Context, key: String) -> String;
    /// Only the `writer` policy.
    #[signal::authorize(policy = "writer")]
    async fn write(&self, key: String, value: String) -> Result<(), HubError>;
    /// The `writer` and `auditor` policies both.
    #[signal::authorize(policy = "writer")]
    #[signal::authorize(policy = "auditor")]
    async fn purge(&self) -> u32;
    /// Who the hub sees.
    async fn whoami(&self, cx: &Context) -> Option<String>;
    /// Journals the connect.
    async fn on_connected(&self, cx: &Context);
    /// Journals the disconnect.
    async fn on_disconnected(&self, cx: &Context);
}

#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct VaultHub(Journal);

impl Vault for VaultHub {
    async fn read(&self, cx: &Context, key: String) -> String {
        self.0.push(format!("read {key}"));
        format!("{key} for {}", cx.user_id().unwrap_or("nobody"))
    }

    async fn write(&self, key: String, value: String) -> Result<(), HubError> {
        self.0.push(format!("write {key}={value}"));
        Ok(())
    }

    async fn purge(&self) -> u32 {
        self.0.push("purge");
        3
    }

    async fn whoami(&self, cx: &Context) -> Option<String> {
        cx.identity().map(|i| i.user_id().to_owned())
    }

    async fn on_connected(&self, _cx: &Context) {
        self.0.push("hub connected");
    }

    async fn on_disconnected(&self, _cx: &Context) {
        self.0.push("hub disconnected");
    }
}

/// Records what it sees before and after the rest of the chain.
struct Tracer(&'static str, Journal);

impl HubFilter for Tracer {
    fn invoke<'a>(
        &'a self,
        invocation: Invocation<'a>,
        next: Next<'a>,
    ) -> BoxFuture<'a, FilterResult> {
        Box::pin(async move {
            let method = invocation.method().to_owned();
            let arguments = invocation.arguments().len();
            let user = invocation.context().user_id().map(str::to_owned);
            self.1.push(format!(
                "{} before {method}/{arguments} by {} in {}",
                self.0,
                user.as_deref().unwrap_or("-"),
                invocation.hub()
            ));
            let result = next.run(invocation).await;
            self.1
                .push(format!("{} after {method} ok={}", self.0, result.is_ok()));
            result
        })
    }

    fn on_connected<'a>(
        &'a self,
        _cx: &'a signal::Context,
        next: Lifecycle<'a>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.1.push(format!("{} connecting", self.0));
            next.run().await;
            self.1.push(format!("{} connected", self.0));
        })
    }

    fn on_disconnected<'a>(
        &'a self,
        _cx: &'a signal::Context,
        error: Option<&'a str>,
        next: Lifecycle<'a>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.1
                .push(format!("{} disconnecting error={error:?}", self.0));
            next.run().await;
        })
    }
}

/// Refuses `write` of the key `locked` before the method runs, and rewrites
/// `read`'s key to upper case (a filter may change the call).
struct Guard;

impl HubFilter for Guard {
    fn invoke<'a>(
        &'a self,
        mut invocation: Invocation<'a>,
        next: Next<'a>,
    ) -> BoxFuture<'a, FilterResult> {
        Box::pin(async move {
            let method = invocation.method().to_owned();
            if method == "write"
                && invocation
                    .arguments()
                    .get::<String>(0, "key")
                    .ok()
                    .as_deref()
                    == Some("locked")
            {
                return Err(InvocationError::hub(
                    &method,
                    HubError::new("the key is locked"),
                ));
            }
            if method == "read" {
                let key: String = invocation.arguments().get(0, "key").unwrap_or_default();
                invocation.call_mut().arguments =
                    Arguments::new(vec![Payload::to_json(&key.to_uppercase()).unwrap()]);
            }
            next.run(invocation).await
        })
    }
}

fn vault(journal: &Journal) -> signal::Hub<VaultServer<VaultHub>> {
    VaultHub(journal.clone())
        .into_hub()
        .policy("writer", |identity: &Identity| {
            identity.has_claim("roles", "writer")
        })
        .policy("auditor", |identity: &Identity| {
            identity.has_claim("roles", "auditor")
        })
}

fn args(values: &[serde_json::Value]) -> Arguments {
    values
        .iter()
        .map(|v| Payload::to_json(v).unwrap())
        .collect()
}

async fn hub_error(connection: &InProcessConnection, method: &str, arguments: Arguments) -> String {
    match within(method, connection.invoke(method, arguments)).await {
        Err(InvokeError::Hub(message)) => message,
        other => panic!("expected a hub error from {method}, got {other:?}"),
    }
}

async fn result(
    connection: &InProcessConnection,
    method: &str,
    arguments: Arguments,
) -> serde_json::Value {
    let payload = within(method, connection.invoke(method, arguments))
        .await
        .unwrap_or_else(|e| panic!("{method} failed: {e}"));
    payload
        .map(|p| p.decode().unwrap())
        .unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn filters_run_in_order_around_the_method_shared_ones_first() {
    let journal = Journal::default();
    let shared = HubFilters::new().with(Tracer("shared", journal.clone()));
    let hub = vault(&journal)
        .filter(Tracer("own", journal.clone()))
        .filter(Guard)
        .filters(shared)
        .in_process();
    let ada = hub
        .connect_with_identity(Identity::new("ada").with_claim("roles", json!(["writer"])))
        .await
        .unwrap();
    common::eventually("on_connected", || journal.0.lock().unwrap().len() >= 5).await;
    assert_eq!(
        journal.take(),
        [
            "shared connecting",
            "own connecting",
            "hub connected",
            "own connected",
            "shared connected"
        ]
    );

    assert_eq!(
        result(&ada, "read", args(&[json!("k")])).await,
        json!("K for ada")
    );
    assert_eq!(
        journal.take(),
        [
            "shared before read/1 by ada in Vault",
            "own before read/1 by ada in Vault",
            "read K",
            "own after read ok=true",
            "shared after read ok=true"
        ]
    );

    // A filter refuses: the method does not run, the caller reads the
    // HubException's text, the connection goes on.
    assert_eq!(
        hub_error(&ada, "write", args(&[json!("locked"), json!("v")])).await,
        "An unexpected error occurred invoking 'write' on the server. HubException: the key is locked"
    );
    assert_eq!(
        journal.take(),
        [
            "shared before write/2 by ada in Vault",
            "own before write/2 by ada in Vault",
            "own after write ok=false",
            "shared after write ok=false"
        ]
    );
    assert_eq!(
        result(&ada, "write", args(&[json!("k"), json!("v")])).await,
        json!(null)
    );
    assert!(journal.take().contains(&"write k=v".to_owned()));

    ada.close().await;
    common::eventually("on_disconnected", || journal.0.lock().unwrap().len() >= 3).await;
    assert_eq!(
        journal.take(),
        [
            "shared disconnecting error=None",
            "own disconnecting error=None",
            "hub disconnected"
        ]
    );
}

#[tokio::test]
async fn authorization_is_decided_per_method_before_any_filter() {
    let journal = Journal::default();
    let hub = vault(&journal)
        .filter(Tracer("filter", journal.clone()))
        .in_process();
    let reader = hub
        .connect_with_identity(Identity::new("rey").with_claim("roles", "reader"))
        .await
        .unwrap();
    let writer = hub
        .connect_with_identity(Identity::new("wes").with_claim("roles", json!(["writer"])))
        .await
        .unwrap();
    let both = hub
        .connect_with_identity(
            Identity::new("bo").with_claim("roles", json!(["writer", "auditor"])),
        )
        .await
        .unwrap();
    common::eventually("on_connected", || journal.0.lock().unwrap().len() >= 9).await;
    journal.take();

    // ASP.NET Core's text, with the method name as the client sent it.
    assert_eq!(
        hub_error(&reader, "Write", args(&[json!("k"), json!("v")])).await,
        "Failed to invoke 'Write' because user is unauthorized"
    );
    assert_eq!(
        hub_error(&writer, "purge", Arguments::default()).await,
        "Failed to invoke 'purge' because user is unauthorized"
    );
    // Refused before the filters and the method: nothing ran.
    assert_eq!(journal.take(), Vec::<String>::new());

    // The connections go on, and what they may call works.
    assert_eq!(
        result(&reader, "read", args(&[json!("a")])).await,
        json!("a for rey")
    );
    assert_eq!(
        result(&reader, "whoami", Arguments::default()).await,
        json!("rey")
    );
    assert_eq!(
        result(&writer, "write", args(&[json!("k"), json!("v")])).await,
        json!(null)
    );
    assert_eq!(result(&both, "purge", Arguments::default()).await, json!(3));

    // Without an identity (an in-process connection that skipped the
    // authentication layer), the hub's own requirement refuses every call.
    let anonymous = hub.connect().await.unwrap();
    assert_eq!(
        hub_error(&anonymous, "read", args(&[json!("a")])).await,
        "Failed to invoke 'read' because user is unauthorized"
    );
}

#[test]
fn the_descriptor_records_what_each_method_requires() {
    let descriptor = <dyn Vault>::descriptor();
    assert_eq!(descriptor.authorize, Some(Authorize { policies: vec![] }));
    let policies = |name: &str| descriptor.method(name).unwrap().authorize.clone();
    assert_eq!(policies("read"), None);
    assert_eq!(
        policies("write"),
        Some(Authorize {
            policies: vec!["writer".to_owned()]
        })
    );
    assert_eq!(
        policies("purge"),
        Some(Authorize {
            policies: vec!["writer".to_owned(), "auditor".to_owned()]
        })
    );
    let json = serde_json::to_value(&descriptor).unwrap();
    assert_eq!(json["authorize"], json!({ "policies": [] }));
    assert_eq!(
        json["methods"][1]["authorize"],
        json!({ "policies": ["writer"] })
    );
    assert!(json["methods"][0].get("authorize").is_none());
}

#[test]
#[should_panic(
    expected = "the `Vault` hub requires the authorization policy `writer`, which is not registered: add `.policy(\"writer\", |identity| …)` to the hub"
)]
fn mounting_a_hub_without_a_policy_it_names_panics() {
    let _ = VaultHub(Journal::default()).into_hub().router::<()>();
}

#[tokio::test]
async fn negotiate_and_transports_answer_401_without_a_user_and_403_when_the_hub_policy_refuses() {
    let hub = vault(&Journal::default()).authorize(Authorize::new(Some("writer")));
    let app = axum::Router::new()
        .nest("/vault", hub.router())
        .layer(axum::middleware::from_fn(common::identify));
    let url = format!("http://{}", common::serve_router(app).await);
    let client = reqwest::Client::new();
    let negotiate = |token: Option<&'static str>| {
        let mut request = client.post(format!("{url}/vault/negotiate?negotiateVersion=1"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let anonymous = negotiate(None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        anonymous.text().await.unwrap(),
        "Authentication is required to connect to this hub."
    );

    let bob = negotiate(Some("bob")).await.unwrap();
    assert_eq!(bob.status(), 403);
    assert_eq!(
        bob.text().await.unwrap(),
        "The user is not authorized to connect to this hub."
    );

    let ada = negotiate(Some("ada")).await.unwrap();
    assert_eq!(ada.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&ada.text().await.unwrap()).unwrap();
    let token = body["connectionToken"].as_str().unwrap();
    // The transport request is checked too, with the access_token the
    // official clients send over SSE and WebSockets.
    let poll = client
        .get(format!("{url}/vault?id={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(poll.status(), 401);
    let sse = client
        .get(format!("{url}/vault?id={token}&access_token=bob"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 403);
}
