//! Wire names: the lowerCamelCase of a Rust method name.

/// `send_to_caller` → `sendToCaller`; a raw identifier loses its `r#`.
pub(crate) fn lower_camel(ident: &str) -> String {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    let mut out = String::with_capacity(ident.len());
    let mut upper_next = false;
    for ch in ident.chars() {
        if ch == '_' {
            upper_next = !out.is_empty();
        } else if out.is_empty() {
            out.extend(ch.to_lowercase());
        } else if upper_next {
            out.extend(ch.to_uppercase());
            upper_next = false;
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::lower_camel;

    #[test]
    fn snake_case_becomes_lower_camel_case() {
        assert_eq!(lower_camel("send_to_caller"), "sendToCaller");
        assert_eq!(lower_camel("join"), "join");
        assert_eq!(lower_camel("send_message"), "sendMessage");
        assert_eq!(lower_camel("get_2d_point"), "get2dPoint");
        assert_eq!(lower_camel("a_b_c"), "aBC");
    }

    #[test]
    fn odd_underscores_and_raw_identifiers() {
        assert_eq!(lower_camel("_private_thing"), "privateThing");
        assert_eq!(lower_camel("double__underscore"), "doubleUnderscore");
        assert_eq!(lower_camel("trailing_"), "trailing");
        assert_eq!(lower_camel("r#type"), "type");
        assert_eq!(lower_camel("r#match_all"), "matchAll");
    }

    #[test]
    fn the_first_letter_is_lower_case() {
        assert_eq!(lower_camel("Echo"), "echo");
        assert_eq!(lower_camel("already_camelCase"), "alreadyCamelCase");
    }
}
