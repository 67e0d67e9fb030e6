//! The model of a hub or client trait, read from `syn`, each method checked on
//! its own. A method that fails a check is reported and left out of the model
//! (it stays in the trait), so the rest still expands and the user sees the
//! real error alone.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{
    FnArg, GenericArgument, Ident, ItemTrait, Pat, PathArguments, ReturnType, TraitItem,
    TraitItemFn, Type, Visibility,
};

use crate::attr::{self, ContractArgs, Side};
use crate::case::lower_camel;
use crate::ctxt::Ctxt;

/// A `#[signal::hub]` or `#[signal::client]` trait.
pub(crate) struct Contract {
    pub(crate) ident: Ident,
    pub(crate) vis: Visibility,
    pub(crate) docs: String,
    /// The policies `#[signal::authorize]` on a hub trait requires of every
    /// connection (`Some(vec![])`: an authenticated user).
    pub(crate) authorize: Option<Vec<String>>,
    /// The client trait a hub names (`client = …`).
    pub(crate) client: Option<syn::Path>,
    /// The dispatchable methods that passed their checks.
    pub(crate) methods: Vec<Method>,
    /// `on_connected`, when the hub declares it.
    pub(crate) on_connected: Option<Hook>,
    /// `on_disconnected`, when the hub declares it.
    pub(crate) on_disconnected: Option<Hook>,
}

/// One method clients (or, for a client trait, the server) call by name.
pub(crate) struct Method {
    pub(crate) ident: Ident,
    /// The name on the wire.
    pub(crate) wire: String,
    /// Where the wire name comes from: the rename literal or the identifier.
    pub(crate) wire_span: Span,
    pub(crate) docs: String,
    /// What `#[signal::authorize]` on the method requires of its callers.
    pub(crate) authorize: Option<Vec<String>>,
    pub(crate) is_async: bool,
    /// The context parameter's type, when the method takes one.
    pub(crate) context: Option<Type>,
    pub(crate) params: Vec<Param>,
    pub(crate) output: Output,
}

/// A named parameter.
pub(crate) struct Param {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// For `UploadStream<T>`, a stream the client uploads: the item type `T`.
    pub(crate) upload: Option<Type>,
}

impl Param {
    /// The type whose values cross the wire: the item type of an upload.
    pub(crate) fn wire_type(&self) -> &Type {
        self.upload.as_ref().unwrap_or(&self.ty)
    }
}

/// What a method returns.
pub(crate) struct Output {
    pub(crate) shape: Shape,
    /// `Some` for `Result<_, E>`: the error type, when written out.
    pub(crate) error: Option<Option<Type>>,
}

/// The success part of a return type.
pub(crate) enum Shape {
    /// Nothing, or `()`.
    Unit,
    /// A value of this type.
    Value(Type),
    /// `HubStream<T>`: items of this type.
    Stream(Type),
}

/// A lifecycle hook of a hub.
pub(crate) struct Hook {
    pub(crate) is_async: bool,
    pub(crate) context: Option<Type>,
    /// Whether `on_disconnected` takes the error.
    pub(crate) takes_error: bool,
    /// Whether the dispatch forwards to it (false when its context is wrong).
    pub(crate) forward: bool,
}

/// The names `#[signal::hub]` treats as lifecycle hooks.
pub(crate) const HOOKS: [&str; 2] = ["on_connected", "on_disconnected"];

/// Names the generated code uses on the trait or the proxy.
const RESERVED_HUB: [&str; 2] = ["into_hub", "new"];

impl Contract {
    pub(crate) fn from_syn(cx: &Ctxt, side: Side, item: &ItemTrait, args: &ContractArgs) -> Self {
        check_trait(cx, side, item);
        let mut contract = Contract {
            ident: item.ident.clone(),
            vis: item.vis.clone(),
            docs: attr::docs(&item.attrs),
            authorize: match side {
                Side::Hub => attr::authorize_args(cx, &item.attrs),
                Side::Client => None,
            },
            client: args.client.clone(),
            methods: Vec::new(),
            on_connected: None,
            on_disconnected: None,
        };
        for trait_item in &item.items {
            let f = match trait_item {
                TraitItem::Fn(f) => f,
                other => {
                    cx.error_spanned_by(
                        other,
                        format!(
                            "a {} trait holds only methods; move this item elsewhere",
                            side.attribute()
                        ),
                    );
                    continue;
                }
            };
            let name = f.sig.ident.to_string();
            if side == Side::Hub && HOOKS.contains(&name.as_str()) {
                let hook = Hook::from_syn(cx, f);
                if name == "on_connected" {
                    contract.on_connected = hook;
                } else {
                    contract.on_disconnected = hook;
                }
                continue;
            }
            if side == Side::Hub && RESERVED_HUB.contains(&name.as_str()) {
                cx.error_spanned_by(
                    &f.sig.ident,
                    format!(
                        "`{name}` is generated by #[signal::hub] (on the trait or its proxy); \
                         rename this method and keep its wire name with \
                         `#[signal::method(name = \"{name}\")]`"
                    ),
                );
                continue;
            }
            if let Some(method) = Method::from_syn(cx, side, f) {
                contract.methods.push(method);
            }
        }
        contract
    }
}

fn check_trait(cx: &Ctxt, side: Side, item: &ItemTrait) {
    if side == Side::Client {
        let mut attrs: Vec<&syn::Attribute> = item.attrs.iter().collect();
        for trait_item in &item.items {
            if let TraitItem::Fn(f) = trait_item {
                attrs.extend(&f.attrs);
            }
        }
        if let Some(attr) = attrs.into_iter().find(|a| attr::is_authorize_attribute(a)) {
            cx.error_spanned_by(
                attr,
                "`#[signal::authorize]` goes on a `#[signal::hub]` trait or its methods: it \
                 decides who may call the server, and the server's calls to clients need no \
                 authorization",
            );
        }
    }
    if !item.generics.params.is_empty() {
        cx.error_spanned_by(
            &item.generics,
            format!(
                "a {} trait cannot be generic: the contract must be the same for every client",
                side.attribute()
            ),
        );
    }
    if let Some(unsafety) = &item.unsafety {
        cx.error_spanned_by(
            unsafety,
            format!("a {} trait cannot be `unsafe`", side.attribute()),
        );
    }
    if let Some(auto) = &item.auto_token {
        cx.error_spanned_by(
            auto,
            format!("a {} trait cannot be an auto trait", side.attribute()),
        );
    }
}

/// Checks that the method takes `&self`; reports and returns false otherwise.
fn check_receiver(cx: &Ctxt, side: Side, f: &TraitItemFn) -> bool {
    let what = side.methods();
    match f.sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.colon_token.is_none() => {
            match (&r.reference, &r.mutability) {
                (Some(_), None) => true,
                (Some(_), Some(_)) => {
                    cx.error_spanned_by(
                        r,
                        format!(
                            "{what} take `&self`, not `&mut self`: one value serves every \
                         connection at once; keep mutable state behind a lock"
                        ),
                    );
                    false
                }
                (None, _) => {
                    cx.error_spanned_by(r, format!("{what} take `&self`, not `self`"));
                    false
                }
            }
        }
        Some(FnArg::Receiver(r)) => {
            cx.error_spanned_by(r, format!("{what} take `&self`"));
            false
        }
        _ => {
            cx.error_spanned_by(
                &f.sig.ident,
                format!("{what} take `&self`: add it as the first parameter"),
            );
            false
        }
    }
}

fn check_signature(cx: &Ctxt, side: Side, f: &TraitItemFn) -> bool {
    let sig = &f.sig;
    let what = side.methods();
    let mut ok = true;
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            format!(
                "{what} cannot be generic: every parameter and result crosses the wire as \
                 JSON, so each needs one concrete type"
            ),
        );
        ok = false;
    }
    if let Some(constness) = &sig.constness {
        cx.error_spanned_by(constness, format!("{what} cannot be `const`"));
        ok = false;
    }
    if let Some(unsafety) = &sig.unsafety {
        cx.error_spanned_by(unsafety, format!("{what} cannot be `unsafe`"));
        ok = false;
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, format!("{what} cannot have an ABI"));
        ok = false;
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, format!("{what} cannot be variadic"));
        ok = false;
    }
    check_receiver(cx, side, f) && ok
}

/// Strips the invisible groups and parentheses that macro_rules! leave around types.
pub(crate) fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => peel(&g.elem),
        Type::Paren(p) => peel(&p.elem),
        other => other,
    }
}

/// `&Context`, `&Context<…>`, `&signal::Context<…>`.
fn is_context(ty: &Type) -> bool {
    let Type::Reference(r) = peel(ty) else {
        return false;
    };
    match peel(&r.elem) {
        Type::Path(p) if p.qself.is_none() => {
            p.path.segments.last().is_some_and(|s| s.ident == "Context")
        }
        _ => false,
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(peel(ty), Type::Tuple(t) if t.elems.is_empty())
}

/// The type arguments of the last segment, when it is named `name`.
fn generic_args<'a>(ty: &'a Type, name: &str) -> Option<Vec<&'a Type>> {
    let Type::Path(p) = peel(ty) else {
        return None;
    };
    if p.qself.is_some() {
        return None;
    }
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    Some(
        args.args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
    )
}

/// Finds what cannot cross the wire in a type: borrowed data and `impl Trait`.
#[derive(Default)]
struct Borrowed {
    found: Option<(Span, &'static str)>,
}

impl VisitMut for Borrowed {
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        self.found.get_or_insert((r.span(), "reference"));
    }

    fn visit_type_impl_trait_mut(&mut self, t: &mut syn::TypeImplTrait) {
        self.found.get_or_insert((t.span(), "impl"));
    }

    fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
        if l.ident != "static" {
            self.found.get_or_insert((l.span(), "lifetime"));
        }
        visit_mut::visit_lifetime_mut(self, l);
    }
}

/// Reports a type that cannot be (de)serialized as an owned value.
fn check_owned(cx: &Ctxt, ty: &Type, role: &str) -> bool {
    let mut visitor = Borrowed::default();
    visitor.visit_type_mut(&mut ty.clone());
    match visitor.found {
        None => true,
        Some((span, "impl")) => {
            cx.error_at(
                span,
                format!("`impl Trait` cannot be {role}: name a concrete type"),
            );
            false
        }
        Some((span, _)) => {
            cx.error_at(
                span,
                format!(
                    "borrowed data cannot be {role}: values are decoded from the wire (JSON or MessagePack); use an \
                     owned type (`String` for `&str`, `Vec<T>` for `&[T]`)"
                ),
            );
            false
        }
    }
}

impl Method {
    fn from_syn(cx: &Ctxt, side: Side, f: &TraitItemFn) -> Option<Self> {
        let args = attr::method_args(cx, &f.attrs);
        let authorize = attr::authorize_args(cx, &f.attrs);
        let mut ok = check_signature(cx, side, f);
        let mut context = None;
        let mut params = Vec::new();
        for (index, input) in f.sig.inputs.iter().skip(1).enumerate() {
            let FnArg::Typed(pt) = input else { continue };
            if is_context(&pt.ty) {
                match side {
                    Side::Hub if index == 0 => context = Some((*pt.ty).clone()),
                    Side::Hub => {
                        cx.error_spanned_by(
                            &pt.ty,
                            "the context parameter comes first, right after `&self`",
                        );
                        ok = false;
                    }
                    Side::Client => {
                        cx.error_spanned_by(
                            &pt.ty,
                            "client methods take no context: the server calls them on a target \
                             such as `cx.clients().caller()`",
                        );
                        ok = false;
                    }
                }
                continue;
            }
            let ident = match &*pt.pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
                other => {
                    cx.error_spanned_by(
                        other,
                        "name this parameter with a plain identifier: its name goes in the contract",
                    );
                    ok = false;
                    continue;
                }
            };
            ok &= check_owned(cx, &pt.ty, "a parameter");
            let upload = match generic_args(&pt.ty, "UploadStream") {
                Some(items) if side == Side::Hub && items.len() == 1 => Some(items[0].clone()),
                Some(_) if side == Side::Client => {
                    cx.error_spanned_by(
                        &pt.ty,
                        "client methods cannot take upload streams; send the items one by one",
                    );
                    ok = false;
                    None
                }
                Some(_) => {
                    cx.error_spanned_by(
                        &pt.ty,
                        "expected `UploadStream<T>`, a stream of `T` items the client uploads",
                    );
                    ok = false;
                    None
                }
                None => None,
            };
            params.push(Param {
                ident,
                ty: (*pt.ty).clone(),
                upload,
            });
        }
        let output = Output::from_syn(cx, side, &f.sig.output);
        let (wire, wire_span) = match args.name {
            Some(name) => name,
            None => (lower_camel(&f.sig.ident.to_string()), f.sig.ident.span()),
        };
        match (ok, output) {
            (true, Some(output)) => Some(Method {
                ident: f.sig.ident.clone(),
                wire,
                wire_span,
                docs: attr::docs(&f.attrs),
                authorize,
                is_async: f.sig.asyncness.is_some(),
                context,
                params,
                output,
            }),
            _ => None,
        }
    }
}

impl Output {
    fn from_syn(cx: &Ctxt, side: Side, output: &ReturnType) -> Option<Self> {
        let ty = match output {
            ReturnType::Default => {
                return Some(Output {
                    shape: Shape::Unit,
                    error: None,
                });
            }
            ReturnType::Type(_, ty) => &**ty,
        };
        if !check_owned(cx, ty, "returned") {
            return None;
        }
        if side == Side::Client {
            if generic_args(ty, "HubStream").is_some() {
                cx.error_spanned_by(
                    ty,
                    "client methods cannot return a stream; return one value (a client result) \
                     or nothing",
                );
                return None;
            }
            let shape = if is_unit(ty) {
                Shape::Unit
            } else {
                Shape::Value(ty.clone())
            };
            return Some(Output { shape, error: None });
        }
        let (ok, error) = match generic_args(ty, "Result") {
            Some(args) if !args.is_empty() && args.len() <= 2 => {
                (args[0], Some(args.get(1).map(|e| (*e).clone())))
            }
            _ => (ty, None),
        };
        let shape = if is_unit(ok) {
            Shape::Unit
        } else if let Some(items) = generic_args(ok, "HubStream") {
            match items.as_slice() {
                [item] => Shape::Stream((*item).clone()),
                _ => {
                    cx.error_spanned_by(ok, "expected `HubStream<T>`, a stream of `T` items");
                    return None;
                }
            }
        } else {
            Shape::Value(ok.clone())
        };
        Some(Output { shape, error })
    }
}

impl Hook {
    fn from_syn(cx: &Ctxt, f: &TraitItemFn) -> Option<Self> {
        let name = f.sig.ident.to_string();
        let mut ok = check_signature(cx, Side::Hub, f);
        let usage = if name == "on_connected" {
            "`async fn on_connected(&self, cx: &Context<…>)` (the context is optional)"
        } else {
            "`async fn on_disconnected(&self, cx: &Context<…>, error: Option<&str>)` \
             (the context and the error are optional)"
        };
        if let Some(attr) = f.attrs.iter().find(|a| attr::is_method_attribute(a)) {
            cx.error_spanned_by(
                attr,
                format!(
                    "`{name}` is a lifecycle hook, not a method clients call: it has no wire name"
                ),
            );
            ok = false;
        }
        if let Some(attr) = f.attrs.iter().find(|a| attr::is_authorize_attribute(a)) {
            cx.error_spanned_by(
                attr,
                format!(
                    "`{name}` is a lifecycle hook, not a method clients call: put \
                     `#[signal::authorize]` on the trait to require it of every connection"
                ),
            );
            ok = false;
        }
        let mut context = None;
        let mut takes_error = false;
        for (index, input) in f.sig.inputs.iter().skip(1).enumerate() {
            let FnArg::Typed(pt) = input else { continue };
            if index == 0 && is_context(&pt.ty) {
                context = Some((*pt.ty).clone());
            } else if name == "on_disconnected" && !takes_error {
                takes_error = true;
            } else {
                cx.error_spanned_by(
                    pt,
                    format!("unexpected parameter: the lifecycle hook is declared as {usage}"),
                );
                ok = false;
            }
        }
        if let ReturnType::Type(_, ty) = &f.sig.output
            && !is_unit(ty)
        {
            cx.error_spanned_by(ty, format!("lifecycle hooks return nothing: {usage}"));
            ok = false;
        }
        ok.then_some(Hook {
            is_async: f.sig.asyncness.is_some(),
            context,
            takes_error,
            forward: true,
        })
    }
}
