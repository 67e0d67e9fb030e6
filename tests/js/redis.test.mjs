// Scale-out on a real Redis: three server processes of one hub, the official
// client spread across them over every transport and both protocols. Every
// target reaches exactly its recipients wherever they are connected; a group
// change and a client result cross nodes; a node that dies ends a client
// result waiting on it; a Redis restart loses only what was sent while it was
// down. Each test starts its own redis-server on a free loopback port
// (`REDIS_SERVER` names the binary; scripts/test installs it).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, request as httpRequest } from 'node:http';
import { once } from 'node:events';
import { connect as tcpConnect } from 'node:net';

import * as h from './harness.mjs';

const { HttpTransportType } = h;

/** A redis-server of the test's own, on a free port. */
class Redis {
  static async start() {
    const redis = new Redis(await h.freePort());
    await redis.restart();
    return redis;
  }

  constructor(port) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
    this.child = null;
  }

  async restart() {
    await this.stop();
    const binary = process.env.REDIS_SERVER ?? 'redis-server';
    this.child = spawn(binary, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.once('error', (error) => {
      throw new Error(`cannot start ${binary} (${error.message}): install redis-server (scripts/test does) or set REDIS_SERVER`);
    });
    await h.eventually(() => this.ping(), (ok) => ok, { timeout: 10_000, what: 'redis-server answering PING' });
  }

  ping() {
    return new Promise((resolve) => {
      const socket = tcpConnect(this.port, '127.0.0.1');
      let answer = '';
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (chunk) => {
        answer += chunk;
        if (answer.includes('\r\n')) {
          socket.destroy();
          resolve(answer.startsWith('+PONG'));
        }
      });
      socket.on('error', () => resolve(false));
    });
  }

  async stop() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    this.child = null;
  }
}

/** `count` servers of example `name`, all on `redis`. */
async function cluster(name, redis, count) {
  return Promise.all(Array.from({ length: count }, () => h.startServer(name, { env: { SIGNAL_REDIS: redis.url } })));
}

/** Every transport × protocol pair the run covers, round robin. */
const modes = h.clientModes({ skipNegotiation: false });
const mode = (i) => modes[i % modes.length];

describe('every target across three targets servers on one Redis', () => {
  let redis;
  let nodes;
  let alice1, alice2, bob, anon, all;
  const ids = new Map();
  const id = (c) => ids.get(c);

  before(async () => {
    redis = await Redis.start();
    nodes = await cluster('targets', redis, 3);
    // alice1 and anon on node 0, alice2 on node 1, bob on node 2; each over
    // another transport or protocol where the run has several.
    [alice1, alice2, bob, anon] = await Promise.all([
      h.connect(nodes[0], '/targets?user=alice', { ...mode(0).options, label: 'alice1' }),
      h.connect(nodes[1], '/targets?user=alice', { ...mode(1).options, label: 'alice2' }),
      h.connect(nodes[2], '/targets?user=bob', { ...mode(2).options, label: 'bob' }),
      h.connect(nodes[0], '/targets', { ...mode(3).options, label: 'anon' }),
    ]);
    all = [alice1, alice2, bob, anon];
    for (const c of all) ids.set(c, await c.invoke('connectionId'));
  });

  after(async () => {
    await h.stopAllClients();
    await Promise.all((nodes ?? []).map((n) => n.stop()));
    await redis?.stop();
  });

  const logged = (body) => h.logged(() => nodes[0], body);

  /**
   * Has `sender` call `method(...args, text)`; exactly `expected` get
   * `message(text)`, once each. Then a broadcast from the same sender ends
   * the step: each client's calls up to it must be exactly what was expected
   * (a copy or a stray delivery fails the test).
   */
  async function expectDelivery(sender, method, args, expected) {
    const text = h.unique(method);
    await sender.invoke(method, ...args, text);
    const end = h.unique('end');
    await sender.invoke('sendToAll', end);
    for (const c of all) {
      const calls = await c.waitFor(
        () => {
          const at = c.received.findIndex((m) => m.args[0] === end);
          if (at < 0) return undefined;
          const before = c.received.slice(0, at);
          c.received = c.received.slice(at + 1);
          return before.map((m) => m.args[0]);
        },
        { what: `the end of ${method}` },
      );
      assert.deepEqual(calls, expected.includes(c) ? [text] : [], `${c.label} after ${method}`);
    }
  }

  test('sendToAll and sendToOthers reach every node', logged(async () => {
    await expectDelivery(bob, 'sendToAll', [], all);
    await expectDelivery(alice1, 'sendToOthers', [], [alice2, bob, anon]);
  }));

  test('sendToConnection and sendToConnections reach connections on other nodes', logged(async () => {
    await expectDelivery(anon, 'sendToConnection', [id(alice2)], [alice2]);
    await expectDelivery(anon, 'sendToConnections', [[id(alice1), id(bob), id(bob)]], [alice1, bob]);
    await expectDelivery(anon, 'sendToConnection', ['no-such-connection'], []);
  }));

  test('sendToAllExcept skips connections on any node', logged(async () => {
    await expectDelivery(bob, 'sendToAllExcept', [[id(alice2), id(anon)]], [alice1, bob]);
  }));

  test('groups span nodes: sendToGroup, sendToGroups once each, sendToGroupExcept, sendToOthersInGroup', logged(async () => {
    const [g1, g2] = [h.unique('g'), h.unique('g')];
    await alice1.invoke('joinGroup', g1);
    await bob.invoke('joinGroup', g1);
    await bob.invoke('joinGroup', g2);
    await alice2.invoke('joinGroup', g2);
    await expectDelivery(anon, 'sendToGroup', [g1], [alice1, bob]);
    await expectDelivery(anon, 'sendToGroups', [[g1, g2]], [alice1, bob, alice2]);
    await expectDelivery(anon, 'sendToGroupExcept', [g2, [id(bob)]], [alice2]);
    await expectDelivery(bob, 'sendToOthersInGroup', [g1], [alice1]);
    await bob.invoke('leaveGroup', g1);
    await expectDelivery(anon, 'sendToGroup', [g1], [alice1]);
  }));

  test('sendToUser and sendToUsers reach a user on every node', logged(async () => {
    await expectDelivery(anon, 'sendToUser', ['alice'], [alice1, alice2]);
    await expectDelivery(alice1, 'sendToUsers', [['alice', 'bob']], [alice1, alice2, bob]);
  }));

  test('a client result from a connection on another node', logged(async () => {
    bob.connection.on('ask', (question) => `bob answers ${question}`);
    assert.equal(await anon.invoke('askClient', id(bob), 'q1'), 'bob answers q1');
  }));
});

describe('the conformance hub on two servers: group changes, client results, faults', () => {
  let redis;
  let nodes;

  before(async () => {
    redis = await Redis.start();
    nodes = await cluster('conformance', redis, 2);
  });

  after(async () => {
    await h.stopAllClients();
    await Promise.all((nodes ?? []).map((n) => n.stop()));
    await redis?.stop();
  });

  const logged = (body) => h.logged(() => nodes[0], body);
  const connect = (node, label, i, methods = ['message', 'groupMessage']) =>
    h.connect(node, '/conformance', { ...mode(i).options, label, methods });

  test('addToGroup and removeFromGroup for a connection another node holds', logged(async () => {
    const here = await connect(nodes[0], 'here', 0);
    const there = await connect(nodes[1], 'there', 1);
    const group = h.unique('g');
    await here.invoke('addToGroup', await there.invoke('connectionId'), group);
    await here.invoke('sendToGroup', group, 'hello');
    assert.deepEqual(await there.next('groupMessage'), [group, 'hello']);
    await here.invoke('removeFromGroup', await there.invoke('connectionId'), group);
    await here.invoke('sendToGroup', group, 'gone');
    await here.invoke('broadcast', 'after');
    assert.deepEqual(await there.next('message'), ['after']);
    assert.deepEqual(there.received, []);
    // No node holds it: the caller hears so at once, not after 30 s.
    await h.assertRejects(here.invoke('addToGroup', 'nobody', group), h.TEXTS.hubError('addToGroup', "connection 'nobody' is not connected"));
  }));

  test('a client result across nodes, and its end when the holding node dies', logged(async () => {
    const asker = await connect(nodes[0], 'asker', 0);
    const doomed = await h.startServer('conformance', { env: { SIGNAL_REDIS: redis.url } });
    try {
      const answerer = await connect(doomed, 'answerer', 1, ['message', 'groupMessage', 'ask']);
      answerer.connection.on('ask', (question) => `answer to ${question}`);
      const target = await answerer.invoke('connectionId');
      assert.equal(await asker.invoke('askClient', target, 'q'), 'answer to q');

      // The answerer never answers; its server is killed while the question waits.
      let asked;
      const question = new Promise((resolve) => {
        asked = resolve;
      });
      answerer.connection.off('ask');
      answerer.connection.on('ask', () => {
        asked();
        return new Promise(() => {});
      });
      const pending = asker.invoke('askClient', target, 'q2');
      await question;
      doomed.child.kill('SIGKILL');
      await h.assertRejects(pending, h.TEXTS.hubError('askClient', `connection '${target}' disconnected before answering`));
    } finally {
      await h.stopClientsOf(doomed);
      await doomed.stop();
    }
  }));

  test('a Redis restart: local delivery goes on, then delivery across nodes resumes', logged(async () => {
    const here = await connect(nodes[0], 'here', 0);
    const there = await connect(nodes[1], 'there', 2);
    await here.invoke('broadcast', 'before');
    assert.deepEqual(await here.next('message'), ['before']);
    assert.deepEqual(await there.next('message'), ['before']);
    await redis.stop();
    // The send reaches this node's clients; the caller learns the others were not reached.
    const down = await here.invoke('broadcast', 'down').then(
      () => assert.fail('the broadcast succeeded while Redis was down'),
      (error) => error.message,
    );
    // What follows is the Redis client's own reason (connection refused, ...).
    const prefix = h.TEXTS.hubError('broadcast', 'the backplane could not deliver the message: ');
    assert.ok(down.startsWith(prefix), down);
    assert.deepEqual(await here.next('message'), ['down']);
    await redis.restart();
    await h.eventually(
      async () => {
        await here.invoke('broadcast', 'probe').catch(() => {});
        return there.received.some((m) => m.args[0] === 'probe');
      },
      (ok) => ok,
      { timeout: 15_000, interval: 200, what: 'delivery across nodes after the restart' },
    );
    await here.invoke('broadcast', 'after');
    assert.deepEqual(await there.next('message', { match: (args) => args[0] === 'after' }), ['after']);
    assert.ok(!there.received.some((m) => m.args[0] === 'down'), 'what was sent while Redis was down is not delivered later');
  }, { timeout: 40_000 }));
});

/**
 * A load balancer without session affinity: each request (and each WebSocket
 * upgrade) goes to the next server in turn. `served` counts what each got.
 */
async function roundRobin(servers) {
  let next = 0;
  const served = servers.map(() => 0);
  const pick = () => {
    const at = next++ % servers.length;
    served[at] += 1;
    return servers[at];
  };
  const proxy = createServer((req, res) => {
    const target = pick();
    const upstream = httpRequest(
      { host: '127.0.0.1', port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  const upgraded = new Set();
  proxy.on('upgrade', (req, socket, head) => {
    const target = pick();
    const pair = [socket];
    upgraded.add(pair);
    socket.on('close', () => upgraded.delete(pair));
    const upstream = tcpConnect(target.port, '127.0.0.1', () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    pair.push(upstream);
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  const { port } = proxy.address();
  return {
    url: `http://127.0.0.1:${port}`,
    served,
    /** Cuts every WebSocket it carries, as a network failure would. */
    cut: () => {
      for (const pair of upgraded) for (const end of pair) end.destroy();
      upgraded.clear();
    },
    close: () => {
      proxy.closeAllConnections();
      return new Promise((resolve) => proxy.close(resolve));
    },
  };
}

describe('no sticky sessions: three conformance servers behind a round-robin balancer', () => {
  let redis;
  let nodes;
  let balancer;

  before(async () => {
    redis = await Redis.start();
    nodes = await cluster('conformance', redis, 3);
    balancer = await roundRobin(nodes);
  });

  after(async () => {
    await h.stopAllClients();
    await balancer?.close();
    await Promise.all((nodes ?? []).map((n) => n.stop()));
    await redis?.stop();
  });

  const logged = (body) => h.logged(() => nodes[0], body);

  for (const m of modes) {
    test(`${m.name}: every request may reach another server`, logged(async () => {
      const before = [...balancer.served];
      const c = await h.connect({ url: balancer.url }, '/conformance', { ...m.options, label: 'balanced' });
      for (let i = 0; i < 6; i += 1) {
        assert.equal(await c.invoke('echo', `hop ${i}`), `hop ${i}`);
      }
      await c.invoke('sendToCaller', 'pushed');
      assert.deepEqual(await c.next('message'), ['pushed']);
      const items = [];
      await new Promise((resolve, reject) => {
        c.connection.stream('counter', 3, 1).subscribe({ next: (n) => items.push(n), complete: resolve, error: reject });
      });
      assert.deepEqual(items, [0, 1, 2]);
      await c.stop();
      // The balancer spread this connection's requests over several servers.
      const spread = balancer.served.filter((count, i) => count > before[i]).length;
      assert.ok(spread >= 2, `requests reached ${spread} server(s): ${balancer.served}`);
    }));
  }

  for (const protocol of h.PROTOCOLS) {
    test(`a stateful reconnect that reaches another server loses no message and repeats none, with ${protocol}`, logged(async () => {
      const receiver = h.client({ url: balancer.url }, '/conformance', {
        transport: HttpTransportType.WebSockets,
        protocol,
        label: 'stateful',
        configure: (b) => b.withStatefulReconnect(),
      });
      const marks = nodes.map((n) => n.mark());
      await receiver.start();
      const id = receiver.connectionId;
      const sender = await h.connect(nodes[2], '/conformance', { protocol, label: 'sender', methods: [] });
      const count = 200;
      for (let i = 0; i < count; i += 1) {
        await sender.invoke('sendToConnection', id, String(i));
        if (i === 50) balancer.cut(); // mid-stream; the client comes back through the balancer
      }
      await sender.invoke('sendToConnection', id, 'end');
      await receiver.next('message', { match: ([text]) => text === 'end', timeout: 10_000 });
      const texts = receiver.received.map(({ args }) => Number(args[0]));
      assert.deepEqual(texts, Array.from({ length: count }, (_, i) => i));
      assert.equal(receiver.connectionId, id);
      assert.equal(await receiver.invoke('connectionId'), id);
      // The new socket reached another server than the connection's, which
      // carried it there.
      assert.ok(
        nodes.some((n) => n.log(marks[nodes.indexOf(n)]).includes('tunnelled to the connection')),
        'the reconnect went through a tunnel',
      );
      await Promise.all([receiver.stop(), sender.stop()]);
    }));
  }
});
