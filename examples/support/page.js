// What every example page shares, served at /page.js by `support::page`.

/** The page's query string. */
export const params = new URLSearchParams(location.search);

/**
 * The connection options the query asks for: `?transport=WebSockets`,
 * `ServerSentEvents` or `LongPolling` forces a transport (the official
 * client's fallback chooses otherwise).
 */
export function connectionOptions() {
  const options = {};
  const forced = params.get("transport");
  if (forced) {
    const transport = signalR.HttpTransportType[forced];
    if (transport === undefined) {
      alert(`Unknown transport '${forced}'; use WebSockets, ServerSentEvents or LongPolling.`);
    } else {
      options.transport = transport;
    }
  }
  return options;
}

/**
 * A connection to the hub at `path` with the query's options and automatic
 * reconnect; `?log` turns on the client's console logging (`log` overrides it).
 */
export function hubConnection(path, { log = params.has("log"), configure = (b) => b } = {}) {
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(path, connectionOptions())
    .withAutomaticReconnect()
    .configureLogging(log ? signalR.LogLevel.Debug : signalR.LogLevel.Warning);
  return configure(builder).build();
}

/** The element with `id`. */
export const $ = (id) => document.getElementById(id);
