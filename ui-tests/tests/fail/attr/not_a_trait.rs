#[signal::hub]
pub struct Chat {
    rooms: Vec<String>,
}

fn main() {}
