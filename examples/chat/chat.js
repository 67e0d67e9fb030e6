// The chat page: the official @microsoft/signalr browser client (the global
// `signalR`, served by the example from its npm install), called through the
// typed proxy generated from the Rust hub (`examples/generated/chat.js`).
// `?transport=WebSockets|ServerSentEvents|LongPolling` forces a transport; "show
// log" turns on the client's console logging, which names the transport it chose.

import { ChatProxy, registerChatClient } from "/generated/chat.js";
import { $, hubConnection, params } from "/page.js";

const showLog = $("show-log");
showLog.checked = localStorage.getItem("signal-chat-log") === "1" || params.has("log");

const connection = hubConnection("/chat", { log: showLog.checked });

showLog.addEventListener("change", () => {
  localStorage.setItem("signal-chat-log", showLog.checked ? "1" : "0");
  location.reload();
});

let room = null;

function add(html, cls) {
  const li = document.createElement("li");
  if (cls) li.className = cls;
  li.append(...html);
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
}

function text(s, cls) {
  const span = document.createElement("span");
  span.textContent = s;
  if (cls) span.className = cls;
  return span;
}

function list(id, names) {
  $(id).replaceChildren(...names.map((n) => {
    const li = document.createElement("li");
    li.textContent = n;
    return li;
  }));
}

const chat = new ChatProxy(connection);

registerChatClient(connection, {
  receiveMessage(r, user, message) {
    if (r === room) add([text(user, "user"), text(message)]);
  },
  userJoined(r, user, members) {
    if (r !== room) return;
    add([text(`${user} joined ${r}`)], "notice");
    list("members", members);
  },
  userLeft(r, user, members) {
    if (r !== room) return;
    add([text(`${user} left ${r}`)], "notice");
    list("members", members);
  },
  onlineUsers(names) {
    list("online", names);
  },
});

function setJoined(joined) {
  $("join").disabled = joined;
  $("leave").disabled = !joined;
  $("text").disabled = !joined;
  $("send-button").disabled = !joined;
  $("name").disabled = joined;
  $("room").disabled = joined;
}

async function join() {
  const name = $("name").value.trim();
  const wanted = $("room").value.trim();
  if (!name || !wanted) return;
  try {
    const members = await chat.joinRoom(name, wanted);
    room = wanted;
    list("members", members);
    setJoined(true);
    $("text").focus();
  } catch (e) {
    add([text(e.message)], "notice");
  }
}

async function leave() {
  if (!room) return;
  await chat.leaveRoom(room);
  add([text(`you left ${room}`)], "notice");
  room = null;
  list("members", []);
  setJoined(false);
}

$("join").addEventListener("click", join);
$("leave").addEventListener("click", leave);
$("send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = $("text").value;
  if (!message || !room) return;
  $("text").value = "";
  try {
    await chat.sendMessage(room, message);
  } catch (e) {
    add([text(e.message)], "notice");
  }
});

connection.onreconnecting(() => { $("status").textContent = "reconnecting…"; });
connection.onreconnected(async () => {
  $("status").textContent = "connected";
  // A new connection: join the room again.
  if (room) {
    const again = room;
    room = null;
    $("room").value = again;
    setJoined(false);
    await join();
  }
});
connection.onclose(() => { $("status").textContent = "disconnected"; });

connection.start().then(() => {
  // The transport's class name (the unminified bundle keeps it) tells which one won.
  const transport = connection.connection?.transport?.constructor?.name?.replace("Transport", "");
  $("status").textContent = transport ? `connected (${transport})` : "connected";
  if (params.get("name")) { $("name").value = params.get("name"); }
  if (params.get("room")) { $("room").value = params.get("room"); }
  if (params.get("name") && params.get("room")) join();
}).catch((e) => {
  $("status").textContent = `failed: ${e.message}`;
});
