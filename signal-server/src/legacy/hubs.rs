//! Hubs for 2.x clients: the same [`HubDispatch`] and registry as the Core
//! endpoint, with the 2.x wire shapes — invocations `{H,M,A,I,S}`, results
//! `{S,R,I,H,E,D}`, progress `{I:"P|n",P:{I,D}}` — and a hub protocol that
//! writes a server → client invocation as the 2.x `{H,M,A}`, so that one send
//! reaches Core and 2.x connections alike, each encoded once per family.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use signal_core::{
    Arguments, Framing, HubDescriptor, HubMessage, HubProtocol, Payload, ProtocolError,
    RegisteredProtocol, SerializedHubMessage, TransferFormat, TransportType, WriteError,
};
use tokio::sync::mpsc;

use crate::connection::ConnectionId;
use crate::frame::{EncodeError, Frame};
use crate::hub::HubRuntime;
use crate::hub::context::Context;
use crate::hub::dispatch::{BoxFuture, Call, HubDispatch, Output};
use crate::hub::error::InvocationError;
use crate::lifetime::ConnectionHandle;

/// The 2.x encoding of hub messages to clients: an invocation becomes the
/// `M` entry `{"H":hub,"M":method,"A":[args]}`. Registered beside a hub's own
/// protocols (in a free slot of a copy of its set), so a broadcast is encoded
/// once for all of the hub's 2.x connections. Other message types have no 2.x
/// form and are written as nothing (skipped).
#[derive(Debug)]
pub(crate) struct LegacyHubProtocol {
    hub: Arc<str>,
}

impl LegacyHubProtocol {
    /// The name under which the protocol sits in the hub's set; no Core client
    /// can ask for it, since the Core endpoint keeps the set without it.
    pub(crate) const NAME: &'static str = "signalr-2.x";
}

impl HubProtocol for LegacyHubProtocol {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn max_version(&self) -> u32 {
        0
    }

    fn transfer_format(&self) -> TransferFormat {
        TransferFormat::Text
    }

    fn framing(&self) -> Framing {
        Framing::Records
    }

    fn parse(&self, _message: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
        // 2.x messages from clients are read by the 2.x layer, not as records.
        Ok(None)
    }

    fn write(&self, message: &HubMessage, out: &mut BytesMut) -> Result<(), WriteError> {
        let HubMessage::Invocation(invocation) = message else {
            return Ok(());
        };
        if invocation.invocation_id.is_some() {
            // A client result: 2.x clients cannot answer one.
            return Err(WriteError::Payload {
                protocol: Self::NAME,
                source: <serde_json::Error as serde::ser::Error>::custom(
                    "ASP.NET SignalR 2.x clients cannot return results to the server; ask a client result of an ASP.NET Core client",
                )
                .into(),
            });
        }
        let wire = ClientInvocation {
            hub: &self.hub,
            method: &invocation.target,
            args: invocation.arguments.as_slice(),
        };
        let text = serde_json::to_vec(&wire).map_err(|source| WriteError::Payload {
            protocol: Self::NAME,
            source: source.into(),
        })?;
        out.put_slice(&text);
        Ok(())
    }
}

#[derive(Serialize)]
struct ClientInvocation<'a> {
    #[serde(rename = "H")]
    hub: &'a str,
    #[serde(rename = "M")]
    method: &'a str,
    #[serde(rename = "A")]
    args: &'a [Payload],
}

/// A hub invocation as a 2.x client sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct HubInvocation {
    #[serde(rename = "H")]
    pub(crate) hub: String,
    #[serde(rename = "M")]
    pub(crate) method: String,
    #[serde(rename = "A", default)]
    pub(crate) args: Vec<Box<RawValue>>,
    /// A number from the 2.4.3 client; a string from some others.
    #[serde(rename = "I")]
    pub(crate) id: Value,
    #[serde(rename = "S", default)]
    pub(crate) state: Option<Map<String, Value>>,
}

impl HubInvocation {
    /// The invocation id as the result carries it (a string).
    pub(crate) fn id_text(&self) -> String {
        match &self.id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// A hub result as 2.x clients read it; fields in the order the 2.4 server
/// writes them (S, R, I, H, E, D).
#[derive(Debug, Default, Serialize)]
pub(crate) struct HubResult {
    #[serde(rename = "S", skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<Map<String, Value>>,
    #[serde(rename = "R", skip_serializing_if = "Option::is_none")]
    pub(crate) result: Option<Payload>,
    #[serde(rename = "I")]
    pub(crate) id: String,
    #[serde(rename = "H", skip_serializing_if = "Option::is_none")]
    pub(crate) hub_exception: Option<bool>,
    #[serde(rename = "E", skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl HubResult {
    pub(crate) fn error(id: String, error: String) -> Self {
        HubResult {
            id,
            error: Some(error),
            ..HubResult::default()
        }
    }
}

/// The 2.x hub state of one call (the proxy's `state` object): what the
/// client sent, readable and writable by the hub method through
/// [`Context::items`](crate::Context::items). Keys the method changes go back
/// to the client with the result, as the 2.x server sends them.
///
/// ```no_run
/// # use signal_server::legacy::HubState;
/// # fn f(cx: &signal_server::Context) {
/// let user = cx.items().get::<HubState>().and_then(|s| s.get("userName").cloned());
/// cx.items().update(|state: &mut HubState| state.set("seen", true));
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HubState(Map<String, Value>);

impl HubState {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Sets `key`; the client's proxy sees the new value once the call returns.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(key.into(), value.into());
    }

    /// Every key and value.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// The keys of `after` whose values differ from `before` (the 2.x server's
/// `StateChangeTracker.GetChanges`); `None` when nothing changed.
fn changes(before: &Map<String, Value>, after: &Map<String, Value>) -> Option<Map<String, Value>> {
    let changed: Map<String, Value> = after
        .iter()
        .filter(|(key, value)| before.get(*key) != Some(value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    (!changed.is_empty()).then_some(changed)
}

/// Progress of a call, sent inside `M` to the caller: `{"I":"P|n","P":{"I":"n","D":item}}`.
pub(crate) fn progress_message(id: &str, item: &Payload) -> Result<Bytes, serde_json::Error> {
    #[derive(Serialize)]
    struct Progress<'a> {
        #[serde(rename = "I")]
        id: String,
        #[serde(rename = "P")]
        progress: Inner<'a>,
    }
    #[derive(Serialize)]
    struct Inner<'a> {
        #[serde(rename = "I")]
        id: &'a str,
        #[serde(rename = "D")]
        data: &'a Payload,
    }
    serde_json::to_vec(&Progress {
        id: format!("P|{id}"),
        progress: Inner { id, data: item },
    })
    .map(Bytes::from)
}

/// One hub as the 2.x layer serves it: object-safe over the hub's dispatch type.
pub(crate) trait LegacyHub: Send + Sync + 'static {
    /// The hub's canonical name: what `H` carries in client invocations.
    fn name(&self) -> &str;
    /// The hub's contract (for the proxy script).
    fn descriptor(&self) -> HubDescriptor;
    /// What the hub queued for a connection, in the 2.x encoding (`None` for
    /// a message with no 2.x form).
    fn encode(&self, frame: Frame) -> Result<Option<Bytes>, String>;
    /// A handle for connection `id`, registered in the hub's registry when
    /// `register` (the hub is in the client's `connectionData`).
    fn attach(
        &self,
        id: &ConnectionId,
        user: Option<Arc<str>>,
        transport: TransportType,
        outgoing: crate::lifetime::OutboxSender,
        register: bool,
        request: Option<Arc<crate::connection::KeptRequest>>,
    ) -> Arc<ConnectionHandle>;
    /// The response refusing a request that names this hub, when the hub
    /// requires authorization the request's identity does not meet.
    fn refusal(&self, parts: &http::request::Parts) -> Option<axum::response::Response>;
    /// Runs the hub's `on_connected` for the connection.
    fn connected(&self, handle: Arc<ConnectionHandle>) -> BoxFuture<'_, ()>;
    /// Takes the connection out of the registry, after the hub's
    /// `on_disconnected` when it was `connected` (its `on_connected` ran).
    fn disconnected(&self, handle: Arc<ConnectionHandle>, connected: bool) -> BoxFuture<'_, ()>;
    /// Runs one invocation; `progress` gets each item of a streaming method.
    fn invoke(
        &self,
        handle: Arc<ConnectionHandle>,
        invocation: HubInvocation,
        progress: mpsc::UnboundedSender<Bytes>,
    ) -> BoxFuture<'_, HubResult>;
}

/// A hub's runtime (shared with its Core endpoint) and its 2.x name and protocol.
pub(crate) struct HubEntry<D: HubDispatch> {
    pub(crate) runtime: Arc<HubRuntime<D>>,
    pub(crate) name: Arc<str>,
    pub(crate) protocol: RegisteredProtocol,
    /// The server-streaming methods (lowercased wire names): 2.x calls them
    /// like any method, and gets their items as progress.
    streaming: Vec<String>,
    /// What every request naming the hub must pass, when it requires authorization.
    gate: Option<crate::auth::Gate>,
}

impl<D: HubDispatch> HubEntry<D> {
    /// Serves `runtime` as the 2.x hub `name`. Fails when the hub's protocol
    /// set has no free slot for the 2.x encoding.
    pub(crate) fn new(
        runtime: Arc<HubRuntime<D>>,
        name: Option<String>,
    ) -> Result<Self, signal_core::ProtocolSetError> {
        let descriptor = runtime.dispatch.descriptor();
        let streaming = descriptor
            .methods
            .iter()
            .filter(|m| m.kind == signal_core::MethodKind::ServerStream)
            .map(|m| m.wire_name.to_ascii_lowercase())
            .collect();
        let name: Arc<str> = name.unwrap_or(descriptor.name).into();
        let mut set = runtime.options.protocols.clone();
        let protocol = set.add(Arc::new(LegacyHubProtocol { hub: name.clone() }))?;
        let gate = runtime.access.gate();
        Ok(HubEntry {
            runtime,
            name,
            protocol,
            streaming,
            gate,
        })
    }
}

impl<D: HubDispatch> HubEntry<D> {
    /// The message of a serialized message known only as bytes, read back
    /// from any of the hub's protocols it was framed for.
    fn decode_cached(&self, serialized: &SerializedHubMessage) -> Option<HubMessage> {
        self.runtime.options.protocols.iter().find_map(|protocol| {
            let framed = serialized.cached(protocol.id())?;
            let mut reader = protocol.reader(usize::MAX);
            let record = reader.push(framed).ok()?.into_iter().next()?;
            protocol.parse(&record).ok().flatten()
        })
    }
}

impl<D: HubDispatch> LegacyHub for HubEntry<D> {
    fn name(&self) -> &str {
        &self.name
    }

    fn descriptor(&self) -> HubDescriptor {
        self.runtime.dispatch.descriptor()
    }

    fn encode(&self, frame: Frame) -> Result<Option<Bytes>, String> {
        let bytes = match frame.clone().outbound(Some(&self.protocol)) {
            Ok(outbound) => outbound.bytes(),
            // From a backplane, a message may come as other protocols' bytes
            // only: read one of them and write it the 2.x way.
            Err(EncodeError::Write(WriteError::NotAvailable { .. })) => {
                let message = frame
                    .serialized()
                    .and_then(|serialized| self.decode_cached(serialized))
                    .ok_or("the message came in no protocol this hub reads")?;
                self.protocol
                    .to_bytes(&message)
                    .map_err(|error| error.to_string())?
            }
            Err(error) => return Err(error.to_string()),
        };
        Ok((!bytes.is_empty()).then_some(bytes))
    }

    fn attach(
        &self,
        id: &ConnectionId,
        user: Option<Arc<str>>,
        transport: TransportType,
        outgoing: crate::lifetime::OutboxSender,
        register: bool,
        request: Option<Arc<crate::connection::KeptRequest>>,
    ) -> Arc<ConnectionHandle> {
        let handle = Arc::new(
            ConnectionHandle::new(
                id.clone(),
                user,
                transport,
                Some(self.protocol.clone()),
                outgoing,
                self.runtime.options.client_result_timeout,
            )
            .with_group_limit(self.runtime.options.maximum_groups_per_connection)
            .with_request(request),
        );
        if register {
            self.runtime.lifetime.local().add(handle.clone());
        }
        handle
    }

    fn refusal(&self, parts: &http::request::Parts) -> Option<axum::response::Response> {
        self.gate.as_ref().and_then(|gate| gate.refusal(parts))
    }

    fn connected(&self, handle: Arc<ConnectionHandle>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.runtime
                .lifetime
                .on_connected(&handle.id, handle.user.as_deref())
                .await;
            let cx: Context<D::Client> = Context::new(handle, self.runtime.lifetime.clone());
            if AssertUnwindSafe(self.runtime.connected(&cx))
                .catch_unwind()
                .await
                .is_err()
            {
                tracing::error!(hub = %self.name, "on_connected panicked");
            }
        })
    }

    fn disconnected(&self, handle: Arc<ConnectionHandle>, connected: bool) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if connected {
                let cx: Context<D::Client> =
                    Context::new(handle.clone(), self.runtime.lifetime.clone());
                if AssertUnwindSafe(self.runtime.disconnected(&cx, None))
                    .catch_unwind()
                    .await
                    .is_err()
                {
                    tracing::error!(hub = %self.name, "on_disconnected panicked");
                }
                self.runtime.lifetime.on_disconnected(&handle.id).await;
            }
            self.runtime.lifetime.local().remove(&handle);
        })
    }

    fn invoke(
        &self,
        handle: Arc<ConnectionHandle>,
        invocation: HubInvocation,
        progress: mpsc::UnboundedSender<Bytes>,
    ) -> BoxFuture<'_, HubResult> {
        Box::pin(async move {
            let id = invocation.id_text();
            let before = invocation.state.clone().unwrap_or_default();
            handle.items.insert(HubState(before.clone()));
            let arguments =
                Arguments::new(invocation.args.into_iter().map(Payload::from).collect());
            let streaming = self
                .streaming
                .contains(&invocation.method.to_ascii_lowercase());
            let call = Call::new(invocation.method.clone(), arguments, streaming);
            let cx: Context<D::Client> =
                Context::new(handle.clone(), self.runtime.lifetime.clone());
            let span = tracing::debug_span!("invocation", hub = %self.name, method = %invocation.method, id = %id);
            let outcome = AssertUnwindSafe(self.runtime.call(&cx, call))
                .catch_unwind()
                .await;
            let detailed = self.runtime.options.enable_detailed_errors;
            // 2.x's text for an error it does not show (not a HubException).
            let hidden = || {
                format!(
                    "There was an error invoking Hub method '{}.{}'.",
                    invocation.hub, invocation.method
                )
            };
            let mut result = match outcome {
                Ok(Ok(Output::Void)) => HubResult {
                    id: id.clone(),
                    ..HubResult::default()
                },
                Ok(Ok(Output::Value(value))) => HubResult {
                    id: id.clone(),
                    result: Some(value),
                    ..HubResult::default()
                },
                // A server stream: each item goes to the caller as progress,
                // and the result is the whole list.
                Ok(Ok(Output::Stream(mut stream))) => {
                    let mut items = Vec::new();
                    let mut failed = None;
                    while let Some(item) = stream.next().await {
                        match item {
                            Ok(item) => {
                                match progress_message(&id, &item) {
                                    Ok(message) => {
                                        let _ = progress.send(message);
                                    }
                                    Err(error) => {
                                        failed = Some(format!(
                                            "An error occurred on the server while streaming results. {error}"
                                        ));
                                        break;
                                    }
                                }
                                items.push(item);
                            }
                            Err(error) => {
                                failed = Some(error.text(
                                    "An error occurred on the server while streaming results.",
                                    detailed,
                                ));
                                break;
                            }
                        }
                    }
                    match failed {
                        Some(error) => HubResult::error(id.clone(), error),
                        None => HubResult {
                            id: id.clone(),
                            result: Some(Payload::value(items)),
                            ..HubResult::default()
                        },
                    }
                }
                Ok(Err(InvocationError::Hub { source, .. })) if source.kind() == "HubException" => {
                    HubResult {
                        id: id.clone(),
                        hub_exception: Some(true),
                        error: Some(source.message().to_owned()),
                        ..HubResult::default()
                    }
                }
                Ok(Err(InvocationError::UnknownMethod(method))) => HubResult::error(
                    id.clone(),
                    format!(
                        "'{method}' method could not be resolved. No method found with that name."
                    ),
                ),
                // 2.x's AuthorizeModule raises a NotAuthorizedException, which
                // is not a HubException: its text only with detailed errors.
                Ok(Err(InvocationError::Unauthorized(method))) => HubResult::error(
                    id.clone(),
                    if detailed {
                        format!(
                            "Caller is not authorized to invoke the {method} method on {}.",
                            invocation.hub
                        )
                    } else {
                        hidden()
                    },
                ),
                Ok(Err(error)) => {
                    tracing::debug!(parent: &span, %error, "invocation failed");
                    HubResult::error(id.clone(), error.completion_text(detailed))
                }
                Err(_) => {
                    tracing::error!(parent: &span, "hub method panicked");
                    HubResult::error(id.clone(), hidden())
                }
            };
            let after = handle.items.remove::<HubState>().unwrap_or_default();
            result.state = changes(&before, &after.0);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_core::Invocation;

    #[test]
    fn client_invocations_read_as_the_2x_server_writes_them() {
        let protocol = LegacyHubProtocol {
            hub: "ChatHub".into(),
        };
        let message = HubMessage::Invocation(Invocation::new(
            "addMessage",
            Arguments::from_values(["bob", "hi"]),
        ));
        assert_eq!(
            protocol.to_bytes(&message).unwrap(),
            &br#"{"H":"ChatHub","M":"addMessage","A":["bob","hi"]}"#[..]
        );
        assert!(protocol.to_bytes(&HubMessage::Ping).unwrap().is_empty());
    }

    #[test]
    fn results_and_progress_read_as_the_2x_server_writes_them() {
        let mut before = Map::new();
        before.insert("a".into(), 1.into());
        let mut after = before.clone();
        after.insert("b".into(), "x".into());
        let result = HubResult {
            state: changes(&before, &after),
            result: Some(Payload::value(42)),
            id: "2".into(),
            ..HubResult::default()
        };
        assert_eq!(
            serde_json::to_string(&result).unwrap(),
            r#"{"S":{"b":"x"},"R":42,"I":"2"}"#
        );
        let error = HubResult {
            id: "4".into(),
            hub_exception: Some(true),
            error: Some("Not allowed".into()),
            ..HubResult::default()
        };
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"I":"4","H":true,"E":"Not allowed"}"#
        );
        assert_eq!(
            progress_message("5", &Payload::value(50)).unwrap(),
            &br#"{"I":"P|5","P":{"I":"5","D":50}}"#[..]
        );
    }
}

#[cfg(test)]
mod backplane_tests {
    use super::*;
    use signal_core::Invocation;

    #[test]
    fn client_results_are_refused_at_once() {
        let protocol = LegacyHubProtocol { hub: "H".into() };
        let mut invocation = Invocation::new("ask", Arguments::from_values(["?"]));
        invocation.invocation_id = Some("1".into());
        let error = protocol
            .to_bytes(&HubMessage::Invocation(invocation))
            .unwrap_err();
        assert!(
            error.to_string().contains("cannot return results"),
            "{error}"
        );
    }
}
