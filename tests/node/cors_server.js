#!/usr/bin/env node
// A socket.io 4 server with `cors: { origin, credentials: true }`, the reference for the mock
// server's `cors(origin)` (tests/mock_api.rs).
//
//   node cors_server.js ORIGIN
//
// Listens on 127.0.0.1 on an ephemeral port, prints one line `{"port":N}` to stdout once
// listening, and exits when its stdin closes (see tests/support/process.rs).
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const origin = process.argv[2];
if (!origin) {
  process.stderr.write("usage: node cors_server.js ORIGIN\n");
  process.exit(2);
}
const httpServer = http.createServer();
new Server(httpServer, { cors: { origin, credentials: true } });
httpServer.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: httpServer.address().port }) + "\n");
});
process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
