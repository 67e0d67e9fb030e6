//! Decoding a JSON payload: serde_json's deserializer, with a string argument
//! taken straight from the raw text.
//!
//! A JSON argument was already scanned once, as a whole, when the message was
//! parsed, and its text is valid JSON. serde_json scanning it again for a `String`
//! parameter cost as much as that first scan; a string literal without escapes is
//! its own content, which one search for a backslash confirms.

use serde::de::{Deserializer, Visitor};
use serde_json::Error;

/// The text of one JSON value (a `RawValue`'s), deserialized as `serde_json::from_str`
/// would, with the same results and errors.
pub(super) struct RawJson<'de>(pub(super) &'de str);

impl<'de> RawJson<'de> {
    /// The content of a string literal without escapes: the text between the quotes.
    fn plain_string(&self) -> Option<&'de str> {
        let inner = self.0.strip_prefix('"')?.strip_suffix('"')?;
        // Valid JSON, so the only quotes inside are escaped ones: no backslash, no quote.
        memchr::memchr(b'\\', inner.as_bytes())
            .is_none()
            .then_some(inner)
    }

    fn delegate<T>(
        self,
        deserialize: impl FnOnce(
            &mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
        ) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut deserializer = serde_json::Deserializer::from_str(self.0);
        let value = deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(value)
    }
}

macro_rules! delegate {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Error> {
            self.delegate(|deserializer| deserializer.$method($($arg,)* visitor))
        }
    )*};
}

impl<'de> Deserializer<'de> for RawJson<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.plain_string() {
            Some(text) => visitor.visit_borrowed_str(text),
            None => self.delegate(|deserializer| deserializer.deserialize_any(visitor)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.plain_string() {
            Some(text) => visitor.visit_borrowed_str(text),
            None => self.delegate(|deserializer| deserializer.deserialize_str(visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.plain_string() {
            Some(text) => visitor.visit_borrowed_str(text),
            None => self.delegate(|deserializer| deserializer.deserialize_string(visitor)),
        }
    }

    delegate! {
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    use serde::Deserialize;
    use serde::de::DeserializeOwned;
    use serde_json::value::RawValue;

    use super::*;

    /// Both deserializers' value, or both errors' text.
    fn same<T: DeserializeOwned + PartialEq + Debug>(json: &str) {
        let raw = RawValue::from_string(json.to_owned()).unwrap();
        let ours = T::deserialize(RawJson(raw.get()));
        let theirs = serde_json::from_str::<T>(raw.get());
        match (ours, theirs) {
            (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "{json}"),
            (Err(ours), Err(theirs)) => assert_eq!(ours.to_string(), theirs.to_string(), "{json}"),
            (ours, theirs) => panic!("{json}: ours {ours:?}, serde_json's {theirs:?}"),
        }
    }

    #[derive(Debug, PartialEq, Deserialize)]
    enum Shape {
        Unit,
        Newtype(u32),
        Struct { w: u16 },
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(untagged)]
    enum Untagged {
        Number(i64),
        Text(String),
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Record {
        name: String,
        tags: Vec<String>,
    }

    #[test]
    fn strings_as_serde_json_reads_them() {
        for json in [
            r#""""#,
            r#""plain""#,
            r#""é 😀 \u0041""#,
            r#""a\"b""#,
            r#""back\\slash""#,
            r#""\n\t\u0000""#,
            r#""\ud83d\ude00""#,
            r#""\ud800""#,
            " \"spaced\" ",
            "12",
            "null",
            "[\"a\"]",
        ] {
            same::<String>(json);
            same::<Option<String>>(json);
            same::<char>(json);
            same::<serde_json::Value>(json);
            same::<Untagged>(json);
            same::<Shape>(json);
        }
    }

    #[test]
    fn other_values_as_serde_json_reads_them() {
        same::<Record>(r#"{"name":"n","tags":["a","b\"c"]}"#);
        same::<Record>(r#"{"name":1}"#);
        same::<Shape>(r#"{"Newtype":7}"#);
        same::<Shape>(r#"{"Struct":{"w":-1}}"#);
        same::<BTreeMap<String, i32>>(r#"{"x":1,"y":2}"#);
        same::<(u8, bool, f64)>("[1,true,2.5]");
        same::<u8>("256");
        same::<i128>("-170141183460469231731687303715884105728");
        same::<()>("null");
        same::<Vec<u8>>("[1,2,3]");
        same::<Option<u8>>("null");
    }

    #[test]
    fn raw_values_keep_their_text() {
        for json in [r#"{ "kept" : "as is" }"#, r#""text""#] {
            let raw = RawValue::from_string(json.to_owned()).unwrap();
            let ours = Box::<RawValue>::deserialize(RawJson(raw.get())).unwrap();
            assert_eq!(ours.get(), json);
        }
    }
}
