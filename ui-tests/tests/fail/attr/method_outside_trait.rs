#[signal::method(name = "Send")]
fn send() {}

fn main() {
    send();
}
