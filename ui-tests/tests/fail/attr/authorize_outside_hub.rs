#[signal::authorize]
pub struct NotAHub;

fn main() {}
