//! Hub filters: middleware around every invocation and around connect and
//! disconnect, as ASP.NET Core's `IHubFilter`. Logging, metrics, validation,
//! rate limiting and authorization of one's own fit here; a filter sees the
//! method's name, its raw arguments and the connection, and either calls the
//! next filter (and at the end the hub method) or answers itself.

use std::sync::Arc;

use signal_core::Arguments;

use super::context::Context;
use super::dispatch::{BoxFuture, Call, Output};
use super::error::InvocationError;

/// What an invocation filter returns: the method's output, or why it failed.
pub type FilterResult = Result<Output, InvocationError>;

/// Middleware around a hub's invocations and lifecycle events.
///
/// Filters run in the order they were added: every hub's shared ones (one
/// [`HubFilters`] added with [`Hub::filters`](crate::Hub::filters)) before the
/// hub's own. Authorization (`#[signal::authorize]`) is decided before any
/// filter runs, as in ASP.NET Core.
///
/// ```
/// use signal_server::filter::{FilterResult, HubFilter, Invocation, Next};
/// use signal_server::{BoxFuture, HubError, InvocationError};
///
/// /// Refuses calls with more than 8 arguments, and logs the others' timing.
/// struct Guard;
///
/// impl HubFilter for Guard {
///     fn invoke<'a>(&'a self, invocation: Invocation<'a>, next: Next<'a>) -> BoxFuture<'a, FilterResult> {
///         Box::pin(async move {
///             if invocation.arguments().len() > 8 {
///                 let method = invocation.method().to_owned();
///                 return Err(InvocationError::hub(&method, HubError::new("too many arguments")));
///             }
///             let started = std::time::Instant::now();
///             let method = invocation.method().to_owned();
///             let result = next.run(invocation).await;
///             tracing::info!(%method, elapsed = ?started.elapsed(), ok = result.is_ok());
///             result
///         })
///     }
/// }
/// ```
pub trait HubFilter: Send + Sync + 'static {
    /// Runs around one invocation; `next.run(invocation)` goes on to the next
    /// filter and finally the hub method. Returning without calling it answers
    /// the call with what is returned (an error's Completion text is
    /// [`InvocationError::completion_text`]'s).
    fn invoke<'a>(
        &'a self,
        invocation: Invocation<'a>,
        next: Next<'a>,
    ) -> BoxFuture<'a, FilterResult> {
        next.run(invocation)
    }

    /// Runs around the hub's `on_connected`.
    fn on_connected<'a>(&'a self, cx: &'a Context, next: Lifecycle<'a>) -> BoxFuture<'a, ()> {
        let _ = cx;
        next.run()
    }

    /// Runs around the hub's `on_disconnected`; `error` says why the
    /// connection ended when it ended on a fault.
    fn on_disconnected<'a>(
        &'a self,
        cx: &'a Context,
        error: Option<&'a str>,
        next: Lifecycle<'a>,
    ) -> BoxFuture<'a, ()> {
        let _ = (cx, error);
        next.run()
    }
}

/// An ordered list of filters, to share between hubs (the filters "for every
/// hub"): clone it into each.
#[derive(Clone, Default)]
pub struct HubFilters(Vec<Arc<dyn HubFilter>>);

impl HubFilters {
    /// No filters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a filter after the others.
    #[must_use]
    pub fn with(mut self, filter: impl HubFilter) -> Self {
        self.0.push(Arc::new(filter));
        self
    }

    /// Adds the filters of `other` after these.
    pub(crate) fn extend(&mut self, other: HubFilters) {
        self.0.extend(other.0);
    }

    /// Adds one filter after the others.
    pub(crate) fn push(&mut self, filter: Arc<dyn HubFilter>) {
        self.0.push(filter);
    }

    /// Whether there are none (the hub then skips the filter machinery).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn as_slice(&self) -> &[Arc<dyn HubFilter>] {
        &self.0
    }
}

impl std::fmt::Debug for HubFilters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HubFilters({})", self.0.len())
    }
}

/// One invocation on its way through the filters.
pub struct Invocation<'a> {
    context: &'a Context,
    hub: &'a str,
    call: Call,
}

impl<'a> Invocation<'a> {
    pub(crate) fn new(context: &'a Context, hub: &'a str, call: Call) -> Self {
        Invocation { context, hub, call }
    }

    /// The calling connection: its id, user, identity, request and items, and
    /// the hub's clients and groups (untyped).
    pub fn context(&self) -> &'a Context {
        self.context
    }

    /// The hub's name (its trait's).
    pub fn hub(&self) -> &'a str {
        self.hub
    }

    /// The method's name as the client sent it.
    pub fn method(&self) -> &str {
        &self.call.target
    }

    /// The arguments as they arrived, not yet bound to the method's types.
    pub fn arguments(&self) -> &Arguments {
        &self.call.arguments
    }

    /// The call itself, to change before the method sees it.
    pub fn call_mut(&mut self) -> &mut Call {
        &mut self.call
    }
}

/// The endpoint at the end of the filters: the hub method.
pub(crate) type Endpoint<'a> = dyn Fn(Call) -> BoxFuture<'a, FilterResult> + Send + Sync + 'a;

/// The rest of the filters, then the hub method.
pub struct Next<'a> {
    filters: &'a [Arc<dyn HubFilter>],
    endpoint: &'a Endpoint<'a>,
}

impl<'a> Next<'a> {
    pub(crate) fn new(filters: &'a [Arc<dyn HubFilter>], endpoint: &'a Endpoint<'a>) -> Self {
        Next { filters, endpoint }
    }

    /// Runs the next filter, or the hub method after the last.
    pub fn run(self, invocation: Invocation<'a>) -> BoxFuture<'a, FilterResult> {
        match self.filters.split_first() {
            Some((first, rest)) => first.invoke(
                invocation,
                Next {
                    filters: rest,
                    endpoint: self.endpoint,
                },
            ),
            None => (self.endpoint)(invocation.call),
        }
    }
}

/// The hook at the end of a lifecycle filter chain.
pub(crate) type Hook<'a> = dyn Fn() -> BoxFuture<'a, ()> + Send + Sync + 'a;

/// Which lifecycle event a [`Lifecycle`] chain runs.
#[derive(Clone, Copy)]
pub(crate) enum Event<'a> {
    Connected,
    Disconnected(Option<&'a str>),
}

/// The rest of the lifecycle filters, then the hub's own hook.
pub struct Lifecycle<'a> {
    filters: &'a [Arc<dyn HubFilter>],
    context: &'a Context,
    event: Event<'a>,
    hook: &'a Hook<'a>,
}

impl<'a> Lifecycle<'a> {
    pub(crate) fn new(
        filters: &'a [Arc<dyn HubFilter>],
        context: &'a Context,
        event: Event<'a>,
        hook: &'a Hook<'a>,
    ) -> Self {
        Lifecycle {
            filters,
            context,
            event,
            hook,
        }
    }

    /// Runs the next filter, or the hub's hook after the last.
    pub fn run(self) -> BoxFuture<'a, ()> {
        let Some((first, rest)) = self.filters.split_first() else {
            return (self.hook)();
        };
        let next = Lifecycle {
            filters: rest,
            ..self
        };
        match self.event {
            Event::Connected => first.on_connected(self.context, next),
            Event::Disconnected(error) => first.on_disconnected(self.context, error, next),
        }
    }
}
