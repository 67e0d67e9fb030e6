#[signal::hub]
pub trait Store {
    async fn take<const N: usize>(&self, values: Vec<u8>) -> Vec<u8>;
}

fn main() {}
