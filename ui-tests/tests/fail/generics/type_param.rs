#[signal::hub]
pub trait Store {
    async fn put<T: serde::de::DeserializeOwned>(&self, key: String, value: T);
}

fn main() {}
