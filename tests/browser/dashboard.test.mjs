// The dashboard example in a real browser: Debian's Chromium driven by
// playwright-core. A dashboard page watches the server's own figures while
// other connections come and go — official clients in Node over long polling,
// Server-Sent Events and MessagePack on WebSockets, and a second page over
// long polling with MessagePack — and the figures it shows follow exactly.
// A screenshot is saved under test-results/ as an artifact.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import * as h from '../js/harness.mjs';
import { launchChromium } from './chromium.mjs';

const ARTIFACTS = path.join(h.ROOT, 'test-results');
const FIGURES = [
  'web-sockets', 'server-sent-events', 'long-polling', 'json', 'message-pack', 'groups', 'invocations',
];

let server;
let browser;

before(async () => {
  server = await h.startServer('dashboard');
  browser = await launchChromium();
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await h.stopClientsOf(server);
  await browser?.close();
  await server?.stop();
});

async function open(query) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${server.url}/?${new URLSearchParams(query)}`);
  // The page shows the figures `watch` returned as soon as it is connected.
  await page.waitForFunction(() => document.querySelector('#web-sockets').textContent !== '–', undefined, {
    timeout: 10_000,
  });
  return { page, context, errors };
}

/** The figures the page shows, by tile. */
function shown(page) {
  return page.evaluate(
    (ids) => Object.fromEntries(ids.map((id) => [id, document.getElementById(id).textContent])),
    FIGURES,
  );
}

/** Waits until the page shows `expected` (a subset of the tiles), pushed by the server. */
async function waitForFigures(page, expected, what) {
  try {
    await page.waitForFunction(
      (wanted) => Object.entries(wanted).every(([id, value]) => document.getElementById(id).textContent === value),
      expected,
      { timeout: 10_000 },
    );
  } catch (error) {
    error.message = `${what}: the page shows ${JSON.stringify(await shown(page))}, expected ${JSON.stringify(expected)}\n${error.message}`;
    throw error;
  }
}

describe('dashboard', () => {
  test('the figures follow connections opened and closed over every transport', h.logged(() => server, async () => {
    const watcher = await open({ transport: 'WebSockets' });
    let second;
    try {
      assert.equal(await watcher.page.textContent('#status'), 'connected (WebSocket)');
      // Alone: one WebSocket, JSON, the dashboard group, its own `watch`.
      await waitForFigures(watcher.page, {
        'web-sockets': '1', 'server-sent-events': '0', 'long-polling': '0',
        json: '1', 'message-pack': '0', groups: '1', invocations: '1',
      }, 'the dashboard alone');

      const polling = await h.connect(server, '/dashboard', { transport: h.HttpTransportType.LongPolling, methods: [] });
      const events = await h.connect(server, '/dashboard', { transport: h.HttpTransportType.ServerSentEvents, methods: [] });
      const packed = await h.connect(server, '/dashboard', {
        transport: h.HttpTransportType.WebSockets, protocol: 'messagepack', methods: [],
      });
      second = await open({ transport: 'LongPolling', protocol: 'messagepack' });
      assert.equal(await second.page.textContent('#status'), 'connected (LongPolling)');
      await waitForFigures(watcher.page, {
        'web-sockets': '2', 'server-sent-events': '1', 'long-polling': '2',
        json: '3', 'message-pack': '2', groups: '1', invocations: '2',
      }, 'four more connections');

      // Traffic: five echoes from each Node client.
      for (const client of [polling, events, packed]) {
        for (let i = 0; i < 5; i += 1) assert.equal(await client.invoke('echo', `hi ${i}`), `hi ${i}`);
      }
      await waitForFigures(watcher.page, { invocations: '17' }, 'fifteen echoes');
      // The second in which they happened shows a rate (the tile holds it a second).
      await watcher.page.waitForFunction(
        () => Number(document.getElementById('invocations-per-second').textContent) > 0,
        undefined,
        { timeout: 10_000 },
      );
      // Nonsense is answered with a hub error, and counted like any call.
      await h.assertRejects(
        events.invoke('echo', 'x'.repeat(257)),
        h.TEXTS.hubError('echo', 'echo takes at most 256 characters'),
      );
      await waitForFigures(watcher.page, { invocations: '18' }, 'the refused echo');

      // Both pages draw the charts: a canvas and a legend of three series each.
      for (const page of [watcher.page, second.page]) {
        const legends = await page.$$eval('.chart', (charts) => charts.map((c) => [
          c.querySelectorAll('canvas').length,
          [...c.querySelectorAll('.u-legend .u-series th')].map((th) => th.textContent.trim()).slice(1),
        ]));
        assert.deepEqual(legends, [
          [1, ['WebSockets', 'Server-Sent Events', 'Long polling']],
          [1, ['invocations / s', 'messages in / s', 'messages out / s']],
        ]);
      }
      await watcher.page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png') });

      // Connections leaving: the official client's stop ends them at once.
      await polling.stop();
      await waitForFigures(watcher.page, { 'long-polling': '1', json: '2' }, 'the long polling client gone');
      await events.stop();
      await packed.stop();
      await waitForFigures(watcher.page, {
        'web-sockets': '1', 'server-sent-events': '0', 'long-polling': '1', json: '1', 'message-pack': '1',
      }, 'every Node client gone');
      // The second page's "traffic" button: ten echoes a second, seen by the first.
      await second.page.click('#traffic');
      await watcher.page.waitForFunction(
        () => Number(document.getElementById('invocations').textContent) >= 28,
        undefined,
        { timeout: 10_000 },
      );
      await second.page.click('#traffic');
      assert.equal(await second.page.getAttribute('#traffic', 'aria-pressed'), 'false');
      assert.deepEqual([...watcher.errors, ...second.errors], []);
    } finally {
      await Promise.allSettled([watcher.context.close(), second?.context.close()]);
    }
  }, { timeout: 90_000 }));
});
