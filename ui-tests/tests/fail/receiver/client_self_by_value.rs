#[signal::client]
pub trait Screen {
    async fn show(self, text: String);
}

fn main() {}
