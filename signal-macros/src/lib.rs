//! The attribute macros of [signal](https://docs.rs/signal): `#[signal::hub]`,
//! `#[signal::client]`, `#[signal::method]` and `#[signal::authorize]`.
//!
//! Use them through the `signal` facade; generated code names `::signal` only.
//!
//! Each expansion is a pipeline, one file per stage: `attr` parses the macro
//! arguments, `ast` reads the trait into a model and checks each method,
//! `check` checks across methods, and `expand` renders the trait, the
//! dispatch, the proxies and the descriptor from the model. Errors are collected
//! in a `ctxt::Ctxt` and emitted together with everything that could still be
//! rendered, so that one mistake yields one error.
//!
//! Set `SIGNAL_MACROS_DEBUG=1` while building to print every expansion to
//! stderr.

mod ast;
mod attr;
mod case;
mod check;
mod ctxt;
mod expand;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::Item;

use crate::attr::Side;

/// Declares a hub: the methods clients may call on the server.
///
/// ```
/// use signal::{Context, HubError, HubStream};
/// # #[signal::client]
/// # pub trait ChatClient {
/// #     async fn receive_message(&self, user: String, text: String);
/// # }
///
/// #[signal::hub(client = ChatClient)]
/// pub trait Chat {
///     /// Sends a message to a room.
///     async fn send_message(&self, cx: &Context<dyn ChatClient>, room: String, text: String)
///         -> Result<(), HubError>;
///     async fn add(&self, a: i64, b: i64) -> i64;
///     async fn counter(&self, count: u32) -> HubStream<u32>;
///     async fn on_connected(&self, cx: &Context<dyn ChatClient>);
/// }
///
/// struct MyChat;
///
/// impl Chat for MyChat {
///     async fn send_message(&self, cx: &Context<dyn ChatClient>, room: String, text: String)
///         -> Result<(), HubError> {
///         cx.clients().group(&room).receive_message(cx.connection_id().to_string(), text).await?;
///         Ok(())
///     }
///     async fn add(&self, a: i64, b: i64) -> i64 {
///         a + b
///     }
///     async fn counter(&self, count: u32) -> HubStream<u32> {
///         Box::pin(futures_util::stream::iter((0..count).map(Ok)))
///     }
///     async fn on_connected(&self, cx: &Context<dyn ChatClient>) {
///         let _ = cx.groups().add(cx.connection_id().clone(), "lobby").await;
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // In process (no network): the generated proxy calls the hub.
/// let connection = MyChat.into_hub().in_process().connect().await.unwrap();
/// assert_eq!(ChatProxy::new(connection).add(2, 40).await.unwrap(), 42);
/// # }
/// ```
///
/// Each method takes `&self`, optionally the context (`&Context<dyn Client>`,
/// or `&Context` without `client = …`), then its arguments, which must be
/// `Serialize + DeserializeOwned + JsonSchema`. It returns nothing, a value,
/// `Result<T, HubError>` or `HubStream<T>` (a server → client stream). Methods
/// may be `async` or not. Clients call a method by the lowerCamelCase of its
/// name (`send_message` → `sendMessage`), or by the name
/// `#[signal::method(name = "…")]` gives it. `on_connected` and
/// `on_disconnected` are lifecycle hooks, not callable by clients.
///
/// Beside the trait, the macro generates for a trait `Chat`:
/// - `Chat::into_hub(self) -> signal::Hub<ChatServer<Self>>`;
/// - `ChatServer<T>`, which implements `signal::HubDispatch` for `T: Chat`;
/// - `<dyn Chat>::descriptor()`, the hub's contract with JSON Schemas;
/// - `ChatProxy<I: Invoker>`, a typed caller of the hub.
///
/// Arguments: `client = Trait`, a `#[signal::client]` trait.
#[proc_macro_attribute]
pub fn hub(args: TokenStream, input: TokenStream) -> TokenStream {
    expand(Side::Hub, args.into(), input.into()).into()
}

/// Declares a client contract: the methods the server may call on clients.
///
/// ```
/// use signal::{Context, HubError};
///
/// #[signal::client]
/// pub trait ChatClient {
///     async fn receive_message(&self, user: String, text: String);
///     /// A client result: the client answers.
///     async fn confirm(&self, question: String) -> bool;
/// }
///
/// #[signal::hub(client = ChatClient)]
/// pub trait Chat {
///     async fn leave(&self, cx: &Context<dyn ChatClient>) -> Result<bool, HubError>;
/// }
///
/// struct MyChat;
///
/// impl Chat for MyChat {
///     async fn leave(&self, cx: &Context<dyn ChatClient>) -> Result<bool, HubError> {
///         let sure = cx.clients().caller().confirm("Leave the chat?".into()).await?;
///         if sure {
///             cx.clients().others().receive_message("server".into(), "someone left".into()).await?;
///         }
///         Ok(sure)
///     }
/// }
/// # let _ = MyChat.into_hub();
/// ```
///
/// The macro generates, for a trait `ChatClient`, `ChatClientProxy<T>`: the
/// typed methods `Context<dyn ChatClient>`'s targets return
/// (`cx.clients().all().receive_message(..)`). Methods that return a value are
/// client results and exist on single-client targets only
/// (`cx.clients().caller().confirm(..)`). It also implements
/// `signal::ClientContract` for `dyn ChatClient` and adds
/// `<dyn ChatClient>::descriptor()`.
#[proc_macro_attribute]
pub fn client(args: TokenStream, input: TokenStream) -> TokenStream {
    expand(Side::Client, args.into(), input.into()).into()
}

/// Renames one method of a `#[signal::hub]` or `#[signal::client]` trait on the
/// wire: `#[signal::method(name = "SendMessageLegacy")]`.
///
/// The trait macros read and remove this attribute; anywhere else it is an
/// error.
#[proc_macro_attribute]
pub fn method(args: TokenStream, input: TokenStream) -> TokenStream {
    let _ = args;
    let input = TokenStream2::from(input);
    let error = syn::Error::new(
        proc_macro2::Span::call_site(),
        "`#[signal::method]` only works on methods inside a `#[signal::hub]` or \
         `#[signal::client]` trait",
    )
    .to_compile_error();
    quote!(#error #input).into()
}

/// Requires authorization to use a hub or call one of its methods.
///
/// ```
/// use signal::HubError;
///
/// #[signal::hub]
/// #[signal::authorize] // every connection: an authenticated user
/// pub trait Admin {
///     async fn status(&self) -> String;
///     /// Only users the `admin` policy allows.
///     #[signal::authorize(policy = "admin")]
///     async fn ban(&self, user: String) -> Result<(), HubError>;
/// }
/// # struct AdminHub;
/// # impl Admin for AdminHub {
/// #     async fn status(&self) -> String { "ok".into() }
/// #     async fn ban(&self, _user: String) -> Result<(), HubError> { Ok(()) }
/// # }
///
/// let hub = AdminHub
///     .into_hub()
///     .policy("admin", |identity| identity.has_claim("role", "admin"));
/// let app: axum::Router = axum::Router::new().nest("/admin", hub.router());
/// ```
///
/// On the trait, negotiate and transport requests without an authenticated
/// user get 401, and with a user a policy refuses, 403. On a method, a caller
/// who is not allowed gets ASP.NET Core's error,
/// `Failed to invoke 'ban' because user is unauthorized`, and the connection
/// goes on. Several attributes add up. Policies are named here and decided
/// by user code (`hub.policy("admin", |identity| …)`); the identity is the
/// `signal::auth::Identity` an authentication layer left on the request.
/// The descriptor and the generated TypeScript record the requirements.
///
/// The hub macro reads and removes this attribute; written above
/// `#[signal::hub]` it moves itself below it, anywhere else it is an error.
#[proc_macro_attribute]
pub fn authorize(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = TokenStream2::from(args);
    let input = TokenStream2::from(input);
    let is_hub = |attr: &syn::Attribute| attr::is_signal_attribute(attr, "hub");
    if let Ok(Item::Trait(mut item)) = syn::parse2::<Item>(input.clone())
        && let Some(at) = item.attrs.iter().position(is_hub)
    {
        // Attribute macros expand outermost first: hand the requirement to
        // the hub macro, which reads it from the attributes below its own.
        let marker: syn::Attribute = if args.is_empty() {
            syn::parse_quote!(#[::signal::authorize])
        } else {
            syn::parse_quote!(#[::signal::authorize(#args)])
        };
        item.attrs.insert(at + 1, marker);
        return quote!(#item).into();
    }
    let error = syn::Error::new(
        proc_macro2::Span::call_site(),
        "`#[signal::authorize]` goes on a `#[signal::hub]` trait or on methods inside one",
    )
    .to_compile_error();
    quote!(#error #input).into()
}

fn expand(side: Side, args: TokenStream2, input: TokenStream2) -> TokenStream2 {
    let output = match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Trait(item)) => expand::contract(side, args, item),
        Ok(item) => {
            let error = not_a_trait(side, &item).to_compile_error();
            quote!(#error #input)
        }
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #input)
        }
    };
    if std::env::var_os("SIGNAL_MACROS_DEBUG").is_some_and(|v| v != "0" && !v.is_empty()) {
        eprintln!("{} expansion:\n{output}\n", side.attribute());
    }
    output
}

fn not_a_trait(side: Side, item: &Item) -> syn::Error {
    let example = match side {
        Side::Hub => "#[signal::hub] pub trait Chat { async fn send(&self, text: String); }",
        Side::Client => {
            "#[signal::client] pub trait ChatClient { async fn receive(&self, text: String); }"
        }
    };
    let message = format!("{} goes on a trait, as in `{example}`", side.attribute());
    let tokens = match item {
        Item::Struct(i) => {
            let (kw, ident) = (&i.struct_token, &i.ident);
            quote!(#kw #ident)
        }
        Item::Enum(i) => {
            let (kw, ident) = (&i.enum_token, &i.ident);
            quote!(#kw #ident)
        }
        Item::Union(i) => {
            let (kw, ident) = (&i.union_token, &i.ident);
            quote!(#kw #ident)
        }
        Item::Fn(i) => {
            let (kw, ident) = (&i.sig.fn_token, &i.sig.ident);
            quote!(#kw #ident)
        }
        Item::Impl(i) => {
            let (kw, ty) = (&i.impl_token, &i.self_ty);
            quote!(#kw #ty)
        }
        Item::Mod(i) => {
            let (kw, ident) = (&i.mod_token, &i.ident);
            quote!(#kw #ident)
        }
        Item::Type(i) => {
            let (kw, ident) = (&i.type_token, &i.ident);
            quote!(#kw #ident)
        }
        other => quote!(#other),
    };
    syn::Error::new_spanned(tokens, message)
}
