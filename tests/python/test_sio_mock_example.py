"""The README's pytest example: a python-socketio client against `sio mock`.

    pip install pytest python-socketio requests websocket-client
    SIO=/path/to/sio pytest test_sio_mock_example.py     # or with `sio` on PATH
"""

import json
import os
import subprocess
import urllib.request

import pytest
import socketio


@pytest.fixture
def mock():
    """A `sio mock` on free ports for one test; it stops when its stdin closes."""
    proc = subprocess.Popen(
        [os.environ.get("SIO", "sio"), "mock", "--echo", "echo", "--ack", "sum=[6]"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    ready = json.loads(proc.stdout.readline())  # {"url": ..., "control": ..., "path": ...}
    yield ready
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0


def control(mock, method, path, body=None):
    """One call to the mock's control API (JSON over HTTP)."""
    request = urllib.request.Request(
        mock["control"] + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_echo_ack_push_and_a_blocked_websocket(mock):
    with socketio.SimpleClient() as client:
        client.connect(mock["url"], transports=["websocket"])
        client.emit("echo", {"hello": "world"})
        assert client.receive(timeout=10) == ["echo", {"hello": "world"}]
        assert client.call("sum", [1, 2, 3], timeout=10) == 6

        # What the server received, waiting until both events are there.
        received = control(mock, "GET", "/received?wait=2&timeout_ms=10000")
        assert [(e["event"], e["args"]) for e in received] == [
            ("echo", [{"hello": "world"}]),
            ("sum", [[1, 2, 3]]),
        ]

        # The server pushes an event to every socket.
        assert control(mock, "POST", "/emit", {"event": "news", "args": ["flash"]}) == {"sent": 1}
        assert client.receive(timeout=10) == ["news", "flash"]

    # A proxy that refuses WebSocket: this client must fall back to polling.
    control(mock, "POST", "/faults", {"name": "reject_websocket", "value": 403})
    with socketio.SimpleClient() as client:
        client.connect(mock["url"], transports=["polling", "websocket"])
        client.emit("echo", "still here")
        assert client.receive(timeout=10) == ["echo", "still here"]
        assert client.transport == "polling"
