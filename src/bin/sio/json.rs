//! Socket.io arguments to and from command-line JSON: binary values are `{"_binary": base64}`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{json, Value};
use sio_client::Args;

/// A JSON value to arguments: an array is the list, anything else one argument.
pub fn value_to_args(value: &Value) -> Result<Args, String> {
    let values = match value {
        Value::Array(values) => values.as_slice(),
        one => std::slice::from_ref(one),
    };
    let mut args = Args::new();
    for value in values {
        args.push(&WithBinary(value)).map_err(|e| e.to_string())?;
    }
    Ok(args)
}

/// Command-line JSON text to arguments; no text is no argument.
pub fn text_to_args(json: &str) -> Result<Args, String> {
    if json.is_empty() {
        return Ok(Args::new());
    }
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("arguments are not JSON ({e}): {json}"))?;
    value_to_args(&value)
}

/// Serialises a JSON value, turning `{"_binary": base64}` objects into bytes.
struct WithBinary<'a>(&'a Value);

impl Serialize for WithBinary<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                if let (1, Some(Value::String(b64))) = (map.len(), map.get("_binary")) {
                    let bytes = BASE64
                        .decode(b64)
                        .map_err(|e| serde::ser::Error::custom(format!("bad _binary: {e}")))?;
                    return serializer.serialize_bytes(&bytes);
                }
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (key, value) in map {
                    out.serialize_entry(key, &WithBinary(value))?;
                }
                out.end()
            }
            Value::Array(values) => {
                let mut out = serializer.serialize_seq(Some(values.len()))?;
                for value in values {
                    out.serialize_element(&WithBinary(value))?;
                }
                out.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

/// Arguments to JSON, binary values as `{"_binary": base64}`.
pub fn args_to_json(args: &Args) -> Value {
    Value::Array(
        args.values()
            .iter()
            .map(|v| resolve_binary(v, args.attachments()))
            .collect(),
    )
}

fn resolve_binary(value: &Value, attachments: &[Bytes]) -> Value {
    match value {
        Value::Object(map) if map.get("_placeholder") == Some(&Value::Bool(true)) => {
            let data = map
                .get("num")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| attachments.get(n));
            match data {
                Some(bytes) => json!({ "_binary": BASE64.encode(bytes) }),
                None => value.clone(),
            }
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve_binary(v, attachments)))
                .collect(),
        ),
        Value::Array(values) => Value::Array(
            values
                .iter()
                .map(|v| resolve_binary(v, attachments))
                .collect(),
        ),
        scalar => scalar.clone(),
    }
}
