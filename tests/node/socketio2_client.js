#!/usr/bin/env node
// The official socket.io-client 2.5 (the one socket.io 2.5 brings) against `sio mock --eio 3`
// (tests/sio_mock.rs): an echo, an ack, /admin refused without the token query and joined with
// it; prints one JSON line with what came back.
//
//   node socketio2_client.js URL websocket|polling
"use strict";

const io = require("socket.io-v2/node_modules/socket.io-client");

const [url, transport] = process.argv.slice(2);
if (!url || !["websocket", "polling"].includes(transport)) {
  process.stderr.write("usage: node socketio2_client.js URL websocket|polling\n");
  process.exit(2);
}
const fail = (why) => {
  process.stderr.write(`socketio2_client.js: ${why}\n`);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 20000).unref();

const options = { transports: [transport], forceNew: true, reconnection: false };
const result = {};
const main = io(url, options);
main.on("connect_error", (e) => fail(`connect_error: ${e.message || e}`));
main.on("connect", () => {
  main.emit("echo", "hi", { n: 1 });
});
main.on("echo", (...args) => {
  result.echo = args;
  main.emit("sum", 1, 2, 3, (...reply) => {
    result.sum = reply;
    refused();
  });
});

function refused() {
  const admin = io(`${url}/admin`, options);
  admin.on("error", (e) => {
    result.admin_refused = e;
    admin.close();
    joined();
  });
  admin.on("connect", () => fail("/admin joined without the token"));
}

function joined() {
  const admin = io(`${url}/admin`, { ...options, query: { token: "secret" } });
  admin.on("error", (e) => fail(`/admin refused with the token: ${e}`));
  admin.on("connect", () => admin.emit("echo", "in admin"));
  admin.on("echo", (...args) => {
    result.admin_echo = args;
    result.transport = main.io.engine.transport.name;
    process.stdout.write(`${JSON.stringify(result)}\n`);
    admin.close();
    main.close();
    process.exit(0);
  });
}
