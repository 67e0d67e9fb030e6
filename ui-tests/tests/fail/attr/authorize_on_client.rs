#[signal::client]
pub trait Notifier {
    #[signal::authorize]
    async fn notify(&self, text: String);
}

fn main() {}
