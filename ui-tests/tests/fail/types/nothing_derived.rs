pub struct Point {
    x: f64,
}

#[signal::client]
pub trait Canvas {
    async fn draw(&self, points: Vec<Point>);
}

fn main() {}
