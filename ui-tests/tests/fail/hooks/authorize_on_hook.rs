#[signal::hub]
pub trait Chat {
    async fn send(&self, text: String);
    #[signal::authorize]
    async fn on_connected(&self);
}

fn main() {}
