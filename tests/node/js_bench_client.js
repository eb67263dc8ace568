// The official JS client (socket.io-client 4.8) measured the way benches/js_client.rs measures
// sio-client, so the two can be compared against one Node server:
//   node js_bench_client.js URL throughput N WINDOW   acks with WINDOW in flight
//   node js_bench_client.js URL burst N SIZE          the server's "burst" of N events
// Long-polling only (the comparison the performance issue asks for). A warm-up of the same
// kind runs first (V8 compiles the hot paths), then the measured run. Prints one JSON line:
// {"count":..,"secs":..,"cpu_us":..,"wrong":..} (wrong: replies carrying another number, or
// events out of order); exits 1 with the reason on stderr when the run does not finish.
"use strict";

const { io } = require("socket.io-client");

const [url, mode, nText, extraText] = process.argv.slice(2);
const n = Number(nText);
const extra = Number(extraText);
if (!url || !["throughput", "burst"].includes(mode) || !(n > 0) || !(extra > 0)) {
  console.error("usage: node js_bench_client.js URL throughput|burst N WINDOW|SIZE");
  process.exit(2);
}
const LIMIT_MS = 300000;

function fail(why) {
  console.error(why);
  process.exit(1);
}

function connect() {
  return new Promise((resolve, reject) => {
    const socket = io(url, { transports: ["polling"], reconnection: false, forceNew: true });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (e) => reject(new Error(`connect_error: ${e.message}`)));
  });
}

// `count` acks with `window` in flight; resolves with how many replies carried another number.
function acks(socket, count, window) {
  return new Promise((resolve) => {
    let next = 0;
    let replies = 0;
    let wrong = 0;
    const send = () => {
      const seq = next++;
      socket.emit("ack", seq, (got) => {
        if (got !== seq) wrong++;
        replies++;
        if (next < count) send();
        if (replies === count) resolve(wrong);
      });
    };
    for (let i = 0; i < Math.min(window, count); i++) send();
  });
}

// The server's burst of `count` events; resolves with how many came out of order.
function burst(socket, count, size) {
  return new Promise((resolve) => {
    let expected = 0;
    let disorder = 0;
    const onItem = (i) => {
      if (i !== expected) disorder++;
      expected = i + 1;
    };
    socket.on("item", onItem);
    socket.once("burst-done", () => {
      socket.off("item", onItem);
      resolve({ items: expected, disorder });
    });
    socket.emit("burst", count, size);
  });
}

async function main() {
  setTimeout(() => fail(`${mode} of ${n} did not finish within ${LIMIT_MS} ms`), LIMIT_MS).unref();
  const socket = await connect();
  const run = mode === "throughput"
    ? (count) => acks(socket, count, extra).then((wrong) => ({ count, wrong }))
    : (count) => burst(socket, count, extra).then(({ items, disorder }) => ({ count: items, wrong: disorder }));
  await run(Math.max(1, Math.floor(n / 10)));
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  const result = await run(n);
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  socket.disconnect();
  console.log(JSON.stringify({ ...result, secs, cpu_us: cpu.user + cpu.system }));
  process.exit(0);
}

main().catch((e) => fail(e.stack || String(e)));
