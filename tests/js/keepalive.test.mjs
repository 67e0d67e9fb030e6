// Keep-alive and timeouts. The server's defaults (ping every 15 s, client timeout
// 30 s, handshake timeout 15 s) are too long for this suite, and the examples do
// not yet let a test shorten them; these tests are skipped until they do.

import { test } from 'node:test';

const why = 'needs 15-30 s: the examples cannot shorten the keep-alive/timeouts yet (e.g. an env variable)';

test('an idle connection receives {"type":6} pings from the server', { skip: why }, () => {
  // Plan: raw socket (harness rawConnect with { pings: true }), handshake, stay
  // idle for a bit more than the keep-alive interval, expect a record { type: 6 }.
});

test('a client that sends nothing within the client timeout is closed with an error', { skip: why }, () => {
  // Plan: raw socket, handshake, send nothing; expect a Close { type: 7, error }
  // mentioning the client timeout, then the socket closes.
});

test('a connection without a handshake is closed after the handshake timeout', { skip: why }, () => {
  // Plan: raw socket, send nothing; the socket closes after the handshake timeout.
});
