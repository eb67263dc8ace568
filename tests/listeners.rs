//! Listeners as in the JS client, against the mock server and real Node socket.io 4.8: several
//! per event in order, `off` of exactly one, `once`, listeners added after connect, `on_any`
//! seeing events that have listeners too, `prepend_any`, `on_any_outgoing`, and how
//! `events()` relates to them. Ordering is proven with a marker event the server sends last:
//! listeners of one socket run event by event, so once the marker's listener ran, every
//! listener of the events before it has run too.

#![cfg(feature = "mock-server")]

mod support;

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sio_client::mock::{MockServer, MockSocket};
use sio_client::{Args, Client, Event};
use support::matrix::{builder, shared_server, Mode};
use support::SioVersion;

const WAIT: Duration = Duration::from_secs(20);

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn push(log: &Log, entry: impl Into<String>) {
    log.lock().unwrap().push(entry.into());
}

fn args(value: serde_json::Value) -> Args {
    Args::from_serialize(&value).expect("JSON")
}

/// A connected client and the server side of its socket, with a "done" marker listener that
/// signals `done`.
fn connected(
    build: impl FnOnce(sio_client::ClientBuilder) -> sio_client::ClientBuilder,
) -> (MockServer, MockSocket, Client, mpsc::Receiver<()>) {
    let server = MockServer::builder().start_background().expect("mock");
    let (tx, done) = mpsc::channel();
    let client = build(Client::builder(server.url()))
        .on("done", move |_, _| {
            let _ = tx.send(());
        })
        .connect()
        .expect("connect");
    let socket = server.wait_for_sockets_blocking(1, WAIT).expect("socket")[0].clone();
    (server, socket, client, done)
}

fn mark(socket: &MockSocket, done: &mpsc::Receiver<()>) {
    socket.emit("done", Args::new());
    done.recv_timeout(WAIT).expect("the marker's listener ran");
}

#[test]
fn several_listeners_of_one_event_fire_in_registration_order() {
    let calls = log();
    let (a, b, c) = (calls.clone(), calls.clone(), calls.clone());
    let (_server, socket, _client, done) = connected(|b0| {
        b0.on("news", move |args, _| {
            push(&a, format!("a{}", args.get::<u32>(0).unwrap()))
        })
        .on("news", move |_, _| push(&b, "b"))
        .on("news", move |_, _| push(&c, "c"))
    });
    socket.emit("news", args(json!(7)));
    mark(&socket, &done);
    assert_eq!(*calls.lock().unwrap(), ["a7", "b", "c"]);
}

#[test]
fn off_removes_exactly_that_listener_and_once_fires_once() {
    let calls = log();
    let (_server, socket, client, done) = connected(|b| b);
    let (a, b, c, o) = (calls.clone(), calls.clone(), calls.clone(), calls.clone());
    client.on("news", move |_, _| push(&a, "a"));
    let second = client.on("news", move |_, _| push(&b, "b"));
    client.on("news", move |_, _| push(&c, "c"));
    client.once("news", move |_, _| push(&o, "once"));
    socket.emit("news", Args::new());
    mark(&socket, &done);
    assert!(client.off(second));
    assert!(!client.off(second), "already removed");
    socket.emit("news", Args::new());
    mark(&socket, &done);
    assert_eq!(*calls.lock().unwrap(), ["a", "b", "c", "once", "a", "c"]);
}

#[test]
fn listeners_added_after_connect_receive_later_events_and_off_event_hands_back_to_events() {
    let (_server, socket, client, _done) = connected(|b| b);
    let mut events = client.events();
    let (tx, rx) = mpsc::channel();
    client.on("late", move |args, _| {
        let _ = tx.send(args.get::<u32>(0).unwrap());
    });
    socket.emit("late", args(json!(1)));
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), 1);
    client.off_event("late");
    socket.emit("late", args(json!(2)));
    let next = loop {
        match events.next_timeout(WAIT).expect("an event") {
            Event::Message { event, args, .. } if event == "late" => break args,
            _ => continue,
        }
    };
    assert_eq!(
        next.get::<u32>(0).unwrap(),
        2,
        "without listeners, events() gets it"
    );
    assert!(rx.try_recv().is_err(), "the removed listener did not run");
}

#[test]
fn on_any_sees_every_event_first_and_prepend_any_goes_before_it() {
    let calls = log();
    let (a, p, n) = (calls.clone(), calls.clone(), calls.clone());
    let (_server, socket, client, done) = connected(move |b| {
        b.on_any(move |event, _, _| push(&a, format!("any:{event}")))
            .prepend_any(move |event, _, _| push(&p, format!("first:{event}")))
            .on("news", move |_, _| push(&n, "news"))
    });
    let mut events = client.events();
    socket.emit("news", Args::new());
    socket.emit("unheard", args(json!("x")));
    mark(&socket, &done);
    assert_eq!(
        *calls.lock().unwrap(),
        [
            "first:news",
            "any:news",
            "news",
            "first:unheard",
            "any:unheard",
            "first:done",
            "any:done"
        ]
    );
    // An event without a listener of its own still reaches events(); one with does not.
    let mut seen = Vec::new();
    while let Some(event) = events.next_timeout(Duration::from_millis(1)) {
        if let Event::Message { event, .. } = event {
            seen.push(event);
        }
    }
    assert_eq!(seen, ["unheard"]);
}

#[test]
fn on_any_outgoing_sees_every_emit() {
    let server = MockServer::builder()
        .on("/", "ask", |_socket, _args, ack| {
            if let Some(ack) = ack {
                ack.send(Args::new());
            }
        })
        .start_background()
        .expect("mock");
    let seen = log();
    let s = seen.clone();
    let client = Client::builder(server.url())
        .on_any_outgoing(move |event, args| push(&s, format!("{event}:{}", args.len())))
        .connect()
        .expect("connect");
    client.emit("one", (1, 2)).unwrap();
    client.emit_volatile("two", ()).unwrap();
    client.emit_with_ack("ask", 3, WAIT).unwrap();
    let id = client.on_any_outgoing(|_, _| {});
    assert!(client.off(id));
    assert_eq!(*seen.lock().unwrap(), ["one:2", "two:0", "ask:1"]);
}

#[test]
fn several_listeners_and_on_any_against_node() {
    for mode in [Mode::WebSocket, Mode::Polling] {
        let calls = log();
        let (a, b, any) = (calls.clone(), calls.clone(), calls.clone());
        let (tx, rx) = mpsc::channel();
        let client = builder(shared_server(SioVersion::V4).url(), SioVersion::V4, mode)
            .on("echo", move |args, _| {
                push(&a, format!("a{}", args.get::<u32>(0).unwrap()))
            })
            .on_any(move |event, _, _| push(&any, format!("any:{event}")))
            .connect()
            .expect("connect");
        client.on("echo", move |args, _| {
            push(&b, "b");
            let _ = tx.send(args.get::<u32>(0).unwrap());
        });
        client.emit("echo", 5).unwrap();
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), 5, "{mode:?}");
        assert_eq!(*calls.lock().unwrap(), ["any:echo", "a5", "b"], "{mode:?}");
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Thumb {
    tags: Vec<String>,
    data: bytes::Bytes,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Upload {
    name: String,
    blob: bytes::Bytes,
    thumb: Thumb,
}

fn upload() -> Upload {
    Upload {
        name: "cat.png".into(),
        blob: bytes::Bytes::from_static(&[0, 1, 2, 255]),
        thumb: Thumb {
            tags: vec!["small".into()],
            data: bytes::Bytes::from_static(b"\x89PNG"),
        },
    }
}

#[test]
fn typed_listeners_receive_structs_with_nested_binary_from_the_mock_and_node() {
    // From the mock: the server emits the struct, binary parts as attachments.
    let (tx, rx) = mpsc::channel();
    let (_server, socket, _client, _done) = connected(move |b| {
        b.on_typed("upload", move |up: Upload, _ack| {
            let _ = tx.send(up);
        })
    });
    socket.emit("upload", Args::from_serialize(&upload()).unwrap());
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), upload());

    // From Node: the echo comes back with its attachments, and a typed ack reads a tuple.
    for mode in [Mode::WebSocket, Mode::Polling] {
        let (tx, rx) = mpsc::channel();
        let client = builder(shared_server(SioVersion::V4).url(), SioVersion::V4, mode)
            .connect()
            .expect("connect");
        client.on_typed("echo", move |up: Upload, _ack| {
            let _ = tx.send(up);
        });
        client.emit("echo", upload()).unwrap();
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), upload(), "{mode:?}");
        let (n, up): (u32, Upload) = client
            .emit_with_ack_typed("ack", (7, upload()), WAIT)
            .expect("typed ack");
        assert_eq!((n, up), (7, upload()), "{mode:?}");
    }
}

#[test]
fn arguments_that_do_not_fit_a_typed_listener_reach_events_as_an_error_naming_the_event() {
    let (tx, rx) = mpsc::channel::<Upload>();
    let (_server, socket, client, _done) = connected(move |b| {
        b.on_typed("upload", move |up: Upload, _ack| {
            let _ = tx.send(up);
        })
    });
    let mut events = client.events();
    socket.emit("upload", args(json!({"name": 5})));
    let error = loop {
        match events.next_timeout(WAIT).expect("an event") {
            Event::Error(error) => break error,
            _ => continue,
        }
    };
    let text = error.to_string();
    assert!(
        matches!(*error, sio_client::Error::Deserialize(_)) && text.contains("\"upload\""),
        "{text}"
    );
    assert!(rx.try_recv().is_err(), "the listener was not called");
    let wrong: Result<(String, String), _> =
        client.emit_with_ack_typed("nobody", (), Duration::from_millis(100));
    assert!(matches!(wrong, Err(sio_client::Error::AckTimeout(_))));
}

/// A burst reaches the listeners in batches: an `off` inside a listener still holds from the
/// very next event on (they go to `events()`, in order), and a listener that panics neither
/// stops the listeners after it nor loses the events after its own.
#[test]
fn off_inside_a_listener_and_a_panicking_listener_during_a_burst() {
    const N: u32 = 500;
    let (_server, socket, client, done) = connected(|b| b);
    let mut events = client.events();
    let seen = log();
    let id = Arc::new(Mutex::new(None));
    let weak = client.downgrade();
    let (seen_in, id_in) = (seen.clone(), id.clone());
    let listener = client.on("tick", move |args, _| {
        let n = args.get::<u32>(0).unwrap();
        push(&seen_in, n.to_string());
        if n == 100 {
            let id = id_in.lock().unwrap().take().expect("the listener's id");
            assert!(weak.upgrade().expect("client alive").off(id));
        }
    });
    *id.lock().unwrap() = Some(listener);
    let after_panic = log();
    let after = after_panic.clone();
    client.on("boom", |args, _| {
        if args.get::<u32>(0).unwrap() % 2 == 1 {
            panic!("a listener that panics on odd numbers (expected by the test)");
        }
    });
    client.on("boom", move |args, _| {
        push(&after, args.get::<u32>(0).unwrap().to_string())
    });
    for n in 0..N {
        socket.emit("tick", args(json!(n)));
        socket.emit("boom", args(json!(n)));
    }
    mark(&socket, &done);
    let listened: Vec<String> = (0..=100).map(|n| n.to_string()).collect();
    assert_eq!(*seen.lock().unwrap(), listened, "exactly up to the off");
    let all: Vec<String> = (0..N).map(|n| n.to_string()).collect();
    assert_eq!(
        *after_panic.lock().unwrap(),
        all,
        "every boom reached the second listener"
    );
    for expected in 101..N {
        let got = loop {
            match events.next_timeout(WAIT).expect("the ticks after the off") {
                Event::Message { event, args, .. } if event == "tick" => {
                    break args.get::<u32>(0).unwrap()
                }
                _ => continue,
            }
        };
        assert_eq!(got, expected);
    }
}
