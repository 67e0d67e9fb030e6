//! When to try again after a connection is lost.

use std::time::Duration;

/// What a [`RetryPolicy`] decides from.
#[derive(Debug, Clone)]
pub struct RetryContext {
    /// How many reconnect attempts failed so far.
    pub previous_retry_count: u32,
    /// How long the connection has been reconnecting.
    pub elapsed: Duration,
    /// Why the connection was lost, or why the last attempt failed.
    pub reason: crate::Error,
}

/// Decides whether and when the connection tries to reconnect.
pub trait RetryPolicy: Send + Sync + 'static {
    /// The delay before the next attempt, or `None` to give up.
    fn next_retry_delay(&self, context: &RetryContext) -> Option<Duration>;
}

/// Retries after each delay in turn, then gives up: by default 0, 2, 10 and 30
/// seconds, as the JavaScript client's `withAutomaticReconnect()`.
#[derive(Debug, Clone)]
pub struct Delays(pub Vec<Duration>);

impl Default for Delays {
    fn default() -> Self {
        Delays(
            [0, 2, 10, 30]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl RetryPolicy for Delays {
    fn next_retry_delay(&self, context: &RetryContext) -> Option<Duration> {
        self.0.get(context.previous_retry_count as usize).copied()
    }
}

impl<F> RetryPolicy for F
where
    F: Fn(&RetryContext) -> Option<Duration> + Send + Sync + 'static,
{
    fn next_retry_delay(&self, context: &RetryContext) -> Option<Duration> {
        self(context)
    }
}
