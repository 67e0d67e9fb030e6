//! Rendering: the model into Rust. One file per generated part.

mod client;
mod descriptor;
mod hub;
mod proxy;
mod trait_def;

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemTrait;

use crate::ast::Contract;
use crate::attr::{self, Side};
use crate::check;
use crate::ctxt::Ctxt;

/// Expands `#[signal::hub]` or `#[signal::client]` on a trait. Errors come first,
/// followed by everything that could still be rendered, so that code using the
/// trait does not fail in turn.
pub(crate) fn contract(side: Side, args: TokenStream, item: ItemTrait) -> TokenStream {
    let cx = Ctxt::new();
    let args = attr::contract_args(&cx, side, args);
    let mut contract = Contract::from_syn(&cx, side, &item, &args);
    check::check(&cx, &mut contract);
    if !item.generics.params.is_empty() {
        // Nothing generated could name the trait without its parameters.
        let errors = cx.check().into_iter().map(|e| e.to_compile_error());
        return quote!(#(#errors)* #item);
    }
    if !args.usable {
        // Without a trustworthy client type the dispatch would disagree with the
        // trait's context parameters: render the shape alone.
        contract.client = None;
        contract.methods.clear();
        contract.on_connected = None;
        contract.on_disconnected = None;
    }
    let trait_def = trait_def::render(side, &item, &contract);
    let generated = match side {
        Side::Hub => {
            let hub = hub::render(&contract);
            let proxy = proxy::render(&contract);
            quote!(#hub #proxy)
        }
        Side::Client => client::render(&contract),
    };
    let errors = cx.check().into_iter().map(|e| e.to_compile_error());
    quote! {
        #(#errors)*
        #trait_def
        #generated
    }
}

/// The doc attributes of a generated method: the user's doc comment, or a line
/// naming the wire method.
fn method_docs(method: &crate::ast::Method, calls: &str) -> TokenStream {
    if method.docs.is_empty() {
        let line = format!(" {calls} `{}`.", method.wire);
        return quote!(#[doc = #line]);
    }
    let lines = method.docs.lines().map(|line| {
        let line = format!(" {line}");
        quote!(#[doc = #line])
    });
    quote!(#(#lines)*)
}
