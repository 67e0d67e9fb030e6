#[signal::client(name = "Chat")]
pub trait ChatClient {
    async fn receive(&self, text: String);
}

fn main() {}
