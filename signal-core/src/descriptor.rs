//! Descriptors: the one model of a hub's contract that the Rust dispatch, the Rust
//! caller proxy, the TypeScript generator and the schema endpoint all read.
//!
//! The `#[signal::hub]` and `#[signal::client]` macros generate a function that
//! builds a descriptor with [`DescriptorBuilder`]; JSON Schemas of every parameter
//! and return type come from [`schemars`], with named types gathered once into
//! [`HubDescriptor::definitions`] and referenced as `#/$defs/Name`.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings};
use serde::{Deserialize, Serialize};

/// What kind of call a method is, which decides the message types it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MethodKind {
    /// Invocation answered by a Completion with a result or error.
    Unary,
    /// Invocation without a result worth waiting for (returns nothing).
    FireAndForget,
    /// StreamInvocation answered by StreamItems and a Completion.
    ServerStream,
    /// A server → client call that one client answers with a Completion.
    ClientResult,
}

/// One parameter of a method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterDescriptor {
    /// The Rust name, in snake case.
    pub name: String,
    /// The JSON Schema of one value (of one item, for a stream).
    pub schema: Schema,
    /// Whether the client uploads this parameter as a stream.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// What `#[signal::authorize]` requires of a caller: an authenticated user
/// and, for each named policy, that user code's policy of that name allows
/// them. Several attributes add up: every policy must allow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorize {
    /// The policies, by name, in the order written; empty when an
    /// authenticated user is all that is required.
    #[serde(default)]
    pub policies: Vec<String>,
}

impl Authorize {
    /// Requires an authenticated user and, when `policy` names one, that policy.
    pub fn new(policy: Option<&str>) -> Self {
        Authorize {
            policies: policy.map(str::to_owned).into_iter().collect(),
        }
    }

    /// Both requirements together.
    #[must_use]
    pub fn and(mut self, other: &Authorize) -> Self {
        for policy in &other.policies {
            if !self.policies.contains(policy) {
                self.policies.push(policy.clone());
            }
        }
        self
    }
}

/// One method of a hub or client contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodDescriptor {
    /// The Rust name, in snake case.
    pub name: String,
    /// The name on the wire (camelCase unless renamed).
    pub wire_name: String,
    /// The kind of call.
    pub kind: MethodKind,
    /// Parameters in order, without the receiver and context.
    pub parameters: Vec<ParameterDescriptor>,
    /// The JSON Schema of the result (of one item, for a server stream);
    /// absent when the method returns nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returns: Option<Schema>,
    /// The doc comment, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docs: String,
    /// What a caller needs to call it (`#[signal::authorize]` on the method),
    /// beyond what the hub requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize: Option<Authorize>,
}

/// The methods a server may call on clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientDescriptor {
    /// The Rust trait's name.
    pub name: String,
    /// The doc comment, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docs: String,
    /// Its methods.
    pub methods: Vec<MethodDescriptor>,
    /// Named types referenced as `#/$defs/Name`, when the descriptor stands
    /// alone; empty inside a [`HubDescriptor`], which holds them for both sides.
    #[serde(rename = "$defs", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub definitions: BTreeMap<String, serde_json::Value>,
}

/// A hub's whole contract: what clients may call, what the server may call on
/// clients, and the schemas of the named types both use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubDescriptor {
    /// The Rust trait's name.
    pub name: String,
    /// The doc comment, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docs: String,
    /// The methods clients may call.
    pub methods: Vec<MethodDescriptor>,
    /// The client contract, when the hub names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientDescriptor>,
    /// What every connection needs (`#[signal::authorize]` on the trait):
    /// negotiate and transport requests without it are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize: Option<Authorize>,
    /// Named types referenced as `#/$defs/Name` by the schemas above.
    #[serde(rename = "$defs", default)]
    pub definitions: BTreeMap<String, serde_json::Value>,
}

impl HubDescriptor {
    /// The method whose wire name matches `wire_name`, ignoring ASCII case.
    pub fn method(&self, wire_name: &str) -> Option<&MethodDescriptor> {
        self.methods
            .iter()
            .find(|m| m.wire_name.eq_ignore_ascii_case(wire_name))
    }
}

/// Builds descriptors; the schemas of all methods share one generator, so each
/// named type is described once.
pub struct DescriptorBuilder {
    generator: SchemaGenerator,
}

impl Default for DescriptorBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl DescriptorBuilder {
    /// A builder whose references point at `#/$defs/`.
    pub fn new() -> Self {
        let settings = SchemaSettings::draft2020_12();
        DescriptorBuilder {
            generator: settings.into_generator(),
        }
    }

    /// The schema of `T`, a reference when `T` is a named type.
    pub fn schema<T: ?Sized + JsonSchema>(&mut self) -> Schema {
        self.generator.subschema_for::<T>()
    }

    /// A parameter of type `T` (of item type `T` when `stream`).
    pub fn parameter<T: ?Sized + JsonSchema>(
        &mut self,
        name: &str,
        stream: bool,
    ) -> ParameterDescriptor {
        ParameterDescriptor {
            name: name.to_owned(),
            schema: self.schema::<T>(),
            stream,
        }
    }

    /// A client contract whose schemas were built with this builder; its named
    /// types stay in the builder, to be shared with the hub that names it.
    pub fn client(
        &mut self,
        name: &str,
        docs: &str,
        methods: Vec<MethodDescriptor>,
    ) -> ClientDescriptor {
        ClientDescriptor {
            name: name.to_owned(),
            docs: docs.to_owned(),
            methods,
            definitions: BTreeMap::new(),
        }
    }

    /// Finishes a stand-alone client descriptor: it takes the named types
    /// gathered so far.
    pub fn finish_client(mut self, mut client: ClientDescriptor) -> ClientDescriptor {
        client.definitions = self.generator.take_definitions(true).into_iter().collect();
        client
    }

    /// Finishes a hub descriptor with the named types gathered so far.
    pub fn finish(
        mut self,
        name: &str,
        docs: &str,
        methods: Vec<MethodDescriptor>,
        client: Option<ClientDescriptor>,
    ) -> HubDescriptor {
        let definitions = self.generator.take_definitions(true).into_iter().collect();
        HubDescriptor {
            name: name.to_owned(),
            docs: docs.to_owned(),
            methods,
            client,
            authorize: None,
            definitions,
        }
    }
}
