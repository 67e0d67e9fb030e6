//! Who a connection is: its public id, and the secret token that opens its
//! transports.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use rand::RngCore;

/// 16 random bytes in URL-safe base64: 22 characters.
fn random_id() -> Arc<str> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    // Encoded on the stack: the only allocation is the shared string's.
    let mut text = [0u8; 22];
    let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(bytes, &mut text)
        .expect("16 bytes are 22 characters of base64");
    Arc::from(std::str::from_utf8(&text[..written]).expect("base64 is ASCII"))
}

/// The public id of a connection: what other code addresses it by.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(Arc<str>);

impl ConnectionId {
    pub(crate) fn random() -> Self {
        ConnectionId(random_id())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for ConnectionId {
    fn from(s: &str) -> Self {
        ConnectionId(s.into())
    }
}

impl From<String> for ConnectionId {
    fn from(s: String) -> Self {
        ConnectionId(s.into())
    }
}

impl AsRef<str> for ConnectionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The secret that opens a negotiated connection's transports; never shown to
/// other connections, never logged.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct ConnectionToken(Arc<str>);

impl ConnectionToken {
    pub(crate) fn random() -> Self {
        ConnectionToken(random_id())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ConnectionToken {
    fn from(s: &str) -> Self {
        ConnectionToken(s.into())
    }
}

impl fmt::Debug for ConnectionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectionToken(..)")
    }
}
