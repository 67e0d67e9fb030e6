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
    let (errors, generated) = expand(side, args, &item);
    let errors = errors.into_iter().map(|e| e.to_compile_error());
    quote! {
        #(#errors)*
        #generated
    }
}

/// The errors, and what is rendered beside them.
fn expand(side: Side, args: TokenStream, item: &ItemTrait) -> (Vec<syn::Error>, TokenStream) {
    let cx = Ctxt::new();
    let args = attr::contract_args(&cx, side, args);
    let mut contract = Contract::from_syn(&cx, side, item, &args);
    check::check(&cx, &mut contract);
    if !item.generics.params.is_empty() {
        // Nothing generated could name the trait without its parameters.
        return (cx.check(), quote!(#item));
    }
    if !args.usable {
        // Without a trustworthy client type the dispatch would disagree with the
        // trait's context parameters: render the shape alone.
        contract.client = None;
        contract.methods.clear();
        contract.on_connected = None;
        contract.on_disconnected = None;
    }
    let trait_def = trait_def::render(side, item, &contract);
    let generated = match side {
        Side::Hub => {
            let hub = hub::render(&contract);
            let proxy = proxy::render(&contract);
            quote!(#hub #proxy)
        }
        Side::Client => client::render(&contract),
    };
    (cx.check(), quote!(#trait_def #generated))
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

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::expand;
    use crate::attr::Side;

    fn run(side: Side, args: TokenStream, item: TokenStream) -> (Vec<String>, String) {
        let item = syn::parse2(item).expect("a trait");
        let (errors, tokens) = expand(side, args, &item);
        let errors = errors.iter().map(ToString::to_string).collect();
        (errors, tokens.to_string())
    }

    #[test]
    fn a_hub_renders_its_parts_under_their_names() {
        let (errors, out) = run(
            Side::Hub,
            quote!(client = ChatClient),
            quote! {
                /// Chat.
                pub trait Chat {
                    async fn send_message(&self, cx: &Context<dyn ChatClient>, text: String);
                    #[signal::method(name = "Legacy")]
                    fn old(&self) -> u8;
                    async fn on_connected(&self);
                }
            },
        );
        assert!(errors.is_empty(), "{errors:?}");
        for part in [
            "pub struct ChatServer",
            "pub struct ChatProxy",
            "impl dyn Chat",
            "fn into_hub",
            "type __SignalClient = dyn ChatClient",
            "\"sendMessage\"",
            "\"Legacy\"",
            "fn on_connected < '__signal >",
        ] {
            assert!(out.contains(part), "no `{part}` in {out}");
        }
        assert!(!out.contains("\"onConnected\""), "hooks are not dispatched");
        assert!(
            !out.contains("signal :: method"),
            "the attribute is stripped"
        );
        assert!(
            out.contains(
                "text : String) -> impl :: core :: future :: Future < Output = () > + :: core :: \
                 marker :: Send where Self : :: core :: marker :: Sized ;"
            ),
            "async fns are rewritten: {out}"
        );
    }

    #[test]
    fn colliding_wire_names_are_one_error() {
        let (errors, _) = run(
            Side::Hub,
            quote!(),
            quote! {
                trait Chat {
                    async fn foo_bar(&self);
                    #[signal::method(name = "FOOBAR")]
                    async fn other(&self);
                }
            },
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "the wire name `FOOBAR` of `other` collides with `fooBar` of `foo_bar`"
            )
        );
    }

    #[test]
    fn unknown_arguments_list_the_allowed_ones() {
        let (errors, _) = run(
            Side::Hub,
            quote!(clients = X),
            quote!(
                trait Chat {}
            ),
        );
        assert_eq!(
            errors,
            ["unknown argument `clients`, expected one of: `client`"]
        );
        let (errors, _) = run(
            Side::Client,
            quote!(x),
            quote!(
                trait Chat {}
            ),
        );
        assert_eq!(
            errors,
            ["unknown argument `x`: #[signal::client] takes no arguments"]
        );
        let (errors, _) = run(
            Side::Client,
            quote!(),
            quote!(
                trait C {
                    #[signal::method(nam = "x")]
                    async fn f(&self);
                }
            ),
        );
        assert_eq!(errors, ["unknown argument `nam`, expected one of: `name`"]);
    }

    #[test]
    fn every_bad_method_is_reported_and_left_out() {
        let (errors, out) = run(
            Side::Hub,
            quote!(),
            quote! {
                trait Chat {
                    async fn a(&mut self);
                    fn b() -> u8;
                    async fn c<T>(&self, t: T);
                    async fn d(&self, text: &str);
                    async fn e(&self, x: u8, cx: &Context);
                    async fn fine(&self);
                }
            },
        );
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].contains("not `&mut self`"));
        assert!(errors[1].contains("add it as the first parameter"));
        assert!(errors[2].contains("cannot be generic"));
        assert!(errors[3].contains("borrowed data"));
        assert!(errors[4].contains("the context parameter comes first"));
        assert!(out.contains("\"fine\""));
        assert!(!out.contains("eq_ignore_ascii_case (\"a\")"));
    }

    #[test]
    fn return_shapes_pick_the_kind() {
        let (errors, out) = run(
            Side::Hub,
            quote!(),
            quote! {
                trait Shapes {
                    fn unit(&self);
                    fn fallible(&self) -> Result<(), HubError>;
                    fn value(&self) -> u8;
                    fn stream(&self) -> HubStream<u8>;
                }
            },
        );
        assert!(errors.is_empty(), "{errors:?}");
        let kinds: Vec<_> = out
            .match_indices("MethodKind :: ")
            .map(|(i, _)| out[i + 14..].split_whitespace().next().unwrap())
            .collect();
        assert_eq!(kinds, ["FireAndForget", "Unary", "Unary", "ServerStream"]);
    }
}
