//! A test fixture hub that reaches every send target, for the JS suite.
//!
//! Hub at `/targets`; a connection's user id is the `user` query parameter.
//! Run: `cargo run --example targets` (PORT defaults to 5000).
//! `SIGNAL_REDIS=redis://HOST:PORT` joins a Redis backplane (hub name `Targets`).

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use signal::{Context, HubError, HubStream, UploadStream};

/// What the fixture calls on its clients.
#[signal::client]
pub trait TargetsClient {
    /// Every send target delivers this.
    async fn message(&self, text: String);
    /// A question for one client (a client result).
    async fn ask(&self, question: String) -> String;
}

/// One method per send target, plus counters that show cleanup.
#[signal::hub(client = TargetsClient)]
pub trait Targets {
    /// The caller's connection id.
    async fn connection_id(&self, cx: &Context<dyn TargetsClient>) -> String;
    /// The caller's user id (the `user` query parameter), if any.
    async fn user_id(&self, cx: &Context<dyn TargetsClient>) -> Option<String>;
    /// Adds the caller to `group`.
    async fn join_group(
        &self,
        cx: &Context<dyn TargetsClient>,
        group: String,
    ) -> Result<(), HubError>;
    /// Removes the caller from `group`.
    async fn leave_group(
        &self,
        cx: &Context<dyn TargetsClient>,
        group: String,
    ) -> Result<(), HubError>;
    /// `all`
    async fn send_to_all(
        &self,
        cx: &Context<dyn TargetsClient>,
        text: String,
    ) -> Result<(), HubError>;
    /// `caller`
    async fn send_to_caller(
        &self,
        cx: &Context<dyn TargetsClient>,
        text: String,
    ) -> Result<(), HubError>;
    /// `others`
    async fn send_to_others(
        &self,
        cx: &Context<dyn TargetsClient>,
        text: String,
    ) -> Result<(), HubError>;
    /// `client`
    async fn send_to_connection(
        &self,
        cx: &Context<dyn TargetsClient>,
        id: String,
        text: String,
    ) -> Result<(), HubError>;
    /// `clients`
    async fn send_to_connections(
        &self,
        cx: &Context<dyn TargetsClient>,
        ids: Vec<String>,
        text: String,
    ) -> Result<(), HubError>;
    /// `all_except`
    async fn send_to_all_except(
        &self,
        cx: &Context<dyn TargetsClient>,
        ids: Vec<String>,
        text: String,
    ) -> Result<(), HubError>;
    /// `group`
    async fn send_to_group(
        &self,
        cx: &Context<dyn TargetsClient>,
        group: String,
        text: String,
    ) -> Result<(), HubError>;
    /// `groups`
    async fn send_to_groups(
        &self,
        cx: &Context<dyn TargetsClient>,
        groups: Vec<String>,
        text: String,
    ) -> Result<(), HubError>;
    /// `group_except`
    async fn send_to_group_except(
        &self,
        cx: &Context<dyn TargetsClient>,
        group: String,
        ids: Vec<String>,
        text: String,
    ) -> Result<(), HubError>;
    /// `others_in_group`
    async fn send_to_others_in_group(
        &self,
        cx: &Context<dyn TargetsClient>,
        group: String,
        text: String,
    ) -> Result<(), HubError>;
    /// `user`
    async fn send_to_user(
        &self,
        cx: &Context<dyn TargetsClient>,
        user: String,
        text: String,
    ) -> Result<(), HubError>;
    /// `users`
    async fn send_to_users(
        &self,
        cx: &Context<dyn TargetsClient>,
        users: Vec<String>,
        text: String,
    ) -> Result<(), HubError>;
    /// Groups with at least one member.
    async fn group_count(&self, cx: &Context<dyn TargetsClient>) -> usize;
    /// Live connections.
    async fn connection_count(&self, cx: &Context<dyn TargetsClient>) -> usize;
    /// An endless stream of ticks, one per `interval_ms`; counts as active until
    /// the server drops it.
    async fn ticker(&self, interval_ms: u64) -> HubStream<u64>;
    /// How many `ticker` streams the server is still producing.
    async fn active_tickers(&self) -> usize;
    /// Asks connection `id` its `ask(question)` and returns the answer.
    async fn ask_client(
        &self,
        cx: &Context<dyn TargetsClient>,
        id: String,
        question: String,
    ) -> Result<String, HubError>;
    /// Two uploads in one call: `first`'s items joined by `separator`, then
    /// `second`'s, as `a,b|c,d`. (The official JS client skips an upload that
    /// directly follows another in the argument list, hence the separator
    /// between them.)
    async fn concat(
        &self,
        first: UploadStream<String>,
        separator: String,
        second: UploadStream<String>,
    ) -> Result<String, HubError>;
}

#[derive(Default)]
struct TargetsHub {
    tickers: Arc<AtomicUsize>,
}

/// Counts a ticker as active for as long as its stream lives.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Targets for TargetsHub {
    async fn connection_id(&self, cx: &Context<dyn TargetsClient>) -> String {
        cx.connection_id().to_string()
    }

    async fn user_id(&self, cx: &Context<dyn TargetsClient>) -> Option<String> {
        cx.user_id().map(str::to_owned)
    }

    async fn join_group(
        &self,
        cx: &Context<dyn TargetsClient>,
        group: String,
    ) -> Result<(), HubError> {
        Ok(cx.groups().add(cx.connection_id().clone(), &group).await?)
    }

    async fn leave_group(
        &self,
        cx: &Context<dyn TargetsClient>,
        group: String,
    ) -> Result<(), HubError> {
        Ok(cx
            .groups()
            .remove(cx.connection_id().clone(), &group)
            .await?)
    }

    async fn send_to_all(
        &self,
        cx: &Context<dyn TargetsClient>,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().all().message(text).await?)
    }

    async fn send_to_caller(
        &self,
        cx: &Context<dyn TargetsClient>,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().caller().message(text).await?)
    }

    async fn send_to_others(
        &self,
        cx: &Context<dyn TargetsClient>,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().others().message(text).await?)
    }

    async fn send_to_connection(
        &self,
        cx: &Context<dyn TargetsClient>,
        id: String,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().client(id).message(text).await?)
    }

    async fn send_to_connections(
        &self,
        cx: &Context<dyn TargetsClient>,
        ids: Vec<String>,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().clients(ids).message(text).await?)
    }

    async fn send_to_all_except(
        &self,
        cx: &Context<dyn TargetsClient>,
        ids: Vec<String>,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().all_except(ids).message(text).await?)
    }

    async fn send_to_group(
        &self,
        cx: &Context<dyn TargetsClient>,
        group: String,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().group(group).message(text).await?)
    }

    async fn send_to_groups(
        &self,
        cx: &Context<dyn TargetsClient>,
        groups: Vec<String>,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().groups(groups).message(text).await?)
    }

    async fn send_to_group_except(
        &self,
        cx: &Context<dyn TargetsClient>,
        group: String,
        ids: Vec<String>,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().group_except(group, ids).message(text).await?)
    }

    async fn send_to_others_in_group(
        &self,
        cx: &Context<dyn TargetsClient>,
        group: String,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().others_in_group(group).message(text).await?)
    }

    async fn send_to_user(
        &self,
        cx: &Context<dyn TargetsClient>,
        user: String,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().user(user).message(text).await?)
    }

    async fn send_to_users(
        &self,
        cx: &Context<dyn TargetsClient>,
        users: Vec<String>,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().users(users).message(text).await?)
    }

    async fn group_count(&self, cx: &Context<dyn TargetsClient>) -> usize {
        cx.hub().group_count()
    }

    async fn connection_count(&self, cx: &Context<dyn TargetsClient>) -> usize {
        cx.hub().connection_count()
    }

    async fn ticker(&self, interval_ms: u64) -> HubStream<u64> {
        self.tickers.fetch_add(1, Ordering::SeqCst);
        let active = Active(self.tickers.clone());
        let interval = Duration::from_millis(interval_ms.max(1));
        Box::pin(futures_util::stream::unfold(
            (0u64, active),
            move |(n, active)| async move {
                tokio::time::sleep(interval).await;
                Some((Ok(n), (n + 1, active)))
            },
        ))
    }

    async fn active_tickers(&self) -> usize {
        self.tickers.load(Ordering::SeqCst)
    }

    async fn ask_client(
        &self,
        cx: &Context<dyn TargetsClient>,
        id: String,
        question: String,
    ) -> Result<String, HubError> {
        Ok(cx.clients().client(id).ask(question).await?)
    }

    async fn concat(
        &self,
        first: UploadStream<String>,
        separator: String,
        second: UploadStream<String>,
    ) -> Result<String, HubError> {
        // Both at once: the client may interleave their items.
        let (first, second) =
            futures_util::join!(first.collect::<Vec<_>>(), second.collect::<Vec<_>>());
        let first = first.into_iter().collect::<Result<Vec<_>, _>>()?;
        let second = second.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(format!(
            "{}|{}",
            first.join(&separator),
            second.join(&separator)
        ))
    }
}

fn main() -> std::io::Result<()> {
    signal::runtime()?.block_on(run_server())
}

async fn run_server() -> std::io::Result<()> {
    support::init_tracing();
    let hub = TargetsHub::default()
        .into_hub()
        .user_id(|parts| url_user(parts.uri.query()?));
    let (hub, backplane) = support::backplane(hub, "Targets")?;
    let handle = hub.handle();
    let app = axum::Router::new().nest("/targets", hub.router());
    backplane.ready().await;
    support::serve(
        app,
        async move { handle.shutdown(Duration::from_secs(5)).await },
    )
    .await
}

/// The `user` query parameter.
fn url_user(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "user").then(|| value.to_owned())
    })
}
