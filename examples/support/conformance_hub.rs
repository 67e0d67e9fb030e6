//! The `conformance` hub's implementation, shared by the example server
//! (`examples/conformance.rs`) and the tests that run it in-process.

use std::time::Duration;

use futures_util::StreamExt;
use signal::persistent::Connection;
use signal::{Context, HubError, HubStream, UploadStream};
use signal_examples_api::conformance::{Conformance, ConformanceClient, Person};

/// The conformance hub.
pub(crate) struct ConformanceHub;

impl Conformance for ConformanceHub {
    async fn echo(&self, message: String) -> String {
        message
    }

    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn echo_person(&self, person: Person) -> Person {
        person
    }

    async fn fail(&self, message: String) -> Result<(), HubError> {
        Err(HubError::new(message))
    }

    async fn panic_now(&self) {
        panic!("panic_now was called");
    }

    async fn connection_id(&self, cx: &Context<dyn ConformanceClient>) -> String {
        cx.connection_id().to_string()
    }

    async fn transport(&self, cx: &Context<dyn ConformanceClient>) -> String {
        cx.transport().to_string()
    }

    async fn send_to_caller(
        &self,
        cx: &Context<dyn ConformanceClient>,
        message: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().caller().message(message).await?)
    }

    async fn broadcast(
        &self,
        cx: &Context<dyn ConformanceClient>,
        message: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().all().message(message).await?)
    }

    async fn send_to_others(
        &self,
        cx: &Context<dyn ConformanceClient>,
        message: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().others().message(message).await?)
    }

    async fn send_to_connection(
        &self,
        cx: &Context<dyn ConformanceClient>,
        connection_id: String,
        message: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().client(connection_id).message(message).await?)
    }

    async fn join_group(
        &self,
        cx: &Context<dyn ConformanceClient>,
        group: String,
    ) -> Result<(), HubError> {
        Ok(cx.groups().add(cx.connection_id().clone(), &group).await?)
    }

    async fn leave_group(
        &self,
        cx: &Context<dyn ConformanceClient>,
        group: String,
    ) -> Result<(), HubError> {
        Ok(cx
            .groups()
            .remove(cx.connection_id().clone(), &group)
            .await?)
    }

    async fn send_to_group(
        &self,
        cx: &Context<dyn ConformanceClient>,
        group: String,
        message: String,
    ) -> Result<(), HubError> {
        Ok(cx
            .clients()
            .group(&group)
            .group_message(group.clone(), message)
            .await?)
    }

    async fn counter(&self, count: u32, delay_ms: u64) -> HubStream<u32> {
        let delay = Duration::from_millis(delay_ms);
        Box::pin(
            futures_util::stream::iter(0..count).then(move |i| async move {
                tokio::time::sleep(delay).await;
                Ok(i)
            }),
        )
    }

    async fn sum(&self, mut numbers: UploadStream<i64>) -> Result<i64, HubError> {
        let mut total = 0i64;
        while let Some(n) = numbers.next().await {
            total = total.saturating_add(n?);
        }
        Ok(total)
    }

    async fn ask_caller(
        &self,
        cx: &Context<dyn ConformanceClient>,
        question: String,
    ) -> Result<String, HubError> {
        Ok(cx.clients().caller().ask(question).await?)
    }

    async fn delay(&self, ms: u64, tag: String) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        tag
    }

    async fn add_to_group(
        &self,
        cx: &Context<dyn ConformanceClient>,
        connection_id: String,
        group: String,
    ) -> Result<(), HubError> {
        Ok(cx.groups().add(connection_id, &group).await?)
    }

    async fn remove_from_group(
        &self,
        cx: &Context<dyn ConformanceClient>,
        connection_id: String,
        group: String,
    ) -> Result<(), HubError> {
        Ok(cx.groups().remove(connection_id, &group).await?)
    }

    async fn ask_client(
        &self,
        cx: &Context<dyn ConformanceClient>,
        connection_id: String,
        question: String,
    ) -> Result<String, HubError> {
        Ok(cx.clients().client(connection_id).ask(question).await?)
    }

    async fn user_id(&self, cx: &Context<dyn ConformanceClient>) -> Option<String> {
        cx.user_id().map(str::to_owned)
    }

    async fn request_header(
        &self,
        cx: &Context<dyn ConformanceClient>,
        name: String,
    ) -> Option<String> {
        let value = cx.request()?.headers.get(name.as_str())?;
        value.to_str().ok().map(str::to_owned)
    }
}

/// `/echo`: every message back to its sender, as it came.
pub(crate) async fn echo(mut connection: Connection) {
    let sender = connection.sender();
    while let Some(message) = connection.next().await {
        if sender.send(message).await.is_err() {
            break;
        }
    }
}
