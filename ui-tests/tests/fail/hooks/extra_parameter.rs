#[signal::hub]
pub trait Chat {
    async fn on_disconnected(&self, cx: &signal::Context, error: Option<&str>, extra: u8);
}

fn main() {}
