#[signal::hub]
pub trait Chat {
    async fn send(&self, text: &str);
}

fn main() {}
