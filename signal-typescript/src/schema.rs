//! JSON Schema (as schemars 1.x renders serde types, draft 2020-12) to
//! TypeScript types.
//!
//! Validation keywords (`format`, `minimum`, `maxLength`, `pattern`,
//! `uniqueItems`, …) and annotations (`default`, `examples`, `title`, …) have
//! no type-level meaning and are ignored; keywords that change the shape of a
//! value in ways a TypeScript type cannot say (`not`, `if`/`then`/`else`,
//! `dependentSchemas`, dynamic references) are errors.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::Error;
use crate::names;
use crate::ts::{Docs, Member, NEVER, Object, Property, Ty, UNKNOWN};

/// Keywords whose meaning no TypeScript type can carry.
const UNSUPPORTED: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "dependentSchemas",
    "$dynamicRef",
    "$recursiveRef",
];

/// Turns schemas into types, resolving `#/$defs/Name` to generated names.
pub(crate) struct Converter<'a> {
    /// `$defs` key → TypeScript name.
    pub(crate) names: &'a BTreeMap<String, String>,
}

/// Where a schema sits, for error messages.
struct At<'c> {
    context: &'c str,
    pointer: String,
}

impl At<'_> {
    fn child(&self, segment: &str) -> At<'_> {
        let escaped = segment.replace('~', "~0").replace('/', "~1");
        At {
            context: self.context,
            pointer: format!("{}/{escaped}", self.pointer),
        }
    }

    fn unsupported(&self, construct: String) -> Error {
        Error::UnsupportedSchema {
            context: self.context.to_owned(),
            pointer: self.pointer.clone(),
            construct,
        }
    }
}

/// The doc comment of a schema: its `description` and `deprecated`.
pub(crate) fn docs(schema: &Value) -> Docs {
    let text = schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut docs = Docs::new(text);
    docs.deprecated = schema.get("deprecated").and_then(Value::as_bool) == Some(true);
    docs
}

impl Converter<'_> {
    /// The type of the values `schema` accepts; `context` names what it
    /// describes, for errors.
    pub(crate) fn convert(&self, schema: &Value, context: &str) -> Result<Ty, Error> {
        self.schema(
            schema,
            &At {
                context,
                pointer: "#".to_owned(),
            },
        )
    }

    fn schema(&self, schema: &Value, at: &At<'_>) -> Result<Ty, Error> {
        match schema {
            Value::Bool(true) => Ok(UNKNOWN),
            Value::Bool(false) => Ok(NEVER),
            Value::Object(map) => self.object_schema(map, at),
            other => Err(at.unsupported(format!("a schema that is `{other}`"))),
        }
    }

    fn object_schema(&self, map: &Map<String, Value>, at: &At<'_>) -> Result<Ty, Error> {
        for keyword in UNSUPPORTED {
            if map.contains_key(*keyword) {
                return Err(at.unsupported(format!("`{keyword}`")));
            }
        }
        for keyword in ["unevaluatedProperties", "unevaluatedItems"] {
            match map.get(keyword) {
                None | Some(Value::Bool(false)) => {}
                Some(other) => {
                    return Err(at.unsupported(format!("`{keyword}: {other}`")));
                }
            }
        }

        let mut parts = Vec::new();
        if let Some(reference) = map.get("$ref") {
            parts.push(self.reference(reference, &at.child("$ref"))?);
        }
        if let Some(value) = map.get("const") {
            parts.push(literal(value));
        } else if let Some(values) = map.get("enum") {
            let Value::Array(values) = values else {
                return Err(at.unsupported(format!("`enum: {values}` (not an array)")));
            };
            parts.push(Ty::union_of(values.iter().map(literal).collect()));
        } else if let Some(own) = self.typed(map, at)? {
            parts.push(own);
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(list) = map.get(keyword) {
                let at = at.child(keyword);
                let Value::Array(list) = list else {
                    return Err(at.unsupported(format!("`{keyword}: {list}` (not an array)")));
                };
                let mut members = Vec::new();
                for (i, sub) in list.iter().enumerate() {
                    members.push(Member {
                        ty: self.schema(sub, &at.child(&i.to_string()))?,
                        docs: docs(sub),
                    });
                }
                parts.push(Ty::union(members));
            }
        }
        if let Some(list) = map.get("allOf") {
            let at = at.child("allOf");
            let Value::Array(list) = list else {
                return Err(at.unsupported(format!("`allOf: {list}` (not an array)")));
            };
            for (i, sub) in list.iter().enumerate() {
                parts.push(self.schema(sub, &at.child(&i.to_string()))?);
            }
        }
        Ok(Ty::intersection(parts))
    }

    fn reference(&self, reference: &Value, at: &At<'_>) -> Result<Ty, Error> {
        let Some(text) = reference.as_str() else {
            return Err(at.unsupported(format!("`$ref: {reference}` (not a string)")));
        };
        let Some(key) = text.strip_prefix("#/$defs/") else {
            return Err(at.unsupported(format!(
                "`$ref: \"{text}\"` (only references to `#/$defs/Name` are supported)"
            )));
        };
        let key = key.replace("~1", "/").replace("~0", "~");
        match self.names.get(&key) {
            Some(name) => Ok(Ty::Named(name.clone())),
            None => Err(Error::UnresolvedReference {
                context: at.context.to_owned(),
                pointer: at.pointer.clone(),
                reference: text.to_owned(),
            }),
        }
    }

    /// The type that `type` (or, without it, the object and array keywords)
    /// says; `None` when the schema says nothing of its own.
    fn typed(&self, map: &Map<String, Value>, at: &At<'_>) -> Result<Option<Ty>, Error> {
        let mut types: Vec<&str> = Vec::new();
        match map.get("type") {
            Some(Value::String(t)) => types.push(t),
            Some(Value::Array(list)) => {
                for t in list {
                    match t.as_str() {
                        Some(t) => types.push(t),
                        None => return Err(at.unsupported(format!("`type: {t}`"))),
                    }
                }
            }
            Some(other) => return Err(at.unsupported(format!("`type: {other}`"))),
            None => {
                let has = |keys: &[&str]| keys.iter().any(|k| map.contains_key(*k));
                if has(&["properties", "additionalProperties", "patternProperties"]) {
                    types.push("object");
                }
                if has(&["items", "prefixItems"]) {
                    types.push("array");
                }
                if types.is_empty() {
                    return Ok(None);
                }
            }
        }
        // With `$ref` or a combinator beside it, a bare `type: object` only
        // repeats what those say (internally tagged newtype variants).
        let combined = ["$ref", "anyOf", "oneOf", "allOf"]
            .iter()
            .any(|k| map.contains_key(*k));
        let mut members = Vec::new();
        for t in types {
            let ty = match t {
                "string" => Ty::Keyword("string"),
                "integer" | "number" => Ty::Keyword("number"),
                "boolean" => Ty::Keyword("boolean"),
                "null" => Ty::Keyword("null"),
                "array" => self.array(map, at)?,
                "object" => match self.object(map, at)? {
                    Some(object) => object,
                    None if combined => continue,
                    None => Ty::Object(Object {
                        properties: Vec::new(),
                        index: Some(Box::new(UNKNOWN)),
                    }),
                },
                other => return Err(at.unsupported(format!("`type: \"{other}\"`"))),
            };
            members.push(ty);
        }
        if members.is_empty() {
            return Ok(None);
        }
        Ok(Some(Ty::union_of(members)))
    }

    /// An object type; `None` for an object schema that constrains nothing.
    fn object(&self, map: &Map<String, Value>, at: &At<'_>) -> Result<Option<Ty>, Error> {
        let required: Vec<&str> = match map.get("required") {
            None => Vec::new(),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            Some(other) => return Err(at.unsupported(format!("`required: {other}`"))),
        };
        let mut properties = Vec::new();
        if let Some(props) = map.get("properties") {
            let Value::Object(props) = props else {
                return Err(at.unsupported(format!("`properties: {props}` (not an object)")));
            };
            let at = at.child("properties");
            // JSON objects are unordered: sort, so the output is the same
            // whether or not serde_json preserves insertion order.
            let sorted: BTreeMap<&String, &Value> = props.iter().collect();
            for (key, sub) in sorted {
                let ty = self.schema(sub, &at.child(key))?;
                // Fields skipped in one direction (`readOnly`/`writeOnly`) are
                // absent from the other.
                let one_way = ["readOnly", "writeOnly"]
                    .iter()
                    .any(|k| sub.get(*k).and_then(Value::as_bool) == Some(true));
                properties.push(Property {
                    key: names::property_key(key),
                    optional: one_way || !required.contains(&key.as_str()),
                    ty,
                    docs: docs(sub),
                });
            }
        }

        let mut index = Vec::new();
        match map.get("additionalProperties") {
            None => {}
            Some(Value::Bool(false)) => {}
            Some(sub) => index.push(self.schema(sub, &at.child("additionalProperties"))?),
        }
        if let Some(patterns) = map.get("patternProperties") {
            let Value::Object(patterns) = patterns else {
                return Err(
                    at.unsupported(format!("`patternProperties: {patterns}` (not an object)"))
                );
            };
            let at = at.child("patternProperties");
            let sorted: BTreeMap<&String, &Value> = patterns.iter().collect();
            for (pattern, sub) in sorted {
                index.push(self.schema(sub, &at.child(pattern))?);
            }
        }
        let constrained = map.contains_key("properties")
            || map.contains_key("patternProperties")
            || map.contains_key("additionalProperties");
        if !constrained {
            return Ok(None);
        }
        let index = if index.is_empty() {
            None
        } else {
            // Every property must fit the index signature.
            let mut all = index;
            for p in &properties {
                all.push(p.ty.clone());
                if p.optional {
                    all.push(Ty::Keyword("undefined"));
                }
            }
            Some(Box::new(Ty::union_of(all)))
        };
        Ok(Some(Ty::Object(Object { properties, index })))
    }

    fn array(&self, map: &Map<String, Value>, at: &At<'_>) -> Result<Ty, Error> {
        let prefix = match (map.get("prefixItems"), map.get("items")) {
            (Some(Value::Array(prefix)), _) => Some((prefix, "prefixItems")),
            (Some(other), _) => {
                return Err(at.unsupported(format!("`prefixItems: {other}` (not an array)")));
            }
            // Draft 7 spelling of a tuple.
            (None, Some(Value::Array(items))) => Some((items, "items")),
            (None, _) => None,
        };
        let Some((prefix, keyword)) = prefix else {
            let element = match map.get("items") {
                Some(items) => self.schema(items, &at.child("items"))?,
                None => UNKNOWN,
            };
            return Ok(Ty::Array(Box::new(element)));
        };
        let at_prefix = at.child(keyword);
        let mut elements = Vec::new();
        for (i, sub) in prefix.iter().enumerate() {
            elements.push(self.schema(sub, &at_prefix.child(&i.to_string()))?);
        }
        let count = |k: &str| map.get(k).and_then(Value::as_u64).map(|n| n as usize);
        let required = count("minItems").unwrap_or(0).min(elements.len());
        let additional = if keyword == "prefixItems" {
            map.get("items")
        } else {
            map.get("additionalItems")
        };
        let rest = match additional {
            Some(Value::Bool(false)) => None,
            Some(sub) => Some(self.schema(sub, &at.child("items"))?),
            None if count("maxItems").is_some_and(|max| max <= elements.len()) => None,
            None => Some(UNKNOWN),
        };
        Ok(Ty::Tuple {
            elements,
            required,
            rest: rest.filter(|r| *r != NEVER).map(Box::new),
        })
    }
}

/// The literal type of a JSON value.
fn literal(value: &Value) -> Ty {
    match value {
        Value::Null => Ty::Keyword("null"),
        Value::Bool(b) => Ty::Literal(b.to_string()),
        Value::Number(n) => Ty::Literal(n.to_string()),
        Value::String(s) => Ty::Literal(names::string_literal(s)),
        Value::Array(items) => Ty::Tuple {
            elements: items.iter().map(literal).collect(),
            required: items.len(),
            rest: None,
        },
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            Ty::Object(Object {
                properties: sorted
                    .into_iter()
                    .map(|(k, v)| Property {
                        key: names::property_key(k),
                        optional: false,
                        ty: literal(v),
                        docs: Docs::default(),
                    })
                    .collect(),
                index: None,
            })
        }
    }
}
