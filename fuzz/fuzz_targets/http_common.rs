//! What the two HTTP targets share: the hub they serve, the runtime their
//! requests run on, and percent-encoding for the queries they build.

use std::sync::OnceLock;

use signal::{Context, HubError};

/// What the hub calls on its clients (through the generated proxy, so the
/// trait's own method is never called).
#[allow(dead_code)]
#[signal::client]
pub trait FuzzClient {
    async fn message(&self, text: String);
}

#[signal::hub(client = FuzzClient)]
pub trait Fuzz {
    async fn echo(&self, text: String) -> String;
    async fn add(&self, a: i64, b: i64) -> i64;
    async fn broadcast(&self, cx: &Context<dyn FuzzClient>, text: String) -> Result<(), HubError>;
    async fn join(&self, cx: &Context<dyn FuzzClient>, group: String) -> Result<(), HubError>;
    async fn count(&self, n: u8) -> signal::HubStream<u8>;
}

pub struct FuzzHub;

impl Fuzz for FuzzHub {
    async fn echo(&self, text: String) -> String {
        text
    }

    async fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    async fn broadcast(&self, cx: &Context<dyn FuzzClient>, text: String) -> Result<(), HubError> {
        Ok(cx.clients().all().message(text).await?)
    }

    async fn join(&self, cx: &Context<dyn FuzzClient>, group: String) -> Result<(), HubError> {
        Ok(cx.groups().add(cx.connection_id().clone(), &group).await?)
    }

    async fn count(&self, n: u8) -> signal::HubStream<u8> {
        Box::pin(futures_util::stream::iter((0..n.min(8)).map(Ok)))
    }
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

/// `text` percent-encoded for a query or a form.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
