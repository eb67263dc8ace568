//! Event arguments: a list of JSON values in which binary values (`bytes::Bytes`) may sit at any
//! depth. Kept in wire form (placeholders + attachments) so sending and receiving are cheap.
//!
//! A binary value is written as `{"_placeholder":true,"num":N}` where `N` indexes the
//! attachments, as socket.io's BINARY_EVENT / BINARY_ACK packets do. Serialisation follows
//! `serde_json::to_value` except that anything serialised with `serialize_bytes` (`Bytes`,
//! `serde_bytes` wrappers) becomes an attachment; deserialisation follows
//! `serde_json::from_value` except that placeholders read as bytes.

mod de;
mod json_scan;
mod raw;
mod ser;

pub(crate) use raw::{JsonByte, JsonStrings, RawList};

use bytes::Bytes;
use serde::ser::{Error as _, SerializeMap, SerializeSeq, SerializeTuple};
use serde::{de::DeserializeOwned, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::Error;

/// Key marking a binary placeholder object.
const PLACEHOLDER: &str = "_placeholder";
/// Key holding the attachment index in a placeholder object.
const NUM: &str = "num";

/// The placeholder for attachment `num`.
fn placeholder(num: usize) -> Value {
    let mut map = Map::new();
    map.insert(PLACEHOLDER.to_owned(), Value::Bool(true));
    map.insert(NUM.to_owned(), Value::from(num));
    Value::Object(map)
}

/// `None` if `value` is not a placeholder; otherwise the attachment it refers to, or why it
/// refers to none. Like the JS reconstructor, any object with `"_placeholder": true` counts as
/// a placeholder, so a bad one is an error rather than silently an ordinary object.
fn resolve_placeholder<'a>(
    value: &Value,
    attachments: &'a [Bytes],
) -> Option<Result<&'a Bytes, String>> {
    let object = value.as_object()?;
    if object.get(PLACEHOLDER) != Some(&Value::Bool(true)) {
        return None;
    }
    let Some(num) = object.get(NUM).and_then(Value::as_u64) else {
        return Some(Err(format!(
            "binary placeholder without a valid \"num\": {value}"
        )));
    };
    let found = usize::try_from(num)
        .ok()
        .and_then(|index| attachments.get(index));
    Some(found.ok_or_else(|| {
        format!(
            "binary placeholder refers to attachment {num} but there are only {}",
            attachments.len()
        )
    }))
}

/// The arguments of an event or an acknowledgement.
#[derive(Clone, Default)]
pub struct Args {
    values: Values,
    attachments: Vec<Bytes>,
}

/// The two forms arguments take: values, or (received without attachments) the JSON text they
/// came in, parsed on demand (see `raw.rs`).
#[derive(Clone)]
enum Values {
    Parsed(Vec<Value>),
    Raw(RawList),
}

impl Default for Values {
    fn default() -> Values {
        Values::Parsed(Vec::new())
    }
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("values", &self.values())
            .field("attachments", &self.attachments)
            .finish()
    }
}

/// Arguments are equal when their values and attachments are, whatever their form.
impl PartialEq for Args {
    fn eq(&self, other: &Args) -> bool {
        self.values() == other.values() && self.attachments == other.attachments
    }
}

/// About how many bytes a JSON value takes encoded (strings without escapes).
fn encoded_size(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items.iter().map(encoded_size).sum::<usize>() + items.len() + 2,
        Value::Object(map) => {
            map.iter()
                .map(|(k, v)| k.len() + 4 + encoded_size(v))
                .sum::<usize>()
                + 2
        }
    }
}

impl Args {
    /// About how many bytes these arguments take on the wire (JSON and attachments): what an
    /// emit weighs in the send queue.
    pub(crate) fn wire_size_estimate(&self) -> usize {
        let json = match &self.values {
            Values::Parsed(values) => values.iter().map(encoded_size).sum::<usize>(),
            Values::Raw(raw) => raw.wire_size(),
        };
        json + self.attachments.iter().map(Bytes::len).sum::<usize>()
    }

    /// Arguments received as the JSON text `list` (no attachments).
    pub(crate) fn from_raw(list: RawList) -> Args {
        Args {
            values: Values::Raw(list),
            attachments: Vec::new(),
        }
    }

    /// The last argument if it is a string (the offset of connection-state recovery).
    pub(crate) fn last_string(&self) -> Option<String> {
        match &self.values {
            Values::Raw(raw) if !raw.is_parsed() => raw.last_string(),
            _ => match self.values().last() {
                Some(Value::String(s)) => Some(s.clone()),
                _ => None,
            },
        }
    }

    /// The values, in the value form from now on (for changes).
    fn parsed_mut(&mut self) -> &mut Vec<Value> {
        if let Values::Raw(raw) = &mut self.values {
            let raw = std::mem::replace(raw, RawList::empty());
            self.values = Values::Parsed(raw.into_values());
        }
        match &mut self.values {
            Values::Parsed(values) => values,
            Values::Raw(_) => unreachable!("just turned into values"),
        }
    }

    /// No arguments.
    pub fn new() -> Args {
        Args::default()
    }

    /// Builds arguments from any `Serialize` value: a tuple gives one argument per element,
    /// `()` gives none, anything else one argument. `Bytes` (anything serialised with
    /// `serialize_bytes`) becomes a binary attachment wherever it sits, numbered in order of
    /// appearance.
    ///
    /// As in serde_json, `Some(x)` and newtype structs are transparent: `Some((1, 2))` gives two
    /// arguments, `None` one `null` argument. A `Vec` is one (array) argument; an `Args` gives
    /// its own arguments back.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Args, Error> {
        let mut attachments = Vec::new();
        let values = value
            .serialize(ser::ArgsSerializer {
                attachments: &mut attachments,
            })
            .map_err(|e| Error::Serialize(e.to_string()))?;
        Ok(Args {
            values: Values::Parsed(values),
            attachments,
        })
    }

    /// Wraps wire values: placeholders in `values` refer to `attachments`.
    pub fn from_wire(values: Vec<Value>, attachments: Vec<Bytes>) -> Args {
        Args {
            values: Values::Parsed(values),
            attachments,
        }
    }

    /// The wire form.
    pub fn into_wire(self) -> (Vec<Value>, Vec<Bytes>) {
        let values = match self.values {
            Values::Parsed(values) => values,
            Values::Raw(raw) => raw.into_values(),
        };
        (values, self.attachments)
    }

    /// Appends `value` as exactly one argument (a tuple becomes one array argument). Its binary
    /// values are numbered after the attachments already present. On error nothing changes.
    pub fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let before = self.attachments.len();
        match value.serialize(ser::ValueSerializer {
            attachments: &mut self.attachments,
        }) {
            Ok(value) => {
                self.parsed_mut().push(value);
                Ok(())
            }
            Err(e) => {
                self.attachments.truncate(before);
                Err(Error::Serialize(e.to_string()))
            }
        }
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        match &self.values {
            Values::Parsed(values) => values.len(),
            Values::Raw(raw) => raw.len(),
        }
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deserialises argument `index`; binary placeholders deserialise as bytes (into `Bytes`,
    /// `Vec<u8>`, `serde_bytes` types…).
    ///
    /// An argument past the end reads as absent: `Option<T>` gives `None`, other types an
    /// error. Into `serde_json::Value`, a binary value comes back as its placeholder object
    /// (look it up in [`attachments`](Self::attachments) or use [`binary`](Self::binary)).
    /// Following serde's usual rule, a `String` accepts a binary value that is valid UTF-8 (so
    /// in an untagged enum put a `Bytes` variant before a `String` one). A placeholder whose
    /// `num` has no attachment is an error, wherever it sits (unless the target ignores it).
    pub fn get<T: DeserializeOwned>(&self, index: usize) -> Result<T, Error> {
        if let Values::Raw(raw) = &self.values {
            if !raw.is_parsed() {
                if let Some(read) = raw.get::<T>(index) {
                    return read.map_err(|e| Error::Deserialize(format!("argument {index}: {e}")));
                }
            }
        }
        match self.values().get(index) {
            Some(value) => T::deserialize(de::ValueDe::new(value, &self.attachments))
                .map_err(|e| Error::Deserialize(format!("argument {index}: {e}"))),
            None => T::deserialize(serde::de::value::UnitDeserializer::<serde_json::Error>::new())
                .map_err(|_| {
                    Error::Deserialize(format!(
                        "argument {index} is missing: there are {} arguments",
                        self.len()
                    ))
                }),
        }
    }

    /// Deserialises the whole list (into a tuple, a `Vec`, or a struct read as a sequence).
    /// The length must match for tuples and structs; `()` accepts an empty list.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        T::deserialize(de::ListDe::new(self.values(), &self.attachments))
            .map_err(|e| Error::Deserialize(format!("argument list: {e}")))
    }

    /// The arguments as one value: a lone argument as itself (a struct, a string), several
    /// as a sequence (a tuple, a `Vec`); a lone argument read as a one-element tuple works too.
    pub fn parse_data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        if self.len() == 1 {
            match self.get::<T>(0) {
                Ok(value) => Ok(value),
                Err(first) => self.parse::<T>().map_err(|_| first),
            }
        } else {
            self.parse::<T>()
        }
    }

    /// Argument `index` if it is binary (a placeholder referring to an existing attachment).
    pub fn binary(&self, index: usize) -> Option<&Bytes> {
        if self.attachments.is_empty() {
            return None;
        }
        resolve_placeholder(self.values().get(index)?, &self.attachments)?.ok()
    }

    /// Raw values, with binary values as `{"_placeholder":true,"num":N}`.
    pub fn values(&self) -> &[Value] {
        match &self.values {
            Values::Parsed(values) => values,
            Values::Raw(raw) => raw.values(),
        }
    }

    /// Binary attachments referred to by the placeholders.
    pub fn attachments(&self) -> &[Bytes] {
        &self.attachments
    }
}

/// Serialises as a tuple of the arguments, with placeholders turned back into bytes
/// (`serialize_bytes`), so `Args::from_serialize(&args)` gives the same arguments back.
/// A placeholder referring to a missing attachment is an error.
impl Serialize for Args {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let values = self.values();
        let mut tuple = serializer.serialize_tuple(values.len())?;
        for value in values {
            tuple.serialize_element(&WireValue {
                value,
                attachments: &self.attachments,
            })?;
        }
        tuple.end()
    }
}

/// One wire value serialised with its placeholders resolved.
struct WireValue<'a> {
    value: &'a Value,
    attachments: &'a [Bytes],
}

impl Serialize for WireValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(bytes) = resolve_placeholder(self.value, self.attachments) {
            return serializer.serialize_bytes(bytes.map_err(S::Error::custom)?);
        }
        let inner = |value| WireValue {
            value,
            attachments: self.attachments,
        };
        match self.value {
            Value::Array(array) => {
                let mut seq = serializer.serialize_seq(Some(array.len()))?;
                for value in array {
                    seq.serialize_element(&inner(value))?;
                }
                seq.end()
            }
            Value::Object(object) => {
                let mut map = serializer.serialize_map(Some(object.len()))?;
                for (key, value) in object {
                    map.serialize_entry(key, &inner(value))?;
                }
                map.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests;
