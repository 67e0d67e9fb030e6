// The `conformance` hub, driven by the official @microsoft/signalr client: every
// method of the contract, with three clients at once, over each transport of the
// harness (negotiated) and over WebSockets with skipNegotiation, once with each
// hub protocol of the run (JSON, and MessagePack but over Server-Sent Events).
// The contract's values (strings, i64, u32, the Person struct, null) come back
// the same from both protocols: the server writes a struct as a MessagePack map
// with string keys, and @msgpack/msgpack reads integers up to 2^53 as numbers.

import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

const HUB = '/conformance';
const { TEXTS } = h;
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
  const options = { ...mode.options, methods: ['message', 'groupMessage'] };

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

    test('echoPerson with a missing or out-of-range field fails to bind', logged(async () => {
      await h.assertRejects(a.invoke('echoPerson', { name: 'x', tags: [], address: null }), TEXTS.binding('echoPerson'));
      await h.assertRejects(a.invoke('echoPerson', { name: 'x', age: -1, tags: [], address: null }), TEXTS.binding('echoPerson'));
      assert.equal(await a.invoke('echo', 'still'), 'still');
    }));

    test('fail rejects with the hub error in ASP.NET\'s words', logged(async () => {
      await h.assertRejects(
        a.invoke('fail', 'boom'),
        "An unexpected error occurred invoking 'fail' on the server. HubException: boom",
      );
      await h.assertRejects(a.invoke('fail', 'with ünïcode'), TEXTS.hubError('fail', 'with ünïcode'));
      assert.equal(a.state, h.HubConnectionState.Connected);
      assert.equal(await a.invoke('echo', 'after fail'), 'after fail');
    }));

    test('panicNow gives the generic error and the connection stays usable', logged(async () => {
      await h.assertRejects(a.invoke('panicNow'), TEXTS.unexpected('panicNow'));
      assert.equal(a.state, h.HubConnectionState.Connected);
      assert.equal(await a.invoke('echo', 'after panic'), 'after panic');
      // The text is built from the target as the client sent it.
      await h.assertRejects(a.invoke('PANICNOW'), TEXTS.unexpected('PANICNOW'));
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
      await h.assertDelivered(clients, [a], { args: [text] });
    }));

    test('broadcast reaches every client exactly once', logged(async () => {
      const text = h.unique('all');
      await b.invoke('broadcast', text);
      assert.deepEqual(b.received, [{ method: 'message', args: [text] }], 'caller got it before completion');
      await h.assertDelivered(clients, clients, { args: [text] });
    }));

    test('broadcast by fire-and-forget send (no invocation id) works too', logged(async () => {
      const text = h.unique('send');
      await c.send('broadcast', text);
      await h.assertDelivered(clients, clients, { args: [text] });
    }));

    test('sendToOthers reaches the two others, not the caller', logged(async () => {
      const text = h.unique('others');
      await a.invoke('sendToOthers', text);
      assert.deepEqual(a.received, [], 'the caller got its own sendToOthers');
      await h.assertDelivered(clients, [b, c], { args: [text] });
    }));

    test('sendToConnection reaches exactly the named connection', logged(async () => {
      const bId = await b.invoke('connectionId');
      const text = h.unique('one');
      await a.invoke('sendToConnection', bId, text);
      await h.assertDelivered(clients, [b], { args: [text] });
      // To itself.
      const aId = await a.invoke('connectionId');
      const self = h.unique('self');
      await a.invoke('sendToConnection', aId, self);
      assert.deepEqual(a.received, [{ method: 'message', args: [self] }]);
      await h.assertDelivered(clients, [a], { args: [self] });
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
      await h.assertDelivered(clients, [a, b], { method: 'groupMessage', args: [group, first] });

      // A member sending to its own group gets it too.
      const second = h.unique('g2');
      await a.invoke('sendToGroup', group, second);
      assert.deepEqual(a.received, [{ method: 'groupMessage', args: [group, second] }]);
      await h.assertDelivered(clients, [a, b], { method: 'groupMessage', args: [group, second] });

      // Joining twice does not deliver twice.
      await a.invoke('joinGroup', group);
      await b.invoke('leaveGroup', group);
      const third = h.unique('g3');
      await c.invoke('sendToGroup', group, third);
      await h.assertDelivered(clients, [a], { method: 'groupMessage', args: [group, third] });

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

    test('unknown method rejects with ASP.NET Core\'s text and the connection stays usable', logged(async () => {
      await h.assertRejects(a.invoke('nope'), TEXTS.unknownMethod('nope'));
      assert.equal(a.state, h.HubConnectionState.Connected);
      assert.equal(await a.invoke('echo', 'after unknown'), 'after unknown');
    }));

    test('wrong argument count rejects without details (detailed errors off)', logged(async () => {
      await h.assertRejects(a.invoke('add', 1), TEXTS.binding('add'));
      await h.assertRejects(a.invoke('add', 1, 2, 3), TEXTS.binding('add'));
      await h.assertRejects(a.invoke('echo'), TEXTS.binding('echo'));
      await h.assertRejects(a.invoke('connectionId', 'extra'), TEXTS.binding('connectionId'));
      assert.equal(await a.invoke('add', 1, 2), 3);
    }));

    test('wrong argument type rejects without details (detailed errors off)', logged(async () => {
      await h.assertRejects(a.invoke('add', 'x', 1), TEXTS.binding('add'));
      await h.assertRejects(a.invoke('add', 1, 'y'), TEXTS.binding('add'));
      await h.assertRejects(a.invoke('add', 1.5, 1), TEXTS.binding('add'));
      await h.assertRejects(a.invoke('echo', 42), TEXTS.binding('echo'));
      assert.equal(await a.invoke('echo', 'typed'), 'typed');
    }));

    test('a method invoked the wrong way: streaming by invoke, plain by stream, an upload left out', logged(async () => {
      await h.assertRejects(a.invoke('counter', 1, 1), TEXTS.streamingByInvoke('counter'));
      const streamed = new Promise((resolve, reject) => {
        a.connection.stream('echo', 'x').subscribe({ next: () => reject(new Error('an item')), complete: () => reject(new Error('completed')), error: resolve });
      });
      const error = await h.withTimeout(streamed, 5000, 'the stream error');
      assert.equal(error.message, TEXTS.plainByStream('echo'));
      await h.assertRejects(a.invoke('sum'), TEXTS.streamCount('sum', 0, 1));
      assert.equal(await a.invoke('echo', 'still'), 'still');
    }));

    test('invocations of one connection run in order: a slow call sent first completes first', logged(async () => {
      const completed = [];
      // Not awaited one by one: both are sent before either completes.
      await Promise.all([
        a.invoke('delay', 300, 'slow').then((tag) => completed.push(tag)),
        a.invoke('delay', 0, 'fast').then((tag) => completed.push(tag)),
      ]);
      assert.deepEqual(completed, ['slow', 'fast']);
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

    for (const kib of [40, 200]) {
      test(`a ${kib} KiB message closes only that client, which gets the server's reason`, logged(async () => {
        const big = await h.connect(server, HUB, { ...options, label: 'big' });
        const pending = big.invoke('echo', 'x'.repeat(kib * 1024));
        const closedWith = await h.withTimeout(big.closed, 5000, 'the oversized client to be closed');
        assert.ok(closedWith instanceof Error, `closed with ${closedWith}`);
        assert.equal(closedWith.message, TEXTS.closedByServer(TEXTS.tooLarge()));
        // The pending call fails with the reason the connection closed.
        await h.assertRejects(pending, closedWith.message);
        // The others carry on.
        assert.deepEqual(await Promise.all(clients.map((x) => x.invoke('add', 1, 1))), [2, 2, 2]);
      }));
    }

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

    test('a client result the client answers with an error reaches the caller with the client\'s text unchanged', logged(async () => {
      const asker = h.client(server, HUB, { ...options, methods: [], label: 'thrower' });
      asker.connection.on('ask', (question) => {
        throw new Error(`no answer to ${question}`);
      });
      await asker.start();
      try {
        // The official client answers a throwing handler with `${error}`.
        await h.assertRejects(asker.invoke('askCaller', 'life'), TEXTS.hubError('askCaller', 'Error: no answer to life'));
        assert.equal(await asker.invoke('echo', 'after'), 'after');
      } finally {
        await asker.stop();
      }
    }));
  });
}

for (const protocol of h.PROTOCOLS) {
  const [mode] = h.clientModes({ protocols: [protocol] });
  test(`with detailed errors on (SIGNAL_DETAILED_ERRORS=1), argument errors say what did not bind, with ${protocol}`, { skip: !mode && 'no transport of the run carries it' }, h.withServer(
    'conformance',
    { env: { SIGNAL_DETAILED_ERRORS: '1' } },
    async (detailed) => {
      const c = await h.connect(detailed, HUB, { ...mode.options, label: 'detailed' });
      await h.assertRejects(c.invoke('add', 'x', 1), TEXTS.bindingTypeDetailed('add'));
      await h.assertRejects(c.invoke('add', 1), TEXTS.bindingCountDetailed('add', 1, 2));
      await h.assertRejects(c.invoke('add', 1, 2, 3), TEXTS.bindingCountDetailed('add', 3, 2));
      // Texts that carry their reason anyway do not change.
      await h.assertRejects(c.invoke('nope'), TEXTS.unknownMethod('nope'));
      await h.assertRejects(c.invoke('fail', 'boom'), TEXTS.hubError('fail', 'boom'));
      assert.equal(await c.invoke('add', 1, 2), 3);
    },
  ));
}
