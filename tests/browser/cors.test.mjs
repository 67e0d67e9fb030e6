// Cross-origin clients in a real browser: a page served on one port connects to
// the conformance hub on another. The hub allows exactly the origins in
// SIGNAL_CORS_ORIGINS; a page from any other origin fails cleanly.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { chromium } from 'playwright-core';

import * as h from '../js/harness.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const BUNDLE = readFileSync(path.join(h.ROOT, 'node_modules/@microsoft/signalr/dist/browser/signalr.js'));

let hub;
let browser;
const pages = [];

/** A page server on its own port: `/` loads the official client, nothing else. */
async function pageServer() {
  const server = http.createServer((request, response) => {
    if (request.url === '/signalr.js') {
      response.writeHead(200, { 'Content-Type': 'text/javascript' });
      response.end(BUNDLE);
    } else {
      response.writeHead(200, { 'Content-Type': 'text/html' });
      response.end('<!doctype html><title>cross-origin</title><script src="/signalr.js"></script>');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  pages.push(server);
  return `http://127.0.0.1:${server.address().port}`;
}

let allowed;
let other;

before(async () => {
  [allowed, other] = await Promise.all([pageServer(), pageServer()]);
  hub = await h.startServer('conformance', { env: { SIGNAL_CORS_ORIGINS: allowed } });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await hub?.stop();
  await Promise.all(pages.map((s) => new Promise((resolve) => s.close(resolve))));
});

/** Connects from a page of `origin` with `options`; returns what happened. */
async function connectFrom(origin, options) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(origin);
  try {
    return await page.evaluate(async ({ url, options }) => {
      const transport = options.transport && signalR.HttpTransportType[options.transport];
      const connection = new signalR.HubConnectionBuilder()
        .withUrl(url, { ...options, transport, withCredentials: true })
        .configureLogging(signalR.LogLevel.None)
        .build();
      try {
        await connection.start();
        const echoed = await connection.invoke('echo', 'across origins');
        const used = await connection.invoke('transport');
        await connection.stop();
        return { ok: true, echoed, used };
      } catch (error) {
        return { ok: false, error: String(error) };
      }
    }, { url: `${hub.url}/conformance`, options });
  } finally {
    await context.close();
  }
}

for (const transport of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
  test(`an allowed origin connects over ${transport}`, h.logged(() => hub, async () => {
    const result = await connectFrom(allowed, { transport });
    assert.deepEqual(result, { ok: true, echoed: 'across origins', used: transport });
  }));

  test(`another origin fails cleanly over ${transport}`, h.logged(() => hub, async () => {
    const result = await connectFrom(other, { transport });
    assert.equal(result.ok, false);
    assert.match(result.error, /Failed to (complete negotiation|start)|Unable to connect|fetch/i);
  }));
}

test('another origin cannot open a WebSocket even without negotiating', h.logged(() => hub, async () => {
  const refused = await connectFrom(other, { transport: 'WebSockets', skipNegotiation: true });
  assert.equal(refused.ok, false);
  const admitted = await connectFrom(allowed, { transport: 'WebSockets', skipNegotiation: true });
  assert.equal(admitted.ok, true, admitted.error);
  // The refusal is the server's (403), not a network failure.
  const status = await new Promise((resolve, reject) => {
    const socket = new h.WebSocket(`${hub.url.replace('http', 'ws')}/conformance`, { origin: other });
    socket.on('unexpected-response', (_request, response) => resolve(response.statusCode));
    socket.on('open', () => reject(new Error('the upgrade from another origin was accepted')));
    socket.on('error', () => {});
  });
  assert.equal(status, 403);
}));
