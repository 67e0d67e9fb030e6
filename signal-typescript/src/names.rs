//! Identifiers: what TypeScript accepts as a name, and how Rust names become
//! TypeScript ones.

/// Words that cannot name a binding in a strict-mode ES module (or that would
/// be confusing there), so a parameter of that name gets a `_` suffix.
const RESERVED: &[&str] = &[
    "arguments",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "eval",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "implements",
    "import",
    "in",
    "instanceof",
    "interface",
    "let",
    "new",
    "null",
    "package",
    "private",
    "protected",
    "public",
    "return",
    "static",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "undefined",
    "var",
    "void",
    "while",
    "with",
    "yield",
];

/// Names that cannot name a type: TypeScript's predefined types, plus the
/// globals the generated code itself uses.
const RESERVED_TYPES: &[&str] = &[
    "any",
    "bigint",
    "boolean",
    "never",
    "number",
    "object",
    "string",
    "symbol",
    "unknown",
    "Promise",
    "TypeError",
];

/// Whether `name` is an identifier (ASCII letters, digits, `_`, `$`; no
/// leading digit).
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// Whether `name` is a reserved word of strict-mode JavaScript.
pub(crate) fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name)
}

/// Whether `name` may name a generated type (interface or alias).
pub(crate) fn is_type_name(name: &str) -> bool {
    is_identifier(name) && !is_reserved(name) && !RESERVED_TYPES.contains(&name)
}

/// A property key or method name: bare when it is an identifier, a JSON
/// string literal otherwise.
pub(crate) fn property_key(name: &str) -> String {
    if is_identifier(name) {
        name.to_owned()
    } else {
        string_literal(name)
    }
}

/// `value` as a double-quoted string literal (JSON escapes are valid in
/// TypeScript and JavaScript).
pub(crate) fn string_literal(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

/// The name a `$defs` entry gets: as given when it is an identifier, else with
/// every run of other characters replaced by `_`.
pub(crate) fn type_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A Rust parameter name (snake case) as a TypeScript parameter name (camel
/// case), with a `_` suffix when it would be a reserved word or is `taken`.
pub(crate) fn parameter_name(rust: &str, taken: &[String]) -> String {
    let mut out = String::with_capacity(rust.len());
    let mut upper = false;
    for c in rust.trim_start_matches("r#").chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
            if upper {
                out.extend(c.to_uppercase());
            } else {
                out.push(c);
            }
            upper = false;
        } else {
            out.push('_');
            upper = false;
        }
    }
    if upper {
        out.push('_');
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    while is_reserved(&out) || taken.contains(&out) {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("userName"));
        assert!(is_identifier("_x$1"));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier("the-text"));
        assert!(!is_identifier(""));
        assert_eq!(property_key("the-text"), "\"the-text\"");
        assert_eq!(property_key("default"), "default");
    }

    #[test]
    fn type_names() {
        assert_eq!(type_name("Message"), "Message");
        assert_eq!(type_name("my-type"), "my_type");
        assert_eq!(type_name("Generic<i32>"), "Generic_i32_");
        assert_eq!(type_name("1st"), "_1st");
        assert!(!is_type_name("string"));
        assert!(!is_type_name("Promise"));
        assert!(is_type_name("Point"));
    }

    #[test]
    fn parameter_names() {
        assert_eq!(parameter_name("room_name", &[]), "roomName");
        assert_eq!(parameter_name("text", &[]), "text");
        assert_eq!(parameter_name("_unused", &[]), "_unused");
        assert_eq!(parameter_name("r#type", &[]), "type");
        assert_eq!(parameter_name("new", &[]), "new_");
        assert_eq!(
            parameter_name("handlers", &["handlers".to_owned()]),
            "handlers_"
        );
        assert_eq!(parameter_name("x2_y", &[]), "x2Y");
        assert_eq!(parameter_name("trailing_", &[]), "trailing_");
    }
}
