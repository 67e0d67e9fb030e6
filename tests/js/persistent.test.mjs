// Raw (persistent) connections: the official client's HttpConnection — the
// connection layer under HubConnection — against the conformance example's
// `/echo` endpoint, which sends every message back to its sender as it came.
// Over every transport, in both transfer formats the transport offers.

import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

// HttpConnection is the official client's own class, not re-exported by its
// package index.
const require = createRequire(import.meta.url);
const { HttpConnection } = require('@microsoft/signalr/dist/cjs/HttpConnection.js');
const { TransferFormat } = require('@microsoft/signalr/dist/cjs/ITransport.js');

const ECHO = '/echo';

/** The transfer formats a transport carries (negotiate says the same). */
function formats(transport) {
  return transport === h.HttpTransportType.ServerSentEvents
    ? [TransferFormat.Text]
    : [TransferFormat.Text, TransferFormat.Binary];
}

const silent = { log() {} };

/** An open HttpConnection with an inbox of what it received and its close. */
async function open(server, transport, format, { skipNegotiation = false } = {}) {
  const connection = new HttpConnection(`${server.url}${ECHO}`, {
    transport,
    skipNegotiation,
    logger: silent,
  });
  const waiters = new h.Waiters();
  const received = [];
  let closed;
  connection.onreceive = (data) => {
    received.push(data);
    waiters.wake();
  };
  connection.onclose = (error) => {
    closed = { error };
    waiters.wake();
  };
  await connection.start(format);
  return {
    connection,
    next: () =>
      waiters.until(() => (received.length > 0 ? received.shift() : undefined), { what: 'an echo' }),
    closed: () => waiters.until(() => closed, { what: 'the connection to close' }),
    stop: () => connection.stop(),
  };
}

const bytesOf = (data) => [...new Uint8Array(data)];

describe('HttpConnection against /echo', () => {
  let server;
  before(async () => {
    server = await h.startServer('conformance');
  });
  after(async () => {
    await server?.stop();
  });

  for (const transport of h.TRANSPORTS) {
    const name = h.transportName(transport);
    for (const format of formats(transport)) {
      const formatName = TransferFormat[format];

      test(`${name}, ${formatName}: every message comes back as it was sent`, h.logged(() => server, async () => {
        const c = await open(server, transport, format);
        if (format === TransferFormat.Text) {
          for (const text of ['hello', 'ünïcödé ✓', '{"not":"a hub message"}\u001e', 'x'.repeat(20_000)]) {
            await c.connection.send(text);
            assert.equal(await c.next(), text);
          }
        } else {
          for (const bytes of [[1, 2, 3], [0, 255, 0x1e, 0x0a, 0x0d], Array.from({ length: 20_000 }, (_, i) => i % 251)]) {
            await c.connection.send(new Uint8Array(bytes).buffer);
            const echoed = await c.next();
            assert.ok(echoed instanceof ArrayBuffer, `binary comes back as binary, got ${typeof echoed}`);
            assert.deepEqual(bytesOf(echoed), bytes);
          }
        }
        await c.stop();
        assert.deepEqual(await c.closed(), { error: undefined });
      }));
    }

    test(`${name}: a 1 MiB message is refused by the size limit; other connections go on`, h.logged(() => server, async () => {
      const other = await open(server, transport, TransferFormat.Text);
      const big = await open(server, transport, TransferFormat.Text);
      await big.connection.send('x'.repeat(1024 * 1024)).catch(() => {});
      const { error } = await big.closed();
      if (transport === h.HttpTransportType.WebSockets) {
        // The reason travels in the WebSocket Close frame (1008, policy violation).
        assert.equal(
          String(error),
          'Error: WebSocket closed with status code: 1008 (The maximum message size of 32768B was exceeded.).',
        );
      }
      await other.connection.send('still here');
      assert.equal(await other.next(), 'still here');
      await other.stop();
    }));
  }

  if (h.TRANSPORTS.includes(h.HttpTransportType.WebSockets)) {
    test('WebSockets with skipNegotiation echoes too', h.logged(() => server, async () => {
      const c = await open(server, h.HttpTransportType.WebSockets, TransferFormat.Binary, { skipNegotiation: true });
      await c.connection.send(new Uint8Array([7, 8, 9]).buffer);
      assert.deepEqual(bytesOf(await c.next()), [7, 8, 9]);
      await c.stop();
    }));

    test('a client that disconnects mid-message harms nothing', h.logged(() => server, async () => {
      const other = await open(server, h.HttpTransportType.WebSockets, TransferFormat.Text);
      // A raw socket sends the first fragment of a message, then drops the TCP
      // connection without finishing it or closing.
      const socket = new h.WebSocket(`${server.url.replace('http', 'ws')}${ECHO}`);
      await new Promise((resolve, reject) => {
        socket.once('open', resolve);
        socket.once('error', reject);
      });
      await new Promise((resolve) => socket.send('half a mess', { fin: false }, resolve));
      socket.terminate();
      await other.connection.send('after');
      assert.equal(await other.next(), 'after');
      await other.stop();
    }));
  }
});
