//! A strict JSON syntax check of an event's argument array, noting where each argument is: the
//! receive path's one pass over a packet's text.
//!
//! Why not serde_json's `RawValue`: driving serde's visitor for the check cost a tenth of a
//! burst's CPU on the connection's task, most of it in the machinery around the bytes (a seq
//! access per element, a `RawValue` per span, then a second pass over each span for what the
//! `Value` parse would refuse). This is one loop over the bytes.
//!
//! It accepts only what serde_json's `Value` parse accepts, and gives up (`None`) on anything
//! it is not sure of, leaving that text to the general decoding, which reads or refuses it
//! exactly as before: invalid JSON, `\u` escapes (a lone surrogate is refused by the `Value`
//! parse), numbers with an exponent or 300 characters long (they may leave f64's range),
//! nesting deeper than [`MAX_ELEMENT_DEPTH`], and the binary placeholder key.

/// How deep one argument may nest: serde_json reads 127 levels of arrays and objects in all
/// (its recursion limit, as measured), and the array around the arguments is one of them.
pub(crate) const MAX_ELEMENT_DEPTH: usize = 126;

/// The key that marks a binary placeholder: text with it takes the value form.
const PLACEHOLDER: &[u8] = b"_placeholder";

/// Numbers this long or longer go the general way (they may be out of f64's range there).
const MAX_NUMBER_LEN: usize = 300;

/// The first element's span (quotes included) and whether it has escapes.
pub(crate) type NameSpan = (usize, usize, bool);

/// Scans `json`, an array whose first element is a string when `named`, calling `element`
/// with each argument's span (start, end); `None` when the text is not that, or is anything
/// the general decoding should judge (see the module docs). With `named`, the name's span.
pub(crate) fn scan_arguments(
    json: &str,
    named: bool,
    element: &mut impl FnMut(usize, usize),
) -> Option<Option<NameSpan>> {
    let mut scan = Scan {
        bytes: json.as_bytes(),
        at: 0,
    };
    scan.whitespace();
    if !scan.eat(b'[') {
        return None;
    }
    scan.whitespace();
    let mut name = None;
    let mut first = true;
    if named {
        if scan.peek() != Some(b'"') {
            return None;
        }
        let start = scan.at;
        let escaped = scan.string()?;
        name = Some((start, scan.at, escaped));
        first = false;
    }
    loop {
        if first {
            first = false;
            if scan.eat(b']') {
                break;
            }
        } else {
            scan.whitespace();
            if scan.eat(b']') {
                break;
            }
            if !scan.eat(b',') {
                return None;
            }
            scan.whitespace();
        }
        let start = scan.at;
        scan.value(0)?;
        element(start, scan.at);
    }
    scan.whitespace();
    (scan.at == scan.bytes.len()).then_some(name)
}

/// The first position from `at` on, eight bytes at a time, where a string may need a look:
/// a quote, a backslash or a control character may be in the next eight bytes (a payload's
/// strings are mostly plain text, and this is most of the scan's time).
fn skip_plain(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `word` below `n` (n <= 128) sets its high bit here; a byte above one that does
    // may too (a borrow), which only sends that chunk to the byte-wise look.
    let below = |word: u64, n: u64| word.wrapping_sub(ONES * n) & !word & HIGH;
    while let Some(Ok(chunk)) = bytes.get(at..at + 8).map(<[u8; 8]>::try_from) {
        let word = u64::from_le_bytes(chunk);
        let special = below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1)
            | below(word, 0x20);
        if special != 0 {
            break;
        }
        at += 8;
    }
    at
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// A value inside `depth` arrays and objects of one argument.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'[' => self.array(depth + 1),
            b'{' => self.object(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let rest = self.bytes.get(self.at..)?;
        if !rest.starts_with(word) {
            return None;
        }
        self.at += word.len();
        Some(())
    }

    /// A string, from its opening quote; whether it has escapes.
    fn string(&mut self) -> Option<bool> {
        self.at += 1;
        let start = self.at;
        let mut escaped = false;
        loop {
            self.at = skip_plain(self.bytes, self.at);
            match self.peek()? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match self.bytes.get(self.at + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                        // `\u` (a lone surrogate is refused by the general way) and invalid escapes.
                        _ => return None,
                    }
                }
                // Control characters must be escaped.
                0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        if self.bytes.get(start..self.at)? == PLACEHOLDER {
            return None;
        }
        self.at += 1;
        Some(escaped)
    }

    fn number(&mut self) -> Option<()> {
        let start = self.at;
        self.eat(b'-');
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.') {
            let fraction = self.at;
            self.digits();
            if self.at == fraction {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) || self.at - start >= MAX_NUMBER_LEN {
            return None;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_ELEMENT_DEPTH {
            return None;
        }
        self.at += 1;
        self.whitespace();
        if self.eat(b']') {
            return Some(());
        }
        loop {
            self.value(depth)?;
            self.whitespace();
            if self.eat(b']') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
            self.whitespace();
        }
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_ELEMENT_DEPTH {
            return None;
        }
        self.at += 1;
        self.whitespace();
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return None;
            }
            self.string()?;
            self.whitespace();
            if !self.eat(b':') {
                return None;
            }
            self.whitespace();
            self.value(depth)?;
            self.whitespace();
            if self.eat(b'}') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
            self.whitespace();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn scan(json: &str, named: bool) -> Option<Vec<String>> {
        let mut elements = Vec::new();
        scan_arguments(json, named, &mut |s, e| {
            elements.push(json[s..e].to_owned())
        })?;
        Some(elements)
    }

    #[test]
    fn accepts_what_the_value_parse_reads_and_notes_each_argument() {
        let json = r#" [ "ev" , 1, -0.5 ,"a\"b\\/\n",{"k":[true,false,null]} ,[] ,{}, 0] "#;
        assert_eq!(
            scan(json, true).unwrap(),
            [
                "1",
                "-0.5",
                r#""a\"b\\/\n""#,
                r#"{"k":[true,false,null]}"#,
                "[]",
                "{}",
                "0"
            ]
        );
        assert_eq!(scan("[]", false).unwrap(), Vec::<String>::new());
        assert_eq!(scan(r#"["e"]"#, true).unwrap(), Vec::<String>::new());
        assert!(serde_json::from_str::<Value>(json).is_ok());
    }

    /// Everything the scan accepts, serde_json's `Value` parse reads; what it is unsure of
    /// (or is invalid) it gives up on.
    #[test]
    fn gives_up_on_invalid_json_and_on_what_the_value_parse_may_refuse() {
        let invalid = [
            "",
            "[",
            "]",
            "[1",
            "[1,]",
            "[,1]",
            "[1 2]",
            "[01]",
            "[-]",
            "[1.]",
            "[.5]",
            "[+1]",
            "[1.5.3]",
            "[tru]",
            "[nul]",
            "[truex]",
            "[\"a]",
            "[\"\\x\"]",
            "[\"a\nb\"]",
            "[{1:2}]",
            "[{\"a\"}]",
            "[{\"a\":}]",
            "[{\"a\":1,}]",
            "[{,}]",
            "[1] x",
            "[1]]",
            "{\"a\":1}",
            "[\"\\u0041\"]",
            "[1e5]",
            "[1E5]",
            "[\"_placeholder\"]",
            "[{\"_placeholder\":true,\"num\":0}]",
            "[NaN]",
            "[Infinity]",
            "['a']",
            "[1\u{b}]",
            "[\"\\\"]",
        ];
        for json in invalid {
            assert!(scan(json, false).is_none(), "{json:?} was accepted");
        }
        let long = format!("[1{}]", "0".repeat(MAX_NUMBER_LEN));
        assert!(scan(&long, false).is_none());
        let nested = |depth: usize| format!("[{}{}]", "[".repeat(depth), "]".repeat(depth));
        assert!(scan(&nested(MAX_ELEMENT_DEPTH), false).is_some());
        assert!(serde_json::from_str::<Value>(&nested(MAX_ELEMENT_DEPTH)).is_ok());
        assert!(scan(&nested(MAX_ELEMENT_DEPTH + 1), false).is_none());
        // Named: the first element must be a string.
        assert!(scan("[1]", true).is_none());
        assert!(scan("[]", true).is_none());
    }

    /// Texts made of JSON's tokens at random (a fixed seed): none that the scan accepts is
    /// refused or read differently by the `Value` parse.
    #[test]
    fn no_random_text_it_accepts_is_refused_by_the_value_parse() {
        const TOKENS: &[&str] = &[
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            "\"",
            "\\",
            "\\u",
            "0",
            "1",
            "9",
            "-",
            ".",
            "e",
            "true",
            "false",
            "null",
            "tru",
            " ",
            "\n",
            "a",
            "é",
            "_placeholder",
            "\"k\":",
            "\"s\"",
            "[1,",
            "{\"a\":",
            "\u{1}",
            "/",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..200_000 {
            let mut text = String::from("[");
            for _ in 0..(next() % 12) {
                text.push_str(TOKENS[(next() % TOKENS.len() as u64) as usize]);
            }
            if next() % 2 == 0 {
                text.push(']');
            }
            let Some(elements) = scan(&text, false) else {
                continue;
            };
            accepted += 1;
            let value: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{text:?} accepted, but the parse says {e}"));
            let Value::Array(values) = value else {
                panic!("{text:?} is not an array")
            };
            assert_eq!(elements.len(), values.len(), "{text:?}");
            for (element, value) in elements.iter().zip(&values) {
                assert_eq!(
                    &serde_json::from_str::<Value>(element).unwrap(),
                    value,
                    "{text:?}"
                );
            }
        }
        assert!(
            accepted > 1_000,
            "only {accepted} texts were valid: the test tests little"
        );
    }

    #[test]
    fn what_it_accepts_the_value_parse_reads_byte_for_byte() {
        // Every prefix of valid texts: the scan accepts exactly the complete ones that parse.
        let texts = [
            r#"["e",{"a":[1,-2.5,"x\\y\"z"],"b":{}},true,null,"\/"]"#,
            r#"[ "é", "日本", 0.25, [ [ ] , { } ] ]"#,
        ];
        for text in texts {
            for end in 0..=text.len() {
                let Some(prefix) = text.get(..end) else {
                    continue;
                };
                if scan(prefix, false).is_some() {
                    assert!(serde_json::from_str::<Value>(prefix).is_ok(), "{prefix}");
                }
            }
            let values: Value = serde_json::from_str(text).unwrap();
            let elements = scan(text, false).unwrap();
            let Value::Array(values) = values else {
                panic!()
            };
            for (element, value) in elements.iter().zip(&values) {
                assert_eq!(&serde_json::from_str::<Value>(element).unwrap(), value);
            }
            assert_eq!(elements.len(), values.len());
        }
    }
}
