use signal::Context;

#[signal::client]
pub trait ChatClient {
    async fn receive_message(&self, text: String);
}

#[signal::hub(client = ChatClient)]
pub trait Chat {
    async fn send(&self, cx: &Context<dyn ChatClient>, text: String);
}

struct C;

impl Chat for C {
    async fn send(&self, cx: &Context<dyn ChatClient>, text: String) {
        let _ = cx.clients().all().recieve_message(text).await;
    }
}

fn main() {}
