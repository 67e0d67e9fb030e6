//! 2.x Persistent Connections: a raw connection handler of the connection
//! layer, reached from `$.connection('/path')`. Each 2.x connection runs the
//! handler over a [`Duplex`] of channels, so one handler (and one registry of
//! groups and users) serves Core and 2.x clients alike.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::request::Parts;
use tokio::sync::mpsc;

use super::connection::LegacyConnection;
use super::{LegacyTransport, Shared, end};
use crate::connection::{Duplex, Handler, Start};
use crate::frame::Outbound;

/// A raw connection handler as a 2.x endpoint runs it.
pub(crate) struct RawEndpoint {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) write_timeout: Duration,
}

impl RawEndpoint {
    /// Starts the handler for a connection (on its `/start`).
    pub(crate) fn start(
        &self,
        shared: Arc<Shared>,
        connection: Arc<LegacyConnection>,
        transport: LegacyTransport,
        parts: Parts,
    ) {
        let (incoming_tx, incoming_rx) = mpsc::channel(16);
        *connection.raw.lock().expect("raw lock") = Some(incoming_tx);
        let (outgoing_tx, outgoing_rx) = mpsc::channel::<Outbound>(64);
        let duplex = Duplex::channel(incoming_rx, outgoing_tx, self.write_timeout);
        let start = Start {
            id: connection.id.clone(),
            token: None,
            user: connection.user.clone(),
            transport: transport.core(),
            remote: None,
            stateful: false,
            early: Vec::new(),
            request: Some(crate::connection::keep_request(parts)),
        };
        tokio::spawn(pump_messages(connection.clone(), outgoing_rx));
        let handler = self.handler.clone();
        tokio::spawn(async move {
            handler.run(start, duplex).await;
            // The handler is done with the connection: so is the client.
            end(&shared, &connection, false).await;
        });
    }
}

/// Moves what the handler writes into the connection's replay buffer, each
/// message as the JSON value 2.x clients receive: text as a string, bytes as
/// a base64 string.
async fn pump_messages(connection: Arc<LegacyConnection>, mut outgoing: mpsc::Receiver<Outbound>) {
    while let Some(frame) = outgoing.recv().await {
        let json = match frame.text() {
            Some(text) => serde_json::to_string(text.as_str()),
            None => serde_json::to_string(
                &base64::engine::general_purpose::STANDARD.encode(frame.as_bytes()),
            ),
        }
        .expect("strings serialize");
        connection.push(Bytes::from(json));
    }
}
