use signal::{Context, HubError};

#[signal::client]
pub trait ChatClient {
    async fn confirm(&self, question: String) -> bool;
}

#[signal::hub(client = ChatClient)]
pub trait Chat {
    async fn ask(&self, cx: &Context<dyn ChatClient>) -> Result<bool, HubError>;
}

struct C;

impl Chat for C {
    async fn ask(&self, cx: &Context<dyn ChatClient>) -> Result<bool, HubError> {
        Ok(cx.clients().all().confirm("sure?".into()).await?)
    }
}

fn main() {}
