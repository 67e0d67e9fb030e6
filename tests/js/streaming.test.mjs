// Streams both ways, cancellation, client results and stateful reconnect, with
// the official client, over every transport the run asks for (stateful
// reconnect over WebSockets only, as the protocol allows), once with each hub
// protocol of the run.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import * as h from './harness.mjs';

const TARGETS = '/targets';
const CONFORMANCE = '/conformance';
const { TEXTS } = h;

let targets;
let conformance;

before(async () => {
  [targets, conformance] = await Promise.all([h.startServer('targets'), h.startServer('conformance')]);
});

after(async () => {
  await h.stopAllClients();
  await Promise.all([targets?.stop(), conformance?.stop()]);
});

const activeTickers = (c) => c.invoke('activeTickers');

/**
 * The error of `sum` when the client uploads the string 'not a number' for an
 * i64: the deserializer's words differ by protocol. serde_json quotes the
 * value and says where in the JSON text it was; the MessagePack decoder reads
 * a number by its marker and names only the kind of value it found there.
 */
const itemTypeError = {
  json: 'a stream item could not be read as i64: invalid type: string "not a number", expected i64 at line 1 column 14',
  messagepack: 'a stream item could not be read as i64: invalid type: a string, expected a number or a boolean',
};

/** The Close a server shutdown sends, as received raw: a JSON record or a MessagePack array. */
const shutdownClose = {
  json: { type: 7, allowReconnect: true },
  messagepack: [7, null, true],
};

for (const mode of h.clientModes({ skipNegotiation: false })) {
  const options = mode.options;

  describe(`streams and client results over ${mode.name}`, () => {
    test('a disposed stream stops its producer on the server', h.logged(() => targets, async () => {
      const c = await h.connect(targets, TARGETS, { ...options, label: 'streamer' });
      const items = [];
      let subscription;
      await h.withTimeout(new Promise((resolve, reject) => {
        subscription = c.connection.stream('ticker', 5).subscribe({
          next: (i) => {
            items.push(i);
            if (items.length === 3) resolve();
          },
          complete: () => reject(new Error('the ticker completed by itself')),
          error: reject,
        });
      }), 5000, 'three ticks');
      assert.deepEqual(items.slice(0, 3), [0, 1, 2]);
      assert.ok((await activeTickers(c)) >= 1);
      subscription.dispose();
      await h.eventually(() => activeTickers(c), (n) => n === 0, { what: 'the server dropped the ticker' });
      await c.stop();
    }));

    test('a connection that ends stops its streams', h.logged(() => targets, async () => {
      const watcher = await h.connect(targets, TARGETS, { ...options, label: 'watcher' });
      const c = await h.connect(targets, TARGETS, { ...options, label: 'leaver' });
      await h.withTimeout(new Promise((resolve, reject) => {
        c.connection.stream('ticker', 5).subscribe({ next: resolve, complete() {}, error: reject });
      }), 5000, 'first tick');
      await c.stop();
      await h.eventually(() => activeTickers(watcher), (n) => n === 0, { what: 'the ticker of the ended connection stopped' });
      await watcher.stop();
    }));

    test('a client result without a handler fails cleanly', h.logged(() => conformance, async () => {
      const c = await h.connect(conformance, CONFORMANCE, { ...options, methods: ['message'], label: 'no-handler' });
      await h.assertRejects(c.invoke('askCaller', 'hello?'), TEXTS.hubError('askCaller', "Client didn't provide a result."));
      // The connection goes on.
      assert.equal(await c.invoke('echo', 'still here'), 'still here');
      await c.stop();
    }));

    test('a client that disconnects mid-question gives the asker an error', h.logged(() => targets, async () => {
      const asker = await h.connect(targets, TARGETS, { ...options, label: 'asker' });
      const asked = h.client(targets, TARGETS, { ...options, label: 'asked' });
      let questioned;
      const gotQuestion = new Promise((resolve) => { questioned = resolve; });
      // Never answers: it leaves instead.
      asked.connection.on('ask', () => { questioned(); return new Promise(() => {}); });
      await asked.start();
      const id = await asked.invoke('connectionId');
      const answer = asker.invoke('askClient', id, 'are you there?');
      answer.catch(() => {}); // it may reject before the assertion below awaits it
      await h.withTimeout(gotQuestion, 5000, 'the question reached the client');
      await asked.stop();
      await h.assertRejects(answer, TEXTS.hubError('askClient', `connection '${id}' disconnected before answering`));
      assert.equal(await asker.invoke('connectionId'), asker.connectionId);
      await asker.stop();
    }));

    test('a client result from another connection', h.logged(() => targets, async () => {
      const asker = await h.connect(targets, TARGETS, { ...options, label: 'asker' });
      const asked = h.client(targets, TARGETS, { ...options, label: 'asked' });
      asked.connection.on('ask', async (question) => `${question} yes`);
      await asked.start();
      const id = await asked.invoke('connectionId');
      assert.equal(await asker.invoke('askClient', id, 'ready?'), 'ready? yes');
      await h.assertRejects(
        asker.invoke('askClient', 'no-such-connection', 'hello?'),
        TEXTS.hubError('askClient', "connection 'no-such-connection' is not connected"),
      );
      await Promise.all([asker.stop(), asked.stop()]);
    }));

    test('an error in an upload reaches the hub method', h.logged(() => conformance, async () => {
      const c = await h.connect(conformance, CONFORMANCE, { ...options, label: 'uploader' });
      const subject = new h.Subject();
      const result = c.invoke('sum', subject);
      subject.next(1);
      subject.error(new Error('sensor failed'));
      // The client completes the upload with its error's message.
      await h.assertRejects(result, TEXTS.hubError('sum', 'sensor failed'));
      // A wrongly typed item is an error too, and the connection goes on.
      const typed = new h.Subject();
      const second = c.invoke('sum', typed);
      typed.next('not a number');
      typed.complete();
      await h.assertRejects(second, TEXTS.hubError('sum', itemTypeError[mode.protocol]));
      assert.equal(await c.invoke('add', 2, 2), 4);
      await c.stop();
    }));

    test('several uploads in one call', h.logged(() => targets, async () => {
      const c = await h.connect(targets, TARGETS, { ...options, label: 'two uploads' });
      const first = new h.Subject();
      const second = new h.Subject();
      const result = c.invoke('concat', first, ',', second);
      first.next('a');
      second.next('c');
      first.next('b');
      second.next('d');
      second.complete();
      first.complete();
      assert.equal(await h.withTimeout(result, 5000, 'concat'), 'a,b|c,d');
      await c.stop();
    }));

    test('a server shutdown asks clients to reconnect: Close with allowReconnect on the wire', h.withServer('targets', {}, async (server) => {
      // Its own server: this test stops it.
      const c = await h.connect(server, TARGETS, {
        ...options,
        label: 'reconnecting',
        configure: (b) => b.withAutomaticReconnect([60_000]),
      });
      const reconnecting = new Promise((resolve) => c.connection.onreconnecting(resolve));
      const raw = await h.rawOpen(h.transportName(mode.transport), server, TARGETS, { protocol: mode.protocol });
      const close = raw.nextRecord(10_000);
      await server.stop();
      // Exactly the Close, no error: the official client reconnects instead of closing.
      const received = await close;
      assert.deepEqual(received, shutdownClose[mode.protocol]);
      if (mode.protocol === 'messagepack') {
        assert.deepEqual(h.hubMessage(received), { type: 7, error: null, allowReconnect: true });
      }
      await h.withTimeout(reconnecting, 5000, 'the client started reconnecting');
      assert.equal(c.state, h.HubConnectionState.Reconnecting);
      await c.stop();
    }));
  });
}

describe('stateful reconnect', { skip: !h.TRANSPORTS.includes(h.HttpTransportType.WebSockets) && 'WebSockets only' }, () => {
  /** A TCP proxy the test controls: `cut()` drops every connection through it. */
  async function proxy(port) {
    const sockets = new Set();
    const server = net.createServer((client) => {
      const upstream = net.connect(port, '127.0.0.1');
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => sockets.delete(s));
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      url: `http://127.0.0.1:${server.address().port}`,
      name: 'proxy',
      cut() {
        for (const s of sockets) s.destroy();
      },
      close: () => new Promise((resolve) => server.close(resolve)),
    };
  }

  for (const protocol of h.PROTOCOLS) {
    test(`a dropped socket loses no message and repeats none, with the same connection id, with ${protocol}`, h.logged(() => conformance, async () => {
      const relay = await proxy(conformance.port);
      const receiver = h.client(relay, CONFORMANCE, {
        transport: h.HttpTransportType.WebSockets,
        protocol,
        label: 'stateful',
        configure: (b) => b.withStatefulReconnect(),
      });
      await receiver.start();
      const id = receiver.connectionId;
      const sender = await h.connect(conformance, CONFORMANCE, { protocol, label: 'sender', methods: [] });
      const count = 200;
      const sending = (async () => {
        for (let i = 0; i < count; i += 1) {
          await sender.invoke('sendToConnection', id, String(i));
          if (i === 50) relay.cut(); // mid-stream, while the server keeps sending
        }
      })();
      await sending;
      // Sent after all of them: once it is in, anything replayed twice is too.
      await sender.invoke('sendToConnection', id, 'end');
      await receiver.next('message', { match: ([text]) => text === 'end', timeout: 10_000 });
      const texts = receiver.received.map(({ args }) => Number(args[0]));
      assert.deepEqual(texts, Array.from({ length: count }, (_, i) => i));
      assert.equal(receiver.connectionId, id);
      assert.equal(await receiver.invoke('connectionId'), id);
      await Promise.all([receiver.stop(), sender.stop()]);
      await relay.close();
    }));
  }
});
