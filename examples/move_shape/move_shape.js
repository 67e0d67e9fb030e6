// The move-shape page: drag the square, and every other page's square follows.
// Positions travel as fractions of the board (0 to 1), so boards of different
// sizes agree. The page sends at most one position per SEND_INTERVAL however
// fast the mouse moves (the last one always goes out), and the server sends
// the latest position to the other pages on its own tick: see move_shape.rs.
// `?transport=WebSockets|ServerSentEvents|LongPolling` forces a transport.

import { MoveShapeProxy, registerMoveShapeClient } from "/generated/move_shape.js";
import { $, hubConnection } from "/page.js";

const SEND_INTERVAL = 50; // ms: at most 20 positions a second

const connection = hubConnection("/shape");
const hub = new MoveShapeProxy(connection);
// For the console (and the browser test): `shapeHub.updateModel({ left: 2, top: 0 })`.
window.shapeHub = hub;

const board = $("board");
const shape = $("shape");
let model = { left: 0.1, top: 0.1 };
let counts = { sent: 0, received: 0 };

// The range the shape's corner can take, in pixels.
function room() {
  return {
    width: Math.max(1, board.clientWidth - shape.offsetWidth),
    height: Math.max(1, board.clientHeight - shape.offsetHeight),
  };
}

function place(m) {
  model = m;
  const { width, height } = room();
  shape.style.left = `${Math.round(m.left * width)}px`;
  shape.style.top = `${Math.round(m.top * height)}px`;
}

function count(what) {
  counts[what] += 1;
  $(what).textContent = String(counts[what]);
}

registerMoveShapeClient(connection, {
  updateShape(m) {
    count("received");
    // A drag in progress here wins over the others'.
    if (!dragging) place(m);
  },
});

// Throttling: remember the latest position; send it when SEND_INTERVAL has
// passed since the last send, else once it has.
let pending = null;
let lastSent = 0;
let timer = null;
function send() {
  timer = null;
  if (!pending || connection.state !== signalR.HubConnectionState.Connected) return;
  const m = pending;
  pending = null;
  lastSent = performance.now();
  count("sent");
  hub.updateModel(m).catch((e) => { $("status").textContent = e.message; });
}
function queue(m) {
  pending = m;
  if (timer !== null) return;
  const wait = Math.max(0, lastSent + SEND_INTERVAL - performance.now());
  timer = setTimeout(send, wait);
}

let dragging = null;
shape.addEventListener("pointerdown", (event) => {
  dragging = { dx: event.clientX - shape.offsetLeft, dy: event.clientY - shape.offsetTop };
  shape.setPointerCapture(event.pointerId);
  shape.classList.add("dragging");
});
shape.addEventListener("pointermove", (event) => {
  if (!dragging) return;
  const { width, height } = room();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  const m = {
    left: clamp((event.clientX - dragging.dx) / width),
    top: clamp((event.clientY - dragging.dy) / height),
  };
  place(m);
  queue(m);
});
const drop = () => {
  dragging = null;
  shape.classList.remove("dragging");
};
shape.addEventListener("pointerup", drop);
shape.addEventListener("pointercancel", drop);
window.addEventListener("resize", () => place(model));

async function started() {
  const transport = connection.connection?.transport?.constructor?.name?.replace("Transport", "");
  $("status").textContent = transport ? `connected (${transport})` : "connected";
  place(await hub.shape());
}

connection.onreconnecting(() => { $("status").textContent = "reconnecting…"; });
connection.onreconnected(started);
connection.onclose(() => { $("status").textContent = "disconnected"; });
place(model);
connection.start().then(started).catch((e) => {
  $("status").textContent = `failed: ${e.message}`;
});
