// One error, at `&mut self`: the impl and `into_hub` below still compile.
#[signal::hub]
pub trait Counter {
    async fn increment(&mut self, by: u32) -> u32;
    async fn get(&self) -> u32;
}

struct C(u32);

impl Counter for C {
    async fn increment(&mut self, by: u32) -> u32 {
        self.0 += by;
        self.0
    }

    async fn get(&self) -> u32 {
        self.0
    }
}

fn main() {
    let _hub: signal::Hub<CounterServer<C>> = C(0).into_hub();
}
