use signal::Context;

#[signal::client]
pub trait ChatClient {
    async fn receive_message(&self, user: String, text: String);
}

#[signal::hub(client = ChatClient)]
pub trait Chat {
    async fn send(&self, cx: &Context<dyn ChatClient>, user: String, length: u32);
}

struct C;

impl Chat for C {
    async fn send(&self, cx: &Context<dyn ChatClient>, user: String, length: u32) {
        let _ = cx.clients().all().receive_message(user, length).await;
    }
}

fn main() {}
