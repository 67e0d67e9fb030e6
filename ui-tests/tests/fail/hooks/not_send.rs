// The rewritten trait requires `Send` futures: the impl's error names the method.
use std::rc::Rc;

#[signal::hub]
pub trait Chat {
    async fn send(&self, text: String);
}

struct C;

impl Chat for C {
    async fn send(&self, text: String) {
        let rc = Rc::new(text);
        std::future::ready(()).await;
        drop(rc);
    }
}

fn main() {}
