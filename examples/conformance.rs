//! The `conformance` hub: a fixed contract that acceptance suites outside this
//! repository depend on. Keep it exactly.
//!
//! Run: `cargo run --example conformance` (PORT defaults to 5000).

use serde::{Deserialize, Serialize};
use signal::protocol::Arguments;
#[path = "support/mod.rs"]
mod support;

use signal::{
    BoxFuture, Call, Context, HubDispatch, HubError, InvocationError, Output, Target, TransportType,
};

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Person {
    name: String,
    age: u32,
    tags: Vec<String>,
    address: Option<Address>,
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Address {
    city: String,
}

struct Conformance;

fn args<T: Serialize>(values: T) -> Arguments {
    let value = serde_json::to_value(values).expect("arguments serialize");
    let items = match value {
        serde_json::Value::Array(items) => items,
        other => vec![other],
    };
    Arguments::from_values(items).expect("arguments serialize")
}

impl HubDispatch for Conformance {
    type Client = ();

    fn descriptor(&self) -> signal::protocol::HubDescriptor {
        signal::protocol::descriptor::DescriptorBuilder::new().finish(
            "Conformance",
            "",
            Vec::new(),
            None,
        )
    }

    fn dispatch<'a>(
        &'a self,
        cx: &'a Context,
        call: Call,
    ) -> BoxFuture<'a, Result<Output, InvocationError>> {
        Box::pin(async move {
            let name = call.target.to_ascii_lowercase();
            let a = &call.arguments;
            let arg_err = |e| InvocationError::arguments(&call.target, e);
            macro_rules! arity {
                ($n:expr) => {
                    a.expect_len($n).map_err(arg_err)?
                };
            }
            match name.as_str() {
                "echo" => {
                    arity!(1);
                    let m: String = a.get(0, "message").map_err(arg_err)?;
                    Output::value(&call.target, &m)
                }
                "add" => {
                    arity!(2);
                    let x: i64 = a.get(0, "a").map_err(arg_err)?;
                    let y: i64 = a.get(1, "b").map_err(arg_err)?;
                    Output::value(&call.target, &(x + y))
                }
                "echoperson" => {
                    arity!(1);
                    let p: Person = a.get(0, "person").map_err(arg_err)?;
                    Output::value(&call.target, &p)
                }
                "fail" => {
                    arity!(1);
                    let m: String = a.get(0, "message").map_err(arg_err)?;
                    Err(InvocationError::hub(&call.target, HubError::new(m)))
                }
                "panicnow" => {
                    arity!(0);
                    panic!("panic_now was called");
                }
                "connectionid" => {
                    arity!(0);
                    Output::value(&call.target, cx.connection_id().as_str())
                }
                "transport" => {
                    arity!(0);
                    Output::value(&call.target, cx.transport().as_str())
                }
                "sendtocaller" | "broadcast" | "sendtoothers" => {
                    arity!(1);
                    let m: String = a.get(0, "message").map_err(arg_err)?;
                    let clients = cx.clients();
                    let sent = match name.as_str() {
                        "sendtocaller" => clients.caller().send("message", args([m])).await,
                        "broadcast" => clients.all().send("message", args([m])).await,
                        _ => clients.others().send("message", args([m])).await,
                    };
                    sent.map_err(|e| InvocationError::hub(&call.target, e.into()))?;
                    Ok(Output::Void)
                }
                "sendtoconnection" => {
                    arity!(2);
                    let id: String = a.get(0, "connection_id").map_err(arg_err)?;
                    let m: String = a.get(1, "message").map_err(arg_err)?;
                    cx.clients()
                        .client(id)
                        .send("message", args([m]))
                        .await
                        .map_err(|e| InvocationError::hub(&call.target, e.into()))?;
                    Ok(Output::Void)
                }
                "joingroup" | "leavegroup" => {
                    arity!(1);
                    let g: String = a.get(0, "group").map_err(arg_err)?;
                    let id = cx.connection_id().clone();
                    let r = if name == "joingroup" {
                        cx.groups().add(id, &g).await
                    } else {
                        cx.groups().remove(id, &g).await
                    };
                    r.map_err(|e| InvocationError::hub(&call.target, e.into()))?;
                    Ok(Output::Void)
                }
                "sendtogroup" => {
                    arity!(2);
                    let g: String = a.get(0, "group").map_err(arg_err)?;
                    let m: String = a.get(1, "message").map_err(arg_err)?;
                    cx.clients()
                        .group(&g)
                        .send("groupMessage", args((g.clone(), m)))
                        .await
                        .map_err(|e| InvocationError::hub(&call.target, e.into()))?;
                    Ok(Output::Void)
                }
                _ => Err(InvocationError::UnknownMethod(call.target.clone())),
            }
        })
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    support::init_tracing();
    let mut hub = signal::Hub::new(Conformance).configure(|o| o.stateful_reconnect = true);
    // SIGNAL_TRANSPORTS restricts the transports (in this order), to show fallback.
    if let Some(names) = support::env_list("SIGNAL_TRANSPORTS") {
        let transports = names
            .iter()
            .map(|n| n.parse::<TransportType>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(std::io::Error::other)?;
        hub = hub.configure(|o| o.transports = transports);
    }
    // SIGNAL_CORS_ORIGINS lists the origins allowed across origins; unset: same-origin only.
    if let Some(origins) = support::env_list("SIGNAL_CORS_ORIGINS") {
        hub = hub.allow_origins(origins).map_err(std::io::Error::other)?;
    }
    let app = axum::Router::new().nest("/conformance", hub.router());
    support::serve(app).await
}
