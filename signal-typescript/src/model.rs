//! The module a hub descriptor becomes, before it is printed: names chosen and
//! checked, schemas turned into types.

use std::collections::BTreeMap;

use signal_core::descriptor::{HubDescriptor, MethodDescriptor, MethodKind};

use crate::Options;
use crate::error::Error;
use crate::names;
use crate::schema::{self, Converter};
use crate::ts::{Docs, Ty, UNKNOWN};

/// What one hub's module holds.
pub(crate) struct Model {
    /// The hub trait's name.
    pub(crate) hub: String,
    pub(crate) imports: Imports,
    pub(crate) types: Vec<TypeDecl>,
    pub(crate) proxy: Proxy,
    pub(crate) client: Option<Client>,
}

/// The local names of the types imported from `@microsoft/signalr`, each
/// `None` when the module does not use it.
pub(crate) struct Imports {
    pub(crate) connection: String,
    pub(crate) stream_result: Option<String>,
    pub(crate) subject: Option<String>,
}

/// An `export interface` or `export type` for a `$defs` entry.
pub(crate) struct TypeDecl {
    pub(crate) name: String,
    pub(crate) docs: Docs,
    pub(crate) ty: Ty,
}

/// The proxy class.
pub(crate) struct Proxy {
    pub(crate) name: String,
    pub(crate) docs: Docs,
    /// The name of the field holding the connection.
    pub(crate) field: String,
    pub(crate) methods: Vec<Call>,
}

/// One method of the proxy class.
pub(crate) struct Call {
    /// The method name as written in the class (identifier or string literal).
    pub(crate) key: String,
    pub(crate) wire: String,
    pub(crate) docs: Docs,
    /// `invoke`, `send` or `stream`.
    pub(crate) call: &'static str,
    pub(crate) params: Vec<Param>,
    /// The whole return type (`Promise<T>`, `IStreamResult<T>`).
    pub(crate) returns: Ty,
}

/// A parameter.
pub(crate) struct Param {
    pub(crate) name: String,
    pub(crate) ty: Ty,
}

/// The client contract: a handler interface and its registration function.
pub(crate) struct Client {
    /// The client trait's name.
    pub(crate) trait_name: String,
    pub(crate) docs: Docs,
    pub(crate) interface: String,
    pub(crate) register: String,
    pub(crate) handlers: Vec<Handler>,
}

/// One handler of the client contract.
pub(crate) struct Handler {
    /// The property name (identifier or string literal), the wire name.
    pub(crate) key: String,
    pub(crate) wire: String,
    pub(crate) docs: Docs,
    pub(crate) params: Vec<Param>,
    /// The whole return type (`void | Promise<void>`, `T | Promise<T>`).
    pub(crate) returns: Ty,
}

/// Names the module declares, with what each belongs to, to find collisions.
#[derive(Default)]
struct Taken(BTreeMap<String, String>);

impl Taken {
    fn claim(&mut self, name: &str, owner: String) -> Result<(), Error> {
        if let Some(first) = self.0.get(name) {
            return Err(Error::NameCollision {
                name: name.to_owned(),
                first: first.clone(),
                second: owner,
            });
        }
        self.0.insert(name.to_owned(), owner);
        Ok(())
    }

    /// `preferred`, or a variant of it, that is free.
    fn free(&self, preferred: &str, fallback: &str) -> String {
        if !self.0.contains_key(preferred) {
            return preferred.to_owned();
        }
        let mut name = fallback.to_owned();
        while self.0.contains_key(&name) {
            name.push('_');
        }
        name
    }
}

fn generated_name(what: &str, name: &str) -> Result<String, Error> {
    if names::is_type_name(name) {
        Ok(name.to_owned())
    } else {
        Err(Error::InvalidName {
            what: what.to_owned(),
            name: name.to_owned(),
            reason: "it must be an identifier (letters, digits, `_`, `$`) and not a reserved word"
                .to_owned(),
        })
    }
}

impl Model {
    pub(crate) fn new(hub: &HubDescriptor, options: &Options) -> Result<Model, Error> {
        let hub_name = generated_name("the hub name", &hub.name)?;

        // Named types of both sides (a client descriptor built alone carries
        // its own).
        let mut definitions = hub.definitions.clone();
        if let Some(client) = &hub.client {
            for (key, schema) in &client.definitions {
                match definitions.get(key) {
                    Some(existing) if existing != schema => {
                        return Err(Error::NameCollision {
                            name: key.clone(),
                            first: format!("the type `{key}` of the hub `{}`", hub.name),
                            second: format!("another type `{key}` of the client `{}`", client.name),
                        });
                    }
                    _ => {
                        definitions.insert(key.clone(), schema.clone());
                    }
                }
            }
        }

        let mut taken = Taken::default();
        let mut type_names = BTreeMap::new();
        for key in definitions.keys() {
            let name = names::type_name(key);
            if !names::is_type_name(&name) {
                return Err(Error::InvalidName {
                    what: "the type".to_owned(),
                    name: key.clone(),
                    reason: "it is a TypeScript keyword or a global the module uses; give it \
                             another schema name with `#[schemars(rename = \"…\")]`"
                        .to_owned(),
                });
            }
            taken.claim(&name, format!("the type `{key}`"))?;
            type_names.insert(key.clone(), name);
        }

        let proxy_name = match &options.proxy_name {
            Some(name) => generated_name("the proxy class name", name)?,
            None => format!("{hub_name}Proxy"),
        };
        taken.claim(&proxy_name, "the proxy class".to_owned())?;
        let client_names = match &hub.client {
            None => None,
            Some(client) => {
                let client_name = generated_name("the client name", &client.name)?;
                let interface = match &options.handlers_name {
                    Some(name) => generated_name("the handlers interface name", name)?,
                    None => format!("{client_name}Handlers"),
                };
                let register = match &options.register_name {
                    Some(name) => generated_name("the registration function name", name)?,
                    None => format!("register{client_name}"),
                };
                taken.claim(&interface, "the handlers interface".to_owned())?;
                taken.claim(&register, "the registration function".to_owned())?;
                Some((interface, register))
            }
        };

        let connection = taken.free("HubConnection", "SignalRHubConnection");
        let stream_result = taken.free("IStreamResult", "SignalRIStreamResult");
        let subject = taken.free("Subject", "SignalRSubject");

        let converter = Converter { names: &type_names };
        let mut types = Vec::new();
        for (key, schema) in &definitions {
            types.push(TypeDecl {
                name: type_names[key].clone(),
                docs: schema::docs(schema),
                ty: converter.convert(schema, &format!("the type `{key}`"))?,
            });
        }

        let mut uses_stream = false;
        let mut uses_subject = false;
        check_wire_names(&hub.name, &hub.methods)?;
        let mut calls = Vec::new();
        for method in &hub.methods {
            let owner = &hub.name;
            let (call, returns) = match method.kind {
                MethodKind::Unary => ("invoke", "Promise"),
                MethodKind::FireAndForget => ("send", "Promise"),
                MethodKind::ServerStream => ("stream", "IStreamResult"),
                MethodKind::ClientResult => {
                    return Err(unsupported(owner, method, "client result", "a hub"));
                }
            };
            let clash = match method.wire_name.as_str() {
                "constructor" => Some("a class cannot have a method of that name"),
                "then" => Some("`await` would take a proxy with a `then` method for a promise"),
                _ => None,
            };
            if let Some(clash) = clash {
                return Err(Error::InvalidName {
                    what: format!("the wire name of `{owner}::{}`", method.name),
                    name: method.wire_name.clone(),
                    reason: format!(
                        "{clash}; rename it on the wire with `#[signal::method(name = \"…\")]`"
                    ),
                });
            }
            let mut params = Vec::new();
            for p in &method.parameters {
                let context = format!("the parameter `{}` of `{owner}::{}`", p.name, method.name);
                let mut ty = converter.convert(p.schema.as_value(), &context)?;
                if p.stream {
                    uses_subject = true;
                    ty = Ty::Generic(subject.clone(), vec![ty]);
                }
                let taken: Vec<String> = params.iter().map(|p: &Param| p.name.clone()).collect();
                params.push(Param {
                    name: names::parameter_name(&p.name, &taken),
                    ty,
                });
            }
            let result = match (&method.returns, method.kind) {
                // Nothing comes back from a send.
                (_, MethodKind::FireAndForget) => Ty::Keyword("void"),
                (Some(schema), _) => converter.convert(
                    schema.as_value(),
                    &format!("the result of `{owner}::{}`", method.name),
                )?,
                (None, MethodKind::ServerStream) => UNKNOWN,
                (None, _) => Ty::Keyword("void"),
            };
            let returns = if returns == "IStreamResult" {
                uses_stream = true;
                Ty::Generic(stream_result.clone(), vec![result])
            } else {
                Ty::Generic(returns.to_owned(), vec![result])
            };
            calls.push(Call {
                key: names::property_key(&method.wire_name),
                wire: method.wire_name.clone(),
                docs: Docs::new(&with_authorize(&method.docs, method.authorize.as_ref())),
                call,
                params,
                returns,
            });
        }
        let proxy_field = {
            let mut field = "connection".to_owned();
            while hub.methods.iter().any(|m| m.wire_name == field) {
                field.push('_');
            }
            field
        };

        let client = match (&hub.client, client_names) {
            (Some(client), Some((interface, register))) => {
                check_wire_names(&client.name, &client.methods)?;
                let mut handlers = Vec::new();
                for method in &client.methods {
                    let owner = &client.name;
                    let result = match method.kind {
                        MethodKind::FireAndForget => Ty::Keyword("void"),
                        MethodKind::ClientResult => match &method.returns {
                            Some(schema) => converter.convert(
                                schema.as_value(),
                                &format!("the result of `{owner}::{}`", method.name),
                            )?,
                            None => Ty::Keyword("null"),
                        },
                        MethodKind::Unary => {
                            return Err(unsupported(owner, method, "unary", "a client contract"));
                        }
                        MethodKind::ServerStream => {
                            return Err(unsupported(
                                owner,
                                method,
                                "server stream",
                                "a client contract",
                            ));
                        }
                    };
                    let mut params = Vec::new();
                    for p in &method.parameters {
                        if p.stream {
                            return Err(unsupported(
                                owner,
                                method,
                                "stream upload",
                                "a client contract",
                            ));
                        }
                        let context =
                            format!("the parameter `{}` of `{owner}::{}`", p.name, method.name);
                        let ty = converter.convert(p.schema.as_value(), &context)?;
                        let mut taken: Vec<String> =
                            params.iter().map(|p: &Param| p.name.clone()).collect();
                        taken.push("handlers".to_owned());
                        params.push(Param {
                            name: names::parameter_name(&p.name, &taken),
                            ty,
                        });
                    }
                    let returns = Ty::union_of(vec![
                        result.clone(),
                        Ty::Generic("Promise".into(), vec![result]),
                    ]);
                    handlers.push(Handler {
                        key: names::property_key(&method.wire_name),
                        wire: method.wire_name.clone(),
                        docs: Docs::new(&method.docs),
                        params,
                        returns,
                    });
                }
                Some(Client {
                    trait_name: client.name.clone(),
                    docs: Docs::new(&client.docs),
                    interface,
                    register,
                    handlers,
                })
            }
            _ => None,
        };

        Ok(Model {
            hub: hub_name,
            imports: Imports {
                connection,
                stream_result: uses_stream.then_some(stream_result),
                subject: uses_subject.then_some(subject),
            },
            types,
            proxy: Proxy {
                name: proxy_name,
                docs: Docs::new(&with_authorize(&hub.docs, hub.authorize.as_ref())),
                field: proxy_field,
                methods: calls,
            },
            client,
        })
    }
}

fn unsupported(owner: &str, method: &MethodDescriptor, kind: &str, side: &str) -> Error {
    Error::UnsupportedMethod {
        owner: owner.to_owned(),
        method: method.name.clone(),
        kind: kind.to_owned(),
        side: side.to_owned(),
    }
}

/// The official client matches names ignoring case: two wire names that differ
/// only in case would reach the same handler.
fn check_wire_names(owner: &str, methods: &[MethodDescriptor]) -> Result<(), Error> {
    let mut seen: BTreeMap<String, &MethodDescriptor> = BTreeMap::new();
    for method in methods {
        if let Some(first) = seen.insert(method.wire_name.to_ascii_lowercase(), method) {
            return Err(Error::NameCollision {
                name: method.wire_name.clone(),
                first: format!(
                    "`{owner}::{}` (wire name `{}`)",
                    first.name, first.wire_name
                ),
                second: format!(
                    "`{owner}::{}` (wire name `{}`)",
                    method.name, method.wire_name
                ),
            });
        }
    }
    Ok(())
}

/// `docs`, then what `#[signal::authorize]` requires of a caller, so that the
/// generated TypeScript says it where a developer reads about the call.
fn with_authorize(docs: &str, authorize: Option<&signal_core::Authorize>) -> String {
    let Some(authorize) = authorize else {
        return docs.to_owned();
    };
    let quoted: Vec<String> = authorize
        .policies
        .iter()
        .map(|p| format!("`{p}`"))
        .collect();
    let requirement = match quoted.as_slice() {
        [] => "Requires an authenticated user.".to_owned(),
        [one] => format!("Requires an authenticated user whom the {one} policy allows."),
        [init @ .., last] => format!(
            "Requires an authenticated user whom the {} and {last} policies allow.",
            init.join(", ")
        ),
    };
    if docs.trim().is_empty() {
        requirement
    } else {
        format!("{}\n\n{requirement}", docs.trim_end())
    }
}
