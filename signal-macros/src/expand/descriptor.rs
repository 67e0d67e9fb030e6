//! Descriptors: the methods' JSON Schemas and kinds, built at run time with one
//! `DescriptorBuilder` so that named types land once in `$defs`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Type;
use syn::ext::IdentExt;
use syn::spanned::Spanned;

use crate::ast::{Method, Shape};
use crate::attr::Side;

/// `wire::<T>()`, spanned at `T`: the one use of a user type that carries the
/// `Serialize + DeserializeOwned + JsonSchema` bounds.
pub(crate) fn wire(ty: &Type) -> TokenStream {
    quote_spanned!(ty.span()=> ::signal::__private::wire::<#ty>())
}

/// The kind of call a method is.
pub(crate) fn kind(side: Side, method: &Method) -> TokenStream {
    let kind = match (side, &method.output.shape) {
        (Side::Hub, Shape::Unit) if method.output.error.is_none() => quote!(FireAndForget),
        (Side::Hub, Shape::Unit | Shape::Value(_)) => quote!(Unary),
        (Side::Hub, Shape::Stream(_)) => quote!(ServerStream),
        (Side::Client, Shape::Unit) => quote!(FireAndForget),
        (Side::Client, _) => quote!(ClientResult),
    };
    quote!(::signal::protocol::MethodKind::#kind)
}

/// A `Vec<MethodDescriptor>` expression; `builder` is a `&mut DescriptorBuilder`.
pub(crate) fn methods(side: Side, methods: &[Method], builder: &TokenStream) -> TokenStream {
    let methods = methods.iter().map(|m| {
        let name = m.ident.unraw().to_string();
        let wire_name = &m.wire;
        let kind = kind(side, m);
        let docs = &m.docs;
        let parameters = m.params.iter().map(|p| {
            let wire = wire(p.wire_type());
            let name = p.ident.unraw().to_string();
            let upload = p.upload.is_some();
            quote!(#wire.parameter(#builder, #name, #upload))
        });
        let returns = match &m.output.shape {
            Shape::Unit => quote!(::core::option::Option::None),
            Shape::Value(ty) | Shape::Stream(ty) => {
                let wire = wire(ty);
                quote!(::core::option::Option::Some(#wire.schema(#builder)))
            }
        };
        let authorize = authorize(m.authorize.as_deref());
        quote! {
            ::signal::protocol::MethodDescriptor {
                name: ::std::borrow::ToOwned::to_owned(#name),
                wire_name: ::std::borrow::ToOwned::to_owned(#wire_name),
                kind: #kind,
                parameters: ::std::vec![#(#parameters),*],
                returns: #returns,
                docs: ::std::borrow::ToOwned::to_owned(#docs),
                authorize: #authorize,
            }
        }
    });
    quote!(::std::vec![#(#methods),*])
}

/// An `Option<Authorize>` expression for what `#[signal::authorize]` requires.
pub(crate) fn authorize(policies: Option<&[String]>) -> TokenStream {
    match policies {
        None => quote!(::core::option::Option::None),
        Some(policies) => quote! {
            ::core::option::Option::Some(::signal::protocol::Authorize {
                policies: ::std::vec![#(::std::borrow::ToOwned::to_owned(#policies)),*],
            })
        },
    }
}
