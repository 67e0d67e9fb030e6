//! The protocol model of [signal](https://docs.rs/signal): the ASP.NET Core SignalR hub
//! protocol's messages, the hub protocols that encode them (JSON and MessagePack, as
//! plug-ins behind [`HubProtocol`]), their framing, the handshake and the negotiate
//! document. This crate does no I/O.
//!
//! Runtime crates (the server, a client) build on these types; users normally reach
//! them through the `signal` facade.

pub mod descriptor;
pub mod handler;
pub mod handshake;
pub mod invoker;
pub mod message;
pub mod negotiate;
pub mod payload;
pub mod protocol;
pub mod serialized;

pub use descriptor::{
    Authorize, ClientDescriptor, HubDescriptor, MethodDescriptor, MethodKind, ParameterDescriptor,
};
pub use handler::{ClientHandler, HandlerFuture};
pub use handshake::{HandshakeRequest, HandshakeResponse};
pub use invoker::{InvokeError, Invoker, RawUpload};
pub use message::{
    ArgumentError, Arguments, CancelInvocation, Close, Completion, CompletionOutcome, Headers,
    HubMessage, Invocation, StreamInvocation, StreamItem,
};
pub use negotiate::{NegotiateResponse, TransferFormat, TransportDescription, TransportType};
pub use payload::{JsonText, Payload, PayloadError};
pub use protocol::framing::{
    FrameReader, Framing, LengthPrefixReader, Messages, RECORD_SEPARATOR, RecordError, RecordReader,
};
pub use protocol::{
    HandshakeRefusal, HubProtocol, JsonHubProtocol, MAX_PROTOCOLS, MessagePackError,
    MessagePackHubProtocol, ProtocolError, ProtocolId, ProtocolSet, ProtocolSetError,
    RegisteredProtocol, WriteError,
};
pub use serialized::SerializedHubMessage;
