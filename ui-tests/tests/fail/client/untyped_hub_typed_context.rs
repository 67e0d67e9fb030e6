use signal::Context;

#[signal::client]
pub trait ChatClient {
    async fn receive(&self, text: String);
}

#[signal::hub]
pub trait Chat {
    async fn send(&self, cx: &Context<dyn ChatClient>, text: String);
}

fn main() {}
