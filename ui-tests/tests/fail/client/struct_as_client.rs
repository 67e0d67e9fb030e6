pub struct ChatClient;

#[signal::hub(client = ChatClient)]
pub trait Chat {
    async fn send(&self, text: String);
}

fn main() {}
