// The dashboard page: the official @microsoft/signalr browser client (the
// global `signalR`) calls the hub through the typed proxy generated from the
// Rust contract (`examples/generated/dashboard.js`), and uPlot (the global
// `uPlot`) draws the figures the server pushes every second. Both are served
// by the example from its npm install.
// `?transport=WebSockets|ServerSentEvents|LongPolling` forces a transport,
// `?protocol=messagepack` speaks MessagePack.

import { DashboardProxy, registerDashboardClient } from "/generated/dashboard.js";
import { $, hubConnection, params } from "/page.js";

const connection = hubConnection("/dashboard", {
  configure: (builder) =>
    params.get("protocol") === "messagepack"
      ? builder.withHubProtocol(new signalR.protocols.msgpack.MessagePackHubProtocol())
      : builder,
});
const dashboard = new DashboardProxy(connection);

// Two minutes of history, one point a second.
const HISTORY = 120;
const connectionSeries = [
  ["WebSockets", "webSockets", "#4f7cff"],
  ["Server-Sent Events", "serverSentEvents", "#16a34a"],
  ["Long polling", "longPolling", "#e0475b"],
];
const trafficSeries = [
  ["invocations / s", "invocationsPerSecond", "#7c3aed"],
  ["messages in / s", "messagesInPerSecond", "#0891b2"],
  ["messages out / s", "messagesOutPerSecond", "#ea580c"],
];

function chart(title, series, element) {
  const data = [[], ...series.map(() => [])];
  const plot = new uPlot({
    title,
    width: Math.max(320, element.clientWidth - 16),
    height: 240,
    scales: { x: { time: true }, y: { range: (_, min, max) => [0, Math.max(1, max * 1.1)] } },
    series: [{}, ...series.map(([label, , stroke]) => ({ label, stroke, width: 2 }))],
  }, data, element);
  return {
    push(figures) {
      data[0].push(figures.at / 1000);
      series.forEach(([, key], i) => data[i + 1].push(figures[key]));
      if (data[0].length > HISTORY) data.forEach((column) => column.shift());
      plot.setData(data);
    },
  };
}

const charts = [
  chart("Connections by transport", connectionSeries, $("connections-chart")),
  chart("Traffic", trafficSeries, $("traffic-chart")),
];

const tiles = {
  "web-sockets": "webSockets",
  "server-sent-events": "serverSentEvents",
  "long-polling": "longPolling",
  json: "json",
  "message-pack": "messagePack",
  groups: "groups",
  "invocations-per-second": "invocationsPerSecond",
  "messages-in-per-second": "messagesInPerSecond",
  "messages-out-per-second": "messagesOutPerSecond",
  invocations: "invocations",
  "connections-opened": "connectionsOpened",
};

function show(figures) {
  for (const [id, key] of Object.entries(tiles)) {
    const value = figures[key];
    $(id).textContent = Number.isInteger(value) ? String(value) : value.toFixed(1);
  }
  for (const c of charts) c.push(figures);
}

registerDashboardClient(connection, { figures: show });

// "traffic": this page calls `echo` ten times a second, to see the charts move.
let traffic = null;
$("traffic").addEventListener("click", () => {
  if (traffic) {
    clearInterval(traffic);
    traffic = null;
  } else {
    traffic = setInterval(() => dashboard.echo("tick").catch(() => {}), 100);
  }
  $("traffic").setAttribute("aria-pressed", String(traffic !== null));
});

async function watch() {
  show(await dashboard.watch());
}

connection.onreconnecting(() => { $("status").textContent = "reconnecting…"; });
// A new connection is in no group: watch again.
connection.onreconnected(() => { $("status").textContent = "connected"; watch(); });
connection.onclose(() => { $("status").textContent = "disconnected"; });

connection.start().then(async () => {
  // The transport's class name (the unminified bundle keeps it) tells which one won.
  const transport = connection.connection?.transport?.constructor?.name?.replace("Transport", "");
  $("status").textContent = transport ? `connected (${transport})` : "connected";
  await watch();
}).catch((e) => {
  $("status").textContent = `failed: ${e.message}`;
});
