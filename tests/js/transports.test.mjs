// Choosing transports: the official client falling back by itself when the
// server disables transports (with each hub protocol of the run: a MessagePack
// client passes over Server-Sent Events, which carry text only), refusals of
// disabled transports, long polling keeping what is sent between polls, and the
// connection log line. The raw long-polling tests speak JSON records on
// purpose: what they pin (holding, ending and renewing polls) is below the hub
// protocol.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

const HUB = '/conformance';

/** A test body with a conformance server of its own that offers `transports`. */
const withTransports = (transports, body) =>
  h.withServer('conformance', { env: { SIGNAL_TRANSPORTS: transports } }, body);

describe('fallback chosen by the official client', () => {
  for (const protocol of h.PROTOCOLS) {
    for (const [transports, expected] of [
      // The first transport offered that carries the protocol.
      ['ServerSentEvents,LongPolling', protocol === 'json' ? 'ServerSentEvents' : 'LongPolling'],
      ['LongPolling', 'LongPolling'],
      ['WebSockets,ServerSentEvents,LongPolling', 'WebSockets'],
    ]) {
      test(`with ${transports} enabled a ${protocol} client lands on ${expected}`, withTransports(transports, async (server) => {
        // No transport forced: the client walks the negotiated list by itself.
        const c = await h.connect(server, HUB, { transport: null, protocol, label: 'auto' });
        assert.equal(await c.invoke('transport'), expected);
        assert.equal(await c.invoke('echo', 'works'), 'works');
        await c.stop();
      }));
    }
  }

  test('a disabled transport is refused, and a client that insists on it fails cleanly', withTransports('LongPolling', async (server) => {
    const { url } = await h.negotiated(server, HUB);
    const events = await fetch(url, { headers: { Accept: 'text/event-stream' } });
    assert.equal(events.status, 400);
    assert.equal(await events.text(), 'The ServerSentEvents transport is not enabled for this hub.');
    const c = h.client(server, HUB, { transport: h.HttpTransportType.WebSockets, label: 'insists' });
    // The client sees from negotiate that its only transport is not offered.
    await h.assertRejects(
      c.start(),
      "Unable to connect to the server with any of the available transports. LongPolling failed: Error: 'LongPolling' is disabled by the client.",
      'start over a disabled transport',
    );
  }));
});

describe('long polling', () => {
  for (const protocol of h.PROTOCOLS) {
    test(`messages sent while no poll is pending are neither lost nor repeated, with ${protocol}`, withTransports('LongPolling', async (server) => {
      const receiver = await h.connect(server, HUB, { transport: h.HttpTransportType.LongPolling, protocol, label: 'poller' });
      const sender = await h.connect(server, HUB, { transport: h.HttpTransportType.LongPolling, protocol, label: 'sender', methods: [] });
      const id = receiver.connectionId;
      const count = 300;
      // Many sends in flight at once: most arrive while the receiver's poll is
      // being answered or renewed.
      await Promise.all(Array.from({ length: count }, (_, i) => sender.invoke('sendToConnection', id, String(i))));
      // Sent after all of them: once it is in, any repeat of them would be too.
      await sender.invoke('sendToConnection', id, 'end');
      await receiver.next('message', { match: ([text]) => text === 'end', timeout: 10_000 });
      const got = receiver.received.map(({ args }) => Number(args[0])).sort((a, b) => a - b);
      assert.deepEqual(got, Array.from({ length: count }, (_, i) => i));
      await Promise.all([receiver.stop(), sender.stop()]);
    }));
  }

  const empty = { status: 200, contentType: null, body: '' };
  const ended = { status: 204, contentType: null, body: '' };

  test('a poll with nothing to send is answered 200 with an empty body after the hold timeout (no pings)', h.withServer(
    'conformance',
    { env: { SIGNAL_LONG_POLL_TIMEOUT_MS: '200', SIGNAL_KEEP_ALIVE_MS: '50' } },
    async (server) => {
      const poller = await h.rawOpen('LongPolling', server, HUB);
      assert.deepEqual(await h.withTimeout(poller.poll(), 5000, 'the held poll'), empty);
      assert.deepEqual(await h.withTimeout(poller.poll(), 5000, 'the next held poll'), empty);
      // The connection goes on.
      await poller.sendRecords(h.invocation(1, 'echo', 'after two empty polls'));
      assert.deepEqual(await poller.nextRecord(), { type: 3, invocationId: '1', result: 'after two empty polls' });
    },
  ));

  test('a newer poll ends the older one with 204; the newer one gets what comes next', h.withServer('conformance', {}, async (server) => {
    const poller = await h.rawOpen('LongPolling', server, HUB);
    // Which of two concurrent polls reaches the server first is not ours to
    // choose: whichever is older gets 204, the other is held.
    const polls = [poller.poll(), poller.poll()];
    const [older, answer] = await h.withTimeout(
      Promise.race(polls.map((p, i) => p.then((a) => [i, a]))),
      5000,
      'one of the two polls to be ended',
    );
    assert.deepEqual(answer, ended);
    assert.deepEqual(await h.post(poller.url, h.records(h.invocation(1, 'echo', 'to the newer poll'))), { status: 200, body: '' });
    assert.deepEqual(await h.withTimeout(polls[1 - older], 5000, 'the newer poll'), {
      status: 200,
      contentType: 'text/plain',
      body: h.records({ type: 3, invocationId: '1', result: 'to the newer poll' }),
    });
  }));

  test('a connection that goes without a poll for the disconnect timeout ends; one that keeps polling does not', h.withServer(
    'conformance',
    { env: { SIGNAL_LONG_POLL_DISCONNECT_MS: '1000', SIGNAL_LONG_POLL_TIMEOUT_MS: '100' } },
    async (server) => {
      const [idle, busy] = await Promise.all([h.rawOpen('LongPolling', server, HUB), h.rawOpen('LongPolling', server, HUB)]);
      // The busy connection polls back to back (each poll held 100 ms) all along.
      let idleEnded = false;
      const polling = (async () => {
        const answers = [];
        while (!idleEnded) answers.push(await busy.poll());
        return answers;
      })();
      // POSTs are not polls: a ping POSTed to the idle connection is accepted
      // until the server has ended it.
      const refused = await h.eventually(
        () => h.post(idle.url, h.records({ type: 6 })),
        (r) => r.status !== 200,
        { what: 'the idle connection to be ended' },
      );
      idleEnded = true;
      assert.deepEqual(refused, { status: 404, body: 'No Connection with that ID' });
      assert.deepEqual(await idle.poll(), ended);
      const answers = await h.withTimeout(polling, 5000, 'the busy connection\'s last poll');
      assert.deepEqual(answers, answers.map(() => empty), 'the busy connection\'s polls');
      await busy.sendRecords(h.invocation(1, 'echo', 'kept'));
      assert.deepEqual(await busy.nextRecord(), { type: 3, invocationId: '1', result: 'kept' });
    },
  ));
});

// The log line is the connection layer's, below the hub protocol: JSON clients only.
describe('logging', () => {
  test('each connection start logs its id, transport and remote address', withTransports('WebSockets,ServerSentEvents,LongPolling', async (server) => {
    for (const transport of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
      const mark = server.mark();
      const c = await h.connect(server, HUB, { transport: h.HttpTransportType[transport], label: transport });
      const id = c.connectionId;
      // One line per connection: the timestamp, the module and the port vary.
      const pattern = new RegExp(
        `^\\S+ DEBUG connection\\{id=${id} transport=${transport}\\}: [\\w:]+: connection started remote=Some\\(127\\.0\\.0\\.1:\\d+\\)$`,
      );
      const line = () => server.log(mark).split('\n').find((l) => pattern.test(l));
      await h.eventually(line, (found) => found !== undefined, { what: `the line of ${id} matching ${pattern}` });
      await c.stop();
    }
  }));
});
