// The Rust client beside a browser: the chat example's command-line client
// (`examples/chat_cli.rs`, signal-client through the generated ChatProxy) and
// the chat page in Chromium, in one room, over each transport of the CLI.
// A screenshot of the page is saved under test-results/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import * as h from '../js/harness.mjs';
import { launchChromium } from './chromium.mjs';

const ARTIFACTS = path.join(h.ROOT, 'test-results');

let server;
let browser;

before(async () => {
  server = await h.startServer('chat');
  h.buildExample('chat_cli');
  browser = await launchChromium();
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The CLI as a person runs it, its output gathered line by line. */
function cli(args) {
  const child = spawn(path.join(h.ROOT, 'target', 'debug', 'examples', 'chat_cli'), args, {
    cwd: h.ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines = [];
  const waiters = new h.Waiters();
  let buffered = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop();
    lines.push(...parts);
    waiters.wake();
  });
  let errors = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    errors += chunk;
    waiters.wake();
  });
  return {
    child,
    lines,
    say: (text) => child.stdin.write(`${text}\n`),
    line: (wanted) =>
      waiters.until(() => (lines.includes(wanted) ? wanted : undefined), {
        timeout: 10_000,
        what: `the CLI printing ${JSON.stringify(wanted)}`,
        detail: () => `; printed: ${JSON.stringify(lines)}; stderr: ${errors}`,
      }),
    /** Waits for `text` in what the CLI told its user on stderr. */
    told: (text) =>
      waiters.until(() => (errors.includes(text) ? text : undefined), {
        timeout: 10_000,
        what: `the CLI saying ${JSON.stringify(text)}`,
        detail: () => `; stderr: ${errors}`,
      }),
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', resolve);
        child.stdin.end('/quit\n');
      }),
  };
}

for (const [transport, extra] of [['WebSockets', []], ['LongPolling', ['--messagepack']], ['ServerSentEvents', []]]) {
  test(`the Rust CLI (${transport}${extra.length ? ', MessagePack' : ''}) and a browser chat in one room`, h.logged(() => server, async () => {
    const room = h.unique('r');
    const ada = cli(['--name', 'ada', '--room', room, '--url', `${server.url}/chat`, '--transport', transport, ...extra]);
    const context = await browser.newContext();
    try {
      await ada.told(`joined ${room} over ${transport} as ada; here: ada.`);
      const page = await context.newPage();
      const errors = [];
      page.on('pageerror', (error) => errors.push(error.message));
      await page.goto(`${server.url}/?${new URLSearchParams({ name: 'bob', room })}`);
      await ada.line(`[${room}] bob joined; here: ada, bob`);

      ada.say('hello bob, from Rust');
      await page.waitForFunction(
        () => [...document.querySelectorAll('#messages li')].some((li) => li.textContent === 'adahello bob, from Rust'),
        undefined,
        { timeout: 10_000 },
      );
      await page.fill('#text', 'hi ada, from the browser');
      await page.click('#send-button');
      await ada.line(`[${room}] bob: hi ada, from the browser`);
      await page.screenshot({ path: path.join(ARTIFACTS, `chat-cli-${transport}.png`) });
      assert.deepEqual(errors, []);
    } finally {
      await ada.stop();
      await context.close();
    }
  }, { timeout: 60_000 }));
}
