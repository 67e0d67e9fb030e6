//! Unit tests: how each construct schemars renders for serde types maps to
//! TypeScript, errors, determinism, the layout, and the generator's writes.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::json;
use signal_core::descriptor::{DescriptorBuilder, MethodDescriptor, MethodKind};

use crate::{
    Error, Generator, HubDescriptor, Options, render, render_declarations, render_javascript,
    render_typescript,
};

fn method(name: &str, kind: MethodKind) -> MethodDescriptor {
    MethodDescriptor {
        name: name.to_owned(),
        wire_name: name.to_owned(),
        kind,
        parameters: Vec::new(),
        returns: None,
        docs: String::new(),
        authorize: None,
    }
}

/// A hub `Types` with one method `take(value: T)`.
fn hub_with<T: JsonSchema>() -> HubDescriptor {
    let mut b = DescriptorBuilder::new();
    let mut take = method("take", MethodKind::FireAndForget);
    take.parameters.push(b.parameter::<T>("value", false));
    b.finish("Types", "", vec![take], None)
}

fn ts(hub: &HubDescriptor) -> String {
    render_typescript(hub, &Options::default()).unwrap()
}

/// The TypeScript type of a parameter of type `T`.
fn param<T: JsonSchema>() -> String {
    let out = ts(&hub_with::<T>());
    let start = out.find("  take(value: ").expect("a one-line signature") + 14;
    let end = out[start..].find("): Promise<void> {").unwrap();
    out[start..start + end].to_owned()
}

/// The declaration of the named type `name` in the module of `T`.
fn decl<T: JsonSchema>(name: &str) -> String {
    let out = ts(&hub_with::<T>());
    declaration(&out, name)
}

fn declaration(out: &str, name: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    let start = lines
        .iter()
        .position(|l| {
            l.starts_with(&format!("export interface {name} "))
                || l.starts_with(&format!("export type {name} "))
        })
        .unwrap_or_else(|| panic!("no declaration of {name} in:\n{out}"));
    let mut text = String::new();
    for line in lines[start..].iter().take_while(|l| !l.is_empty()) {
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[test]
fn primitives() {
    assert_eq!(param::<String>(), "string");
    assert_eq!(param::<bool>(), "boolean");
    assert_eq!(param::<char>(), "string");
    for ty in [
        param::<u8>(),
        param::<i16>(),
        param::<u32>(),
        param::<i64>(),
        param::<u64>(),
        param::<usize>(),
        param::<f32>(),
        param::<f64>(),
        param::<std::num::NonZeroU32>(),
    ] {
        assert_eq!(ty, "number");
    }
    assert_eq!(param::<()>(), "null");
    assert_eq!(param::<serde_json::Value>(), "unknown");
}

#[test]
fn options_vectors_maps_and_tuples() {
    assert_eq!(param::<Option<String>>(), "string | null");
    assert_eq!(param::<Option<Option<i32>>>(), "number | null");
    assert_eq!(param::<Vec<String>>(), "string[]");
    assert_eq!(param::<Vec<Option<u8>>>(), "(number | null)[]");
    assert_eq!(param::<Vec<Vec<u8>>>(), "number[][]");
    assert_eq!(param::<Option<Vec<bool>>>(), "boolean[] | null");
    assert_eq!(param::<HashSet<String>>(), "string[]");
    assert_eq!(param::<BTreeSet<i32>>(), "number[]");
    assert_eq!(param::<[u8; 3]>(), "number[]");
    assert_eq!(param::<HashMap<String, f64>>(), "{ [key: string]: number }");
    assert_eq!(
        param::<BTreeMap<String, Vec<bool>>>(),
        "{ [key: string]: boolean[] }"
    );
    // Integer keys come as `patternProperties`.
    assert_eq!(
        param::<BTreeMap<u32, String>>(),
        "{ [key: string]: string }"
    );
    assert_eq!(
        param::<serde_json::Map<String, serde_json::Value>>(),
        "{ [key: string]: unknown }"
    );
    assert_eq!(param::<(i32, String)>(), "[number, string]");
    assert_eq!(param::<(bool,)>(), "[boolean]");
    assert_eq!(param::<((), Option<u8>)>(), "[null, number | null]");
}

/// A documented struct.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Profile {
    /// The display name.
    display_name: String,
    #[serde(rename = "e-mail")]
    email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nickname: Option<String>,
    avatar: Option<Avatar>,
    #[serde(default)]
    karma: i64,
    #[deprecated = "use display_name"]
    old_name: String,
    tags: BTreeSet<String>,
    location: (f64, f64),
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Avatar(String);

#[test]
fn structs_become_interfaces() {
    let out = decl::<Profile>("Profile");
    assert_eq!(
        out,
        "export interface Profile {\n\
         \x20 avatar?: Avatar | null;\n\
         \x20 /** The display name. */\n\
         \x20 displayName: string;\n\
         \x20 \"e-mail\": string;\n\
         \x20 karma?: number;\n\
         \x20 location: [number, number];\n\
         \x20 nickname?: string | null;\n\
         \x20 /** @deprecated */\n\
         \x20 oldName: string;\n\
         \x20 tags: string[];\n\
         }\n"
    );
    // A newtype is its inner type.
    assert_eq!(decl::<Profile>("Avatar"), "export type Avatar = string;\n");
    let full = ts(&hub_with::<Profile>());
    assert!(full.contains("/** A documented struct. */\nexport interface Profile {"));
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Unit;

#[derive(Serialize, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Pair(i32, String);

#[derive(Serialize, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Nothing {}

#[test]
fn unit_tuple_and_empty_structs() {
    assert_eq!(decl::<Unit>("Unit"), "export type Unit = null;\n");
    assert_eq!(
        decl::<Pair>("Pair"),
        "export type Pair = [number, string];\n"
    );
    assert_eq!(
        decl::<Nothing>("Nothing"),
        "export interface Nothing {\n  [key: string]: unknown;\n}\n"
    );
}

/// Externally tagged.
#[derive(Serialize, Deserialize, JsonSchema)]
#[allow(dead_code)]
enum External {
    Unit,
    Newtype(i32),
    Tuple(i32, String),
    Struct { x: f64 },
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
#[allow(dead_code)]
enum Internal {
    Unit,
    Struct { x: f64 },
    Newtype(Avatarless),
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Avatarless {
    name: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(tag = "t", content = "c")]
#[allow(dead_code)]
enum Adjacent {
    Unit,
    Newtype(String),
    Tuple(u8, u8),
    Struct { x: f64 },
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Untagged {
    Number(f64),
    Text(String),
    Many(Vec<Untagged>),
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
enum Level {
    LowPriority,
    High,
}

#[test]
fn enums_in_each_tagging() {
    assert_eq!(
        decl::<External>("External"),
        "export type External =\n\
         \x20 | \"Unit\"\n\
         \x20 | { Newtype: number }\n\
         \x20 | { Tuple: [number, string] }\n\
         \x20 | { Struct: { x: number } };\n"
    );
    assert_eq!(
        decl::<Internal>("Internal"),
        "export type Internal =\n\
         \x20 | { type: \"unit\" }\n\
         \x20 | { type: \"struct\"; x: number }\n\
         \x20 | (Avatarless & { type: \"newtype\" });\n"
    );
    assert_eq!(
        decl::<Adjacent>("Adjacent"),
        "export type Adjacent =\n\
         \x20 | { t: \"Unit\" }\n\
         \x20 | { c: string; t: \"Newtype\" }\n\
         \x20 | { c: [number, number]; t: \"Tuple\" }\n\
         \x20 | { c: { x: number }; t: \"Struct\" };\n"
    );
    assert_eq!(
        decl::<Untagged>("Untagged"),
        "export type Untagged = number | string | Untagged[];\n"
    );
    assert_eq!(
        decl::<Level>("Level"),
        "export type Level = \"LOW_PRIORITY\" | \"HIGH\";\n"
    );
}

/// Variants with docs.
#[derive(Serialize, Deserialize, JsonSchema)]
#[allow(dead_code)]
enum Documented {
    /// The first.
    First,
    /// The second, */ with a comment end.
    Second(u8),
}

#[test]
fn variant_docs_become_jsdoc() {
    assert_eq!(
        decl::<Documented>("Documented"),
        "export type Documented =\n\
         \x20 /** The first. */\n\
         \x20 | \"First\"\n\
         \x20 /** The second, *\\/ with a comment end. */\n\
         \x20 | { Second: number };\n"
    );
}

/// A recursive type.
#[derive(Serialize, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Tree {
    label: String,
    children: Vec<Tree>,
    parent: Option<Box<Tree>>,
    index: HashMap<String, Tree>,
}

#[test]
fn recursive_types_refer_to_themselves() {
    assert_eq!(
        decl::<Tree>("Tree"),
        "export interface Tree {\n\
         \x20 children: Tree[];\n\
         \x20 index: { [key: string]: Tree };\n\
         \x20 label: string;\n\
         \x20 parent?: Tree | null;\n\
         }\n"
    );
    let out = ts(&hub_with::<Tree>());
    assert!(out.contains("/** A recursive type. */\nexport interface Tree {\n"));
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Flattened {
    id: u32,
    #[serde(flatten)]
    extra: BTreeMap<String, bool>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct WithShape {
    id: u32,
    #[serde(flatten)]
    shape: Internal,
}

#[derive(Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord)]
#[allow(dead_code)]
enum Key {
    A,
    B,
}

#[test]
fn flattening_and_enum_keys() {
    // Every property has to fit the index signature.
    assert_eq!(
        decl::<Flattened>("Flattened"),
        "export interface Flattened {\n  id: number;\n  [key: string]: boolean | number;\n}\n"
    );
    assert_eq!(
        decl::<WithShape>("WithShape"),
        "export type WithShape = { id: number } & (\n\
         \x20 | { type: \"unit\" }\n\
         \x20 | { type: \"struct\"; x: number }\n\
         \x20 | (Avatarless & { type: \"newtype\" })\n\
         );\n"
    );
    assert_eq!(param::<BTreeMap<Key, i32>>(), "{ A?: number; B?: number }");
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Generic<T> {
    value: T,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "odd-name")]
#[allow(dead_code)]
struct OddName {
    x: i32,
}

#[test]
fn schema_names_become_type_names() {
    let mut b = DescriptorBuilder::new();
    let mut take = method("take", MethodKind::Unary);
    take.parameters
        .push(b.parameter::<Generic<i32>>("a", false));
    take.parameters
        .push(b.parameter::<Generic<String>>("b", false));
    take.parameters.push(b.parameter::<OddName>("c", false));
    let hub = b.finish("Types", "", vec![take], None);
    let out = ts(&hub);
    assert!(out.contains("export interface Generic {\n  value: number;\n}"));
    assert!(out.contains("export interface Generic2 {\n  value: string;\n}"));
    assert!(out.contains("export interface odd_name {\n  x: number;\n}"));
    assert!(out.contains("take(a: Generic, b: Generic2, c: odd_name): Promise<void>"));
}

/// Literal values of `const` and `enum`, of every JSON kind.
#[test]
fn literals() {
    let hub: HubDescriptor = serde_json::from_value(json!({
        "name": "Types",
        "methods": [{
            "name": "take", "wireName": "take", "kind": "fireAndForget",
            "parameters": [
                { "name": "a", "schema": { "const": "x\"y" } },
                { "name": "b", "schema": { "enum": [1, -2.5, true, null] } },
                { "name": "c", "schema": { "const": { "k": [1, "two"] } } },
                { "name": "d", "schema": false },
                { "name": "e", "schema": { "type": ["string", "number", "null"] } },
                { "name": "f", "schema": { "allOf": [{ "$ref": "#/$defs/A" }, { "$ref": "#/$defs/B" }] } },
                { "name": "g", "schema": { "prefixItems": [{ "type": "string" }], "items": { "type": "number" } } },
                { "name": "h", "schema": { "type": "array", "prefixItems": [{ "type": "string" }, { "type": "number" }], "minItems": 1, "maxItems": 2 } },
            ],
        }],
        "$defs": { "A": { "type": "object" }, "B": { "type": "object", "properties": { "b": { "type": "string" } }, "required": ["b"] } },
    }))
    .unwrap();
    let out = ts(&hub);
    let signature = "  take(\n    a: \"x\\\"y\",\n    b: 1 | -2.5 | true | null,\n    \
                     c: { k: [1, \"two\"] },\n    d: never,\n    e: string | number | null,\n    \
                     f: A & B,\n    g: [string?, ...number[]],\n    h: [string, number?],\n  \
                     ): Promise<void> {";
    assert!(out.contains(signature), "{out}");
}

#[test]
fn hub_and_client_methods() {
    let mut b = DescriptorBuilder::new();
    let mut send = method("send_message", MethodKind::FireAndForget);
    send.wire_name = "sendMessage".into();
    send.docs = "Posts a message.".into();
    send.parameters = vec![
        b.parameter::<String>("room_name", false),
        b.parameter::<String>("text", false),
    ];
    let mut add = method("add", MethodKind::Unary);
    add.parameters = vec![
        b.parameter::<i64>("a", false),
        b.parameter::<i64>("b", false),
    ];
    add.returns = Some(b.schema::<i64>());
    let mut leave = method("leave", MethodKind::Unary);
    let mut count = method("count", MethodKind::ServerStream);
    count.parameters = vec![b.parameter::<u32>("n", false)];
    count.returns = Some(b.schema::<u32>());
    let mut upload = method("upload", MethodKind::Unary);
    upload.parameters = vec![b.parameter::<Vec<u8>>("chunks", true)];
    upload.returns = Some(b.schema::<u64>());
    leave.docs = "Leaves.\n\nFails when not in the room.".into();
    let mut notify = method("notify", MethodKind::FireAndForget);
    notify.parameters = vec![b.parameter::<String>("text", false)];
    let mut ask = method("ask", MethodKind::ClientResult);
    ask.parameters = vec![b.parameter::<String>("question", false)];
    ask.returns = Some(b.schema::<Option<bool>>());
    let client = b.client("ChatClient", "", vec![notify, ask]);
    let hub = b.finish(
        "Chat",
        "The chat.",
        vec![send, add, leave, count, upload],
        Some(client),
    );
    let out = ts(&hub);
    for expected in [
        "import type { HubConnection, IStreamResult, Subject } from \"@microsoft/signalr\";\n",
        "/** The chat. */\nexport class ChatProxy {\n",
        "  readonly connection: HubConnection;\n",
        "  constructor(connection: HubConnection) {\n    this.connection = connection;\n  }\n",
        "  /** Posts a message. */\n  sendMessage(roomName: string, text: string): Promise<void> {\n    \
         return this.connection.send(\"sendMessage\", roomName, text);\n  }\n",
        "  add(a: number, b: number): Promise<number> {\n    \
         return this.connection.invoke(\"add\", a, b);\n  }\n",
        "  /**\n   * Leaves.\n   *\n   * Fails when not in the room.\n   */\n  \
         leave(): Promise<void> {\n    return this.connection.invoke(\"leave\");\n  }\n",
        "  count(n: number): IStreamResult<number> {\n    \
         return this.connection.stream(\"count\", n);\n  }\n",
        "  upload(chunks: Subject<number[]>): Promise<number> {\n    \
         return this.connection.invoke(\"upload\", chunks);\n  }\n",
        "export interface ChatClientHandlers {\n  \
         notify(text: string): void | Promise<void>;\n  \
         ask(question: string): boolean | null | Promise<boolean | null>;\n}\n",
        "export function registerChatClient(\n  connection: HubConnection,\n  \
         handlers: ChatClientHandlers,\n): () => void {\n",
        "    [\"notify\", (text: string) => handlers.notify(text)],\n",
        "    connection.on(name, handler);\n",
        "      connection.off(name, handler);\n",
    ] {
        assert!(out.contains(expected), "missing\n{expected}\nin\n{out}");
    }

    let js = render_javascript(&hub, &Options::default()).unwrap();
    assert!(!js.contains("import"), "{js}");
    assert!(!js.contains(": string"), "{js}");
    assert!(js.contains(
        "  sendMessage(roomName, text) {\n    return this.connection.send(\"sendMessage\", roomName, text);\n  }\n"
    ));
    assert!(js.contains("export function registerChatClient(connection, handlers) {\n"));
    assert!(js.contains("    [\"notify\", (text) => handlers.notify(text)],\n"));

    let dts = render_declarations(&hub, &Options::default()).unwrap();
    assert!(dts.contains("export declare class ChatProxy {\n"));
    assert!(dts.contains("  sendMessage(roomName: string, text: string): Promise<void>;\n"));
    assert!(dts.contains("  constructor(connection: HubConnection);\n"));
    assert!(dts.contains(
        "export declare function registerChatClient(\n  connection: HubConnection,\n  \
         handlers: ChatClientHandlers,\n): () => void;\n"
    ));
    assert!(!dts.contains("return this"));
    assert!(!dts.contains("connection.on("));
}

#[test]
fn only_used_imports_and_no_client_parts_without_a_client() {
    let out = ts(&hub_with::<String>());
    assert!(out.contains("import type { HubConnection } from \"@microsoft/signalr\";\n"));
    assert!(!out.contains("Handlers"));
    assert!(!out.contains("register"));
}

#[test]
fn names_are_adjusted_or_refused() {
    // Parameter names: camel case, reserved words and `handlers` suffixed.
    let mut b = DescriptorBuilder::new();
    let mut m = method("go", MethodKind::FireAndForget);
    m.parameters = vec![
        b.parameter::<String>("new", false),
        b.parameter::<String>("r#type", false),
        b.parameter::<String>("user_id", false),
    ];
    let mut h = method("pick", MethodKind::ClientResult);
    h.wire_name = "pick-one".into();
    h.parameters = vec![b.parameter::<u8>("handlers", false)];
    h.returns = Some(b.schema::<u8>());
    let client = b.client("Ui", "", vec![h]);
    let hub = b.finish("Hub", "", vec![m], Some(client));
    let out = ts(&hub);
    assert!(out.contains("go(new_: string, type: string, userId: string): Promise<void>"));
    assert!(out.contains("  \"pick-one\"(handlers_: number): number | Promise<number>;\n"));
    assert!(
        out.contains("[\"pick-one\", (handlers_: number) => handlers[\"pick-one\"](handlers_)],")
    );
    assert!(out.contains("export interface UiHandlers {"));
    assert!(out.contains("export function registerUi("));

    // Options rename the generated parts.
    let options = Options::new()
        .proxy_name("Api")
        .handlers_name("UiCallbacks")
        .register_name("listen");
    let out = render_typescript(&hub, &options).unwrap();
    assert!(out.contains("export class Api {"));
    assert!(out.contains("export interface UiCallbacks {"));
    assert!(out.contains("export function listen("));
    let bad = render_typescript(&hub, &Options::new().proxy_name("my proxy")).unwrap_err();
    assert!(matches!(bad, Error::InvalidName { .. }), "{bad}");
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TypesProxy")]
struct Clash;

#[derive(Serialize, Deserialize, JsonSchema)]
struct Subject {
    title: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "string")]
struct Keyword;

#[test]
fn collisions() {
    let err = render_typescript(&hub_with::<Clash>(), &Options::default()).unwrap_err();
    assert!(matches!(err, Error::NameCollision { .. }));
    assert_eq!(
        err.to_string(),
        "the type `TypesProxy` and the proxy class would both be `TypesProxy` in the TypeScript \
         module; rename one (`#[schemars(rename = \"…\")]` for a type, \
         `#[signal::method(name = \"…\")]` for a method, or the names in `Options`)"
    );

    let err = render_typescript(&hub_with::<Keyword>(), &Options::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the type `string` cannot be used"),
        "{err}"
    );

    // A type named like an import: the import gets an alias.
    let mut b = DescriptorBuilder::new();
    let mut m = method("upload", MethodKind::Unary);
    m.parameters = vec![
        b.parameter::<Subject>("subject", false),
        b.parameter::<String>("lines", true),
    ];
    let out = ts(&b.finish("Mail", "", vec![m], None));
    assert!(out.contains(
        "import type {\n  HubConnection,\n  Subject as SignalRSubject,\n} from \"@microsoft/signalr\";\n"
    ), "{out}");
    assert!(out.contains("upload(subject: Subject, lines: SignalRSubject<string>): Promise<void>"));

    // Wire names that differ only in case reach the same handler.
    let mut a = method("a", MethodKind::FireAndForget);
    a.wire_name = "ping".into();
    let mut b2 = method("b", MethodKind::FireAndForget);
    b2.wire_name = "Ping".into();
    let hub = DescriptorBuilder::new().finish("Hub", "", vec![a, b2], None);
    let err = render_typescript(&hub, &Options::default()).unwrap_err();
    assert!(
        err.to_string().contains("`Hub::a` (wire name `ping`)"),
        "{err}"
    );

    // A method the side cannot have.
    let hub = DescriptorBuilder::new().finish(
        "Hub",
        "",
        vec![method("ask", MethodKind::ClientResult)],
        None,
    );
    let err = render_typescript(&hub, &Options::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "method `ask` of `Hub` is a client result method, which a hub cannot have"
    );
}

/// An odd number, described with `not`.
struct Odd;

impl JsonSchema for Odd {
    fn schema_name() -> Cow<'static, str> {
        "Odd".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "object", "properties": { "n": { "type": "integer", "not": { "multipleOf": 2 } } } })
    }
}

#[test]
fn unsupported_constructs_name_the_type_and_the_keyword() {
    let err = render_typescript(&hub_with::<Odd>(), &Options::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the type `Odd`: its JSON Schema uses `not` at `#/properties/n`, which has no TypeScript \
         equivalent; give the type a plainer serde shape, or implement `JsonSchema` for it by \
         hand without that keyword"
    );

    let hub: HubDescriptor = serde_json::from_value(json!({
        "name": "Hub",
        "methods": [{ "name": "take", "wireName": "take", "kind": "unary",
                      "parameters": [{ "name": "value", "schema": { "$ref": "#/$defs/Missing" } }] }],
    }))
    .unwrap();
    let err = render_typescript(&hub, &Options::default()).unwrap_err();
    assert!(matches!(err, Error::UnresolvedReference { .. }));
    assert!(err.to_string().starts_with(
        "the parameter `value` of `Hub::take`: its JSON Schema refers to `#/$defs/Missing` at `#/$ref`"
    ), "{err}");

    let hub: HubDescriptor = serde_json::from_value(json!({
        "name": "Hub",
        "methods": [{ "name": "take", "wireName": "take", "kind": "unary", "parameters": [],
                      "returns": { "$ref": "#/definitions/Old" } }],
    }))
    .unwrap();
    let err = render_typescript(&hub, &Options::default()).unwrap_err();
    assert!(
        err.to_string().contains("the result of `Hub::take`"),
        "{err}"
    );
    assert!(err.to_string().contains("#/definitions/Old"), "{err}");
}

/// A hub whose types take every shape above.
fn rich_hub() -> HubDescriptor {
    let mut b = DescriptorBuilder::new();
    let mut m = method("everything", MethodKind::Unary);
    m.parameters = vec![
        b.parameter::<Profile>("profile", false),
        b.parameter::<External>("external", false),
        b.parameter::<Internal>("internal", false),
        b.parameter::<Adjacent>("adjacent", false),
        b.parameter::<Untagged>("untagged", false),
        b.parameter::<Tree>("tree", false),
        b.parameter::<WithShape>("with_shape", false),
        b.parameter::<HashMap<String, Documented>>("documented", false),
    ];
    m.returns = Some(b.schema::<HashMap<String, (Tree, Option<Level>)>>());
    let mut n = method("notify", MethodKind::FireAndForget);
    n.parameters = vec![b.parameter::<Flattened>("flattened", false)];
    let client = b.client("RichClient", "", vec![n]);
    b.finish("Rich", "A hub of every shape.", vec![m], Some(client))
}

#[test]
fn rendering_is_deterministic() {
    let first = render(&rich_hub(), &Options::default()).unwrap();
    let second = render(&rich_hub(), &Options::default()).unwrap();
    assert_eq!(first, second);
    // The same descriptor read back from JSON (how the schema endpoint or a
    // file would hand it over) renders the same bytes.
    let json = serde_json::to_string(&rich_hub()).unwrap();
    let read: HubDescriptor = serde_json::from_str(&json).unwrap();
    assert_eq!(render(&read, &Options::default()).unwrap(), first);
}

#[test]
fn header_and_layout() {
    let module = render(&rich_hub(), &Options::default()).unwrap();
    for text in [&module.typescript, &module.javascript, &module.declarations] {
        assert!(
            text.starts_with("// Generated by signal-typescript from the Rich hub. Do not edit.\n"),
            "{text}"
        );
        assert!(text.ends_with("}\n") || text.ends_with(";\n"), "{text}");
        assert!(!text.ends_with("\n\n"));
        assert!(!text.contains("\n\n\n"));
        for line in text.lines() {
            assert_eq!(line, line.trim_end(), "trailing space in {line:?}");
            assert!(!line.contains('\t'));
            let indent = line.len() - line.trim_start().len();
            let jsdoc = line.trim_start().starts_with('*');
            assert!(
                indent % 2 == (jsdoc as usize),
                "odd indentation in {line:?} of\n{text}"
            );
        }
    }
}

#[test]
fn the_generator_rewrites_only_changed_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("generated");
    let generator = Generator::new(&out)
        .hub(rich_hub(), "rich")
        .hub(hub_with::<Tree>(), "types");
    let first = generator.write().unwrap();
    let names: Vec<String> = first
        .iter()
        .map(|w| w.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "rich.ts",
            "rich.js",
            "rich.d.ts",
            "types.ts",
            "types.js",
            "types.d.ts"
        ]
    );
    assert!(first.iter().all(|w| w.changed));
    let rich = fs::read_to_string(out.join("rich.ts")).unwrap();
    assert_eq!(
        rich,
        render_typescript(&rich_hub(), &Options::default()).unwrap()
    );

    let stamps = |dir: &std::path::Path| -> BTreeMap<String, std::time::SystemTime> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().modified().unwrap(),
                )
            })
            .collect()
    };
    let before = stamps(&out);
    assert_eq!(before.len(), 6, "no temporary files are left: {before:?}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = generator.write().unwrap();
    assert!(second.iter().all(|w| !w.changed));
    assert_eq!(stamps(&out), before);

    // A file edited by hand is put back; the others stay untouched.
    fs::write(out.join("types.js"), "// edited\n").unwrap();
    let edited = stamps(&out)["types.js"];
    std::thread::sleep(std::time::Duration::from_millis(20));
    let third = generator.write().unwrap();
    let changed: Vec<_> = third.iter().filter(|w| w.changed).collect();
    assert_eq!(changed.len(), 1);
    assert!(changed[0].path.ends_with("types.js"));
    let after = stamps(&out);
    assert_ne!(after["types.js"], edited);
    assert_eq!(after["rich.ts"], before["rich.ts"]);

    // Only the TypeScript module.
    let only_ts = tempfile::tempdir().unwrap();
    let written = Generator::new(only_ts.path())
        .hub(rich_hub(), "rich")
        .javascript(false)
        .write()
        .unwrap();
    assert_eq!(written.len(), 1);
    assert!(written[0].path.ends_with("rich.ts"));
}

#[test]
fn generator_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = Generator::new(dir.path())
        .hub(rich_hub(), "../rich")
        .write()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidStem { .. }), "{err}");

    let err = Generator::new(dir.path())
        .hub(rich_hub(), "same")
        .hub(hub_with::<u8>(), "same")
        .write()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the hubs `Rich` and `Types` are both given the file stem `same`"
    );

    // Nothing is written when a hub fails to render.
    let err = Generator::new(dir.path().join("out"))
        .hub(rich_hub(), "rich")
        .hub(hub_with::<Odd>(), "odd")
        .write()
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedSchema { .. }));
    assert!(!dir.path().join("out").exists());

    // I/O errors name the path.
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let err = Generator::new(&file)
        .hub(rich_hub(), "rich")
        .write()
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(
        err.to_string().starts_with(&format!(
            "cannot create the directory `{}`: ",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn an_empty_client_contract_and_reserved_wire_names() {
    let mut b = DescriptorBuilder::new();
    let client = b.client("Quiet", "", Vec::new());
    let hub = b.finish("Hub", "", Vec::new(), Some(client));
    let out = ts(&hub);
    assert!(out.contains("export interface QuietHandlers {}\n"), "{out}");
    assert!(out.contains(
        "export function registerQuiet(\n  _connection: HubConnection,\n  \
         _handlers: QuietHandlers,\n): () => void {\n  return () => {};\n}\n"
    ));

    for wire in ["constructor", "then"] {
        let mut m = method("m", MethodKind::Unary);
        m.wire_name = wire.to_owned();
        let hub = DescriptorBuilder::new().finish("Hub", "", vec![m], None);
        let err = render_typescript(&hub, &Options::default()).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "the wire name of `Hub::m` `{wire}` cannot be used"
            )),
            "{err}"
        );
    }
}

#[test]
fn long_result_types_break_inside_their_brackets() {
    let mut b = DescriptorBuilder::new();
    let mut m = method("lookup", MethodKind::Unary);
    m.parameters = vec![b.parameter::<String>("key", false)];
    m.returns = Some(b.schema::<BTreeMap<String, (Tree, Option<Level>, Vec<String>, bool)>>());
    let out = ts(&b.finish("Hub", "", vec![m], None));
    assert!(
        out.contains(
            "  lookup(key: string): Promise<{\n    \
             [key: string]: [Tree, Level | null, string[], boolean];\n  }> {\n"
        ),
        "{out}"
    );
}

#[test]
fn what_authorization_requires_is_in_the_docs() {
    use signal_core::Authorize;
    let b = DescriptorBuilder::new();
    let mut ban = method("ban", MethodKind::FireAndForget);
    ban.docs = "Bans a user.".to_owned();
    ban.authorize = Some(Authorize {
        policies: vec!["admin".to_owned(), "audit".to_owned()],
    });
    let mut status = method("status", MethodKind::FireAndForget);
    status.authorize = Some(Authorize::new(Some("ops")));
    let mut hub = b.finish("Admin", "", vec![ban, status], None);
    hub.authorize = Some(Authorize::default());
    let out = ts(&hub);
    for expected in [
        "/** Requires an authenticated user. */\nexport class AdminProxy {",
        "  /**\n   * Bans a user.\n   *\n   * Requires an authenticated user whom the `admin` and `audit` policies allow.\n   */\n  ban(): Promise<void> {",
        "  /** Requires an authenticated user whom the `ops` policy allows. */\n  status(): Promise<void> {",
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }
}
