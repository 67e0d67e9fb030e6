#[signal::hub]
pub trait Chat {
    async fn foo_bar(&self);
    #[signal::method(name = "FooBar")]
    async fn other(&self);
}

fn main() {}
