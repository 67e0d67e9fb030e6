// Shared helpers of the JavaScript end-to-end suites: start a Rust example server,
// connect the OFFICIAL @microsoft/signalr client to it, and (for bad-input tests
// only) speak raw WebSocket frames with `ws`.
//
// Environment:
//   SIGNAL_JS_TRANSPORTS  comma-separated HttpTransportType names the suites run
//                         over (default "WebSockets"), e.g.
//                         "WebSockets,ServerSentEvents,LongPolling".
//   SIGNAL_JS_NO_BUILD=1  skip `cargo build` (the binaries must exist already).
//   RUST_LOG              passed to the servers (default: debug for signal crates).

import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { existsSync } from 'node:fs';
import assert from 'node:assert/strict';

import * as signalR from '@microsoft/signalr';
import WebSocket from 'ws';

export { signalR, WebSocket };
export const { HttpTransportType, HubConnectionBuilder, HubConnectionState, LogLevel, Subject } =
  signalR;

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const RS = '\u001e';

// ---------------------------------------------------------------------------
// Transports the suites run over.

/** The transports (HttpTransportType values) to run the client suites over. */
export const TRANSPORTS = (process.env.SIGNAL_JS_TRANSPORTS ?? 'WebSockets')
  .split(',')
  .map((name) => name.trim())
  .filter(Boolean)
  .map((name) => {
    const value = HttpTransportType[name];
    if (typeof value !== 'number' || value === 0) {
      throw new Error(`SIGNAL_JS_TRANSPORTS: unknown transport '${name}'`);
    }
    return value;
  });

/** The name of an HttpTransportType value ("WebSockets", ...). */
export function transportName(transport) {
  return HttpTransportType[transport];
}

/**
 * Client configurations of a suite: each transport with negotiation, plus
 * WebSockets with `skipNegotiation` when WebSockets is among the transports.
 */
export function clientModes({ skipNegotiation = true } = {}) {
  const modes = TRANSPORTS.map((transport) => ({
    name: `${transportName(transport)} (negotiated)`,
    transport,
    skipNegotiation: false,
  }));
  if (skipNegotiation && TRANSPORTS.includes(HttpTransportType.WebSockets)) {
    modes.push({
      name: 'WebSockets (skipNegotiation)',
      transport: HttpTransportType.WebSockets,
      skipNegotiation: true,
    });
  }
  return modes;
}

// ---------------------------------------------------------------------------
// Small async helpers.

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with `message` if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${message}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `probe` until it returns a value `accept` takes, or fails with the last value. */
export async function eventually(probe, accept, { timeout = 5000, interval = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (accept(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last value: ${JSON.stringify(last)}`);
    }
    await sleep(interval);
  }
}

let counter = 0;
/** A string unique within this process, for group names, sentinels and payloads. */
export function unique(prefix = 'u') {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

// ---------------------------------------------------------------------------
// Building and running the example servers.

const built = new Set();

/** `cargo build --example NAME` once per process (cargo itself makes it cheap when fresh). */
export function buildExample(name) {
  if (built.has(name) || process.env.SIGNAL_JS_NO_BUILD === '1') return;
  // Building only the example we need keeps one broken example from failing
  // every suite; `cargo build --examples` would build them all.
  const result = spawnSync('cargo', ['build', '--example', name], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (result.status !== 0) {
    throw new Error(`cargo build --example ${name} failed (${result.status}):\n${result.stderr}`);
  }
  built.add(name);
}

/** A port that was free a moment ago (bind port 0, read it, release it). */
export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

const running = new Set();
function killAll() {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  running.clear();
}
process.on('exit', killAll);
for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.once(signal, () => {
    killAll();
    process.exit(128 + number);
  });
}

/**
 * A running example server.
 * - `url`: `http://127.0.0.1:PORT`
 * - `log()`: everything it printed so far (stdout and stderr, interleaved)
 * - `stop()`: kills it and waits for it to exit
 */
export class Server {
  constructor(name, child, port) {
    this.name = name;
    this.child = child;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.output = [];
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  log(from = 0) {
    return this.output.slice(from).join('');
  }

  /** Where the log is now: pass to `log(mark)` for what came after. */
  mark() {
    return this.output.length;
  }

  get alive() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop() {
    if (this.alive) {
      this.child.kill('SIGTERM');
      let timer;
      const exited = await Promise.race([
        this.exited,
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(null), 3000);
        }),
      ]);
      clearTimeout(timer);
      if (exited === null) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    running.delete(this.child);
  }
}

/**
 * Builds and starts `target/debug/examples/NAME` on a free port and waits for
 * its `listening on http://127.0.0.1:PORT` line (60 s). Retries on another port
 * if the process dies before that (the port may have been taken meanwhile).
 */
export async function startServer(name, { env = {}, timeout = 60_000, attempts = 3 } = {}) {
  buildExample(name);
  const binary = path.join(ROOT, 'target', 'debug', 'examples', name);
  if (!existsSync(binary)) throw new Error(`no example binary at ${binary}`);
  let lastError;
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    const port = await freePort();
    const child = spawn(binary, [], {
      cwd: ROOT,
      env: {
        // The examples read SIGNAL_* settings (SIGNAL_TRANSPORTS, ...): only what
        // the suite passes in `env` reaches them, never the caller's shell.
        ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('SIGNAL_'))),
        RUST_LOG: process.env.RUST_LOG ?? 'info,signal=debug,signal_server=debug,signal_core=debug',
        RUST_BACKTRACE: '0',
        NO_COLOR: '1',
        ...env,
        PORT: String(port),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    const server = new Server(name, child, port);
    const wanted = `listening on http://127.0.0.1:${port}`;
    try {
      await new Promise((resolve, reject) => {
        let stdout = '';
        const timer = setTimeout(
          () => reject(new Error(`${name} did not print '${wanted}' within ${timeout} ms`)),
          timeout,
        );
        child.stdout.setEncoding('utf8');
        child.stderr.setEncoding('utf8');
        child.stdout.on('data', (chunk) => {
          server.output.push(chunk);
          stdout += chunk;
          if (stdout.includes(wanted)) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.stderr.on('data', (chunk) => server.output.push(chunk));
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`${name} exited (code ${code}, signal ${signal}) before listening`));
        });
        child.once('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
      });
      return server;
    } catch (error) {
      await server.stop();
      lastError = new Error(`${error.message}\n--- ${name} output ---\n${server.log()}`);
    }
  }
  throw lastError;
}

/**
 * Wraps a test body so that, if it fails, the server output produced during the
 * test (and the clients' logs) are appended to the error. A body still running
 * after `timeout` ms fails (a hung server must not hang the suite; a
 * `--test-timeout` would also cover each whole file, cargo build included).
 */
export function logged(getServer, body, { timeout = 30_000 } = {}) {
  return async (t) => {
    const server = getServer();
    const mark = server?.mark() ?? 0;
    const clientMark = clientLog.length;
    try {
      return await withTimeout(Promise.resolve().then(() => body(t)), timeout, 'the test body');
    } catch (error) {
      const serverLog = server ? server.log(mark) : '(no server)';
      const clients = clientLog.slice(clientMark).join('\n');
      const extra =
        `\n--- ${server?.name ?? 'server'} output during the test ---\n${serverLog || '(nothing)'}` +
        `\n--- client log during the test ---\n${clients || '(nothing)'}`;
      if (error && typeof error === 'object') {
        try {
          error.message = `${error.message}${extra}`;
        } catch {
          // read-only message: report separately
          t.diagnostic(extra);
        }
      }
      throw error;
    }
  };
}

// ---------------------------------------------------------------------------
// The official client.

const clientLog = [];
const captureLogger = {
  log(level, message) {
    if (level >= LogLevel.Debug) {
      clientLog.push(`[${new Date().toISOString()}] ${LogLevel[level]}: ${message}`);
      if (clientLog.length > 5000) clientLog.splice(0, 1000);
    }
  },
};

/**
 * An official HubConnection plus an inbox of every client-method call it got.
 * `on(method)` must be called for each client method before `start()` (the
 * helpers `connect`/`connectMany` do it).
 */
export class Client {
  constructor(connection, label) {
    this.connection = connection;
    this.label = label;
    this.received = []; // { method, args } in arrival order, unconsumed
    this.waiters = [];
    this.closedWith = undefined;
    this.closed = new Promise((resolve) => {
      connection.onclose((error) => {
        this.closedWith = error ?? null;
        resolve(error ?? null);
      });
    });
  }

  on(method) {
    this.connection.on(method, (...args) => {
      this.received.push({ method, args });
      this.#wake();
    });
    return this;
  }

  #wake() {
    for (const waiter of [...this.waiters]) waiter();
  }

  start() {
    return this.connection.start();
  }

  stop() {
    return this.connection.stop();
  }

  invoke(method, ...args) {
    return this.connection.invoke(method, ...args);
  }

  send(method, ...args) {
    return this.connection.send(method, ...args);
  }

  get connectionId() {
    return this.connection.connectionId;
  }

  get state() {
    return this.connection.state;
  }

  /**
   * The first unconsumed call of `method` whose args `match` accepts (all if
   * no predicate), removed from the inbox; waits up to `timeout` ms for it.
   */
  async next(method, { match = () => true, timeout = 5000 } = {}) {
    const find = () => {
      const index = this.received.findIndex((m) => m.method === method && match(m.args));
      if (index < 0) return undefined;
      return this.received.splice(index, 1)[0].args;
    };
    const found = find();
    if (found) return found;
    return new Promise((resolve, reject) => {
      const waiter = () => {
        const args = find();
        if (args) {
          done();
          resolve(args);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `${this.label}: no '${method}' call within ${timeout} ms; inbox: ${JSON.stringify(this.received)}`,
          ),
        );
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
      };
      this.waiters.push(waiter);
    });
  }

  /**
   * Proves delivery to this client has caught up: asks the server (through
   * `sentinelMethod`, a hub method that sends `message(text)` back to the
   * caller) for a sentinel and waits for it. Whatever a send that completed
   * before this call would have delivered to this client has arrived by then,
   * since one connection's messages keep their order. Returns (and consumes)
   * every other call received before the sentinel.
   */
  async drain({ sentinelMethod = 'sendToCaller', settle = 20, timeout = 5000 } = {}) {
    const sentinel = unique('sentinel');
    await this.invoke(sentinelMethod, sentinel);
    await this.next('message', { match: ([text]) => text === sentinel, timeout });
    if (settle) await sleep(settle);
    const before = this.received;
    this.received = [];
    return before;
  }

  /** Asserts that nothing but the sentinel arrived (see `drain`). */
  async assertNothingElse(options) {
    const rest = await this.drain(options);
    assert.deepEqual(rest, [], `${this.label} received calls it should not have`);
  }
}

/**
 * Builds (does not start) a client. `path` is the hub path with an optional
 * query (`/targets?user=alice`).
 */
export function client(server, hubPath, { transport = HttpTransportType.WebSockets, skipNegotiation = false, methods = ['message'], label = hubPath, configure } = {}) {
  let builder = new HubConnectionBuilder()
    // `transport: null` leaves the choice to the client's own fallback.
    .withUrl(`${server.url}${hubPath}`, { ...(transport === null ? {} : { transport }), skipNegotiation, logger: captureLogger, logMessageContent: true })
    .configureLogging(captureLogger);
  if (configure) builder = configure(builder);
  const connection = builder.build();
  const result = new Client(connection, label);
  for (const method of methods) result.on(method);
  return result;
}

/** Builds and starts a client (see `client`). Registered in `clients` for cleanup. */
export async function connect(server, hubPath, options = {}) {
  const c = client(server, hubPath, options);
  openClients.add(c);
  await withTimeout(c.start(), 10_000, `${c.label} start`);
  return c;
}

/** Starts `count` clients at once, labelled `${label}0..`. */
export function connectMany(server, hubPath, count, options = {}) {
  return Promise.all(
    Array.from({ length: count }, (_, i) => connect(server, hubPath, { ...options, label: `${options.label ?? 'client'}${i}` })),
  );
}

const openClients = new Set();

/** Stops every client `connect` started that is still open. */
export async function stopAllClients() {
  const all = [...openClients];
  openClients.clear();
  await Promise.allSettled(all.map((c) => withTimeout(c.stop(), 5000, `${c.label} stop`)));
}

/** Asserts that `promise` rejects with an Error whose message `check` accepts (RegExp or string = exact). */
export async function assertRejects(promise, check, what = 'invocation') {
  let error;
  try {
    const value = await promise;
    assert.fail(`${what} resolved with ${JSON.stringify(value)} instead of rejecting`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    error = e;
  }
  assert.ok(error instanceof Error, `${what} rejected with a non-Error: ${error}`);
  if (typeof check === 'string') {
    assert.equal(error.message, check, `${what}: error text`);
  } else {
    assert.match(error.message, check, `${what}: error text`);
  }
  return error;
}

// ---------------------------------------------------------------------------
// HTTP and raw WebSocket helpers (bad-input and protocol tests only).

/** POST {hub}/negotiate?negotiateVersion=1; returns { status, headers, body (parsed JSON or text) }. */
export async function negotiate(server, hubPath, { version = 1, query = '' } = {}) {
  const response = await fetch(`${server.url}${hubPath}/negotiate?negotiateVersion=${version}${query}`, {
    method: 'POST',
    headers: { 'X-Requested-With': 'XMLHttpRequest' },
  });
  const text = await response.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, body };
}

/**
 * A raw WebSocket speaking text records. Incoming text frames are split into
 * records on 0x1E; `nextRecord()` returns the next parsed JSON record (pings
 * skipped unless `pings: true`).
 */
export class RawSocket {
  constructor(url, { pings = false } = {}) {
    this.url = url;
    this.pings = pings;
    this.ws = new WebSocket(url);
    this.records = [];
    this.frames = [];
    this.buffer = '';
    this.waiters = [];
    this.closeInfo = undefined;
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (request, response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => (body += chunk));
        response.on('end', () => {
          const error = new Error(`unexpected response ${response.statusCode}: ${body}`);
          error.statusCode = response.statusCode;
          error.body = body;
          reject(error);
        });
        request.destroy();
      });
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        this.#wake();
        resolve(this.closeInfo);
      });
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data, isBinary) => {
      const text = isBinary ? Buffer.from(data).toString('utf8') : data.toString();
      this.frames.push(text);
      this.buffer += text;
      let index;
      while ((index = this.buffer.indexOf(RS)) >= 0) {
        const record = this.buffer.slice(0, index);
        this.buffer = this.buffer.slice(index + 1);
        let parsed;
        try {
          parsed = JSON.parse(record);
        } catch {
          parsed = { unparsable: record };
        }
        if (!this.pings && parsed.type === 6) continue;
        this.records.push(parsed);
      }
      this.#wake();
    });
  }

  #wake() {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Sends a string as one text frame, as is (add RS yourself). */
  sendRaw(text, options = {}) {
    return new Promise((resolve, reject) => this.ws.send(text, { binary: false, ...options }, (e) => (e ? reject(e) : resolve())));
  }

  /** Sends one or more JSON messages, each as a record, in one frame. */
  sendRecords(...messages) {
    return this.sendRaw(messages.map((m) => (typeof m === 'string' ? m : JSON.stringify(m)) + RS).join(''));
  }

  /** The next record; rejects on timeout or if the socket closes with none left. */
  nextRecord(timeout = 5000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.records.length > 0) {
          done();
          resolve(this.records.shift());
        } else if (this.closeInfo) {
          done();
          reject(new Error(`socket closed (${JSON.stringify(this.closeInfo)}) with no record left; partial buffer: ${JSON.stringify(this.buffer)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no record within ${timeout} ms; frames so far: ${JSON.stringify(this.frames)}`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }

  /** The close of the socket, within `timeout` ms. */
  waitClosed(timeout = 5000) {
    return withTimeout(this.closed, timeout, `${this.url} to close`);
  }

  /** Sends the JSON handshake and expects `{}`. */
  async handshake() {
    await this.opened;
    await this.sendRecords({ protocol: 'json', version: 1 });
    const response = await this.nextRecord();
    assert.deepEqual(response, {}, 'handshake response');
  }

  close() {
    try {
      this.ws.terminate();
    } catch {
      // already closed
    }
  }
}

/** The ws:// URL of a hub path on a server. */
export function wsUrl(server, hubPath) {
  return `${server.url.replace(/^http/, 'ws')}${hubPath}`;
}

/** Negotiates, opens a raw WebSocket to the hub with the token, and does the handshake. */
export async function rawConnect(server, hubPath, { handshake = true, negotiated = true, pings = false } = {}) {
  let url = wsUrl(server, hubPath);
  let connectionId;
  if (negotiated) {
    const { status, body } = await negotiate(server, hubPath);
    assert.equal(status, 200, 'negotiate status');
    connectionId = body.connectionId;
    url += `${url.includes('?') ? '&' : '?'}id=${encodeURIComponent(body.connectionToken)}`;
  }
  const socket = new RawSocket(url, { pings });
  socket.connectionId = connectionId;
  rawSockets.add(socket);
  await withTimeout(socket.opened, 5000, `raw socket ${url} to open`);
  if (handshake) await socket.handshake();
  return socket;
}

const rawSockets = new Set();
/** Terminates every raw socket opened with `rawConnect`/`rawSocket`. */
export function closeAllRawSockets() {
  for (const socket of rawSockets) socket.close();
  rawSockets.clear();
}

/** A raw socket to `url` (tracked for cleanup), not waited for. */
export function rawSocket(url, options) {
  const socket = new RawSocket(url, options);
  rawSockets.add(socket);
  return socket;
}
