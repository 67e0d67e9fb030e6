//! The caller proxy of a hub: one async method per hub method, over any
//! `Invoker` (a network client, or an in-process connection in tests).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::ast::{Contract, Method, Shape};
use crate::expand::descriptor::wire;

/// `HProxy<I: Invoker>`.
pub(crate) fn render(contract: &Contract) -> TokenStream {
    let ident = &contract.ident;
    let vis = &contract.vis;
    let proxy = format_ident!("{}Proxy", ident);
    let doc = format!(
        "Calls the methods of the `{ident}` hub through an \
         [`Invoker`](::signal::protocol::Invoker), with typed arguments and results. \
         An upload parameter takes any stream of its items."
    );
    let methods = contract.methods.iter().map(|m| method(vis, m));
    quote! {
        #[doc = #doc]
        #vis struct #proxy<I: ::signal::protocol::Invoker>(#vis I);

        impl<__SignalInvoker: ::signal::protocol::Invoker> #proxy<__SignalInvoker> {
            /// A proxy that calls through `invoker`.
            #vis fn new(invoker: __SignalInvoker) -> Self {
                #proxy(invoker)
            }

            #(#methods)*
        }
    }
}

fn method(vis: &syn::Visibility, method: &Method) -> TokenStream {
    let ident = &method.ident;
    let wire_name = &method.wire;
    let docs = crate::expand::method_docs(method, "Calls the hub method");
    let params = method.params.iter().map(|p| {
        let ident = &p.ident;
        match &p.upload {
            Some(item) => quote! {
                #ident: impl ::signal::__private::futures_util::Stream<Item = #item>
                    + ::core::marker::Send
                    + 'static
            },
            None => {
                let ty = &p.ty;
                quote!(#ident: #ty)
            }
        }
    });
    let arguments = method
        .params
        .iter()
        .filter(|p| p.upload.is_none())
        .map(|p| {
            let wire = wire(&p.ty);
            let ident = &p.ident;
            quote!(#wire.invoke_argument(#ident))
        });
    let uploads: Vec<_> = method
        .params
        .iter()
        .filter_map(|p| {
            let item = p.upload.as_ref()?;
            let wire = wire(item);
            let ident = &p.ident;
            Some(quote!(#wire.invoke_upload(#ident)))
        })
        .collect();
    let invoker = quote!(::signal::protocol::Invoker);
    let error = quote!(::signal::protocol::InvokeError);
    if !uploads.is_empty() {
        return with_uploads(vis, method, params.collect(), arguments.collect(), uploads);
    }
    let (returns, body) = match (&method.output.shape, &method.output.error) {
        (Shape::Unit, None) => (
            quote!(()),
            quote!(#invoker::send(&self.0, #wire_name, __signal_arguments).await),
        ),
        (Shape::Unit, Some(_)) => (
            quote!(()),
            quote! {
                #invoker::invoke(&self.0, #wire_name, __signal_arguments).await?;
                ::core::result::Result::Ok(())
            },
        ),
        (Shape::Value(ty), _) => {
            let wire = wire(ty);
            (
                quote!(#ty),
                quote! {
                    let __signal_raw = #invoker::invoke(&self.0, #wire_name, __signal_arguments).await?;
                    #wire.invoke_result(__signal_raw)
                },
            )
        }
        (Shape::Stream(ty), _) => {
            let wire = wire(ty);
            (
                quote!(::signal::protocol::invoker::ItemStream<#ty>),
                quote! {
                    let __signal_raw = #invoker::stream(&self.0, #wire_name, __signal_arguments).await?;
                    ::core::result::Result::Ok(#wire.invoke_stream(__signal_raw))
                },
            )
        }
    };
    quote! {
        #docs
        #vis async fn #ident(&self, #(#params),*) -> ::core::result::Result<#returns, #error> {
            let __signal_arguments = ::signal::protocol::Arguments::new(::std::vec![#(#arguments),*]);
            #body
        }
    }
}

/// A method with upload parameters: always invoked with an id (the hub answers
/// once the uploads end), through the invoker's upload path.
fn with_uploads(
    vis: &syn::Visibility,
    method: &Method,
    params: Vec<TokenStream>,
    arguments: Vec<TokenStream>,
    uploads: Vec<TokenStream>,
) -> TokenStream {
    let ident = &method.ident;
    let wire_name = &method.wire;
    let docs = crate::expand::method_docs(method, "Calls the hub method");
    let invoker = quote!(::signal::protocol::Invoker);
    let error = quote!(::signal::protocol::InvokeError);
    let (returns, body) = match &method.output.shape {
        Shape::Unit => (
            quote!(()),
            quote! {
                #invoker::invoke_with_uploads(&self.0, #wire_name, __signal_arguments, __signal_uploads).await?;
                ::core::result::Result::Ok(())
            },
        ),
        Shape::Value(ty) => {
            let wire = wire(ty);
            (
                quote!(#ty),
                quote! {
                    let __signal_raw = #invoker::invoke_with_uploads(&self.0, #wire_name, __signal_arguments, __signal_uploads).await?;
                    #wire.invoke_result(__signal_raw)
                },
            )
        }
        Shape::Stream(ty) => {
            let wire = wire(ty);
            (
                quote!(::signal::protocol::invoker::ItemStream<#ty>),
                quote! {
                    let __signal_raw = #invoker::stream_with_uploads(&self.0, #wire_name, __signal_arguments, __signal_uploads).await?;
                    ::core::result::Result::Ok(#wire.invoke_stream(__signal_raw))
                },
            )
        }
    };
    quote! {
        #docs
        #vis async fn #ident(&self, #(#params),*) -> ::core::result::Result<#returns, #error> {
            let __signal_arguments = ::signal::protocol::Arguments::new(::std::vec![#(#arguments),*]);
            let __signal_uploads: ::std::vec::Vec<::signal::protocol::RawUpload> = ::std::vec![#(#uploads),*];
            #body
        }
    }
}
