// The `conformance` hub, driven by the official @microsoft/signalr client: every
// method of the contract, with three clients at once, over each transport of the
// harness (negotiated) and over WebSockets with skipNegotiation.

import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

const HUB = '/conformance';
let server;

before(async () => {
  server = await h.startServer('conformance');
});

after(async () => {
  await h.stopAllClients();
  await server?.stop();
});

const logged = (body) => h.logged(() => server, body);

for (const mode of h.clientModes()) {
  const options = {
    transport: mode.transport,
    skipNegotiation: mode.skipNegotiation,
    methods: ['message', 'groupMessage'],
  };

  describe(`conformance hub over ${mode.name}`, () => {
    /** @type {h.Client[]} */
    let clients;
    let a, b, c;

    before(async () => {
      clients = await h.connectMany(server, HUB, 3, { ...options, label: 'client' });
      [a, b, c] = clients;
    });

    after(async () => {
      await Promise.allSettled(clients.map((x) => x.stop()));
    });

    afterEach(() => {
      // Each test drains what it asserts on; leftovers must not leak into the next.
      for (const x of clients) x.received = [];
    });

    test('echo returns its argument, whatever the text', logged(async () => {
      for (const text of ['hello', '', 'ünïcødé ✓ 🚀', 'record\u001eseparator', '{"type":7}', 'line\nbreak', 'x'.repeat(20_000)]) {
        assert.equal(await a.invoke('echo', text), text);
      }
    }));

    test('method names are matched without case', logged(async () => {
      assert.equal(await a.invoke('ECHO', 'upper'), 'upper');
      assert.equal(await a.invoke('Echo', 'title'), 'title');
      assert.equal(await a.invoke('eChOpErSoN', { name: 'n', age: 1, tags: [], address: null }).then((p) => p.name), 'n');
    }));

    test('add sums two i64', logged(async () => {
      assert.equal(await a.invoke('add', 2, 3), 5);
      assert.equal(await a.invoke('add', -7, 10), 3);
      assert.equal(await a.invoke('add', 0, 0), 0);
      assert.equal(await a.invoke('add', 2 ** 53 - 2, 1), 2 ** 53 - 1);
      assert.equal(await a.invoke('add', -(2 ** 40), -(2 ** 41)), -3 * 2 ** 40);
    }));

    test('echoPerson round-trips a nested object, with and without address', logged(async () => {
      const full = { name: 'Ada', age: 36, tags: ['math', 'engines'], address: { city: 'London' } };
      assert.deepEqual(await a.invoke('echoPerson', full), full);
      const bare = { name: 'Bob', age: 0, tags: [], address: null };
      assert.deepEqual(await a.invoke('echoPerson', bare), bare);
    }));

    test('echoPerson with a missing field fails naming the parameter', logged(async () => {
      await h.assertRejects(a.invoke('echoPerson', { name: 'x', tags: [], address: null }), /'person'/);
      await h.assertRejects(a.invoke('echoPerson', { name: 'x', age: -1, tags: [], address: null }), /'person'/);
      assert.equal(await a.invoke('echo', 'still'), 'still');
    }));

    test('fail rejects with the hub error in ASP.NET\'s words', logged(async () => {
      await h.assertRejects(
        a.invoke('fail', 'boom'),
        "An unexpected error occurred invoking 'fail' on the server. HubException: boom",
      );
      await h.assertRejects(
        a.invoke('fail', 'with ünïcode'),
        "An unexpected error occurred invoking 'fail' on the server. HubException: with ünïcode",
      );
      assert.equal(a.state, h.HubConnectionState.Connected);
      assert.equal(await a.invoke('echo', 'after fail'), 'after fail');
    }));

    test('panicNow gives the generic error and the connection stays usable', logged(async () => {
      await h.assertRejects(a.invoke('panicNow'), "An unexpected error occurred invoking 'panicNow' on the server.");
      assert.equal(a.state, h.HubConnectionState.Connected);
      assert.equal(await a.invoke('echo', 'after panic'), 'after panic');
      // The text is built from the target as the client sent it.
      await h.assertRejects(a.invoke('PANICNOW'), "An unexpected error occurred invoking 'PANICNOW' on the server.");
      assert.equal(await a.invoke('add', 1, 1), 2);
      // Other connections did not notice.
      assert.equal(await b.invoke('echo', 'b fine'), 'b fine');
      assert.equal(a.closedWith, undefined, 'no close event on the panicking client');
    }));

    test('connectionId is the caller\'s public id, distinct per connection', logged(async () => {
      const ids = await Promise.all(clients.map((x) => x.invoke('connectionId')));
      for (const id of ids) {
        assert.equal(typeof id, 'string');
        assert.ok(id.length > 0);
      }
      assert.equal(new Set(ids).size, 3, `ids not distinct: ${ids}`);
      if (mode.skipNegotiation) {
        // The client never learns an id without negotiate.
        assert.equal(a.connectionId, null);
      } else {
        assert.deepEqual(ids, clients.map((x) => x.connectionId));
      }
      // Stable over the connection's life.
      assert.equal(await a.invoke('connectionId'), ids[0]);
    }));

    test('transport names the transport in use', logged(async () => {
      assert.equal(await a.invoke('transport'), h.transportName(mode.transport));
    }));

    test('sendToCaller reaches the caller only, before the completion', logged(async () => {
      const text = h.unique('caller');
      await a.invoke('sendToCaller', text);
      // Sends to the caller arrive before the method's completion: no waiting.
      assert.deepEqual(a.received, [{ method: 'message', args: [text] }]);
      a.received = [];
      await Promise.all([b.assertNothingElse(), c.assertNothingElse(), a.assertNothingElse()]);
    }));

    test('broadcast reaches every client exactly once', logged(async () => {
      const text = h.unique('all');
      await b.invoke('broadcast', text);
      assert.deepEqual(b.received, [{ method: 'message', args: [text] }], 'caller got it before completion');
      b.received = [];
      await Promise.all([a.next('message', { match: ([t]) => t === text }), c.next('message', { match: ([t]) => t === text })]);
      await Promise.all(clients.map((x) => x.assertNothingElse()));
    }));

    test('broadcast by fire-and-forget send (no invocation id) works too', logged(async () => {
      const text = h.unique('send');
      await c.send('broadcast', text);
      await Promise.all(clients.map((x) => x.next('message', { match: ([t]) => t === text })));
      await Promise.all(clients.map((x) => x.assertNothingElse()));
    }));

    test('sendToOthers reaches the two others, not the caller', logged(async () => {
      const text = h.unique('others');
      await a.invoke('sendToOthers', text);
      assert.deepEqual(a.received, [], 'the caller got its own sendToOthers');
      await Promise.all([b.next('message', { match: ([t]) => t === text }), c.next('message', { match: ([t]) => t === text })]);
      await Promise.all(clients.map((x) => x.assertNothingElse()));
    }));

    test('sendToConnection reaches exactly the named connection', logged(async () => {
      const bId = await b.invoke('connectionId');
      const text = h.unique('one');
      await a.invoke('sendToConnection', bId, text);
      assert.deepEqual(await b.next('message'), [text]);
      await Promise.all(clients.map((x) => x.assertNothingElse()));
      // To itself.
      const aId = await a.invoke('connectionId');
      const self = h.unique('self');
      await a.invoke('sendToConnection', aId, self);
      assert.deepEqual(a.received, [{ method: 'message', args: [self] }]);
      a.received = [];
      await Promise.all(clients.map((x) => x.assertNothingElse()));
    }));

    test('sendToConnection to an id that is not connected succeeds and reaches nobody (as ASP.NET Core)', logged(async () => {
      await a.invoke('sendToConnection', 'no-such-connection', h.unique('ghost'));
      await Promise.all(clients.map((x) => x.assertNothingElse()));
    }));

    test('groups: members only; leaveGroup stops delivery', logged(async () => {
      const group = h.unique('group');
      await a.invoke('joinGroup', group);
      await b.invoke('joinGroup', group);
      const first = h.unique('g1');
      await c.invoke('sendToGroup', group, first);
      await Promise.all([a.next('groupMessage'), b.next('groupMessage')]).then(([ra, rb]) => {
        assert.deepEqual(ra, [group, first]);
        assert.deepEqual(rb, [group, first]);
      });
      await Promise.all(clients.map((x) => x.assertNothingElse()));

      // A member sending to its own group gets it too.
      const second = h.unique('g2');
      await a.invoke('sendToGroup', group, second);
      assert.deepEqual(a.received, [{ method: 'groupMessage', args: [group, second] }]);
      a.received = [];
      assert.deepEqual(await b.next('groupMessage'), [group, second]);
      await Promise.all(clients.map((x) => x.assertNothingElse()));

      // Joining twice does not deliver twice.
      await a.invoke('joinGroup', group);
      await b.invoke('leaveGroup', group);
      const third = h.unique('g3');
      await c.invoke('sendToGroup', group, third);
      assert.deepEqual(await a.next('groupMessage'), [group, third]);
      await Promise.all(clients.map((x) => x.assertNothingElse()));

      await a.invoke('leaveGroup', group);
      await c.invoke('sendToGroup', group, h.unique('g4'));
      await Promise.all(clients.map((x) => x.assertNothingElse()));
    }));

    test('leaving a group one is not in, and sending to an empty group, succeed', logged(async () => {
      const group = h.unique('empty');
      await a.invoke('leaveGroup', group);
      await a.invoke('sendToGroup', group, 'nobody');
      await Promise.all(clients.map((x) => x.assertNothingElse()));
    }));

    test('unknown method rejects with its name and the connection stays usable', logged(async () => {
      await h.assertRejects(a.invoke('nope'), /Unknown hub method 'nope'/);
      assert.equal(a.state, h.HubConnectionState.Connected);
      assert.equal(await a.invoke('echo', 'after unknown'), 'after unknown');
    }));

    test('wrong argument count rejects mentioning arguments', logged(async () => {
      await h.assertRejects(a.invoke('add', 1), /argument/i);
      await h.assertRejects(a.invoke('add', 1, 2, 3), /argument/i);
      await h.assertRejects(a.invoke('echo'), /argument/i);
      await h.assertRejects(a.invoke('connectionId', 'extra'), /argument/i);
      assert.equal(await a.invoke('add', 1, 2), 3);
    }));

    test('wrong argument type rejects naming the parameter', logged(async () => {
      await h.assertRejects(a.invoke('add', 'x', 1), /'a'/);
      await h.assertRejects(a.invoke('add', 1, 'y'), /'b'/);
      await h.assertRejects(a.invoke('add', 1.5, 1), /'a'/);
      await h.assertRejects(a.invoke('echo', 42), /'message'/);
      assert.equal(await a.invoke('echo', 'typed'), 'typed');
    }));

    test('many concurrent invocations all complete with their own results', logged(async () => {
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => a.invoke('add', i, 1000)));
      assert.deepEqual(results, Array.from({ length: 50 }, (_, i) => i + 1000));
    }));

    test('a stopped client is no longer reached and others are not disturbed', logged(async () => {
      const extra = await h.connect(server, HUB, { ...options, label: 'extra' });
      const extraId = await extra.invoke('connectionId');
      await extra.stop();
      assert.equal(extra.closedWith, null, 'a clean stop closes without error');
      const text = h.unique('after-stop');
      await a.invoke('broadcast', text);
      await Promise.all(clients.map((x) => x.next('message', { match: ([t]) => t === text })));
      assert.deepEqual(extra.received, []);
      // Its id is gone: addressing it succeeds (as ASP.NET Core) and reaches nobody.
      await a.invoke('sendToConnection', extraId, 'ghost');
      await Promise.all(clients.map((x) => x.assertNothingElse()));
    }));

    test('a message over 32 KiB closes only that client, which gets the server\'s error', logged(async () => {
      const big = await h.connect(server, HUB, { ...options, label: 'big' });
      const pending = big.invoke('echo', 'x'.repeat(40 * 1024));
      const closedWith = await h.withTimeout(big.closed, 5000, 'the oversized client to be closed');
      await assert.rejects(pending);
      assert.ok(closedWith instanceof Error, `closed with ${closedWith}`);
      assert.match(closedWith.message, /maximum message size/i);
      // The others carry on.
      assert.deepEqual(await Promise.all(clients.map((x) => x.invoke('add', 1, 1))), [2, 2, 2]);
    }));

    test('counter streams 0..count', logged(async () => {
      const items = [];
      await h.withTimeout(
        new Promise((resolve, reject) => {
          a.connection.stream('counter', 5, 10).subscribe({ next: (i) => items.push(i), complete: resolve, error: reject });
        }),
        5000,
        'counter stream',
      );
      assert.deepEqual(items, [0, 1, 2, 3, 4]);
    }));

    test('sum adds an uploaded stream of ints', logged(async () => {
      const subject = new h.Subject();
      const result = a.invoke('sum', subject);
      for (const i of [1, 2, 3, 4]) subject.next(i);
      subject.complete();
      assert.equal(await h.withTimeout(result, 5000, 'sum'), 10);
    }));

    test('an upload in progress does not hold back other invocations', logged(async () => {
      const subject = new h.Subject();
      const result = a.invoke('sum', subject);
      subject.next(20);
      // The upload is still open: invocations of the same connection still run.
      assert.equal(await h.withTimeout(a.invoke('echo', 'meanwhile'), 5000, 'echo during an upload'), 'meanwhile');
      subject.next(22);
      subject.complete();
      assert.equal(await h.withTimeout(result, 5000, 'sum'), 42);
    }));

    test('askCaller asks the client method ask and returns its answer', logged(async () => {
      const asker = h.client(server, HUB, { ...options, methods: [], label: 'asker' });
      asker.connection.on('ask', (question) => `answer to ${question}`);
      await asker.start();
      try {
        assert.equal(await h.withTimeout(asker.invoke('askCaller', 'life'), 5000, 'askCaller'), 'answer to life');
      } finally {
        await asker.stop();
      }
    }));
  });
}
