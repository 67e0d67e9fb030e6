// The job-progress page: start jobs, watch their progress bars, cancel one.
// Each job's progress arrives as a server stream (`progress(id)`); the jobs
// run on the server whatever the page does, so a page that loads (or
// reconnects) lists them with `jobs()` and follows the running ones again.
// `?transport=WebSockets|ServerSentEvents|LongPolling` forces a transport.

import { JobProgressProxy, registerJobProgressClient } from "/generated/job_progress.js";
import { $, hubConnection } from "/page.js";

const connection = hubConnection("/jobs");
const hub = new JobProgressProxy(connection);
// For the console (and the browser test): `jobsHub.jobs().then(console.table)`.
window.jobsHub = hub;

// The streams this page follows, by job id.
const following = new Map();

function row(job) {
  let li = document.querySelector(`#jobs li[data-id="${job.id}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.id = String(job.id);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = job.name;
    const bar = document.createElement("progress");
    bar.max = 100;
    const percent = document.createElement("span");
    percent.className = "percent";
    const state = document.createElement("span");
    state.className = "state";
    const cancel = document.createElement("button");
    cancel.className = "cancel";
    cancel.textContent = "Cancel";
    cancel.addEventListener("click", () => {
      cancel.disabled = true;
      hub.cancelJob(job.id).then(show, fail);
    });
    li.append(name, bar, percent, state, cancel);
    $("jobs").append(li);
  }
  return li;
}

function show(job) {
  const li = row(job);
  li.querySelector("progress").value = job.percent;
  li.querySelector(".percent").textContent = `${job.percent}%`;
  const state = li.querySelector(".state");
  state.textContent = job.state;
  state.className = `state ${job.state}`;
  li.dataset.state = job.state;
  if (job.state !== "running") li.querySelector(".cancel").disabled = true;
}

function fail(e) {
  $("error").textContent = e.message;
}

function follow(job) {
  show(job);
  if (job.state !== "running" || following.has(job.id)) return;
  const subscription = hub.progress(job.id).subscribe({
    next: show,
    complete: () => following.delete(job.id),
    error: (e) => {
      following.delete(job.id);
      // The connection dropped: `onreconnected` follows the job again.
      if (connection.state === signalR.HubConnectionState.Connected) fail(e);
    },
  });
  following.set(job.id, subscription);
}

registerJobProgressClient(connection, {
  jobStarted: follow,
});

$("start").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").textContent = "";
  const name = $("name").value;
  try {
    follow(await hub.startJob(name, Number($("seconds").value)));
    // Only if it still holds this job's name: the next one may have been
    // typed while the call was on its way.
    if ($("name").value === name) $("name").value = "";
  } catch (e) {
    fail(e);
  }
});

async function started() {
  const transport = connection.connection?.transport?.constructor?.name?.replace("Transport", "");
  $("status").textContent = transport ? `connected (${transport})` : "connected";
  // A new connection has no streams: follow the running jobs again.
  following.clear();
  for (const job of await hub.jobs()) follow(job);
}

connection.onreconnecting(() => { $("status").textContent = "reconnecting…"; });
connection.onreconnected(() => started().catch(fail));
connection.onclose(() => { $("status").textContent = "disconnected"; });
connection.start().then(started).catch((e) => {
  $("status").textContent = `failed: ${e.message}`;
});
