#[signal::hub(client = "ChatClient")]
pub trait Chat {
    async fn send(&self, cx: &signal::Context, text: String);
}

struct C;

impl Chat for C {
    async fn send(&self, _cx: &signal::Context, _text: String) {}
}

fn main() {
    let _ = C.into_hub();
}
