// The type is used by the dispatch, the proxy and the descriptor: one error.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Message {
    text: String,
}

#[signal::hub]
pub trait Chat {
    async fn send(&self, message: Message);
}

fn main() {}
