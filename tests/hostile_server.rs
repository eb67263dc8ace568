//! No panic reachable from server bytes: every malformed thing a server could send goes through
//! the full client path (transport, Engine.IO, Socket.IO, events, argument access) against a
//! scripted fake server (`support::hostile`), over both transports and both protocol versions,
//! in place of the open packet, in place of the CONNECT reply and after it.
//!
//! Each case must end, within a bound, in one of:
//! - `connect()` returning a typed error (never running into its own timeout: that would mean
//!   the input was silently swallowed);
//! - `events()` reporting `Event::Error` and/or `Event::Disconnected` with a reason other than
//!   a client disconnect, after which the client refuses to emit;
//! - for input a client should shrug off (an ACK for an unknown id, a DISCONNECT of an unknown
//!   namespace, …), a connection that still works: an `emit_with_ack` round trip succeeds and
//!   nothing bad was reported.
//!
//! A panic anywhere (driver, dispatcher, the test's own argument access) is caught by a panic
//! hook and fails the test even when it shows up only as an error or a hang.

mod support;

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc, Mutex, Once, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use sio_client::{Args, Client, DisconnectReason, EngineVersion, Error, Event, Transport};
use support::hostile::{HostileServer, Out, Script, Stage};
use support::hostile_vectors::{raw, t, vectors, Expect, Only, Vector};

// The bounds are generous for a loaded CI machine; they only cost time when a case fails.
/// The client's own connect timeout in these tests.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);
/// How long an outcome (error event, disconnect, ack) may take to show.
const BOUND: Duration = Duration::from_secs(8);
/// A whole case, past which it counts as hung.
const CASE_LIMIT: Duration = Duration::from_secs(25);
/// Cases run at the same time (most of a case is waiting on sockets and timers).
const WORKERS: usize = 6;

impl Vector {
    fn runs_on(&self, transport: Transport) -> bool {
        match self.only {
            Only::Both => true,
            Only::WebSocket => transport == Transport::WebSocket,
            Only::Polling => transport == Transport::Polling,
        }
    }

    /// Where this vector runs on `transport` and `version`. Every connection costs a noticeable
    /// slice of CPU in debug builds (mostly building the HTTP client), so each vector runs at
    /// least once and further only where the transport, the version or the phase can make a
    /// difference:
    /// - Socket.IO text (`4…`) decodes the same whatever carries it: once connected over v4
    ///   WebSocket; while connecting too for the packet types whose handling depends on the
    ///   phase (CONNECT, DISCONNECT, ACK, CONNECT_ERROR) and for sequences of several messages;
    ///   CONNECT and CONNECT_ERROR also in the v3 connecting phase (its CONNECT comes
    ///   unprompted); sequences also over polling (one message per response). In place of the
    ///   open packet it would only test "not an open packet" again.
    /// - Other Engine.IO text: once connected over v4, both transports; the heartbeat and close
    ///   packets over v3 too (v3 heartbeats run the other way).
    /// - Raw bytes, binary, hang-ups, HTTP statuses: in place of the open packet (the handshake
    ///   reads them through its own path) and once connected; binary over v3 too (its framing
    ///   differs).
    /// - The open packet's own vectors: over both transports with v4, and over v3 polling
    ///   (length-prefixed payload); v3 WebSocket reads the open packet as v4 does.
    fn plan(&self, transport: Transport, version: EngineVersion) -> &'static [Stage] {
        const OPEN_AND_AFTER: &[Stage] = &[Stage::Open, Stage::AfterConnect];
        const BOTH_PHASES: &[Stage] = &[Stage::ConnectReply, Stage::AfterConnect];
        const CONNECTING: &[Stage] = &[Stage::ConnectReply];
        const AFTER: &[Stage] = &[Stage::AfterConnect];
        const NOWHERE: &[Stage] = &[];
        let v3 = version == EngineVersion::V3;
        let ws = transport == Transport::WebSocket;
        if !self.runs_on(transport) || self.version.is_some_and(|only| only != version) {
            return NOWHERE;
        }
        if self.about_open {
            return if v3 && ws { NOWHERE } else { &[Stage::Open] };
        }
        if let Some(stages) = self.stages {
            return stages;
        }
        let first = match self.steps.first() {
            Some(Out::Text(text)) => Some(text.as_str()),
            _ => None,
        };
        let all_text = self.steps.iter().all(|out| matches!(out, Out::Text(_)));
        let has_binary = self
            .steps
            .iter()
            .any(|out| matches!(out, Out::Binary(_) | Out::RawBinary(_)));
        let socketio = first.is_some_and(|text| text.starts_with('4') && text.len() > 1)
            && self.steps.iter().all(|out| {
                matches!(out, Out::Text(text) if text.starts_with('4'))
                    || matches!(out, Out::Binary(_))
            })
            && self.max_receive.is_none();
        if socketio {
            let first = first.unwrap_or_default();
            let several = self.steps.len() > 1;
            let phased = ["40", "41", "43", "44", "46"]
                .iter()
                .any(|p| first.starts_with(p));
            let connect = ["40", "44"].iter().any(|p| first.starts_with(p));
            return match (ws, v3) {
                (true, false) if phased || several => BOTH_PHASES,
                (true, false) => AFTER,
                (true, true) if connect => CONNECTING,
                (false, _) if several => AFTER,
                _ => NOWHERE,
            };
        }
        if all_text && self.max_receive.is_none() {
            let heartbeat =
                first.is_some_and(|text| text.is_empty() || text.starts_with(['1', '2', '3']));
            return if !v3 || heartbeat { AFTER } else { NOWHERE };
        }
        if v3 && !has_binary && self.version.is_none() {
            return NOWHERE;
        }
        OPEN_AND_AFTER
    }

    fn expect(&self, version: EngineVersion, stage: Stage) -> Expect {
        if stage == Stage::Open && !self.about_open {
            return Expect::Fatal;
        }
        match version {
            EngineVersion::V3 => self.v3,
            _ => self.v4,
        }
    }
}

/// Panics on threads other than the tests' own (the driver, the dispatcher, the server).
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

thread_local! {
    /// Set on the test threads and the case threads: their panics are failures reported as
    /// such, not panics of the code under test.
    static TEST_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = thread::current();
            let name = thread.name().unwrap_or("<unnamed>");
            if !TEST_THREAD.with(Cell::get) {
                PANICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("panic on thread {name}: {info}"));
            }
            default(info);
        }));
    });
}

fn panics() -> Vec<String> {
    PANICS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Tests that check [`PANICS`] hold this shared; a test that may cause panics of its own holds
/// it exclusively and takes its panics out of the list before letting go, so that every panic
/// is blamed on the test that caused it.
static PANIC_SCOPE: RwLock<()> = RwLock::new(());

fn shared_panic_scope() -> RwLockReadGuard<'static, ()> {
    PANIC_SCOPE.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive_panic_scope() -> RwLockWriteGuard<'static, ()> {
    PANIC_SCOPE.write().unwrap_or_else(|e| e.into_inner())
}

/// Removes and returns the panics recorded after the first `from`.
fn take_panics(from: usize) -> Vec<String> {
    let mut panics = PANICS.lock().unwrap_or_else(|e| e.into_inner());
    let from = from.min(panics.len());
    panics.drain(from..).collect()
}

/// Reads every accessor of arguments that came from the hostile server; none may panic.
fn poke(args: &Args) {
    for i in 0..=args.len() {
        let _ = args.get::<Value>(i);
        let _ = args.get::<Bytes>(i);
        let _ = args.get::<String>(i);
        let _ = args.get::<Option<Vec<Bytes>>>(i);
        let _ = args.get::<(u64, i8)>(i);
        let _ = args.binary(i);
    }
    let _ = args.parse::<Vec<Value>>();
    let _ = args.parse::<(String, Bytes)>();
    let _ = serde_json::to_string(args);
    let _ = Args::from_serialize(args);
}

fn reason_allowed(reason: &DisconnectReason) -> bool {
    !matches!(reason, DisconnectReason::IoClientDisconnect)
}

/// The connection must report the failure and then be down.
fn expect_fatal(client: &Client, required: Option<&DisconnectReason>) -> Result<String, String> {
    let mut events = client.events();
    let deadline = Instant::now() + BOUND;
    let mut error = None;
    let mut disconnect = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_timeout(left) {
            Some(Event::Error(e)) => error = Some(e),
            Some(Event::Disconnected { reason, .. }) => {
                if !reason_allowed(&reason) {
                    return Err(format!("disconnected with reason {reason}"));
                }
                if let Some(required) = required {
                    if &reason != required {
                        return Err(format!(
                            "disconnected with reason {reason}, expected {required} (error: {error:?})"
                        ));
                    }
                }
                disconnect = Some(reason);
                break;
            }
            Some(Event::Message { args, .. }) => poke(&args),
            Some(_) => continue,
            None if Instant::now() >= deadline => {
                return Err(format!("no error or disconnect within {BOUND:?}"));
            }
            None if error.is_some() => break,
            None => return Err("the event stream ended without an error or a disconnect".into()),
        }
    }
    let deadline = Instant::now() + BOUND;
    while client.is_connected() {
        if Instant::now() >= deadline {
            return Err("still connected after reporting the failure".into());
        }
        // The flag is set just after the events went out; a short poll, not a busy loop.
        thread::sleep(Duration::from_millis(2));
    }
    match client.emit("after", ()) {
        Err(Error::Disconnected(_)) => {}
        other => return Err(format!("emit after the failure gave {other:?}")),
    }
    let error = error.map_or("none".to_string(), |e| e.to_string());
    let disconnect = disconnect.map_or("none".to_string(), |r| r.to_string());
    Ok(format!("failed: error {error}; disconnect {disconnect}"))
}

/// The connection must still work and have reported nothing bad.
fn expect_usable(client: &Client) -> Result<String, String> {
    let reply = client
        .emit_with_ack("check", ("still", "here"), BOUND)
        .map_err(|e| format!("the connection did not survive: {e}"))?;
    match reply.parse::<(String, String)>() {
        Ok((a, b)) if a == "still" && b == "here" => {}
        other => return Err(format!("the ack came back as {other:?}")),
    }
    let mut events = client.events();
    while let Some(event) = events.next_timeout(Duration::ZERO) {
        match event {
            Event::Error(e) => return Err(format!("reported an error: {e}")),
            Event::Disconnected { reason, .. } => {
                return Err(format!("reported a disconnect: {reason}"))
            }
            Event::Message { args, .. } => poke(&args),
            _ => {}
        }
    }
    Ok("usable".into())
}

fn run_case(
    vector: &Vector,
    transport: Transport,
    version: EngineVersion,
    stage: Stage,
) -> Result<String, String> {
    let expect = vector.expect(version, stage);
    let server = HostileServer::start(Script {
        version,
        stage,
        steps: vector.steps(version),
    });
    // Reconnection off: these cases check the clean disconnect itself (with it on, emits after
    // the loss are buffered for the reconnection instead of refused; see
    // `malformed_input_is_followed_by_reconnection`).
    let mut builder = Client::builder(server.url())
        .transports([transport])
        .protocol_version(version)
        .reconnection(false)
        .timeout(CONNECT_TIMEOUT);
    if let Some(max) = vector.max_receive {
        builder = builder.max_receive(max);
    }
    let client = match builder.connect().map_err(|e| e.last_failure().clone()) {
        Err(Error::ConnectTimeout(d)) => {
            return Err(format!(
                "connect ran into its {d:?} timeout: the input was swallowed"
            ))
        }
        Err(e) if expect == Expect::Benign => return Err(format!("connect failed: {e}")),
        Err(e) => return Ok(format!("connect error: {e}")),
        Ok(client) => client,
    };
    if stage == Stage::Open && expect == Expect::Fatal {
        return Err("connected although the open packet was replaced".into());
    }
    let required = match stage {
        Stage::AfterConnect => vector.reason.as_ref(),
        _ => None,
    };
    match expect {
        Expect::Fatal => expect_fatal(&client, required),
        Expect::Benign => expect_usable(&client),
        Expect::Handled => match expect_usable(&client) {
            Ok(outcome) => Ok(outcome),
            Err(usable) => expect_fatal(&client, None)
                .map_err(|fatal| format!("neither usable ({usable}) nor failed ({fatal})")),
        },
    }
}

struct Case {
    vector: Arc<Vector>,
    transport: Transport,
    version: EngineVersion,
    stage: Stage,
}

impl Case {
    fn label(&self) -> String {
        format!(
            "{} {:?} {:?} \"{}\"",
            self.transport, self.version, self.stage, self.vector.name
        )
    }

    /// Runs on a thread of its own, so that a hang is reported (after [`CASE_LIMIT`]) instead of
    /// stalling the test; `Err` says what went wrong.
    fn run(self) -> Result<(), String> {
        let label = self.label();
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        thread::Builder::new()
            .name(format!("case {label}"))
            .spawn(move || {
                TEST_THREAD.with(|t| t.set(true));
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    run_case(&self.vector, self.transport, self.version, self.stage)
                }));
                let _ = tx.send(outcome);
            })
            .map_err(|e| format!("{label}: cannot spawn: {e}"))?;
        match rx.recv_timeout(CASE_LIMIT) {
            Ok(Ok(Ok(outcome))) => {
                // HOSTILE_TRACE=1 lists what each case led to, for reviewing the vectors.
                if std::env::var_os("HOSTILE_TRACE").is_some() {
                    eprintln!("{:>5} ms {label}: {outcome}", started.elapsed().as_millis());
                }
                Ok(())
            }
            Ok(Ok(Err(why))) => Err(format!("{label}: {why}")),
            Ok(Err(_)) => Err(format!("{label}: the case panicked")),
            Err(_) => Err(format!("{label}: hung for {CASE_LIMIT:?}")),
        }
    }
}

/// Every vector over every transport and version where it can tell something apart (see
/// [`Vector::plan`]), a few cases at a time, failing with the list of every case that went
/// wrong and every panic seen.
#[test]
fn malformed_server_input_ends_in_an_error_or_is_ignored() {
    watch_panics();
    let _scope = shared_panic_scope();
    TEST_THREAD.with(|t| t.set(true));
    let mut cases = VecDeque::new();
    for vector in vectors() {
        let vector = Arc::new(vector);
        for transport in [Transport::WebSocket, Transport::Polling] {
            for version in [EngineVersion::V4, EngineVersion::V3] {
                for &stage in vector.plan(transport, version) {
                    cases.push_back(Case {
                        vector: vector.clone(),
                        transport,
                        version,
                        stage,
                    });
                }
            }
        }
    }
    let total = cases.len();
    let cases = Arc::new(Mutex::new(cases));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let cases = cases.clone();
            let failures = failures.clone();
            thread::spawn(move || {
                TEST_THREAD.with(|t| t.set(true));
                loop {
                    let next = cases.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                    let Some(case) = next else { break };
                    if let Err(failure) = case.run() {
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(failure);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let panics = panics();
    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
}

/// A valid server for the tests below, with nothing malformed in its script.
fn friendly_server(version: EngineVersion) -> HostileServer {
    HostileServer::start(Script {
        version,
        stage: Stage::AfterConnect,
        steps: Vec::new(),
    })
}

/// Runs `f` on a thread of its own with a time limit: `Err` names a panic or a hang.
fn isolated<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name(format!("case {what}"))
        .spawn(move || {
            TEST_THREAD.with(|t| t.set(true));
            let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
        })
        .map_err(|e| e.to_string())?;
    match rx.recv_timeout(CASE_LIMIT) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(format!("{what} panicked")),
        Err(_) => Err(format!("{what} hung for {CASE_LIMIT:?}")),
    }
}

/// Durations come from the application, not the server, but one that overflows `Instant`
/// arithmetic would panic the caller or, worse, the connection's driver (every namespace of the
/// connection dies, and acks fail with a bare "connection closed"). `Duration::MAX` means "no
/// limit" to most callers.
#[test]
fn duration_max_from_the_application_does_not_panic() {
    watch_panics();
    let _scope = exclusive_panic_scope();
    let before = panics().len();
    TEST_THREAD.with(|t| t.set(true));
    let server = friendly_server(EngineVersion::V4);
    let url = server.url();
    let mut failures = Vec::new();

    match isolated("connect with timeout(Duration::MAX)", move || {
        Client::builder(url)
            .transports([Transport::WebSocket])
            .timeout(Duration::MAX)
            .connect()
    }) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => failures.push(format!("connect with timeout(Duration::MAX) failed: {e}")),
        Err(e) => failures.push(e),
    }

    let client = Client::builder(server.url())
        .transports([Transport::WebSocket])
        .timeout(CONNECT_TIMEOUT)
        .connect()
        .expect("connect");
    let c = client.clone();
    match isolated("events().next_timeout(Duration::MAX)", move || {
        // The Connected event is already queued, so this returns at once unless it panics.
        c.events().next_timeout(Duration::MAX)
    }) {
        Ok(Some(Event::Connected { .. })) => {}
        Ok(other) => failures.push(format!("next_timeout(Duration::MAX) gave {other:?}")),
        Err(e) => failures.push(e),
    }
    let c = client.clone();
    match isolated("emit_with_ack(.., Duration::MAX)", move || {
        c.emit_with_ack("check", "forever", Duration::MAX)
    }) {
        Ok(Ok(reply)) if reply.get::<String>(0).ok().as_deref() == Some("forever") => {}
        Ok(other) => failures.push(format!("emit_with_ack(.., Duration::MAX) gave {other:?}")),
        Err(e) => failures.push(e),
    }
    // The connection survived all of it.
    match client.emit_with_ack("check", "after", BOUND) {
        Ok(_) => {}
        Err(e) => failures.push(format!("the connection did not survive: {e}")),
    }
    drop(client);
    failures.extend(take_panics(before));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The async facade reports malformed input the same way: a typed connect error, or error and
/// disconnect events on its stream. A few representative vectors, over both transports.
#[test]
fn async_client_reports_malformed_input() {
    watch_panics();
    // Held by this thread, outside the runtime: the panic scope is a plain lock.
    let _scope = shared_panic_scope();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async_client_cases());
    let panics = panics();
    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
}

async fn async_client_cases() {
    use futures_util::StreamExt;
    use sio_client::AsyncClient;

    let cases: Vec<(&str, Stage, Vec<Out>)> = vec![
        ("open with bad JSON", Stage::Open, vec![t("0{nope")]),
        ("truncated event", Stage::ConnectReply, vec![t("42[\"ev\"")]),
        ("truncated event", Stage::AfterConnect, vec![t("42[\"ev\"")]),
        (
            "binary event then text",
            Stage::AfterConnect,
            vec![
                t("451-[\"x\",{\"_placeholder\":true,\"num\":0}]"),
                t("42[\"y\"]"),
            ],
        ),
        // Twice: over polling, the request that met the first is sent once more.
        (
            "hang up",
            Stage::AfterConnect,
            vec![Out::Hangup, Out::Hangup],
        ),
        (
            "invalid UTF-8",
            Stage::AfterConnect,
            vec![raw(&[b'4', 0xff])],
        ),
    ];
    for transport in [Transport::WebSocket, Transport::Polling] {
        for (name, stage, steps) in &cases {
            let label = format!("{transport} {stage:?} {name:?}");
            let server = HostileServer::start(Script {
                version: EngineVersion::V4,
                stage: *stage,
                steps: steps.clone(),
            });
            let connect = AsyncClient::builder(server.url())
                .transports([transport])
                .reconnection(false)
                .timeout(CONNECT_TIMEOUT)
                .connect_async();
            let connected = tokio::time::timeout(CASE_LIMIT, connect).await;
            let client = match connected.map(|r| r.map_err(|e| e.last_failure().clone())) {
                Err(_) => panic!("{label}: connect hung"),
                Ok(Err(Error::ConnectTimeout(_))) => panic!("{label}: input swallowed"),
                Ok(Err(_)) => continue,
                Ok(Ok(client)) => client,
            };
            assert_eq!(*stage, Stage::AfterConnect, "{label}: connected");
            let mut events = std::pin::pin!(client.events());
            let mut saw_error = false;
            loop {
                match tokio::time::timeout(BOUND, events.next()).await {
                    Err(_) => panic!("{label}: no error or disconnect within {BOUND:?}"),
                    Ok(Some(Event::Error(_))) => saw_error = true,
                    Ok(Some(Event::Disconnected { reason, .. })) => {
                        assert!(reason_allowed(&reason), "{label}: {reason}");
                        break;
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) => {
                        assert!(saw_error, "{label}: stream ended silently");
                        break;
                    }
                }
            }
            assert!(
                matches!(client.emit("after", ()).await, Err(Error::Disconnected(_))),
                "{label}: emit after the failure"
            );
        }
    }
}

/// With reconnection on (the default), bad bytes still end the connection cleanly, and then the
/// client comes back by itself: the application sees the error, the disconnect, and the
/// reconnection.
#[test]
fn malformed_input_is_followed_by_reconnection() {
    let server = HostileServer::start(Script {
        version: EngineVersion::V4,
        stage: Stage::AfterConnect,
        steps: vec![Out::Text("4{not socket.io".into())],
    });
    let client = Client::builder(server.url())
        .transports([Transport::WebSocket])
        .reconnection_delay(Duration::from_millis(50))
        .timeout(CONNECT_TIMEOUT)
        .connect()
        .expect("connect");
    let mut events = client.events();
    let mut seen = Vec::new();
    let mut reconnected = false;
    while let Some(event) = events.next_timeout(CASE_LIMIT) {
        match &event {
            Event::Error(e) => seen.push(format!("error: {e}")),
            Event::Disconnected { reason, .. } => {
                assert_eq!(*reason, DisconnectReason::ParseError);
                seen.push(format!("disconnected: {reason}"));
            }
            Event::Reconnecting { attempt, .. } => seen.push(format!("reconnecting {attempt}")),
            Event::Reconnected { attempt, .. } => {
                seen.push(format!("reconnected {attempt}"));
                reconnected = true;
                break;
            }
            _ => {}
        }
    }
    assert!(reconnected, "{seen:?}");
    assert!(
        seen.iter().any(|s| s.starts_with("error: protocol error")),
        "{seen:?}"
    );
    assert!(seen.contains(&"reconnecting 1".to_string()), "{seen:?}");
    client.disconnect();
}
