//! The JSON hub protocol's serializer: serde_json's output, byte for byte, with its
//! strings written faster.
//!
//! serde_json looks up every byte of a string in its escape table, about nine
//! instructions a byte; for a hub method that returns a kilobyte of text that was
//! more than the rest of the call's work. It has no hook for that loop, so this
//! serializer writes the JSON structure and the strings itself (a string without
//! bytes to escape, the common case, is found sixteen bytes at a time and copied
//! whole) and hands everything else to serde_json: numbers, bytes, map keys and
//! serde_json's own values (`RawValue`). The tests compare the two writers' output.

use bytes::{BufMut, BytesMut};
use serde::ser::{self, Serialize, SerializeMap as _};
use serde_json::Error;

/// Writes `value` into `out` as `serde_json::to_writer` would.
pub(super) fn write<T: Serialize + ?Sized>(out: &mut BytesMut, value: &T) -> Result<(), Error> {
    value.serialize(Writer { out })
}

/// The prefix of the struct names serde_json gives its own values (`RawValue`, and
/// `Number` with `arbitrary_precision`); serde_json writes those itself.
const SERDE_JSON_PRIVATE: &str = "$serde_json::private::";

struct Writer<'a> {
    out: &'a mut BytesMut,
}

/// Runs one of serde_json's serializer methods on `out`: serde_json's serializer
/// is a writer and a zero-sized formatter, so making one per value costs nothing.
fn delegate(
    out: &mut BytesMut,
    write: impl FnOnce(
        &mut serde_json::Serializer<bytes::buf::Writer<&mut BytesMut>>,
    ) -> Result<(), Error>,
) -> Result<(), Error> {
    write(&mut serde_json::Serializer::new(out.writer()))
}

/// Does this byte have to be escaped in a JSON string (as serde_json escapes)?
pub(super) fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The position of the first byte to escape.
fn escape_position(bytes: &[u8]) -> Option<usize> {
    const LANES: usize = 16;
    let mut chunks = bytes.chunks_exact(LANES);
    let mut offset = 0;
    for chunk in &mut chunks {
        let lanes: &[u8; LANES] = chunk.try_into().expect("chunks_exact gives whole chunks");
        // No early exit inside a chunk, so that the compiler compares it in one
        // vector operation.
        if lanes
            .iter()
            .fold(false, |any, &byte| any | needs_escape(byte))
        {
            return lanes
                .iter()
                .position(|&byte| needs_escape(byte))
                .map(|at| offset + at);
        }
        offset += LANES;
    }
    let mut words = chunks.remainder().chunks_exact(8);
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("chunks_exact gives whole words"));
        if let Some(at) = escape_in_word(word) {
            return Some(offset + at);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&byte| needs_escape(byte))
        .map(|at| offset + at)
}

/// The first byte to escape in eight bytes read little-endian, found with word
/// arithmetic: a byte below 0x20, or equal to `"` or `\`, sets its high bit in
/// `found`. Bits above the first such byte may be wrong; only the first is read.
pub(super) fn escape_in_word(word: u64) -> Option<usize> {
    const ONES: u64 = u64::MAX / 0xff;
    const HIGH: u64 = ONES << 7;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    let found = (below_space | quote | backslash) & HIGH;
    (found != 0).then(|| found.trailing_zeros() as usize / 8)
}

/// Writes `text` as a JSON string, escaped as serde_json escapes: the two-character
/// escapes where JSON has one, `\u00xx` (lower-case hex) for other control
/// characters, everything else as it is.
pub(super) fn write_str(out: &mut BytesMut, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rest = text.as_bytes();
    out.reserve(rest.len() + 2);
    out.put_u8(b'"');
    while let Some(at) = escape_position(rest) {
        out.put_slice(&rest[..at]);
        let byte = rest[at];
        match byte {
            b'"' => out.put_slice(b"\\\""),
            b'\\' => out.put_slice(b"\\\\"),
            0x08 => out.put_slice(b"\\b"),
            0x0c => out.put_slice(b"\\f"),
            b'\n' => out.put_slice(b"\\n"),
            b'\r' => out.put_slice(b"\\r"),
            b'\t' => out.put_slice(b"\\t"),
            _ => out.put_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
        rest = &rest[at + 1..];
    }
    out.put_slice(rest);
    out.put_u8(b'"');
}

/// A map key, written by serde_json (which turns numbers, booleans and unit
/// variants into strings and refuses other keys, with its own error): serde_json
/// writes a map's `{` and then the key, and the `{` is taken out again.
fn write_key<T: Serialize + ?Sized>(out: &mut BytesMut, key: &T) -> Result<(), Error> {
    let start = out.len();
    delegate(out, |serializer| {
        let mut map = ser::Serializer::serialize_map(serializer, None)?;
        map.serialize_key(key)
    })?;
    out.copy_within(start + 1.., start);
    out.truncate(out.len() - 1);
    Ok(())
}

/// An array or object being written: whether a comma comes before the next element,
/// and what closes it.
struct Compound<'a> {
    out: &'a mut BytesMut,
    first: bool,
    close: &'static [u8],
}

impl<'a> Compound<'a> {
    fn open(out: &'a mut BytesMut, open: &[u8], close: &'static [u8]) -> Self {
        out.put_slice(open);
        Compound {
            out,
            first: true,
            close,
        }
    }

    /// An enum variant's content: `{"variant"`, then `open` … `close`.
    fn variant(out: &'a mut BytesMut, variant: &str, open: &[u8], close: &'static [u8]) -> Self {
        out.put_u8(b'{');
        write_str(out, variant);
        Compound::open(out, open, close)
    }

    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.out.put_u8(b',');
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.comma();
        value.serialize(Writer { out: self.out })
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        self.comma();
        write_str(self.out, key);
        self.out.put_u8(b':');
        value.serialize(Writer { out: self.out })
    }

    fn close(self) -> Result<(), Error> {
        self.out.put_slice(self.close);
        Ok(())
    }
}

/// A struct of serde_json's own (a `RawValue`): each of its fields is written by
/// serde_json, inside a struct of the same name.
struct Private<'a> {
    out: &'a mut BytesMut,
    name: &'static str,
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Structure<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.put_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        delegate(self.out, |s| ser::Serializer::serialize_i8(s, v))
    }

    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        delegate(self.out, |s| ser::Serializer::serialize_i16(s, v))
    }

    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        delegate(self.out, |s| ser::Serializer::serialize_i32(s, v))
    }

    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        delegate(self.out, |s| ser::Serializer::serialize_i64(s, v))
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        delegate(self.out, |s| ser::Serializer::serialize_i128(s, v))
    }

    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        delegate(self.out, |s| ser::Serializer::serialize_u8(s, v))
    }

    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        delegate(self.out, |s| ser::Serializer::serialize_u16(s, v))
    }

    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        delegate(self.out, |s| ser::Serializer::serialize_u32(s, v))
    }

    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        delegate(self.out, |s| ser::Serializer::serialize_u64(s, v))
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        delegate(self.out, |s| ser::Serializer::serialize_u128(s, v))
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        delegate(self.out, |s| ser::Serializer::serialize_f32(s, v))
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        delegate(self.out, |s| ser::Serializer::serialize_f64(s, v))
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        delegate(self.out, |s| ser::Serializer::serialize_bytes(s, v))
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.out.put_slice(b"null");
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let mut object = Compound::open(self.out, b"{", b"}");
        object.field(variant, value)?;
        object.close()
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(Compound::open(self.out, b"[", b"]"))
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        Ok(Compound::variant(self.out, variant, b":[", b"]}"))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(Compound::open(self.out, b"{", b"}"))
    }

    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Structure<'a>, Error> {
        Ok(if name.starts_with(SERDE_JSON_PRIVATE) {
            Structure::Private(Private {
                out: self.out,
                name,
            })
        } else {
            Structure::Object(Compound::open(self.out, b"{", b"}"))
        })
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        Ok(Compound::variant(self.out, variant, b":{", b"}}"))
    }
}

/// The array-like compounds: elements one after another.
macro_rules! array {
    ($($serializer:ident::$method:ident),*) => {$(
        impl ser::$serializer for Compound<'_> {
            type Ok = ();
            type Error = Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }

            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    )*};
}

array!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.comma();
        write_key(self.out, key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.out.put_u8(b':');
        value.serialize(Writer { out: self.out })
    }

    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }

    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// A struct: an object, or one of serde_json's own values.
enum Structure<'a> {
    Object(Compound<'a>),
    Private(Private<'a>),
}

impl ser::SerializeStruct for Structure<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        match self {
            Structure::Object(object) => object.field(key, value),
            Structure::Private(private) => delegate(private.out, |serializer| {
                let mut private = ser::Serializer::serialize_struct(serializer, private.name, 1)?;
                private.serialize_field(key, value)?;
                ser::SerializeStruct::end(private)
            }),
        }
    }

    fn end(self) -> Result<(), Error> {
        match self {
            Structure::Object(object) => object.close(),
            Structure::Private(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::Serialize;
    use serde_json::json;
    use serde_json::value::RawValue;

    use super::*;

    /// Both writers' output, or both errors' text.
    fn same<T: Serialize + ?Sized>(value: &T) {
        let mut out = BytesMut::new();
        let ours = write(&mut out, value).map(|()| String::from_utf8(out.to_vec()).unwrap());
        let theirs = serde_json::to_string(value);
        match (ours, theirs) {
            (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs),
            (Err(ours), Err(theirs)) => assert_eq!(ours.to_string(), theirs.to_string()),
            (ours, theirs) => panic!("ours {ours:?}, serde_json's {theirs:?}"),
        }
    }

    #[test]
    fn every_ascii_character_is_escaped_as_serde_json_escapes_it() {
        for byte in 0..=0x7f_u8 {
            let c = char::from(byte);
            same(&c);
            same(&format!("{c}"));
            // At each place: in a vector chunk, in a word, in the last bytes.
            for at in [0, 1, 7, 15, 16, 17, 31, 32, 35, 39, 40] {
                let mut text = "x".repeat(41);
                text.insert(at, c);
                same(&text);
            }
        }
    }

    #[test]
    fn strings_of_every_length_and_shape() {
        for len in 0..70 {
            same(&"a".repeat(len));
            same(&"é".repeat(len));
            same(&"\"\\\n".repeat(len));
            same(&"ab\u{1}".repeat(len));
        }
        same("\u{7f}\u{80}\u{ffff}\u{10ffff} 😀 ∑ \u{2028}\u{2029}");
        same(&"x".repeat(100_000));
    }

    #[test]
    fn random_strings() {
        // A fixed sequence (xorshift), weighted toward characters that are escaped.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5_000 {
            let len = (next() % 80) as usize;
            let text: String = (0..len)
                .map(|_| match next() % 8 {
                    0 => char::from((next() % 0x20) as u8),
                    1 => ['"', '\\', '/', '\u{7f}'][(next() % 4) as usize],
                    2 => char::from_u32((next() % 0x11_0000) as u32).unwrap_or('\u{fffd}'),
                    _ => char::from(b' ' + (next() % 95) as u8),
                })
                .collect();
            same(&text);
        }
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Newtype(&'static str);

    #[derive(Serialize)]
    struct Tuple(i8, &'static str);

    #[derive(Serialize)]
    struct Empty {}

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Record {
        user_name: &'static str,
        #[serde(rename = "quote\"d")]
        quoted: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        optional: Option<f64>,
        nested: Vec<Shape>,
        #[serde(flatten)]
        flattened: BTreeMap<String, i32>,
    }

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
    enum Shape {
        Unit,
        Newtype(u32),
        Tuple(i8, i8),
        Struct { w: u16, h: u16 },
    }

    #[derive(Serialize)]
    #[serde(tag = "kind")]
    enum Tagged {
        Circle { radius: f64 },
        Empty,
    }

    #[derive(Serialize)]
    #[serde(tag = "t", content = "c")]
    enum Adjacent {
        A(String),
    }

    /// Writes bytes with `serialize_bytes`.
    struct Blob(&'static [u8]);

    impl Serialize for Blob {
        fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    /// Writes its text with `collect_str`.
    struct Shown(&'static str);

    impl Serialize for Shown {
        fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(self.0)
        }
    }

    #[test]
    fn every_kind_of_value() {
        same(&());
        same(&Unit);
        same(&Newtype("n\"t"));
        same(&Tuple(-1, "t"));
        same(&Empty {});
        same(&(true, false, 'x', '\n'));
        same(&(i8::MIN, i16::MIN, i32::MIN, i64::MIN, i128::MIN));
        same(&(u8::MAX, u16::MAX, u32::MAX, u64::MAX, u128::MAX));
        same(&(
            0.1_f32,
            1e300_f64,
            -0.0_f64,
            f64::NAN,
            f64::INFINITY,
            f32::NEG_INFINITY,
        ));
        same(&Blob(b"\x00\x01\xff"));
        same(&Blob(b""));
        same(&Shown("sh\"own"));
        same(&(None::<u8>, Some("s"), Some(Some(1))));
        same(&Vec::<u8>::new());
        same(&[
            Shape::Unit,
            Shape::Newtype(7),
            Shape::Tuple(1, -2),
            Shape::Struct { w: 3, h: 4 },
        ]);
        same(&[Tagged::Circle { radius: 1.5 }, Tagged::Empty]);
        same(&Adjacent::A("a".into()));
        same(&Record {
            user_name: "ann",
            quoted: 1,
            skipped: None,
            optional: None,
            nested: vec![Shape::Unit],
            flattened: BTreeMap::from([("x\ty".into(), 1), ("z".into(), 2)]),
        });
        same(&json!({"a": [1, 2.5, null, "s", {"b": {}}, []], "\u{1}": true}));
    }

    #[test]
    fn map_keys_as_serde_json_writes_them_or_refuses_them() {
        same(&BTreeMap::<String, u8>::new());
        same(&BTreeMap::from([("k\"\\\u{0}", 1)]));
        same(&BTreeMap::from([(-3_i64, "a"), (4, "b")]));
        same(&BTreeMap::from([(u128::MAX, ())]));
        same(&BTreeMap::from([(true, 1), (false, 2)]));
        same(&BTreeMap::from([('c', 1)]));
        same(&BTreeMap::from([(Shape::Unit, 1)]));
        same(&HashMap::from([(1.5_f64.to_bits(), 1)]));
        // Keys serde_json refuses, with its error.
        same(&BTreeMap::from([(Shape::Newtype(1), 1)]));
        same(&BTreeMap::from([((1, 2), 1)]));
        same(&BTreeMap::from([(vec![1], 1)]));
        // A map nested in a map's value.
        same(&BTreeMap::from([(
            "outer",
            BTreeMap::from([(1, BTreeMap::from([("inner", [1])]))]),
        )]));
    }

    #[test]
    fn serde_json_values_are_written_by_serde_json() {
        let raw = RawValue::from_string(r#"{ "spaced" : [1, "\u0041"] }"#.into()).unwrap();
        same(&raw);
        same(&vec![raw.clone(), raw.clone()]);
        same(&BTreeMap::from([("raw", raw)]));
        // The name that makes serde_json write a RawValue verbatim is serde_json's;
        // if it changes, this test fails rather than the raw text being quoted.
        let mut out = BytesMut::new();
        write(&mut out, &RawValue::from_string("[ 1 ]".into()).unwrap()).unwrap();
        assert_eq!(&out[..], b"[ 1 ]");
    }

    #[test]
    fn errors_are_serde_jsons() {
        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("no"))
            }
        }
        same(&Fails);
        same(&[Some(Fails)]);
    }
}
