// The job-progress example in a real browser: Debian's Chromium driven by
// playwright-core. One page starts two jobs; both pages show their progress
// bars moving; one page cancels a job and both see it stop where it was while
// the other goes on; a reloaded page finds the running job moving again and
// the cancelled one as it stopped; a short job ends "done"; the hub refuses
// nonsense and a job beyond its limit. Over each transport, with a screenshot
// of each run in test-results/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import * as h from '../js/harness.mjs';
import { launchChromium } from './chromium.mjs';

const ARTIFACTS = path.join(h.ROOT, 'test-results');
// examples/job_progress.rs
const MAX_RUNNING = 5;

let server;
let browser;

before(async () => {
  server = await h.startServer('job_progress');
  browser = await launchChromium();
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function connected(page) {
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('connected'), undefined, {
    timeout: 10_000,
  });
}

async function open(transport) {
  const context = await browser.newContext({ viewport: { width: 900, height: 500 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${server.url}/?${new URLSearchParams({ transport })}`);
  await connected(page);
  return { page, context, errors };
}

async function start(page, name, seconds) {
  await page.fill('#name', name);
  await page.fill('#seconds', String(seconds));
  await page.click('#start-button');
}

/** A job's row as a person reads it: name, bar value, percent, state. */
function job(page, name) {
  return page.evaluate((wanted) => {
    for (const li of document.querySelectorAll('#jobs li')) {
      if (li.querySelector('.name').textContent !== wanted) continue;
      return {
        bar: li.querySelector('progress').value,
        percent: li.querySelector('.percent').textContent,
        state: li.querySelector('.state').textContent,
        cancellable: !li.querySelector('.cancel').disabled,
      };
    }
    return null;
  }, name);
}

/** Waits until the job `name` shows in `page` and `accept` takes its row. */
async function waitForJob(page, name, accept, what, timeout = 15_000) {
  return h.eventually(() => job(page, name), (row) => row !== null && accept(row), { timeout, interval: 50, what: `${name}: ${what}` });
}

async function cancel(page, name) {
  await page.locator('#jobs li', { has: page.locator('.name', { hasText: name }) }).locator('.cancel').click();
}

for (const transport of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
  describe(`job_progress over ${transport}`, () => {
    test('progress bars move, a cancelled job stops, a reloaded page finds the jobs', h.logged(() => server, async () => {
      const ada = await open(transport);
      const bob = await open(transport);
      const alpha = `alpha ${transport}`;
      const beta = `beta ${transport}`;
      try {
        assert.equal(await ada.page.textContent('#status'), `connected (${transport.replace('WebSockets', 'WebSocket')})`);
        // Long enough to outlast the test on a slow machine.
        await start(ada.page, alpha, 40);
        await start(ada.page, beta, 40);

        // Both pages see both bars move (Bob was told of the jobs as they started).
        for (const page of [ada.page, bob.page]) {
          for (const name of [alpha, beta]) {
            const first = await waitForJob(page, name, (r) => r.bar > 0 && r.state === 'running', 'running');
            await waitForJob(page, name, (r) => r.bar > first.bar, 'moving on');
          }
        }

        // Ada cancels beta: both pages show it cancelled, and it stays where it
        // stopped while alpha goes on.
        await cancel(ada.page, beta);
        const stopped = await waitForJob(ada.page, beta, (r) => r.state === 'cancelled', 'cancelled');
        assert.equal(stopped.cancellable, false);
        assert.equal(stopped.percent, `${stopped.bar}%`);
        await waitForJob(bob.page, beta, (r) => r.state === 'cancelled', 'cancelled at Bob');
        assert.deepEqual(await job(bob.page, beta), stopped);
        const going = await job(ada.page, alpha);
        await waitForJob(ada.page, alpha, (r) => r.bar >= going.bar + 3, 'moving on after the cancel');
        assert.deepEqual(await job(ada.page, beta), stopped);
        assert.deepEqual(await job(bob.page, beta), stopped);

        // Bob reloads: alpha is there and moving again, beta as it stopped.
        await bob.page.reload();
        await connected(bob.page);
        const found = await waitForJob(bob.page, alpha, (r) => r.state === 'running', 'found after the reload');
        await waitForJob(bob.page, alpha, (r) => r.bar > found.bar, 'moving after the reload');
        assert.deepEqual(await job(bob.page, beta), stopped);

        await bob.page.screenshot({ path: path.join(ARTIFACTS, `job_progress-${transport}.png`) });

        // A short job finishes.
        const gamma = `gamma ${transport}`;
        await start(bob.page, gamma, 1);
        await waitForJob(ada.page, gamma, (r) => r.state === 'done', 'done');
        assert.deepEqual(await job(ada.page, gamma), { bar: 100, percent: '100%', state: 'done', cancellable: false });

        // Cancelling what has ended, or following a job that never was, is refused.
        const refused = await bob.page.evaluate(async (name) => {
          const li = [...document.querySelectorAll('#jobs li')].find((l) => l.querySelector('.name').textContent === name);
          const again = await window.jobsHub.cancelJob(Number(li.dataset.id)).then(() => 'accepted', (e) => e.message);
          const unknown = await new Promise((resolve) => {
            window.jobsHub.progress(999999).subscribe({ next: () => resolve('an item'), complete: () => resolve('completed'), error: (e) => resolve(e.message) });
          });
          return [again.replace(/job \d+/, 'job N'), unknown];
        }, beta);
        assert.deepEqual(refused, [
          "An unexpected error occurred invoking 'cancelJob' on the server. HubException: job N is cancelled already",
          "An unexpected error occurred invoking 'progress' on the server. HubException: there is no job 999999",
        ]);

        await cancel(bob.page, alpha);
        await waitForJob(ada.page, alpha, (r) => r.state === 'cancelled', 'cancelled');
        assert.deepEqual([...ada.errors, ...bob.errors], []);
      } finally {
        await Promise.allSettled([ada.context.close(), bob.context.close()]);
      }
    }, { timeout: 90_000 }));
  });
}

describe('job_progress refuses', () => {
  test('nonsense and more running jobs than its limit, with the hub\'s error', h.logged(() => server, async () => {
    const ada = await open('WebSockets');
    const error = () => ada.page.textContent('#error');
    const prefix = "An unexpected error occurred invoking 'startJob' on the server. HubException: ";
    try {
      await start(ada.page, '   ', 10);
      await h.eventually(error, (e) => e !== '', { what: 'the error' });
      assert.equal(await error(), `${prefix}a job's name must be 1 to 40 characters long`);
      await start(ada.page, 'zero', 0);
      await h.eventually(error, (e) => e.includes('seconds'), { what: 'the error' });
      assert.equal(await error(), `${prefix}a job takes 1 to 120 seconds, not 0`);

      const names = Array.from({ length: MAX_RUNNING }, (_, i) => `long ${i + 1}`);
      for (const name of names) {
        await start(ada.page, name, 60);
        await waitForJob(ada.page, name, (r) => r.state === 'running', 'running');
      }
      await start(ada.page, 'one too many', 60);
      await h.eventually(error, (e) => e !== '', { what: 'the error' });
      assert.equal(await error(), `${prefix}${MAX_RUNNING} jobs are running already; cancel one or wait for one to finish`);
      assert.equal(await job(ada.page, 'one too many'), null);

      for (const name of names) await cancel(ada.page, name);
      for (const name of names) await waitForJob(ada.page, name, (r) => r.state === 'cancelled', 'cancelled');
      assert.deepEqual(ada.errors, []);
    } finally {
      await ada.context.close();
    }
  }, { timeout: 60_000 }));
});
