//! `#[signal::client]`: the typed proxy over a target, the `ClientContract`
//! that lets `Context<dyn Trait>` hand it out, and the descriptor.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::ast::{Contract, Method, Shape};
use crate::attr::Side;
use crate::expand::descriptor::{self, wire};

/// Everything `#[signal::client]` adds beside the trait.
pub(crate) fn render(contract: &Contract) -> TokenStream {
    let ident = &contract.ident;
    let vis = &contract.vis;
    let proxy = format_ident!("{}Proxy", ident);
    let proxy_doc = format!(
        "Calls the `{ident}` client methods on a target: any target for the methods that \
         return nothing, a [`SingleClient`](::signal::SingleClient) for client results. \
         Derefs to the untyped target."
    );
    let (sends, results): (Vec<&Method>, Vec<&Method>) = contract
        .methods
        .iter()
        .partition(|m| matches!(m.output.shape, Shape::Unit));
    let sends = sends.into_iter().map(|m| send(vis, m));
    let results = results.into_iter().map(|m| client_result(vis, m));
    let handler = handler(contract);
    let builder = quote!(__signal_builder);
    let methods = descriptor::methods(Side::Client, &contract.methods, &builder);
    let name = ident.to_string();
    let docs = &contract.docs;
    let descriptor_doc = format!(
        "The contract of the `{ident}` client: its methods and the JSON Schemas of their types."
    );
    quote! {
        #[doc = #proxy_doc]
        #vis struct #proxy<T>(T);

        impl<T> ::core::ops::Deref for #proxy<T> {
            type Target = T;

            fn deref(&self) -> &T {
                &self.0
            }
        }

        impl<__SignalTarget: ::signal::Target> #proxy<__SignalTarget> {
            #(#sends)*
        }

        impl #proxy<::signal::SingleClient> {
            #(#results)*
        }

        #handler

        const _: () = {
            impl ::signal::ClientContract for dyn #ident {
                type Proxy<__SignalTarget: ::signal::Target> = #proxy<__SignalTarget>;

                fn proxy<__SignalTarget: ::signal::Target>(
                    target: __SignalTarget,
                ) -> #proxy<__SignalTarget> {
                    #proxy(target)
                }

                fn descriptor() -> ::core::option::Option<::signal::protocol::ClientDescriptor> {
                    ::core::option::Option::Some(<dyn #ident>::descriptor())
                }
            }

            impl ::signal::__private::DescribeClient for dyn #ident {
                fn describe(
                    #builder: &mut ::signal::__private::signal_core::descriptor::DescriptorBuilder,
                ) -> ::signal::protocol::ClientDescriptor {
                    let __signal_methods = #methods;
                    #builder.client(#name, #docs, __signal_methods)
                }
            }

            impl dyn #ident {
                #[doc = #descriptor_doc]
                #vis fn descriptor() -> ::signal::protocol::ClientDescriptor {
                    let mut __signal_builder =
                        ::signal::__private::signal_core::descriptor::DescriptorBuilder::new();
                    let __signal_client =
                        <dyn #ident as ::signal::__private::DescribeClient>::describe(
                            &mut __signal_builder,
                        );
                    __signal_builder.finish_client(__signal_client)
                }
            }
        };
    }
}

fn signature(method: &Method) -> (TokenStream, TokenStream) {
    let params = method.params.iter().map(|p| {
        let (ident, ty) = (&p.ident, &p.ty);
        quote!(#ident: #ty)
    });
    let arguments = method.params.iter().map(|p| {
        let wire = wire(&p.ty);
        let ident = &p.ident;
        quote!(#wire.send_argument(#ident))
    });
    (
        quote!(#(#params),*),
        quote!(::signal::protocol::Arguments::new(
            ::std::vec![#(#arguments),*]
        )),
    )
}

/// A fire-and-forget client method, on any target.
fn send(vis: &syn::Visibility, method: &Method) -> TokenStream {
    let ident = &method.ident;
    let wire_name = &method.wire;
    let docs = crate::expand::method_docs(method, "Calls the client method");
    let (params, arguments) = signature(method);
    quote! {
        #docs
        #vis async fn #ident(&self, #params) -> ::core::result::Result<(), ::signal::SendError> {
            let __signal_arguments = #arguments;
            ::signal::Target::send(&self.0, #wire_name, __signal_arguments).await
        }
    }
}

/// A client result, on a single client only.
fn client_result(vis: &syn::Visibility, method: &Method) -> TokenStream {
    let ident = &method.ident;
    let wire_name = &method.wire;
    let docs = crate::expand::method_docs(method, "Calls the client method");
    let (params, arguments) = signature(method);
    let Shape::Value(ty) = &method.output.shape else {
        unreachable!("client results return a value")
    };
    let wire = wire(ty);
    quote! {
        #docs
        #vis async fn #ident(&self, #params) -> ::core::result::Result<#ty, ::signal::ClientResultError> {
            let __signal_arguments = #arguments;
            let __signal_result = self
                .0
                .invoke_payload(#wire_name, __signal_arguments)
                .await?;
            #wire.client_result(__signal_result)
        }
    }
}

/// `CHandler<T>`: receives the server's calls on a client (a network client
/// registers it) and routes each to the method of `T: C`; a client result is
/// answered from the method's return value.
fn handler(contract: &Contract) -> TokenStream {
    let ident = &contract.ident;
    let vis = &contract.vis;
    let handler = format_ident!("{}Handler", ident);
    let doc = format!(
        "Receives the server's calls on a `{ident}` and runs them on the implementation \
         it wraps; register it on a client connection. Client results are answered from \
         the methods' return values."
    );
    let wire_names = contract.methods.iter().map(|m| &m.wire);
    let arms = contract.methods.iter().map(|m| {
        let method = &m.ident;
        let wire_name = &m.wire;
        let count = m.params.len();
        let bindings: Vec<_> = (0..count)
            .map(|i| format_ident!("__signal_a{}", i))
            .collect();
        let reads = m.params.iter().enumerate().map(|(index, p)| {
            let wire = wire(&p.ty);
            let binding = &bindings[index];
            let name = syn::ext::IdentExt::unraw(&p.ident).to_string();
            quote! {
                let #binding = #wire
                    .argument(&__signal_arguments, #index, #name)
                    .map_err(|e| ::std::string::ToString::to_string(&e))?;
            }
        });
        let call = quote!(<__SignalClient as #ident>::#method(&self.0, #(#bindings),*));
        let call = if m.is_async {
            quote!(#call.await)
        } else {
            call
        };
        let answer = match &m.output.shape {
            Shape::Value(ty) => {
                let wire = wire(ty);
                quote!(::core::option::Option::Some(#wire.send_argument(__signal_value)))
            }
            _ => quote!({
                let () = __signal_value;
                ::core::option::Option::None
            }),
        };
        quote! {
            if __signal_method.eq_ignore_ascii_case(#wire_name) {
                return ::core::option::Option::Some(::std::boxed::Box::pin(async move {
                    __signal_arguments
                        .expect_len(#count)
                        .map_err(|e| ::std::string::ToString::to_string(&e))?;
                    #(#reads)*
                    let __signal_value = #call;
                    ::core::result::Result::Ok(#answer)
                }));
            }
        }
    });
    quote! {
        #[doc = #doc]
        #vis struct #handler<T>(#vis T);

        impl<T> #handler<T> {
            /// Wraps `client`, an implementation of the client trait.
            #vis fn new(client: T) -> Self {
                #handler(client)
            }
        }

        impl<__SignalClient: #ident> ::signal::protocol::ClientHandler for #handler<__SignalClient> {
            fn methods(&self) -> &'static [&'static str] {
                &[#(#wire_names),*]
            }

            #[allow(unused_variables, unused_mut)]
            fn call(
                self: ::std::sync::Arc<Self>,
                __signal_method: &str,
                __signal_arguments: ::signal::protocol::Arguments,
            ) -> ::core::option::Option<::signal::protocol::HandlerFuture> {
                #(#arms)*
                ::core::option::Option::None
            }
        }
    }
}
