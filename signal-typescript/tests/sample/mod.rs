//! A sample hub covering every kind of method and the serde shapes schemars
//! describes, built into a descriptor the way `#[signal::hub]` builds one.

use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use signal_core::HubDescriptor;
use signal_core::descriptor::{DescriptorBuilder, MethodDescriptor, MethodKind};

/// A chat message.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Message {
    /// Who wrote it.
    pub(crate) user_name: String,
    /// What they wrote.
    pub(crate) text: String,
    /// Milliseconds since the epoch.
    pub(crate) sent_at: u64,
    /// The message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reply_to: Option<u64>,
    /// Reactions, by emoji.
    pub(crate) reactions: BTreeMap<String, u32>,
    /// Attachments.
    pub(crate) attachments: Vec<Attachment>,
    /// How it is shown.
    pub(crate) style: Style,
    /// Where it was sent from, if known.
    pub(crate) location: Option<(f64, f64)>,
}

/// A file attached to a message.
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Attachment {
    /// Its name.
    pub(crate) name: String,
    /// Its bytes.
    pub(crate) bytes: Vec<u8>,
}

/// How a message is shown.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Style {
    /// As written.
    Plain,
    /// Bold.
    Bold,
    /// In italics.
    Italic,
}

/// Something that happened in a room (internally tagged).
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub(crate) enum RoomEvent {
    /// Someone joined.
    Joined { user_name: String },
    /// Someone left, maybe saying why.
    Left {
        user_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A message was posted.
    Posted(Message),
}

/// A command (externally tagged, the serde default).
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) enum Command {
    /// Clears the room.
    Clear,
    /// Renames the room.
    Rename(String),
    /// Moves the room.
    Move { x: i32, y: i32 },
    /// Resizes the room.
    Resize(u16, u16),
}

/// A reply (adjacently tagged).
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub(crate) enum Reply {
    /// Accepted.
    Yes,
    /// Refused, with a reason.
    No(String),
    /// Asked again later.
    Later { seconds: u32 },
}

/// A number or a name (untagged).
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Id {
    /// A number.
    Number(i64),
    /// A name.
    Name(String),
}

/// A tree of rooms (recursive).
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct RoomTree {
    /// The room's name.
    pub(crate) name: String,
    /// Rooms inside it.
    pub(crate) children: Vec<RoomTree>,
    /// Its parent's name, flattened to keep this a tree.
    pub(crate) parent: Option<Box<RoomTree>>,
}

/// Statistics of a room.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stats {
    /// Messages per user.
    pub(crate) per_user: HashMap<String, u64>,
    /// The busiest hour, if any.
    pub(crate) busiest_hour: Option<u8>,
    /// A renamed field.
    #[serde(rename = "total-count")]
    pub(crate) total: i64,
    /// Unit.
    pub(crate) nothing: (),
}

/// Settings: named fields plus any others (a flattened map).
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Settings {
    /// The color theme.
    pub(crate) theme: String,
    /// The volume, if set.
    #[serde(default)]
    pub(crate) volume: Option<u8>,
    /// Other settings.
    #[serde(flatten)]
    pub(crate) extra: BTreeMap<String, i32>,
}

/// An event placed in a room: its own fields and a flattened tagged enum.
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Placed {
    /// The room.
    pub(crate) room: String,
    /// The event.
    #[serde(flatten)]
    pub(crate) event: RoomEvent,
}

/// A method descriptor: Rust and wire names, kind, parameters (`=> stream`
/// marks an upload), result type and docs.
macro_rules! method {
    ($b:ident, $name:literal, $wire:literal, $kind:ident, [$($p:literal: $t:ty $(=> $stream:tt)?),*] $(-> $ret:ty)?, $docs:literal) => {
        MethodDescriptor {
            name: $name.to_owned(),
            wire_name: $wire.to_owned(),
            kind: MethodKind::$kind,
            parameters: vec![$($b.parameter::<$t>($p, method!(@stream $($stream)?))),*],
            returns: None$(.or(Some($b.schema::<$ret>())))?,
            docs: $docs.to_owned(),
            authorize: None,
        }
    };
    (@stream) => { false };
    (@stream stream) => { true };
}

/// The `Chat` hub with the `ChatClient` client contract.
pub(crate) fn chat() -> HubDescriptor {
    let mut b = DescriptorBuilder::new();
    let hub_methods = vec![
        method!(b, "send_message", "sendMessage", FireAndForget, ["room": String, "text": String], "Posts `text` to `room`."),
        method!(b, "post", "post", Unary, ["room": String, "message": Message] -> u64, "Posts a message; returns its id."),
        method!(b, "history", "history", Unary, ["room": String, "limit": Option<u32>] -> Vec<Message>, "The last messages of a room."),
        method!(b, "stats", "stats", Unary, ["room": Id] -> Stats, ""),
        method!(b, "tree", "tree", Unary, [] -> RoomTree, "The room tree."),
        method!(b, "command", "command", Unary, ["command": Command] -> Reply, ""),
        method!(b, "leave", "leave", Unary, ["room": String], "Leaves a room; fails when not in it."),
        method!(b, "events", "events", ServerStream, ["room": String, "since": Option<u64>] -> RoomEvent, "Streams a room's events."),
        method!(b, "upload", "upload", Unary, ["name": String, "chunks": Vec<u8> => stream] -> u64, "Uploads a file in chunks; returns its size."),
        method!(b, "echo_all", "EchoAll", ServerStream, ["items": String => stream] -> String, "Echoes each uploaded item."),
        method!(b, "replay", "replay", Unary, ["events": Vec<Placed>] -> usize, "Replays placed events."),
        method!(b, "configure", "configure", Unary, ["settings": Settings] -> Settings, "Changes the settings; returns them all."),
        method!(b, "pairs", "pairs", Unary, ["pairs": Vec<(String, i32)>, "r#type": String] -> BTreeMap<String, Vec<Option<Style>>>, ""),
    ];
    let client_methods = vec![
        method!(b, "receive_message", "receiveMessage", FireAndForget, ["user": String, "text": String], "A message was posted."),
        method!(b, "room_event", "roomEvent", FireAndForget, ["event": RoomEvent], ""),
        method!(b, "confirm", "confirm", ClientResult, ["question": String] -> bool, "Asks the user a yes/no question."),
        method!(b, "pick", "pick", ClientResult, ["choices": Vec<Style>, "handlers": u8] -> Option<Style>, "Asks the user to pick a style."),
    ];
    let client = b.client(
        "ChatClient",
        "What the chat server calls on its clients.",
        client_methods,
    );
    b.finish("Chat", "The chat hub.", hub_methods, Some(client))
}

/// A type named like an import of the module.
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Subject {
    /// The subject line.
    pub(crate) line: String,
}

/// A type whose schema name is no identifier.
#[derive(Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "odd-name")]
pub(crate) struct OddName {
    /// A field whose name is no identifier either.
    #[serde(rename = "a b")]
    pub(crate) a_b: Vec<Option<Vec<Subject>>>,
}

/// A hub of awkward names and shapes: a method named `connection`, reserved
/// and duplicate-looking parameter names, a type named `Subject` beside an
/// upload, wire names that are no identifiers, long signatures, and a client
/// contract without methods.
pub(crate) fn edges() -> HubDescriptor {
    let mut b = DescriptorBuilder::new();
    let hub_methods = vec![
        method!(b, "connection", "connection", Unary, [] -> String, "Named like the proxy's field."),
        method!(b, "new", "new", FireAndForget, ["new": String, "class": u8, "user_id": u32, "userId": u32], ""),
        method!(b, "mail", "mail", Unary, ["subject": Subject, "lines": String => stream] -> OddName, ""),
        method!(b, "odd", "odd-one", ServerStream, ["odd": OddName] -> BTreeMap<String, (Subject, Option<OddName>, HashMap<String, Vec<u64>>)>, "A wire name with a dash and a long item type that has to be broken over lines."),
        method!(b, "many", "many", Unary, ["first_parameter_with_a_long_name": HashMap<String, Subject>, "second_parameter_with_a_long_name": Option<OddName>, "third": (u8, u16, u32, u64, i8, i16, i32, i64)] -> (), ""),
    ];
    let client = b.client("EdgesClient", "", Vec::new());
    b.finish("Edges", "", hub_methods, Some(client))
}
