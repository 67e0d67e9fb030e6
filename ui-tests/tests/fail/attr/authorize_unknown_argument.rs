#[signal::hub]
pub trait Admin {
    #[signal::authorize(role = "admin")]
    async fn ban(&self, user: String);
    #[signal::authorize(policy = "")]
    async fn kick(&self, user: String);
}

fn main() {}
