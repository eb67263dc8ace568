#!/usr/bin/env node
// A plain Engine.IO server (the `engine.io` package socket.io 4.8 is built on, no socket.io
// layer): the reference for the mock server's Engine.IO mode (tests/mock_conformance.rs).
//
//   node engine_server.js [--ping-interval MS] [--ping-timeout MS]
//
// Listens on 127.0.0.1 with an ephemeral port on the default path /engine.io/, echoes every
// message (text or binary) to its sender, prints exactly one line `{"port":N}` to stdout once
// listening, logs to stderr only, and exits as soon as its stdin closes (as server.js).
"use strict";

const http = require("http");
const engine = require("engine.io");

function usage(msg) {
  process.stderr.write(`engine_server.js: ${msg}\n`);
  process.stderr.write("usage: node engine_server.js [--ping-interval MS] [--ping-timeout MS]\n");
  process.exit(2);
}

const opts = { transports: ["polling", "websocket"] };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const flag = argv[i];
  const value = argv[++i];
  if (value === undefined || !/^\d+$/.test(value)) usage(`${flag} needs a non-negative integer, got ${value}`);
  switch (flag) {
    case "--ping-interval":
      opts.pingInterval = Number(value);
      break;
    case "--ping-timeout":
      opts.pingTimeout = Number(value);
      break;
    default:
      usage(`unknown argument ${flag}`);
  }
}

process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();

const log = (...parts) => process.stderr.write(`[engine.io] ${parts.join(" ")}\n`);
const httpServer = http.createServer();
const server = engine.attach(httpServer, opts);
server.on("connection", (socket) => {
  log(`open ${socket.id}`);
  socket.on("message", (data) => socket.send(data));
  socket.on("close", (reason) => log(`close ${socket.id} ${reason}`));
});

httpServer.on("error", (err) => {
  log(`listen failed: ${err.message}`);
  process.exit(1);
});
httpServer.listen(0, "127.0.0.1", () => {
  const { port } = httpServer.address();
  log(`listening on 127.0.0.1:${port}`);
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
