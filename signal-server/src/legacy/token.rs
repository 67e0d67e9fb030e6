//! The 2.x connection token and groups token: opaque to the client, signed
//! with a key the server holds (HMAC-SHA256), so a forged or altered token is
//! refused and nodes that share the key accept each other's tokens.
//!
//! Format: `base64url(payload) "." base64url(HMAC(key, purpose "\0" payload))`.
//! The purpose keeps one kind of token from passing for the other.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a token is for; part of what is signed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose {
    /// `<connectionId>:<user>`.
    Connection,
    /// `<connectionId>:<JSON array of qualified group names>`.
    Groups,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Connection => b"SignalR.ConnectionToken",
            Purpose::Groups => b"SignalR.Groups.v1.1",
        }
    }
}

/// Signs and opens tokens with one key.
#[derive(Clone)]
pub(crate) struct Protector {
    key: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for Protector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Protector(..)")
    }
}

impl Protector {
    /// A protector with `key` (any length; 32 random bytes is plenty).
    pub(crate) fn new(key: &[u8]) -> Self {
        Protector { key: key.into() }
    }

    /// A protector with a random key: tokens are valid on this process only.
    pub(crate) fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Protector::new(&key)
    }

    fn mac(&self, purpose: Purpose, payload: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(purpose.label());
        mac.update(b"\0");
        mac.update(payload);
        mac
    }

    /// The token carrying `payload`.
    pub(crate) fn protect(&self, purpose: Purpose, payload: &str) -> String {
        let tag = self
            .mac(purpose, payload.as_bytes())
            .finalize()
            .into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The payload of `token`, if this key signed it for `purpose`.
    pub(crate) fn unprotect(&self, purpose: Purpose, token: &str) -> Option<String> {
        let (payload, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        // verify_slice compares in constant time.
        self.mac(purpose, &payload).verify_slice(&tag).ok()?;
        String::from_utf8(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_open_only_with_their_key_and_purpose() {
        let a = Protector::new(b"key a");
        let token = a.protect(Purpose::Connection, "id:bob");
        assert_eq!(
            a.unprotect(Purpose::Connection, &token).as_deref(),
            Some("id:bob")
        );
        assert_eq!(a.unprotect(Purpose::Groups, &token), None);
        assert_eq!(
            Protector::new(b"key b").unprotect(Purpose::Connection, &token),
            None
        );
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("other:bob"),
            token.split_once('.').unwrap().1
        );
        assert_eq!(a.unprotect(Purpose::Connection, &forged), None);
        assert_eq!(a.unprotect(Purpose::Connection, "garbage"), None);
    }
}
