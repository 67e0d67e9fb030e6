#[signal::hub]
pub trait Clock {
    fn now() -> u64;
}

fn main() {}
