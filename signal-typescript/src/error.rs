//! What can go wrong while rendering or writing modules.

use std::io;
use std::path::PathBuf;

/// An error from rendering a hub's module or writing it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A schema uses a JSON Schema keyword that no TypeScript type expresses.
    #[error(
        "{context}: its JSON Schema uses {construct} at `{pointer}`, which has no TypeScript \
         equivalent; give the type a plainer serde shape, or implement `JsonSchema` for it by \
         hand without that keyword"
    )]
    UnsupportedSchema {
        /// What the schema describes: a named type, a parameter or a result.
        context: String,
        /// Where in that schema, as a JSON pointer (`#` is its root).
        pointer: String,
        /// The keyword and, where it helps, its value.
        construct: String,
    },
    /// A `$ref` points at a type that the descriptor's `$defs` lacks.
    #[error(
        "{context}: its JSON Schema refers to `{reference}` at `{pointer}`, which is not in the \
         descriptor's `$defs`; build the descriptor with one `DescriptorBuilder` so every named \
         type is gathered"
    )]
    UnresolvedReference {
        /// What the schema describes.
        context: String,
        /// Where in that schema.
        pointer: String,
        /// The reference as written.
        reference: String,
    },
    /// A name cannot be used in the generated module.
    #[error("{what} `{name}` cannot be used in the TypeScript module: {reason}")]
    InvalidName {
        /// What carries the name (a hub, a type, a method, an option).
        what: String,
        /// The name.
        name: String,
        /// Why, and what to do.
        reason: String,
    },
    /// Two things would get the same name in the generated module.
    #[error(
        "{first} and {second} would both be `{name}` in the TypeScript module; rename one \
         (`#[schemars(rename = \"…\")]` for a type, `#[signal::method(name = \"…\")]` for a \
         method, or the names in `Options`)"
    )]
    NameCollision {
        /// The name both would get.
        name: String,
        /// The first.
        first: String,
        /// The second.
        second: String,
    },
    /// A method's kind does not fit its side (say, a client result among the
    /// hub's methods).
    #[error("method `{method}` of `{owner}` is a {kind} method, which {side} cannot have")]
    UnsupportedMethod {
        /// The trait the method belongs to.
        owner: String,
        /// The method's Rust name.
        method: String,
        /// Its kind.
        kind: String,
        /// `a hub` or `a client contract`.
        side: String,
    },
    /// A module stem that is not a plain file name.
    #[error(
        "the file stem `{stem}` is not a plain file name: use letters, digits, `-`, `_` or `.`, \
         without a path (set the directory with `Generator::new`)"
    )]
    InvalidStem {
        /// The stem.
        stem: String,
    },
    /// Two hubs would be written to the same files.
    #[error("the hubs `{first}` and `{second}` are both given the file stem `{stem}`")]
    DuplicateStem {
        /// The stem.
        stem: String,
        /// The first hub's name.
        first: String,
        /// The second hub's name.
        second: String,
    },
    /// Reading, creating or writing a file or directory failed.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What was being done: `create the directory`, `read`, `write`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}
