#[signal::hub]
pub trait Store<T> {
    async fn put(&self, value: u8);
}

fn main() {}
