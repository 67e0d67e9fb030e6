//! Job progress: long jobs started from a page, each reporting its progress as
//! a server stream; a cancel button stops one; a page that reloads (or
//! another page) finds the running jobs and follows them again.
//!
//! Run: `npm ci && cargo run --example job_progress`, then open
//! http://127.0.0.1:5002 in two tabs. `?transport=` forces a transport, as in
//! the chat.
//!
//! A job runs in a task of its own, not in a connection's stream: closing or
//! reloading the page only ends that page's stream, and a page subscribes
//! again with `progress(id)` after listing the jobs with `jobs()`. Each job
//! publishes its state on a `watch` channel, which keeps only the latest
//! value: a slow page (long polling) skips percentages rather than queueing
//! them, and however many pages follow a job, it does the same work.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signal::{CancellationToken, Context, HubError, HubStream};
use signal_examples_api::job_progress::{Job, JobProgress, JobProgressClient, JobState};
use tokio::sync::watch;

/// Jobs running at once; starting one more is refused.
const MAX_RUNNING: usize = 5;
/// Ended jobs kept for `jobs()`; older ones are forgotten.
const MAX_ENDED: usize = 20;
const MAX_NAME: usize = 40;
const MAX_SECONDS: u32 = 120;

struct Entry {
    /// The job as it is now; every change goes out to its followers.
    state: watch::Sender<Job>,
    /// Stops the job's task.
    cancel: CancellationToken,
}

#[derive(Default)]
struct Jobs {
    next_id: u32,
    /// By id, so oldest first.
    entries: BTreeMap<u32, Entry>,
}

impl Jobs {
    fn running(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.state.borrow().state == JobState::Running)
            .count()
    }

    /// Forgets the oldest ended jobs beyond `MAX_ENDED`; their followers'
    /// streams end with the dropped channel.
    fn prune(&mut self) {
        let ended: Vec<u32> = self
            .entries
            .iter()
            .filter(|(_, e)| e.state.borrow().state != JobState::Running)
            .map(|(id, _)| *id)
            .collect();
        for id in ended.iter().take(ended.len().saturating_sub(MAX_ENDED)) {
            self.entries.remove(id);
        }
    }
}

#[derive(Clone, Default)]
struct JobHub {
    jobs: Arc<Mutex<Jobs>>,
}

impl JobHub {
    /// The job's work: a percent per step, until done or cancelled.
    async fn run(self, id: u32, step: Duration, cancel: CancellationToken) {
        loop {
            tokio::select! {
                // Cancelled: `cancel_job` has marked the job; no more work.
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(step) => {}
            }
            let jobs = self.jobs.lock().expect("jobs lock");
            let Some(entry) = jobs.entries.get(&id) else {
                return;
            };
            let mut finished = false;
            entry.state.send_modify(|job| {
                if job.state == JobState::Running {
                    job.percent += 1;
                    if job.percent >= 100 {
                        job.state = JobState::Done;
                    }
                }
                finished = job.state != JobState::Running;
            });
            if finished {
                return;
            }
        }
    }

    fn entry_state(&self, id: u32) -> Result<watch::Receiver<Job>, HubError> {
        let jobs = self.jobs.lock().expect("jobs lock");
        jobs.entries
            .get(&id)
            .map(|e| e.state.subscribe())
            .ok_or_else(|| HubError::new(format!("there is no job {id}")))
    }
}

impl JobProgress for JobHub {
    async fn start_job(
        &self,
        cx: &Context<dyn JobProgressClient>,
        name: String,
        seconds: u32,
    ) -> Result<Job, HubError> {
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return Err(HubError::new(format!(
                "a job's name must be 1 to {MAX_NAME} characters long"
            )));
        }
        if !(1..=MAX_SECONDS).contains(&seconds) {
            return Err(HubError::new(format!(
                "a job takes 1 to {MAX_SECONDS} seconds, not {seconds}"
            )));
        }
        let (job, cancel) = {
            let mut jobs = self.jobs.lock().expect("jobs lock");
            if jobs.running() >= MAX_RUNNING {
                return Err(HubError::new(format!(
                    "{MAX_RUNNING} jobs are running already; cancel one or wait for one to finish"
                )));
            }
            jobs.next_id += 1;
            let job = Job {
                id: jobs.next_id,
                name,
                percent: 0,
                state: JobState::Running,
            };
            let cancel = CancellationToken::new();
            jobs.entries.insert(
                job.id,
                Entry {
                    state: watch::Sender::new(job.clone()),
                    cancel: cancel.clone(),
                },
            );
            jobs.prune();
            (job, cancel)
        };
        let step = Duration::from_millis(u64::from(seconds) * 10);
        tokio::spawn(self.clone().run(job.id, step, cancel));
        cx.clients().others().job_started(job.clone()).await?;
        Ok(job)
    }

    async fn progress(&self, id: u32) -> Result<HubStream<Job>, HubError> {
        let state = self.entry_state(id)?;
        // The job now, then each change, until it has ended.
        let stream = futures_util::stream::unfold(
            (state, true, false),
            |(mut state, first, ended)| async move {
                if ended || (!first && state.changed().await.is_err()) {
                    return None;
                }
                let job = state.borrow_and_update().clone();
                let ended = job.state != JobState::Running;
                Some((Ok(job), (state, false, ended)))
            },
        );
        Ok(Box::pin(stream))
    }

    async fn cancel_job(&self, id: u32) -> Result<Job, HubError> {
        let jobs = self.jobs.lock().expect("jobs lock");
        let entry = jobs
            .entries
            .get(&id)
            .ok_or_else(|| HubError::new(format!("there is no job {id}")))?;
        let mut refused = None;
        entry.state.send_if_modified(|job| match job.state {
            JobState::Running => {
                job.state = JobState::Cancelled;
                true
            }
            JobState::Done => {
                refused = Some("done");
                false
            }
            JobState::Cancelled => {
                refused = Some("cancelled");
                false
            }
        });
        if let Some(state) = refused {
            return Err(HubError::new(format!("job {id} is {state} already")));
        }
        entry.cancel.cancel();
        Ok(entry.state.borrow().clone())
    }

    async fn jobs(&self) -> Vec<Job> {
        let jobs = self.jobs.lock().expect("jobs lock");
        jobs.entries
            .values()
            .map(|e| e.state.borrow().clone())
            .collect()
    }
}

fn main() -> std::io::Result<()> {
    signal::runtime()?.block_on(run_server())
}

async fn run_server() -> std::io::Result<()> {
    support::init_tracing();
    let hub = JobHub::default().into_hub();
    let handle = hub.handle();
    let app = axum::Router::new()
        .nest("/jobs", hub.router())
        .merge(support::page("job_progress")?);
    support::serve_on(5002, app, async move {
        handle.shutdown(Duration::from_secs(5)).await
    })
    .await
}
