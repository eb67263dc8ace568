#!/usr/bin/env node
// The official Engine.IO client (engine.io-client 6, what socket.io-client 4 is built on)
// against `sio mock --engine-io` (tests/sio_mock.rs): sends a text and a binary message over
// polling upgraded to WebSocket, and prints one JSON line with the echoes.
//
//   node engine_client.js URL PATH
"use strict";

const { Socket } = require("engine.io-client");

const [url, path] = process.argv.slice(2);
if (!url || !path) {
  process.stderr.write("usage: node engine_client.js URL PATH\n");
  process.exit(2);
}
const fail = (why) => {
  process.stderr.write(`engine_client.js: ${why}\n`);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 20000).unref();

const socket = new Socket(url, { path, transports: ["polling", "websocket"] });
const result = {};
socket.on("error", (e) => fail(`error: ${e.message || e}`));
socket.on("upgrade", () => {
  socket.send("hello");
});
socket.on("message", (data) => {
  if (typeof data === "string") {
    result.text = data;
    socket.send(new Uint8Array([1, 2, 3]));
  } else {
    result.binary = Array.from(new Uint8Array(data));
    result.transport = socket.transport.name;
    process.stdout.write(`${JSON.stringify(result)}\n`);
    socket.close();
    process.exit(0);
  }
});
