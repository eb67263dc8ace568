use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};

use super::Args;
use crate::Error;

/// A `serde_bytes::Bytes`-like borrowed wrapper (serialises with `serialize_bytes`).
struct ByteSlice<'a>(&'a [u8]);

impl Serialize for ByteSlice<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// A `serde_bytes::ByteBuf`-like owned wrapper (asks for `deserialize_byte_buf`).
#[derive(Debug, PartialEq)]
struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        deserializer.deserialize_byte_buf(V)
    }
}

fn ph(num: u64) -> Value {
    json!({"_placeholder": true, "num": num})
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn deser_msg(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Deserialize(msg)) => msg,
        other => panic!("expected a Deserialize error, got {other:?}"),
    }
}

fn ser_msg(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Serialize(msg)) => msg,
        other => panic!("expected a Serialize error, got {other:?}"),
    }
}

// ---- from_serialize: argument spreading ----

#[test]
fn tuples_spread_into_arguments() {
    let one = Args::from_serialize(&(7,)).unwrap();
    assert_eq!(one.values(), &[json!(7)]);

    let two = Args::from_serialize(&("a", 2)).unwrap();
    assert_eq!(two.values(), &[json!("a"), json!(2)]);

    let three = Args::from_serialize(&(1, "x", json!({"k": [true]}))).unwrap();
    assert_eq!(
        three.values(),
        &[json!(1), json!("x"), json!({"k": [true]})]
    );

    let twelve = Args::from_serialize(&(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)).unwrap();
    assert_eq!(twelve.len(), 12);
    assert_eq!(twelve.values()[11], json!(11));
    assert!(twelve.attachments().is_empty());
}

#[test]
fn unit_gives_no_arguments_and_other_values_give_one() {
    let none = Args::from_serialize(&()).unwrap();
    assert!(none.is_empty());
    assert_eq!(none, Args::new());

    #[derive(Serialize)]
    struct Unit;
    assert_eq!(
        Args::from_serialize(&Unit).unwrap().values(),
        &[Value::Null]
    );
    assert_eq!(
        Args::from_serialize(&None::<i32>).unwrap().values(),
        &[Value::Null]
    );
    assert_eq!(
        Args::from_serialize(&vec![1, 2]).unwrap().values(),
        &[json!([1, 2])]
    );
    assert_eq!(
        Args::from_serialize(&json!([1, 2])).unwrap().values(),
        &[json!([1, 2])]
    );
    assert_eq!(
        Args::from_serialize(&json!({"a": 1})).unwrap().values(),
        &[json!({"a": 1})]
    );
    assert_eq!(Args::from_serialize("hi").unwrap().values(), &[json!("hi")]);
    // Some and newtype structs are transparent, as in serde_json.
    assert_eq!(Args::from_serialize(&Some((1, 2))).unwrap().len(), 2);
    #[derive(Serialize)]
    struct Wrap((i32, i32, i32));
    assert_eq!(Args::from_serialize(&Wrap((1, 2, 3))).unwrap().len(), 3);
    // A top-level binary value is one binary argument.
    let bin = Args::from_serialize(&b("raw")).unwrap();
    assert_eq!(bin.values(), &[ph(0)]);
    assert_eq!(bin.attachments(), &[b("raw")]);
}

// ---- serialisation matches serde_json::to_value ----

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Kind {
    Unit,
    Newtype(i64),
    Tuple(u8, String),
    Struct { x: f64, tag: Option<String> },
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Newtype(String);

#[derive(Serialize)]
struct Everything {
    int_keys: BTreeMap<i32, &'static str>,
    bool_keys: BTreeMap<bool, u8>,
    unit_variant_keys: BTreeMap<&'static str, Kind>,
    kinds: Vec<Kind>,
    nan: f64,
    inf: f32,
    big: u128,
    neg: i128,
    ch: char,
    nothing: Option<u8>,
    something: Option<u8>,
    unit: (),
    newtype: Newtype,
    tuple: (i8, u16),
    nested: Vec<Vec<Value>>,
}

#[test]
fn values_match_serde_json_to_value() {
    let v = Everything {
        int_keys: [(-3, "a"), (10, "b")].into_iter().collect(),
        bool_keys: [(true, 1), (false, 0)].into_iter().collect(),
        unit_variant_keys: [("k", Kind::Unit)].into_iter().collect(),
        kinds: vec![
            Kind::Unit,
            Kind::Newtype(-5),
            Kind::Tuple(1, "t".into()),
            Kind::Struct { x: 1.5, tag: None },
        ],
        nan: f64::NAN,
        inf: f32::INFINITY,
        big: u64::MAX as u128,
        neg: i64::MIN as i128,
        ch: 'é',
        nothing: None,
        something: Some(4),
        unit: (),
        newtype: Newtype("n".into()),
        tuple: (-1, 65535),
        nested: vec![vec![json!({"a": [null]})], vec![]],
    };
    let mut args = Args::new();
    args.push(&v).unwrap();
    assert_eq!(args.values(), &[serde_json::to_value(&v).unwrap()]);
    assert_eq!(args.values()[0]["nan"], Value::Null);
    assert_eq!(args.values()[0]["int_keys"]["-3"], json!("a"));
    assert!(args.attachments().is_empty());
}

#[test]
fn rejected_map_keys_and_failing_impls_are_serialize_errors() {
    let mut bad: HashMap<Vec<u8>, i32> = HashMap::new();
    bad.insert(vec![1], 1);
    let msg = ser_msg(Args::from_serialize(&(1, bad)));
    assert!(msg.contains("key must be a string"), "{msg}");

    let msg = ser_msg(Args::from_serialize(&u128::MAX));
    assert!(msg.contains("out of range"), "{msg}");

    struct Fails;
    impl Serialize for Fails {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refusing to serialise"))
        }
    }
    let msg = ser_msg(Args::from_serialize(&("ok", vec![Fails])));
    assert!(msg.contains("refusing to serialise"), "{msg}");
}

#[test]
fn value_before_key_is_an_error_not_a_panic() {
    struct Broken;
    impl Serialize for Broken {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = serializer.serialize_map(None)?;
            map.serialize_value(&1)?;
            map.end()
        }
    }
    let msg = ser_msg(Args::from_serialize(&Broken));
    assert!(msg.contains("before serialize_key"), "{msg}");
}

// ---- binary values ----

#[derive(Serialize)]
struct Upload {
    name: String,
    files: BTreeMap<String, Vec<Bytes>>,
    thumb: Bytes,
}

#[test]
fn nested_bytes_become_numbered_placeholders_in_order() {
    let upload = Upload {
        name: "pics".into(),
        files: [
            ("a".to_string(), vec![b("a0"), b("a1")]),
            ("b".to_string(), vec![b("b0")]),
        ]
        .into_iter()
        .collect(),
        thumb: b("t"),
    };
    let args = Args::from_serialize(&("up", upload, ByteSlice(b"last"))).unwrap();
    assert_eq!(
        args.values(),
        &[
            json!("up"),
            json!({
                "name": "pics",
                "files": {"a": [ph(0), ph(1)], "b": [ph(2)]},
                "thumb": ph(3),
            }),
            ph(4),
        ]
    );
    assert_eq!(
        args.attachments(),
        &[b("a0"), b("a1"), b("b0"), b("t"), b("last")]
    );
}

#[test]
fn bytes_inside_enums_and_tuples_become_attachments() {
    #[derive(Serialize)]
    enum Msg {
        Newtype(Bytes),
        Tuple(u8, Bytes),
        Struct { data: Bytes },
    }
    let args = Args::from_serialize(&(
        Msg::Newtype(b("n")),
        Msg::Tuple(1, b("t")),
        Msg::Struct { data: b("s") },
        (b("x"), 2),
    ))
    .unwrap();
    assert_eq!(
        args.values(),
        &[
            json!({"Newtype": ph(0)}),
            json!({"Tuple": [1, ph(1)]}),
            json!({"Struct": {"data": ph(2)}}),
            json!([ph(3), 2]),
        ]
    );
    assert_eq!(args.attachments(), &[b("n"), b("t"), b("s"), b("x")]);
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct File {
    name: String,
    data: Bytes,
    chunks: Vec<Bytes>,
    meta: HashMap<u32, Bytes>,
    preview: Option<Bytes>,
}

#[test]
fn user_structs_with_bytes_round_trip() {
    let file = File {
        name: "f".into(),
        data: b("main"),
        chunks: vec![b("c1"), b(""), b("c3")],
        meta: [(7, b("seven"))].into_iter().collect(),
        preview: Some(b("p")),
    };
    let args = Args::from_serialize(&(42, file.clone())).unwrap();
    assert_eq!(args.attachments().len(), 6);
    assert_eq!(args.get::<i32>(0).unwrap(), 42);
    assert_eq!(args.get::<File>(1).unwrap(), file);

    // The same through the wire form.
    let (values, attachments) = args.into_wire();
    let back = Args::from_wire(values, attachments);
    assert_eq!(back.get::<File>(1).unwrap(), file);
}

#[test]
fn option_bytes() {
    let args = Args::from_serialize(&(Some(b("x")), None::<Bytes>)).unwrap();
    assert_eq!(args.values(), &[ph(0), Value::Null]);
    assert_eq!(args.get::<Option<Bytes>>(0).unwrap(), Some(b("x")));
    assert_eq!(args.get::<Option<Bytes>>(1).unwrap(), None);
}

#[test]
fn placeholders_read_as_vec_u8_and_byte_bufs() {
    let args = Args::from_wire(vec![ph(0), json!([ph(0), ph(1)])], vec![b("ab"), b("c")]);
    assert_eq!(args.get::<Vec<u8>>(0).unwrap(), b"ab".to_vec());
    assert_eq!(args.get::<ByteBuf>(0).unwrap(), ByteBuf(b"ab".to_vec()));
    assert_eq!(args.get::<[u8; 2]>(0).unwrap(), *b"ab");
    assert_eq!(args.get::<Vec<Bytes>>(1).unwrap(), vec![b("ab"), b("c")]);
    // An ordinary JSON array of numbers still reads as bytes, as with serde_json.
    let plain = Args::from_wire(vec![json!([1, 2])], vec![]);
    assert_eq!(plain.get::<Bytes>(0).unwrap(), Bytes::from_static(&[1, 2]));
}

#[test]
fn enums_round_trip() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Msg {
        Ping,
        Data(Bytes),
        Pair(String, Bytes),
        Named { id: u32, body: Option<Bytes> },
    }
    let msgs = vec![
        Msg::Ping,
        Msg::Data(b("d")),
        Msg::Pair("p".into(), b("q")),
        Msg::Named {
            id: 3,
            body: Some(b("body")),
        },
        Msg::Named { id: 4, body: None },
    ];
    let args = Args::from_serialize(&msgs).unwrap();
    assert_eq!(args.len(), 1);
    assert_eq!(args.get::<Vec<Msg>>(0).unwrap(), msgs);

    let kinds = Args::from_serialize(&(Kind::Unit, Kind::Tuple(2, "x".into()))).unwrap();
    assert_eq!(kinds.get::<Kind>(0).unwrap(), Kind::Unit);
    assert_eq!(kinds.get::<Kind>(1).unwrap(), Kind::Tuple(2, "x".into()));

    let not_enum = Args::from_wire(vec![json!({"Ping": null, "Data": 1}), ph(0)], vec![b("z")]);
    let msg = deser_msg(not_enum.get::<Msg>(0));
    assert!(msg.contains("single key"), "{msg}");
    let msg = deser_msg(not_enum.get::<Msg>(1));
    assert!(msg.contains("byte array"), "{msg}");
}

#[test]
fn untagged_and_internally_tagged_enums_see_bytes() {
    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Binary(Bytes),
    }
    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(tag = "type")]
    enum Tagged {
        Blob { data: Bytes },
    }
    let args = Args::from_wire(
        vec![ph(0), json!("s"), json!({"type": "Blob", "data": ph(1)})],
        vec![Bytes::from_static(b"\xffnot utf8"), b("blob")],
    );
    assert_eq!(
        args.get::<Either>(0).unwrap(),
        Either::Binary(Bytes::from_static(b"\xffnot utf8"))
    );
    assert_eq!(args.get::<Either>(1).unwrap(), Either::Text("s".into()));
    assert_eq!(
        args.get::<Tagged>(2).unwrap(),
        Tagged::Blob { data: b("blob") }
    );
}

#[test]
fn maps_with_numeric_keys_deserialise_like_serde_json() {
    let args = Args::from_wire(vec![json!({"1": "a", "20": "b"}), json!({"x": 1})], vec![]);
    let map: BTreeMap<u32, String> = args.get(0).unwrap();
    assert_eq!(
        map,
        [(1, "a".into()), (20, "b".into())].into_iter().collect()
    );
    let msg = deser_msg(args.get::<BTreeMap<u32, i32>>(1));
    assert!(msg.starts_with("argument 1:"), "{msg}");
}

// ---- get / parse errors and shapes ----

#[test]
fn get_reports_type_mismatches_with_the_index() {
    let args = Args::from_serialize(&("text", 5, b("bin"))).unwrap();
    let msg = deser_msg(args.get::<i32>(0));
    assert!(msg.contains("argument 0"), "{msg}");
    assert!(msg.contains("invalid type"), "{msg}");
    let msg = deser_msg(args.get::<String>(1));
    assert!(msg.contains("argument 1"), "{msg}");
    let msg = deser_msg(args.get::<i32>(2));
    assert!(
        msg.contains("argument 2") && msg.contains("byte array"),
        "{msg}"
    );
    let msg = deser_msg(args.get::<File>(0));
    assert!(msg.contains("expected struct File"), "{msg}");

    let msg = deser_msg(args.get::<i32>(3));
    assert!(msg.contains("argument 3 is missing"), "{msg}");
    assert_eq!(args.get::<Option<i32>>(3).unwrap(), None);
}

#[test]
fn json_values_keep_placeholders() {
    let args = Args::from_serialize(&(b("x"), json!({"k": 1}))).unwrap();
    let mut args = args;
    args.push(&vec![b("y")]).unwrap();
    assert_eq!(args.get::<Value>(0).unwrap(), ph(0));
    assert_eq!(args.get::<Value>(1).unwrap(), json!({"k": 1}));
    assert_eq!(args.get::<Value>(2).unwrap(), json!([ph(1)]));
    assert_eq!(
        args.get::<serde_json::Map<String, Value>>(1).unwrap()["k"],
        json!(1)
    );
    let all: Vec<Value> = args.parse().unwrap();
    assert_eq!(all, args.values());
}

#[test]
fn parse_reads_the_whole_list() {
    let args = Args::from_serialize(&(1, "two", b("three"))).unwrap();
    let (one, two, three): (i32, String, Bytes) = args.parse().unwrap();
    assert_eq!((one, two.as_str(), three), (1, "two", b("three")));

    #[derive(Deserialize, Debug, PartialEq)]
    struct AsTuple(u8, String, Bytes);
    assert_eq!(
        args.parse::<AsTuple>().unwrap(),
        AsTuple(1, "two".into(), b("three"))
    );
    #[derive(Deserialize, Debug, PartialEq)]
    struct AsStruct {
        n: u8,
        s: String,
        data: Bytes,
    }
    assert_eq!(
        args.parse::<AsStruct>().unwrap(),
        AsStruct {
            n: 1,
            s: "two".into(),
            data: b("three")
        }
    );

    let numbers = Args::from_serialize(&(1, 2, 3)).unwrap();
    assert_eq!(numbers.parse::<Vec<u64>>().unwrap(), vec![1, 2, 3]);

    let msg = deser_msg(numbers.parse::<(u64, u64)>());
    assert!(msg.contains("fewer elements"), "{msg}");
    let msg = deser_msg(numbers.parse::<(u64, u64, u64, u64)>());
    assert!(msg.contains("invalid length 3"), "{msg}");
    let msg = deser_msg(numbers.parse::<(u64, String, u64)>());
    assert!(msg.contains("invalid type"), "{msg}");

    Args::new().parse::<()>().unwrap();
    assert!(numbers.parse::<()>().is_err());
    assert_eq!(Args::new().parse::<Vec<i32>>().unwrap(), Vec::<i32>::new());
}

#[test]
fn binary_finds_only_valid_top_level_placeholders() {
    let args = Args::from_wire(
        vec![
            ph(1),
            json!([ph(0)]),
            json!("s"),
            ph(2),
            json!({"_placeholder": true}),
        ],
        vec![b("zero"), b("one")],
    );
    assert_eq!(args.binary(0), Some(&b("one")));
    assert_eq!(args.binary(1), None);
    assert_eq!(args.binary(2), None);
    assert_eq!(args.binary(3), None);
    assert_eq!(args.binary(4), None);
    assert_eq!(args.binary(5), None);
}

#[test]
fn bad_placeholders_are_errors_not_panics() {
    let bad = vec![
        ph(1),
        ph(u64::MAX),
        json!({"_placeholder": true, "num": -1}),
        json!({"_placeholder": true, "num": "0"}),
        json!({"_placeholder": true, "num": 0.5}),
        json!({"_placeholder": true}),
        json!({"deep": [{"x": ph(9)}]}),
    ];
    let args = Args::from_wire(bad.clone(), vec![b("only")]);
    for index in 0..bad.len() {
        let msg = deser_msg(args.get::<Value>(index));
        assert!(msg.contains("placeholder"), "{index}: {msg}");
        assert!(args.get::<Bytes>(index).is_err());
        assert!(args.get::<Option<Bytes>>(index).is_err());
        assert!(args.get::<Vec<u8>>(index).is_err());
        assert!(args.get::<String>(index).is_err());
        assert!(args.get::<serde::de::IgnoredAny>(index).is_ok());
    }
    assert!(args.parse::<Vec<Value>>().is_err());
    let msg = ser_msg(Args::from_serialize(&args));
    assert!(msg.contains("attachment 1"), "{msg}");
    // A `_placeholder` that is not `true` marks an ordinary object.
    let plain = Args::from_wire(vec![json!({"_placeholder": false, "num": 0})], vec![]);
    assert_eq!(plain.get::<Value>(0).unwrap(), plain.values()[0]);
}

/// Every combination of a few shapes and attachment counts: nothing may panic.
#[test]
fn arbitrary_wire_values_never_panic() {
    let shapes = [
        Value::Null,
        json!(1),
        json!(-1.5),
        json!("s"),
        ph(0),
        ph(3),
        json!({"_placeholder": true, "num": null}),
        json!([ph(0), {"a": ph(1)}]),
        json!({"Data": ph(0)}),
        json!({"Pair": ["x", ph(1)]}),
        json!({"n": 1, "s": "x", "data": ph(0)}),
    ];
    let attachments = [b("a"), b("bb")];
    for n in 0..=attachments.len() {
        for shape in &shapes {
            let args = Args::from_wire(vec![shape.clone()], attachments[..n].to_vec());
            let _ = args.get::<Value>(0);
            let _ = args.get::<Bytes>(0);
            let _ = args.get::<Kind>(0);
            let _ = args.get::<File>(0);
            let _ = args.get::<Vec<Option<Bytes>>>(0);
            let _ = args.get::<HashMap<String, Bytes>>(0);
            let _ = args.get::<(String, Bytes)>(0);
            let _ = args.parse::<(Value,)>();
            let _ = args.binary(0);
            let _ = Args::from_serialize(&args);
        }
    }
}

// ---- Serialize for Args and push ----

#[test]
fn serialize_for_args_round_trips() {
    let original =
        Args::from_serialize(&("ev", json!({"a": [1, 2]}), b("x"), vec![Some(b("y")), None]))
            .unwrap();
    let again = Args::from_serialize(&original).unwrap();
    assert_eq!(again, original);
    assert_eq!(Args::from_serialize(&Args::new()).unwrap(), Args::new());

    // Pushed as one argument, the list becomes an array with renumbered placeholders.
    let mut outer = Args::from_serialize(&b("first")).unwrap();
    outer.push(&original).unwrap();
    assert_eq!(
        outer.values()[1],
        json!(["ev", {"a": [1, 2]}, ph(1), [ph(2), null]])
    );

    // Plain JSON serialisers see bytes as number arrays.
    assert_eq!(
        serde_json::to_value(&original).unwrap(),
        json!(["ev", {"a": [1, 2]}, [120], [[121], null]])
    );
}

#[test]
fn push_renumbers_after_existing_attachments() {
    let mut args = Args::from_serialize(&(b("a"), b("b"))).unwrap();
    args.push(&json!(null)).unwrap();
    args.push(&(b("c"), vec![b("d")])).unwrap();
    assert_eq!(
        args.values(),
        &[ph(0), ph(1), Value::Null, json!([ph(2), [ph(3)]])]
    );
    assert_eq!(args.attachments(), &[b("a"), b("b"), b("c"), b("d")]);
    assert_eq!(
        args.get::<(Bytes, Vec<Bytes>)>(3).unwrap(),
        (b("c"), vec![b("d")])
    );

    // A failed push leaves the arguments as they were.
    let before = args.clone();
    struct FailsAfterBytes;
    impl Serialize for FailsAfterBytes {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let mut seq = serializer.serialize_seq(None)?;
            seq.serialize_element(&b("orphan"))?;
            seq.serialize_element(&f64::NAN)?;
            Err(serde::ser::Error::custom("late failure"))
        }
    }
    let msg = ser_msg(args.push(&FailsAfterBytes));
    assert!(msg.contains("late failure"), "{msg}");
    assert_eq!(args, before);
}
