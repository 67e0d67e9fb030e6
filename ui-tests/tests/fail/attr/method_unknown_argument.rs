#[signal::hub]
pub trait Chat {
    #[signal::method(rename = "Send")]
    async fn send(&self, text: String);
}

fn main() {}
