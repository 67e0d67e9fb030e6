// The chat page for the ASP.NET SignalR 2.x jQuery client (npm `signalr`
// 2.4.3 on jQuery 3.7.1, served by the example from its npm install), on the
// same hub as the Core page: both kinds of pages chat in one room.
// `?transport=longPolling` (or `webSockets`, `serverSentEvents`, a comma list
// for an order) forces transports; `?log` turns on the client's logging,
// whose lines name the transport it chose; `?manual` leaves starting to the
// console (the seed's snippets: `$.connection.hub.logging = true`,
// `connection.start({ transport: 'longPolling' })`).

/* global $ */
var connection = $.connection.hub;
var chat = $.connection.chatHub;
var params = new URLSearchParams(location.search);
var room = null;

function byId(id) {
  return document.getElementById(id);
}

function add(parts, cls) {
  var li = document.createElement("li");
  if (cls) li.className = cls;
  parts.forEach(function (part) {
    var span = document.createElement("span");
    span.textContent = part[0];
    if (part[1]) span.className = part[1];
    li.append(span);
  });
  byId("messages").append(li);
  li.scrollIntoView({ block: "end" });
}

function list(id, names) {
  byId(id).replaceChildren.apply(byId(id), names.map(function (n) {
    var li = document.createElement("li");
    li.textContent = n;
    return li;
  }));
}

chat.client.receiveMessage = function (r, user, text) {
  if (r === room) add([[user, "user"], [text]]);
};
chat.client.userJoined = function (r, user, members) {
  if (r !== room) return;
  add([[user + " joined " + r]], "notice");
  list("members", members);
};
chat.client.userLeft = function (r, user, members) {
  if (r !== room) return;
  add([[user + " left " + r]], "notice");
  list("members", members);
};
chat.client.onlineUsers = function (names) {
  list("online", names);
};

function join() {
  var name = byId("name").value;
  var wanted = byId("room").value;
  chat.server.joinRoom(name, wanted).done(function (members) {
    room = wanted.trim();
    list("members", members);
    byId("text").disabled = false;
    byId("send-button").disabled = false;
    add([["you joined " + room]], "notice");
  }).fail(function (error) {
    add([[error.message]], "notice");
  });
}

byId("join").addEventListener("click", join);
byId("send").addEventListener("submit", function (event) {
  event.preventDefault();
  var text = byId("text").value;
  byId("text").value = "";
  chat.server.sendMessage(room, text).fail(function (error) {
    add([[error.message]], "notice");
  });
});

connection.stateChanged(function (change) {
  var names = ["connecting", "connected", "reconnecting", "", "disconnected"];
  var status = names[change.newState];
  if (change.newState === $.signalR.connectionState.connected) {
    status += " (" + connection.transport.name + ")";
  }
  byId("status").textContent = status;
});

if (params.has("log")) {
  $.connection.hub.logging = true;
}
if (!params.has("manual")) {
  var transport = params.get("transport");
  var options = transport ? { transport: transport.split(",") } : undefined;
  connection.start(options).done(function () {
    if (params.get("name") && params.get("room")) {
      byId("name").value = params.get("name");
      byId("room").value = params.get("room");
      join();
    }
  });
}
