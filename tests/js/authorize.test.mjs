// Authentication and authorization with the official client: the `auth`
// example verifies JSON Web Tokens in an axum middleware and leaves a
// `signal::auth::Identity` on the request; its `Secure` hub requires a user
// (`#[signal::authorize]` on the trait) and the `admin` policy for `announce`
// (`#[signal::authorize(policy = "admin")]`); a hub filter refuses long
// announcements; connections close when their token expires. Over each
// transport and hub protocol of the run; the client sends its token through
// `accessTokenFactory` (a header on negotiate and long polling, `access_token`
// on WebSockets and Server-Sent Events).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

const UNAUTHORIZED = "Failed to invoke 'announce' because user is unauthorized";
const TOO_LONG =
  "An unexpected error occurred invoking 'announce' on the server. HubException: an announcement is at most 280 characters";
const EXPIRED = "Connection closed with an error. The connection's authentication expired.";

async function token(server, user, roles = [], ttlSeconds = 3600) {
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user, roles, ttlSeconds }),
  });
  assert.equal(response.status, 200);
  return (await response.json()).token;
}

for (const mode of h.clientModes()) {
  describe(`over ${mode.name}`, () => {
    const as = (server, tokens, label) => ({
      ...mode.options,
      label,
      configure: (b) =>
        b.withUrl(`${server.url}/secure`, {
          ...(mode.options.transport === null ? {} : { transport: mode.options.transport }),
          skipNegotiation: mode.options.skipNegotiation,
          accessTokenFactory: tokens,
        }),
    });

    test('a user connects; a method needing the admin policy refuses others with ASP.NET Core\'s text, and the connection goes on', h.withServer('auth', {}, async (server) => {
      const bobToken = await token(server, 'bob');
      const adaToken = await token(server, 'ada', ['admin']);
      const bob = (await h.connect(server, '/secure', as(server, () => bobToken, 'bob'))).on('announcement');
      const ada = (await h.connect(server, '/secure', as(server, () => adaToken, 'ada'))).on('announcement');

      assert.deepEqual(await bob.invoke('whoAmI'), { user: 'bob', roles: [] });
      assert.deepEqual(await ada.invoke('whoAmI'), { user: 'ada', roles: ['admin'] });

      await assert.rejects(bob.invoke('announce', 'hello'), (error) => {
        assert.equal(error.message, UNAUTHORIZED);
        return true;
      });
      // Refused, not closed: the same connection goes on.
      assert.deepEqual(await bob.invoke('whoAmI'), { user: 'bob', roles: [] });

      await ada.invoke('announce', 'maintenance at noon');
      assert.deepEqual(await bob.next('announcement'), ['ada', 'maintenance at noon']);
      assert.deepEqual(await ada.next('announcement'), ['ada', 'maintenance at noon']);

      // The filter runs after authorization and before the method.
      await assert.rejects(ada.invoke('announce', 'x'.repeat(281)), (error) => {
        assert.equal(error.message, TOO_LONG);
        return true;
      });

      // The identity names the connection's user: user targets reach it.
      await bob.invoke('sendToUser', 'ada', 'hi ada');
      assert.deepEqual(await ada.next('announcement'), ['bob', 'hi ada']);
      await bob.stop();
      await ada.stop();
    }));

    test('without a token, or with a forged one, the connection does not start', h.withServer('auth', {}, async (server) => {
      // Without negotiate, the WebSocket API cannot show the 401: the official
      // client reports a failed upgrade.
      const refusal = mode.options.skipNegotiation ? /WebSocket failed to connect/ : /401|Unauthorized/;
      const anonymous = h.client(server, '/secure', as(server, () => '', 'anonymous'));
      await assert.rejects(anonymous.start(), (error) => refusal.test(String(error.message ?? error)));
      const forged = (await token(server, 'mallory', ['admin'])).slice(0, -2) + 'xx';
      const mallory = h.client(server, '/secure', as(server, () => forged, 'mallory'));
      await assert.rejects(mallory.start(), (error) => refusal.test(String(error.message ?? error)));
    }));

    test('a connection closes when its token expires, and automatic reconnect comes back with a fresh token', h.withServer('auth', {}, async (server) => {
      const issued = [];
      let started = false;
      const tokens = async () => {
        // Tokens for the first start (negotiate and transport) live two
        // seconds; the ones for the reconnect, an hour.
        const fresh = await token(server, 'eve', [], started ? 3600 : 2);
        issued.push({ fresh, started });
        return fresh;
      };
      const eve = h.client(server, '/secure', {
        ...as(server, tokens, 'eve'),
        configure: (b) =>
          b
            .withUrl(`${server.url}/secure`, {
              ...(mode.options.transport === null ? {} : { transport: mode.options.transport }),
              skipNegotiation: mode.options.skipNegotiation,
              accessTokenFactory: tokens,
            })
            .withAutomaticReconnect([0, 100, 500]),
      });
      const reconnecting = new Promise((resolve) => eve.connection.onreconnecting(resolve));
      const reconnected = new Promise((resolve) => eve.connection.onreconnected(resolve));
      await eve.start();
      started = true;
      const firstId = eve.connectionId;
      assert.deepEqual(await eve.invoke('whoAmI'), { user: 'eve', roles: [] });
      const why = await h.withTimeout(reconnecting, 10_000, 'the close at expiry');
      assert.equal(why.message, `Server returned an error on close: ${EXPIRED}`);
      await h.withTimeout(reconnected, 10_000, 'the reconnect');
      if (!mode.options.skipNegotiation) assert.notEqual(eve.connectionId, firstId);
      assert.ok(issued.some((t) => t.started), 'the reconnect asked for a fresh token');
      assert.deepEqual(await eve.invoke('whoAmI'), { user: 'eve', roles: [] });
      await eve.stop();
    }));
  });
}

test('negotiate answers 401 without a token and names the scheme; a forged token gets invalid_token', h.withServer('auth', {}, async (server) => {
  const anonymous = await fetch(`${server.url}/secure/negotiate?negotiateVersion=1`, { method: 'POST' });
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.headers.get('www-authenticate'), 'Bearer');
  assert.equal(await anonymous.text(), 'Authentication is required to connect to this hub.');

  const forged = await fetch(`${server.url}/secure/negotiate?negotiateVersion=1`, {
    method: 'POST',
    headers: { authorization: 'Bearer not.a.jwt' },
  });
  assert.equal(forged.status, 401);
  assert.equal(forged.headers.get('www-authenticate'), 'Bearer error="invalid_token"');

  const valid = await fetch(`${server.url}/secure/negotiate?negotiateVersion=1`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await token(server, 'ada')}` },
  });
  assert.equal(valid.status, 200);
  const negotiated = await valid.json();
  // The transport request needs the token too, not only negotiate.
  const poll = await fetch(`${server.url}/secure?id=${negotiated.connectionToken}`);
  assert.equal(poll.status, 401);
}));
