//! The handshake: the client's first record names the hub protocol and its version;
//! the server answers `{}` or `{"error": …}`.

use serde::{Deserialize, Serialize};

use crate::protocol::framing::RECORD_SEPARATOR;

/// The client's handshake request: `{"protocol":"json","version":1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeRequest {
    /// The hub protocol's name (`json`, `messagepack`).
    pub protocol: String,
    /// The hub protocol's version.
    pub version: u32,
}

/// A handshake request could not be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "the handshake request is malformed: {0}; expected {{\"protocol\":\"json\",\"version\":1}}"
)]
pub struct HandshakeError(#[from] serde_json::Error);

impl HandshakeRequest {
    /// Reads a handshake record (without its separator).
    pub fn parse(record: &[u8]) -> Result<Self, HandshakeError> {
        Ok(serde_json::from_slice(record)?)
    }

    /// Encodes the request as a record, as a client sends it.
    pub fn to_record(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).expect("a handshake request always serializes");
        out.push(RECORD_SEPARATOR);
        out
    }
}

/// The server's handshake answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HandshakeResponse {
    /// Why the handshake failed; absent on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl HandshakeResponse {
    /// A successful handshake: `{}`.
    pub fn ok() -> Self {
        HandshakeResponse { error: None }
    }

    /// A failed handshake carrying `error`.
    pub fn error(error: impl Into<String>) -> Self {
        HandshakeResponse {
            error: Some(error.into()),
        }
    }

    /// Encodes the response as a record.
    pub fn to_record(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).expect("a handshake response always serializes");
        out.push(RECORD_SEPARATOR);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response() {
        let request = HandshakeRequest::parse(br#"{"protocol":"json","version":1}"#).unwrap();
        assert_eq!(request.protocol, "json");
        assert_eq!(request.version, 1);
        assert_eq!(HandshakeResponse::ok().to_record(), b"{}\x1e");
        assert_eq!(
            HandshakeResponse::error("nope").to_record(),
            b"{\"error\":\"nope\"}\x1e"
        );
        assert!(HandshakeRequest::parse(br#"{"type":1}"#).is_err());
    }
}
