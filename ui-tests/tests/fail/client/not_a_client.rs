pub trait ChatClient {
    fn receive(&self, text: String);
}

#[signal::hub(client = ChatClient)]
pub trait Chat {
    async fn send(&self, text: String);
}

fn main() {}
