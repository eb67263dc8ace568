#!/usr/bin/env node
// A real socket.io server for the Rust interop tests (see tests/support/node.rs).
//
//   node server.js --sio 4|2 [--port N] [--ping-interval MS] [--ping-timeout MS]
//                  [--max-payload BYTES] [--recovery]
//
// Listens on 127.0.0.1 (port 0 = ephemeral unless --port is given), prints exactly one
// line `{"port":N}` to stdout once listening, and logs to stderr only. It exits as soon
// as its stdin closes: the test process holds the write end, so a test binary that dies
// for any reason takes its servers with it instead of leaving orphans behind.
//
// Behaviour, the same on "/" and "/admin" for both versions:
//   "echo" (args...)            -> socket.emit("echo", ...args)
//   "ack" (args..., cb)         -> cb(...args)
//   "socket-id" (cb)            -> cb(socket.id)
//   "handshake-header" (name, cb) -> cb(socket.handshake.headers[name] ?? null): the header as
//                                    the request that opened the session carried it
//   "request-ack" (args...)     -> socket.emit("need-ack", ...args, (...reply) =>
//                                    socket.emit("got-ack", ...reply))
//   "disconnect-me"             -> socket.disconnect(true)
//   "cut-me"                    -> socket.conn.close() (a recoverable disconnect)
//   "am-i-recovered" (ack)      -> acks socket.recovered
//   "broadcast" (args...)       -> io.of(nsp).emit("broadcast", ...args)
//   "burst" (n, size)           -> n x socket.emit("item", i, <size x "x">) back to back,
//                                    then socket.emit("burst-done", n)
// "/admin" needs a token: v4 `auth: {token: "secret"}`, v2 `?token=secret` in the
// namespace CONNECT packet. Nothing is ever emitted unprompted on connection.
"use strict";

const http = require("http");

function usage(msg) {
  process.stderr.write(`server.js: ${msg}\n`);
  process.stderr.write(
    "usage: node server.js --sio 4|2 [--port N] [--ping-interval MS] [--ping-timeout MS] [--max-payload BYTES] [--recovery]\n",
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { sio: null, port: 0, pingInterval: null, pingTimeout: null, maxPayload: null, recovery: false };
  const number = (flag, value) => {
    if (value === undefined || !/^\d+$/.test(value)) usage(`${flag} needs a non-negative integer, got ${value}`);
    return Number(value);
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    switch (flag) {
      case "--sio": {
        const v = argv[++i];
        if (v !== "4" && v !== "2") usage(`--sio must be 4 or 2, got ${v}`);
        opts.sio = Number(v);
        break;
      }
      case "--port":
        opts.port = number(flag, argv[++i]);
        break;
      case "--ping-interval":
        opts.pingInterval = number(flag, argv[++i]);
        break;
      case "--ping-timeout":
        opts.pingTimeout = number(flag, argv[++i]);
        break;
      case "--max-payload":
        opts.maxPayload = number(flag, argv[++i]);
        break;
      case "--recovery":
        opts.recovery = true;
        break;
      default:
        usage(`unknown argument ${flag}`);
    }
  }
  if (opts.sio === null) usage("--sio is required");
  if (opts.recovery && opts.sio !== 4) usage("--recovery needs --sio 4 (connection state recovery is a v4 feature)");
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const log = (...parts) => process.stderr.write(`[sio${opts.sio}] ${parts.join(" ")}\n`);

// The process must not outlive the test that started it.
process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();

// An ack callback only ever arrives as the last argument; anything that is not an
// ack-taking event should not forward it as data.
function splitAck(args) {
  if (args.length > 0 && typeof args[args.length - 1] === "function") {
    return { data: args.slice(0, -1), ack: args[args.length - 1] };
  }
  return { data: args, ack: null };
}

function wire(io, nspName) {
  const nsp = io.of(nspName);
  nsp.on("connection", (socket) => {
    log(`connect ${nspName} ${socket.id}`);
    socket.on("disconnect", (reason) => log(`disconnect ${nspName} ${socket.id} ${reason}`));

    socket.on("echo", (...args) => {
      const { data } = splitAck(args);
      socket.emit("echo", ...data);
    });
    socket.on("ack", (...args) => {
      const { data, ack } = splitAck(args);
      if (ack) ack(...data);
    });
    socket.on("socket-id", (...args) => {
      const { ack } = splitAck(args);
      if (ack) ack(socket.id);
    });
    socket.on("handshake-header", (...args) => {
      const { data, ack } = splitAck(args);
      const value = socket.handshake.headers[String(data[0]).toLowerCase()];
      if (ack) ack(value === undefined ? null : value);
    });
    socket.on("request-ack", (...args) => {
      const { data } = splitAck(args);
      socket.emit("need-ack", ...data, (...reply) => socket.emit("got-ack", ...reply));
    });
    socket.on("disconnect-me", () => socket.disconnect(true));
    // Closes the underlying connection as a network failure would ("forced close"), which
    // connection-state recovery treats as recoverable.
    socket.on("cut-me", () => socket.conn.close());
    socket.on("am-i-recovered", (...args) => {
      const { ack } = splitAck(args);
      if (ack) ack(Boolean(socket.recovered));
    });
    socket.on("broadcast", (...args) => {
      const { data } = splitAck(args);
      nsp.emit("broadcast", ...data);
    });
    // One synchronous loop: over polling the whole burst leaves in one response, over
    // WebSocket as fast as the socket takes it.
    socket.on("burst", (...args) => {
      const { data } = splitAck(args);
      const [n, size] = data;
      const pad = "x".repeat(size);
      for (let i = 0; i < n; i++) socket.emit("item", i, pad);
      socket.emit("burst-done", n);
    });
    wireMiddleboxHelpers(socket);
  });
  return nsp;
}

// --- Middlebox helpers (tests/middleboxes.rs) ---
// For tests that put proxies and load balancers between client and server:
//   "whoami" (ack)              -> acks the port this server listens on, so a test behind a
//                                  load balancer can tell which backend answered
//   "record" (seq, [delayMs], ack)
//                               -> remembers seq (every arrival, duplicates included) and acks
//                                  seq; at seq's first arrival only, delayMs later when given
//                                  (an ack a middlebox can lose by cutting the connection)
//   "recorded" (ack)            -> acks every seq "record" got so far, in arrival order
// The record is per process, shared by all sockets and namespaces.
const recordedSeqs = [];
function wireMiddleboxHelpers(socket) {
  socket.on("whoami", (...args) => {
    const { ack } = splitAck(args);
    if (ack) ack(httpServer.address().port);
  });
  socket.on("record", (...args) => {
    const { data, ack } = splitAck(args);
    const [seq, delayMs] = data;
    const first = !recordedSeqs.includes(seq);
    recordedSeqs.push(seq);
    if (!ack) return;
    if (first && typeof delayMs === "number" && delayMs > 0) {
      setTimeout(() => ack(seq), delayMs);
    } else {
      ack(seq);
    }
  });
  socket.on("recorded", (...args) => {
    const { ack } = splitAck(args);
    if (ack) ack(recordedSeqs);
  });
}
// --- end of middlebox helpers ---

const httpServer = http.createServer();

if (opts.sio === 4) {
  const { Server } = require("socket.io");
  const config = { serveClient: false, transports: ["polling", "websocket"] };
  if (opts.pingInterval !== null) config.pingInterval = opts.pingInterval;
  if (opts.pingTimeout !== null) config.pingTimeout = opts.pingTimeout;
  if (opts.maxPayload !== null) config.maxHttpBufferSize = opts.maxPayload;
  if (opts.recovery) config.connectionStateRecovery = {};
  const io = new Server(httpServer, config);
  wire(io, "/");
  wire(io, "/admin").use((socket, next) => {
    const auth = socket.handshake.auth;
    if (auth && auth.token === "secret") return next();
    log(`reject /admin auth=${JSON.stringify(auth)}`);
    const e = new Error("not authorized");
    e.data = { reason: "bad token" };
    next(e);
  });
} else {
  const io = require("socket.io-v2")(httpServer, (() => {
    const config = { serveClient: false, transports: ["polling", "websocket"] };
    if (opts.pingInterval !== null) config.pingInterval = opts.pingInterval;
    if (opts.pingTimeout !== null) config.pingTimeout = opts.pingTimeout;
    if (opts.maxPayload !== null) config.maxHttpBufferSize = opts.maxPayload;
    return config;
  })());
  wire(io, "/");
  // socket.io 2 merges the query of the namespace CONNECT packet (`40/admin?token=secret,`)
  // over the handshake request's query, so the token shows up in handshake.query.
  wire(io, "/admin").use((socket, next) => {
    const query = socket.handshake.query;
    if (query && query.token === "secret") return next();
    log(`reject /admin query=${JSON.stringify(query)}`);
    next(new Error("not authorized"));
  });
}

httpServer.on("error", (err) => {
  log(`listen failed: ${err.message}`);
  process.exit(1);
});
httpServer.listen(opts.port, "127.0.0.1", () => {
  const { port } = httpServer.address();
  log(`listening on 127.0.0.1:${port}`);
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
