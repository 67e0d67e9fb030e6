//! The negotiate document: `POST {hub}/negotiate?negotiateVersion=1`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A transport, as named in negotiate and by the clients' `HttpTransportType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransportType {
    /// One WebSocket for both directions.
    WebSockets,
    /// An event stream down, POSTs up.
    ServerSentEvents,
    /// Held GETs down, POSTs up.
    LongPolling,
}

impl TransportType {
    /// Every transport, in the order a server prefers them.
    pub const ALL: [TransportType; 3] = [
        TransportType::WebSockets,
        TransportType::ServerSentEvents,
        TransportType::LongPolling,
    ];

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportType::WebSockets => "WebSockets",
            TransportType::ServerSentEvents => "ServerSentEvents",
            TransportType::LongPolling => "LongPolling",
        }
    }

    /// The transfer formats the transport can carry.
    pub fn transfer_formats(self) -> &'static [TransferFormat] {
        match self {
            TransportType::ServerSentEvents => &[TransferFormat::Text],
            _ => &[TransferFormat::Text, TransferFormat::Binary],
        }
    }
}

impl fmt::Display for TransportType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transport name that is none of `WebSockets`, `ServerSentEvents`, `LongPolling`.
#[derive(Debug, thiserror::Error)]
#[error("unknown transport '{0}'; expected one of WebSockets, ServerSentEvents, LongPolling")]
pub struct UnknownTransport(pub String);

impl FromStr for TransportType {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TransportType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownTransport(s.to_owned()))
    }
}

/// A transfer format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferFormat {
    /// UTF-8 text (the JSON protocol).
    Text,
    /// Bytes (MessagePack).
    Binary,
}

impl TransferFormat {
    /// The name used on the wire (`Text`, `Binary`).
    pub fn as_str(self) -> &'static str {
        match self {
            TransferFormat::Text => "Text",
            TransferFormat::Binary => "Binary",
        }
    }
}

impl fmt::Display for TransferFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `availableTransports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportDescription {
    /// The transport.
    pub transport: TransportType,
    /// What it can carry.
    pub transfer_formats: Vec<TransferFormat>,
}

impl From<TransportType> for TransportDescription {
    fn from(transport: TransportType) -> Self {
        TransportDescription {
            transport,
            transfer_formats: transport.transfer_formats().to_vec(),
        }
    }
}

/// The negotiate answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NegotiateResponse {
    /// The public connection id.
    pub connection_id: String,
    /// The secret that opens transports (absent for negotiate version 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_token: Option<String>,
    /// The negotiate version the server speaks.
    pub negotiate_version: u32,
    /// Transports in the server's order of preference.
    pub available_transports: Vec<TransportDescription>,
    /// Whether the connection may use stateful reconnect.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_stateful_reconnect: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate_shape() {
        let response = NegotiateResponse {
            connection_id: "id".into(),
            connection_token: Some("token".into()),
            negotiate_version: 1,
            available_transports: vec![
                TransportType::WebSockets.into(),
                TransportType::ServerSentEvents.into(),
            ],
            use_stateful_reconnect: false,
        };
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"connectionId":"id","connectionToken":"token","negotiateVersion":1,"availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]},{"transport":"ServerSentEvents","transferFormats":["Text"]}]}"#
        );
    }

    #[test]
    fn transport_names() {
        assert_eq!(
            "longpolling".parse::<TransportType>().unwrap(),
            TransportType::LongPolling
        );
        assert!("carrier-pigeon".parse::<TransportType>().is_err());
    }
}
