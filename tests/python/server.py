#!/usr/bin/env python3
"""A real python-socketio 5 server (aiohttp) for the Rust interop tests.

    python server.py [--ping-interval MS] [--ping-timeout MS]

Run with the interpreter of the venv that tests/support/servers.rs creates from
requirements.txt. Listens on 127.0.0.1 with an ephemeral port, prints exactly one line
`{"port":N}` to stdout once listening, and logs to stderr only. It exits as soon as its stdin
closes: the test process holds the write end, so a test binary that dies for any reason takes
its servers with it.

Behaviour, the same on "/" and "/admin", as in tests/node/server.js:
  "echo" (args...)            -> emit("echo", ...args)
  "ack" (args..., cb)         -> cb(...args)
  "request-ack" (args...)     -> emit("need-ack", ...args, reply => emit("got-ack", ...reply))
  "disconnect-me"             -> disconnect the socket from its namespace
"/admin" needs `auth: {token: "secret"}`; otherwise the CONNECT is refused with the message
"not authorized" and the data {"reason": "bad token"}, like the Node server.
"""

import argparse
import asyncio
import json
import os
import socket
import sys
import threading

import socketio
from aiohttp import web


def log(*parts):
    print("[python-socketio]", *parts, file=sys.stderr, flush=True)


def exit_when_stdin_closes():
    # os._exit: the event loop would otherwise keep the process alive.
    def wait():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=wait, daemon=True).start()


def wire(sio, namespace, needs_token):
    async def connect(sid, environ, auth):
        if needs_token and not (isinstance(auth, dict) and auth.get("token") == "secret"):
            log(f"reject {namespace} auth={json.dumps(auth)}")
            raise socketio.exceptions.ConnectionRefusedError(
                "not authorized", {"reason": "bad token"}
            )
        log(f"connect {namespace} {sid}")

    async def disconnect(sid, reason):
        log(f"disconnect {namespace} {sid} {reason}")

    async def echo(sid, *args):
        await sio.emit("echo", args, to=sid, namespace=namespace)

    # The return value is the ack; a tuple is spread over the ack's arguments.
    async def ack(sid, *args):
        return args

    async def request_ack(sid, *args):
        async def got_reply(*reply):
            await sio.emit("got-ack", reply, to=sid, namespace=namespace)

        await sio.emit("need-ack", args, to=sid, namespace=namespace, callback=got_reply)

    async def disconnect_me(sid, *_args):
        await sio.disconnect(sid, namespace=namespace)

    sio.on("connect", connect, namespace=namespace)
    sio.on("disconnect", disconnect, namespace=namespace)
    sio.on("echo", echo, namespace=namespace)
    sio.on("ack", ack, namespace=namespace)
    sio.on("request-ack", request_ack, namespace=namespace)
    sio.on("disconnect-me", disconnect_me, namespace=namespace)


async def serve(args):
    options = {}
    # python-socketio takes seconds.
    if args.ping_interval is not None:
        options["ping_interval"] = args.ping_interval / 1000
    if args.ping_timeout is not None:
        options["ping_timeout"] = args.ping_timeout / 1000
    sio = socketio.AsyncServer(async_mode="aiohttp", transports=["polling", "websocket"], **options)
    wire(sio, "/", needs_token=False)
    wire(sio, "/admin", needs_token=True)

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()

    # Bound here rather than by aiohttp so that the ephemeral port is known.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    port = sock.getsockname()[1]
    log(f"listening on 127.0.0.1:{port}")
    print(json.dumps({"port": port}), flush=True)
    await asyncio.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ping-interval", type=int, metavar="MS")
    parser.add_argument("--ping-timeout", type=int, metavar="MS")
    args = parser.parse_args()
    exit_when_stdin_closes()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
