#[signal::hub(client = ChatClinet)]
pub trait Chat {
    async fn send(&self, text: String);
}

fn main() {}
