// The connect request in hub code, and a bearer token in front of a hub: the
// conformance example's `userId()` and `requestHeader(name)`, and
// `SIGNAL_AUTH_TOKEN`, which makes `/conformance` and `/echo` require the
// bearer (header or `access_token`, as the official client sends it over
// each transport) and names the user `conformance-user`. Over each transport
// and hub protocol of the run.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

const TOKEN = 'conformance-secret-1';

for (const mode of h.clientModes()) {
  describe(`over ${mode.name}`, () => {
    const withUrl = (server, extra) => (b) =>
      b.withUrl(`${server.url}/conformance`, {
        ...(mode.options.transport === null ? {} : { transport: mode.options.transport }),
        skipNegotiation: mode.options.skipNegotiation,
        headers: { 'X-Signal-Test': 'from the client' },
        ...extra,
      });

    test('hub code sees the request the connection started with; anonymous has no user', h.withServer('conformance', {}, async (server) => {
      const c = await h.connect(server, '/conformance', { ...mode.options, label: 'plain', configure: withUrl(server, {}) });
      assert.equal(await c.invoke('requestHeader', 'x-signal-test'), 'from the client');
      assert.equal(await c.invoke('requestHeader', 'x-no-such-header'), null);
      assert.equal(await c.invoke('userId'), null);
      await c.stop();
    }));

    test('SIGNAL_AUTH_TOKEN: the bearer connects as conformance-user; without it, 401', h.withServer('conformance', { env: { SIGNAL_AUTH_TOKEN: TOKEN } }, async (server) => {
      const c = await h.connect(server, '/conformance', {
        ...mode.options,
        label: 'authorized',
        configure: withUrl(server, { accessTokenFactory: () => TOKEN }),
      });
      assert.equal(await c.invoke('userId'), 'conformance-user');
      assert.equal(await c.invoke('requestHeader', 'x-signal-test'), 'from the client');
      assert.equal(await c.invoke('echo', 'hi'), 'hi');
      await c.stop();

      // Without negotiate, the browser WebSocket API cannot show the 401: the
      // official client reports a failed upgrade.
      const refusal = mode.options.skipNegotiation ? /WebSocket failed to connect/ : /401|Unauthorized/;
      const refused = h.client(server, '/conformance', { ...mode.options, label: 'anonymous' });
      await assert.rejects(refused.start(), (error) => refusal.test(String(error.message ?? error)));
      const wrong = h.client(server, '/conformance', {
        ...mode.options,
        label: 'wrong token',
        configure: withUrl(server, { accessTokenFactory: () => 'not-the-token' }),
      });
      await assert.rejects(wrong.start(), (error) => refusal.test(String(error.message ?? error)));
    }));
  });
}

test('SIGNAL_AUTH_TOKEN: negotiate and /echo answer 401 without the bearer, and accept it in the header or access_token', h.withServer('conformance', { env: { SIGNAL_AUTH_TOKEN: TOKEN } }, async (server) => {
  for (const path of ['/conformance', '/echo']) {
    const none = await h.negotiate(server, path);
    assert.equal(none.status, 401, `${path} without a token`);
    assert.equal(none.body, 'A bearer token is required.');
    const header = await h.negotiate(server, path, { headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.equal(header.status, 200, `${path} with the header`);
    const query = await h.negotiate(server, path, { query: `&access_token=${TOKEN}` });
    assert.equal(query.status, 200, `${path} with access_token`);
    const wrong = await h.negotiate(server, path, { headers: { Authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401, `${path} with a wrong token`);
  }
}));
