//! A hub without a client contract: plain `&Context` and untyped sends; hooks
//! that are sync, without context, or declared without a body.
#![deny(warnings, missing_docs)]

use signal::protocol::Arguments;
use signal::{Context, HubError, Target};

/// A hub whose clients get untyped calls.
#[signal::hub]
pub trait Untyped {
    /// Broadcasts `text` as `notify(text)`.
    async fn broadcast(&self, cx: &Context, text: String) -> Result<(), HubError>;
    /// Does nothing, synchronously.
    fn ping(&self);
    /// No context, no body.
    fn on_connected(&self);
    /// The error only.
    async fn on_disconnected(&self, error: Option<&str>);
}

struct Impl;

impl Untyped for Impl {
    async fn broadcast(&self, cx: &Context, text: String) -> Result<(), HubError> {
        let args = Arguments::from_values([text]);
        cx.clients().all().send("notify", args).await?;
        Ok(())
    }

    fn ping(&self) {}

    async fn on_disconnected(&self, error: Option<&str>) {
        let _ = error;
    }
}

/// Hooks are optional, and an empty hub is a hub.
#[signal::hub]
pub trait Empty {}

struct Nothing;
impl Empty for Nothing {}

fn main() {
    let hub: signal::Hub<UntypedServer<Impl>> = Impl.into_hub();
    let _ = hub.handle();
    let descriptor = <dyn Untyped>::descriptor();
    assert!(descriptor.client.is_none());
    assert_eq!(descriptor.methods.len(), 2);
    assert_eq!(
        descriptor.methods[1].kind,
        signal::protocol::MethodKind::FireAndForget
    );
    assert_eq!(
        descriptor.methods[0].kind,
        signal::protocol::MethodKind::Unary
    );
    let _ = Nothing.into_hub();
    assert!(<dyn Empty>::descriptor().methods.is_empty());
}
