//! Event arguments: a list of JSON values in which binary values (`bytes::Bytes`) may sit at any
//! depth. Kept in wire form (placeholders + attachments) so sending and receiving are cheap.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::Error;

/// The arguments of an event or an acknowledgement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    values: Vec<Value>,
    attachments: Vec<Bytes>,
}

impl Args {
    /// No arguments.
    pub fn new() -> Args {
        Args::default()
    }

    /// Builds arguments from any `Serialize` value: a tuple gives one argument per element,
    /// `()` gives none, anything else one argument. `Bytes` (anything serialised with
    /// `serialize_bytes`) becomes a binary attachment wherever it sits.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Args, Error> {
        let _ = value;
        todo!()
    }

    /// Wraps wire values: placeholders in `values` refer to `attachments`.
    pub fn from_wire(values: Vec<Value>, attachments: Vec<Bytes>) -> Args {
        Args { values, attachments }
    }

    /// The wire form.
    pub fn into_wire(self) -> (Vec<Value>, Vec<Bytes>) {
        (self.values, self.attachments)
    }

    /// Appends one argument (same rules as `from_serialize` for a single value).
    pub fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let _ = value;
        todo!()
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Deserialises argument `index`; binary placeholders deserialise as bytes.
    pub fn get<T: DeserializeOwned>(&self, index: usize) -> Result<T, Error> {
        let _ = index;
        todo!()
    }

    /// Deserialises the whole list (into a tuple, a `Vec`, or a struct read as a sequence).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        todo!()
    }

    /// Argument `index` if it is binary.
    pub fn binary(&self, index: usize) -> Option<&Bytes> {
        let _ = index;
        todo!()
    }

    /// Raw values, with binary values as `{"_placeholder":true,"num":N}`.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Binary attachments referred to by the placeholders.
    pub fn attachments(&self) -> &[Bytes] {
        &self.attachments
    }
}
