//! Client → server streams: `UploadStream<T>` parameters, beside plain ones.
#![deny(warnings)]

use futures_util::StreamExt;
use signal::HubError;
use signal_server::UploadStream;

#[signal::hub]
pub trait Uploads {
    async fn sum(&self, label: String, numbers: UploadStream<i64>) -> Result<String, HubError>;
    async fn two(&self, a: UploadStream<String>, b: UploadStream<u8>);
}

struct U;

impl Uploads for U {
    async fn sum(&self, label: String, mut numbers: UploadStream<i64>) -> Result<String, HubError> {
        let mut total = 0;
        while let Some(n) = numbers.next().await {
            total += n?;
        }
        Ok(format!("{label}: {total}"))
    }

    async fn two(&self, a: UploadStream<String>, b: UploadStream<u8>) {
        let _ = (a, b);
    }
}

fn main() {
    let _ = U.into_hub();
    let d = <dyn Uploads>::descriptor();
    let sum = &d.methods[0];
    assert!(!sum.parameters[0].stream);
    assert!(sum.parameters[1].stream);
    assert_eq!(
        serde_json::to_value(&sum.parameters[1].schema).unwrap()["type"],
        "integer"
    );
    assert!(d.methods[1].parameters.iter().all(|p| p.stream));
}
