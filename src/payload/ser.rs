//! A `serde::Serializer` producing `serde_json::Value` exactly as `serde_json::to_value` does,
//! except that byte strings become attachments referred to by placeholders.

use bytes::Bytes;
use serde::ser::{self, Error as _, Serialize};
use serde_json::{Map, Value};

use super::placeholder;

type Error = serde_json::Error;

/// Serde's hidden struct names that serde_json gives a meaning of its own (`RawValue`, and
/// `Number` under `arbitrary_precision`); those go through serde_json untouched.
const SERDE_JSON_PRIVATE: &str = "$serde_json::private::";

/// Serialises one value, pushing binary values onto `attachments`.
pub(super) struct ValueSerializer<'a> {
    pub(super) attachments: &'a mut Vec<Bytes>,
}

impl<'a> ValueSerializer<'a> {
    fn json() -> serde_json::value::Serializer {
        serde_json::value::Serializer
    }
}

/// The map key serde_json would use for `key`, so that integer, bool and unit-variant keys
/// and the rejections ("key must be a string") match `to_value` exactly.
fn map_key<T: Serialize + ?Sized>(key: &T) -> Result<String, Error> {
    struct KeyOnly<'k, K: ?Sized>(&'k K);
    impl<K: Serialize + ?Sized> Serialize for KeyOnly<'_, K> {
        fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeMap;
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry(self.0, &())?;
            map.end()
        }
    }
    match serde_json::to_value(KeyOnly(key))? {
        Value::Object(map) => map
            .into_iter()
            .next()
            .map(|(k, _)| k)
            .ok_or_else(|| Error::custom("map key vanished")),
        _ => Err(Error::custom("map key did not serialise as a map")),
    }
}

impl<'a> ser::Serializer for ValueSerializer<'a> {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = SerializeVec<'a>;
    type SerializeTuple = SerializeVec<'a>;
    type SerializeTupleStruct = SerializeVec<'a>;
    type SerializeTupleVariant = SerializeTupleVariant<'a>;
    type SerializeMap = SerializeMap<'a>;
    type SerializeStruct = SerializeStruct<'a>;
    type SerializeStructVariant = SerializeStructVariant<'a>;

    fn serialize_bool(self, v: bool) -> Result<Value, Error> {
        Self::json().serialize_bool(v)
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Error> {
        Self::json().serialize_i8(v)
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Error> {
        Self::json().serialize_i16(v)
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Error> {
        Self::json().serialize_i32(v)
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Error> {
        Self::json().serialize_i64(v)
    }
    fn serialize_i128(self, v: i128) -> Result<Value, Error> {
        Self::json().serialize_i128(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Error> {
        Self::json().serialize_u8(v)
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Error> {
        Self::json().serialize_u16(v)
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Error> {
        Self::json().serialize_u32(v)
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Error> {
        Self::json().serialize_u64(v)
    }
    fn serialize_u128(self, v: u128) -> Result<Value, Error> {
        Self::json().serialize_u128(v)
    }
    fn serialize_f32(self, v: f32) -> Result<Value, Error> {
        Self::json().serialize_f32(v)
    }
    fn serialize_f64(self, v: f64) -> Result<Value, Error> {
        Self::json().serialize_f64(v)
    }
    fn serialize_char(self, v: char) -> Result<Value, Error> {
        Self::json().serialize_char(v)
    }
    fn serialize_str(self, v: &str) -> Result<Value, Error> {
        Self::json().serialize_str(v)
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
        let num = self.attachments.len();
        self.attachments.push(Bytes::copy_from_slice(v));
        Ok(placeholder(num))
    }

    fn serialize_none(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, Error> {
        Ok(Value::String(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        let inner = value.serialize(ValueSerializer {
            attachments: self.attachments,
        })?;
        let mut map = Map::new();
        map.insert(variant.to_owned(), inner);
        Ok(Value::Object(map))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<SerializeVec<'a>, Error> {
        Ok(SerializeVec {
            attachments: self.attachments,
            vec: Vec::with_capacity(len.unwrap_or(0)),
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SerializeVec<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SerializeVec<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SerializeTupleVariant<'a>, Error> {
        Ok(SerializeTupleVariant {
            name: variant.to_owned(),
            inner: SerializeVec {
                attachments: self.attachments,
                vec: Vec::with_capacity(len),
            },
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<SerializeMap<'a>, Error> {
        Ok(SerializeMap {
            attachments: self.attachments,
            map: Map::with_capacity(len.unwrap_or(0)),
            next_key: None,
        })
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<SerializeStruct<'a>, Error> {
        if name.starts_with(SERDE_JSON_PRIVATE) {
            return Ok(SerializeStruct::Json(
                Self::json().serialize_struct(name, len)?,
            ));
        }
        Ok(SerializeStruct::Map(self.serialize_map(Some(len))?))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<SerializeStructVariant<'a>, Error> {
        Ok(SerializeStructVariant {
            name: variant.to_owned(),
            inner: SerializeMap {
                attachments: self.attachments,
                map: Map::new(),
                next_key: None,
            },
        })
    }
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<Value, Error> {
        Ok(Value::String(value.to_string()))
    }
}

/// Sequences, tuples and tuple structs: a JSON array.
pub(super) struct SerializeVec<'a> {
    attachments: &'a mut Vec<Bytes>,
    vec: Vec<Value>,
}

impl SerializeVec<'_> {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let value = value.serialize(ValueSerializer {
            attachments: self.attachments,
        })?;
        self.vec.push(value);
        Ok(())
    }
}

impl ser::SerializeSeq for SerializeVec<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Array(self.vec))
    }
}

impl ser::SerializeTuple for SerializeVec<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Array(self.vec))
    }
}

impl ser::SerializeTupleStruct for SerializeVec<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Array(self.vec))
    }
}

/// `{"Variant": [fields…]}`.
pub(super) struct SerializeTupleVariant<'a> {
    name: String,
    inner: SerializeVec<'a>,
}

impl ser::SerializeTupleVariant for SerializeTupleVariant<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.inner.push(value)
    }
    fn end(self) -> Result<Value, Error> {
        let mut map = Map::new();
        map.insert(self.name, Value::Array(self.inner.vec));
        Ok(Value::Object(map))
    }
}

/// Maps and structs: a JSON object.
pub(super) struct SerializeMap<'a> {
    attachments: &'a mut Vec<Bytes>,
    map: Map<String, Value>,
    next_key: Option<String>,
}

impl SerializeMap<'_> {
    fn insert<T: Serialize + ?Sized>(&mut self, key: String, value: &T) -> Result<(), Error> {
        let value = value.serialize(ValueSerializer {
            attachments: self.attachments,
        })?;
        self.map.insert(key, value);
        Ok(())
    }
}

impl ser::SerializeMap for SerializeMap<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.next_key = Some(map_key(key)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        // serde_json panics here; a faulty Serialize impl must not bring the client down.
        let key = self
            .next_key
            .take()
            .ok_or_else(|| Error::custom("serialize_value called before serialize_key"))?;
        self.insert(key, value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Object(self.map))
    }
}

/// Structs: normally an object, but serde_json's private marker structs go to serde_json.
pub(super) enum SerializeStruct<'a> {
    Map(SerializeMap<'a>),
    Json(<serde_json::value::Serializer as ser::Serializer>::SerializeStruct),
}

impl ser::SerializeStruct for SerializeStruct<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        match self {
            SerializeStruct::Map(map) => map.insert(key.to_owned(), value),
            SerializeStruct::Json(json) => json.serialize_field(key, value),
        }
    }
    fn end(self) -> Result<Value, Error> {
        match self {
            SerializeStruct::Map(map) => Ok(Value::Object(map.map)),
            SerializeStruct::Json(json) => json.end(),
        }
    }
}

/// `{"Variant": {fields…}}`.
pub(super) struct SerializeStructVariant<'a> {
    name: String,
    inner: SerializeMap<'a>,
}

impl ser::SerializeStructVariant for SerializeStructVariant<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.inner.insert(key.to_owned(), value)
    }
    fn end(self) -> Result<Value, Error> {
        let mut map = Map::new();
        map.insert(self.name, Value::Object(self.inner.map));
        Ok(Value::Object(map))
    }
}

/// Top level of an argument list: a tuple spreads into several arguments, `()` into none,
/// `Some` and newtype structs are transparent (as in serde_json), anything else is one argument.
pub(super) struct ArgsSerializer<'a> {
    pub(super) attachments: &'a mut Vec<Bytes>,
}

impl<'a> ArgsSerializer<'a> {
    fn value(self) -> ValueSerializer<'a> {
        ValueSerializer {
            attachments: self.attachments,
        }
    }
}

/// Wraps the compound serialisers of `ValueSerializer` so that their one value becomes a list.
pub(super) struct One<C>(C);

macro_rules! forward_scalars {
    ($($method:ident: $ty:ty),* $(,)?) => {$(
        fn $method(self, v: $ty) -> Result<Vec<Value>, Error> {
            Ok(vec![self.value().$method(v)?])
        }
    )*};
}

impl<'a> ser::Serializer for ArgsSerializer<'a> {
    type Ok = Vec<Value>;
    type Error = Error;
    type SerializeSeq = One<SerializeVec<'a>>;
    type SerializeTuple = Spread<'a>;
    type SerializeTupleStruct = One<SerializeVec<'a>>;
    type SerializeTupleVariant = One<SerializeTupleVariant<'a>>;
    type SerializeMap = One<SerializeMap<'a>>;
    type SerializeStruct = One<SerializeStruct<'a>>;
    type SerializeStructVariant = One<SerializeStructVariant<'a>>;

    forward_scalars! {
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char, serialize_str: &str, serialize_bytes: &[u8],
    }

    fn serialize_none(self) -> Result<Vec<Value>, Error> {
        Ok(vec![Value::Null])
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<Value>, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Vec<Value>, Error> {
        Ok(Vec::new())
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<Vec<Value>, Error> {
        Ok(vec![self.value().serialize_unit_struct(name)?])
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<Vec<Value>, Error> {
        Ok(vec![self
            .value()
            .serialize_unit_variant(name, index, variant)?])
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Vec<Value>, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Vec<Value>, Error> {
        Ok(vec![self
            .value()
            .serialize_newtype_variant(name, index, variant, value)?])
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Ok(One(self.value().serialize_seq(len)?))
    }
    fn serialize_tuple(self, len: usize) -> Result<Spread<'a>, Error> {
        Ok(Spread(self.value().serialize_tuple(len)?))
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Ok(One(self.value().serialize_tuple_struct(name, len)?))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Ok(One(self
            .value()
            .serialize_tuple_variant(name, index, variant, len)?))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Ok(One(self.value().serialize_map(len)?))
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Ok(One(self.value().serialize_struct(name, len)?))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Ok(One(self
            .value()
            .serialize_struct_variant(name, index, variant, len)?))
    }
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<Vec<Value>, Error> {
        Ok(vec![self.value().collect_str(value)?])
    }
}

impl<C: ser::SerializeSeq<Ok = Value, Error = Error>> ser::SerializeSeq for One<C> {
    type Ok = Vec<Value>;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.0.serialize_element(value)
    }
    fn end(self) -> Result<Vec<Value>, Error> {
        Ok(vec![self.0.end()?])
    }
}

impl<C: ser::SerializeTupleStruct<Ok = Value, Error = Error>> ser::SerializeTupleStruct for One<C> {
    type Ok = Vec<Value>;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.0.serialize_field(value)
    }
    fn end(self) -> Result<Vec<Value>, Error> {
        Ok(vec![self.0.end()?])
    }
}

impl<C: ser::SerializeTupleVariant<Ok = Value, Error = Error>> ser::SerializeTupleVariant
    for One<C>
{
    type Ok = Vec<Value>;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.0.serialize_field(value)
    }
    fn end(self) -> Result<Vec<Value>, Error> {
        Ok(vec![self.0.end()?])
    }
}

impl<C: ser::SerializeMap<Ok = Value, Error = Error>> ser::SerializeMap for One<C> {
    type Ok = Vec<Value>;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.0.serialize_key(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.0.serialize_value(value)
    }
    fn end(self) -> Result<Vec<Value>, Error> {
        Ok(vec![self.0.end()?])
    }
}

impl<C: ser::SerializeStruct<Ok = Value, Error = Error>> ser::SerializeStruct for One<C> {
    type Ok = Vec<Value>;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.0.serialize_field(key, value)
    }
    fn end(self) -> Result<Vec<Value>, Error> {
        Ok(vec![self.0.end()?])
    }
}

impl<C: ser::SerializeStructVariant<Ok = Value, Error = Error>> ser::SerializeStructVariant
    for One<C>
{
    type Ok = Vec<Value>;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.0.serialize_field(key, value)
    }
    fn end(self) -> Result<Vec<Value>, Error> {
        Ok(vec![self.0.end()?])
    }
}

/// A top-level tuple: each element is an argument of its own.
pub(super) struct Spread<'a>(SerializeVec<'a>);

impl ser::SerializeTuple for Spread<'_> {
    type Ok = Vec<Value>;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.0.push(value)
    }
    fn end(self) -> Result<Vec<Value>, Error> {
        Ok(self.0.vec)
    }
}
