pub struct Tick;

#[signal::hub]
pub trait Clock {
    async fn ticks(&self) -> signal::HubStream<Tick>;
}

fn main() {}
