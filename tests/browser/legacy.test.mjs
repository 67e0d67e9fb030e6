// The ASP.NET SignalR 2.x jQuery client (npm `signalr` 2.4.3 on jQuery 3.7.1,
// unmodified, served by the conformance example from its npm install) in
// Debian's Chromium against the conformance example's `/signalr`: each
// transport forced, the automatic order, the seed's snippets verbatim, JSONP
// from another origin, errors and progress, groups shared with an ASP.NET Core
// client, a persistent connection's echo, and a dropped WebSocket that
// reconnects with nothing lost or repeated.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { connect as tcpConnect } from 'node:net';

import * as h from '../js/harness.mjs';
import { launchChromium } from './chromium.mjs';

let server;
let browser;
const pageServers = [];

before(async () => {
  server = await h.startServer('conformance');
  browser = await launchChromium();
});

after(async () => {
  await h.stopAllClients();
  await browser?.close();
  await server?.stop();
  await Promise.all(pageServers.map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A page server on its own port (another origin than the hub's): a blank page. */
async function pageServer() {
  const page = http.createServer((request, response) => {
    response.writeHead(200, { 'Content-Type': 'text/html' });
    response.end('<!doctype html><title>elsewhere</title>');
  });
  await new Promise((resolve) => page.listen(0, '127.0.0.1', resolve));
  pageServers.push(page);
  return `http://127.0.0.1:${page.address().port}`;
}

/**
 * A page of `origin` (the server's own by default) that loads jQuery, the 2.x
 * client and the proxy script from the server. The document first comes from
 * a real loopback server (Chromium's local network checks block a page that
 * came from nowhere), then is replaced by the test's content.
 * `withoutEventSource` removes `EventSource` first, as foreverFrame needs.
 */
async function open({ origin = server.url, withoutEventSource = false, proxy = true } = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const logs = [];
  const errors = [];
  page.on('console', (message) => logs.push(message.text()));
  page.on('pageerror', (error) => errors.push(error.message));
  const scripts = ['/lib/jquery.js', '/lib/jquery.signalR.js', ...(proxy ? ['/signalr/hubs'] : [])]
    .map((src) => `<script src="${server.url}${src}"></script>`)
    .join('');
  const prelude = withoutEventSource ? '<script>delete window.EventSource;</script>' : '';
  await page.goto(origin === server.url ? `${server.url}/signalr/ping` : origin);
  await page.setContent(`<!doctype html><title>2.x</title>${prelude}${scripts}`);
  return { page, context, logs, errors };
}

/** Starts `$.connection.hub` with `options`, with a `message` and `groupMessage` handler recording calls. */
async function startHub(page, options) {
  return page.evaluate(async (options) => {
    window.received = [];
    const hub = $.connection.conformance;
    hub.client.message = (text) => window.received.push(['message', text]);
    hub.client.groupMessage = (group, text) => window.received.push(['groupMessage', group, text]);
    await $.connection.hub.start(options);
    return $.connection.hub.transport.name;
  }, options);
}

function received(page) {
  return page.evaluate(() => window.received);
}

async function waitForReceived(page, count) {
  await page.waitForFunction((n) => window.received.length >= n, count, { timeout: 10_000 });
  return received(page);
}

for (const transport of ['webSockets', 'serverSentEvents', 'foreverFrame', 'longPolling']) {
  describe(`2.x hub over ${transport}`, () => {
    test('invocations, results, client calls, progress and errors', h.logged(() => server, async () => {
      const { page, context, errors } = await open({ withoutEventSource: transport === 'foreverFrame' });
      try {
        assert.equal(await startHub(page, { transport }), transport);
        const results = await page.evaluate(async () => {
          const hub = $.connection.conformance;
          const progress = [];
          const out = {};
          // The proxy's state goes with every call and comes back unchanged.
          hub.state.userName = 'ada';
          out.echo = await hub.server.echo('x');
          out.add = await hub.server.add(2, 3);
          out.person = await hub.server.echoPerson({ name: 'ada', age: 36, tags: ['<b>'], address: null });
          out.connectionId = (await hub.server.connectionId()) === $.connection.hub.id;
          await hub.server.sendToCaller('</script><script>window.injected = true</script>');
          out.counter = await hub.server.counter(3, 1).progress((item) => progress.push(item));
          out.progress = progress;
          try {
            await hub.server.fail('nope');
          } catch (error) {
            out.fail = [error.message, error.source];
          }
          try {
            await hub.invoke('noSuchMethod');
          } catch (error) {
            out.unknown = error.message;
          }
          out.state = hub.state;
          return out;
        });
        assert.deepEqual(results, {
          echo: 'x',
          add: 5,
          person: { name: 'ada', age: 36, tags: ['<b>'], address: null },
          connectionId: true,
          counter: [0, 1, 2],
          progress: [0, 1, 2],
          fail: ['nope', 'HubException'],
          unknown: "'noSuchMethod' method could not be resolved. No method found with that name.",
          state: { userName: 'ada' },
        });
        assert.deepEqual(await waitForReceived(page, 1), [['message', '</script><script>window.injected = true</script>']]);
        assert.equal(await page.evaluate(() => window.injected), undefined, 'a payload cannot close the script it arrives in');
        await page.evaluate(() => $.connection.hub.stop());
        assert.deepEqual(errors, []);
      } finally {
        await context.close();
      }
    }, { timeout: 60_000 }));
  });
}

test('the automatic order picks webSockets; without WebSocket it falls back', h.logged(() => server, async () => {
  const first = await open();
  const second = await open();
  try {
    assert.equal(await startHub(first.page, undefined), 'webSockets');
    await second.page.evaluate(() => {
      delete window.WebSocket;
    });
    assert.equal(await startHub(second.page, undefined), 'serverSentEvents');
  } finally {
    await first.context.close();
    await second.context.close();
  }
}, { timeout: 60_000 }));

describe("the seed's snippets, verbatim", () => {
  test("$.connection.hub.logging = true; connection.start({ transport: 'longPolling' })", h.logged(() => server, async () => {
    const { page, context, logs } = await open();
    try {
      const name = await page.evaluate(async () => {
        var connection = $.connection.hub;
        $.connection.conformance.client.message = function () {};
        $.connection.hub.logging = true;
        await connection.start({ transport: 'longPolling' });
        return connection.transport.name;
      });
      assert.equal(name, 'longPolling');
      assert.ok(logs.some((l) => / SignalR: longPolling transport starting\.$/.test(l)), logs.join('\n'));
      assert.ok(logs.some((l) => / SignalR: LongPolling connected\.$/.test(l)), logs.join('\n'));
      assert.ok(logs.some((l) => / SignalR: The start request succeeded\. Transitioning to the connected state\.$/.test(l)), logs.join('\n'));
    } finally {
      await context.close();
    }
  }, { timeout: 60_000 }));

  test("connection.start({ transport: ['webSockets','longPolling'] })", h.logged(() => server, async () => {
    const { page, context, logs } = await open();
    try {
      const name = await page.evaluate(async () => {
        var connection = $.connection.hub;
        $.connection.hub.logging = true;
        await connection.start({ transport: ['webSockets','longPolling'] });
        return connection.transport.name;
      });
      assert.equal(name, 'webSockets');
      assert.ok(logs.some((l) => / SignalR: webSockets transport starting\.$/.test(l)), logs.join('\n'));
      assert.ok(logs.some((l) => / SignalR: Websocket opened\.$/.test(l)), logs.join('\n'));
    } finally {
      await context.close();
    }
  }, { timeout: 60_000 }));
});

test('JSONP long polling from another origin', h.logged(() => server, async () => {
  const { page, context, errors } = await open({ origin: await pageServer() });
  try {
    const result = await page.evaluate(async (url) => {
      $.connection.hub.url = url;
      const hub = $.connection.conformance;
      window.received = [];
      hub.client.message = (text) => window.received.push(['message', text]);
      await $.connection.hub.start({ jsonp: true });
      const echo = await hub.server.echo('over jsonp');
      await hub.server.sendToCaller('pushed');
      return [$.connection.hub.transport.name, echo];
    }, `${server.url}/signalr`);
    assert.deepEqual(result, ['longPolling', 'over jsonp']);
    assert.deepEqual(await waitForReceived(page, 1), [['message', 'pushed']]);
    await page.evaluate(() => $.connection.hub.stop());
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
}, { timeout: 60_000 }));

test('a 2.x client and an ASP.NET Core client share a group', h.logged(() => server, async () => {
  const group = h.unique('g');
  const core = await h.connect(server, '/conformance', { methods: ['message', 'groupMessage'] });
  const { page, context } = await open();
  try {
    await startHub(page, { transport: 'webSockets' });
    await page.evaluate((group) => $.connection.conformance.server.joinGroup(group), group);
    await core.invoke('joinGroup', group);
    await core.invoke('sendToGroup', group, 'from core');
    await core.next('groupMessage', { match: (args) => args[1] === 'from core' });
    assert.deepEqual(await waitForReceived(page, 1), [['groupMessage', group, 'from core']]);
    await page.evaluate((group) => $.connection.conformance.server.sendToGroup(group, 'from 2.x'), group);
    await core.next('groupMessage', { match: (args) => args[0] === group && args[1] === 'from 2.x' });
    assert.deepEqual(await waitForReceived(page, 2), [
      ['groupMessage', group, 'from core'],
      ['groupMessage', group, 'from 2.x'],
    ]);
  } finally {
    await context.close();
    await core.stop();
  }
}, { timeout: 60_000 }));

for (const transport of ['webSockets', 'longPolling']) {
  test(`a persistent connection echoes over ${transport}`, h.logged(() => server, async () => {
    const { page, context } = await open({ proxy: false });
    try {
      const echoed = await page.evaluate(async (transport) => {
        const connection = $.connection('/raw-echo');
        const got = [];
        let arrived;
        connection.received((data) => {
          got.push(data);
          arrived();
        });
        const next = () => new Promise((resolve) => {
          arrived = resolve;
        });
        await connection.start({ transport });
        // Sends over HTTP are separate requests, unordered: one at a time.
        let echo = next();
        connection.send('hello');
        await echo;
        echo = next();
        connection.send({ type: 0, value: 'x' });
        await echo;
        connection.stop();
        return got;
      }, transport);
      assert.deepEqual(echoed, ['hello', '{"type":0,"value":"x"}']);
    } finally {
      await context.close();
    }
  }, { timeout: 60_000 }));
}

test('a dropped WebSocket reconnects with no message lost or repeated', h.logged(() => server, async () => {
  const core = await h.connect(server, '/conformance');
  const { page, context } = await open();
  try {
    await startHub(page, { transport: 'webSockets' });
    const id = await page.evaluate(() => $.connection.hub.id);
    await core.invoke('sendToConnection', id, 'm1');
    await waitForReceived(page, 1);
    // Drop the socket; the client reconnects on its own after its delay.
    await page.evaluate(() => {
      window.reconnecting = new Promise((resolve) => $.connection.hub.reconnecting(resolve));
      window.reconnected = new Promise((resolve) => $.connection.hub.reconnected(resolve));
      $.connection.hub.socket.close();
    });
    await page.evaluate(() => window.reconnecting);
    await core.invoke('sendToConnection', id, 'm2');
    await core.invoke('sendToConnection', id, 'm3');
    await page.evaluate(() => window.reconnected);
    assert.equal(await page.evaluate(() => $.connection.hub.id), id, 'the connection id is kept');
    await core.invoke('sendToConnection', id, 'm4');
    await waitForReceived(page, 4);
    await core.invoke('sendToConnection', id, 'm5');
    assert.deepEqual(await waitForReceived(page, 5), [1, 2, 3, 4, 5].map((n) => ['message', `m${n}`]));
  } finally {
    await context.close();
    await core.stop();
  }
}, { timeout: 60_000 }));

describe('the chat example', () => {
  let chat;

  before(async () => {
    chat = await h.startServer('chat');
  });

  after(async () => {
    await chat?.stop();
  });

  async function openChat(path) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const logs = [];
    page.on('console', (message) => logs.push(message.text()));
    await page.goto(`${chat.url}${path}`);
    return { page, context, logs };
  }

  async function waitForLine(page, text) {
    await page.waitForFunction(
      (wanted) => [...document.querySelectorAll('#messages li')].some((li) => li.textContent === wanted),
      text,
      { timeout: 10_000 },
    );
  }

  test('a 2.x page and a Core page chat in one room', h.logged(() => chat, async () => {
    const room = h.unique('r');
    const old = await openChat(`/legacy?transport=longPolling&name=ada&room=${room}`);
    await waitForLine(old.page, `you joined ${room}`);
    const core = await openChat(`/?transport=WebSockets&name=bob&room=${room}`);
    try {
      await waitForLine(old.page, `bob joined ${room}`);
      assert.equal(await old.page.textContent('#status'), 'connected (longPolling)');
      await old.page.fill('#text', 'hello from 2.x');
      await old.page.click('#send-button');
      await waitForLine(core.page, 'adahello from 2.x');
      await core.page.fill('#text', 'hello from Core');
      await core.page.click('#send-button');
      await waitForLine(old.page, 'bobhello from Core');
    } finally {
      await old.context.close();
      await core.context.close();
    }
  }, { timeout: 60_000 }));

  for (const [snippet, transport, line] of [
    ["connection.start({ transport: 'longPolling' })", 'longPolling', 'LongPolling connected.'],
    ["connection.start({ transport: ['webSockets','longPolling'] })", 'webSockets', 'Websocket opened.'],
  ]) {
    test(`the seed's snippets against the chat example: ${snippet}`, h.logged(() => chat, async () => {
      const { page, context, logs } = await openChat('/legacy?manual');
      try {
        const name = await page.evaluate(async (snippet) => {
          $.connection.hub.logging = true;
          // eslint-disable-next-line no-eval
          await eval(snippet);
          return connection.transport.name;
        }, snippet);
        assert.equal(name, transport);
        assert.ok(logs.some((l) => l.endsWith(` SignalR: ${transport} transport starting.`)), logs.join('\n'));
        assert.ok(logs.some((l) => l.endsWith(` SignalR: ${line}`)), logs.join('\n'));
      } finally {
        await context.close();
      }
    }, { timeout: 60_000 }));
  }
});

test('a dropped long poll reconnects with no message lost or repeated', h.logged(() => server, async () => {
  const core = await h.connect(server, '/conformance');
  const { page, context } = await open();
  try {
    await startHub(page, { transport: 'longPolling' });
    const id = await page.evaluate(() => $.connection.hub.id);
    await core.invoke('sendToConnection', id, 'm1');
    await waitForReceived(page, 1);
    // The network drops the next poll; the client reconnects with its cursor.
    let dropped = false;
    await page.route('**/signalr/poll?**', (route) => {
      if (dropped) return route.continue();
      dropped = true;
      return route.abort('connectionreset');
    });
    await page.evaluate(() => {
      window.reconnecting = new Promise((resolve) => $.connection.hub.reconnecting(resolve));
      window.reconnected = new Promise((resolve) => $.connection.hub.reconnected(resolve));
    });
    // The poll now pending was opened before the route: this send ends it,
    // and the next poll is the one dropped.
    await core.invoke('sendToConnection', id, 'm2');
    await page.evaluate(() => window.reconnecting);
    await core.invoke('sendToConnection', id, 'm3');
    await page.evaluate(() => window.reconnected);
    await core.invoke('sendToConnection', id, 'm4');
    assert.deepEqual(await waitForReceived(page, 4), [1, 2, 3, 4].map((n) => ['message', `m${n}`]));
    await core.invoke('sendToConnection', id, 'm5');
    assert.deepEqual(await waitForReceived(page, 5), [1, 2, 3, 4, 5].map((n) => ['message', `m${n}`]));
  } finally {
    await context.close();
    await core.stop();
  }
}, { timeout: 60_000 }));

/** A redis-server of the suite's own on a free loopback port (`REDIS_SERVER` names the binary). */
async function startRedis() {
  const port = await h.freePort();
  const child = spawn(process.env.REDIS_SERVER ?? 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const ping = () => new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      socket.destroy();
      resolve(String(chunk).startsWith('+PONG'));
    });
    socket.on('error', () => resolve(false));
  });
  await h.eventually(ping, (ok) => ok, { timeout: 10_000, what: 'redis-server answering PING' });
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

describe('on the Redis backplane', () => {
  let redis;
  let nodes = [];

  before(async () => {
    redis = await startRedis();
    nodes = await Promise.all([0, 1].map(() => h.startServer('conformance', { env: { SIGNAL_REDIS: redis.url } })));
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  });

  test('a 2.x client on one node and a Core client on another share a group', h.logged(() => nodes[0], async () => {
    const group = h.unique('g');
    const core = await h.connect(nodes[1], '/conformance', { methods: ['message', 'groupMessage'] });
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(`${nodes[0].url}/signalr/ping`);
      await page.setContent(['/lib/jquery.js', '/lib/jquery.signalR.js', '/signalr/hubs']
        .map((src) => `<script src="${nodes[0].url}${src}"></script>`).join(''));
      await startHub(page, { transport: 'webSockets' });
      await page.evaluate((group) => $.connection.conformance.server.joinGroup(group), group);
      await core.invoke('joinGroup', group);
      await core.invoke('sendToGroup', group, 'from core');
      assert.deepEqual(await waitForReceived(page, 1), [['groupMessage', group, 'from core']]);
      await page.evaluate((group) => $.connection.conformance.server.sendToGroup(group, 'from 2.x'), group);
      await core.next('groupMessage', { match: (args) => args[0] === group && args[1] === 'from 2.x' });
    } finally {
      await context.close();
      await core.stop();
    }
  }, { timeout: 60_000 }));
});
