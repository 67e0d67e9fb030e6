//! Default bodies are kept (async ones become `async move` blocks), `mut`
//! parameters work, and a hub may be private.
#![deny(warnings)]

mod inner {
    #[signal::hub]
    pub(crate) trait Defaults {
        async fn ping(&self) -> u8 {
            1
        }
        async fn bump(&self, mut x: u32) -> u32 {
            x += 1;
            x
        }
        fn sync_default(&self, text: String) -> usize {
            text.len()
        }
        async fn required(&self) -> bool;
    }

    #[signal::client]
    pub(crate) trait Listener {
        async fn heard(&self, text: String) {
            let _ = text;
        }
    }
}

use inner::Defaults;

struct D;

impl Defaults for D {
    async fn required(&self) -> bool {
        true
    }
}

struct L;

impl inner::Listener for L {}

fn main() {
    let _hub: signal::Hub<inner::DefaultsServer<D>> = D.into_hub();
    assert_eq!(<dyn Defaults>::descriptor().methods.len(), 4);
    let _ = <dyn inner::Listener>::descriptor();
    let _ = L;
}
