//! The client core's behaviour on a virtual clock (see `harness.rs`): reconnection and its
//! backoff, acks and their timeouts, at-least-once retries, recovery, the send buffer,
//! namespace refusal, and twenty server restarts under a flow of emits.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::harness::{config, Pair};
use super::Status;
use crate::config::AuthSource;
use crate::proto::engineio::EngineVersion;
use crate::reason::DisconnectReason;
use crate::{Error, Transport};

const SECOND: Duration = Duration::from_secs(1);

fn connected_pair(config: super::CoreConfig) -> Pair {
    let mut pair = Pair::new(config);
    let reply = pair.connect("/", None);
    assert!(pair.connect_reply(reply).is_ok());
    assert!(pair.server.is_connected("/"));
    pair
}

#[test]
fn connects_emits_and_gets_its_ack() {
    let mut pair = connected_pair(config());
    assert_eq!(pair.event_kinds("/"), ["connected"]);
    assert!(
        pair.log
            .status
            .contains(&("/".into(), Status::Id("sid-/".into()))),
        "the id the CONNECT reply names"
    );
    let ack = pair
        .emit("/", "echo", json!([1, "two"]), Some(SECOND))
        .unwrap();
    let args = pair.ack_reply(ack).as_ref().expect("acknowledged");
    assert_eq!(args.clone().into_wire().0, vec![json!([1, "two"])]);
    assert_eq!(pair.server.received.len(), 1);
    assert_eq!(pair.server.received[0].event, "echo");
    assert_eq!(
        pair.core.poll_timeout(),
        None,
        "no timer left once answered"
    );
}

#[test]
fn an_unanswered_ack_times_out_at_its_deadline() {
    let mut pair = connected_pair(config());
    pair.server.auto_ack = false;
    let ack = pair
        .emit("/", "slow", json!(null), Some(3 * SECOND))
        .unwrap();
    pair.advance(3 * SECOND - Duration::from_millis(1));
    assert!(
        !pair.log.ack_replies.contains_key(&ack),
        "not before the deadline"
    );
    pair.advance(Duration::from_millis(1));
    assert!(matches!(pair.ack_reply(ack), Err(Error::AckTimeout(d)) if *d == 3 * SECOND));
    assert_eq!(pair.elapsed(), 3 * SECOND);
}

#[test]
fn reconnects_with_the_js_clients_backoff_and_announces_each_attempt() {
    let mut pair = connected_pair(config());
    pair.lose_link(true);
    pair.step_until(20 * SECOND, |p| p.log.links_opened.len() == 5);
    pair.server_up();
    pair.step_until(10 * SECOND, |p| p.server.is_connected("/"));
    assert_eq!(
        pair.event_kinds("/"),
        [
            "connected",
            "disconnected(transport close)",
            "reconnecting(1, 1000ms)",
            "error(websocket transport error: connection refused)",
            "reconnecting(2, 2000ms)",
            "error(websocket transport error: connection refused)",
            "reconnecting(3, 4000ms)",
            "error(websocket transport error: connection refused)",
            "reconnecting(4, 5000ms)",
            "error(websocket transport error: connection refused)",
            "reconnecting(5, 5000ms)",
            "connected",
            "reconnected(5, recovered=false)",
        ]
    );
    // 1 + 2 + 4 + 5 + 5 seconds of backoff, nothing else.
    assert_eq!(pair.elapsed(), 17 * SECOND);
    assert!(pair.log.finished.is_none());
}

#[test]
fn gives_up_after_the_configured_attempts() {
    let mut pair = connected_pair(super::CoreConfig {
        reconnection_attempts: Some(2),
        ..config()
    });
    pair.lose_link(true);
    pair.step_until(60 * SECOND, |p| p.log.finished.is_some());
    let kinds = pair.event_kinds("/");
    assert_eq!(kinds.last().map(String::as_str), Some("reconnect_failed"));
    assert_eq!(
        pair.log.links_opened.len(),
        3,
        "the first link and two attempts"
    );
    assert!(pair
        .log
        .status
        .iter()
        .any(|(ns, s)| ns == "/" && matches!(s, Status::Closed(_))));
    assert_eq!(pair.log.forgotten, ["/"]);
}

#[test]
fn emits_while_disconnected_are_buffered_and_sent_in_order_after_the_reconnection() {
    let mut pair = connected_pair(config());
    pair.lose_link(true);
    let acks: Vec<_> = (0..5)
        .map(|i| {
            pair.emit("/", "queued", json!(i), Some(60 * SECOND))
                .unwrap()
        })
        .collect();
    assert!(pair.log.status.contains(&("/".into(), Status::Buffered(5))));
    assert!(pair.server.received.is_empty());
    pair.advance(3 * SECOND);
    assert!(
        pair.log.ack_replies.is_empty(),
        "buffered emits do not fail when the link is lost"
    );
    pair.server_up();
    pair.step_until(10 * SECOND, |p| p.server.received.len() == 5);
    let order: Vec<Value> = pair
        .server
        .received
        .iter()
        .map(|r| r.args[0].clone())
        .collect();
    assert_eq!(order, (0..5).map(|i| json!(i)).collect::<Vec<_>>());
    for ack in acks {
        assert!(pair.ack_reply(ack).is_ok());
    }
    assert!(pair.log.status.contains(&("/".into(), Status::Buffered(0))));
}

#[test]
fn a_buffered_emit_whose_ack_timed_out_is_withdrawn_not_sent_later() {
    let mut pair = connected_pair(config());
    pair.lose_link(true);
    let late = pair.emit("/", "late", json!(1), Some(2 * SECOND)).unwrap();
    let kept = pair.emit("/", "kept", json!(2), Some(60 * SECOND)).unwrap();
    assert!(pair.log.status.contains(&("/".into(), Status::Buffered(2))));
    pair.advance(2 * SECOND);
    assert!(matches!(pair.ack_reply(late), Err(Error::AckTimeout(_))));
    assert_eq!(
        pair.log.status.last(),
        Some(&("/".into(), Status::Buffered(1))),
        "withdrawn from the buffer"
    );
    pair.server_up();
    pair.step_until(10 * SECOND, |p| p.log.ack_replies.contains_key(&kept));
    let events: Vec<&str> = pair
        .server
        .received
        .iter()
        .map(|r| r.event.as_str())
        .collect();
    assert_eq!(
        events,
        ["kept"],
        "the timed-out emit never reaches the server"
    );
}

#[test]
fn acks_of_packets_that_went_out_fail_when_the_link_is_lost() {
    let mut pair = connected_pair(config());
    pair.server.auto_ack = false;
    let ack = pair.emit("/", "lost", json!(1), Some(60 * SECOND)).unwrap();
    pair.lose_link(false);
    assert!(matches!(
        pair.ack_reply(ack),
        Err(Error::Disconnected(DisconnectReason::TransportClose))
    ));
}

#[test]
fn at_least_once_emits_are_resent_until_acknowledged_then_fail_when_out_of_tries() {
    let mut pair = connected_pair(super::CoreConfig {
        retries: Some(2),
        ..config()
    });
    pair.server.swallow_acks = 2;
    let ack = pair
        .emit("/", "important", json!("x"), Some(SECOND))
        .unwrap();
    pair.step_until(10 * SECOND, |p| p.log.ack_replies.contains_key(&ack));
    assert!(pair.ack_reply(ack).is_ok(), "acknowledged on the third try");
    let ids: Vec<Option<u64>> = pair.server.received.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 3, "sent three times: {ids:?}");
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2],
        "each try has its own id"
    );
    assert_eq!(pair.elapsed(), 2 * SECOND);

    pair.server.swallow_acks = 10;
    let failed = pair.emit("/", "doomed", json!("y"), Some(SECOND)).unwrap();
    pair.step_until(10 * SECOND, |p| p.log.ack_replies.contains_key(&failed));
    assert!(matches!(pair.ack_reply(failed), Err(Error::AckTimeout(_))));
    assert_eq!(pair.server.received.len(), 3 + 3, "one try and two retries");
}

#[test]
fn at_least_once_emits_go_one_at_a_time_in_order() {
    let mut pair = connected_pair(super::CoreConfig {
        retries: Some(1),
        ..config()
    });
    pair.server.auto_ack = false;
    for i in 0..3 {
        pair.emit("/", "ordered", json!(i), None);
    }
    assert_eq!(pair.server.received.len(), 1, "only the head is in flight");
    pair.server.auto_ack = true;
    // The head's retry goes out after its timeout and is answered; the rest follow.
    pair.step_until(30 * SECOND, |p| p.server.received.len() == 4);
    let order: Vec<Value> = pair
        .server
        .received
        .iter()
        .map(|r| r.args[0].clone())
        .collect();
    assert_eq!(order, [json!(0), json!(0), json!(1), json!(2)]);
}

#[test]
fn recovery_sends_pid_and_offset_and_reports_a_recovered_session() {
    let mut pair = Pair::new(config());
    pair.server.recovery = true;
    let reply = pair.connect("/", None);
    assert!(pair.connect_reply(reply).is_ok());
    pair.server.emit("/", "tick", vec![json!(1)]);
    pair.server.emit("/", "tick", vec![json!(2)]);
    pair.drive();
    assert_eq!(pair.log.messages.len(), 2);
    assert_eq!(pair.log.messages[1].2, vec![json!(2), json!("off2")]);
    pair.lose_link(false);
    pair.step_until(5 * SECOND, |p| p.server.is_connected("/"));
    let (_, data) = pair.server.connects.last().unwrap();
    assert_eq!(data.as_ref().unwrap()["pid"], json!("pid1"));
    assert_eq!(data.as_ref().unwrap()["offset"], json!("off2"));
    assert_eq!(
        pair.event_kinds("/").last().unwrap(),
        "reconnected(1, recovered=true)"
    );
    assert!(pair
        .log
        .status
        .contains(&("/".into(), Status::Recovered(true))));
}

#[test]
fn a_refused_namespace_fails_its_connect_with_the_servers_message_and_data() {
    let mut pair = Pair::new(config());
    pair.server.refuse.insert(
        "/admin".into(),
        json!({"message": "not authorized", "data": {"code": 403}}),
    );
    let reply = pair.connect("/admin", None);
    match pair.connect_reply(reply) {
        Err(Error::ConnectRefused {
            namespace,
            message,
            data,
        }) => {
            assert_eq!(namespace, "/admin");
            assert_eq!(message, "not authorized");
            assert_eq!(data, &Some(json!({"code": 403})));
        }
        other => panic!("expected ConnectRefused, got {other:?}"),
    }
    assert_eq!(
        pair.log.finished,
        Some(DisconnectReason::IoServerDisconnect)
    );
}

#[test]
fn a_namespace_refused_on_a_reconnection_is_closed_and_says_why() {
    let mut pair = connected_pair(config());
    pair.server
        .refuse
        .insert("/".into(), json!({"message": "token expired"}));
    pair.lose_link(false);
    pair.step_until(5 * SECOND, |p| p.log.finished.is_some());
    let kinds = pair.event_kinds("/");
    assert_eq!(
        kinds.last().unwrap(),
        "error(namespace / refused the connection: token expired)"
    );
    assert_eq!(pair.log.forgotten, ["/"]);
}

#[test]
fn a_first_connect_retried_still_ends_at_its_deadline() {
    let mut pair = Pair::new(super::CoreConfig {
        retry_initial_connect: true,
        ..config()
    });
    pair.server.down = true;
    let reply = pair.connect("/", Some(7 * SECOND));
    pair.step_until(30 * SECOND, |p| p.log.connect_replies.contains_key(&reply));
    assert!(matches!(
        pair.connect_reply(reply),
        Err(Error::ConnectTimeout(_))
    ));
    assert_eq!(pair.elapsed(), 7 * SECOND);
    assert!(pair.log.links_opened.len() >= 3, "retried meanwhile");
}

#[test]
fn a_connect_out_of_time_while_the_link_opens_fails_with_the_links_report() {
    let mut pair = Pair::new(config());
    pair.server.hang_open = true;
    let reply = pair.connect("/", Some(7 * SECOND));
    pair.advance(7 * SECOND);
    assert!(
        !pair.log.connect_replies.contains_key(&reply),
        "waits for the link's verdict, due at the same deadline"
    );
    // The driver's transport race ends at the same deadline, with every attempt.
    let report = Error::transport(Transport::Polling, "every transport ran out of time");
    pair.core.handle_link_failed(pair.now, report);
    pair.drive();
    assert!(matches!(
        pair.connect_reply(reply),
        Err(Error::Transport {
            transport: Transport::Polling,
            ..
        })
    ));
    assert_eq!(pair.log.finished, Some(DisconnectReason::TransportError));
}

#[test]
fn a_link_that_never_answers_still_ends_the_connect_soon_after_its_deadline() {
    let mut pair = Pair::new(super::CoreConfig {
        retry_initial_connect: true,
        ..config()
    });
    pair.server.hang_open = true;
    let reply = pair.connect("/", Some(7 * SECOND));
    pair.step_until(30 * SECOND, |p| p.log.connect_replies.contains_key(&reply));
    assert!(matches!(
        pair.connect_reply(reply),
        Err(Error::ConnectTimeout(_))
    ));
    assert_eq!(pair.elapsed(), 7 * SECOND + super::LINK_VERDICT_GRACE);
    // A verdict after that changes nothing.
    pair.core
        .handle_link_failed(pair.now, Error::transport(Transport::Polling, "late"));
    pair.drive();
    assert_eq!(pair.log.connect_replies[&reply].len(), 1);
}

#[test]
fn a_first_connect_that_fails_without_retries_fails_at_once() {
    let mut pair = Pair::new(config());
    pair.server.down = true;
    let reply = pair.connect("/", Some(7 * SECOND));
    assert!(matches!(
        pair.connect_reply(reply),
        Err(Error::Transport { .. })
    ));
    assert_eq!(pair.log.finished, Some(DisconnectReason::TransportError));
    assert_eq!(pair.elapsed(), Duration::ZERO);
}

#[test]
fn a_socketio2_server_makes_an_auto_client_open_again_with_eio3() {
    let mut pair = Pair::new(super::CoreConfig {
        version: EngineVersion::Auto,
        ..config()
    });
    pair.server.down = true;
    // The first link fails the way a socket.io 2 server's v4 handshake does.
    let reply = {
        let token = super::Token(999);
        pair.core.handle_command(
            pair.now,
            super::Command::Connect {
                namespace: "/".into(),
                auth: AuthSource::Fixed(json!({"token": "t"})),
                reply: token,
                deadline: None,
            },
        );
        token
    };
    let open = pair.core.poll_output();
    assert!(matches!(
        open,
        Some(super::Output::OpenLink {
            version: EngineVersion::V4,
            query_auth: None
        })
    ));
    let sio2 = Error::Protocol(crate::proto::engineio::detect::socketio2_server("test"));
    pair.core.handle_link_failed(pair.now, sio2);
    match pair.core.poll_output() {
        Some(super::Output::OpenLink {
            version: EngineVersion::V3,
            query_auth,
        }) => assert_eq!(
            query_auth, None,
            "the main namespace's auth only (none here)"
        ),
        other => panic!("expected an EIO=3 link, got {other:?}"),
    }
    assert!(!pair.log.connect_replies.contains_key(&reply));
}

#[test]
fn leaving_the_last_namespace_sends_disconnect_and_finishes() {
    let mut pair = connected_pair(config());
    pair.disconnect("/");
    assert!(
        !pair.server.is_connected("/"),
        "DISCONNECT reached the server"
    );
    assert_eq!(
        pair.log.finished,
        Some(DisconnectReason::IoClientDisconnect)
    );
    assert_eq!(
        pair.event_kinds("/").last().unwrap(),
        "disconnected(io client disconnect)"
    );
}

#[test]
fn the_transport_of_an_upgrade_is_announced_and_used() {
    let mut pair = connected_pair(config());
    pair.core
        .handle_transport_changed(Transport::Polling, Transport::WebSocket);
    pair.drive();
    assert_eq!(pair.event_kinds("/").last().unwrap(), "transport_changed");
}

/// The server restarts twenty times while emits with retries flow: every emit is answered
/// exactly once and successfully, and the server received every one of them.
#[test]
fn twenty_server_restarts_lose_nothing_and_answer_nothing_twice() {
    let mut pair = connected_pair(super::CoreConfig {
        retries: Some(1000),
        randomization_factor: 0.5,
        ..config()
    });
    let mut tokens = BTreeMap::new();
    let mut next = 0u64;
    for restart in 0..20 {
        for _ in 0..25 {
            let token = pair.emit("/", "n", json!(next), Some(2 * SECOND)).unwrap();
            tokens.insert(token, next);
            next += 1;
        }
        // Cut in the middle of the flow: some emits answered, one in flight, the rest queued.
        pair.server.auto_ack = restart % 3 != 0;
        pair.advance(Duration::from_millis(500));
        pair.lose_link(restart % 2 == 0);
        for _ in 0..5 {
            let token = pair.emit("/", "n", json!(next), Some(2 * SECOND)).unwrap();
            tokens.insert(token, next);
            next += 1;
        }
        pair.server.auto_ack = true;
        pair.advance(3 * SECOND);
        pair.server_up();
        pair.step_until(30 * SECOND, |p| p.server.is_connected("/"));
    }
    pair.step_until(600 * SECOND, |p| p.log.ack_replies.len() == tokens.len());
    for (token, n) in &tokens {
        let answer = pair.ack_reply(*token).as_ref().expect("acknowledged");
        assert_eq!(
            answer.clone().into_wire().0,
            vec![json!(*n)],
            "the ack of {n}"
        );
    }
    let mut seen: Vec<u64> = pair
        .server
        .received
        .iter()
        .map(|r| r.args[0].as_u64().unwrap())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen,
        (0..next).collect::<Vec<_>>(),
        "every emit reached the server"
    );
    assert_eq!(
        pair.event_kinds("/")
            .iter()
            .filter(|k| *k == "connected")
            .count(),
        21
    );
}

fn async_auth() -> AuthSource {
    AuthSource::Async(std::sync::Arc::new(|| Box::pin(async { json!(null) })))
}

#[test]
fn an_asynchronous_auth_holds_the_connect_until_it_is_resolved_on_that_link() {
    let mut pair = Pair::new(config());
    let reply = pair.connect_with("/", async_auth(), None);
    assert_eq!(
        pair.log.auth_requests.len(),
        1,
        "asked once the link is open"
    );
    assert!(
        pair.server.connects.is_empty(),
        "no CONNECT before the auth"
    );
    pair.resolve_auth(json!({"token": "t1"}));
    assert!(pair.connect_reply(reply).is_ok());
    assert_eq!(pair.server.connects[0].1, Some(json!({"token": "t1"})));

    // Lost while the next one is being computed: the late answer is for a link that is gone.
    pair.lose_link(false);
    pair.step_until(5 * SECOND, |p| p.log.auth_requests.len() == 1);
    pair.lose_link(true);
    pair.resolve_auth(json!({"token": "stale"}));
    assert_eq!(
        pair.server.connects.len(),
        1,
        "nothing sent for the stale answer"
    );
    pair.server_up();
    pair.step_until(10 * SECOND, |p| p.log.auth_requests.len() == 1);
    pair.resolve_auth(json!({"token": "t2"}));
    assert_eq!(
        pair.server.connects.last().unwrap().1,
        Some(json!({"token": "t2"}))
    );
    assert!(pair.server.is_connected("/"));
}
