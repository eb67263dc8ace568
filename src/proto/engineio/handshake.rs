//! The open packet's JSON: session id, upgrades and heartbeat parameters.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::proto::ProtocolError;

/// Largest `pingInterval` / `pingTimeout` kept, in milliseconds; larger values are clamped.
///
/// This is the longest delay a JavaScript timer honours (2^31 - 1 ms, about 24.8 days), so no
/// real server relies on more, and keeping the sum of both far below `Duration` and `Instant`
/// limits means heartbeat deadlines never overflow.
pub const MAX_HEARTBEAT_MILLIS: u64 = (1 << 31) - 1;

/// The server's handshake (the payload of the open packet).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Session id, sent back as `sid` on every later request.
    pub sid: String,
    /// Transports the session may upgrade to (`["websocket"]` on a polling session).
    pub upgrades: Vec<String>,
    /// Heartbeat interval.
    pub ping_interval: Duration,
    /// How long past an expected ping (v4) or pong (v3) before the peer counts as gone.
    pub ping_timeout: Duration,
    /// Largest payload the server accepts in bytes (v4 only; `None` for v3 servers).
    pub max_payload: Option<u64>,
}

impl Handshake {
    /// Parses the open packet's JSON (the text after the leading `0`).
    ///
    /// `sid`, `pingInterval` and `pingTimeout` are required; a missing `upgrades` means none.
    /// Heartbeat values above [`MAX_HEARTBEAT_MILLIS`] are clamped to it.
    pub fn parse(json: &str) -> Result<Handshake, ProtocolError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| ProtocolError::InvalidJson(e.to_string()))?;
        let Value::Object(object) = value else {
            return Err(invalid("the handshake is not a JSON object"));
        };
        let sid = match object.get("sid") {
            Some(Value::String(sid)) if !sid.is_empty() => sid.clone(),
            Some(Value::String(_)) => return Err(invalid("\"sid\" is empty")),
            Some(_) => return Err(invalid("\"sid\" is not a string")),
            None => return Err(invalid("\"sid\" is missing")),
        };
        let upgrades = match object.get("upgrades") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(name) => Ok(name.clone()),
                    _ => Err(invalid("\"upgrades\" holds a non-string")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("\"upgrades\" is not an array")),
        };
        let ping_interval = heartbeat_millis(&object, "pingInterval")?;
        let ping_timeout = heartbeat_millis(&object, "pingTimeout")?;
        let max_payload = match object.get("maxPayload") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                non_negative_number(value)
                    .ok_or_else(|| invalid("\"maxPayload\" is not a non-negative number"))?,
            ),
        };
        Ok(Handshake {
            sid,
            upgrades,
            ping_interval,
            ping_timeout,
            max_payload,
        })
    }

    /// Serialises as the server sends it (used by the mock server).
    pub fn to_json(&self) -> String {
        let upgrades = Value::Array(
            self.upgrades
                .iter()
                .map(|name| Value::String(name.clone()))
                .collect(),
        );
        // Written by hand to keep the server's key order (serde_json's map sorts keys).
        let mut json = format!(
            "{{\"sid\":{},\"upgrades\":{},\"pingInterval\":{},\"pingTimeout\":{}",
            Value::String(self.sid.clone()),
            upgrades,
            self.ping_interval.as_millis(),
            self.ping_timeout.as_millis(),
        );
        if let Some(max_payload) = self.max_payload {
            json.push_str(&format!(",\"maxPayload\":{max_payload}"));
        }
        json.push('}');
        json
    }
}

fn invalid(reason: &str) -> ProtocolError {
    ProtocolError::InvalidHandshake(reason.to_owned())
}

/// A required heartbeat field in milliseconds, clamped to [`MAX_HEARTBEAT_MILLIS`].
fn heartbeat_millis(object: &Map<String, Value>, key: &str) -> Result<Duration, ProtocolError> {
    let value = object
        .get(key)
        .ok_or_else(|| ProtocolError::InvalidHandshake(format!("{key:?} is missing")))?;
    let millis = non_negative_number(value).ok_or_else(|| {
        ProtocolError::InvalidHandshake(format!("{key:?} is not a non-negative number"))
    })?;
    Ok(Duration::from_millis(millis.min(MAX_HEARTBEAT_MILLIS)))
}

/// A JSON number as `u64`: integers as they are, fractions truncated, values past `u64::MAX`
/// (which serde_json reads as floats) saturated. Negative, NaN or non-numbers give `None`.
fn non_negative_number(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    // `as` saturates for finite floats above u64::MAX.
    (f.is_finite() && f >= 0.0).then_some(f as u64)
}
