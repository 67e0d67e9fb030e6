//! The `conformance` hub: a fixed contract that acceptance suites outside this
//! repository depend on. Keep it exactly.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use signal::{Context, HubError, HubStream, UploadStream};

/// A person, as `echo_person` takes and returns it.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Person {
    /// The person's name.
    pub name: String,
    /// Age in years.
    pub age: u32,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Where the person lives, if known.
    pub address: Option<Address>,
}

/// Where a person lives.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Address {
    /// The city.
    pub city: String,
}

/// What the conformance hub calls on its clients.
#[signal::client]
pub trait ConformanceClient {
    /// A message sent to the caller, everyone, the others or one connection.
    async fn message(&self, text: String);
    /// A message sent to a group.
    async fn group_message(&self, group: String, text: String);
    /// Asks the client a question; the client's handler answers (a client result).
    async fn ask(&self, question: String) -> String;
}

/// The conformance contract.
#[signal::hub(client = ConformanceClient)]
pub trait Conformance {
    /// Returns its argument.
    async fn echo(&self, message: String) -> String;
    /// The sum of `a` and `b`.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Returns the person it was given.
    async fn echo_person(&self, person: Person) -> Person;
    /// Fails with a hub error carrying `message`.
    async fn fail(&self, message: String) -> Result<(), HubError>;
    /// Panics; the caller gets a generic error and the connection goes on.
    async fn panic_now(&self);
    /// The caller's public connection id.
    async fn connection_id(&self, cx: &Context<dyn ConformanceClient>) -> String;
    /// The caller's transport: `WebSockets`, `ServerSentEvents` or `LongPolling`.
    async fn transport(&self, cx: &Context<dyn ConformanceClient>) -> String;
    /// Calls `message(text)` on the caller.
    async fn send_to_caller(
        &self,
        cx: &Context<dyn ConformanceClient>,
        message: String,
    ) -> Result<(), HubError>;
    /// Calls `message(text)` on every connection.
    async fn broadcast(
        &self,
        cx: &Context<dyn ConformanceClient>,
        message: String,
    ) -> Result<(), HubError>;
    /// Calls `message(text)` on every connection but the caller.
    async fn send_to_others(
        &self,
        cx: &Context<dyn ConformanceClient>,
        message: String,
    ) -> Result<(), HubError>;
    /// Calls `message(text)` on one connection.
    async fn send_to_connection(
        &self,
        cx: &Context<dyn ConformanceClient>,
        connection_id: String,
        message: String,
    ) -> Result<(), HubError>;
    /// Adds the caller to `group`.
    async fn join_group(
        &self,
        cx: &Context<dyn ConformanceClient>,
        group: String,
    ) -> Result<(), HubError>;
    /// Removes the caller from `group`.
    async fn leave_group(
        &self,
        cx: &Context<dyn ConformanceClient>,
        group: String,
    ) -> Result<(), HubError>;
    /// Calls `groupMessage(group, text)` on the members of `group`.
    async fn send_to_group(
        &self,
        cx: &Context<dyn ConformanceClient>,
        group: String,
        message: String,
    ) -> Result<(), HubError>;
    /// Streams `0..count`, one item every `delay_ms` milliseconds.
    async fn counter(&self, count: u32, delay_ms: u64) -> HubStream<u32>;
    /// The sum of an uploaded stream of numbers.
    async fn sum(&self, numbers: UploadStream<i64>) -> Result<i64, HubError>;
    /// Asks the caller's `ask(question)` and returns its answer.
    async fn ask_caller(
        &self,
        cx: &Context<dyn ConformanceClient>,
        question: String,
    ) -> Result<String, HubError>;
    /// Waits `ms` milliseconds, then returns `tag`: shows that one connection's
    /// invocations complete in order.
    async fn delay(&self, ms: u64, tag: String) -> String;
    /// Adds the connection `connection_id` (on any node, with a backplane) to
    /// `group`.
    async fn add_to_group(
        &self,
        cx: &Context<dyn ConformanceClient>,
        connection_id: String,
        group: String,
    ) -> Result<(), HubError>;
    /// Removes the connection `connection_id` (on any node) from `group`.
    async fn remove_from_group(
        &self,
        cx: &Context<dyn ConformanceClient>,
        connection_id: String,
        group: String,
    ) -> Result<(), HubError>;
    /// Asks the connection `connection_id`'s `ask(question)` (on any node) and
    /// returns its answer.
    async fn ask_client(
        &self,
        cx: &Context<dyn ConformanceClient>,
        connection_id: String,
        question: String,
    ) -> Result<String, HubError>;
    /// The caller's user (`conformance-user` when `SIGNAL_AUTH_TOKEN` is
    /// set), null when anonymous.
    async fn user_id(&self, cx: &Context<dyn ConformanceClient>) -> Option<String>;
    /// The header `name` of the request the caller connected with (for long
    /// polling, its first poll), null when absent.
    async fn request_header(
        &self,
        cx: &Context<dyn ConformanceClient>,
        name: String,
    ) -> Option<String>;
}
