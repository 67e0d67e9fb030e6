// Keep-alive and timeouts. The conformance example takes its timeouts from the
// environment (SIGNAL_KEEP_ALIVE_MS, SIGNAL_CLIENT_TIMEOUT_MS,
// SIGNAL_HANDSHAKE_TIMEOUT_MS), so each test starts a server of its own with
// timeouts short enough to act within a second. Tests wait for what the timeout
// does (a ping, a Close, the end of a transport), never for a time. The official
// client runs with each hub protocol of the run; the raw tests speak JSON
// records on purpose (their MessagePack twins are in messagepack.test.mjs).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

const HUB = '/conformance';
const { TEXTS } = h;

/** Official-client modes over transports with keep-alive (long polling has none: the poll is its keep-alive). */
const pinged = h.clientModes({ skipNegotiation: false }).filter((m) => m.transport !== h.HttpTransportType.LongPolling);

describe('keep-alive', () => {
  const env = { SIGNAL_KEEP_ALIVE_MS: '100' };

  test('an idle WebSocket receives {"type":6} pings, again and again', h.withServer('conformance', { env }, async (server) => {
    const socket = await h.rawConnect(server, HUB, { pings: true });
    assert.deepEqual(await socket.nextRecord(), { type: 6 });
    assert.deepEqual(await socket.nextRecord(), { type: 6 });
  }));

  test('an idle event stream receives pings as data lines', h.withServer('conformance', { env }, async (server) => {
    const stream = await h.rawOpen('ServerSentEvents', server, HUB, { pings: true });
    assert.deepEqual(await stream.nextRecord(), { type: 6 });
    assert.deepEqual(await stream.nextRecord(), { type: 6 });
    // On the wire: the opening comment, the handshake answer, then the pings.
    const expected = `:\r\ndata: {}${h.RS}\r\n\r\ndata: {"type":6}${h.RS}\r\n\r\ndata: {"type":6}${h.RS}\r\n\r\n`;
    assert.equal(stream.text.slice(0, expected.length), expected);
  }));

  for (const mode of pinged) {
    test(`the official client over ${mode.name} with a short server timeout stays connected on the server's pings`, h.withServer('conformance', { env }, async (server) => {
      // The client closes after 2 s without a message; the server's pings
      // (every 100 ms when idle) are all it gets.
      const c = await h.connect(server, HUB, { ...mode.options, label: 'idle', configure: (b) => b.withServerTimeout(2000) });
      // 25 pings, each sent after 100 ms of quiet, span more than the client's timeout.
      await c.waitFor(() => (c.pings >= 25 ? true : undefined), { timeout: 10_000, what: '25 pings' });
      assert.equal(c.state, h.HubConnectionState.Connected);
      assert.equal(c.closedWith, undefined);
      assert.equal(await c.invoke('echo', 'still here'), 'still here');
    }));
  }
});

describe('client timeout', () => {
  const env = { SIGNAL_CLIENT_TIMEOUT_MS: '1000' };
  const closeText = TEXTS.clientTimeout('1s');

  test('a raw WebSocket that sends nothing after the handshake gets the Close naming the timeout', h.withServer('conformance', { env }, async (server) => {
    const socket = await h.rawConnect(server, HUB);
    await h.expectClose(socket, closeText);
  }));

  test('a raw event stream whose client sends nothing gets the same Close, then ends', h.withServer('conformance', { env }, async (server) => {
    const stream = await h.rawOpen('ServerSentEvents', server, HUB);
    await h.expectClose(stream, closeText);
  }));

  for (const mode of pinged) {
    test(`the official client over ${mode.name}, silent (client keep-alive 60 s), is closed with the server's reason`, h.withServer('conformance', { env }, async (server) => {
      const c = await h.connect(server, HUB, {
        ...mode.options,
        label: 'silent',
        configure: (b) => b.withKeepAliveInterval(60_000).withServerTimeout(120_000),
      });
      const error = await h.withTimeout(c.closed, 10_000, 'the silent client to be closed');
      assert.ok(error instanceof Error, `closed with ${error}`);
      assert.equal(error.message, TEXTS.closedByServer(closeText));
    }));

    test(`the official client over ${mode.name} that pings (every 100 ms) is not closed`, h.withServer('conformance', { env: { ...env, SIGNAL_KEEP_ALIVE_MS: '100' } }, async (server) => {
      const c = await h.connect(server, HUB, {
        ...mode.options,
        label: 'pinging',
        configure: (b) => b.withKeepAliveInterval(100),
      });
      // The server's pings mark the time: 25 of them span two client timeouts.
      await c.waitFor(() => (c.pings >= 25 ? true : undefined), { timeout: 10_000, what: '25 pings' });
      assert.equal(c.closedWith, undefined);
      assert.equal(await c.invoke('echo', 'still here'), 'still here');
    }));
  }
});

describe('handshake timeout', () => {
  const env = { SIGNAL_HANDSHAKE_TIMEOUT_MS: '300' };

  test('a WebSocket without a handshake is closed, with nothing sent', h.withServer('conformance', { env }, async (server) => {
    const socket = await h.rawConnect(server, HUB, { handshake: false });
    assert.deepEqual(await socket.waitEnded(), { code: 1000, reason: '' });
    assert.deepEqual(socket.frames, []);
  }));

  test('an event stream without a handshake ends, with nothing sent but its opening comment', h.withServer('conformance', { env }, async (server) => {
    const stream = await h.rawOpen('ServerSentEvents', server, HUB, { handshake: false });
    assert.equal(await stream.waitEnded(), ':\r\n');
    // The connection is gone: a late handshake finds nothing.
    assert.deepEqual(await h.post(stream.url, h.records({ protocol: 'json', version: 1 })), { status: 404, body: 'No Connection with that ID' });
  }));

  test('a long-polling connection without a handshake: the pending poll returns 204', h.withServer('conformance', { env }, async (server) => {
    const poller = await h.rawOpen('LongPolling', server, HUB, { handshake: false });
    assert.deepEqual(await h.withTimeout(poller.poll(), 5000, 'the poll'), { status: 204, contentType: null, body: '' });
    assert.deepEqual(await h.post(poller.url, h.records({ protocol: 'json', version: 1 })), { status: 404, body: 'No Connection with that ID' });
  }));
});
