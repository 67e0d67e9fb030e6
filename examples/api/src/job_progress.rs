//! The job-progress example's contract: long jobs started from a page, each
//! reporting its progress as a server stream, cancellable, and found again by
//! a page that reloads.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use signal::{Context, HubError, HubStream};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum JobState {
    /// Working; `percent` grows.
    Running,
    /// Finished all its work.
    Done,
    /// Stopped by `cancel_job` before it finished.
    Cancelled,
}

/// A job as the pages see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Job {
    /// The job's number, unique while the server runs.
    pub id: u32,
    /// The name it was started with.
    pub name: String,
    /// How much of its work is done, 0 to 100.
    pub percent: u32,
    /// Running, done or cancelled.
    pub state: JobState,
}

/// What the hub calls on the pages.
#[signal::client]
pub trait JobProgressClient {
    /// Someone started a job: every page lists it and follows its progress.
    async fn job_started(&self, job: Job);
}

/// What the pages may call.
#[signal::hub(client = JobProgressClient)]
pub trait JobProgress {
    /// Starts a job named `name` that takes about `seconds` (1 to 120) to
    /// finish. Fails when too many jobs are running already.
    async fn start_job(
        &self,
        cx: &Context<dyn JobProgressClient>,
        name: String,
        seconds: u32,
    ) -> Result<Job, HubError>;
    /// The job `id` as it is now and then at each step, until it is done or
    /// cancelled. Stopping the stream leaves the job running.
    async fn progress(&self, id: u32) -> Result<HubStream<Job>, HubError>;
    /// Cancels the running job `id`: it does no more work; returns the job as
    /// it stopped.
    async fn cancel_job(&self, id: u32) -> Result<Job, HubError>;
    /// The running jobs and the most recently ended ones, oldest first.
    async fn jobs(&self) -> Vec<Job>;
}
