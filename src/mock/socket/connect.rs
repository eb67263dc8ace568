//! A namespace CONNECT, as Node answers it: the connect guard, socket.io 2's implicit `/`
//! and query-string auth, connection-state recovery, CONNECT_ERROR.

use super::*;

impl SioConn {
    pub(super) fn connect(&self, engine: &Arc<Engine>, packet: Packet) {
        let Some(inner) = engine.server() else { return };
        let Some(conn) = self.me.upgrade() else {
            return;
        };
        let nsp = packet.nsp.clone();
        let socketio2 = is_socketio2(engine);
        let refuse = |message: String, data: Option<Value>| {
            let body = if socketio2 {
                // socket.io 2: an ERROR packet carrying `err.data || err.message`.
                data.unwrap_or(Value::String(message))
            } else {
                let mut body = json!({ "message": message });
                if let (Some(data), Some(map)) = (data, body.as_object_mut()) {
                    map.insert("data".to_owned(), data);
                }
                body
            };
            send_packet(
                engine,
                connect_packet(PacketType::ConnectError, &nsp, Some(body)),
            );
        };
        if !inner.config.namespaces.contains(&nsp) {
            return refuse("Invalid namespace".to_owned(), None);
        }
        if let Some(guard) = inner.config.guards.get(&nsp) {
            let what = format!("connect guard of {nsp}");
            match inner.run_user(&what, || guard(packet.data.as_ref())) {
                Some(Ok(())) => {}
                Some(Err((message, data))) => return refuse(message, data),
                None => return refuse("connect guard panicked".to_owned(), None),
            }
        }
        let recovering = inner.config.recovery.is_some() && !socketio2;
        let restored = if recovering {
            let auth = packet.data.as_ref();
            let pid = auth.and_then(|a| a.get("pid")).and_then(Value::as_str);
            let offset = auth.and_then(|a| a.get("offset")).and_then(Value::as_str);
            match (pid, offset) {
                (Some(pid), Some(offset)) => lock(&inner.recovery).restore(&nsp, pid, offset),
                _ => None,
            }
        } else {
            None
        };
        let recovered = restored.is_some();
        let (id, pid, mut rooms, missed) = match restored {
            Some(r) => (r.sid, Some(r.pid), r.rooms, r.missed),
            None => (
                random_id(),
                recovering.then(random_id),
                HashSet::new(),
                Vec::new(),
            ),
        };
        rooms.insert(id.clone());
        let socket = MockSocket {
            inner: Arc::new(SocketInner {
                rooms: Mutex::new(rooms),
                id,
                pid,
                recovered,
                nsp: nsp.clone(),
                auth: packet.data,
                engine: engine.clone(),
                conn,
                acks: Mutex::new(HashMap::new()),
                next_ack: AtomicU64::new(0),
                connected: watch::Sender::new(true),
                reason: Mutex::new(None),
            }),
        };
        {
            let mut st = lock(&self.state);
            if st.closed {
                return;
            }
            st.sockets.push(socket.clone());
        }
        // As Node: the missed events go out before the CONNECT reply.
        for stored in missed {
            send_packet(engine, stored);
        }
        // socket.io 2's CONNECT carries no data (`40`, `40/admin,`). The JSON is written by
        // hand to keep Node's key order (`sid` before `pid`).
        let mut reply = connect_packet(PacketType::Connect, &nsp, None).encode();
        if !socketio2 {
            let sid = Value::String(socket.id().to_owned());
            reply.push_str(&format!("{{\"sid\":{sid}"));
            if let Some(pid) = &socket.inner.pid {
                reply.push_str(&format!(",\"pid\":{}", Value::String(pid.clone())));
            }
            reply.push('}');
        }
        engine.send(message(Data::Text(reply)));
        lock(&inner.sockets).push(socket.clone());
        inner.history.send_modify(|h| h.push(socket.clone()));
        if let Some(handler) = inner.config.connect_handlers.get(&nsp) {
            inner.run_user(&format!("connect handler of {nsp}"), || handler(&socket));
        }
    }
}

pub(super) fn connect_packet(kind: PacketType, nsp: &str, data: Option<Value>) -> Packet {
    Packet {
        kind,
        nsp: nsp.to_owned(),
        id: None,
        data,
        attachments: Vec::new(),
        lazy: None,
    }
}
