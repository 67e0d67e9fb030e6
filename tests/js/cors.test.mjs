// Cross-origin answers at the HTTP level (fetch, raw WebSockets), against a
// conformance hub that allows exactly one origin (SIGNAL_CORS_ORIGINS). What a
// browser makes of them is tests/browser/cors.test.mjs.

import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

const HUB = '/conformance';
const ALLOWED = 'http://app.example.test:8080';
const REFUSED = 'http://evil.example.test';
let server;

before(async () => {
  server = await h.startServer('conformance', { env: { SIGNAL_CORS_ORIGINS: ALLOWED } });
});

after(async () => {
  h.closeAllRaw();
  await server?.stop();
});

const logged = (body) => h.logged(() => server, body);

/** The preflight a browser sends before the official client's negotiate. */
function preflight(origin) {
  return fetch(`${server.url}${HUB}/negotiate?negotiateVersion=1`, {
    method: 'OPTIONS',
    headers: {
      Origin: origin,
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'x-requested-with,x-signalr-user-agent,authorization',
    },
  });
}

/** A header's comma-separated values, lower-cased. */
const list = (headers, name) => (headers.get(name) ?? '').split(',').map((v) => v.trim().toLowerCase()).filter(Boolean);

test('a preflight from the allowed origin is answered for that origin, with credentials and the client\'s headers', logged(async () => {
  const response = await preflight(ALLOWED);
  await response.text();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('access-control-allow-origin'), ALLOWED);
  assert.equal(response.headers.get('access-control-allow-credentials'), 'true');
  const headers = list(response.headers, 'access-control-allow-headers');
  for (const header of ['x-requested-with', 'x-signalr-user-agent', 'authorization']) {
    assert.ok(headers.includes(header), `allowed headers ${JSON.stringify(headers)} lack ${header}`);
  }
  const methods = list(response.headers, 'access-control-allow-methods');
  for (const method of ['get', 'post', 'delete']) {
    assert.ok(methods.includes(method), `allowed methods ${JSON.stringify(methods)} lack ${method}`);
  }
}));

test('a preflight from another origin gets no CORS permission', logged(async () => {
  const response = await preflight(REFUSED);
  await response.text();
  // Without Access-Control-Allow-Origin the browser refuses; the other CORS
  // headers (the same for every origin) grant nothing alone.
  assert.equal(response.headers.get('access-control-allow-origin'), null);
}));

test('negotiate from the allowed origin carries the permission; from another origin it does not', logged(async () => {
  const allowed = await h.negotiate(server, HUB, { headers: { Origin: ALLOWED } });
  assert.equal(allowed.status, 200);
  assert.equal(allowed.headers.get('access-control-allow-origin'), ALLOWED);
  assert.equal(allowed.headers.get('access-control-allow-credentials'), 'true');
  const refused = await h.negotiate(server, HUB, { headers: { Origin: REFUSED } });
  assert.equal(refused.headers.get('access-control-allow-origin'), null);
}));

test('a WebSocket upgrade from another origin is refused with 403; from the allowed origin it opens', logged(async () => {
  const refused = h.rawSocket(h.wsUrl(server, HUB), { origin: REFUSED });
  await assert.rejects(h.withTimeout(refused.opened, 5000, 'the refused upgrade'), (error) => {
    assert.equal(error.statusCode, 403);
    assert.equal(error.body, 'WebSocket connections from this origin are not allowed.');
    return true;
  });
  // The same refusal with a negotiated token.
  const { connectionToken } = await h.negotiated(server, HUB);
  const withToken = h.rawSocket(`${h.wsUrl(server, HUB)}?id=${encodeURIComponent(connectionToken)}`, { origin: REFUSED });
  await assert.rejects(h.withTimeout(withToken.opened, 5000, 'the refused upgrade'), { statusCode: 403 });

  const admitted = h.rawSocket(h.wsUrl(server, HUB), { origin: ALLOWED });
  await h.withTimeout(admitted.opened, 5000, 'the admitted upgrade');
  await admitted.handshake();
  await admitted.sendRecords(h.invocation(1, 'echo', 'across origins'));
  assert.deepEqual(await admitted.nextRecord(), { type: 3, invocationId: '1', result: 'across origins' });
}));

test('the hub\'s own origin and clients without Origin need no permission', logged(async () => {
  for (const options of [{ origin: server.url }, {}]) {
    const socket = h.rawSocket(h.wsUrl(server, HUB), options);
    await h.withTimeout(socket.opened, 5000, `upgrade with ${JSON.stringify(options)}`);
    await socket.handshake();
    socket.close();
  }
}));
