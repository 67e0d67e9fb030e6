#[signal::hub]
pub trait Chat {
    async fn into_hub(&self);
}

fn main() {}
