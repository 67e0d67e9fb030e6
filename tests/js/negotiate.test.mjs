// Negotiate and the refusals of transport requests, at the HTTP level (fetch)
// and with raw WebSockets (`ws`), against the conformance hub.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

const HUB = '/conformance';
let server;

before(async () => {
  server = await h.startServer('conformance');
});

after(async () => {
  h.closeAllRaw();
  await h.stopAllClients();
  await server?.stop();
});

const logged = (body) => h.logged(() => server, body);

/** Opens a raw WebSocket: `{ status, body }` of its refusal, or `{ status: 101 }` (and closes it). */
async function upgradeStatus(url) {
  const socket = h.rawSocket(url);
  try {
    await h.withTimeout(socket.opened, 5000, `upgrade of ${url}`);
    socket.close();
    return { status: 101 };
  } catch (error) {
    if (error.statusCode) return { status: error.statusCode, body: error.body };
    throw error;
  }
}

test('negotiate v1 answers id, token, version and transports in server order', logged(async () => {
  const { status, headers, body } = await h.negotiate(server, HUB);
  assert.equal(status, 200);
  assert.equal(headers.get('content-type'), 'application/json');
  assert.equal(typeof body.connectionId, 'string');
  assert.ok(body.connectionId.length > 0, 'connectionId not empty');
  assert.equal(typeof body.connectionToken, 'string');
  assert.ok(body.connectionToken.length > 0, 'connectionToken not empty');
  assert.notEqual(body.connectionToken, body.connectionId);
  assert.equal(body.negotiateVersion, 1);
  assert.ok(Array.isArray(body.availableTransports), 'availableTransports is an array');
  assert.ok(body.availableTransports.length >= 1);
  assert.equal(body.availableTransports[0].transport, 'WebSockets', 'WebSockets first');
  const expectedFormats = {
    WebSockets: ['Text', 'Binary'],
    ServerSentEvents: ['Text'],
    LongPolling: ['Text', 'Binary'],
  };
  const names = body.availableTransports.map((t) => t.transport);
  assert.deepEqual(
    names,
    ['WebSockets', 'ServerSentEvents', 'LongPolling'].filter((n) => names.includes(n)),
    'transports in the order WebSockets, ServerSentEvents, LongPolling',
  );
  assert.equal(new Set(names).size, names.length, 'no transport twice');
  for (const t of body.availableTransports) {
    assert.deepEqual(t.transferFormats, expectedFormats[t.transport], `transferFormats of ${t.transport}`);
  }
  assert.ok(!body.useStatefulReconnect, 'no stateful reconnect unless asked');
  assert.equal(body.error, undefined);
  assert.equal(body.url, undefined);
}));

test('each negotiate hands out a fresh id and token', logged(async () => {
  const [x, y] = await Promise.all([h.negotiate(server, HUB), h.negotiate(server, HUB)]);
  assert.notEqual(x.body.connectionId, y.body.connectionId);
  assert.notEqual(x.body.connectionToken, y.body.connectionToken);
}));

test('negotiate v0 has no token: the id is the token', logged(async () => {
  const { status, body } = await h.negotiate(server, HUB, { version: 0 });
  assert.equal(status, 200);
  assert.equal(body.negotiateVersion, 0);
  assert.equal(body.connectionToken, undefined);
  assert.equal(typeof body.connectionId, 'string');
  // The id opens the transport.
  const socket = h.rawSocket(`${h.wsUrl(server, HUB)}?id=${encodeURIComponent(body.connectionId)}`);
  await h.withTimeout(socket.opened, 5000, 'v0 upgrade');
  await socket.handshake();
  await socket.sendRecords({ type: 1, invocationId: '1', target: 'connectionId', arguments: [] });
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: body.connectionId });
  socket.close();
}));

test('the negotiated token opens the connection the id names', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  await socket.sendRecords({ type: 1, invocationId: '1', target: 'connectionId', arguments: [] });
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: socket.connectionId });
  socket.close();
}));

test('GET on the hub without id and without upgrade is 400', logged(async () => {
  const response = await fetch(`${server.url}${HUB}`);
  assert.equal(response.status, 400);
  assert.equal(await response.text(), 'Connection ID required');
}));

test('WebSocket with an unknown id is 404', logged(async () => {
  assert.deepEqual(await upgradeStatus(`${h.wsUrl(server, HUB)}?id=unknown`), { status: 404, body: 'No Connection with that ID' });
}));

test('a token used twice while its connection is open is 409', logged(async () => {
  const { body } = await h.negotiate(server, HUB);
  const url = `${h.wsUrl(server, HUB)}?id=${encodeURIComponent(body.connectionToken)}`;
  const first = h.rawSocket(url);
  await h.withTimeout(first.opened, 5000, 'first upgrade');
  await first.handshake();
  assert.deepEqual(await upgradeStatus(url), { status: 409, body: 'Another transport is already active for this connection.' });
  // The first connection is unaffected.
  await first.sendRecords({ type: 1, invocationId: '1', target: 'echo', arguments: ['first'] });
  assert.deepEqual(await first.nextRecord(), { type: 3, invocationId: '1', result: 'first' });
  first.close();
}));

test('a token whose connection has ended is 404', logged(async () => {
  const { body } = await h.negotiate(server, HUB);
  const url = `${h.wsUrl(server, HUB)}?id=${encodeURIComponent(body.connectionToken)}`;
  const first = h.rawSocket(url);
  await h.withTimeout(first.opened, 5000, 'first upgrade');
  await first.handshake();
  first.ws.close(1000);
  await first.waitEnded();
  const refusal = await h.eventually(
    () => upgradeStatus(url),
    ({ status }) => status !== 101 && status !== 409,
    { what: 'the ended token to be refused' },
  );
  assert.deepEqual(refusal, { status: 404, body: 'No Connection with that ID' });
}));

test('the connection id is not a token', logged(async () => {
  const { body } = await h.negotiate(server, HUB);
  assert.deepEqual(await upgradeStatus(`${h.wsUrl(server, HUB)}?id=${encodeURIComponent(body.connectionId)}`), {
    status: 404,
    body: 'No Connection with that ID',
  });
}));

for (const protocol of h.PROTOCOLS) {
  test(`the official client negotiates and learns the id the hub sees, with ${protocol}`, logged(async () => {
    const c = await h.connect(server, HUB, { transport: h.HttpTransportType.WebSockets, protocol, label: 'negotiated' });
    assert.equal(typeof c.connectionId, 'string');
    assert.equal(await c.invoke('connectionId'), c.connectionId);
    await c.stop();
  }));
}

test('the official client without a transport restriction picks WebSockets', logged(async () => {
  const built = new h.HubConnectionBuilder().withUrl(`${server.url}${HUB}`).configureLogging(h.LogLevel.None).build();
  await built.start();
  try {
    assert.equal(await built.invoke('transport'), 'WebSockets');
  } finally {
    await built.stop();
  }
}));

test('availableTransports follow the server\'s configured order (SIGNAL_TRANSPORTS)', h.withServer('conformance', { env: { SIGNAL_TRANSPORTS: 'LongPolling,WebSockets' } }, async (restricted) => {
  const { status, body } = await h.negotiate(restricted, HUB);
  assert.equal(status, 200);
  assert.deepEqual(body.availableTransports, [
    { transport: 'LongPolling', transferFormats: ['Text', 'Binary'] },
    { transport: 'WebSockets', transferFormats: ['Text', 'Binary'] },
  ]);
  // The official client walks them in that order: with no restriction it
  // takes LongPolling first.
  const c = await h.connect(restricted, HUB, { transport: null, label: 'unrestricted' });
  assert.equal(await c.invoke('transport'), 'LongPolling');
  await c.stop();
  // A client that only allows the disabled transport cannot start.
  const sse = h.client(restricted, HUB, { transport: h.HttpTransportType.ServerSentEvents, label: 'sse' });
  await h.assertRejects(
    sse.start(),
    "Unable to connect to the server with any of the available transports. LongPolling failed: Error: 'LongPolling' is disabled by the client. WebSockets failed: Error: 'WebSockets' is disabled by the client.",
    'start over a disabled transport',
  );
  // And the server refuses the disabled transport's request itself.
  const { body: negotiated } = await h.negotiate(restricted, HUB);
  const response = await fetch(`${restricted.url}${HUB}?id=${encodeURIComponent(negotiated.connectionToken)}`, {
    headers: { Accept: 'text/event-stream' },
  });
  assert.equal(response.status, 400, 'SSE request to a hub without SSE');
  assert.equal(await response.text(), 'The ServerSentEvents transport is not enabled for this hub.');
}));
