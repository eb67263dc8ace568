// Drives `sio mock` from the official JS client (socket.io-client 4.8) and the control API,
// the way a test suite in another language would: node mock_client.js URL CONTROL_URL.
// The mock must run with: --echo echo --ack sum=[6] --namespace /admin
//   --require-auth '/admin={"token":"secret"}' --ping-interval 300 --ping-timeout 400
// Prints one JSON line per check passed and {"ok":true,"checks":[...]} at the end; exits 1
// with the failure on stderr otherwise.
"use strict";

const { io } = require("socket.io-client");

const [url, control] = process.argv.slice(2);
if (!url || !control) {
  console.error("usage: node mock_client.js URL CONTROL_URL");
  process.exit(2);
}
const WAIT = 10000;
const checks = [];

function pass(name, detail) {
  checks.push(name);
  console.log(JSON.stringify({ check: name, ...(detail || {}) }));
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

async function call(method, path, body) {
  const response = await fetch(control + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  return { status: response.status, json };
}

async function ok(method, path, body) {
  const { status, json } = await call(method, path, body);
  assert(status === 200, `${method} ${path} ${JSON.stringify(body)}: ${status} ${JSON.stringify(json)}`);
  return json;
}

// Resolves with the event's arguments, rejects after `ms`.
function once(emitter, event, ms = WAIT) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

// A client that must fail to connect: resolves with the connect_error.
async function refused(options, nsp = "/") {
  const socket = io(url + nsp, { reconnection: false, forceNew: true, timeout: 3000, ...options });
  try {
    const [error] = await Promise.race([
      once(socket, "connect_error"),
      once(socket, "connect").then(() => {
        throw new Error(`connected although refused: ${JSON.stringify(options)}`);
      }),
    ]);
    return error;
  } finally {
    socket.close();
  }
}

async function connected(options, nsp = "/") {
  const socket = io(url + nsp, { reconnection: false, forceNew: true, ...options });
  await Promise.race([
    once(socket, "connect"),
    once(socket, "connect_error").then(([e]) => {
      throw new Error(`connect_error ${e && e.message}: ${JSON.stringify(options)}`);
    }),
  ]);
  return socket;
}

async function main() {
  // Events and acknowledgements, text and binary.
  const socket = await connected({ transports: ["websocket"], auth: { user: "node" } });
  const echoed = once(socket, "echo");
  socket.emit("echo", 1, "two", Buffer.from([0, 1, 2]));
  const [one, two, bytes] = await echoed;
  assert(one === 1 && two === "two" && Buffer.from(bytes).equals(Buffer.from([0, 1, 2])), "echo args");
  const sum = await socket.timeout(WAIT).emitWithAck("sum", 1, 2, 3);
  assert(sum === 6, `sum acked ${sum}`);
  pass("echo_and_ack");

  const sockets = await ok("GET", "/sockets");
  const me = sockets.find((s) => s.id === socket.id);
  assert(me && me.namespace === "/" && me.transport === "websocket" && me.auth.user === "node",
    `GET /sockets: ${JSON.stringify(sockets)}`);
  pass("sockets");

  const received = await ok("GET", "/received?wait=2&timeout_ms=10000");
  const echo = received.find((e) => e.event === "echo" && e.socket === socket.id);
  assert(echo && echo.args[2]._binary === "AAEC", `GET /received: ${JSON.stringify(received)}`);
  assert(received.some((e) => e.event === "sum" && e.ack_id !== null), "sum recorded with an ack id");
  pass("received");

  // Server-to-client emits: plain, acknowledged, to a namespace.
  socket.on("question", (n, ack) => ack(n * 2, { from: "node" }));
  const news = once(socket, "news");
  await ok("POST", "/emit", { event: "news", args: [{ a: 1 }, { _binary: "AQI=" }] });
  const [body, binary] = await news;
  assert(body.a === 1 && Buffer.from(binary).equals(Buffer.from([1, 2])), "news args");
  const asked = await ok("POST", "/emit", { event: "question", args: [21], socket: socket.id, ack: true });
  assert(JSON.stringify(asked.args) === JSON.stringify([42, { from: "node" }]), `ack: ${JSON.stringify(asked)}`);
  pass("emit");

  // The connect guard of /admin.
  const denied = await refused({ transports: ["websocket"], auth: { token: "wrong" } }, "/admin");
  assert(denied.message === "not authorized", `guard: ${denied.message}`);
  (await connected({ transports: ["websocket"], auth: { token: "secret" } }, "/admin")).close();
  pass("require_auth");

  // WebSocket-breaking faults: a WebSocket-only client is refused, polling still works.
  for (const [name, value] of [
    ["reject_websocket", 403],
    ["websocket_no_upgrade", true],
    ["reset_on_upgrade", true],
    ["black_hole_websocket", true],
  ]) {
    await ok("POST", "/faults", { name, value });
    await refused({ transports: ["websocket"] });
    (await connected({ transports: ["polling"] })).close();
    await ok("POST", "/faults/clear");
    (await connected({ transports: ["websocket"] })).close();
    pass(name);
  }

  await ok("POST", "/faults", { name: "refuse_connections", value: true });
  await refused({ transports: ["polling"] });
  await ok("POST", "/faults/clear");
  pass("refuse_connections");

  await ok("POST", "/faults", { name: "delay", value: 300 });
  const started = Date.now();
  (await connected({ transports: ["polling"] })).close();
  // The handshake alone is one delayed request: a lower bound, never an upper one.
  assert(Date.now() - started >= 300, "delay was not applied");
  await ok("POST", "/faults/clear");
  pass("delay");

  // The Node client has no streaming transport: the switch is accepted and polling unaffected.
  await ok("POST", "/faults", { name: "buffer_streaming", value: true });
  (await connected({ transports: ["polling"] })).close();
  await ok("POST", "/faults/clear");
  pass("buffer_streaming");

  // No more pings: the client gives up after pingInterval + pingTimeout.
  const quiet = await connected({ transports: ["websocket"] });
  await ok("POST", "/faults", { name: "stop_pings", value: true });
  const [quietReason] = await once(quiet, "disconnect");
  assert(quietReason === "ping timeout", `stop_pings: ${quietReason}`);
  await ok("POST", "/faults/clear");
  pass("stop_pings");

  // Connection-level events on a client that reconnects.
  const lasting = io(url, { transports: ["websocket"], forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
  await once(lasting, "connect");
  const dropped = once(lasting, "disconnect");
  await ok("POST", "/faults", { name: "drop_all_connections" });
  const [dropReason] = await dropped;
  assert(dropReason === "transport close" || dropReason === "transport error", `drop: ${dropReason}`);
  await once(lasting, "connect");
  pass("drop_all_connections");

  const restarted = once(lasting, "disconnect");
  await ok("POST", "/restart");
  const [restartReason] = await restarted;
  assert(restartReason === "transport close" || restartReason === "transport error", `restart: ${restartReason}`);
  await once(lasting, "connect");
  pass("restart");

  const kicked = once(lasting, "disconnect");
  const done = await ok("POST", "/disconnect", { socket: lasting.id });
  assert(done.disconnected === 1, JSON.stringify(done));
  const [kickReason] = await kicked;
  assert(kickReason === "io server disconnect", `disconnect: ${kickReason}`);
  lasting.close();
  pass("disconnect");

  // Errors are JSON with a 4xx status.
  const missing = await call("POST", "/faults", { name: "no_such_fault" });
  const badJson = await fetch(control + "/emit", { method: "POST", body: "{oops" });
  const nowhere = await call("GET", "/nowhere");
  assert(missing.status === 404 && missing.json.error, JSON.stringify(missing));
  assert(badJson.status === 400 && (await badJson.json()).error, "bad JSON");
  assert(nowhere.status === 404 && nowhere.json.error, JSON.stringify(nowhere));
  pass("errors");

  // A final event for the Rust side to find (the first socket went with the dropped
  // connections).
  socket.close();
  const last = await connected({ transports: ["websocket"] });
  const before = (await ok("GET", "/received")).length;
  last.emit("bye", "from node");
  await ok("GET", `/received?wait=${before + 1}`);
  last.close();
  console.log(JSON.stringify({ ok: true, checks }));
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`mock_client.js failed after ${JSON.stringify(checks)}: ${error.stack || error}`);
    process.exit(1);
  },
);
