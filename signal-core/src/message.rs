//! The hub messages of the SignalR hub protocol, independent of their encoding.
//!
//! Arguments, results and stream items are [`Payload`]s: what a client sent stays in its
//! encoding until it is decoded exactly once, straight into the type the hub method
//! declares; what the server sends is encoded once per protocol in use, however many
//! connections receive it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::payload::{Payload, PayloadError};

/// Headers any message but Ping may carry.
pub type Headers = BTreeMap<String, String>;

/// One message of the hub protocol (types 1 to 9).
#[derive(Debug, Clone, PartialEq)]
pub enum HubMessage {
    /// Type 1: call a method on the other side.
    Invocation(Invocation),
    /// Type 2: one item of a stream.
    StreamItem(StreamItem),
    /// Type 3: the end of an invocation or a stream.
    Completion(Completion),
    /// Type 4: call a method that answers with a stream.
    StreamInvocation(StreamInvocation),
    /// Type 5: stop a stream the sender asked for.
    CancelInvocation(CancelInvocation),
    /// Type 6: keep-alive.
    Ping,
    /// Type 7: the sender is closing the connection.
    Close(Close),
    /// Type 8: stateful reconnect: the highest sequence id processed.
    Ack {
        /// The highest sequence id the sender has processed.
        sequence_id: u64,
    },
    /// Type 9: stateful reconnect: the sequence id of the next message sent.
    Sequence {
        /// The sequence id of the message that follows.
        sequence_id: u64,
    },
}

impl HubMessage {
    /// The numeric message type used on the wire.
    pub fn message_type(&self) -> u8 {
        match self {
            HubMessage::Invocation(_) => 1,
            HubMessage::StreamItem(_) => 2,
            HubMessage::Completion(_) => 3,
            HubMessage::StreamInvocation(_) => 4,
            HubMessage::CancelInvocation(_) => 5,
            HubMessage::Ping => 6,
            HubMessage::Close(_) => 7,
            HubMessage::Ack { .. } => 8,
            HubMessage::Sequence { .. } => 9,
        }
    }

    /// Whether the message counts in stateful reconnect's sequence: types 1 to 5
    /// carry an implicit sequence id, are buffered until acknowledged and replayed
    /// after a reconnect; Ping, Close, Ack and Sequence are not.
    pub fn is_sequenced(&self) -> bool {
        (1..=5).contains(&self.message_type())
    }
}

/// Positional arguments of an invocation, each kept in the encoding it arrived in
/// (or as a value to encode) until the receiving method decodes it into the type it
/// declares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Arguments(Vec<Payload>);

/// Why an argument could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgumentError {
    /// Fewer or more arguments than the method declares.
    #[error("Invocation provides {actual} argument(s) but target expects {expected}.")]
    Count {
        /// What the method declares.
        expected: usize,
        /// What the invocation carried.
        actual: usize,
    },
    /// Fewer or more upload streams than the method declares.
    #[error("Client sent {actual} stream(s), Hub method expects {expected}.")]
    StreamCount {
        /// What the method declares.
        expected: usize,
        /// What the invocation carried.
        actual: usize,
    },
    /// One argument does not have the declared type.
    #[error("Error binding argument '{name}' (position {index}): {message}.")]
    Invalid {
        /// Zero-based position.
        index: usize,
        /// The parameter's name.
        name: String,
        /// What serde said about it.
        message: String,
    },
}

impl Arguments {
    /// Wraps payloads.
    pub fn new(values: Vec<Payload>) -> Self {
        Arguments(values)
    }

    /// One [`Payload::Value`] per value: each is encoded later, once per protocol
    /// that writes the message.
    pub fn from_values<I, T>(values: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Serialize + Send + Sync + 'static,
    {
        Arguments(values.into_iter().map(Payload::value).collect())
    }

    /// How many arguments there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The payloads.
    pub fn as_slice(&self) -> &[Payload] {
        &self.0
    }

    /// The payloads, by value.
    pub fn into_vec(self) -> Vec<Payload> {
        self.0
    }

    /// Iterates over the payloads.
    pub fn iter(&self) -> std::slice::Iter<'_, Payload> {
        self.0.iter()
    }

    /// Appends one argument.
    pub fn push(&mut self, value: impl Into<Payload>) {
        self.0.push(value.into());
    }

    /// Fails unless there are exactly `expected` arguments.
    pub fn expect_len(&self, expected: usize) -> Result<(), ArgumentError> {
        if self.0.len() == expected {
            Ok(())
        } else {
            Err(ArgumentError::Count {
                expected,
                actual: self.0.len(),
            })
        }
    }

    /// Decodes the argument at `index`, named `name` in error messages.
    pub fn get<T: DeserializeOwned>(&self, index: usize, name: &str) -> Result<T, ArgumentError> {
        let payload = self.0.get(index).ok_or(ArgumentError::Count {
            expected: index + 1,
            actual: self.0.len(),
        })?;
        payload.decode().map_err(|error| ArgumentError::Invalid {
            index,
            name: name.to_owned(),
            message: argument_message(&error),
        })
    }
}

/// What serde said about an argument, without serde_json's position ("at line 1
/// column 3"): the position is inside one argument, noise to the caller.
fn argument_message(error: &PayloadError) -> String {
    let text = error.to_string();
    match error {
        PayloadError::Json(_) => match text.rfind(" at line ") {
            Some(at) => text[..at].to_owned(),
            None => text,
        },
        _ => text,
    }
}

impl From<Vec<Payload>> for Arguments {
    fn from(values: Vec<Payload>) -> Self {
        Arguments(values)
    }
}

impl FromIterator<Payload> for Arguments {
    fn from_iter<I: IntoIterator<Item = Payload>>(iter: I) -> Self {
        Arguments(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Arguments {
    type Item = &'a Payload;
    type IntoIter = std::slice::Iter<'a, Payload>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Serializes the arguments as a sequence of their values, in any serde format.
impl Serialize for Arguments {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Type 1: a call of a method by name; without an invocation id no Completion is expected.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Present when the caller waits for a Completion.
    pub invocation_id: Option<String>,
    /// The method's name.
    pub target: String,
    /// Positional arguments.
    pub arguments: Arguments,
    /// Ids of the streams the caller uploads as further arguments.
    pub stream_ids: Vec<String>,
    /// Optional headers.
    pub headers: Headers,
}

impl Invocation {
    /// A fire-and-forget invocation of `target` with `arguments`.
    pub fn new(target: impl Into<String>, arguments: Arguments) -> Self {
        Invocation {
            invocation_id: None,
            target: target.into(),
            arguments,
            stream_ids: Vec::new(),
            headers: Headers::new(),
        }
    }
}

/// Type 4: a call of a method that answers with a stream of items.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInvocation {
    /// Identifies the stream's items and its Completion.
    pub invocation_id: String,
    /// The method's name.
    pub target: String,
    /// Positional arguments.
    pub arguments: Arguments,
    /// Ids of the streams the caller uploads as further arguments.
    pub stream_ids: Vec<String>,
    /// Optional headers.
    pub headers: Headers,
}

/// Type 2: one item of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamItem {
    /// The stream's invocation id.
    pub invocation_id: String,
    /// The item.
    pub item: Payload,
    /// Optional headers.
    pub headers: Headers,
}

impl StreamItem {
    /// The item `item` of the stream `invocation_id`.
    pub fn new(invocation_id: impl Into<String>, item: impl Into<Payload>) -> Self {
        StreamItem {
            invocation_id: invocation_id.into(),
            item: item.into(),
            headers: Headers::new(),
        }
    }
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CompletionOutcome {
    /// Success without a value.
    Void,
    /// Success with a value.
    Result(Payload),
    /// Failure, with a message for the caller.
    Error(String),
}

/// Type 3: the end of an invocation or of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The invocation this completes.
    pub invocation_id: String,
    /// Result, error or nothing.
    pub outcome: CompletionOutcome,
    /// Optional headers.
    pub headers: Headers,
}

impl Completion {
    /// A successful completion without a value.
    pub fn void(invocation_id: impl Into<String>) -> Self {
        Self::with(invocation_id, CompletionOutcome::Void)
    }

    /// A successful completion carrying `result`.
    pub fn result(invocation_id: impl Into<String>, result: impl Into<Payload>) -> Self {
        Self::with(invocation_id, CompletionOutcome::Result(result.into()))
    }

    /// A failed completion carrying `error`.
    pub fn error(invocation_id: impl Into<String>, error: impl Into<String>) -> Self {
        Self::with(invocation_id, CompletionOutcome::Error(error.into()))
    }

    /// A completion with `outcome`.
    pub fn with(invocation_id: impl Into<String>, outcome: CompletionOutcome) -> Self {
        Completion {
            invocation_id: invocation_id.into(),
            outcome,
            headers: Headers::new(),
        }
    }
}

/// Type 5: stop a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelInvocation {
    /// The stream to stop.
    pub invocation_id: String,
    /// Optional headers.
    pub headers: Headers,
}

/// Type 7: the sender closes the connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Close {
    /// Why, when the close is due to a fault.
    pub error: Option<String>,
    /// Whether a client with automatic reconnect should come back.
    pub allow_reconnect: bool,
}
