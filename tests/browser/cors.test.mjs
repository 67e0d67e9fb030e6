// Cross-origin clients in a real browser: a page served on one port connects to
// the conformance hub on another. The hub allows exactly the origins in
// SIGNAL_CORS_ORIGINS; a page from any other origin fails cleanly.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import * as h from '../js/harness.mjs';
import { launchChromium } from './chromium.mjs';

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
  browser = await launchChromium();
});

after(async () => {
  h.closeAllRaw();
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
    // The browser withholds the answer of a negotiate it was not allowed to read.
    assert.deepEqual(result, { ok: false, error: 'Error: Failed to complete negotiation with the server: TypeError: Failed to fetch' });
  }));
}

test('another origin cannot open a WebSocket even without negotiating', h.logged(() => hub, async () => {
  const refused = await connectFrom(other, { transport: 'WebSockets', skipNegotiation: true });
  // The browser does not show a page why an upgrade failed: this is the
  // client's text for any failed WebSocket.
  assert.deepEqual(refused, {
    ok: false,
    error:
      'Error: WebSocket failed to connect. The connection could not be found on the server, either the endpoint may not be a SignalR endpoint, the connection ID is not present on the server, or there is a proxy blocking WebSockets. If you have multiple servers check that sticky sessions are enabled.',
  });
  const admitted = await connectFrom(allowed, { transport: 'WebSockets', skipNegotiation: true });
  assert.deepEqual(admitted, { ok: true, echoed: 'across origins', used: 'WebSockets' });
  // The refusal is the server's (403), not a network failure.
  const socket = h.rawSocket(h.wsUrl(hub, '/conformance'), { origin: other });
  await assert.rejects(h.withTimeout(socket.opened, 5000, 'the refused upgrade'), {
    statusCode: 403,
    body: 'WebSocket connections from this origin are not allowed.',
  });
}));
