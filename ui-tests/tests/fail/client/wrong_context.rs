use signal::Context;

#[signal::client]
pub trait ChatClient {
    async fn receive(&self, text: String);
}

#[signal::hub(client = ChatClient)]
pub trait Chat {
    async fn send(&self, cx: &Context, text: String);
}

fn main() {}
