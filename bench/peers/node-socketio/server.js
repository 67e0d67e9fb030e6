// The Node socket.io peer of the signal benchmark, with socket.io's defaults.
// `echo` answers with an ack carrying the same data; `broadcast` emits `message`
// with the data to every other socket.
// Run: PORT=5000 node server.js; prints `listening on http://127.0.0.1:PORT`.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 5000);
const httpServer = http.createServer();
const io = new Server(httpServer, { serveClient: false });

io.on("connection", (socket) => {
  socket.on("echo", (data, ack) => {
    if (typeof ack === "function") ack(data);
  });
  socket.on("broadcast", (data) => {
    socket.broadcast.emit("message", data);
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${httpServer.address().port}`);
});
