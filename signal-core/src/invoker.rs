//! The seam between typed caller proxies and whatever carries their calls.
//!
//! The `#[signal::hub]` macro generates a proxy struct per hub, generic over an
//! [`Invoker`]: a network client, or an in-process invoker in tests, plugs in here
//! without the macro knowing it.

use std::future::Future;
use std::pin::Pin;

use futures_core::Stream;

use crate::message::Arguments;
use crate::payload::{Payload, PayloadError};

/// A boxed stream of undecoded items, as a server stream arrives.
pub type RawItemStream = Pin<Box<dyn Stream<Item = Result<Payload, InvokeError>> + Send>>;

/// A stream of undecoded items a caller uploads to a hub method, one per upload
/// parameter: the invoker sends each item as a StreamItem and the end as a
/// Completion.
pub type RawUpload = Pin<Box<dyn Stream<Item = Payload> + Send>>;

/// A typed server stream, as a caller proxy returns it.
pub type ItemStream<T> = Pin<Box<dyn Stream<Item = Result<T, InvokeError>> + Send>>;

/// A call through an [`Invoker`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The hub answered with an error; this is its message.
    #[error("the hub method failed: {0}")]
    Hub(String),
    /// An argument could not be serialized.
    #[error("an argument could not be serialized: {0}")]
    Serialize(#[source] PayloadError),
    /// The result did not have the type the proxy declares.
    #[error("the result could not be read as the declared type: {0}")]
    Deserialize(#[source] PayloadError),
    /// The connection failed or closed before the call completed.
    #[error("the connection failed: {0}")]
    Connection(String),
    /// No Completion arrived within the invoker's invocation timeout.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The invoker cannot carry upload streams.
    #[error("this invoker cannot upload streams to a hub method")]
    UploadsUnsupported,
}

/// Carries calls from a typed proxy to a hub.
pub trait Invoker: Send + Sync {
    /// Invokes `method` and waits for its Completion; `None` for a void result.
    fn invoke(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> impl Future<Output = Result<Option<Payload>, InvokeError>> + Send;

    /// Invokes `method` without waiting for anything but the send itself.
    fn send(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> impl Future<Output = Result<(), InvokeError>> + Send;

    /// Invokes a streaming `method`; items arrive on the returned stream.
    fn stream(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> impl Future<Output = Result<RawItemStream, InvokeError>> + Send;

    /// Invokes `method` with `uploads` as its upload-stream arguments (after
    /// `arguments`) and waits for its Completion. Invokers that cannot upload
    /// refuse with [`InvokeError::UploadsUnsupported`].
    fn invoke_with_uploads(
        &self,
        method: &str,
        arguments: Arguments,
        uploads: Vec<RawUpload>,
    ) -> impl Future<Output = Result<Option<Payload>, InvokeError>> + Send {
        let _ = (method, arguments, uploads);
        async { Err(InvokeError::UploadsUnsupported) }
    }

    /// Invokes a streaming `method` with `uploads` as its upload-stream
    /// arguments. Invokers that cannot upload refuse with
    /// [`InvokeError::UploadsUnsupported`].
    fn stream_with_uploads(
        &self,
        method: &str,
        arguments: Arguments,
        uploads: Vec<RawUpload>,
    ) -> impl Future<Output = Result<RawItemStream, InvokeError>> + Send {
        let _ = (method, arguments, uploads);
        async { Err(InvokeError::UploadsUnsupported) }
    }
}

impl<I: Invoker + ?Sized> Invoker for &I {
    fn invoke(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> impl Future<Output = Result<Option<Payload>, InvokeError>> + Send {
        (**self).invoke(method, arguments)
    }

    fn send(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> impl Future<Output = Result<(), InvokeError>> + Send {
        (**self).send(method, arguments)
    }

    fn stream(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> impl Future<Output = Result<RawItemStream, InvokeError>> + Send {
        (**self).stream(method, arguments)
    }

    fn invoke_with_uploads(
        &self,
        method: &str,
        arguments: Arguments,
        uploads: Vec<RawUpload>,
    ) -> impl Future<Output = Result<Option<Payload>, InvokeError>> + Send {
        (**self).invoke_with_uploads(method, arguments, uploads)
    }

    fn stream_with_uploads(
        &self,
        method: &str,
        arguments: Arguments,
        uploads: Vec<RawUpload>,
    ) -> impl Future<Output = Result<RawItemStream, InvokeError>> + Send {
        (**self).stream_with_uploads(method, arguments, uploads)
    }
}

impl<I: Invoker + ?Sized> Invoker for std::sync::Arc<I> {
    fn invoke(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> impl Future<Output = Result<Option<Payload>, InvokeError>> + Send {
        (**self).invoke(method, arguments)
    }

    fn send(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> impl Future<Output = Result<(), InvokeError>> + Send {
        (**self).send(method, arguments)
    }

    fn stream(
        &self,
        method: &str,
        arguments: Arguments,
    ) -> impl Future<Output = Result<RawItemStream, InvokeError>> + Send {
        (**self).stream(method, arguments)
    }

    fn invoke_with_uploads(
        &self,
        method: &str,
        arguments: Arguments,
        uploads: Vec<RawUpload>,
    ) -> impl Future<Output = Result<Option<Payload>, InvokeError>> + Send {
        (**self).invoke_with_uploads(method, arguments, uploads)
    }

    fn stream_with_uploads(
        &self,
        method: &str,
        arguments: Arguments,
        uploads: Vec<RawUpload>,
    ) -> impl Future<Output = Result<RawItemStream, InvokeError>> + Send {
        (**self).stream_with_uploads(method, arguments, uploads)
    }
}
