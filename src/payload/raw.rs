//! Arguments kept as the JSON text they arrived in, for the hot receive path: a burst of events
//! costs one syntax check and one copy per event on the connection's task, instead of a tree of
//! `serde_json::Value`s (an allocation per string, array and object) that the application
//! mostly reads once, into its own types, and drops.
//!
//! Each argument is a span of the text, found by the syntax check. [`Args::get`](super::Args::get)
//! deserialises the span straight into the caller's type (on the caller's thread); anything that
//! needs values ([`Args::values`](super::Args::values), `parse`, serialising) parses them once and
//! keeps them. Only packets without binary attachments and without the placeholder key take
//! this form, so the placeholder rules of the value form never apply to it.

use std::fmt;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::json_scan::scan_arguments;

/// Where a byte of JSON text stands: outside strings, inside one (its quotes included), or
/// right after a backslash inside one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonByte {
    Outside,
    InString,
    Escaped,
}

/// Follows string boundaries through JSON text byte by byte, for scans that look at the
/// structure without parsing (the decoder's size estimate, [`reads_as_value`]).
#[derive(Debug, Default)]
pub(crate) struct JsonStrings {
    in_string: bool,
    escaped: bool,
}

impl JsonStrings {
    /// Where `byte`, the next byte of the text, stands.
    pub(crate) fn step(&mut self, byte: u8) -> JsonByte {
        if self.in_string {
            if self.escaped {
                self.escaped = false;
                return JsonByte::Escaped;
            }
            match byte {
                b'\\' => self.escaped = true,
                b'"' => self.in_string = false,
                _ => {}
            }
            return JsonByte::InString;
        }
        if byte == b'"' {
            self.in_string = true;
            return JsonByte::InString;
        }
        JsonByte::Outside
    }
}

/// Where each argument is in the text (start, end): up to [`INLINE_SPANS`] without an
/// allocation of their own, since most events have a few arguments.
#[derive(Clone)]
enum Spans {
    Inline(u8, [(u32, u32); INLINE_SPANS]),
    Heap(Vec<(u32, u32)>),
}

const INLINE_SPANS: usize = 4;

impl Spans {
    fn new() -> Spans {
        Spans::Inline(0, [(0, 0); INLINE_SPANS])
    }

    fn push(&mut self, span: (u32, u32)) {
        match self {
            Spans::Inline(len, items) => match items.get_mut(usize::from(*len)) {
                Some(slot) => {
                    *slot = span;
                    *len += 1;
                }
                None => {
                    let mut heap = items.to_vec();
                    heap.push(span);
                    *self = Spans::Heap(heap);
                }
            },
            Spans::Heap(items) => items.push(span),
        }
    }

    fn as_slice(&self) -> &[(u32, u32)] {
        match self {
            Spans::Inline(len, items) => items.get(..usize::from(*len)).unwrap_or_default(),
            Spans::Heap(items) => items,
        }
    }
}

/// JSON arguments as text, with each argument's place in it. The text is the whole packet as
/// it came off the transport (no copy); the spans say where the arguments are in it.
#[derive(Clone)]
pub(crate) struct RawList {
    text: String,
    spans: Spans,
    values: OnceLock<Vec<Value>>,
}

impl fmt::Debug for RawList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.values()).finish()
    }
}

impl RawList {
    /// The elements of the JSON array `text[start..]`: after the first, a string returned as
    /// the event name, when `named`. `Err` (with `text` back) when that is not an array of
    /// that shape, is not valid JSON, or mentions the placeholder key: the caller then decodes
    /// it the general way (and reports what is wrong with it exactly as that way does).
    pub(crate) fn parse(
        text: String,
        start: usize,
        named: bool,
    ) -> Result<(Option<String>, RawList), String> {
        let Some(json) = text.get(start..) else {
            return Err(text);
        };
        if text.len() > u32::MAX as usize {
            return Err(text);
        }
        // The text is at most u32::MAX bytes long (checked above): the offsets fit.
        let mut spans = Spans::new();
        let scanned = scan_arguments(json, named, &mut |from, to| {
            spans.push(((start + from) as u32, (start + to) as u32));
        });
        let name = match scanned {
            None => return Err(text),
            Some(None) => None,
            Some(Some((from, to, false))) => json.get(from + 1..to - 1).map(str::to_owned),
            Some(Some((from, to, true))) => {
                match json.get(from..to).map(serde_json::from_str::<String>) {
                    Some(Ok(name)) => Some(name),
                    _ => return Err(text),
                }
            }
        };
        if named && name.is_none() {
            return Err(text);
        }
        let list = RawList {
            text,
            spans,
            values: OnceLock::new(),
        };
        Ok((name, list))
    }

    /// No arguments.
    pub(crate) fn empty() -> RawList {
        RawList {
            text: String::new(),
            spans: Spans::new(),
            values: OnceLock::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.spans.as_slice().len()
    }

    /// Argument `index` as text.
    pub(crate) fn element(&self, index: usize) -> Option<&str> {
        let (start, end) = *self.spans.as_slice().get(index)?;
        self.text.get(start as usize..end as usize)
    }

    /// About how many bytes the arguments take on the wire.
    pub(crate) fn wire_size(&self) -> usize {
        let spans = self.spans.as_slice();
        spans
            .iter()
            .map(|(start, end)| (end - start) as usize + 1)
            .sum()
    }

    /// The values, parsed on first use.
    pub(crate) fn values(&self) -> &[Value] {
        self.values.get_or_init(|| {
            (0..self.len())
                .map(|i| {
                    self.element(i)
                        .and_then(|text| serde_json::from_str(text).ok())
                        // The syntax check accepted every span: a value always parses.
                        .unwrap_or(Value::Null)
                })
                .collect()
        })
    }

    /// The values, taken.
    pub(crate) fn into_values(mut self) -> Vec<Value> {
        match self.values.take() {
            Some(values) => values,
            None => {
                self.values();
                self.values.take().unwrap_or_default()
            }
        }
    }

    /// Whether the values were parsed already (then they, not the text, are read).
    pub(crate) fn is_parsed(&self) -> bool {
        self.values.get().is_some()
    }

    /// Deserialises argument `index` from its text. Error messages are those of
    /// `serde_json::from_value` (no position: the position in one argument helps nobody).
    pub(crate) fn get<T: DeserializeOwned>(&self, index: usize) -> Option<Result<T, String>> {
        let text = self.element(index)?;
        Some(serde_json::from_str(text).map_err(|e| without_position(&e)))
    }

    /// The last argument if it is a string (the recovery offset the server appends).
    pub(crate) fn last_string(&self) -> Option<String> {
        let last = self.element(self.len().checked_sub(1)?)?;
        if !last.starts_with('"') {
            return None;
        }
        serde_json::from_str(last).ok()
    }
}

/// `e`'s message without serde_json's " at line L column C".
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    if e.line() == 0 {
        return message;
    }
    let position = format!(" at line {} column {}", e.line(), e.column());
    match message.strip_suffix(&position) {
        Some(bare) => bare.to_owned(),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::super::json_scan::MAX_ELEMENT_DEPTH;
    use super::*;
    use serde_json::json;

    fn parse(text: &str, named: bool) -> Option<(Option<String>, RawList)> {
        RawList::parse(text.to_owned(), 0, named).ok()
    }

    #[test]
    fn spans_cover_each_argument_and_parse_as_values_do() {
        let (name, list) = parse(r#"["item", 12, "x\"y", {"a":[1,2]} , null]"#, true).unwrap();
        assert_eq!(name.as_deref(), Some("item"));
        assert_eq!(list.len(), 4);
        assert_eq!(list.element(1), Some(r#""x\"y""#));
        assert_eq!(list.get::<u64>(0).unwrap().unwrap(), 12);
        assert_eq!(list.get::<String>(1).unwrap().unwrap(), "x\"y");
        assert_eq!(
            list.values(),
            &[json!(12), json!("x\"y"), json!({"a": [1, 2]}), json!(null)]
        );
        assert!(list.get::<u64>(4).is_none());
        assert_eq!(list.last_string(), None);
    }

    #[test]
    fn errors_read_as_from_value_ones() {
        let (_, list) = parse(r#"["e","x"]"#, true).unwrap();
        let raw = list.get::<u64>(0).unwrap().unwrap_err();
        let value = serde_json::from_value::<u64>(json!("x"))
            .unwrap_err()
            .to_string();
        assert_eq!(raw, value);
    }

    #[test]
    fn what_is_not_a_plain_named_array_is_left_to_the_general_decoder() {
        for text in [
            r#"{"a":1}"#,
            r#"[]"#,
            r#"[1,2]"#,
            r#"["a",1"#,
            r#"["a",1] x"#,
            r#"["a",{"_placeholder":true,"num":0}]"#,
        ] {
            assert!(parse(text, true).is_none(), "{text}");
        }
        // As deep as serde_json reads, and one level deeper.
        let nested = |depth: usize| format!("[\"e\",{}{}]", "[".repeat(depth), "]".repeat(depth));
        assert!(serde_json::from_str::<Value>(&nested(MAX_ELEMENT_DEPTH)).is_ok());
        assert!(parse(&nested(MAX_ELEMENT_DEPTH), true).is_some());
        assert!(serde_json::from_str::<Value>(&nested(MAX_ELEMENT_DEPTH + 1)).is_err());
        for text in [
            nested(MAX_ELEMENT_DEPTH + 1),
            nested(10_000),
            r#"["e","\ud800"]"#.to_owned(),
            r#"["e",{"a":["\u0041"]}]"#.to_owned(),
            r#"["e",1e999]"#.to_owned(),
            r#"["e",[1.5E3]]"#.to_owned(),
            format!(r#"["e",1{}]"#, "0".repeat(400)),
        ] {
            assert!(parse(&text, true).is_none(), "{text}");
        }
        let (name, list) = parse("[]", false).unwrap();
        assert_eq!((name, list.len()), (None, 0));
        let (_, list) = parse(
            r#"["e",-1.25,true,false,null,"e\"\\",18446744073709551615]"#,
            true,
        )
        .unwrap();
        assert_eq!(list.len(), 6);
        // More arguments than fit inline.
        let (_, list) = parse(r#"["e",1,2,3,4,5,[6]]"#, true).unwrap();
        assert_eq!((list.len(), list.element(5)), (6, Some("[6]")));
        assert_eq!(list.values()[4], json!(5));
        let (_, list) = parse(r#"["e",1,"off-7"]"#, true).unwrap();
        assert_eq!(list.last_string().as_deref(), Some("off-7"));
    }
}
