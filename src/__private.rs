//! Everything generated code refers to, under one stable path. Not public API:
//! nothing here follows semver.
//!
//! The macros route every use of a user's argument, result or item type through
//! [`wire`], spanned at that type. So a type that is not `Serialize`,
//! `Deserialize` and `JsonSchema` yields one error per missing trait, pointing at
//! the type (rustc merges identical diagnostics), instead of one per use.

use std::marker::PhantomData;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use schemars::{JsonSchema, Schema};
use serde::Serialize;
use serde::de::DeserializeOwned;
use signal_core::descriptor::DescriptorBuilder;
use signal_core::invoker::RawItemStream;
use signal_core::{
    ArgumentError, Arguments, ClientDescriptor, InvokeError, ParameterDescriptor, Payload,
    PayloadError,
};
use signal_server::{
    Call, ClientResultError, HubError, HubStream, InvocationError, Output, UploadStream,
};

pub use futures_util;
pub use schemars;
pub use serde;
pub use serde_json;
pub use signal_core;

/// How values of `T` cross the wire: the operations generated code needs, as
/// function pointers, so that only [`wire`] carries the trait bounds.
///
/// Values sent are [`Payload::Value`]s, encoded by each connection's protocol
/// (JSON or MessagePack) when written; values received are decoded straight from
/// the encoding they arrived in.
pub struct Wire<T> {
    to_payload: fn(T) -> Payload,
    decode: fn(&Payload) -> Result<T, PayloadError>,
    argument: fn(&Arguments, usize, &str) -> Result<T, ArgumentError>,
    upload: fn(&mut Call, usize) -> Result<UploadStream<T>, ArgumentError>,
    schema: fn(&mut DescriptorBuilder) -> Schema,
}

impl<T> Clone for Wire<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Wire<T> {}

/// The wire operations of `T`; the one place generated code requires
/// `Serialize + DeserializeOwned + JsonSchema` (and `Send + Sync + 'static`, as a
/// value encoded later by each protocol must be).
#[inline]
pub fn wire<T: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static>() -> Wire<T> {
    Wire {
        to_payload: Payload::value::<T>,
        decode: Payload::decode::<T>,
        argument: |arguments, index, name| arguments.get::<T>(index, name),
        upload: |call, index| call.take_stream::<T>(index),
        schema: |builder| builder.schema::<T>(),
    }
}

impl<T> Wire<T> {
    /// The argument at `index` of a hub method.
    pub fn argument(
        self,
        arguments: &Arguments,
        index: usize,
        name: &str,
    ) -> Result<T, ArgumentError> {
        (self.argument)(arguments, index, name)
    }

    /// The upload stream at `index` (among the call's streams) of a hub method.
    pub fn upload(self, call: &mut Call, index: usize) -> Result<UploadStream<T>, ArgumentError> {
        (self.upload)(call, index)
    }

    /// A hub method's result.
    pub fn output(self, value: T) -> Output {
        Output::Value((self.to_payload)(value))
    }

    /// A hub method's stream, each item encoded by the caller's protocol.
    pub fn output_stream(self, stream: HubStream<T>) -> Output
    where
        T: 'static,
    {
        let to_payload = self.to_payload;
        Output::Stream(stream.map(move |item| item.map(to_payload)).boxed())
    }

    /// An argument of a client method.
    pub fn send_argument(self, value: T) -> Payload {
        (self.to_payload)(value)
    }

    /// A client's answer to a client-result call (`None` when it returned
    /// nothing, read as `null`).
    pub fn client_result(self, result: Option<Payload>) -> Result<T, ClientResultError> {
        let result = result.unwrap_or_else(Payload::null);
        (self.decode)(&result).map_err(|e| ClientResultError::Deserialize(e.to_string()))
    }

    /// An argument of a hub method, as a caller proxy sends it.
    pub fn invoke_argument(self, value: T) -> Payload {
        (self.to_payload)(value)
    }

    /// An upload parameter's stream, as a caller proxy sends it.
    pub fn invoke_upload<S>(self, stream: S) -> signal_core::RawUpload
    where
        S: futures_util::Stream<Item = T> + Send + 'static,
        T: 'static,
    {
        stream.map(self.to_payload).boxed()
    }

    /// A hub method's result, as a caller proxy receives it (`null` when void).
    pub fn invoke_result(self, result: Option<Payload>) -> Result<T, InvokeError> {
        let result = result.unwrap_or_else(Payload::null);
        (self.decode)(&result).map_err(InvokeError::Deserialize)
    }

    /// A hub method's stream, as a caller proxy receives it.
    pub fn invoke_stream(self, stream: RawItemStream) -> BoxStream<'static, Result<T, InvokeError>>
    where
        T: Send + 'static,
    {
        let decode = self.decode;
        stream
            .map(move |item| item.and_then(|item| decode(&item).map_err(InvokeError::Deserialize)))
            .boxed()
    }

    /// The schema of `T`.
    pub fn schema(self, builder: &mut DescriptorBuilder) -> Schema {
        (self.schema)(builder)
    }

    /// A parameter of type `T`, or an upload stream of `T` items.
    pub fn parameter(
        self,
        builder: &mut DescriptorBuilder,
        name: &str,
        stream: bool,
    ) -> ParameterDescriptor {
        ParameterDescriptor {
            name: name.to_owned(),
            schema: (self.schema)(builder),
            stream,
        }
    }
}

/// The error a hub method returned, as the caller receives it.
pub fn hub_error<E: Into<HubError>>(method: &str, error: E) -> InvocationError {
    InvocationError::hub(method, error.into())
}

/// A streaming method invoked without streaming, or the reverse; the texts are
/// ASP.NET Core's.
pub fn kind_error(method: &str, streaming_method: bool) -> InvocationError {
    let reason = if streaming_method {
        format!(
            "The client attempted to invoke the streaming '{method}' method with a \
             non-streaming invocation."
        )
    } else {
        format!(
            "The client attempted to invoke the non-streaming '{method}' method with a \
             streaming invocation."
        )
    };
    InvocationError::Kind {
        method: method.to_owned(),
        reason,
    }
}

/// An argument error of `method`.
pub fn arguments_error(method: &str, error: ArgumentError) -> InvocationError {
    InvocationError::arguments(method, error)
}

/// A `#[signal::client]` trait describes itself into a hub's builder, so that
/// the hub and its client share one `$defs`. Implemented for `dyn Trait`.
pub trait DescribeClient {
    /// The client contract, its named types left in `builder`.
    fn describe(builder: &mut DescriptorBuilder) -> ClientDescriptor;
}

/// Names a hub's client contract for [`DescribeTyped`] / [`DescribeUntyped`]:
/// `(&ClientOf::<C>::new()).describe_client(b)` picks the typed description when
/// `C` is a `#[signal::client]` trait and `None` otherwise (`()`, or a path that
/// is no client trait: the `ClientContract` bound reports that once, elsewhere).
pub struct ClientOf<C: ?Sized>(PhantomData<fn(&C)>);

impl<C: ?Sized> ClientOf<C> {
    /// The marker.
    pub fn new() -> Self {
        ClientOf(PhantomData)
    }
}

impl<C: ?Sized> Default for ClientOf<C> {
    fn default() -> Self {
        Self::new()
    }
}

/// The typed case of [`ClientOf`].
pub trait DescribeTyped {
    /// The client contract's descriptor.
    fn describe_client(&self, builder: &mut DescriptorBuilder) -> Option<ClientDescriptor>;
}

impl<C: ?Sized + DescribeClient> DescribeTyped for ClientOf<C> {
    fn describe_client(&self, builder: &mut DescriptorBuilder) -> Option<ClientDescriptor> {
        Some(C::describe(builder))
    }
}

/// The untyped case of [`ClientOf`].
pub trait DescribeUntyped {
    /// No descriptor.
    fn describe_client(&self, builder: &mut DescriptorBuilder) -> Option<ClientDescriptor> {
        let _ = builder;
        None
    }
}

impl<C: ?Sized> DescribeUntyped for &ClientOf<C> {}
