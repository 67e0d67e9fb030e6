#[derive(serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    id: u64,
}

#[signal::hub]
pub trait Chat {
    async fn send(&self, text: String) -> Result<Receipt, signal::HubError>;
}

fn main() {}
