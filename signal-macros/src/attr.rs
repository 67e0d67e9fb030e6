//! Parsing of the macros' own arguments: `#[signal::hub(client = X)]`,
//! `#[signal::client]` and `#[signal::method(name = "…")]`.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, Lit, Meta, Token};

use crate::ctxt::Ctxt;

/// Which macro is expanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// `#[signal::hub]`: what clients call on the server.
    Hub,
    /// `#[signal::client]`: what the server calls on clients.
    Client,
}

impl Side {
    /// The attribute, as users write it.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Side::Hub => "#[signal::hub]",
            Side::Client => "#[signal::client]",
        }
    }

    /// What its methods are called in messages.
    pub(crate) fn methods(self) -> &'static str {
        match self {
            Side::Hub => "hub methods",
            Side::Client => "client methods",
        }
    }
}

/// The arguments of `#[signal::hub]` / `#[signal::client]`.
#[derive(Default)]
pub(crate) struct ContractArgs {
    /// `client = path::To::Trait`.
    pub(crate) client: Option<syn::Path>,
    /// False when the arguments could not be understood well enough to render
    /// dispatch code that agrees with the user's trait.
    pub(crate) usable: bool,
}

fn expected_list(allowed: &[&str]) -> String {
    allowed
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_argument(cx: &Ctxt, path: &syn::Path, allowed: &[&str], what: &str) {
    let name = path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| quote::quote!(#path).to_string().replace(' ', ""));
    let message = if allowed.is_empty() {
        format!("unknown argument `{name}`: {what} takes no arguments")
    } else {
        format!(
            "unknown argument `{name}`, expected one of: {}",
            expected_list(allowed)
        )
    };
    cx.error_spanned_by(path, message);
}

/// Parses the arguments of the trait attribute.
pub(crate) fn contract_args(cx: &Ctxt, side: Side, args: TokenStream) -> ContractArgs {
    let mut parsed = ContractArgs {
        client: None,
        usable: true,
    };
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(metas) => metas,
        Err(e) => {
            cx.syn_error(e);
            parsed.usable = false;
            return parsed;
        }
    };
    let allowed: &[&str] = match side {
        Side::Hub => &["client"],
        Side::Client => &[],
    };
    for meta in metas {
        let path = meta.path();
        if side == Side::Hub && path.is_ident("client") {
            if parsed.client.is_some() {
                cx.error_spanned_by(path, "duplicate argument `client`");
                continue;
            }
            match &meta {
                Meta::NameValue(nv) => match &nv.value {
                    Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => {
                        parsed.client = Some(p.path.clone());
                    }
                    other => {
                        cx.error_spanned_by(
                            other,
                            "expected the path of a `#[signal::client]` trait, as in `client = ChatClient`",
                        );
                        parsed.usable = false;
                    }
                },
                _ => {
                    cx.error_spanned_by(
                        &meta,
                        "expected `client = ChatClient`: the `#[signal::client]` trait this hub calls",
                    );
                    parsed.usable = false;
                }
            }
        } else {
            unknown_argument(cx, path, allowed, side.attribute());
        }
    }
    parsed
}

/// Whether `attr` is `#[signal::<name>]` (or `#[<name>]` after a `use`).
pub(crate) fn is_signal_attribute(attr: &Attribute, name: &str) -> bool {
    let segments: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    match segments.as_slice() {
        [only] => only == name,
        [crate_name, last] => crate_name == "signal" && last == name,
        _ => false,
    }
}

/// Whether `attr` is `#[signal::method]` (or `#[method]` after a `use`).
pub(crate) fn is_method_attribute(attr: &Attribute) -> bool {
    is_signal_attribute(attr, "method")
}

/// Whether `attr` is `#[signal::authorize]` (or `#[authorize]` after a `use`).
pub(crate) fn is_authorize_attribute(attr: &Attribute) -> bool {
    is_signal_attribute(attr, "authorize")
}

/// The `a = …, b = …` inside an attribute's parentheses; a parse error is
/// reported and gives `None`.
fn list_arguments(cx: &Ctxt, list: &syn::MetaList) -> Option<Punctuated<Meta, Token![,]>> {
    list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
        .map_err(|e| cx.syn_error(e))
        .ok()
}

/// The string literal of `name = "…"`.
fn string_value(meta: &Meta) -> Option<&syn::LitStr> {
    match meta {
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// What the `#[signal::authorize]` attributes among `attrs` require: `None`
/// without one, else the policies they name (none: an authenticated user).
pub(crate) fn authorize_args(cx: &Ctxt, attrs: &[Attribute]) -> Option<Vec<String>> {
    let mut policies: Option<Vec<String>> = None;
    for attr in attrs.iter().filter(|a| is_authorize_attribute(a)) {
        let required = policies.get_or_insert_with(Vec::new);
        let metas = match &attr.meta {
            Meta::Path(_) => continue,
            Meta::List(list) => match list_arguments(cx, list) {
                Some(metas) => metas,
                None => continue,
            },
            Meta::NameValue(_) => {
                cx.error_spanned_by(
                    attr,
                    "expected `#[signal::authorize]` or `#[signal::authorize(policy = \"…\")]`",
                );
                continue;
            }
        };
        for meta in metas {
            let path = meta.path();
            if !path.is_ident("policy") {
                unknown_argument(cx, path, &["policy"], "#[signal::authorize]");
                continue;
            }
            let Some(lit) = string_value(&meta) else {
                cx.error_spanned_by(
                    &meta,
                    "expected `policy = \"…\"`, the name of a policy registered with `Hub::policy`",
                );
                continue;
            };
            let policy = lit.value();
            if policy.trim().is_empty() {
                cx.error_spanned_by(lit, "a policy name must not be empty");
                continue;
            }
            if !required.contains(&policy) {
                required.push(policy);
            }
        }
    }
    policies
}

/// What `#[signal::method(…)]` says about one method.
#[derive(Default)]
pub(crate) struct MethodArgs {
    /// The wire name and the span of its literal.
    pub(crate) name: Option<(String, Span)>,
    /// The span of the attribute, when there is one.
    pub(crate) span: Option<Span>,
}

/// Reads the `#[signal::method]` attributes among `attrs`.
pub(crate) fn method_args(cx: &Ctxt, attrs: &[Attribute]) -> MethodArgs {
    let mut args = MethodArgs::default();
    for attr in attrs.iter().filter(|a| is_method_attribute(a)) {
        if args.span.is_some() {
            cx.error_spanned_by(attr, "duplicate `#[signal::method]` attribute");
            continue;
        }
        args.span = Some(attr.span());
        let metas = match &attr.meta {
            Meta::List(list) => match list_arguments(cx, list) {
                Some(metas) => metas,
                None => continue,
            },
            _ => {
                cx.error_spanned_by(
                    attr,
                    "expected `#[signal::method(name = \"…\")]`: the name clients call this method by",
                );
                continue;
            }
        };
        for meta in metas {
            let path = meta.path();
            if !path.is_ident("name") {
                unknown_argument(cx, path, &["name"], "#[signal::method]");
                continue;
            }
            let Some(lit) = string_value(&meta) else {
                cx.error_spanned_by(&meta, "expected `name = \"…\"`, a string literal");
                continue;
            };
            let name = lit.value();
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                cx.error_spanned_by(lit, "a method name must be non-empty and without spaces");
                continue;
            }
            if args.name.is_some() {
                cx.error_spanned_by(path, "duplicate argument `name`");
                continue;
            }
            args.name = Some((name, lit.span()));
        }
    }
    args
}

/// The doc comment among `attrs`, one leading space per line removed.
pub(crate) fn docs(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let Meta::NameValue(nv) = &attr.meta
            && let Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) = &nv.value
        {
            for line in s.value().lines() {
                lines.push(line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned());
            }
        }
    }
    while lines.first().is_some_and(|l| l.is_empty()) {
        lines.remove(0);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}
