//! A `serde::Deserializer` over a JSON value whose binary placeholders resolve to attachments.
//!
//! Scalars go to serde_json's own `&Value` deserializer so that numbers, strings and their
//! error messages behave exactly as with `serde_json::from_value`; arrays and objects are walked
//! here so that placeholders at any depth can still reach their attachments.

use std::fmt;

use bytes::Bytes;
use serde::de::{
    self, value::BorrowedStrDeserializer, DeserializeSeed, Error as _, IgnoredAny, MapAccess,
    SeqAccess, Unexpected, Visitor,
};
use serde::Deserializer as _;
use serde_json::{Map, Value};

use super::resolve_placeholder;

type Error = serde_json::Error;

/// What serde_json's `Value` visitor says it expects; used to recognise it (see `deserialize_any`).
const JSON_VALUE_EXPECTING: &str = "any valid JSON value";

/// One value plus the attachments its placeholders refer to.
#[derive(Clone, Copy)]
pub(super) struct ValueDe<'a> {
    value: &'a Value,
    attachments: &'a [Bytes],
}

impl<'a> ValueDe<'a> {
    pub(super) fn new(value: &'a Value, attachments: &'a [Bytes]) -> Self {
        ValueDe { value, attachments }
    }

    /// `Some` when the value is a placeholder: its bytes, or why it cannot be resolved.
    fn placeholder(&self) -> Option<Result<&'a Bytes, Error>> {
        resolve_placeholder(self.value, self.attachments).map(|r| r.map_err(Error::custom))
    }
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Unexpected::Unsigned(u)
            } else if let Some(i) = n.as_i64() {
                Unexpected::Signed(i)
            } else {
                Unexpected::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

/// Lets us read what a visitor expects, to tell serde_json's `Value` visitor apart.
struct Expecting<'v, V>(&'v V);

impl<'de, V: Visitor<'de>> fmt::Display for Expecting<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }
}

fn visit_array<'a, V: Visitor<'a>>(
    array: &'a [Value],
    attachments: &'a [Bytes],
    visitor: V,
) -> Result<V::Value, Error> {
    let mut seq = SeqDe {
        iter: array.iter(),
        attachments,
    };
    let out = visitor.visit_seq(&mut seq)?;
    if seq.iter.len() == 0 {
        Ok(out)
    } else {
        Err(Error::invalid_length(
            array.len(),
            &"fewer elements in array",
        ))
    }
}

fn visit_object<'a, V: Visitor<'a>>(
    object: &'a Map<String, Value>,
    attachments: &'a [Bytes],
    visitor: V,
) -> Result<V::Value, Error> {
    let mut map = MapDe {
        iter: object.iter(),
        value: None,
        attachments,
    };
    let out = visitor.visit_map(&mut map)?;
    if map.iter.len() == 0 {
        Ok(out)
    } else {
        Err(Error::invalid_length(
            object.len(),
            &"fewer elements in map",
        ))
    }
}

/// Placeholder handling shared by the scalar methods: hand the bytes over and let the visitor
/// say whether it wants them (its "invalid type: byte array, expected …" is the right error).
macro_rules! scalar {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.placeholder() {
                Some(bytes) => visitor.visit_borrowed_bytes(bytes?),
                None => self.value.$method(visitor),
            }
        }
    )*};
}

impl<'a> de::Deserializer<'a> for ValueDe<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        if let Some(bytes) = self.placeholder() {
            let bytes = bytes?;
            // serde_json::Value cannot hold bytes and its visitor rejects them: give it the
            // placeholder object as it stands, so `get::<Value>` works on binary arguments.
            if Expecting(&visitor).to_string() == JSON_VALUE_EXPECTING {
                if let Value::Object(object) = self.value {
                    return visit_object(object, self.attachments, visitor);
                }
            }
            return visitor.visit_borrowed_bytes(bytes);
        }
        match self.value {
            Value::Array(array) => visit_array(array, self.attachments, visitor),
            Value::Object(object) => visit_object(object, self.attachments, visitor),
            scalar => scalar.deserialize_any(visitor),
        }
    }

    scalar!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_identifier,
        deserialize_unit
    );

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.placeholder() {
            Some(bytes) => visitor.visit_borrowed_bytes(bytes?),
            None => match self.value {
                Value::Array(array) => visit_array(array, self.attachments, visitor),
                other => other.deserialize_bytes(visitor),
            },
        }
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.placeholder() {
            Some(bytes) => visitor.visit_byte_buf(bytes?.to_vec()),
            None => match self.value {
                Value::Array(array) => visit_array(array, self.attachments, visitor),
                other => other.deserialize_byte_buf(visitor),
            },
        }
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        // serde_json's private markers (RawValue) must reach serde_json itself.
        if name.starts_with("$serde_json::private::") {
            return self.value.deserialize_newtype_struct(name, visitor);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.placeholder() {
            // A `Vec<u8>` without serde_bytes asks for a sequence of numbers.
            Some(bytes) => {
                let mut seq = de::value::SeqDeserializer::<_, Error>::new(bytes?.iter().copied());
                let out = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            None => match self.value {
                Value::Array(array) => visit_array(array, self.attachments, visitor),
                other => other.deserialize_seq(visitor),
            },
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.placeholder() {
            Some(bytes) => visitor.visit_borrowed_bytes(bytes?),
            None => match self.value {
                Value::Object(object) => visit_object(object, self.attachments, visitor),
                other => other.deserialize_map(visitor),
            },
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.placeholder() {
            Some(bytes) => visitor.visit_borrowed_bytes(bytes?),
            None => match self.value {
                Value::Array(array) => visit_array(array, self.attachments, visitor),
                Value::Object(object) => visit_object(object, self.attachments, visitor),
                other => other.deserialize_struct(name, fields, visitor),
            },
        }
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if let Some(bytes) = self.placeholder() {
            return Err(Error::invalid_type(
                Unexpected::Bytes(bytes?),
                &"string or map",
            ));
        }
        match self.value {
            Value::Object(object) => {
                let mut entries = object.iter();
                match (entries.next(), entries.next()) {
                    (Some((variant, value)), None) => visitor.visit_enum(EnumDe {
                        variant,
                        value: ValueDe::new(value, self.attachments),
                    }),
                    _ => Err(Error::invalid_value(
                        Unexpected::Map,
                        &"map with a single key",
                    )),
                }
            }
            // Unit variants: nothing inside that could refer to an attachment.
            other => other.deserialize_enum(name, variants, visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct SeqDe<'a> {
    iter: std::slice::Iter<'a, Value>,
    attachments: &'a [Bytes],
}

impl<'a> SeqAccess<'a> for SeqDe<'a> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.iter.next() {
            Some(value) => seed
                .deserialize(ValueDe::new(value, self.attachments))
                .map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapDe<'a> {
    iter: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
    attachments: &'a [Bytes],
}

impl<'a> MapAccess<'a> for MapDe<'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((key, value)) => {
                self.value = Some(value);
                deserialize_key(key, seed).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'a>>(&mut self, seed: T) -> Result<T::Value, Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(ValueDe::new(value, self.attachments)),
            None => Err(Error::custom("value is missing")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// Deserialises an object key with serde_json's own key rules (numeric keys for
/// `HashMap<u32, _>`, "true"/"false" for bool keys…), by handing it a one-entry map.
fn deserialize_key<'a, K: DeserializeSeed<'a>>(key: &str, seed: K) -> Result<K::Value, Error> {
    struct KeyOnly<K>(K);

    impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for KeyOnly<K> {
        type Value = K::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map key")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<K::Value, A::Error> {
            let key = map
                .next_key_seed(self.0)?
                .ok_or_else(|| A::Error::custom("map key is missing"))?;
            map.next_value::<IgnoredAny>()?;
            Ok(key)
        }
    }

    let mut map = Map::new();
    map.insert(key.to_owned(), Value::Null);
    map.deserialize_any(KeyOnly(seed))
}

struct EnumDe<'a> {
    variant: &'a str,
    value: ValueDe<'a>,
}

impl<'a> de::EnumAccess<'a> for EnumDe<'a> {
    type Error = Error;
    type Variant = ValueDe<'a>;

    fn variant_seed<S: DeserializeSeed<'a>>(
        self,
        seed: S,
    ) -> Result<(S::Value, ValueDe<'a>), Error> {
        let variant = seed.deserialize(BorrowedStrDeserializer::<Error>::new(self.variant))?;
        Ok((variant, self.value))
    }
}

impl<'a> de::VariantAccess<'a> for ValueDe<'a> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(array) if array.is_empty() => visitor.visit_unit(),
            Value::Array(array) => visit_array(array, self.attachments, visitor),
            other => Err(Error::invalid_type(unexpected(other), &"tuple variant")),
        }
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Value::Object(object) if self.placeholder().is_none() => {
                visit_object(object, self.attachments, visitor)
            }
            other => Err(Error::invalid_type(unexpected(other), &"struct variant")),
        }
    }
}

/// The whole argument list read as one sequence (for `Args::parse`).
pub(super) struct ListDe<'a> {
    values: &'a [Value],
    attachments: &'a [Bytes],
}

impl<'a> ListDe<'a> {
    pub(super) fn new(values: &'a [Value], attachments: &'a [Bytes]) -> Self {
        ListDe {
            values,
            attachments,
        }
    }
}

impl<'a> de::Deserializer<'a> for ListDe<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visit_array(self.values, self.attachments, visitor)
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.values.is_empty() {
            visitor.visit_unit()
        } else {
            self.deserialize_any(visitor)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        <W: Visitor<'a>>
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        seq tuple tuple_struct map struct enum identifier
    }
}
