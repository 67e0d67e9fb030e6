#[signal::hub]
pub trait Chat {
    async fn on_connected(&self, cx: &signal::Context) -> bool;
}

fn main() {}
