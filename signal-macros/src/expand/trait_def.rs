//! The user's trait, rewritten so that it can be implemented with plain
//! `async fn` and still be named as `dyn Trait`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    FnArg, ItemTrait, Pat, ReturnType, TraitItem, TraitItemFn, parse_quote, parse_quote_spanned,
};

use crate::ast::Contract;
use crate::attr::{Side, is_authorize_attribute, is_method_attribute};

/// The trait: `async fn` → `fn … -> impl Future<Output = R> + Send`, `where
/// Self: Sized` on every method (so `dyn Trait` is a type), `Send + Sync +
/// 'static` supertraits, and for a hub, empty bodies for the (valid) hooks and
/// `into_hub` (unless the user took the name: that is reported elsewhere).
pub(crate) fn render(side: Side, item: &ItemTrait, contract: &Contract) -> TokenStream {
    let mut item = item.clone();
    let mut has_into_hub = false;
    item.attrs.retain(|a| !is_authorize_attribute(a));
    for trait_item in &mut item.items {
        if let TraitItem::Fn(f) = trait_item {
            f.attrs
                .retain(|a| !is_method_attribute(a) && !is_authorize_attribute(a));
            let name = f.sig.ident.to_string();
            has_into_hub |= name == "into_hub";
            let valid_hook = side == Side::Hub
                && match name.as_str() {
                    "on_connected" => contract.on_connected.is_some(),
                    "on_disconnected" => contract.on_disconnected.is_some(),
                    _ => false,
                };
            rewrite_async(f);
            if valid_hook && f.default.is_none() {
                add_empty_body(f);
            }
            f.sig
                .generics
                .make_where_clause()
                .predicates
                .push(parse_quote!(Self: ::core::marker::Sized));
        }
    }
    if item.colon_token.is_none() {
        item.colon_token = Some(Default::default());
    }
    item.supertraits.push(parse_quote!(::core::marker::Send));
    item.supertraits.push(parse_quote!(::core::marker::Sync));
    item.supertraits.push(parse_quote!('static));
    if side == Side::Hub && !has_into_hub {
        let ident = &item.ident;
        let server = format_ident!("{}Server", ident);
        let doc = format!(
            "Wraps this `{ident}` hub in a [`signal::Hub`](::signal::Hub), ready to be mounted \
             with `.router()`."
        );
        item.items.push(parse_quote! {
            #[doc = #doc]
            fn into_hub(self) -> ::signal::Hub<#server<Self>>
            where
                Self: ::core::marker::Sized,
            {
                ::signal::Hub::new(#server(self))
            }
        });
    }
    quote!(#item)
}

/// `async fn f(..) -> R { body }` → `fn f(..) -> impl Future<Output = R> + Send { async move { body } }`.
fn rewrite_async(f: &mut TraitItemFn) {
    let Some(asyncness) = f.sig.asyncness.take() else {
        return;
    };
    let span = asyncness.span();
    let output = match &f.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    f.sig.output = parse_quote_spanned! {span=>
        -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
    };
    if let Some(block) = &f.default {
        f.default = Some(parse_quote_spanned!(block.span()=> { async move #block }));
    }
}

/// A hook without a body does nothing.
fn add_empty_body(f: &mut TraitItemFn) {
    let params: Vec<_> = f
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(p) => Some(p.ident.clone()),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    let span = f.sig.ident.span();
    let returned = if matches!(f.sig.output, ReturnType::Type(_, ref ty) if is_future(ty)) {
        quote_spanned!(span=> async {})
    } else {
        quote!()
    };
    f.default = Some(parse_quote_spanned! {span=>
        {
            let _ = (#(#params,)*);
            #returned
        }
    });
}

fn is_future(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::ImplTrait(_))
}
