//! A client of SignalR hubs: signal's own and ASP.NET Core's, over the same wire
//! as the official clients.
//!
//! A [`HubConnection`] negotiates, connects the first transport both sides allow
//! (WebSockets, Server-Sent Events, long polling, in the server's order), speaks
//! JSON or MessagePack, keeps the connection alive and reconnects when asked to.
//! It implements [`Invoker`], so the proxies
//! `#[signal::hub]` generates call a hub over the network:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use signal_client::HubConnection;
//!
//! let connection = HubConnection::builder("http://localhost:5000/conformance")
//!     .with_automatic_reconnect()
//!     .build()?;
//! connection.start().await?;
//! let sum: i64 = connection.invoke("add", (2, 3)).await?;
//! assert_eq!(sum, 5);
//! connection.stop().await;
//! # Ok(()) }
//! ```
//!
//! With a Rust contract, `ConformanceProxy::new(&connection).add(2, 3).await?`
//! does the same with types checked at compile time, and an implementation of
//! the `#[signal::client]` trait, registered with
//! [`register`](HubConnection::register), receives the server's calls.

mod builder;
mod connection;
mod error;
mod negotiate;
mod retry;
mod transport;

pub use builder::{AccessTokenProvider, HubConnectionBuilder};
pub use connection::{ConnectionState, HubConnection, IntoArguments};
pub use error::Error;
pub use retry::{Delays, RetryContext, RetryPolicy};
pub use signal_core::{
    Arguments, ClientHandler, InvokeError, Invoker, JsonHubProtocol, MessagePackHubProtocol,
    Payload, TransportType,
};
