//! # signal-typescript
//!
//! Typed TypeScript and JavaScript proxies for a signal hub, generated from its
//! [`HubDescriptor`] (the methods both sides may call and the JSON Schemas of
//! their types), to use with the official `@microsoft/signalr` client — which
//! stays the runtime: the generated code only calls methods of the
//! `HubConnection` it is given.
//!
//! For a hub `Chat` whose client contract is `ChatClient`, the module holds:
//!
//! - one `export interface` or `export type` per named type of the descriptor
//!   (`$defs`), structs, enums in each serde tagging, options, vectors, maps,
//!   tuples and recursive types included, doc comments as JSDoc;
//! - `export class ChatProxy`, constructed over a `HubConnection`, with one
//!   method per hub method: `invoke` for methods with a result
//!   (`Promise<T>`), `send` for fire-and-forget ones (`Promise<void>`),
//!   `stream` for server streams (`IStreamResult<T>`), upload parameters typed
//!   `Subject<T>`;
//! - `export interface ChatClientHandlers`, one handler per client method
//!   (returning `void | Promise<void>`, or `T | Promise<T>` for a client
//!   result), and `export function registerChatClient(connection, handlers)`,
//!   which registers them all under their wire names and returns a function
//!   that unregisters them. A missing handler is a compile error (and, in plain
//!   JavaScript, a `TypeError` at registration).
//!
//! Three renderings: [`render_typescript`] (a `.ts` module that imports only
//! types from `@microsoft/signalr`, so it works with the npm package and with
//! the browser global alike), [`render_javascript`] (a plain ES module, for
//! pages without a build step; it imports nothing) and [`render_declarations`]
//! (the `.d.ts` of that ES module).
//!
//! ## In a build script
//!
//! Keep the hub traits and their types in a small API crate that both the
//! server and its build script depend on; then, in `build.rs`:
//!
//! ```no_run
//! # fn descriptor() -> signal_core::HubDescriptor { unimplemented!() }
//! // let descriptor = <dyn chat_api::Chat>::descriptor();
//! # let descriptor = descriptor();
//! signal_typescript::Generator::new("static/generated")
//!     .hub(descriptor, "chat")
//!     .write()
//!     .expect("generating the TypeScript proxies");
//! ```
//!
//! This writes `static/generated/chat.ts`, `chat.js` and `chat.d.ts` (relative
//! paths are relative to the package's directory, where cargo runs build
//! scripts). Output is deterministic and only files whose bytes change are
//! rewritten, so watchers (cargo's, tsc's, a bundler's) are not woken for
//! nothing. The generator prints nothing to cargo: a build script that prints
//! no `cargo::rerun-if-changed` line is rerun whenever a file of its package
//! changes, and whenever the API crate changes, which is what regeneration
//! needs.

#![deny(missing_docs)]

mod error;
mod generator;
mod model;
mod names;
mod print;
mod schema;
mod ts;

#[cfg(test)]
mod tests;

pub use error::Error;
pub use generator::{Generator, Written};
pub use signal_core::descriptor::HubDescriptor;

use model::Model;
use print::Flavor;

/// Choices about the generated names. The defaults, for a hub `Chat` whose
/// client trait is `ChatClient`: `ChatProxy`, `ChatClientHandlers`,
/// `registerChatClient`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// The proxy class; `{Hub}Proxy` by default.
    pub proxy_name: Option<String>,
    /// The handler interface; `{Client}Handlers` by default.
    pub handlers_name: Option<String>,
    /// The registration function; `register{Client}` by default.
    pub register_name: Option<String>,
}

impl Options {
    /// The default names.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the proxy class.
    pub fn proxy_name(mut self, name: impl Into<String>) -> Self {
        self.proxy_name = Some(name.into());
        self
    }

    /// Names the handler interface.
    pub fn handlers_name(mut self, name: impl Into<String>) -> Self {
        self.handlers_name = Some(name.into());
        self
    }

    /// Names the registration function.
    pub fn register_name(mut self, name: impl Into<String>) -> Self {
        self.register_name = Some(name.into());
        self
    }
}

/// The three renderings of one hub's module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The TypeScript module (`.ts`).
    pub typescript: String,
    /// The plain JavaScript ES module (`.js`).
    pub javascript: String,
    /// The declarations of the JavaScript module (`.d.ts`).
    pub declarations: String,
}

/// Renders all three files of `hub`'s module.
pub fn render(hub: &HubDescriptor, options: &Options) -> Result<Module, Error> {
    let model = Model::new(hub, options)?;
    Ok(Module {
        typescript: print::module(&model, Flavor::TypeScript),
        javascript: print::module(&model, Flavor::JavaScript),
        declarations: print::module(&model, Flavor::Declarations),
    })
}

/// The TypeScript module of `hub`: its types, proxy class and client handlers.
pub fn render_typescript(hub: &HubDescriptor, options: &Options) -> Result<String, Error> {
    Ok(print::module(
        &Model::new(hub, options)?,
        Flavor::TypeScript,
    ))
}

/// The plain JavaScript ES module of `hub` (no imports, no types).
pub fn render_javascript(hub: &HubDescriptor, options: &Options) -> Result<String, Error> {
    Ok(print::module(
        &Model::new(hub, options)?,
        Flavor::JavaScript,
    ))
}

/// The declarations (`.d.ts`) of the JavaScript module of `hub`.
pub fn render_declarations(hub: &HubDescriptor, options: &Options) -> Result<String, Error> {
    Ok(print::module(
        &Model::new(hub, options)?,
        Flavor::Declarations,
    ))
}
