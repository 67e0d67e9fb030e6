//! `#[signal::hub]`: the server wrapper, its `HubDispatch` and the descriptor.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::{Contract, Hook, Method, Shape};
use crate::attr::Side;
use crate::expand::descriptor::{self, wire};

/// Everything `#[signal::hub]` adds beside the trait.
pub(crate) fn render(contract: &Contract) -> TokenStream {
    let ident = &contract.ident;
    let vis = &contract.vis;
    let server = format_ident!("{}Server", ident);
    let client = match &contract.client {
        Some(path) => quote_spanned!(path.span()=> dyn #path),
        None => quote!(()),
    };
    let client_alias = match &contract.client {
        Some(path) => quote_spanned!(path.span()=> __SignalClient),
        None => quote!(__SignalClient),
    };
    let server_doc = format!(
        "The `{ident}` hub of a `T: {ident}`, as the runtime serves it; \
         [`{ident}::into_hub`] builds one."
    );
    let dispatch = contract.methods.iter().map(|m| dispatch_branch(ident, m));
    let on_connected = contract
        .on_connected
        .as_ref()
        .filter(|h| h.forward)
        .map(|h| hook(ident, "on_connected", h));
    let on_disconnected = contract
        .on_disconnected
        .as_ref()
        .filter(|h| h.forward)
        .map(|h| hook(ident, "on_disconnected", h));
    let builder = quote!(__signal_builder);
    let methods = descriptor::methods(Side::Hub, &contract.methods, &builder);
    let name = ident.to_string();
    let docs = &contract.docs;
    let authorize = descriptor::authorize(contract.authorize.as_deref());
    let descriptor_doc = format!(
        "The contract of the `{ident}` hub: its methods, its client's methods, and the JSON \
         Schemas of their types."
    );
    quote! {
        #[doc = #server_doc]
        #vis struct #server<T>(#vis T);

        const _: () = {
            type __SignalClient = #client;

            impl<__SignalHub: #ident> ::signal::HubDispatch for #server<__SignalHub> {
                type Client = #client_alias;

                fn descriptor(&self) -> ::signal::protocol::HubDescriptor {
                    <dyn #ident>::descriptor()
                }

                fn dispatch<'__signal>(
                    &'__signal self,
                    __signal_cx: &'__signal ::signal::Context<Self::Client>,
                    __signal_call: ::signal::Call,
                ) -> ::signal::BoxFuture<
                    '__signal,
                    ::core::result::Result<::signal::Output, ::signal::InvocationError>,
                > {
                    #(#dispatch)*
                    ::std::boxed::Box::pin(async move {
                        ::core::result::Result::Err(
                            ::signal::InvocationError::UnknownMethod(__signal_call.target),
                        )
                    })
                }

                #on_connected
                #on_disconnected
            }

            impl dyn #ident {
                #[doc = #descriptor_doc]
                #vis fn descriptor() -> ::signal::protocol::HubDescriptor {
                    #[allow(unused_imports)]
                    use ::signal::__private::{DescribeTyped as _, DescribeUntyped as _};
                    let mut __signal_owned =
                        ::signal::__private::signal_core::descriptor::DescriptorBuilder::new();
                    let #builder = &mut __signal_owned;
                    let __signal_methods = #methods;
                    let __signal_client = (&::signal::__private::ClientOf::<__SignalClient>::new())
                        .describe_client(#builder);
                    let mut __signal_descriptor =
                        __signal_owned.finish(#name, #docs, __signal_methods, __signal_client);
                    __signal_descriptor.authorize = #authorize;
                    __signal_descriptor
                }
            }
        };
    }
}

/// `if target matches { return the boxed call }`.
fn dispatch_branch(trait_ident: &syn::Ident, method: &Method) -> TokenStream {
    let ident = &method.ident;
    let wire_name = &method.wire;
    let streaming = matches!(method.output.shape, Shape::Stream(_));
    let names: Vec<_> = (0..method.params.len())
        .map(|i| format_ident!("__signal_arg{}", i))
        .collect();
    let (mut arguments, mut uploads) = (0usize, 0usize);
    let reads: Vec<_> = method
        .params
        .iter()
        .zip(&names)
        .map(|(p, var)| {
            let wire = wire(p.wire_type());
            let name = syn::ext::IdentExt::unraw(&p.ident).to_string();
            let read = if p.upload.is_some() {
                uploads += 1;
                let index = uploads - 1;
                quote!(#wire.upload(&mut __signal_call, #index))
            } else {
                arguments += 1;
                let index = arguments - 1;
                quote!(#wire.argument(&__signal_call.arguments, #index, #name))
            };
            quote! {
                let #var = #read
                    .map_err(|e| ::signal::__private::arguments_error(&__signal_call.target, e))?;
            }
        })
        .collect();
    let rebind = (uploads > 0).then(|| quote!(let mut __signal_call = __signal_call;));
    let cx = method
        .context
        .as_ref()
        .map(|ty| quote_spanned!(ty.span()=> __signal_cx,));
    let awaited = method.is_async.then(|| quote!(.await));
    let call = quote! {
        <__SignalHub as #trait_ident>::#ident(&self.0, #cx #(#names),*) #awaited
    };
    let ok = |value: TokenStream| match &method.output.shape {
        Shape::Unit => quote!({
            let () = #value;
            ::core::result::Result::Ok(::signal::Output::Void)
        }),
        Shape::Value(ty) => {
            let wire = wire(ty);
            quote!(::core::result::Result::Ok(#wire.output(#value)))
        }
        Shape::Stream(ty) => {
            let wire = wire(ty);
            quote!(::core::result::Result::Ok(#wire.output_stream(#value)))
        }
    };
    let finish = match &method.output.error {
        None => ok(quote!(__signal_result)),
        Some(error) => {
            let ok = ok(quote!(__signal_value));
            let convert = match error {
                Some(ty) => quote_spanned!(ty.span()=> ::signal::__private::hub_error::<#ty>),
                None => quote!(::signal::__private::hub_error),
            };
            quote! {
                match __signal_result {
                    ::core::result::Result::Ok(__signal_value) => #ok,
                    ::core::result::Result::Err(__signal_error) => {
                        ::core::result::Result::Err(#convert(&__signal_call.target, __signal_error))
                    }
                }
            }
        }
    };
    let wrong_kind = if streaming {
        quote!(!__signal_call.streaming)
    } else {
        quote!(__signal_call.streaming)
    };
    // Errors name the method as the client spelled it, as ASP.NET Core does.
    quote! {
        if __signal_call.target.eq_ignore_ascii_case(#wire_name) {
            return ::std::boxed::Box::pin(async move {
                if #wrong_kind {
                    return ::core::result::Result::Err(
                        ::signal::__private::kind_error(&__signal_call.target, #streaming),
                    );
                }
                __signal_call
                    .arguments
                    .expect_len(#arguments)
                    .map_err(|e| ::signal::__private::arguments_error(&__signal_call.target, e))?;
                __signal_call
                    .expect_streams(#uploads)
                    .map_err(|e| ::signal::__private::arguments_error(&__signal_call.target, e))?;
                #rebind
                #(#reads)*
                let __signal_result = #call;
                #finish
            });
        }
    }
}

/// Forwards a lifecycle hook to the trait's.
fn hook(trait_ident: &syn::Ident, name: &str, hook: &Hook) -> TokenStream {
    let ident = format_ident!("{}", name);
    let cx = hook
        .context
        .as_ref()
        .map(|ty| quote_spanned!(ty.span()=> __signal_cx,));
    let error = hook.takes_error.then(|| quote!(__signal_error));
    let call = quote!(<__SignalHub as #trait_ident>::#ident(&self.0, #cx #error));
    let body = if hook.is_async {
        quote!(::std::boxed::Box::pin(#call))
    } else {
        quote!(::std::boxed::Box::pin(async move { #call }))
    };
    let error_param = (name == "on_disconnected")
        .then(|| quote!(__signal_error: ::core::option::Option<&'__signal str>,));
    quote! {
        fn #ident<'__signal>(
            &'__signal self,
            __signal_cx: &'__signal ::signal::Context<Self::Client>,
            #error_param
        ) -> ::signal::BoxFuture<'__signal, ()> {
            #body
        }
    }
}
