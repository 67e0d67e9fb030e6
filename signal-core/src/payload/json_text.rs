//! One JSON value kept as its text.

use std::fmt;

use serde_json::value::RawValue;

/// The text of exactly one JSON value, checked when it was made.
///
/// What a JSON client sent as an argument, a result or a stream item, kept as it
/// arrived until a hub method decodes it. It is serde_json's [`RawValue`] without
/// the obligation to make one: a raw value can only be made by serde_json's
/// parser, which costs more than two instructions a byte for a long string the
/// JSON hub protocol's reader has already scanned.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JsonText(Box<str>);

impl JsonText {
    /// Checks that `text` is one JSON value (surrounding whitespace is dropped).
    pub fn new(text: impl Into<String>) -> Result<JsonText, serde_json::Error> {
        Ok(RawValue::from_string(text.into())?.into())
    }

    /// Text the caller has checked to be exactly one JSON value.
    pub(crate) fn checked(text: impl Into<Box<str>>) -> JsonText {
        JsonText(text.into())
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }

    /// The same text as serde_json's raw value (checked again).
    pub fn to_raw_value(&self) -> Box<RawValue> {
        RawValue::from_string(self.0.to_string()).expect("JSON text is checked when it is made")
    }
}

impl From<Box<RawValue>> for JsonText {
    fn from(raw: Box<RawValue>) -> Self {
        JsonText(raw.into())
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_its_text() {
        assert_eq!(JsonText::new(" [1, 2] ").unwrap().get(), "[1, 2]");
        assert_eq!(
            JsonText::new("[1,").unwrap_err().to_string(),
            "EOF while parsing a value at line 1 column 3"
        );
        let raw = RawValue::from_string("{\"a\":1}".to_owned()).unwrap();
        assert_eq!(JsonText::from(raw).to_raw_value().get(), "{\"a\":1}");
    }
}
