//! What one namespace owes its callers: acknowledgements awaited (each with its caller's
//! token) and the at-least-once queue (emits resent until acknowledged, one in flight at a
//! time, in order).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::proto::local_map::LocalMap;

use super::interface::Token;
use crate::transport::Held;

/// An ack awaited by a caller.
#[derive(Debug)]
pub(super) struct PendingAck {
    pub(super) token: Token,
    pub(super) timeout: Duration,
    /// Whether the packet went out on a link (only those fail when the link is lost).
    pub(super) sent: bool,
}

/// An emit delivered at least once.
#[derive(Debug)]
pub(super) struct Queued {
    pub(super) event: String,
    pub(super) values: Vec<Value>,
    pub(super) attachments: Vec<Bytes>,
    /// The caller waiting for the ack; none for a plain emit.
    pub(super) token: Option<Token>,
    pub(super) timeout: Duration,
    pub(super) tries: u32,
    /// Its bytes, counted against `max_send_queue` until it is acknowledged or fails.
    pub(super) _held: Held,
}

/// Who an incoming ACK answers.
#[derive(Debug)]
pub(super) enum Answered {
    /// A caller of `emit_with_ack`.
    Pending(Token),
    /// The at-least-once queue's head (its caller, if it has one); the next may go.
    QueueHead(Option<Token>),
    /// Nobody (answered already, timed out, or never asked).
    Nobody,
}

#[derive(Debug, Default)]
pub(super) struct Acks {
    next_id: u64,
    pending: LocalMap<u64, PendingAck>,
    queue: VecDeque<Queued>,
    /// The ack id of the queue head's attempt on the wire.
    inflight: Option<u64>,
}

impl Acks {
    /// A fresh ack id: ids are unique per namespace for its whole life, so a late ACK for an
    /// abandoned attempt never answers a newer one.
    pub(super) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(super) fn await_ack(&mut self, id: u64, token: Token, timeout: Duration, sent: bool) {
        self.pending.insert(
            id,
            PendingAck {
                token,
                timeout,
                sent,
            },
        );
    }

    /// The ack `id` timed out: its caller, if it still waits.
    pub(super) fn expire(&mut self, id: u64) -> Option<PendingAck> {
        self.pending.remove(&id)
    }

    pub(super) fn answer(&mut self, id: u64) -> Answered {
        if self.inflight == Some(id) {
            self.inflight = None;
            return match self.queue.pop_front() {
                Some(head) => Answered::QueueHead(head.token),
                None => Answered::Nobody,
            };
        }
        match self.pending.remove(&id) {
            Some(ack) => Answered::Pending(ack.token),
            None => Answered::Nobody,
        }
    }

    /// The buffered emits went out: their acks now count as sent.
    pub(super) fn mark_sent(&mut self) {
        for ack in self.pending.values_mut() {
            ack.sent = true;
        }
    }

    /// The link is lost: the callers of acks that went out on it (they cannot be answered any
    /// more); the queue head goes out again on the next link.
    pub(super) fn take_sent(&mut self) -> Vec<Token> {
        self.inflight = None;
        let sent: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, a)| a.sent)
            .map(|(id, _)| *id)
            .collect();
        let mut tokens: Vec<(u64, Token)> = sent
            .into_iter()
            .filter_map(|id| self.pending.remove(&id).map(|a| (id, a.token)))
            .collect();
        tokens.sort_by_key(|(id, _)| *id);
        tokens.into_iter().map(|(_, t)| t).collect()
    }

    /// The namespace is gone: every caller still waiting, in emit order.
    pub(super) fn take_all(&mut self) -> Vec<Token> {
        self.inflight = None;
        let mut pending: Vec<(u64, Token)> =
            self.pending.drain().map(|(id, a)| (id, a.token)).collect();
        pending.sort_by_key(|(id, _)| *id);
        let mut tokens: Vec<Token> = pending.into_iter().map(|(_, t)| t).collect();
        tokens.extend(self.queue.drain(..).filter_map(|q| q.token));
        tokens
    }

    pub(super) fn enqueue(&mut self, queued: Queued) {
        self.queue.push_back(queued);
    }

    /// The next attempt of the queue head, when nothing is in flight: its ack id and data.
    pub(super) fn next_attempt(&mut self) -> Option<(u64, &Queued)> {
        if self.inflight.is_some() || self.queue.is_empty() {
            return None;
        }
        let id = self.next_id();
        self.inflight = Some(id);
        let head = self.queue.front_mut()?;
        head.tries = head.tries.saturating_add(1);
        Some((id, head))
    }

    /// The head's attempt timed out: the head itself when it has used up its `retries`.
    pub(super) fn attempt_timed_out(&mut self, retries: u32) -> Option<Queued> {
        self.inflight = None;
        if self.queue.front().is_some_and(|q| q.tries > retries) {
            return self.queue.pop_front();
        }
        None
    }
}
