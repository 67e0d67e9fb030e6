// Shared helpers of the JavaScript end-to-end suites: start a Rust example server,
// connect the OFFICIAL @microsoft/signalr client to it (with the JSON hub protocol
// or @microsoft/signalr-protocol-msgpack's MessagePack), and (for protocol and
// bad-input tests) speak the transports raw: WebSocket frames with `ws`,
// Server-Sent Events and long polling with fetch, in JSON records or in
// length-prefixed MessagePack messages. Waiting is always for a state
// or an event (`eventually`, `Waiters`), never for a fixed time; the texts the
// server sends are in `TEXTS`, compared whole.
//
// Environment:
//   SIGNAL_JS_TRANSPORTS  comma-separated HttpTransportType names the suites run
//                         over (default "WebSockets"), e.g.
//                         "WebSockets,ServerSentEvents,LongPolling".
//   SIGNAL_JS_PROTOCOLS   comma-separated hub protocols the client suites run
//                         with (default "json,messagepack"). MessagePack is
//                         binary, so its runs skip ServerSentEvents (text only).
//   SIGNAL_JS_NO_BUILD=1  skip `cargo build` (the binaries must exist already).
//   RUST_LOG              passed to the servers (default: debug for signal crates).

import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { existsSync } from 'node:fs';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';

import * as signalR from '@microsoft/signalr';
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack';
// The MessagePack codec the protocol package itself uses (its dependency).
import * as msgpack from '@msgpack/msgpack';
import WebSocket from 'ws';

export { signalR, MessagePackHubProtocol, msgpack, WebSocket };
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

/** The hub protocols the client suites run with: 'json' and/or 'messagepack'. */
export const PROTOCOLS = (process.env.SIGNAL_JS_PROTOCOLS ?? 'json,messagepack')
  .split(',')
  .map((name) => name.trim())
  .filter(Boolean)
  .map((name) => {
    if (name !== 'json' && name !== 'messagepack') {
      throw new Error(`SIGNAL_JS_PROTOCOLS: unknown protocol '${name}' (json, messagepack)`);
    }
    return name;
  });

/**
 * Whether a hub protocol can run over a transport: MessagePack is binary and
 * Server-Sent Events carry text only (the official client skips SSE for it).
 */
export function carries(transport, protocol) {
  return protocol === 'json' || transport !== HttpTransportType.ServerSentEvents;
}

/**
 * Client configurations of a suite, for each protocol of `protocols`: each
 * transport that carries it, negotiated, plus WebSockets with
 * `skipNegotiation` when WebSockets is among the transports. Each mode has
 * `name`, `transport`, `skipNegotiation`, `protocol` and `options` (the three
 * as options of `client`/`connect`).
 */
export function clientModes({ skipNegotiation = true, protocols = PROTOCOLS } = {}) {
  const modes = [];
  const mode = (transport, skip, protocol) => ({
    name: `${transportName(transport)} (${skip ? 'skipNegotiation' : 'negotiated'}) with ${protocol}`,
    transport,
    skipNegotiation: skip,
    protocol,
    options: { transport, skipNegotiation: skip, protocol },
  });
  for (const protocol of protocols) {
    for (const transport of TRANSPORTS) {
      if (carries(transport, protocol)) modes.push(mode(transport, false, protocol));
    }
    if (skipNegotiation && TRANSPORTS.includes(HttpTransportType.WebSockets)) {
      modes.push(mode(HttpTransportType.WebSockets, true, protocol));
    }
  }
  return modes;
}

// ---------------------------------------------------------------------------
// Waiting. Tests wait for a state or an event, never for a fixed time: a bounded
// poll (`eventually`) where the state can only be asked for, a wakeable wait
// (`Waiters`) where something tells us it changed. Neither asserts a timing.

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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
    await pause(interval);
  }
}

/**
 * Waits that whoever changes the state wakes: `until(check)` resolves with the
 * first value other than `undefined` that `check()` returns, re-checking on
 * every `wake()`; it rejects when `check` throws or after `timeout` ms.
 */
export class Waiters {
  #waiting = new Set();

  wake() {
    for (const attempt of [...this.#waiting]) attempt();
  }

  until(check, { timeout = 5000, what = 'condition', detail = () => '' } = {}) {
    return new Promise((resolve, reject) => {
      let timer;
      const done = () => {
        clearTimeout(timer);
        this.#waiting.delete(attempt);
      };
      const attempt = () => {
        let value;
        try {
          value = check();
        } catch (error) {
          done();
          reject(error);
          return;
        }
        if (value !== undefined) {
          done();
          resolve(value);
        }
      };
      timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}${detail()}`));
      }, timeout);
      this.#waiting.add(attempt);
      attempt();
    });
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

/**
 * A test body with a server of its own, started with `options` (`{ env }`) and
 * stopped when the body ends, however it ends, with the clients and raw
 * connections the body opened to it. Called as `body(server, t)`; failures
 * carry the server's output as with `logged`.
 */
export function withServer(name, options, body, { timeout } = {}) {
  return async (t) => {
    const server = await startServer(name, options);
    try {
      return await logged(() => server, (inner) => body(server, inner), { timeout })(t);
    } finally {
      closeRawOf(server);
      await stopClientsOf(server);
      await server.stop();
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

const messagePackProtocol = new MessagePackHubProtocol();

/** How many MessagePack Ping messages (`[6]`) a binary payload holds; 0 if it is not whole messages. */
function countMessagePackPings(data) {
  try {
    return messagePackProtocol.parseMessages(data, signalR.NullLogger.instance).filter((m) => m.type === 6).length;
  } catch {
    return 0;
  }
}

/**
 * An official HubConnection plus an inbox of every client-method call it got.
 * `on(method)` must be called for each client method before `start()` (the
 * helpers `connect`/`connectMany` do it). `pings` counts the server's Ping
 * messages, which the client otherwise consumes silently.
 */
export class Client {
  constructor(connection, label, baseUrl, protocol = 'json') {
    this.connection = connection;
    this.label = label;
    this.baseUrl = baseUrl;
    this.protocol = protocol;
    this.received = []; // { method, args } in arrival order, unconsumed
    this.pings = 0;
    this.waiters = new Waiters();
    this.closedWith = undefined;
    this.closed = new Promise((resolve) => {
      connection.onclose((error) => {
        this.closedWith = error ?? null;
        this.waiters.wake();
        resolve(error ?? null);
      });
    });
    // The transport hands every payload to this callback, which HubConnection
    // set when it was built; counting here sees pings no public API shows.
    const http = connection.connection;
    const deliver = http.onreceive;
    http.onreceive = (data) => {
      if (typeof data === 'string') {
        this.pings += data.split(RS).filter((record) => record === '{"type":6}').length;
        this.waiters.wake();
      } else {
        // MessagePack: whole length-prefixed messages (the handshake answer
        // comes as a string or ahead of them; it is left to the client).
        this.pings += countMessagePackPings(data);
        this.waiters.wake();
      }
      deliver(data);
    };
  }

  on(method) {
    this.connection.on(method, (...args) => {
      this.received.push({ method, args });
      this.waiters.wake();
    });
    return this;
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
   * Waits until `check()` returns something other than `undefined` (re-checked
   * on every call and ping received); fails early if the connection closes.
   */
  waitFor(check, { timeout = 5000, what = 'condition' } = {}) {
    return this.waiters.until(
      () => {
        const value = check();
        if (value === undefined && this.closedWith !== undefined) {
          throw new Error(`${this.label} closed (${this.closedWith}) while waiting for ${what}`);
        }
        return value;
      },
      { timeout, what: `${what} at ${this.label}`, detail: () => `; inbox: ${JSON.stringify(this.received)}` },
    );
  }

  /**
   * The first unconsumed call of `method` whose args `match` accepts (all if
   * no predicate), removed from the inbox; waits up to `timeout` ms for it.
   */
  next(method, { match = () => true, timeout = 5000 } = {}) {
    return this.waitFor(
      () => {
        const index = this.received.findIndex((m) => m.method === method && match(m.args));
        return index < 0 ? undefined : this.received.splice(index, 1)[0].args;
      },
      { timeout, what: `a '${method}' call` },
    );
  }

  /**
   * Proves delivery to this client has caught up: asks the server (through
   * `sentinelMethod`, a hub method that sends `message(text)` back to the
   * caller) for a sentinel and waits for it. Whatever a send that completed
   * before this call would have delivered to this client has arrived by then,
   * since one connection's messages keep their order. Returns (and consumes)
   * every other call received before the sentinel.
   */
  async drain({ sentinelMethod = 'sendToCaller', timeout = 5000 } = {}) {
    const sentinel = unique('sentinel');
    await this.invoke(sentinelMethod, sentinel);
    const index = await this.waitFor(
      () => {
        const at = this.received.findIndex((m) => m.method === 'message' && m.args[0] === sentinel);
        return at < 0 ? undefined : at;
      },
      { timeout, what: `the sentinel ${sentinel}` },
    );
    const before = this.received.slice(0, index);
    this.received = this.received.slice(index + 1);
    return before;
  }

  /** Asserts that nothing but the sentinel arrived (see `drain`). */
  async assertNothingElse(options) {
    const rest = await this.drain(options);
    assert.deepEqual(rest, [], `${this.label} received calls it should not have`);
  }
}

/**
 * Waits until each client of `expected` got `method(...args)`, then proves (with
 * `drain`) that no client of `everyone` got anything else: no copy, no stray
 * call, nothing to someone not expected.
 */
export async function assertDelivered(everyone, expected, { method = 'message', args }) {
  await Promise.all(expected.map((c) => c.next(method, { match: (got) => isDeepStrictEqual(got, args) })));
  const extra = await Promise.all(everyone.map(async (c) => [c.label, await c.drain()]));
  assert.deepEqual(
    extra.filter(([, got]) => got.length > 0),
    [],
    `${method}(${JSON.stringify(args)}): unexpected deliveries (expected at ${expected.map((c) => c.label).join(', ') || 'nobody'} only)`,
  );
}

/**
 * Builds (does not start) a client. `path` is the hub path with an optional
 * query (`/targets?user=alice`); `protocol` is 'json' (the default) or
 * 'messagepack' (the official MessagePackHubProtocol).
 */
export function client(server, hubPath, { transport = HttpTransportType.WebSockets, skipNegotiation = false, protocol = 'json', methods = ['message'], label = hubPath, configure } = {}) {
  let builder = new HubConnectionBuilder()
    // `transport: null` leaves the choice to the client's own fallback.
    .withUrl(`${server.url}${hubPath}`, { ...(transport === null ? {} : { transport }), skipNegotiation, logger: captureLogger, logMessageContent: true })
    .configureLogging(captureLogger);
  if (protocol === 'messagepack') {
    builder = builder.withHubProtocol(new MessagePackHubProtocol());
  } else if (protocol !== 'json') {
    throw new Error(`unknown hub protocol '${protocol}'`);
  }
  if (configure) builder = configure(builder);
  const connection = builder.build();
  const result = new Client(connection, label, server.url, protocol);
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

async function stopClients(which) {
  for (const c of which) openClients.delete(c);
  await Promise.allSettled(which.map((c) => withTimeout(c.stop(), 5000, `${c.label} stop`)));
}

/** Stops every client `connect` started that is still open. */
export function stopAllClients() {
  return stopClients([...openClients]);
}

/** Stops the clients `connect` started against `server`. */
export function stopClientsOf(server) {
  return stopClients([...openClients].filter((c) => c.baseUrl === server.url));
}

/** Asserts that `promise` rejects with an Error whose message is exactly `expected`. */
export async function assertRejects(promise, expected, what = 'invocation') {
  let error;
  try {
    const value = await promise;
    assert.fail(`${what} resolved with ${JSON.stringify(value)} instead of rejecting`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    error = e;
  }
  assert.ok(error instanceof Error, `${what} rejected with a non-Error: ${error}`);
  assert.equal(error.message, expected, `${what}: error text`);
  return error;
}

// ---------------------------------------------------------------------------
// The texts the server sends (signal-server/src/docs/texts.md), whole.

export const TEXTS = {
  /** A Completion error of an invocation whose method returned a HubError or got one. */
  hubError: (method, message) => `An unexpected error occurred invoking '${method}' on the server. HubException: ${message}`,
  /** A Completion error of an invocation whose method panicked. */
  unexpected: (method) => `An unexpected error occurred invoking '${method}' on the server.`,
  unknownMethod: (method) => `Failed to invoke '${method}' due to an error on the server. HubException: Method does not exist.`,
  /** Arguments that do not bind, detailed errors off. */
  binding: (method) => `Failed to invoke '${method}' due to an error on the server.`,
  bindingTypeDetailed: (method) =>
    `Failed to invoke '${method}' due to an error on the server. InvalidDataException: Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked.`,
  bindingCountDetailed: (method, given, expected) =>
    `Failed to invoke '${method}' due to an error on the server. InvalidDataException: Invocation provides ${given} argument(s) but target expects ${expected}.`,
  streamCount: (method, sent, expected) =>
    `An unexpected error occurred invoking '${method}' on the server. HubException: Client sent ${sent} stream(s), Hub method expects ${expected}.`,
  streamingByInvoke: (method) => `The client attempted to invoke the streaming '${method}' method with a non-streaming invocation.`,
  plainByStream: (method) => `The client attempted to invoke the non-streaming '${method}' method with a streaming invocation.`,
  /** Close errors. */
  tooLarge: (limit = 32768) =>
    `Connection closed with an error. InvalidDataException: The maximum message size of ${limit}B was exceeded. The message size can be configured in HubOptions.`,
  clientTimeout: (duration) =>
    `Connection closed with an error. No message was received from the client within the client timeout (${duration}).`,
  /** Handshake refusals. */
  unknownProtocol: (name) => `The protocol '${name}' is not supported.`,
  unsupportedVersion: (version) => `The server does not support version ${version} of the 'json' protocol.`,
  /** How the official client reports a Close message's error. */
  closedByServer: (error) => `Server returned an error on close: ${error}`,
};

// ---------------------------------------------------------------------------
// Raw connections (bad-input and protocol tests): raw WebSocket frames with
// `ws`, Server-Sent Events and long polling with fetch. All three read the
// server's records into a `RecordInbox` and offer the same calls:
// `sendRaw(text)`, `sendRecords(...messages)`, `nextRecord(timeout)`,
// `waitEnded(timeout)`, `close()`.
//
// With `protocol: 'messagepack'` (WebSockets and long polling; SSE carries text
// only) the handshake is still a JSON record, and then the server's messages
// are read by a `MessagePackInbox`: each record is the message's MessagePack
// array as `@msgpack/msgpack` decodes it (`[3, {}, '1', 3, 'hi']`), and
// `hubMessage(record)` is what the official client's `parseMessages` makes of
// the same bytes. `sendRecords` then takes hub messages (`{ type: 1, ... }`,
// written by the official MessagePackHubProtocol) or arrays (encoded as they
// are, for messages the official writer would never produce), each framed
// with its VarInt length; `sendRaw` takes bytes.

/** POST {hub}/negotiate?negotiateVersion=1; returns { status, headers, body (parsed JSON or text) }. */
export async function negotiate(server, hubPath, { version = 1, query = '', headers = {} } = {}) {
  const response = await fetch(`${server.url}${hubPath}/negotiate?negotiateVersion=${version}${query}`, {
    method: 'POST',
    headers: { 'X-Requested-With': 'XMLHttpRequest', ...headers },
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

/** Negotiates (asserting 200) and returns the body with the transport URL of its token. */
export async function negotiated(server, hubPath) {
  const { status, body } = await negotiate(server, hubPath);
  assert.equal(status, 200, `negotiate status (body ${JSON.stringify(body)})`);
  const url = `${server.url}${hubPath}${hubPath.includes('?') ? '&' : '?'}id=${encodeURIComponent(body.connectionToken)}`;
  return { ...body, url };
}

/** Records as one text: each message as JSON (strings as they are), each followed by RS. */
export function records(...messages) {
  return messages.map((m) => (typeof m === 'string' ? m : JSON.stringify(m)) + RS).join('');
}

/** A hub Invocation message. */
export const invocation = (id, target, ...args) => ({ type: 1, invocationId: String(id), target, arguments: args });

/**
 * Records parsed from text that arrives in pieces: split on RS, each parsed as
 * JSON (`{ unparsable }` if it is not). Pings are counted and, unless `pings`,
 * left out of `records`.
 */
export class RecordInbox {
  constructor(label, { pings = false } = {}) {
    this.label = label;
    this.keepPings = pings;
    this.records = [];
    this.chunks = [];
    this.buffer = '';
    this.pings = 0;
    this.ended = undefined;
    this.waiters = new Waiters();
  }

  push(text) {
    this.chunks.push(text);
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
      if (parsed?.type === 6) {
        this.pings += 1;
        if (!this.keepPings) continue;
      }
      this.records.push(parsed);
    }
    this.waiters.wake();
  }

  /** No more text will come; `how` says why (kept in `ended`). */
  end(how = {}) {
    this.ended ??= how;
    this.waiters.wake();
  }

  /** The next record; rejects on timeout or once the source ended with none left. */
  next(timeout = 5000) {
    return this.waiters.until(
      () => {
        if (this.records.length > 0) return this.records.shift();
        if (this.ended) {
          throw new Error(
            `${this.label} ended (${JSON.stringify(this.ended)}) with no record left; received: ${this.describe(this.chunks)}; partial: ${this.describe(this.buffer)}`,
          );
        }
        return undefined;
      },
      { timeout, what: `a record from ${this.label}`, detail: () => `; received so far: ${this.describe(this.chunks)}` },
    );
  }

  /** For error messages. */
  describe(value) {
    return JSON.stringify(value);
  }
}

/** Bytes as hex pairs ("02 91 06"), for error messages. */
export function hex(bytes) {
  return Buffer.from(bytes).toString('hex').replace(/(..)(?!$)/g, '$1 ');
}

/** Each message's bytes preceded by its VarInt length (the MessagePack protocol's framing). */
export function lengthPrefixed(...messages) {
  const parts = [];
  for (const message of messages) {
    let size = message.length;
    do {
      let byte = size & 0x7f;
      size = Math.floor(size / 128);
      if (size > 0) byte |= 0x80;
      parts.push(Buffer.from([byte]));
    } while (size > 0);
    parts.push(Buffer.from(message));
  }
  return Buffer.concat(parts);
}

/**
 * One or more MessagePack hub messages, framed, in one buffer: hub message
 * objects are written by the official MessagePackHubProtocol, arrays are
 * encoded as they are with @msgpack/msgpack.
 */
export function messagePackMessages(...messages) {
  return Buffer.concat(
    messages.map((message) =>
      Array.isArray(message)
        ? lengthPrefixed(msgpack.encode(message))
        : Buffer.from(messagePackProtocol.writeMessage(message)),
    ),
  );
}

const framedOf = new WeakMap();

/**
 * What the official MessagePackHubProtocol's `parseMessages` makes of a record
 * of a `MessagePackInbox` (from the bytes it came in): `{ type: 7, error, ... }`.
 */
export function hubMessage(record) {
  const framed = framedOf.get(record);
  if (!framed) throw new Error(`not a record of a MessagePack inbox: ${JSON.stringify(record)}`);
  const messages = messagePackProtocol.parseMessages(framed.buffer.slice(framed.byteOffset, framed.byteOffset + framed.length), signalR.NullLogger.instance);
  assert.equal(messages.length, 1, `one hub message in ${hex(framed)}`);
  return messages[0];
}

/**
 * A `RecordInbox` for the MessagePack protocol: bytes that arrive in pieces,
 * first the handshake answer (a JSON record ending in RS), then messages each
 * preceded by its VarInt length. Each record is the message's decoded array;
 * a message that is not MessagePack is kept as `{ undecodable: hex, error }`,
 * a length prefix the server should never send as `{ badPrefix: hex }`.
 * `chunks` holds each piece as received (Buffers).
 */
export class MessagePackInbox extends RecordInbox {
  constructor(label, options) {
    super(label, options);
    this.buffer = Buffer.alloc(0);
    this.handshaken = false;
  }

  push(bytes) {
    const chunk = Buffer.from(bytes);
    this.chunks.push(chunk);
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      if (!this.handshaken) {
        const index = this.buffer.indexOf(0x1e);
        if (index < 0) break;
        const text = this.buffer.subarray(0, index).toString('utf8');
        this.buffer = this.buffer.subarray(index + 1);
        this.handshaken = true;
        let parsed;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = { unparsable: text };
        }
        this.records.push(parsed);
        continue;
      }
      let size = 0;
      let at = 0;
      let complete = false;
      while (at < this.buffer.length && at < 5) {
        const byte = this.buffer[at];
        size += (byte & 0x7f) * 2 ** (7 * at);
        at += 1;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (at === 5) {
          this.records.push({ badPrefix: hex(this.buffer.subarray(0, 5)) });
          this.buffer = Buffer.alloc(0);
        }
        break;
      }
      if (this.buffer.length < at + size) break;
      const framed = Buffer.from(this.buffer.subarray(0, at + size));
      const body = framed.subarray(at);
      this.buffer = this.buffer.subarray(at + size);
      let record;
      try {
        record = msgpack.decode(body);
      } catch (error) {
        record = { undecodable: hex(body), error: error.message };
      }
      if (Array.isArray(record) && record.length === 1 && record[0] === 6) {
        this.pings += 1;
        if (!this.keepPings) continue;
      }
      if (record !== null && typeof record === 'object') framedOf.set(record, framed);
      this.records.push(record);
    }
    this.waiters.wake();
  }

  describe(value) {
    if (Buffer.isBuffer(value)) return hex(value);
    if (Array.isArray(value)) return `[${value.map((chunk) => (Buffer.isBuffer(chunk) ? hex(chunk) : JSON.stringify(chunk))).join(' | ')}]`;
    return JSON.stringify(value);
  }
}

/** An inbox for the records of `protocol`. */
function inboxFor(protocol, label, options) {
  if (protocol === 'messagepack') return new MessagePackInbox(label, options);
  if (protocol === 'json') return new RecordInbox(label, options);
  throw new Error(`unknown hub protocol '${protocol}'`);
}

/** The handshake request of `protocol`, as the official clients send it: a JSON record. */
export function handshakeRecord(protocol, version = 1) {
  return records({ protocol, version });
}

/** Every raw connection opened here, for cleanup. */
const rawConnections = new Set();

/** Closes every raw connection. */
export function closeAllRaw() {
  for (const connection of rawConnections) connection.close();
  rawConnections.clear();
}

/** Closes the raw connections to `server`. */
export function closeRawOf(server) {
  for (const connection of rawConnections) {
    if (connection.url.startsWith(`${server.url}/`) || connection.url.startsWith(wsUrl(server, '/'))) {
      connection.close();
      rawConnections.delete(connection);
    }
  }
}

/**
 * A raw WebSocket speaking text records (`protocol: 'json'`, the default) or
 * MessagePack messages (`protocol: 'messagepack'`). `ws` options (`headers`,
 * `origin`) go to the upgrade request. `opened` rejects with `statusCode` and
 * `body` when the server refuses the upgrade. `frameKinds` lists whether each
 * frame received was 'text' or 'binary'.
 */
export class RawSocket {
  constructor(url, { pings = false, protocol = 'json', ...options } = {}) {
    this.url = url;
    this.protocol = protocol;
    this.inbox = inboxFor(protocol, url, { pings });
    this.frameKinds = [];
    this.ws = new WebSocket(url, options);
    this.closeInfo = undefined;
    rawConnections.add(this);
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
          // Only now: destroying the request earlier would drop the body.
          request.destroy();
        });
      });
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        this.inbox.end(this.closeInfo);
        resolve(this.closeInfo);
      });
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data, isBinary) => {
      this.frameKinds.push(isBinary ? 'binary' : 'text');
      if (this.protocol === 'messagepack') this.inbox.push(Buffer.from(data));
      else this.inbox.push(isBinary ? Buffer.from(data).toString('utf8') : data.toString());
    });
  }

  /** Records received and not yet taken by `nextRecord`. */
  get records() {
    return this.inbox.records;
  }

  /** Every frame received, as text (JSON) or as a Buffer (MessagePack). */
  get frames() {
    return this.inbox.chunks;
  }

  /**
   * Sends a string as one text frame, as is (add RS yourself), or bytes as one
   * binary frame (`options` may say otherwise: `{ binary, fin }`).
   */
  sendRaw(data, options = {}) {
    const binary = typeof data !== 'string';
    return new Promise((resolve, reject) => this.ws.send(data, { binary, ...options }, (e) => (e ? reject(e) : resolve())));
  }

  /**
   * Sends one or more messages in one frame: JSON messages each as a record in
   * a text frame, or MessagePack messages (see `messagePackMessages`) in a
   * binary frame.
   */
  sendRecords(...messages) {
    if (this.protocol === 'messagepack') return this.sendRaw(messagePackMessages(...messages));
    return this.sendRaw(records(...messages));
  }

  /** The next record; rejects on timeout or if the socket closes with none left. */
  nextRecord(timeout = 5000) {
    return this.inbox.next(timeout);
  }

  /** The close of the socket, within `timeout` ms: `{ code, reason }`. */
  waitEnded(timeout = 5000) {
    return withTimeout(this.closed, timeout, `${this.url} to close`);
  }

  /** Sends the handshake of its protocol (a text frame, as the official client) and expects `{}`. */
  async handshake(version = 1) {
    await this.opened;
    await this.sendRaw(handshakeRecord(this.protocol, version));
    assert.deepEqual(await this.nextRecord(), {}, 'handshake response');
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

/** Negotiates, opens a raw WebSocket to the hub with the token, and does the handshake of `protocol`. */
export async function rawConnect(server, hubPath, { handshake = true, negotiated: negotiate_ = true, pings = false, protocol = 'json' } = {}) {
  let url = wsUrl(server, hubPath);
  let connectionId;
  if (negotiate_) {
    const body = await negotiated(server, hubPath);
    connectionId = body.connectionId;
    url += `${url.includes('?') ? '&' : '?'}id=${encodeURIComponent(body.connectionToken)}`;
  }
  const socket = new RawSocket(url, { pings, protocol });
  socket.connectionId = connectionId;
  await withTimeout(socket.opened, 5000, `raw socket ${url} to open`);
  if (handshake) await socket.handshake();
  return socket;
}

/** A raw socket to `url` (tracked for cleanup), not waited for. */
export function rawSocket(url, options) {
  return new RawSocket(url, options);
}

/**
 * POSTs `body` to a transport URL, a string as text/plain, bytes as
 * application/octet-stream (as the official client); returns `{ status, body }`
 * (the answer as text).
 */
export async function post(url, body) {
  const type = typeof body === 'string' ? 'text/plain' : 'application/octet-stream';
  const response = await fetch(url, { method: 'POST', headers: { 'Content-Type': type }, body });
  return { status: response.status, body: await response.text() };
}

/** An HTTP transport's POSTs: `sendRaw` expects 200 and an empty body. */
class HttpSender {
  async sendRaw(data) {
    const response = await post(this.url, data);
    assert.deepEqual(response, { status: 200, body: '' }, 'POST response');
    return response;
  }

  /** One POST of JSON records, or of framed MessagePack messages (see `messagePackMessages`). */
  sendRecords(...messages) {
    if (this.protocol === 'messagepack') return this.sendRaw(messagePackMessages(...messages));
    return this.sendRaw(records(...messages));
  }

  /** POSTs the handshake of its protocol (a JSON record) and expects `{}`. */
  async handshake(version = 1) {
    await this.sendRaw(handshakeRecord(this.protocol, version));
    assert.deepEqual(await this.nextRecord(), {}, 'handshake response');
  }
}

/**
 * A raw Server-Sent Events connection (GET with `Accept: text/event-stream`):
 * `status`, `headers`, `text` (everything received, comments included) and the
 * records of its `data:` lines.
 */
export class EventStream extends HttpSender {
  static async open(url, { headers = {}, pings = false } = {}) {
    const controller = new AbortController();
    const response = await fetch(url, { headers: { Accept: 'text/event-stream', ...headers }, signal: controller.signal });
    return new EventStream(url, response, controller, { pings });
  }

  constructor(url, response, controller, { pings }) {
    super();
    this.url = url;
    // Text only: a MessagePack handshake here is refused (see messagepack.test.mjs).
    this.protocol = 'json';
    this.status = response.status;
    this.headers = response.headers;
    this.controller = controller;
    this.text = '';
    this.inbox = new RecordInbox(`the event stream ${url}`, { pings });
    rawConnections.add(this);
    this.ended = this.#read(response);
    this.ended.catch(() => {});
  }

  async #read(response) {
    const decoder = new TextDecoder();
    let pending = '';
    let data = [];
    try {
      for await (const chunk of response.body) {
        const text = decoder.decode(chunk, { stream: true });
        this.text += text;
        pending += text;
        let index;
        while ((index = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, index).replace(/\r$/, '');
          pending = pending.slice(index + 1);
          if (line === '') {
            // A blank line ends an event; its data lines joined by \n are the payload.
            if (data.length > 0) this.inbox.push(data.join('\n'));
            data = [];
          } else if (line.startsWith('data:')) {
            data.push(line.slice(5).replace(/^ /, ''));
          }
          // Other lines (":" comments) carry nothing for us.
        }
      }
      this.inbox.end({ stream: 'ended' });
    } catch (error) {
      this.inbox.end({ error: error.message });
    }
    return this.text;
  }

  nextRecord(timeout = 5000) {
    return this.inbox.next(timeout);
  }

  /** The end of the stream, within `timeout` ms; resolves with everything received. */
  waitEnded(timeout = 5000) {
    return withTimeout(this.ended, timeout, `${this.url} to end`);
  }

  close() {
    this.controller.abort();
  }
}

/**
 * A raw long-polling connection: `poll()` is one GET; `nextRecord` polls (one
 * poll at a time) until a record comes. A poll answered 204 ends the inbox.
 * `polls` lists every answer: `{ status, contentType, body }`, the body as
 * text (JSON) or as a Buffer (MessagePack).
 */
export class LongPolling extends HttpSender {
  constructor(url, { protocol = 'json' } = {}) {
    super();
    this.url = url;
    this.protocol = protocol;
    this.inbox = inboxFor(protocol, `long polling ${url}`);
    this.polls = [];
    this.controller = new AbortController();
    this.inFlight = null;
    rawConnections.add(this);
  }

  /** One GET, as is: `{ status, contentType, body }`. */
  async poll() {
    const response = await fetch(this.url, { signal: this.controller.signal });
    const body = this.protocol === 'messagepack' ? Buffer.from(await response.arrayBuffer()) : await response.text();
    return { status: response.status, contentType: response.headers.get('content-type'), body };
  }

  #pump() {
    this.inFlight ??= this.poll().then(
      (answer) => {
        this.inFlight = null;
        this.polls.push(answer);
        if (answer.status === 200) {
          if (answer.body.length > 0) this.inbox.push(answer.body);
        } else {
          this.inbox.end(answer);
        }
      },
      (error) => {
        this.inFlight = null;
        this.inbox.end({ error: error.message });
      },
    );
    return this.inFlight;
  }

  async nextRecord(timeout = 5000) {
    const deadline = Date.now() + timeout;
    for (;;) {
      if (this.inbox.records.length > 0) return this.inbox.records.shift();
      if (this.inbox.ended) return this.inbox.next(0);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no record from ${this.url} within ${timeout} ms; polls: ${JSON.stringify(this.polls)}`);
      // A poll that outlives the wait still lands in the inbox.
      await withTimeout(this.#pump(), left, `a poll of ${this.url}`).catch(() => {});
    }
  }

  /** Polls until one is answered other than 200: that answer, within `timeout` ms. */
  async waitEnded(timeout = 5000) {
    const deadline = Date.now() + timeout;
    while (!this.inbox.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.url} did not end within ${timeout} ms; polls: ${JSON.stringify(this.polls)}`);
      await withTimeout(this.#pump(), left, `a poll of ${this.url}`).catch(() => {});
    }
    return this.inbox.ended;
  }

  close() {
    this.controller.abort();
    // Ends the connection on the server too; nobody waits for the answer.
    fetch(this.url, { method: 'DELETE' }).then((r) => r.text()).catch(() => {});
  }
}

/**
 * Negotiates and opens `transport` ('WebSockets', 'ServerSentEvents' or
 * 'LongPolling') raw, then does the handshake of `protocol` ('json' or, but for
 * SSE, 'messagepack') unless `handshake: false`. A new long-polling
 * connection's first poll (answered at once) is taken here.
 */
export async function rawOpen(transport, server, hubPath, { handshake = true, pings = false, protocol = 'json' } = {}) {
  if (transport === 'WebSockets') return rawConnect(server, hubPath, { handshake, pings, protocol });
  const { url, connectionId } = await negotiated(server, hubPath);
  let connection;
  if (transport === 'ServerSentEvents') {
    if (protocol !== 'json') throw new Error(`Server-Sent Events carry text only: no raw ${protocol} connection over them`);
    connection = await EventStream.open(url, { pings });
    assert.equal(connection.status, 200, 'event stream status');
    assert.equal(connection.headers.get('content-type'), 'text/event-stream');
  } else if (transport === 'LongPolling') {
    connection = new LongPolling(url, { protocol });
    const empty = protocol === 'json' ? '' : Buffer.alloc(0);
    assert.deepEqual(await connection.poll(), { status: 200, contentType: null, body: empty }, 'the first poll starts the connection');
  } else {
    throw new Error(`unknown transport ${transport}`);
  }
  connection.connectionId = connectionId;
  if (handshake) await connection.handshake();
  return connection;
}

/**
 * Asserts that the server's next record on `connection` is a Close with
 * exactly `error` (no allowReconnect), that the transport then ends, and that
 * nothing came after the Close. Over MessagePack the Close is the array
 * `[7, error, false]` (three elements, as ASP.NET Core writes it), which the
 * official client reads as `{ type: 7, error, allowReconnect: false }`.
 */
export async function expectClose(connection, error) {
  const close = await connection.nextRecord();
  if (connection.protocol === 'messagepack') {
    assert.deepEqual(close, [7, error, false], 'the Close message');
    assert.deepEqual(hubMessage(close), { type: 7, error, allowReconnect: false }, 'the Close message as the official client reads it');
  } else {
    assert.deepEqual(close, { type: 7, error }, 'the Close message');
  }
  await connection.waitEnded();
  assert.deepEqual(connection.inbox.records, [], 'nothing after the Close message');
}
