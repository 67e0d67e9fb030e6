#[signal::hub(clinet = ChatClient)]
pub trait Chat {
    async fn send(&self, text: String);
}

struct C;

impl Chat for C {
    async fn send(&self, _text: String) {}
}

fn main() {
    let _ = C.into_hub();
}
