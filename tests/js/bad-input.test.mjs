// Bad and unusual input against the conformance hub: raw WebSocket frames
// (`ws`), and oversized POSTs over Server-Sent Events and long polling. Every
// test also proves that a concurrent official-client connection keeps working
// afterwards: a bad client only ever takes down its own connection. Error texts
// are compared whole (signal-server/src/docs/texts.md).
//
// These tests speak raw JSON records on purpose: each pins what the JSON
// protocol does with a particular malformed or unusual text, so they run once,
// whatever SIGNAL_JS_PROTOCOLS says. Their MessagePack counterparts (bad VarInt
// prefixes, truncated arrays, wrong types) are in messagepack.test.mjs. The
// bystanders are official clients of each protocol of the run.

import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

const HUB = '/conformance';
const RS = h.RS;
const { invocation, TEXTS } = h;
let server;
/** Official-client connections (one per protocol of the run) that must survive every test. */
let bystanders;

before(async () => {
  server = await h.startServer('conformance');
  bystanders = await Promise.all(
    h.PROTOCOLS.map((protocol) => h.connect(server, HUB, { transport: h.HttpTransportType.WebSockets, protocol, label: `${protocol} bystander` })),
  );
});

after(async () => {
  h.closeAllRaw();
  await h.stopAllClients();
  await server?.stop();
});

afterEach(async () => {
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

/** The Close error of a message the codec cannot read: serde's words after ASP.NET Core's prefix. */
const malformed = (what) => `Connection closed with an error. InvalidDataException: malformed message: ${what}`;

/** A handshake refusal of a request that is not a handshake. */
const badHandshake = (what) =>
  `the handshake request is malformed: ${what}; expected {"protocol":"json","version":1}`;

/** Asserts the handshake is refused with exactly `error`, then the socket closes with nothing else. */
async function expectHandshakeRefused(socket, error) {
  assert.deepEqual(await socket.nextRecord(), { error }, 'handshake response');
  await socket.waitEnded();
  assert.deepEqual(socket.records, [], 'nothing after the handshake refusal');
}

test('malformed JSON after a good handshake: Close with an error, only that connection', logged(async () => {
  const bad = await h.rawConnect(server, HUB);
  const good = await h.rawConnect(server, HUB);
  await bad.sendRaw(`{"type":1,"target":"echo",${RS}`);
  await h.expectClose(bad, malformed('EOF while parsing a value at line 1 column 26'));
  // Another raw connection, opened before, is fine.
  await good.sendRecords(invocation(1, 'echo', 'good'));
  assert.deepEqual(await good.nextRecord(), { type: 3, invocationId: '1', result: 'good' });
}));

test('a record that is JSON but not an object/message is refused the same way', logged(async () => {
  const bad = await h.rawConnect(server, HUB);
  await bad.sendRaw(`[1,2,3]${RS}`);
  await h.expectClose(bad, malformed('invalid type: integer `2`, expected a string at line 1 column 4'));
}));

test('arguments that are not an array close with an error', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  await socket.sendRecords({ type: 1, invocationId: '1', target: 'echo', arguments: 'nope' });
  await h.expectClose(socket, malformed('invalid type: string "nope", expected a sequence at line 1 column 63'));
}));

test('an invocation without a target closes with an error', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  await socket.sendRecords({ type: 1, invocationId: '1', arguments: [] });
  await h.expectClose(socket, malformed("missing required property 'target' for message type 1"));
}));

describe('the message size limit (32 KiB) over WebSockets', () => {
  test('a 40 KiB message (over the limit, under the 128 KiB frame cap): Close naming the limit', logged(async () => {
    const bad = await h.rawConnect(server, HUB);
    await bad.sendRecords(invocation(1, 'echo', 'x'.repeat(40 * 1024)));
    await h.expectClose(bad, TEXTS.tooLarge());
  }));

  test('a 200 KiB frame (over the 128 KiB frame cap): the same Close before the socket closes', logged(async () => {
    const bad = await h.rawConnect(server, HUB);
    // The server may close before it has read the whole frame: the write can fail.
    await bad.sendRecords(invocation(1, 'echo', 'x'.repeat(200 * 1024))).catch(() => {});
    await h.expectClose(bad, TEXTS.tooLarge());
  }));

  test('a message growing past 32 KiB over several frames without a separator is refused too', logged(async () => {
    const bad = await h.rawConnect(server, HUB);
    await bad.sendRaw('{"type":1,"invocationId":"1","target":"echo","arguments":["');
    for (let i = 0; i < 5; i += 1) {
      if (bad.closeInfo) break;
      await bad.sendRaw('y'.repeat(8 * 1024)).catch(() => {});
    }
    await h.expectClose(bad, TEXTS.tooLarge());
  }));

  test('a message just under 32 KiB is accepted', logged(async () => {
    const socket = await h.rawConnect(server, HUB);
    const overhead = JSON.stringify(invocation(1, 'echo', '')).length;
    const text = 'z'.repeat(32 * 1024 - overhead - 16);
    await socket.sendRecords(invocation(1, 'echo', text));
    assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: text });
  }));
});

for (const transport of ['ServerSentEvents', 'LongPolling']) {
  describe(`the message size limit over ${transport}`, () => {
    test('a POST with a 40 KiB record: Close naming the limit, then the transport ends', logged(async () => {
      const bad = await h.rawOpen(transport, server, HUB);
      await bad.sendRecords(invocation(1, 'echo', 'x'.repeat(40 * 1024)));
      await h.expectClose(bad, TEXTS.tooLarge());
    }));

    test('a POST body over the 1 MiB body cap is refused (413), and the connection ends with the same Close', logged(async () => {
      const bad = await h.rawOpen(transport, server, HUB);
      // Records each under the limit: only the body as a whole is too large.
      const body = h.records(...Array.from({ length: 40 }, (_, i) => invocation(i, 'echo', 'x'.repeat(30 * 1024))));
      assert.deepEqual(await h.post(bad.url, body), { status: 413, body: 'The request body exceeds 1048576 bytes.' });
      // None of the refused body's invocations ran: the Close is the next record.
      await h.expectClose(bad, TEXTS.tooLarge());
    }));

    test('a POST just under 32 KiB is answered', logged(async () => {
      const socket = await h.rawOpen(transport, server, HUB);
      const overhead = JSON.stringify(invocation(1, 'echo', '')).length;
      const text = 'z'.repeat(32 * 1024 - overhead - 16);
      await socket.sendRecords(invocation(1, 'echo', text));
      assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: text });
    }));
  });
}

test('unknown protocol in the handshake: error response, then close', logged(async () => {
  const socket = await h.rawConnect(server, HUB, { handshake: false });
  await socket.sendRecords({ protocol: 'nope', version: 1 });
  await expectHandshakeRefused(socket, TEXTS.unknownProtocol('nope'));
}));

test('unsupported protocol version in the handshake: error response, then close', logged(async () => {
  const socket = await h.rawConnect(server, HUB, { handshake: false });
  await socket.sendRecords({ protocol: 'json', version: 99 });
  await expectHandshakeRefused(socket, TEXTS.unsupportedVersion(99));
}));

test('handshake versions 0, 1 and 2 (stateful-reconnect clients) are accepted', logged(async () => {
  for (const version of [0, 1, 2]) {
    const socket = await h.rawConnect(server, HUB, { handshake: false });
    await socket.handshake(version);
    await socket.sendRecords(invocation(1, 'add', 40, 2));
    assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: 42 }, `version ${version}`);
    socket.close();
  }
}));

test('a hub message before the handshake: handshake error, then close', logged(async () => {
  const socket = await h.rawConnect(server, HUB, { handshake: false });
  await socket.sendRecords(invocation(1, 'echo', 'too early'));
  // The early invocation is not answered: the refusal is all there is.
  await expectHandshakeRefused(socket, badHandshake('missing field `protocol` at line 1 column 71'));
}));

test('malformed handshake JSON: handshake error, then close', logged(async () => {
  const socket = await h.rawConnect(server, HUB, { handshake: false });
  await socket.sendRaw(`{"protocol":${RS}`);
  await expectHandshakeRefused(socket, badHandshake('EOF while parsing a value at line 1 column 12'));
}));

test('handshake and first invocation in one frame: both handled', logged(async () => {
  const socket = await h.rawConnect(server, HUB, { handshake: false });
  await socket.sendRecords({ protocol: 'json', version: 1 }, invocation(1, 'echo', 'same frame'));
  assert.deepEqual(await socket.nextRecord(), {});
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: 'same frame' });
}));

test('handshake split across frames works', logged(async () => {
  const socket = await h.rawConnect(server, HUB, { handshake: false });
  await socket.sendRaw('{"protocol":"js');
  await socket.sendRaw(`on","version":1}${RS}`);
  assert.deepEqual(await socket.nextRecord(), {});
  await socket.sendRecords(invocation(1, 'echo', 'ok'));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: 'ok' });
}));

test('a record split across two frames is answered once, when whole', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  const record = JSON.stringify(invocation(7, 'echo', 'split in two')) + RS;
  const cut = Math.floor(record.length / 2);
  await socket.sendRaw(record.slice(0, cut));
  await socket.sendRaw(record.slice(cut));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '7', result: 'split in two' });
  // Nothing was made of the first half alone: the next record answers the next call.
  await socket.sendRecords(invocation(8, 'echo', 'marker'));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '8', result: 'marker' });
}));

test('a record split in many one-byte frames, even inside a multi-byte character, works', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  const record = Buffer.from(JSON.stringify(invocation(8, 'echo', 'ü✓🚀')) + RS, 'utf8');
  for (const byte of record) {
    // Binary frames: a text frame must be valid UTF-8 on its own.
    await socket.sendRaw(Buffer.from([byte]), { binary: true });
  }
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '8', result: 'ü✓🚀' });
}));

test('two records in one frame are both answered, in order', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  await socket.sendRecords(invocation(1, 'echo', 'first'), invocation(2, 'add', 2, 2));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: 'first' });
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '2', result: 4 });
}));

test('a frame ending in the middle of a second record: the first is answered, the rest waits', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  const second = JSON.stringify(invocation(2, 'echo', 'second')) + RS;
  await socket.sendRaw(JSON.stringify(invocation(1, 'echo', 'first')) + RS + second.slice(0, 10));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: 'first' });
  await socket.sendRaw(second.slice(10));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '2', result: 'second' });
}));

test('unknown method, wrong arguments and a panic do not close the connection', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  await socket.sendRecords(invocation(1, 'nope'));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', error: TEXTS.unknownMethod('nope') });

  await socket.sendRecords(invocation(2, 'add', 1));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '2', error: TEXTS.binding('add') });

  await socket.sendRecords(invocation(3, 'add', 'x', 1));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '3', error: TEXTS.binding('add') });

  await socket.sendRecords(invocation(4, 'panicNow'));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '4', error: TEXTS.unexpected('panicNow') });

  await socket.sendRecords(invocation(5, 'echo', 'alive'));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '5', result: 'alive' });
  assert.equal(socket.closeInfo, undefined);
}));

test('streamIds on a method without stream parameters: error completion (as ASP.NET Core)', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  await socket.sendRecords({ ...invocation(1, 'echo', 'x'), streamIds: ['s1'] });
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', error: TEXTS.streamCount('echo', 1, 0) });
  await socket.sendRecords(invocation(2, 'echo', 'still open'));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '2', result: 'still open' });
}));

test('stream items and completions for unknown streams are ignored', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  await socket.sendRecords(
    { type: 2, invocationId: 'no-such-stream', item: 1 },
    { type: 3, invocationId: 'no-such-stream' },
  );
  await socket.sendRecords(invocation(1, 'echo', 'still open'));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: 'still open' });
  assert.equal(socket.closeInfo, undefined);
}));

test('fire-and-forget invocations get no completion, even when they fail', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  await socket.sendRecords(
    { type: 1, target: 'fail', arguments: ['quiet'] },
    { type: 1, target: 'panicNow', arguments: [] },
    { type: 1, target: 'nope', arguments: [] },
    { type: 1, target: 'echo', arguments: ['ignored'] },
    invocation(9, 'echo', 'next'),
  );
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '9', result: 'next' });
  await socket.sendRecords(invocation(10, 'echo', 'then'));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '10', result: 'then' });
}));

test('a client Ping is accepted silently', logged(async () => {
  const socket = await h.rawConnect(server, HUB, { pings: true });
  await socket.sendRecords({ type: 6 }, invocation(1, 'echo', 'after ping'));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: 'after ping' });
}));

test('a message of an unknown type is ignored and the connection goes on', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  await socket.sendRecords({ type: 99 }, { type: 99, invocationId: '0', target: 'echo', arguments: ['x'] }, invocation(1, 'echo', 'after unknown type'));
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: 'after unknown type' });
  assert.equal(socket.closeInfo, undefined);
}));

test('a client Close message ends the connection, with nothing sent back', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  await socket.sendRecords({ type: 7 });
  assert.deepEqual(await socket.waitEnded(), { code: 1000, reason: '' });
  assert.deepEqual(socket.records, []);
}));

test('headers on an invocation are accepted', logged(async () => {
  const socket = await h.rawConnect(server, HUB);
  await socket.sendRecords({ ...invocation(1, 'echo', 'with headers'), headers: { a: 'b' } });
  assert.deepEqual(await socket.nextRecord(), { type: 3, invocationId: '1', result: 'with headers' });
}));
