//! An event on the wire: the packet data `[name, ..args]`. One rule for both directions and for
//! both the client and the mock server: the name is the first element of a non-empty array, a
//! string or a number (socket.io-parser accepts both; a number names the same listeners as its
//! decimal string); everything after it is the arguments, in order.

use serde_json::Value;

use crate::proto::ProtocolError;

/// The data of an EVENT packet for `name` with `args`.
pub fn event_data(name: &str, args: impl IntoIterator<Item = Value>) -> Value {
    let args = args.into_iter();
    let mut data = Vec::with_capacity(args.size_hint().0 + 1);
    data.push(Value::String(name.to_owned()));
    data.extend(args);
    Value::Array(data)
}

/// The name and arguments of an EVENT packet's data.
pub fn split_event(data: Option<Value>) -> Result<(String, Vec<Value>), ProtocolError> {
    let Some(Value::Array(mut values)) = data else {
        return Err(ProtocolError::InvalidPacket(
            "event without arguments".into(),
        ));
    };
    if values.is_empty() {
        return Err(ProtocolError::InvalidPacket("event without a name".into()));
    }
    match values.remove(0) {
        Value::String(name) => Ok((name, values)),
        Value::Number(n) => Ok((n.to_string(), values)),
        _ => Err(ProtocolError::InvalidPacket(
            "event name is not a string".into(),
        )),
    }
}

/// The arguments of an ACK packet's data (a lone value counts as one argument).
pub fn ack_args(data: Option<Value>) -> Vec<Value> {
    match data {
        Some(Value::Array(values)) => values,
        Some(other) => vec![other],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_refuses_malformed_events() {
        let data = event_data("chat", [json!(1), json!("a")]);
        assert_eq!(data, json!(["chat", 1, "a"]));
        assert_eq!(
            split_event(Some(data)).unwrap(),
            ("chat".to_string(), vec![json!(1), json!("a")])
        );
        assert_eq!(
            split_event(Some(json!([7, true]))).unwrap(),
            ("7".to_string(), vec![json!(true)])
        );
        for bad in [
            None,
            Some(json!({})),
            Some(json!([])),
            Some(json!([null, 2])),
        ] {
            assert!(split_event(bad).is_err());
        }
        assert_eq!(ack_args(Some(json!(5))), vec![json!(5)]);
        assert_eq!(ack_args(None), Vec::<Value>::new());
    }
}
