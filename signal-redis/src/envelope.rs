//! The messages nodes exchange on Redis, byte for byte as ASP.NET Core's
//! `RedisProtocol` writes and reads them (MessagePack, written with `rmp`'s
//! smallest encodings, which are MessagePack-CSharp's).
//!
//! One extension, which ASP.NET Core readers skip: a broadcast from a signal
//! node carries its server name as a fifth item, `[excluded, frames, nil, nil,
//! origin]`, so that the node ignores its own echo (it has delivered to its own
//! connections already). ASP.NET Core reads items 2 and 3 as a null invocation
//! id and return channel, and discards the rest. A send to several groups at
//! once adds a sixth, the groups before this one in the send, so that a signal
//! node delivers once to a member of several (ASP.NET Core delivers once per
//! group).

use bytes::Bytes;
use rmp::Marker;

/// A message on a Redis channel could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes end before the message does.
    #[error("the message is truncated")]
    Truncated,
    /// The bytes are MessagePack, but not the message this channel carries.
    #[error("the message is malformed: {0}")]
    Malformed(String),
}

type Result<T> = std::result::Result<T, EnvelopeError>;

/// An invocation on a hub channel (all, group, user, connection): its frames
/// for each hub protocol, and whom to skip.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InvocationEnvelope {
    /// Connections not to deliver to.
    pub excluded: Vec<String>,
    /// `(protocol name, the complete wire frame in that protocol)`.
    pub frames: Vec<(String, Bytes)>,
    /// For a client result: the invocation id and the logical channel the
    /// holder publishes the Completion on.
    pub client_result: Option<ClientResult>,
    /// The server that published it (signal nodes only).
    pub origin: Option<String>,
    /// For one of several groups sent to at once: the groups before it in
    /// that send, whose members have had the message already (signal nodes
    /// only; they deliver once to a member of several of the groups).
    pub earlier_groups: Vec<String>,
}

/// What a client result's invocation carries besides its frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResult {
    /// The invocation id the client answers.
    pub invocation_id: String,
    /// The logical name (no channel prefix) of the asking node's return channel.
    pub return_channel: String,
}

/// A group change for a connection that another node may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCommand {
    /// The asking server's ack id.
    pub id: u32,
    /// The asking server, which waits for the ack.
    pub server: String,
    /// Add or remove.
    pub action: GroupAction,
    /// The group.
    pub group: String,
    /// The connection.
    pub connection: String,
}

/// ASP.NET Core's `GroupAction` (a byte; 0 is intentionally unused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAction {
    /// Add to the group (1).
    Add,
    /// Remove from the group (2).
    Remove,
}

/// A client's Completion on its way back to the node that asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionEnvelope {
    /// The protocol the Completion is framed in.
    pub protocol: String,
    /// The Completion, framed.
    pub framed: Bytes,
}

// rmp's writers on a Vec cannot fail; the only error type they return is an
// I/O error from the writer.
fn vec_infallible<T, E: std::fmt::Debug>(result: std::result::Result<T, E>) -> T {
    result.expect("writing MessagePack to a Vec cannot fail")
}

impl InvocationEnvelope {
    /// The bytes ASP.NET Core's `WriteInvocation` writes (plus the origin when set).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            16 + self
                .frames
                .iter()
                .map(|(n, f)| n.len() + f.len() + 8)
                .sum::<usize>(),
        );
        let len = match (&self.client_result, &self.origin) {
            _ if !self.earlier_groups.is_empty() => 6,
            (_, Some(_)) => 5,
            (Some(_), None) => 4,
            (None, None) => 2,
        };
        vec_infallible(rmp::encode::write_array_len(&mut out, len));
        vec_infallible(rmp::encode::write_array_len(
            &mut out,
            self.excluded.len() as u32,
        ));
        for id in &self.excluded {
            vec_infallible(rmp::encode::write_str(&mut out, id));
        }
        vec_infallible(rmp::encode::write_map_len(
            &mut out,
            self.frames.len() as u32,
        ));
        for (protocol, framed) in &self.frames {
            vec_infallible(rmp::encode::write_str(&mut out, protocol));
            vec_infallible(rmp::encode::write_bin(&mut out, framed));
        }
        if len > 2 {
            match &self.client_result {
                Some(result) => {
                    vec_infallible(rmp::encode::write_str(&mut out, &result.invocation_id));
                    vec_infallible(rmp::encode::write_str(&mut out, &result.return_channel));
                }
                None => {
                    vec_infallible(rmp::encode::write_nil(&mut out));
                    vec_infallible(rmp::encode::write_nil(&mut out));
                }
            }
        }
        if len > 4 {
            match &self.origin {
                Some(origin) => vec_infallible(rmp::encode::write_str(&mut out, origin)),
                None => vec_infallible(rmp::encode::write_nil(&mut out)),
            }
        }
        if len > 5 {
            vec_infallible(rmp::encode::write_array_len(
                &mut out,
                self.earlier_groups.len() as u32,
            ));
            for group in &self.earlier_groups {
                vec_infallible(rmp::encode::write_str(&mut out, group));
            }
        }
        out
    }

    /// Reads what `RedisProtocol.ReadInvocation` reads; extra items are ignored,
    /// as there.
    pub fn decode(bytes: &Bytes) -> Result<Self> {
        let mut reader = Reader::new(bytes);
        let len = reader.array_len()?;
        if len < 2 {
            return Err(EnvelopeError::Malformed(format!(
                "an invocation has at least 2 items, this one {len}"
            )));
        }
        let excluded_len = reader.array_len()?;
        let mut excluded = Vec::with_capacity(excluded_len.min(1024) as usize);
        for _ in 0..excluded_len {
            excluded.push(reader.string()?);
        }
        let frames_len = reader.map_len()?;
        let mut frames = Vec::with_capacity(frames_len.min(8) as usize);
        for _ in 0..frames_len {
            let protocol = reader.string()?;
            let framed = reader.bin()?;
            frames.push((protocol, framed));
        }
        let mut envelope = InvocationEnvelope {
            excluded,
            frames,
            ..Default::default()
        };
        if len > 3 {
            let invocation_id = reader.optional_string()?;
            let return_channel = reader.optional_string()?;
            if let (Some(invocation_id), Some(return_channel)) = (invocation_id, return_channel)
                && !invocation_id.is_empty()
            {
                envelope.client_result = Some(ClientResult {
                    invocation_id,
                    return_channel,
                });
            }
        }
        if len > 4 {
            envelope.origin = reader.optional_string()?;
        }
        if len > 5 {
            let count = reader.array_len()?;
            for _ in 0..count {
                envelope.earlier_groups.push(reader.string()?);
            }
        }
        Ok(envelope)
    }
}

impl GroupCommand {
    /// `WriteGroupCommand`: `[id, server, action, group, connection]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.server.len() + self.group.len() + 32);
        vec_infallible(rmp::encode::write_array_len(&mut out, 5));
        vec_infallible(rmp::encode::write_uint(&mut out, u64::from(self.id)));
        vec_infallible(rmp::encode::write_str(&mut out, &self.server));
        let action = match self.action {
            GroupAction::Add => 1,
            GroupAction::Remove => 2,
        };
        vec_infallible(rmp::encode::write_uint(&mut out, action));
        vec_infallible(rmp::encode::write_str(&mut out, &self.group));
        vec_infallible(rmp::encode::write_str(&mut out, &self.connection));
        out
    }

    /// `ReadGroupCommand`.
    pub fn decode(bytes: &Bytes) -> Result<Self> {
        let mut reader = Reader::new(bytes);
        let id = reader.head(5, "a group command")?;
        let server = reader.string()?;
        let action = match reader.uint()? {
            1 => GroupAction::Add,
            2 => GroupAction::Remove,
            other => {
                return Err(EnvelopeError::Malformed(format!(
                    "unknown group action {other}"
                )));
            }
        };
        Ok(GroupCommand {
            id,
            server,
            action,
            group: reader.string()?,
            connection: reader.string()?,
        })
    }
}

/// A listing request between signal nodes (not part of ASP.NET Core's wire):
/// `[id, server, kind, group]`, kind 1 connections, 2 groups, 3 a group's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// The asking server's request id.
    pub id: u32,
    /// The asking server, which waits for the answers.
    pub server: String,
    /// What to list.
    pub query: ListQuery,
}

pub use signal_server::lifetime::ListQuery;

impl ListRequest {
    /// `[id, server, kind, group]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.server.len());
        vec_infallible(rmp::encode::write_array_len(&mut out, 4));
        vec_infallible(rmp::encode::write_uint(&mut out, u64::from(self.id)));
        vec_infallible(rmp::encode::write_str(&mut out, &self.server));
        let (kind, group) = match &self.query {
            ListQuery::Connections => (1, ""),
            ListQuery::Groups => (2, ""),
            ListQuery::GroupMembers(group) => (3, group.as_str()),
            _ => (0, ""),
        };
        vec_infallible(rmp::encode::write_uint(&mut out, kind));
        vec_infallible(rmp::encode::write_str(&mut out, group));
        out
    }

    /// Reads a request; an unknown kind is an error.
    pub fn decode(bytes: &Bytes) -> Result<Self> {
        let mut reader = Reader::new(bytes);
        let id = reader.head(4, "a list request")?;
        let server = reader.string()?;
        let kind = reader.uint()?;
        let group = reader.string()?;
        let query = match kind {
            1 => ListQuery::Connections,
            2 => ListQuery::Groups,
            3 => ListQuery::GroupMembers(group),
            other => {
                return Err(EnvelopeError::Malformed(format!(
                    "unknown list kind {other}"
                )));
            }
        };
        Ok(ListRequest { id, server, query })
    }
}

/// An answer to a [`ListRequest`]: `[id, [item, …]]`.
pub fn encode_list_reply(id: u32, items: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + items.iter().map(|i| i.len() + 2).sum::<usize>());
    vec_infallible(rmp::encode::write_array_len(&mut out, 2));
    vec_infallible(rmp::encode::write_uint(&mut out, u64::from(id)));
    vec_infallible(rmp::encode::write_array_len(&mut out, items.len() as u32));
    for item in items {
        vec_infallible(rmp::encode::write_str(&mut out, item));
    }
    out
}

/// Reads an answer to a [`ListRequest`].
pub fn decode_list_reply(bytes: &Bytes) -> Result<(u32, Vec<String>)> {
    let mut reader = Reader::new(bytes);
    let id = reader.head(2, "a list reply")?;
    let count = reader.array_len()?;
    let mut items = Vec::with_capacity(count.min(4096) as usize);
    for _ in 0..count {
        items.push(reader.string()?);
    }
    Ok((id, items))
}

pub use signal_server::relay::{PendingConnection, TransportRequest, TransportResponse};

/// A transport request relayed between signal nodes (not part of ASP.NET
/// Core's wire): `[id, server, kind, token, method, uri, {header: value}, body]`,
/// kind 1 to claim a pending connection, 2 to have its holder serve a request,
/// 3 to open a tunnel to a stateful connection's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayRequest {
    /// The asking server's request id.
    pub id: u32,
    /// The asking server.
    pub server: String,
    /// The connection token the request names.
    pub token: String,
    /// What is asked.
    pub action: RelayAction,
}

/// What a [`RelayRequest`] asks of the node holding the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayAction {
    /// Hand over the pending connection (kind 1).
    Claim,
    /// Serve this request (kind 2).
    Forward(TransportRequest),
    /// Take a tunnel as the connection's new WebSocket (kind 3).
    Tunnel,
}

/// A message through a tunnel (not part of ASP.NET Core's wire), on the
/// tunnel channel of the node it goes to: `[requester, id, kind, bytes]`,
/// kind 0 the end, 1 text, 2 binary. `requester` and `id` name the tunnel: the
/// node that opened it and its request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelFrame {
    /// The node that opened the tunnel.
    pub requester: String,
    /// Its request id.
    pub id: u32,
    /// The message, or `None` at the end of the tunnel.
    pub message: Option<signal_server::persistent::Message>,
}

impl TunnelFrame {
    /// The bytes on the tunnel channel.
    pub fn encode(&self) -> Vec<u8> {
        use signal_server::persistent::Message;
        let bytes = self.message.as_ref().map_or(&[][..], |m| m.as_bytes());
        let mut out = Vec::with_capacity(24 + self.requester.len() + bytes.len());
        vec_infallible(rmp::encode::write_array_len(&mut out, 4));
        vec_infallible(rmp::encode::write_str(&mut out, &self.requester));
        vec_infallible(rmp::encode::write_uint(&mut out, u64::from(self.id)));
        let kind = match &self.message {
            None => 0,
            Some(Message::Text(_)) => 1,
            Some(Message::Binary(_)) => 2,
        };
        vec_infallible(rmp::encode::write_uint(&mut out, kind));
        vec_infallible(rmp::encode::write_bin(&mut out, bytes));
        out
    }

    /// Reads a tunnel message.
    pub fn decode(bytes: &Bytes) -> Result<Self> {
        use signal_server::persistent::Message;
        let mut reader = Reader::new(bytes);
        if reader.array_len()? < 4 {
            return Err(EnvelopeError::Malformed(
                "a tunnel frame has 4 items".into(),
            ));
        }
        let requester = reader.string()?;
        let id = u32::try_from(reader.uint()?)
            .map_err(|_| EnvelopeError::Malformed("id too large".into()))?;
        let kind = reader.uint()?;
        let payload = reader.bin()?;
        let message = match kind {
            0 => None,
            1 => Some(Message::Text(payload.try_into().map_err(|_| {
                EnvelopeError::Malformed("a text message is not UTF-8".into())
            })?)),
            2 => Some(Message::Binary(payload)),
            other => {
                return Err(EnvelopeError::Malformed(format!(
                    "unknown tunnel kind {other}"
                )));
            }
        };
        Ok(TunnelFrame {
            requester,
            id,
            message,
        })
    }
}

/// What a node answers to a [`RelayRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayReply {
    /// Not held here (`[id, 0]`).
    NotHere,
    /// Handed over (`[id, 1, connection id, stateful, [[binary, bytes], …]]`).
    Claimed(PendingConnection),
    /// Held here; the response follows (`[id, 3, server]`).
    Accepted(String),
    /// Served (`[id, 2, status, {header: value}, body]`).
    Response(TransportResponse),
}

fn write_headers(out: &mut Vec<u8>, headers: &[(String, Bytes)]) {
    vec_infallible(rmp::encode::write_map_len(out, headers.len() as u32));
    for (name, value) in headers {
        vec_infallible(rmp::encode::write_str(out, name));
        vec_infallible(rmp::encode::write_bin(out, value));
    }
}

fn read_headers(reader: &mut Reader<'_>) -> Result<Vec<(String, Bytes)>> {
    let count = reader.map_len()?;
    let mut headers = Vec::with_capacity(count.min(64) as usize);
    for _ in 0..count {
        let name = reader.string()?;
        headers.push((name, reader.bin()?));
    }
    Ok(headers)
}

impl RelayRequest {
    /// The bytes on the relay channel.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + match &self.action {
                RelayAction::Forward(r) => r.body.len() + r.uri.len() + 256,
                _ => 0,
            },
        );
        vec_infallible(rmp::encode::write_array_len(&mut out, 8));
        vec_infallible(rmp::encode::write_uint(&mut out, u64::from(self.id)));
        vec_infallible(rmp::encode::write_str(&mut out, &self.server));
        match &self.action {
            RelayAction::Claim | RelayAction::Tunnel => {
                let kind = if self.action == RelayAction::Claim {
                    1
                } else {
                    3
                };
                vec_infallible(rmp::encode::write_uint(&mut out, kind));
                vec_infallible(rmp::encode::write_str(&mut out, &self.token));
                vec_infallible(rmp::encode::write_str(&mut out, ""));
                vec_infallible(rmp::encode::write_str(&mut out, ""));
                write_headers(&mut out, &[]);
                vec_infallible(rmp::encode::write_bin(&mut out, &[]));
            }
            RelayAction::Forward(request) => {
                vec_infallible(rmp::encode::write_uint(&mut out, 2));
                vec_infallible(rmp::encode::write_str(&mut out, &self.token));
                vec_infallible(rmp::encode::write_str(&mut out, &request.method));
                vec_infallible(rmp::encode::write_str(&mut out, &request.uri));
                write_headers(&mut out, &request.headers);
                vec_infallible(rmp::encode::write_bin(&mut out, &request.body));
            }
        }
        out
    }

    /// Reads a relayed request.
    pub fn decode(bytes: &Bytes) -> Result<Self> {
        let mut reader = Reader::new(bytes);
        let id = reader.head(8, "a relay request")?;
        let server = reader.string()?;
        let kind = reader.uint()?;
        let token = reader.string()?;
        let method = reader.string()?;
        let uri = reader.string()?;
        let headers = read_headers(&mut reader)?;
        let body = reader.bin()?;
        let action = match kind {
            1 => RelayAction::Claim,
            2 => RelayAction::Forward(TransportRequest {
                method,
                uri,
                headers,
                body,
            }),
            3 => RelayAction::Tunnel,
            other => {
                return Err(EnvelopeError::Malformed(format!(
                    "unknown relay kind {other}"
                )));
            }
        };
        Ok(RelayRequest {
            id,
            server,
            token,
            action,
        })
    }
}

impl RelayReply {
    /// The bytes of the answer to request `id`.
    pub fn encode(&self, id: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        match self {
            RelayReply::NotHere => {
                vec_infallible(rmp::encode::write_array_len(&mut out, 2));
                vec_infallible(rmp::encode::write_uint(&mut out, u64::from(id)));
                vec_infallible(rmp::encode::write_uint(&mut out, 0));
            }
            RelayReply::Claimed(pending) => {
                vec_infallible(rmp::encode::write_array_len(&mut out, 5));
                vec_infallible(rmp::encode::write_uint(&mut out, u64::from(id)));
                vec_infallible(rmp::encode::write_uint(&mut out, 1));
                vec_infallible(rmp::encode::write_str(&mut out, &pending.connection_id));
                vec_infallible(rmp::encode::write_bool(&mut out, pending.stateful));
                vec_infallible(rmp::encode::write_array_len(
                    &mut out,
                    pending.early.len() as u32,
                ));
                for message in &pending.early {
                    let binary = matches!(message, signal_server::persistent::Message::Binary(_));
                    vec_infallible(rmp::encode::write_array_len(&mut out, 2));
                    vec_infallible(rmp::encode::write_bool(&mut out, binary));
                    vec_infallible(rmp::encode::write_bin(&mut out, message.as_bytes()));
                }
            }
            RelayReply::Accepted(server) => {
                vec_infallible(rmp::encode::write_array_len(&mut out, 3));
                vec_infallible(rmp::encode::write_uint(&mut out, u64::from(id)));
                vec_infallible(rmp::encode::write_uint(&mut out, 3));
                vec_infallible(rmp::encode::write_str(&mut out, server));
            }
            RelayReply::Response(response) => {
                vec_infallible(rmp::encode::write_array_len(&mut out, 5));
                vec_infallible(rmp::encode::write_uint(&mut out, u64::from(id)));
                vec_infallible(rmp::encode::write_uint(&mut out, 2));
                vec_infallible(rmp::encode::write_uint(
                    &mut out,
                    u64::from(response.status),
                ));
                write_headers(&mut out, &response.headers);
                vec_infallible(rmp::encode::write_bin(&mut out, &response.body));
            }
        }
        out
    }

    /// Reads an answer: its request id and what it says.
    pub fn decode(bytes: &Bytes) -> Result<(u32, Self)> {
        let mut reader = Reader::new(bytes);
        let id = reader.head(2, "a relay reply")?;
        let reply = match reader.uint()? {
            0 => RelayReply::NotHere,
            1 => {
                let connection_id = reader.string()?;
                let stateful = reader.bool()?;
                let count = reader.array_len()?;
                let mut early = Vec::with_capacity(count.min(16) as usize);
                for _ in 0..count {
                    reader.array_len()?;
                    let binary = reader.bool()?;
                    let bytes = reader.bin()?;
                    early.push(if binary {
                        signal_server::persistent::Message::Binary(bytes)
                    } else {
                        signal_server::persistent::Message::Text(bytes.try_into().map_err(
                            |_| EnvelopeError::Malformed("a text message is not UTF-8".into()),
                        )?)
                    });
                }
                RelayReply::Claimed(PendingConnection {
                    connection_id,
                    stateful,
                    early,
                })
            }
            2 => {
                let status = u16::try_from(reader.uint()?)
                    .map_err(|_| EnvelopeError::Malformed("status too large".into()))?;
                let headers = read_headers(&mut reader)?;
                let body = reader.bin()?;
                RelayReply::Response(TransportResponse {
                    status,
                    headers,
                    body,
                })
            }
            3 => RelayReply::Accepted(reader.string()?),
            other => {
                return Err(EnvelopeError::Malformed(format!(
                    "unknown relay reply {other}"
                )));
            }
        };
        Ok((id, reply))
    }
}

/// `WriteAck`: `[id]`.
pub fn encode_ack(id: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(6);
    vec_infallible(rmp::encode::write_array_len(&mut out, 1));
    vec_infallible(rmp::encode::write_uint(&mut out, u64::from(id)));
    out
}

/// `ReadAck`.
pub fn decode_ack(bytes: &Bytes) -> Result<u32> {
    Reader::new(bytes).head(1, "an ack")
}

impl CompletionEnvelope {
    /// `WriteCompletionMessage`: `[protocol, bin]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.protocol.len() + self.framed.len());
        vec_infallible(rmp::encode::write_array_len(&mut out, 2));
        vec_infallible(rmp::encode::write_str(&mut out, &self.protocol));
        vec_infallible(rmp::encode::write_bin(&mut out, &self.framed));
        out
    }

    /// `ReadCompletion`.
    pub fn decode(bytes: &Bytes) -> Result<Self> {
        let mut reader = Reader::new(bytes);
        if reader.array_len()? < 2 {
            return Err(EnvelopeError::Malformed(
                "a completion has 2 items: protocol and message".into(),
            ));
        }
        Ok(CompletionEnvelope {
            protocol: reader.string()?,
            framed: reader.bin()?,
        })
    }
}

/// Reads MessagePack from shared bytes; `bin` items are slices of them, not copies.
struct Reader<'a> {
    bytes: &'a Bytes,
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a Bytes) -> Self {
        Reader { bytes, at: 0 }
    }

    fn rest(&self) -> &[u8] {
        &self.bytes[self.at..]
    }

    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>> {
        if self.rest().len() < n {
            return Err(EnvelopeError::Truncated);
        }
        let range = self.at..self.at + n;
        self.at += n;
        Ok(range)
    }

    fn marker(&mut self) -> Result<Marker> {
        let range = self.take(1)?;
        Ok(Marker::from_u8(self.bytes[range.start]))
    }

    fn be(&mut self, n: usize) -> Result<u64> {
        let range = self.take(n)?;
        Ok(self.bytes[range]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn array_len(&mut self) -> Result<u32> {
        match self.marker()? {
            Marker::FixArray(n) => Ok(u32::from(n)),
            Marker::Array16 => Ok(self.be(2)? as u32),
            Marker::Array32 => Ok(self.be(4)? as u32),
            other => Err(unexpected("an array", other)),
        }
    }

    fn map_len(&mut self) -> Result<u32> {
        match self.marker()? {
            Marker::FixMap(n) => Ok(u32::from(n)),
            Marker::Map16 => Ok(self.be(2)? as u32),
            Marker::Map32 => Ok(self.be(4)? as u32),
            other => Err(unexpected("a map", other)),
        }
    }

    /// Any non-negative integer, in any width (readers accept every width).
    fn uint(&mut self) -> Result<u64> {
        match self.marker()? {
            Marker::FixPos(n) => Ok(u64::from(n)),
            Marker::U8 => self.be(1),
            Marker::U16 => self.be(2),
            Marker::U32 => self.be(4),
            Marker::U64 => self.be(8),
            Marker::I8 => non_negative(self.be(1)? as u8 as i8 as i64),
            Marker::I16 => non_negative(self.be(2)? as u16 as i16 as i64),
            Marker::I32 => non_negative(self.be(4)? as u32 as i32 as i64),
            Marker::I64 => non_negative(self.be(8)? as i64),
            other => Err(unexpected("an integer", other)),
        }
    }

    fn str_len(&mut self, marker: Marker) -> Result<Option<usize>> {
        Ok(Some(match marker {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => self.be(1)? as usize,
            Marker::Str16 => self.be(2)? as usize,
            Marker::Str32 => self.be(4)? as usize,
            Marker::Null => return Ok(None),
            other => return Err(unexpected("a string", other)),
        }))
    }

    fn optional_string(&mut self) -> Result<Option<String>> {
        let marker = self.marker()?;
        let Some(len) = self.str_len(marker)? else {
            return Ok(None);
        };
        let range = self.take(len)?;
        String::from_utf8(self.bytes[range].to_vec())
            .map(Some)
            .map_err(|_| EnvelopeError::Malformed("a string is not UTF-8".into()))
    }

    /// A string; nil reads as empty, as `ReadString` gives null there.
    fn string(&mut self) -> Result<String> {
        Ok(self.optional_string()?.unwrap_or_default())
    }

    /// The start of a message: an array of at least `min` items (else
    /// `what` is malformed), then its request id.
    fn head(&mut self, min: u32, what: &str) -> Result<u32> {
        let len = self.array_len()?;
        if len < min {
            return Err(EnvelopeError::Malformed(format!(
                "{what} has at least {min} items, this one {len}"
            )));
        }
        let id = self.uint()?;
        u32::try_from(id).map_err(|_| EnvelopeError::Malformed(format!("id {id} is too large")))
    }

    fn bool(&mut self) -> Result<bool> {
        match self.marker()? {
            Marker::True => Ok(true),
            Marker::False => Ok(false),
            other => Err(unexpected("a boolean", other)),
        }
    }

    fn bin(&mut self) -> Result<Bytes> {
        let len = match self.marker()? {
            Marker::Bin8 => self.be(1)? as usize,
            Marker::Bin16 => self.be(2)? as usize,
            Marker::Bin32 => self.be(4)? as usize,
            other => return Err(unexpected("binary data", other)),
        };
        let range = self.take(len)?;
        Ok(self.bytes.slice(range))
    }
}

fn non_negative(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| EnvelopeError::Malformed(format!("{value} is negative")))
}

fn unexpected(wanted: &str, found: Marker) -> EnvelopeError {
    EnvelopeError::Malformed(format!("expected {wanted}, found {found:?}"))
}

#[cfg(test)]
mod tests {
    //! The frames below are written from the fact sheet's byte layouts of
    //! ASP.NET Core's `RedisProtocol`, not from this module's writer.

    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    const JSON: &[u8] = b"{\"type\":1,\"target\":\"m\",\"arguments\":[1]}\x1e";
    // Varint length 9, then [1, {}, nil, "m", [1], []] as msgpack.
    const MSGPACK: &[u8] = b"\x09\x96\x01\x80\xc0\xa1m\x91\x01\x90";

    fn both() -> Vec<(String, Bytes)> {
        vec![
            ("json".into(), Bytes::from_static(JSON)),
            ("messagepack".into(), Bytes::from_static(MSGPACK)),
        ]
    }

    #[test]
    fn an_invocation_without_exclusions_is_asp_net_cores_bytes() {
        let envelope = InvocationEnvelope {
            frames: both(),
            ..Default::default()
        };
        let mut expected = vec![0x92, 0x90, 0x82, 0xa4];
        expected.extend_from_slice(b"json");
        expected.extend_from_slice(&[0xc4, JSON.len() as u8]);
        expected.extend_from_slice(JSON);
        expected.push(0xab);
        expected.extend_from_slice(b"messagepack");
        expected.extend_from_slice(&[0xc4, MSGPACK.len() as u8]);
        expected.extend_from_slice(MSGPACK);
        let bytes = envelope.encode();
        assert_eq!(hex(&bytes), hex(&expected));
        assert_eq!(
            InvocationEnvelope::decode(&Bytes::from(bytes)).unwrap(),
            envelope
        );
    }

    #[test]
    fn exclusions_and_a_client_result() {
        let envelope = InvocationEnvelope {
            excluded: vec!["a".into(), "bc".into()],
            frames: vec![("json".into(), Bytes::from_static(b"{}\x1e"))],
            client_result: Some(ClientResult {
                invocation_id: "id".into(),
                return_channel: "H:internal:return:s".into(),
            }),
            ..Default::default()
        };
        let mut expected = vec![0x94, 0x92, 0xa1, b'a', 0xa2, b'b', b'c', 0x81, 0xa4];
        expected.extend_from_slice(b"json");
        expected.extend_from_slice(&[0xc4, 3, b'{', b'}', 0x1e, 0xa2, b'i', b'd', 0xb3]);
        expected.extend_from_slice(b"H:internal:return:s");
        let bytes = envelope.encode();
        assert_eq!(hex(&bytes), hex(&expected));
        assert_eq!(
            InvocationEnvelope::decode(&Bytes::from(bytes)).unwrap(),
            envelope
        );
    }

    #[test]
    fn the_origin_rides_after_two_nils() {
        let envelope = InvocationEnvelope {
            frames: vec![("json".into(), Bytes::from_static(b"{}\x1e"))],
            origin: Some("n1".into()),
            ..Default::default()
        };
        let mut expected = vec![0x95, 0x90, 0x81, 0xa4];
        expected.extend_from_slice(b"json");
        expected.extend_from_slice(&[0xc4, 3, b'{', b'}', 0x1e, 0xc0, 0xc0, 0xa2, b'n', b'1']);
        let bytes = envelope.encode();
        assert_eq!(hex(&bytes), hex(&expected));
        let read = InvocationEnvelope::decode(&Bytes::from(bytes)).unwrap();
        assert_eq!(read, envelope);
        assert_eq!(read.client_result, None);
    }

    #[test]
    fn earlier_groups_ride_sixth() {
        let envelope = InvocationEnvelope {
            frames: vec![("json".into(), Bytes::from_static(b"{}\x1e"))],
            origin: Some("n1".into()),
            earlier_groups: vec!["a".into()],
            ..Default::default()
        };
        let mut expected = vec![0x96, 0x90, 0x81, 0xa4];
        expected.extend_from_slice(b"json");
        expected.extend_from_slice(&[0xc4, 3, b'{', b'}', 0x1e, 0xc0, 0xc0, 0xa2, b'n', b'1']);
        expected.extend_from_slice(&[0x91, 0xa1, b'a']);
        let bytes = envelope.encode();
        assert_eq!(hex(&bytes), hex(&expected));
        assert_eq!(
            InvocationEnvelope::decode(&Bytes::from(bytes)).unwrap(),
            envelope
        );
    }

    #[test]
    fn a_group_command_and_its_ack() {
        let command = GroupCommand {
            id: 1,
            server: "srv".into(),
            action: GroupAction::Add,
            group: "g".into(),
            connection: "abc".into(),
        };
        let expected = b"\x95\x01\xa3srv\x01\xa1g\xa3abc";
        assert_eq!(hex(&command.encode()), hex(expected));
        assert_eq!(
            GroupCommand::decode(&Bytes::from_static(expected)).unwrap(),
            command
        );
        assert_eq!(encode_ack(1), vec![0x91, 0x01]);
        assert_eq!(encode_ack(300), vec![0x91, 0xcd, 0x01, 0x2c]);
        assert_eq!(
            decode_ack(&Bytes::from_static(b"\x91\xcd\x01\x2c")).unwrap(),
            300
        );
        // A long server name takes str8 (0xd9), as MessagePack-CSharp writes it.
        let long = GroupCommand {
            server: "x".repeat(40),
            action: GroupAction::Remove,
            ..command
        };
        let bytes = long.encode();
        assert_eq!(&bytes[..4], &[0x95, 0x01, 0xd9, 40]);
        assert_eq!(bytes[44], 0x02);
    }

    #[test]
    fn a_completion_on_its_way_back() {
        let envelope = CompletionEnvelope {
            protocol: "json".into(),
            framed: Bytes::from_static(b"{\"type\":3}\x1e"),
        };
        let mut expected = vec![0x92, 0xa4];
        expected.extend_from_slice(b"json");
        expected.extend_from_slice(&[0xc4, 11]);
        expected.extend_from_slice(b"{\"type\":3}\x1e");
        assert_eq!(hex(&envelope.encode()), hex(&expected));
        assert_eq!(
            CompletionEnvelope::decode(&Bytes::from(expected)).unwrap(),
            envelope
        );
    }

    #[test]
    fn list_requests_and_replies_round_trip() {
        let request = ListRequest {
            id: 7,
            server: "s".into(),
            query: ListQuery::GroupMembers("g".into()),
        };
        assert_eq!(request.encode(), b"\x94\x07\xa1s\x03\xa1g");
        assert_eq!(
            ListRequest::decode(&Bytes::from(request.encode())).unwrap(),
            request
        );
        let reply = encode_list_reply(7, &["a".into(), "b".into()]);
        assert_eq!(reply, b"\x92\x07\x92\xa1a\xa1b");
        assert_eq!(
            decode_list_reply(&Bytes::from(reply)).unwrap(),
            (7, vec!["a".to_owned(), "b".to_owned()])
        );
        assert!(ListRequest::decode(&Bytes::from_static(b"\x94\x07\xa1s\x09\xa1g")).is_err());
        assert!(decode_list_reply(&Bytes::from_static(b"\x92\x07\x92\xa1a")).is_err());
    }

    #[test]
    fn relay_requests_and_replies_round_trip() {
        use signal_server::persistent::Message;
        let claim = RelayRequest {
            id: 1,
            server: "s".into(),
            token: "t".into(),
            action: RelayAction::Claim,
        };
        assert_eq!(
            RelayRequest::decode(&Bytes::from(claim.encode())).unwrap(),
            claim
        );
        let forward = RelayRequest {
            id: 2,
            server: "s".into(),
            token: "t".into(),
            action: RelayAction::Forward(TransportRequest {
                method: "POST".into(),
                uri: "/?id=t".into(),
                headers: vec![("content-type".into(), Bytes::from_static(b"text/plain"))],
                body: Bytes::from_static(b"{}\x1e"),
            }),
        };
        assert_eq!(
            RelayRequest::decode(&Bytes::from(forward.encode())).unwrap(),
            forward
        );
        for reply in [
            RelayReply::NotHere,
            RelayReply::Accepted("n1".into()),
            RelayReply::Claimed(PendingConnection {
                connection_id: "c".into(),
                stateful: true,
                early: vec![
                    Message::Text("hi".into()),
                    Message::Binary(Bytes::from_static(b"\x00\xff")),
                ],
            }),
            RelayReply::Response(TransportResponse {
                status: 204,
                headers: vec![],
                body: Bytes::new(),
            }),
        ] {
            assert_eq!(
                RelayReply::decode(&Bytes::from(reply.encode(9))).unwrap(),
                (9, reply)
            );
        }
        let tunnel = RelayRequest {
            action: RelayAction::Tunnel,
            ..claim
        };
        assert_eq!(
            RelayRequest::decode(&Bytes::from(tunnel.encode())).unwrap(),
            tunnel
        );
        for message in [
            None,
            Some(Message::Text("{}\x1e".into())),
            Some(Message::Binary(Bytes::from_static(b"\x01\x02"))),
        ] {
            let frame = TunnelFrame {
                requester: "b".into(),
                id: 4,
                message,
            };
            assert_eq!(
                TunnelFrame::decode(&Bytes::from(frame.encode())).unwrap(),
                frame
            );
        }
        assert!(
            TunnelFrame::decode(&Bytes::from_static(b"\x94\xa1b\x04\x01\xc4\x01\xff")).is_err()
        );
        assert!(RelayReply::decode(&Bytes::from_static(b"\x92\x01\x07")).is_err());
        assert!(RelayRequest::decode(&Bytes::from_static(b"\x98\x01")).is_err());
    }

    #[test]
    fn readers_accept_any_integer_width_and_extra_items() {
        // Id 1 as uint32, action as int8, and a sixth item.
        let bytes = b"\x96\xce\x00\x00\x00\x01\xa1s\xd0\x02\xa1g\xa1c\xc0";
        let command = GroupCommand::decode(&Bytes::from_static(bytes)).unwrap();
        assert_eq!(command.id, 1);
        assert_eq!(command.action, GroupAction::Remove);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\x92",
            b"\x92\x90",
            b"\x92\x90\x81\xa4json\xc4\x10{}",
            b"\x91\x90",
            b"\xc1",
            b"\x92\x91\x01\x80",
            b"\x92\x90\x81\xa4json\xa2{}",
            b"\x92\x90\x81\xa2\xff\xfe\xc4\x00",
        ] {
            let bytes = Bytes::copy_from_slice(bytes);
            assert!(InvocationEnvelope::decode(&bytes).is_err(), "{bytes:?}");
        }
        assert_eq!(
            GroupCommand::decode(&Bytes::from_static(b"\x95\x01\xa1s\x03\xa1g\xa1c"))
                .unwrap_err()
                .to_string(),
            "the message is malformed: unknown group action 3"
        );
        assert_eq!(
            decode_ack(&Bytes::from_static(b"\x91")).unwrap_err(),
            EnvelopeError::Truncated
        );
    }
}
