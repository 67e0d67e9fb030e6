// The `targets` fixture hub: every send target of the server, with the official
// client. Connections: alice1 and alice2 (user alice), bob (user bob), anon (no
// user). The user id is the `user` query parameter of the hub URL. Over each
// transport of the run, once with each hub protocol.

import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import * as h from './harness.mjs';

let server;

before(async () => {
  server = await h.startServer('targets');
});

after(async () => {
  await h.stopAllClients();
  await server?.stop();
});

const logged = (body) => h.logged(() => server, body);

for (const mode of h.clientModes({ skipNegotiation: false })) {
  const options = mode.options;

  describe(`targets hub over ${mode.name}`, () => {
    let alice1, alice2, bob, anon, all;
    const ids = new Map();
    const id = (c) => ids.get(c);

    before(async () => {
      [alice1, alice2, bob, anon] = await Promise.all([
        h.connect(server, '/targets?user=alice', { ...options, label: 'alice1' }),
        h.connect(server, '/targets?user=alice', { ...options, label: 'alice2' }),
        h.connect(server, '/targets?user=bob', { ...options, label: 'bob' }),
        h.connect(server, '/targets', { ...options, label: 'anon' }),
      ]);
      all = [alice1, alice2, bob, anon];
      for (const c of all) ids.set(c, await c.invoke('connectionId'));
    });

    after(async () => {
      await Promise.allSettled(all.map((c) => c.stop()));
    });

    afterEach(() => {
      for (const c of all) c.received = [];
    });

    /**
     * Has `sender` call `method(...args, text)` and asserts that exactly
     * `expected` got `message(text)`, once each, and nobody else anything.
     */
    async function expectDelivery(sender, method, args, expected) {
      const text = h.unique(method);
      await sender.invoke(method, ...args, text);
      await h.assertDelivered(all, expected, { args: [text] });
    }

    test('connectionId is the negotiated id', logged(async () => {
      for (const c of all) assert.equal(id(c), c.connectionId);
      assert.equal(new Set(all.map(id)).size, 4);
    }));

    test('userId is the user query parameter, null without one', logged(async () => {
      assert.equal(await alice1.invoke('userId'), 'alice');
      assert.equal(await alice2.invoke('userId'), 'alice');
      assert.equal(await bob.invoke('userId'), 'bob');
      assert.equal(await anon.invoke('userId'), null);
    }));

    test('sendToAll reaches every connection', logged(async () => {
      await expectDelivery(bob, 'sendToAll', [], all);
    }));

    test('sendToCaller reaches the caller only', logged(async () => {
      await expectDelivery(alice2, 'sendToCaller', [], [alice2]);
    }));

    test('sendToOthers reaches all but the caller', logged(async () => {
      await expectDelivery(alice1, 'sendToOthers', [], [alice2, bob, anon]);
    }));

    test('sendToConnection reaches the one connection', logged(async () => {
      await expectDelivery(anon, 'sendToConnection', [id(alice2)], [alice2]);
      await expectDelivery(anon, 'sendToConnection', [id(anon)], [anon]);
    }));

    test('sendToConnections reaches each listed connection', logged(async () => {
      await expectDelivery(anon, 'sendToConnections', [[id(alice1), id(bob)]], [alice1, bob]);
      await expectDelivery(bob, 'sendToConnections', [[]], []);
    }));

    test('sendToConnections skips ids that are not connected, and lists naming one twice deliver once', logged(async () => {
      await expectDelivery(anon, 'sendToConnections', [['no-such-connection', id(bob)]], [bob]);
      await expectDelivery(anon, 'sendToConnections', [[id(alice2), id(alice2)]], [alice2]);
    }));

    test('sendToConnection to an id that is not connected succeeds and reaches nobody (as ASP.NET Core)', logged(async () => {
      await expectDelivery(anon, 'sendToConnection', ['no-such-connection'], []);
    }));

    test('sendToAllExcept skips the listed connections', logged(async () => {
      await expectDelivery(bob, 'sendToAllExcept', [[id(alice1), id(bob)]], [alice2, anon]);
      await expectDelivery(bob, 'sendToAllExcept', [[]], all);
    }));

    test('sendToGroup reaches members only; leaveGroup stops it', logged(async () => {
      const group = h.unique('g');
      await alice1.invoke('joinGroup', group);
      await bob.invoke('joinGroup', group);
      await expectDelivery(anon, 'sendToGroup', [group], [alice1, bob]);
      await bob.invoke('leaveGroup', group);
      await expectDelivery(anon, 'sendToGroup', [group], [alice1]);
      await alice1.invoke('leaveGroup', group);
      await expectDelivery(anon, 'sendToGroup', [group], []);
    }));

    test('sendToGroups delivers once to a member of several of the groups', logged(async () => {
      const g1 = h.unique('g1');
      const g2 = h.unique('g2');
      const g3 = h.unique('g3');
      await alice1.invoke('joinGroup', g1);
      await alice1.invoke('joinGroup', g2);
      await bob.invoke('joinGroup', g2);
      await anon.invoke('joinGroup', g3);
      await expectDelivery(alice2, 'sendToGroups', [[g1, g2]], [alice1, bob]);
      await expectDelivery(alice2, 'sendToGroups', [[g1, g1]], [alice1]);
      await expectDelivery(alice2, 'sendToGroups', [[]], []);
      for (const [c, g] of [[alice1, g1], [alice1, g2], [bob, g2], [anon, g3]]) await c.invoke('leaveGroup', g);
    }));

    test('sendToGroupExcept skips the listed members', logged(async () => {
      const group = h.unique('gx');
      for (const c of [alice1, alice2, bob]) await c.invoke('joinGroup', group);
      await expectDelivery(anon, 'sendToGroupExcept', [group, [id(alice2)]], [alice1, bob]);
      // Excluding a non-member changes nothing.
      await expectDelivery(anon, 'sendToGroupExcept', [group, [id(anon)]], [alice1, alice2, bob]);
      for (const c of [alice1, alice2, bob]) await c.invoke('leaveGroup', group);
    }));

    test('sendToOthersInGroup reaches the other members, not the caller', logged(async () => {
      const group = h.unique('go');
      for (const c of [alice1, bob, anon]) await c.invoke('joinGroup', group);
      await expectDelivery(bob, 'sendToOthersInGroup', [group], [alice1, anon]);
      // A caller outside the group reaches all members.
      await expectDelivery(alice2, 'sendToOthersInGroup', [group], [alice1, bob, anon]);
      for (const c of [alice1, bob, anon]) await c.invoke('leaveGroup', group);
    }));

    test('user ids and group names are compared exactly (case-sensitive, as ASP.NET Core)', logged(async () => {
      await expectDelivery(anon, 'sendToUser', ['ALICE'], []);
      const group = h.unique('Case');
      await bob.invoke('joinGroup', group);
      await expectDelivery(anon, 'sendToGroup', [group.toLowerCase()], []);
      await expectDelivery(anon, 'sendToGroup', [group], [bob]);
      await bob.invoke('leaveGroup', group);
    }));

    test('sendToUser reaches all of that user\'s connections', logged(async () => {
      await expectDelivery(bob, 'sendToUser', ['alice'], [alice1, alice2]);
      await expectDelivery(alice1, 'sendToUser', ['alice'], [alice1, alice2]);
      await expectDelivery(alice1, 'sendToUser', ['bob'], [bob]);
      await expectDelivery(alice1, 'sendToUser', ['nobody'], []);
    }));

    test('sendToUsers reaches every connection of each listed user', logged(async () => {
      await expectDelivery(anon, 'sendToUsers', [['alice', 'bob']], [alice1, alice2, bob]);
      await expectDelivery(anon, 'sendToUsers', [['bob', 'nobody']], [bob]);
      await expectDelivery(anon, 'sendToUsers', [[]], []);
    }));

    test('a user\'s later connection is reached; an ended one is not', logged(async () => {
      const alice3 = await h.connect(server, '/targets?user=alice', { ...options, label: 'alice3' });
      const text = h.unique('alice3');
      await bob.invoke('sendToUser', 'alice', text);
      await Promise.all([alice1, alice2, alice3].map((c) => c.next('message', { match: ([t]) => t === text })));
      await alice3.stop();
      await h.eventually(() => bob.invoke('connectionCount'), (n) => n === 4, { what: 'alice3 to be gone' });
      await expectDelivery(bob, 'sendToUser', ['alice'], [alice1, alice2]);
      assert.deepEqual(alice3.received, []);
    }));

    test('connectionCount counts open connections', logged(async () => {
      assert.equal(await anon.invoke('connectionCount'), 4);
      const extra = await h.connect(server, '/targets', { ...options, label: 'extra' });
      assert.equal(await anon.invoke('connectionCount'), 5);
      await extra.stop();
      await h.eventually(() => anon.invoke('connectionCount'), (n) => n === 4, { what: 'connectionCount back to 4' });
    }));

    test('groupCount counts groups with members; groups are cleaned up when connections end', logged(async () => {
      const before = await anon.invoke('groupCount');
      const extra = await h.connect(server, '/targets?user=temp', { ...options, label: 'extra' });
      const g1 = h.unique('temp1');
      const g2 = h.unique('temp2');
      await extra.invoke('joinGroup', g1);
      await extra.invoke('joinGroup', g2);
      assert.equal(await anon.invoke('groupCount'), before + 2);
      // A group another connection also belongs to survives the end of the first.
      await alice1.invoke('joinGroup', g2);
      await extra.invoke('leaveGroup', g1);
      assert.equal(await anon.invoke('groupCount'), before + 1, 'leaveGroup removed the emptied group');
      await extra.invoke('joinGroup', g1);
      assert.equal(await anon.invoke('groupCount'), before + 2);
      await extra.stop();
      await h.eventually(() => anon.invoke('groupCount'), (n) => n === before + 1, {
        what: `groupCount back to ${before + 1} after the member left`,
      });
      // g2 still reaches alice1; g1 reaches nobody.
      await expectDelivery(anon, 'sendToGroup', [g2], [alice1]);
      await expectDelivery(anon, 'sendToGroup', [g1], []);
      await alice1.invoke('leaveGroup', g2);
      assert.equal(await anon.invoke('groupCount'), before);
    }));

    test('the user of an ended connection is gone from user targets', logged(async () => {
      const carol = await h.connect(server, '/targets?user=carol', { ...options, label: 'carol' });
      assert.equal(await carol.invoke('userId'), 'carol');
      const text = h.unique('carol');
      await anon.invoke('sendToUser', 'carol', text);
      assert.deepEqual(await carol.next('message'), [text]);
      await carol.stop();
      await h.eventually(() => anon.invoke('connectionCount'), (n) => n === 4, { what: 'carol to be gone' });
      await expectDelivery(anon, 'sendToUser', ['carol'], []);
      await expectDelivery(anon, 'sendToUsers', [['carol', 'bob']], [bob]);
      assert.deepEqual(carol.received, []);
    }));
  });
}

// One send to recipients of both protocols: each gets the same call in its own
// protocol (the server writes the message once per protocol in use).
describe('targets hub with JSON and MessagePack clients at once', { skip: h.PROTOCOLS.length < 2 && 'one protocol in this run' }, () => {
  const transport = h.HttpTransportType.WebSockets;
  let clients;

  before(async () => {
    clients = await Promise.all(
      [['alice', 'json'], ['alice', 'messagepack'], ['bob', 'json'], ['bob', 'messagepack']].map(([user, protocol]) =>
        h.connect(server, `/targets?user=${user}`, { transport, protocol, label: `${user} (${protocol})` }),
      ),
    );
  });

  after(async () => {
    await Promise.allSettled(clients.map((c) => c.stop()));
  });

  test('sendToAll, sendToUser, sendToGroup and sendToOthers reach each recipient once, whatever its protocol', logged(async () => {
    const [aliceJson, aliceMessagePack, bobJson, bobMessagePack] = clients;
    const expectDelivery = async (sender, method, args, expected) => {
      const text = h.unique(method);
      await sender.invoke(method, ...args, text);
      await h.assertDelivered(clients, expected, { args: [text] });
    };
    await expectDelivery(aliceJson, 'sendToAll', [], clients);
    await expectDelivery(bobMessagePack, 'sendToAll', [], clients);
    await expectDelivery(bobJson, 'sendToUser', ['alice'], [aliceJson, aliceMessagePack]);
    await expectDelivery(aliceMessagePack, 'sendToOthers', [], [aliceJson, bobJson, bobMessagePack]);
    const group = h.unique('mixed');
    await aliceMessagePack.invoke('joinGroup', group);
    await bobJson.invoke('joinGroup', group);
    await expectDelivery(aliceJson, 'sendToGroup', [group], [aliceMessagePack, bobJson]);
    await aliceMessagePack.invoke('leaveGroup', group);
    await bobJson.invoke('leaveGroup', group);
  }));
});
