//! The caller proxy's typed API, over any invoker.
#![deny(warnings)]

use futures_util::StreamExt;
use signal::protocol::{InvokeError, Invoker};
use signal::{HubError, HubStream};

#[signal::hub]
trait Calc {
    async fn add(&self, a: i64, b: i64) -> i64;
    async fn fail(&self) -> Result<String, HubError>;
    async fn fire(&self, note: String);
    async fn done(&self) -> Result<(), HubError>;
    async fn count(&self, to: u32) -> HubStream<u32>;
}

async fn use_proxy<I: Invoker>(proxy: CalcProxy<I>) -> Result<(), InvokeError> {
    let sum: i64 = proxy.add(1, 2).await?;
    let text: String = proxy.fail().await?;
    let (): () = proxy.fire(text).await?;
    let (): () = proxy.done().await?;
    let mut items = proxy.count(sum as u32).await?;
    while let Some(item) = items.next().await {
        let _: u32 = item?;
    }
    Ok(())
}

async fn in_process(hub: signal::InProcess<CalcServer<C>>) -> Result<(), InvokeError> {
    let connection = hub.connect().await?;
    use_proxy(CalcProxy::new(&connection)).await?;
    use_proxy(CalcProxy::new(std::sync::Arc::new(connection))).await
}

struct C;

impl Calc for C {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
    async fn fail(&self) -> Result<String, HubError> {
        Err(HubError::new("no"))
    }
    async fn fire(&self, _note: String) {}
    async fn done(&self) -> Result<(), HubError> {
        Ok(())
    }
    async fn count(&self, to: u32) -> HubStream<u32> {
        Box::pin(futures_util::stream::iter((0..to).map(Ok)))
    }
}

fn main() {
    let _ = in_process(C.into_hub().in_process());
}
