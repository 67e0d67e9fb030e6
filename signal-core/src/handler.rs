//! The seam between a client's handlers and whatever receives the server's calls.
//!
//! `#[signal::client]` generates, for a trait `ChatClient`, a `ChatClientHandler<T>`
//! that implements [`ClientHandler`] for any `T: ChatClient`: a network client
//! registers it once and routes every Invocation the server sends through it. A
//! method that returns a value answers a client-result call with it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::message::Arguments;
use crate::payload::Payload;

/// What a handler's call yields: the result to answer a client-result call with
/// (`None` for a method that returns nothing), or an error text for the server.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Option<Payload>, String>> + Send>>;

/// Receives the calls a hub makes on a client.
pub trait ClientHandler: Send + Sync + 'static {
    /// The wire names of the client methods handled, as the server calls them.
    fn methods(&self) -> &'static [&'static str];

    /// Calls the client method named `method` (compared without regard to ASCII
    /// case, as the official clients do); `None` when this handler has no such
    /// method.
    fn call(self: Arc<Self>, method: &str, arguments: Arguments) -> Option<HandlerFuture>;
}
