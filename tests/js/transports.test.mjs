// Choosing transports: the official client falling back by itself when the
// server disables transports, refusals of disabled transports, long polling
// keeping what is sent between polls, and the connection log line.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

const HUB = '/conformance';
const servers = [];

async function serverWith(transports) {
  const server = await h.startServer('conformance', { env: { SIGNAL_TRANSPORTS: transports } });
  servers.push(server);
  return server;
}

after(async () => {
  await h.stopAllClients();
  await Promise.all(servers.map((s) => s.stop()));
});

describe('fallback chosen by the official client', () => {
  for (const [transports, expected] of [
    ['ServerSentEvents,LongPolling', 'ServerSentEvents'],
    ['LongPolling', 'LongPolling'],
    ['WebSockets,ServerSentEvents,LongPolling', 'WebSockets'],
  ]) {
    test(`with ${transports} enabled the client lands on ${expected}`, async () => {
      const server = await serverWith(transports);
      // No transport forced: the client walks the negotiated list by itself.
      const c = await h.connect(server, HUB, { transport: null, label: 'auto' });
      assert.equal(await c.invoke('transport'), expected);
      assert.equal(await c.invoke('echo', 'works'), 'works');
      await c.stop();
    });
  }

  test('a disabled transport is refused, and a client that insists on it fails cleanly', async () => {
    const server = await serverWith('LongPolling');
    const negotiated = await h.negotiate(server, HUB);
    const token = negotiated.body.connectionToken;
    const events = await fetch(`${server.url}${HUB}?id=${token}`, { headers: { Accept: 'text/event-stream' } });
    assert.equal(events.status, 400);
    assert.match(await events.text(), /ServerSentEvents transport is not enabled/);
    const c = h.client(server, HUB, { transport: h.HttpTransportType.WebSockets, label: 'insists' });
    await assert.rejects(c.start(), /Unable to connect|not enabled|transport/i);
  });
});

describe('long polling', () => {
  test('messages sent while no poll is pending are neither lost nor repeated', async () => {
    const server = await serverWith('LongPolling');
    const receiver = await h.connect(server, HUB, { transport: h.HttpTransportType.LongPolling, label: 'poller' });
    const sender = await h.connect(server, HUB, { transport: h.HttpTransportType.LongPolling, label: 'sender', methods: [] });
    const id = receiver.connectionId;
    const count = 300;
    // Many sends in flight at once: most arrive while the receiver's poll is
    // being answered or renewed.
    await Promise.all(Array.from({ length: count }, (_, i) => sender.invoke('sendToConnection', id, String(i))));
    await h.eventually(async () => receiver.received.length, (n) => n >= count, { timeout: 10_000, what: `${count} messages` });
    await h.sleep(200);
    const got = receiver.received.map(({ args }) => Number(args[0])).sort((a, b) => a - b);
    assert.deepEqual(got, Array.from({ length: count }, (_, i) => i));
    await Promise.all([receiver.stop(), sender.stop()]);
  });
});

describe('logging', () => {
  test('each connection start logs its id, transport and remote address', async () => {
    const server = await serverWith('WebSockets,ServerSentEvents,LongPolling');
    for (const transport of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
      const mark = server.mark();
      const c = await h.connect(server, HUB, { transport: h.HttpTransportType[transport], label: transport });
      const id = c.connectionId;
      await h.eventually(async () => server.log(mark), (log) => log.includes('connection started'), { what: 'the log line' });
      const line = server.log(mark).split('\n').find((l) => l.includes('connection started'));
      assert.ok(line.includes(`id=${id}`), line);
      assert.ok(line.includes(`transport=${transport}`), line);
      assert.match(line, /remote=Some\(127\.0\.0\.1:\d+\)/);
      await c.stop();
    }
  });
});
