// The hub's limits, with the official client: the conformance example's
// SIGNAL_MAX_CONNECTIONS (negotiate answers 503 past it),
// SIGNAL_MAX_INVOCATIONS_PER_SECOND (calls over the rate get an error
// Completion and the connection goes on), SIGNAL_MAX_GROUPS_PER_CONNECTION and
// SIGNAL_MAX_STREAMS_PER_CONNECTION. Every refusal leaves the refused
// connection (and every other one) working. Over each transport and hub
// protocol of the run.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

const FULL = 'The server has reached its limit of 2 connections for this endpoint; try again later.';

for (const mode of h.clientModes({ skipNegotiation: false })) {
  describe(`over ${mode.name}`, () => {
    test('past the connection limit negotiate answers 503; a place freed is taken again', h.withServer('conformance', { env: { SIGNAL_MAX_CONNECTIONS: '2' } }, async (server) => {
      const [a, b] = await h.connectMany(server, '/conformance', 2, mode.options);
      const third = h.client(server, '/conformance', { ...mode.options, label: 'third' });
      await assert.rejects(third.start(), (error) => {
        assert.match(String(error.message), /Status code '503'/);
        assert.ok(String(error.message).includes(FULL), error.message);
        return true;
      });
      // The two connected ones are not affected.
      assert.equal(await a.invoke('echo', 'a'), 'a');
      await b.stop();
      const fourth = await h.eventually(
        async () => {
          const c = h.client(server, '/conformance', { ...mode.options, label: 'fourth' });
          try {
            await c.start();
            return c;
          } catch {
            return undefined;
          }
        },
        (c) => c !== undefined,
        { what: 'a connection once a place is free' },
      );
      assert.equal(await fourth.invoke('echo', 'd'), 'd');
      await fourth.stop();
      await a.stop();
    }));

    test('invocations over the rate are refused with an error and the connection goes on', h.withServer('conformance', { env: { SIGNAL_MAX_INVOCATIONS_PER_SECOND: '5' } }, async (server) => {
      const c = await h.connect(server, '/conformance', mode.options);
      const other = await h.connect(server, '/conformance', { ...mode.options, label: 'other' });
      const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => c.invoke('echo', `m${i}`)));
      const refused = results.filter((r) => r.status === 'rejected');
      const served = results.filter((r) => r.status === 'fulfilled');
      // The bucket holds one second's worth (5) and refills at 5 per second.
      assert.ok(served.length >= 5 && served.length < 30, `served ${served.length}`);
      assert.ok(refused.length > 0);
      for (const r of refused) {
        assert.equal(r.reason.message, "Failed to invoke 'echo' because the connection exceeded its limit of 5 invocations per second.");
      }
      // Another connection has a bucket of its own.
      assert.equal(await other.invoke('echo', 'fine'), 'fine');
      // The refused connection is served again once the bucket refills.
      assert.equal(
        await h.eventually(() => c.invoke('echo', 'later').catch(() => undefined), (v) => v === 'later', { timeout: 3000, what: 'a call after the refill' }),
        'later',
      );
      await c.stop();
      await other.stop();
    }));

    test('a connection may be in so many groups; the add past it fails, the others stand', h.withServer('conformance', { env: { SIGNAL_MAX_GROUPS_PER_CONNECTION: '2' } }, async (server) => {
      const c = (await h.connect(server, '/conformance', mode.options)).on('groupMessage');
      const id = await c.invoke('connectionId');
      await c.invoke('addToGroup', id, 'g1');
      await c.invoke('addToGroup', id, 'g2');
      // Joining a group it is already in is not one more.
      await c.invoke('addToGroup', id, 'g2');
      await assert.rejects(c.invoke('addToGroup', id, 'g3'), (error) => {
        assert.equal(
          error.message,
          `An unexpected error occurred invoking 'addToGroup' on the server. HubException: connection '${id}' is already in 2 groups, the most it may join`,
        );
        return true;
      });
      await c.invoke('sendToGroup', 'g2', 'to g2');
      assert.deepEqual(await c.next('groupMessage'), ['g2', 'to g2']);
      await c.invoke('removeFromGroup', id, 'g1');
      await c.invoke('addToGroup', id, 'g3');
      await c.invoke('sendToGroup', 'g3', 'to g3');
      assert.deepEqual(await c.next('groupMessage'), ['g3', 'to g3']);
      await c.stop();
    }));

    test('a stream past the per-connection limit is refused; the open one goes on', h.withServer('conformance', { env: { SIGNAL_MAX_STREAMS_PER_CONNECTION: '1' } }, async (server) => {
      const c = await h.connect(server, '/conformance', mode.options);
      const first = [];
      let firstDone;
      const firstCompleted = new Promise((resolve, reject) => {
        firstDone = c.connection.stream('counter', 5, 100).subscribe({
          next: (item) => first.push(item),
          complete: resolve,
          error: reject,
        });
      });
      const refused = await new Promise((resolve) => {
        c.connection.stream('counter', 1, 0).subscribe({
          next: () => resolve(new Error('an item of a refused stream')),
          complete: () => resolve(new Error('the refused stream completed')),
          error: resolve,
        });
      });
      assert.equal(refused.message, "Failed to invoke 'counter' because the connection already has 1 stream(s) open.");
      await h.withTimeout(firstCompleted, 10_000, 'the open stream');
      assert.deepEqual(first, [0, 1, 2, 3, 4]);
      void firstDone;
      // Its slot is free again once it ended.
      const again = [];
      await new Promise((resolve, reject) => {
        c.connection.stream('counter', 2, 0).subscribe({ next: (i) => again.push(i), complete: resolve, error: reject });
      });
      assert.deepEqual(again, [0, 1]);
      await c.stop();
    }));
  });
}

test('a WebSocket that skips negotiation is refused with 503 past the connection limit', h.withServer('conformance', { env: { SIGNAL_MAX_CONNECTIONS: '1' } }, async (server) => {
  const held = await h.connect(server, '/conformance', { transport: h.HttpTransportType.WebSockets, skipNegotiation: true });
  const status = await new Promise((resolve, reject) => {
    const socket = new h.WebSocket(`${server.url.replace('http', 'ws')}/conformance`);
    socket.on('unexpected-response', (_request, response) => {
      resolve(response.statusCode);
      socket.terminate();
    });
    socket.on('open', () => reject(new Error('the upgrade was accepted past the limit')));
    socket.on('error', () => {});
  });
  assert.equal(status, 503);
  assert.equal(await held.invoke('echo', 'still here'), 'still here');
  await held.stop();
}));
