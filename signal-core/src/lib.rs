//! The protocol model of [signal](https://docs.rs/signal): the ASP.NET Core SignalR hub
//! protocol's messages, the JSON hub protocol codec, the handshake, the negotiate
//! document and the record framing. This crate does no I/O.
//!
//! Runtime crates (the server, a client) build on these types; users normally reach
//! them through the `signal` facade.

pub mod descriptor;
pub mod handshake;
pub mod invoker;
pub mod json;
pub mod message;
pub mod negotiate;
pub mod record;

pub use descriptor::{
    ClientDescriptor, HubDescriptor, MethodDescriptor, MethodKind, ParameterDescriptor,
};
pub use handshake::{HandshakeRequest, HandshakeResponse};
pub use invoker::{InvokeError, Invoker};
pub use json::{JsonHubProtocol, ProtocolError};
pub use message::{
    ArgumentError, Arguments, CancelInvocation, Close, Completion, CompletionOutcome, HubMessage,
    Invocation, StreamInvocation, StreamItem,
};
pub use negotiate::{NegotiateResponse, TransferFormat, TransportDescription, TransportType};
pub use record::{RECORD_SEPARATOR, RecordError, RecordReader};
