#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/<target>/seed-*) from the protocol specs' examples.

The seeds are committed; this script documents where they come from and regenerates them
(`python3 fuzz/make_seeds.py`). Input formats are those of fuzz/harness.rs.
"""
import hashlib
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

OPEN_V4 = '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
OPEN_V3 = '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}'
PH0 = '{"_placeholder":true,"num":0}'
PH1 = '{"_placeholder":true,"num":1}'

# Version byte used by the harnesses: even = Engine.IO v3, odd = v4.
V3, V4 = 0x00, 0x01


def b(s):
    return s.encode() if isinstance(s, str) else s


def write(target, seeds):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if name.startswith("seed-"):
            os.remove(os.path.join(d, name))
    assert len(seeds) <= 50, target
    for data in seeds:
        name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


# (1) engineio_packet: mode byte (bit 0 version; (mode >> 1) % 3: 0 decode_text, 1 text frame,
# 2 binary frame) + packet.
texts = ["0" + OPEN_V4, "0" + OPEN_V3, "1", "2", "3", "2probe", "3probe", "4hey", "4€",
         "4", "5", "6", "1x", "0{", "9x", "4😀"]
packet_seeds = []
for i, t in enumerate(texts):
    mode = [0, 1, 2, 3][i % 4]
    packet_seeds.append(bytes([mode]) + b(t))
packet_seeds += [bytes([4]) + bytes([4, 1, 2, 3, 4]), bytes([5, 1, 2, 3, 255]),
                 bytes([4]), bytes([5]), bytes([4, 2, 1])]
write("engineio_packet", packet_seeds)

# (2) engineio_payload: version byte + body.
v4_bodies = ["4hey", "4hello\x1e4world", "4hello\x1e4€€€", "4hello\x1ebAQIDBA==",
             "4hello\x1ebAQID", "6", "2\x1e2probe", "bAQIDBA", "b", "0" + OPEN_V4,
             "4a\x1e", "b!!!!"]
v3_bodies = ["6:4hello2:4€", "6:4hello4:4€€€", "2:4€10:b4AQIDBA==",
             "6:2probe11:4HelloWorld1:5", "3:4😀", "5:4a😀b1:6", "1:1", "2:b4", "0:",
             "0:1:60:", "96:0" + OPEN_V3, "2:4😀", "9999999999:4"]
write("engineio_payload",
      [bytes([V4]) + b(x) for x in v4_bodies] + [bytes([V3]) + b(x) for x in v3_bodies])

# (3) socketio_decoder: limit byte + messages separated by 0xFF; binary ones start with 0x00.
SEP, BIN = b"\xff", b"\x00"
plain = ["0", "0/admin,", '0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}', "0/admin?token=1234,",
         '4{"message":"Not authorized"}', '4/admin,"Not authorized"', '2["foo"]',
         '2/admin,["bar"]', '2["hey","Jude"]', '212["foo"]', '312[]', '312["bar"]',
         '2/admin,456["project:delete",123]', '3/admin,456[]', "1", "1/admin,",
         '2["hello",1]', '2["e",{"a":[1.5,-2e3,null,true,"\\u00e9"]}]',
         '2["e",' + PH0 + ']', '3/x,7[' + PH0 + ',"s"]', '50-["a",1]']
binary = [
    ('51-["baz",' + PH0 + ']', 1),
    ('52-/admin,["baz",' + PH0 + ',' + PH1 + ']', 2),
    ('61-15["bar",' + PH0 + ']', 1),
    ('61-/admin,1[' + PH0 + ']', 1),
    ('51-/admin,456["project:delete",' + PH0 + ']', 1),
    ('514-["foo",{"a":' + PH0 + ',"b":[' + PH0 + ']}]', 1),
    ('62-3[' + PH1 + ',{"x":' + PH0 + '}]', 2),
    ('51-["a",{"_placeholder":true,"num":0,"extra":1}]', 1),
]
sio_seeds = [bytes([4]) + b(t) for t in plain]
for text, count in binary:
    msg = b(text)
    for n in range(count):
        msg += SEP + BIN + bytes(range(n, n + 4))
    sio_seeds.append(bytes([4]) + msg)
sio_seeds += [
    bytes([4]) + b('53-["a",' + PH0 + ']') + SEP + BIN + b"x" + SEP + b('2["b"]'),
    bytes([4]) + BIN + b"stray" + SEP + b('2["b"]'),
    bytes([0]) + b('51-["a",' + PH0 + ']') + SEP + b('2["b"]'),
    bytes([4]) + b('51-["text",' + PH0 + ']') + SEP + BIN + "héllo".encode(),
]
write("socketio_decoder", sio_seeds)

# (4) sse_decoder: config byte (low 3 bits limit index, high 5 bits chunking) + body.
def event(packet_text, base64=False):
    if base64:
        import base64 as b64
        return "event: base64\ndata: " + b64.b64encode(packet_text.encode()).decode() + "\n\n"
    return "data: " + packet_text + "\n\n"

prelude = ":" + " " * 62 + "\n"
bodies = [
    ": keep-alive\r\ndata:2\r\n\r\nid: 7\nretry: 5\ndata: 4x\n\n",
    prelude + event("0" + OPEN_V4) + event("4hello") + event("2"),
    event("bAQIDBA=="),
    event("4a\nb", base64=True),
    event("4line\r\nbreak", base64=True),
    event("6") + event("1"),
    "data: 4a\ndata: b\n\n",
    "event: message\ndata: 4hi\n\n",
    "data: 9\n\n",
    "event: weird\ndata: 4x\n\n",
    "data: \xff\n\n",
    "data: b!!!\n\n",
    "data: 4123\ndata: 45678\n",
    "\r\n\r\n:\ndata\n\n",
]
configs = [0x05, 0x0D, 0x15, 0x4E, 0x36, 0xFF, 0x03, 0x82]
sse_seeds = []
for i, body in enumerate(bodies):
    raw = body.encode("latin-1") if "\xff" in body else body.encode()
    sse_seeds.append(bytes([configs[i % len(configs)]]) + raw)
write("sse_decoder", sse_seeds)

# (5) engineio_session: line 0 = version byte + handshake JSON; then one step per line.
small_v4 = '{"sid":"a","upgrades":[],"pingInterval":30,"pingTimeout":20}'
sessions = [
    bytes([V4]) + b(OPEN_V4 + "\n2\nt25000\n2\n4hello\nt45001\n"),
    bytes([V4]) + b(small_v4 + "\nt10\n2\nt49\n2probe\nw\n"),
    bytes([V4]) + b(small_v4 + "\nsone\nstwo\nc\n2\nsthree\nt100\n"),
    bytes([V4]) + b(small_v4 + "\n4a\n1\n4b\n2\n"),
    bytes([V3]) + b(OPEN_V3 + "\nt25000\n3\nw\nw\n3probe\nw\n"),
    bytes([V3]) + b(small_v4 + "\nw\n3\nw\nx\nw\nw\n"),
    bytes([V3]) + b('{"sid":"z","pingInterval":0,"pingTimeout":0}\nw\nw\nw\n'),
    bytes([V4]) + b('{"sid":"z","pingInterval":18446744073709551615,"pingTimeout":1e300}\n'
                    "t18446744073709551615\nw\nx\n"),
    bytes([V3]) + b("not json\nt25\n3\nt45\n5\n6\n0" + OPEN_V3 + "\nc\n"),
    bytes([V4]) + b('{"sid":"a","upgrades":null,"pingInterval":1.5,"pingTimeout":2,'
                    '"maxPayload":100}\nx\nt3\nx\n'),
]
write("engineio_session", sessions)
