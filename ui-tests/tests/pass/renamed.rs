//! Renames with `#[method]` (the trait macro reads it by name), raw identifiers, and client-only
//! shapes.
#![deny(warnings)]

#[signal::client]
pub trait Notifier {
    #[method(name = "Notify")]
    async fn notify(&self, r#type: String);
    fn sync_result(&self) -> u32;
}

#[signal::hub(client = Notifier)]
pub trait Service {
    #[signal::method(name = "type")]
    async fn r#type(&self, cx: &signal::Context<dyn Notifier>) -> u32;
    async fn get_2d_point(&self) -> (i32, i32);
}

struct S;

impl Service for S {
    async fn r#type(&self, cx: &signal::Context<dyn Notifier>) -> u32 {
        let _ = cx.clients().others().notify("x".into()).await;
        cx.clients().caller().sync_result().await.unwrap_or(0)
    }

    async fn get_2d_point(&self) -> (i32, i32) {
        (1, 2)
    }
}

fn main() {
    let _ = S.into_hub();
    let d = <dyn Service>::descriptor();
    assert_eq!(d.methods[0].name, "type");
    assert_eq!(d.methods[0].wire_name, "type");
    assert_eq!(d.methods[1].wire_name, "get2dPoint");
    let client = d.client.unwrap();
    assert_eq!(client.methods[0].wire_name, "Notify");
    assert_eq!(client.methods[0].parameters[0].name, "type");
    assert_eq!(
        client.methods[1].kind,
        signal::protocol::MethodKind::ClientResult
    );
}
