//! A test fixture hub that reaches every send target, for the JS suite.
//!
//! Hub at `/targets`; a connection's user id is the `user` query parameter.
//! Run: `cargo run --example targets` (PORT defaults to 5000).

use serde::Serialize;
use serde::de::DeserializeOwned;
use signal::protocol::Arguments;
#[path = "support/mod.rs"]
mod support;

use signal::{BoxFuture, Call, Context, HubDispatch, InvocationError, Output, Target};

struct Targets;

fn text(message: String) -> Arguments {
    Arguments::from_values([message]).expect("a string serializes")
}

struct Args<'a>(&'a Call);

impl Args<'_> {
    fn arity(&self, n: usize) -> Result<(), InvocationError> {
        self.0
            .arguments
            .expect_len(n)
            .map_err(|e| InvocationError::arguments(&self.0.target, e))
    }

    fn get<T: DeserializeOwned>(&self, i: usize, name: &str) -> Result<T, InvocationError> {
        self.0
            .arguments
            .get(i, name)
            .map_err(|e| InvocationError::arguments(&self.0.target, e))
    }
}

fn value<T: Serialize>(call: &Call, v: T) -> Result<Output, InvocationError> {
    Output::value(&call.target, &v)
}

impl HubDispatch for Targets {
    type Client = ();

    fn descriptor(&self) -> signal::protocol::HubDescriptor {
        signal::protocol::descriptor::DescriptorBuilder::new().finish(
            "Targets",
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
            let a = Args(&call);
            let clients = cx.clients();
            let name = call.target.to_ascii_lowercase();
            let sent = match name.as_str() {
                "connectionid" => return value(&call, cx.connection_id().as_str()),
                "userid" => return value(&call, cx.user_id()),
                "groupcount" => return value(&call, cx.hub().group_count()),
                "connectioncount" => return value(&call, cx.hub().connection_count()),
                "joingroup" | "leavegroup" => {
                    a.arity(1)?;
                    let group: String = a.get(0, "group")?;
                    let id = cx.connection_id().clone();
                    if name == "joingroup" {
                        cx.groups().add(id, &group).await
                    } else {
                        cx.groups().remove(id, &group).await
                    }
                }
                "sendtoall" => {
                    a.arity(1)?;
                    clients.all().send("message", text(a.get(0, "text")?)).await
                }
                "sendtocaller" => {
                    a.arity(1)?;
                    clients
                        .caller()
                        .send("message", text(a.get(0, "text")?))
                        .await
                }
                "sendtoothers" => {
                    a.arity(1)?;
                    clients
                        .others()
                        .send("message", text(a.get(0, "text")?))
                        .await
                }
                "sendtoconnection" => {
                    a.arity(2)?;
                    let id: String = a.get(0, "id")?;
                    clients
                        .client(id)
                        .send("message", text(a.get(1, "text")?))
                        .await
                }
                "sendtoconnections" => {
                    a.arity(2)?;
                    let ids: Vec<String> = a.get(0, "ids")?;
                    clients
                        .clients(ids)
                        .send("message", text(a.get(1, "text")?))
                        .await
                }
                "sendtoallexcept" => {
                    a.arity(2)?;
                    let ids: Vec<String> = a.get(0, "ids")?;
                    clients
                        .all_except(ids)
                        .send("message", text(a.get(1, "text")?))
                        .await
                }
                "sendtogroup" => {
                    a.arity(2)?;
                    let group: String = a.get(0, "group")?;
                    clients
                        .group(group)
                        .send("message", text(a.get(1, "text")?))
                        .await
                }
                "sendtogroups" => {
                    a.arity(2)?;
                    let groups: Vec<String> = a.get(0, "groups")?;
                    clients
                        .groups(groups)
                        .send("message", text(a.get(1, "text")?))
                        .await
                }
                "sendtogroupexcept" => {
                    a.arity(3)?;
                    let group: String = a.get(0, "group")?;
                    let ids: Vec<String> = a.get(1, "ids")?;
                    clients
                        .group_except(group, ids)
                        .send("message", text(a.get(2, "text")?))
                        .await
                }
                "sendtoothersingroup" => {
                    a.arity(2)?;
                    let group: String = a.get(0, "group")?;
                    clients
                        .others_in_group(group)
                        .send("message", text(a.get(1, "text")?))
                        .await
                }
                "sendtouser" => {
                    a.arity(2)?;
                    let user: String = a.get(0, "user")?;
                    clients
                        .user(user)
                        .send("message", text(a.get(1, "text")?))
                        .await
                }
                "sendtousers" => {
                    a.arity(2)?;
                    let users: Vec<String> = a.get(0, "users")?;
                    clients
                        .users(users)
                        .send("message", text(a.get(1, "text")?))
                        .await
                }
                _ => return Err(InvocationError::UnknownMethod(call.target.clone())),
            };
            sent.map_err(|e| InvocationError::hub(&call.target, e.into()))?;
            Ok(Output::Void)
        })
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    support::init_tracing();
    let hub = signal::Hub::new(Targets).user_id(|parts| url_user(parts.uri.query()?));
    support::serve(axum::Router::new().nest("/targets", hub.router())).await
}

/// The `user` query parameter.
fn url_user(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "user").then(|| value.to_owned())
    })
}
