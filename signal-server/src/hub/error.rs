//! Errors of the hub runtime.

use std::borrow::Cow;

use signal_core::{ArgumentError, WriteError};

pub use crate::lifetime::{ClientResultError, SendError};

/// The error a hub method returns on purpose; its message reaches the caller.
///
/// ```
/// # use signal_server::HubError;
/// fn withdraw(balance: u64, amount: u64) -> Result<u64, HubError> {
///     balance.checked_sub(amount).ok_or_else(|| HubError::new("insufficient funds"))
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HubError {
    message: String,
    kind: Option<Cow<'static, str>>,
}

/// The kind ASP.NET Core names an error a hub raises on purpose.
const HUB_EXCEPTION: &str = "HubException";

impl HubError {
    /// An error whose `message` is sent to the caller as it is (ASP.NET Core's
    /// `HubException`).
    pub fn new(message: impl Into<String>) -> Self {
        HubError {
            message: message.into(),
            kind: None,
        }
    }

    /// Names the error's kind as a .NET hub would throw it
    /// (`InvalidOperationException`, say), for clients ported from .NET that
    /// match on it. As in ASP.NET Core, only a `HubException` reaches the caller
    /// with its message by default; another kind does only with
    /// [`HubOptions::enable_detailed_errors`](crate::HubOptions::enable_detailed_errors),
    /// and the caller otherwise reads the generic text.
    #[must_use]
    pub fn with_kind(mut self, kind: impl Into<Cow<'static, str>>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// The message the caller receives.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error's kind: `HubException` unless [`with_kind`](Self::with_kind) named another.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or(HUB_EXCEPTION)
    }

    /// ASP.NET Core's `ErrorMessageHelper.BuildErrorMessage`: `prefix`, then the
    /// kind and message when the error is a `HubException` or details are on.
    pub(crate) fn text(&self, prefix: &str, detailed: bool) -> String {
        if detailed || self.kind() == HUB_EXCEPTION {
            format!("{prefix} {}: {}", self.kind(), self.message)
        } else {
            prefix.to_owned()
        }
    }
}

/// Why an invocation failed before or while a hub method ran. The runtime turns
/// each into the Completion error text ASP.NET Core SignalR sends for it
/// ([`completion_text`](Self::completion_text)); every text is listed, with its
/// ASP.NET Core source, in [`texts`](crate::texts).
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// No method of that name (compared without case). ASP.NET Core's binder
    /// raises `HubException("Method does not exist.")` for it.
    #[error(
        "Failed to invoke '{0}' due to an error on the server. HubException: Method does not exist."
    )]
    UnknownMethod(String),
    /// The arguments did not fit the method's parameters. The details reach the
    /// caller only with detailed errors on; they are logged either way.
    #[error("Failed to invoke '{method}' due to an error on the server.")]
    Arguments {
        /// The method's wire name.
        method: String,
        /// What was wrong.
        #[source]
        source: ArgumentError,
    },
    /// The client uploads more or fewer streams than the method takes.
    #[error(
        "An unexpected error occurred invoking '{method}' on the server. HubException: {source}"
    )]
    Streams {
        /// The method's name as the client sent it.
        method: String,
        /// What was wrong.
        #[source]
        source: ArgumentError,
    },
    /// The method returned a [`HubError`].
    #[error(
        "An unexpected error occurred invoking '{method}' on the server. HubException: {source}"
    )]
    Hub {
        /// The method's wire name.
        method: String,
        /// The hub's own error.
        #[source]
        source: HubError,
    },
    /// The method's result could not be encoded in the connection's protocol.
    #[error("An unexpected error occurred invoking '{method}' on the server.")]
    Result {
        /// The method's wire name.
        method: String,
        /// What the protocol said.
        #[source]
        source: WriteError,
    },
    /// `#[signal::authorize]` refused the caller: ASP.NET Core's text, bare.
    #[error("Failed to invoke '{0}' because user is unauthorized")]
    Unauthorized(String),
    /// The connection invoked more often than
    /// [`HubOptions::maximum_invocations_per_second`](crate::HubOptions::maximum_invocations_per_second)
    /// allows; the call did not run.
    #[error(
        "Failed to invoke '{method}' because the connection exceeded its limit of {limit} invocations per second."
    )]
    RateLimited {
        /// The method's name as the client sent it.
        method: String,
        /// The limit in force.
        limit: u32,
    },
    /// The connection already has as many streams open as
    /// [`HubOptions::maximum_streams_per_connection`](crate::HubOptions::maximum_streams_per_connection)
    /// allows; the call did not run.
    #[error(
        "Failed to invoke '{method}' because the connection already has {limit} stream(s) open."
    )]
    TooManyStreams {
        /// The method's name as the client sent it.
        method: String,
        /// The limit in force.
        limit: usize,
    },
    /// The method was invoked the wrong way (a streaming method by Invocation,
    /// say): ASP.NET Core sends the bare sentence.
    #[error("{reason}")]
    Kind {
        /// The method's wire name.
        method: String,
        /// What was wrong.
        reason: String,
    },
}

impl InvocationError {
    /// An argument error of `method`. Stream-count mismatches read as
    /// ASP.NET Core words them.
    pub fn arguments(method: &str, source: ArgumentError) -> Self {
        let method = method.to_owned();
        match source {
            ArgumentError::StreamCount { .. } => InvocationError::Streams { method, source },
            source => InvocationError::Arguments { method, source },
        }
    }

    /// A hub error of `method`.
    pub fn hub(method: &str, source: HubError) -> Self {
        InvocationError::Hub {
            method: method.to_owned(),
            source,
        }
    }

    /// The Completion error text the caller receives; `detailed` is
    /// [`HubOptions::enable_detailed_errors`](crate::HubOptions::enable_detailed_errors),
    /// which adds what ASP.NET Core adds with detailed errors on.
    pub fn completion_text(&self, detailed: bool) -> String {
        match self {
            InvocationError::Arguments { source, .. } if detailed => {
                let detail = match source {
                    ArgumentError::Invalid { .. } => {
                        "Error binding arguments. Make sure that the types of the provided \
                         values match the types of the hub method being invoked."
                            .to_owned()
                    }
                    other => other.to_string(),
                };
                format!("{self} InvalidDataException: {detail}")
            }
            InvocationError::Result { source, .. } if detailed => {
                format!("{self} SerializationException: {source}")
            }
            InvocationError::Hub { method, source } => source.text(
                &format!("An unexpected error occurred invoking '{method}' on the server."),
                detailed,
            ),
            other => other.to_string(),
        }
    }
}
