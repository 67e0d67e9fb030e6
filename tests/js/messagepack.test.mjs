// The MessagePack hub protocol on the wire, against the conformance hub: raw
// `ws` WebSockets and long polling speaking length-prefixed MessagePack
// (encoded by the official MessagePackHubProtocol, or by @msgpack/msgpack for
// messages it would never write), every answer decoded and compared whole;
// malformed input, which closes only its own connection with a Close that says
// what was wrong; and MessagePack over Server-Sent Events, which neither the
// official client nor the server allows (SSE carries text only).
//
// They run when SIGNAL_JS_PROTOCOLS includes messagepack (as by default). The
// official client's MessagePack runs of every hub scenario are in the other
// suites.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

const HUB = '/conformance';
const { TEXTS, invocation, msgpack } = h;
let server;
/** Official-client connections, one per protocol, that must survive every test. */
let bystanders;
const skip = !h.PROTOCOLS.includes('messagepack') && 'SIGNAL_JS_PROTOCOLS leaves out messagepack';

before(async () => {
  if (skip) return;
  server = await h.startServer('conformance');
  bystanders = await Promise.all(
    ['json', 'messagepack'].map((protocol) =>
      h.connect(server, HUB, { transport: h.HttpTransportType.WebSockets, protocol, label: `${protocol} bystander` }),
    ),
  );
});

after(async () => {
  h.closeAllRaw();
  await h.stopAllClients();
  await server?.stop();
});

afterEach(() => {
  h.closeAllRaw();
});

const logged = (body) =>
  h.logged(
    () => server,
    async (t) => {
      await body(t);
      // The bystanders are still connected and answering, and saw nothing.
      for (const bystander of bystanders) {
        const text = h.unique('bystander');
        assert.equal(bystander.state, h.HubConnectionState.Connected, `${bystander.label} still connected`);
        assert.equal(await bystander.invoke('echo', text), text);
        await bystander.assertNothingElse();
      }
    },
  );

const open = (options = {}) => h.rawConnect(server, HUB, { protocol: 'messagepack', ...options });

/** The Close error of a message the server cannot read: ASP.NET Core's prefix, then what was wrong. */
const PREFIX = 'Connection closed with an error. InvalidDataException: ';

/** What the server says is wrong with each malformed input (after `PREFIX`). */
const DETAIL = {
  prefixTooLong: 'malformed message: the length prefix of a binary message is longer than 5 bytes',
  // The prefix is read whole before anything else: 4 GiB is over the message
  // size limit (32 KiB) before it is over what a prefix may announce (2 GiB).
  fourGiB: 'The maximum message size of 32768B was exceeded. The message size can be configured in HubOptions.',
  truncated: "malformed MessagePack message: the message ends after 10 bytes, in the middle of 'arguments'",
  typeIsString: "malformed MessagePack message: expected an integer for 'messageType' at byte 1, found a string",
  empty: 'malformed MessagePack message: the message is empty; expected an array starting with the message type',
  notAnArray: "malformed MessagePack message: expected an array for 'message' at byte 0, found a map",
};

/**
 * Asserts the next record is a Close whose error is `PREFIX + detail`, exactly
 * (the prefix checked alone first, so a different detail shows as such), as
 * the official client reads it too, and that the transport then ends with
 * nothing after the Close.
 */
async function expectMalformed(connection, detail) {
  const close = await connection.nextRecord();
  assert.ok(Array.isArray(close) && close[0] === 7, `a Close message, got ${JSON.stringify(close)}`);
  assert.equal(String(close[1]).slice(0, PREFIX.length), PREFIX, 'the Close error starts as ASP.NET Core\'s');
  assert.deepEqual(close, [7, PREFIX + detail, false], 'the Close message');
  assert.deepEqual(h.hubMessage(close), { type: 7, error: PREFIX + detail, allowReconnect: false });
  await connection.waitEnded();
  assert.deepEqual(connection.inbox.records, [], 'nothing after the Close message');
}

describe('MessagePack never over Server-Sent Events', { skip }, () => {
  test('an official MessagePack client restricted to SSE fails to start, with the client\'s own text', logged(async () => {
    const c = h.client(server, HUB, { transport: h.HttpTransportType.ServerSentEvents, protocol: 'messagepack', label: 'binary over sse' });
    // The client itself passes over SSE for a binary protocol; nothing reaches
    // the server's SSE endpoint.
    await h.assertRejects(
      c.start(),
      'Unable to connect to the server with any of the available transports. ' +
        "WebSockets failed: Error: 'WebSockets' is disabled by the client. " +
        "ServerSentEvents failed: Error: 'ServerSentEvents' does not support Binary. " +
        "LongPolling failed: Error: 'LongPolling' is disabled by the client.",
      'start of a MessagePack client over SSE',
    );
  }));

  test('with SSE the only transport offered, an unrestricted MessagePack client finds none', h.withServer(
    'conformance',
    { env: { SIGNAL_TRANSPORTS: 'ServerSentEvents' } },
    async (sseOnly) => {
      const { body } = await h.negotiate(sseOnly, HUB);
      assert.deepEqual(body.availableTransports, [{ transport: 'ServerSentEvents', transferFormats: ['Text'] }]);
      const c = h.client(sseOnly, HUB, { transport: null, protocol: 'messagepack', label: 'binary, no transport' });
      await h.assertRejects(
        c.start(),
        "Unable to connect to the server with any of the available transports. ServerSentEvents failed: Error: 'ServerSentEvents' does not support Binary.",
        'start of a MessagePack client with only SSE offered',
      );
      // A JSON client gets in over the same transport.
      const json = await h.connect(sseOnly, HUB, { transport: null, label: 'text over sse' });
      assert.equal(await json.invoke('transport'), 'ServerSentEvents');
    },
  ));

  test('a raw MessagePack handshake over an event stream is refused with ASP.NET Core\'s text, then the stream ends', logged(async () => {
    const { url } = await h.negotiated(server, HUB);
    const stream = await h.EventStream.open(url);
    assert.equal(stream.status, 200);
    assert.deepEqual(await h.post(url, h.handshakeRecord('messagepack', 1)), { status: 200, body: '' });
    const error = "Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format.";
    assert.deepEqual(await stream.nextRecord(), { error });
    // On the wire: the opening comment, the refusal as one data line, nothing else.
    assert.equal(await stream.waitEnded(), `:\r\ndata: ${JSON.stringify({ error })}${h.RS}\r\n\r\n`);
  }));
});

describe('raw MessagePack over WebSockets', { skip }, () => {
  test('the handshake is answered {} and the server\'s messages come in binary frames', logged(async () => {
    const socket = await open();
    await socket.sendRecords(invocation(1, 'echo', 'binary'));
    assert.deepEqual(await socket.nextRecord(), [3, {}, '1', 3, 'binary']);
    assert.deepEqual(socket.frameKinds, ['binary', 'binary']);
    assert.deepEqual(socket.frames.map((frame) => h.hex(frame)), [
      h.hex(Buffer.from(`{}${h.RS}`)),
      h.hex(h.messagePackMessages([3, {}, '1', 3, 'binary'])),
    ]);
  }));

  test('completions decode to exactly the result, in ASP.NET Core\'s layout', logged(async () => {
    const socket = await open();
    await socket.sendRecords(invocation(1, 'echo', 'ünïcødé ✓ 🚀'));
    const echoed = await socket.nextRecord();
    assert.deepEqual(echoed, [3, {}, '1', 3, 'ünïcødé ✓ 🚀']);
    // What the official client reads from the same bytes.
    assert.deepEqual(h.hubMessage(echoed), {
      type: 3,
      headers: {},
      invocationId: '1',
      result: 'ünïcødé ✓ 🚀',
      error: undefined,
    });

    // i64 past 32 bits both ways: numbers, not BigInts, for @msgpack/msgpack 2.
    await socket.sendRecords(invocation(2, 'add', 2 ** 53 - 2, 1), invocation(3, 'add', -(2 ** 40), -(2 ** 41)));
    assert.deepEqual(await socket.nextRecord(), [3, {}, '2', 3, 2 ** 53 - 1]);
    assert.deepEqual(await socket.nextRecord(), [3, {}, '3', 3, -3 * 2 ** 40]);

    // A struct is a map with string keys (not an array of fields); None is nil.
    const full = { name: 'Ada', age: 36, tags: ['math', 'engines'], address: { city: 'London' } };
    const bare = { name: 'Bob', age: 0, tags: [], address: null };
    await socket.sendRecords(invocation(4, 'echoPerson', full), invocation(5, 'echoPerson', bare));
    assert.deepEqual(await socket.nextRecord(), [3, {}, '4', 3, full]);
    assert.deepEqual(await socket.nextRecord(), [3, {}, '5', 3, bare]);

    // A method without a result: the void completion, four elements.
    await socket.sendRecords(invocation(6, 'joinGroup', h.unique('group')));
    assert.deepEqual(await socket.nextRecord(), [3, {}, '6', 2]);

    // Errors: result kind 1 and the text.
    await socket.sendRecords(invocation(7, 'nope'), invocation(8, 'fail', 'boom'), invocation(9, 'add', 1.5, 1));
    assert.deepEqual(await socket.nextRecord(), [3, {}, '7', 1, TEXTS.unknownMethod('nope')]);
    assert.deepEqual(await socket.nextRecord(), [3, {}, '8', 1, TEXTS.hubError('fail', 'boom')]);
    assert.deepEqual(await socket.nextRecord(), [3, {}, '9', 1, TEXTS.binding('add')]);
  }));

  test('a call to the client is a six-element Invocation with a nil id and empty stream ids', logged(async () => {
    const socket = await open();
    await socket.sendRecords(invocation(1, 'sendToCaller', 'to you'));
    assert.deepEqual(await socket.nextRecord(), [1, {}, null, 'message', ['to you'], []]);
    assert.deepEqual(await socket.nextRecord(), [3, {}, '1', 2]);
  }));

  test('a stream: StreamItems, then the void completion', logged(async () => {
    const socket = await open();
    await socket.sendRecords({ type: 4, invocationId: 's', target: 'counter', arguments: [3, 0], streamIds: [] });
    assert.deepEqual(await socket.nextRecord(), [2, {}, 's', 0]);
    assert.deepEqual(await socket.nextRecord(), [2, {}, 's', 1]);
    assert.deepEqual(await socket.nextRecord(), [2, {}, 's', 2]);
    assert.deepEqual(await socket.nextRecord(), [3, {}, 's', 2]);
  }));

  test('an upload: stream items and their completion from the client', logged(async () => {
    const socket = await open();
    await socket.sendRecords(
      { type: 1, invocationId: '1', target: 'sum', arguments: [], streamIds: ['up'] },
      { type: 2, invocationId: 'up', item: 20 },
      { type: 2, invocationId: 'up', item: 22 },
      { type: 3, invocationId: 'up' },
    );
    assert.deepEqual(await socket.nextRecord(), [3, {}, '1', 3, 42]);
  }));

  test('a client result: the server asks with an id, the raw client answers with a Completion', logged(async () => {
    const socket = await open();
    await socket.sendRecords(invocation(1, 'askCaller', 'life'));
    const ask = await socket.nextRecord();
    assert.equal(ask.length, 6);
    const [, headers, id, target, args, streamIds] = ask;
    assert.deepEqual([headers, target, args, streamIds], [{}, 'ask', ['life'], []]);
    assert.equal(typeof id, 'string');
    assert.ok(id.length > 0, 'the question has an invocation id');
    await socket.sendRecords({ type: 3, invocationId: id, result: '42' });
    assert.deepEqual(await socket.nextRecord(), [3, {}, '1', 3, '42']);
  }));

  test('a Ping and a message of an unknown type are accepted silently', logged(async () => {
    const socket = await open({ pings: true });
    await socket.sendRecords({ type: 6 }, [99, {}, 'ignored'], invocation(1, 'echo', 'after'));
    assert.deepEqual(await socket.nextRecord(), [3, {}, '1', 3, 'after']);
    assert.equal(socket.closeInfo, undefined);
  }));

  test('a message split in one-byte frames, its two-byte length prefix too, is answered once, when whole', logged(async () => {
    const socket = await open();
    const text = 'y'.repeat(200);
    const bytes = h.messagePackMessages(invocation(1, 'echo', text));
    assert.ok(bytes[0] & 0x80, 'the length prefix takes two bytes');
    for (const byte of bytes) await socket.sendRaw(Buffer.from([byte]));
    assert.deepEqual(await socket.nextRecord(), [3, {}, '1', 3, text]);
    await socket.sendRecords(invocation(2, 'echo', 'marker'));
    assert.deepEqual(await socket.nextRecord(), [3, {}, '2', 3, 'marker']);
  }));

  test('two messages in one frame and one message across two frames are all answered, in order', logged(async () => {
    const socket = await open();
    const two = h.messagePackMessages(invocation(1, 'echo', 'first'), invocation(2, 'add', 2, 2));
    const third = h.messagePackMessages(invocation(3, 'echo', 'third'));
    await socket.sendRaw(Buffer.concat([two, third.subarray(0, 4)]));
    assert.deepEqual(await socket.nextRecord(), [3, {}, '1', 3, 'first']);
    assert.deepEqual(await socket.nextRecord(), [3, {}, '2', 3, 4]);
    await socket.sendRaw(third.subarray(4));
    assert.deepEqual(await socket.nextRecord(), [3, {}, '3', 3, 'third']);
  }));

  test('a message over the size limit (32 KiB): Close naming the limit', logged(async () => {
    const socket = await open();
    await socket.sendRecords(invocation(1, 'echo', 'x'.repeat(40 * 1024)));
    await h.expectClose(socket, TEXTS.tooLarge());
  }));
});

describe('malformed MessagePack closes only its connection, saying what was wrong', { skip }, () => {
  const cases = [
    ['a length prefix of six bytes', () => Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), DETAIL.prefixTooLong],
    ['a five-byte length prefix claiming 4 GiB', () => Buffer.from([0x80, 0x80, 0x80, 0x80, 0x10]), DETAIL.fourGiB],
    [
      'an array that announces five elements and ends after four (the length prefix is right)',
      () => h.lengthPrefixed(Buffer.concat([Buffer.from([0x95]), msgpack.encode(1), msgpack.encode({}), msgpack.encode('1'), msgpack.encode('echo')])),
      DETAIL.truncated,
    ],
    ['an array whose message type is a string', () => h.messagePackMessages(['1', {}, '1', 'echo', ['x']]), DETAIL.typeIsString],
    ['a message of length 0', () => Buffer.from([0x00]), DETAIL.empty],
    ['a map where the message array should be', () => h.lengthPrefixed(msgpack.encode({ type: 1, target: 'echo' })), DETAIL.notAnArray],
  ];

  for (const [what, bytes, detail] of cases) {
    test(`${what}, over WebSockets`, logged(async () => {
      const good = await open();
      const bad = await open();
      await bad.sendRaw(bytes());
      await expectMalformed(bad, detail);
      // The other raw connection, opened before, is fine.
      await good.sendRecords(invocation(1, 'echo', 'good'));
      assert.deepEqual(await good.nextRecord(), [3, {}, '1', 3, 'good']);
    }));
  }

  test('the truncated array, POSTed over long polling: the Close in a binary poll, then 204', logged(async () => {
    const bad = await h.rawOpen('LongPolling', server, HUB, { protocol: 'messagepack' });
    const [, bytes, detail] = cases[2];
    await bad.sendRaw(bytes());
    await expectMalformed(bad, detail);
    assert.deepEqual(bad.polls.at(-1), { status: 204, contentType: null, body: Buffer.alloc(0) });
  }));
});

describe('raw MessagePack over long polling', { skip }, () => {
  test('a POSTed invocation is answered in a binary poll', logged(async () => {
    const poller = await h.rawOpen('LongPolling', server, HUB, { protocol: 'messagepack' });
    await poller.sendRecords(invocation(1, 'echo', 'over long polling'), invocation(2, 'add', 40, 2));
    assert.deepEqual(await poller.nextRecord(), [3, {}, '1', 3, 'over long polling']);
    assert.deepEqual(await poller.nextRecord(), [3, {}, '2', 3, 42]);
    const answered = poller.polls.filter((poll) => poll.body.length > 0);
    assert.deepEqual(
      answered.map((poll) => [poll.status, poll.contentType]),
      answered.map(() => [200, 'application/octet-stream']),
    );
  }));
});

describe('keep-alive and timeouts in MessagePack', { skip }, () => {
  test('an idle raw WebSocket receives pings, each the bytes 02 91 06 in a binary frame', h.withServer(
    'conformance',
    { env: { SIGNAL_KEEP_ALIVE_MS: '100' } },
    async (pinging) => {
      const socket = await h.rawConnect(pinging, HUB, { protocol: 'messagepack', pings: true });
      assert.deepEqual(await socket.nextRecord(), [6]);
      assert.deepEqual(await socket.nextRecord(), [6]);
      assert.deepEqual(socket.frames.slice(1, 3).map((frame) => h.hex(frame)), ['02 91 06', '02 91 06']);
      assert.deepEqual(socket.frameKinds.slice(1, 3), ['binary', 'binary']);
    },
  ));

  test('a raw WebSocket that sends nothing after the handshake gets the Close naming the client timeout', h.withServer(
    'conformance',
    { env: { SIGNAL_CLIENT_TIMEOUT_MS: '1000' } },
    async (strict) => {
      const socket = await h.rawConnect(strict, HUB, { protocol: 'messagepack' });
      await h.expectClose(socket, TEXTS.clientTimeout('1s'));
    },
  ));
});
