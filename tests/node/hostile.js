#!/usr/bin/env node
// A hostile Engine.IO v4 / Socket.IO v5 server for the Rust memory-bound tests
// (tests/hostile_memory.rs). It runs in its own process so that what it allocates is not
// counted against the client's memory.
//
//   node hostile.js MODE
//
// MODE, after a normal handshake and namespace CONNECT:
//   noops         polling: one GET answered with a 99 MB body of noops ("6" x 49.5M)
//   pings         polling: one GET answered with a 20 MB body of pings
//   attachments   websocket: an event announcing 1000 attachments, then 1000 x 1 MB binary frames
//   json          websocket: one 99 MB event `42["e",[],[],...]`
//   json-zeros    websocket: one 99 MB event `42["e",0,0,...]`
//   json-objects  websocket: one 99 MB event `42["e",{},{},...]`
//   deaf          websocket (pingInterval 300 ms, pingTimeout 2 s): stops reading the socket
//                 after the CONNECT and sends a 1 MB ping every 50 ms
//
// Prints `{"port":N}` once listening on 127.0.0.1 (ephemeral port), then one line per step
// the test waits for: `{"sent":true}` after the hostile body or frames went out, `{"next":true}`
// when the client asks for more after a polling body (it consumed it), `{"pongs":N}` for every
// POST carrying pongs. Exits when stdin closes.
"use strict";

const http = require("http");
const { WebSocketServer } = require("ws");

const mode = process.argv[2];
const MODES = ["noops", "pings", "attachments", "json", "json-zeros", "json-objects", "deaf"];
if (!MODES.includes(mode)) {
  process.stderr.write(`hostile.js: unknown mode ${mode}\n`);
  process.exit(2);
}
process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
process.stdin.resume();

const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const OPEN = '0{"sid":"h","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}';
const SEP = "\x1e";

function hostileBody() {
  if (mode === "noops") return ("6" + SEP).repeat(49_500_000 - 1) + "6";
  return ("2" + SEP).repeat(10_000_000 - 1) + "2";
}

let connected = false;
let waitingGet = null;
let gets = 0;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  const sid = url.searchParams.get("sid");
  if (req.method === "POST") {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const packets = body.split(SEP);
      if (packets.includes("40")) {
        connected = true;
        if (waitingGet) {
          waitingGet.end('40{"sid":"n"}');
          waitingGet = null;
        }
      }
      const pongs = packets.filter((p) => p === "3").length;
      if (pongs > 0) say({ pongs });
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end("ok");
    });
    return;
  }
  if (!sid) {
    res.writeHead(200, { "Content-Type": "text/plain; charset=UTF-8" });
    res.end(OPEN);
    return;
  }
  gets += 1;
  res.writeHead(200, { "Content-Type": "text/plain; charset=UTF-8" });
  if (gets === 1) {
    if (connected) res.end('40{"sid":"n"}');
    else waitingGet = res;
  } else if (gets === 2) {
    res.end(hostileBody(), () => say({ sent: true }));
  } else {
    if (gets === 3) say({ next: true });
    // Held: a long poll with nothing to say.
  }
});

const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
server.on("upgrade", (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.send(
      mode === "deaf"
        ? OPEN.replace('"pingInterval":25000,"pingTimeout":20000', '"pingInterval":300,"pingTimeout":2000')
        : OPEN,
    );
    ws.on("message", (data, isBinary) => {
      if (isBinary || data.toString() !== "40") return;
      ws.send('40{"sid":"n"}');
      if (mode === "deaf") {
        // What the client writes from now on stays in the sockets' buffers.
        ws._socket.pause();
        const ping = "2" + "x".repeat(1 << 20);
        const timer = setInterval(() => ws.send(ping), 50);
        ws.on("close", () => clearInterval(timer));
        say({ sent: true });
      } else if (mode === "attachments") {
        const placeholders = [];
        for (let i = 0; i < 1000; i++) placeholders.push(`{"_placeholder":true,"num":${i}}`);
        ws.send(`451000-["e",${placeholders.join(",")}]`);
        const megabyte = Buffer.alloc(1 << 20, 7);
        let i = 0;
        const next = () => {
          if (i >= 1000 || ws.readyState !== ws.OPEN) return say({ sent: true });
          i += 1;
          ws.send(megabyte, { binary: true }, next);
        };
        next();
      } else {
        const body =
          mode === "json-zeros"
            ? '42["e"' + ",0".repeat(49_000_000) + "]"
            : '42["e"' + (mode === "json" ? ",[]" : ",{}").repeat(33_000_000) + "]";
        ws.send(body, () => say({ sent: true }));
      }
    });
  });
});

server.listen(0, "127.0.0.1", () => say({ port: server.address().port }));
