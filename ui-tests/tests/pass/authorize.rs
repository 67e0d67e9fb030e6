//! `#[signal::authorize]` above or below `#[signal::hub]`, by path or by name
//! (the hub macro reads it by name), on the trait and on methods.
#![deny(warnings)]

#[signal::authorize(policy = "staff")]
#[signal::hub]
pub trait Above {
    async fn ping(&self) -> u32;
}

#[signal::hub]
#[authorize]
pub trait Below {
    #[authorize(policy = "admin")]
    #[signal::authorize(policy = "audit")]
    async fn ban(&self, user: String);
    async fn ping(&self) -> u32;
}

fn main() {
    let above = <dyn Above>::descriptor();
    assert_eq!(above.authorize.unwrap().policies, ["staff"]);
    let below = <dyn Below>::descriptor();
    assert!(below.authorize.unwrap().policies.is_empty());
    assert_eq!(below.methods[0].authorize.clone().unwrap().policies, ["admin", "audit"]);
    assert!(below.methods[1].authorize.is_none());
}
