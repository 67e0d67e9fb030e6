//! The hub layer: handshake, the hub protocol, dispatch and invocations, on top
//! of the connection layer. [`Hub`] mounts one on axum.

pub(crate) mod clients;
pub(crate) mod context;
pub(crate) mod dispatch;
pub(crate) mod error;
pub mod filter;
mod handshake;
pub(crate) mod in_process;
mod invocations;
mod link;
pub(crate) mod options;
pub(crate) mod session;
pub(crate) mod upload;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http::HeaderValue;
use http::request::Parts;

use signal_core::{Authorize, HubMessage};

use crate::auth::{Decision, Gate, Identity, Policies};
use crate::connection::relay::TransportService;
use crate::connection::{Duplex, Endpoint, Handler, HandlerFuture, Start, UserIdFn, parse_origins};
use crate::frame::Frame;
use crate::lifetime::{HubLifetimeManager, HubScope, LocalLifetimeManager, ManagerRelay};
use context::HubHandle;
use dispatch::{BoxFuture, Call, HubDispatch};
use error::InvocationError;
use filter::{FilterResult, HubFilter, HubFilters, Invocation, Lifecycle, Next};
use in_process::InProcess;
use options::HubOptions;

/// A hub ready to be mounted: its dispatch, its options and its registry.
///
/// ```no_run
/// # use signal_server::{Hub, HubDispatch};
/// # fn mount<D: HubDispatch>(dispatch: D) -> axum::Router {
/// let hub = Hub::new(dispatch);
/// let handle = hub.handle(); // for background tasks
/// axum::Router::new().nest("/chat", hub.router())
/// # }
/// ```
pub struct Hub<D: HubDispatch> {
    dispatch: D,
    options: HubOptions,
    user_id: Option<UserIdFn>,
    lifetime: Arc<dyn HubLifetimeManager>,
    allowed_origins: Vec<HeaderValue>,
    policies: Policies,
    /// What every connection needs beyond the trait's `#[signal::authorize]`.
    authorize: Option<Authorize>,
    /// Every hub's filters, then this hub's own.
    shared_filters: HubFilters,
    filters: HubFilters,
    /// Where the routes are mounted, when the hub mounts them itself.
    path: Option<String>,
}

/// What every connection of one mounted hub shares.
pub(crate) struct HubRuntime<D: HubDispatch> {
    pub(crate) dispatch: D,
    /// The hub trait's name.
    pub(crate) name: String,
    pub(crate) options: HubOptions,
    pub(crate) lifetime: Arc<dyn HubLifetimeManager>,
    /// The keep-alive Ping, shared by every connection: encoded once per
    /// protocol for the whole hub, as ASP.NET Core caches its ping bytes.
    pub(crate) ping: Frame,
    pub(crate) access: Access,
    pub(crate) filters: HubFilters,
}

/// What two requirements ask together, where either may be absent.
fn both(a: Option<Authorize>, b: Option<Authorize>) -> Option<Authorize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.and(&b)),
        (a, b) => a.or(b),
    }
}

/// Who may use a hub and call its methods.
pub(crate) struct Access {
    /// What every connection needs (the trait's and the builder's).
    pub(crate) hub: Option<Authorize>,
    /// What each method needs beyond it, by wire name.
    pub(crate) methods: Vec<(String, Authorize)>,
    pub(crate) policies: Policies,
}

impl Access {
    /// Whether `identity` may call `method` (compared without case).
    pub(crate) fn allows(&self, method: &str, identity: Option<&Identity>) -> bool {
        let own = self
            .methods
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(method))
            .map(|(_, rule)| rule);
        self.hub
            .iter()
            .chain(own)
            .all(|rule| self.policies.decide(rule, identity) == Decision::Allowed)
    }

    /// The check on negotiate and transport requests, when the hub has one.
    pub(crate) fn gate(&self) -> Option<Gate> {
        self.hub.clone().map(|requirement| Gate {
            requirement,
            policies: self.policies.clone(),
        })
    }
}

impl<D: HubDispatch> HubRuntime<D> {
    /// What the lifetime manager learns of the hub when it is mounted.
    fn scope(&self) -> HubScope {
        HubScope::new(self.name.clone(), self.options.protocols.clone())
            .with_client_result_timeout(self.options.client_result_timeout)
    }

    /// Runs a call as the hub's clients see it: authorization first, then
    /// the filters, then the hub method.
    pub(crate) fn call<'a>(
        &'a self,
        cx: &'a context::Context<D::Client>,
        call: Call,
    ) -> BoxFuture<'a, FilterResult> {
        let open = self.access.hub.is_none() && self.access.methods.is_empty();
        if !open && !self.access.allows(&call.target, cx.identity()) {
            tracing::debug!(method = %call.target, "invocation refused: user is unauthorized");
            return Box::pin(std::future::ready(Err(InvocationError::Unauthorized(
                call.target,
            ))));
        }
        if self.filters.is_empty() {
            return self.dispatch.dispatch(cx, call);
        }
        Box::pin(async move {
            let untyped = cx.untyped();
            let endpoint: &filter::Endpoint<'_> = &|call: Call| {
                let method: BoxFuture<'_, FilterResult> = self.dispatch.dispatch(cx, call);
                method
            };
            let invocation = Invocation::new(&untyped, &self.name, call);
            Next::new(self.filters.as_slice(), endpoint)
                .run(invocation)
                .await
        })
    }

    /// Runs the hub's `on_connected` through the filters.
    pub(crate) fn connected<'a>(
        &'a self,
        cx: &'a context::Context<D::Client>,
    ) -> BoxFuture<'a, ()> {
        if self.filters.is_empty() {
            return self.dispatch.on_connected(cx);
        }
        Box::pin(async move {
            let untyped = cx.untyped();
            let hook: &filter::Hook<'_> = &|| {
                let hook: BoxFuture<'_, ()> = self.dispatch.on_connected(cx);
                hook
            };
            Lifecycle::new(
                self.filters.as_slice(),
                &untyped,
                filter::Event::Connected,
                hook,
            )
            .run()
            .await
        })
    }

    /// Runs the hub's `on_disconnected` through the filters.
    pub(crate) fn disconnected<'a>(
        &'a self,
        cx: &'a context::Context<D::Client>,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        if self.filters.is_empty() {
            return self.dispatch.on_disconnected(cx, error);
        }
        Box::pin(async move {
            let untyped = cx.untyped();
            let hook: &filter::Hook<'_> = &|| {
                let hook: BoxFuture<'_, ()> = self.dispatch.on_disconnected(cx, error);
                hook
            };
            Lifecycle::new(
                self.filters.as_slice(),
                &untyped,
                filter::Event::Disconnected(error),
                hook,
            )
            .run()
            .await
        })
    }
}

/// Runs each connection of the endpoint as a hub connection.
struct HubHandler<D: HubDispatch>(Arc<HubRuntime<D>>);

impl<D: HubDispatch> Handler for HubHandler<D> {
    fn run(&self, start: Start, duplex: Duplex) -> HandlerFuture {
        Box::pin(session::run(self.0.clone(), start, duplex))
    }
}

impl<D: HubDispatch> Hub<D> {
    /// A hub with default options.
    pub fn new(dispatch: D) -> Self {
        Hub {
            dispatch,
            options: HubOptions::default(),
            user_id: None,
            lifetime: Arc::new(LocalLifetimeManager::new()),
            allowed_origins: Vec::new(),
            policies: Policies::new(),
            authorize: None,
            shared_filters: HubFilters::new(),
            filters: HubFilters::new(),
            path: None,
        }
    }

    /// Registers the policy `name`, which `#[signal::authorize(policy = "name")]`
    /// refers to: `policy` decides from the caller's
    /// [`Identity`](crate::auth::Identity) whether they may go on.
    ///
    /// Mounting a hub whose trait names a policy that was not registered panics.
    #[must_use]
    pub fn policy(
        mut self,
        name: impl Into<String>,
        policy: impl Fn(&Identity) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.policies.insert(name, Arc::new(policy));
        self
    }

    /// Requires `requirement` of every connection, as `#[signal::authorize]`
    /// on the trait does (both apply): negotiate and transport requests
    /// without an [`Identity`](crate::auth::Identity) get 401, with one a
    /// policy refuses 403.
    #[must_use]
    pub fn authorize(mut self, requirement: Authorize) -> Self {
        self.authorize = both(self.authorize.take(), Some(requirement));
        self
    }

    /// Adds a filter around this hub's invocations and lifecycle events,
    /// after the ones added before.
    #[must_use]
    pub fn filter(mut self, filter: impl HubFilter) -> Self {
        self.filters.push(Arc::new(filter));
        self
    }

    /// Adds filters shared by every hub: they run before this hub's own
    /// ([`filter`](Self::filter)), in their order.
    #[must_use]
    pub fn filters(mut self, shared: HubFilters) -> Self {
        self.shared_filters.extend(shared);
        self
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: HubOptions) -> Self {
        self.options = options;
        self
    }

    /// Changes some options in place.
    pub fn configure(mut self, f: impl FnOnce(&mut HubOptions)) -> Self {
        f(&mut self.options);
        self
    }

    /// Sets how a connection's user id is found from its first request; the
    /// `user` and `users` targets address connections by it.
    pub fn user_id(mut self, f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        self.user_id = Some(Arc::new(f));
        self
    }

    /// Allows browsers on these origins (`https://app.example.com`) to connect
    /// across origins, with credentials: CORS answers for negotiate and the HTTP
    /// transports, and WebSocket upgrades from them. Without this, only the
    /// hub's own origin (and non-browser clients) can connect.
    ///
    /// Fails on an origin that is not a valid header value.
    pub fn allow_origins<I, T>(
        mut self,
        origins: I,
    ) -> Result<Self, http::header::InvalidHeaderValue>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.allowed_origins.extend(parse_origins(origins)?);
        Ok(self)
    }

    /// Sends and group changes go through `manager` (a backplane, for
    /// scale-out) instead of this node's registry alone. Set it before taking
    /// [`handle`](Self::handle)s.
    #[must_use]
    pub fn lifetime_manager(mut self, manager: impl HubLifetimeManager) -> Self {
        self.lifetime = Arc::new(manager);
        self
    }

    /// The options in force.
    pub fn options(&self) -> &HubOptions {
        &self.options
    }

    /// A handle to send to this hub's clients from anywhere.
    pub fn handle(&self) -> HubHandle<D::Client> {
        HubHandle::new(self.lifetime.clone())
    }

    /// Mounts the hub's routes at `path` (`"/chat"`), as ASP.NET Core's
    /// `MapHub<ChatHub>("/chat")` does: [`router`](Self::router) then returns
    /// `POST /chat/negotiate` and the transports at `/chat`, to
    /// [`merge`](Router::merge) into the application's router rather than
    /// `nest`. The routes are the same; what is saved is `nest`'s rewrite of
    /// each request's URI (a new URI built per request, about 8 % of a
    /// client's connect).
    ///
    /// # Panics
    ///
    /// When `path` does not start with `/`, or ends with one.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        assert!(
            path.starts_with('/') && !path.ends_with('/'),
            "a hub's path starts with `/` and does not end with one: {path:?}"
        );
        self.path = Some(path);
        self
    }

    /// The hub's endpoints, to `nest` under the hub's path:
    /// `POST /negotiate` and the transports at `/`. With a [`path`](Self::path),
    /// the routes are at that path, to `merge`.
    ///
    /// # Panics
    ///
    /// When the hub requires an authorization policy (`#[signal::authorize(policy = "…")]`)
    /// that was not registered with [`policy`](Self::policy).
    pub fn router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let user_id = self.user_id.clone();
        let allowed_origins = self.allowed_origins.clone();
        let path = self.path.clone();
        let runtime = self.into_runtime_unattached();
        router_of(runtime, user_id, allowed_origins, path.as_deref())
    }

    /// The hub's Core endpoints, as [`router`](Self::router) returns them (at
    /// its [`path`](Self::path), if it has one), and
    /// the hub served to ASP.NET SignalR 2.x clients on `legacy` too: one
    /// dispatch, one registry, so sends, groups and users reach both families.
    ///
    /// # Panics
    ///
    /// When the hub already offers [`MAX_PROTOCOLS`](signal_core::MAX_PROTOCOLS)
    /// protocols: the 2.x encoding needs a slot.
    pub fn router_with_legacy<S>(self, legacy: &mut crate::legacy::LegacyEndpoint) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let user_id = self.user_id.clone();
        let allowed_origins = self.allowed_origins.clone();
        let path = self.path.clone();
        let runtime = self.into_runtime_unattached();
        legacy.add_runtime(runtime.clone());
        router_of(runtime, user_id, allowed_origins, path.as_deref())
    }
}

/// The Core endpoints of a hub's runtime.
fn router_of<S, D: HubDispatch>(
    runtime: Arc<HubRuntime<D>>,
    user_id: Option<UserIdFn>,
    allowed_origins: Vec<HeaderValue>,
    path: Option<&str>,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut extra = Router::new();
    if runtime.options.schema_endpoint {
        // The contract does not change while the server runs: render it once.
        let document = serde_json::to_string_pretty(&runtime.dispatch.descriptor())
            .expect("descriptors serialize");
        extra = extra.route(
            &crate::connection::mounted(path, "/schema"),
            get(move || {
                let document = document.clone();
                async move { ([(http::header::CONTENT_TYPE, "application/json")], document) }
            }),
        );
    }
    let lifetime = runtime.lifetime.clone();
    let scope = runtime.scope();
    let gate = runtime.access.gate();
    let mut endpoint = Endpoint::new(
        runtime.options.connection_options(),
        user_id,
        allowed_origins,
        Arc::new(HubHandler(runtime)),
    );
    endpoint.gate = gate;
    let endpoint = Arc::new(endpoint);
    lifetime.attach(&scope.with_transport(TransportService::new(endpoint.clone())));
    if lifetime.relays() {
        let _ = endpoint.relay.set(Arc::new(ManagerRelay(lifetime)));
    }
    endpoint.router(extra, path)
}

impl<D: HubDispatch> Hub<D> {
    /// The hub without a network: connections in the same process, for tests
    /// and for in-process callers. Runs the real session loop and codec.
    pub fn in_process(self) -> InProcess<D> {
        InProcess::new(self.into_runtime())
    }

    pub(crate) fn into_runtime(self) -> Arc<HubRuntime<D>> {
        let runtime = self.into_runtime_unattached();
        runtime.lifetime.attach(&runtime.scope());
        runtime
    }

    /// # Panics
    ///
    /// When the hub requires a policy that was not registered: every call
    /// would be refused, a mistake better found at startup.
    fn into_runtime_unattached(self) -> Arc<HubRuntime<D>> {
        let descriptor = self.dispatch.descriptor();
        let hub = both(descriptor.authorize.clone(), self.authorize);
        let methods: Vec<(String, Authorize)> = descriptor
            .methods
            .iter()
            .filter_map(|m| Some((m.wire_name.clone(), m.authorize.clone()?)))
            .collect();
        for rule in hub.iter().chain(methods.iter().map(|(_, rule)| rule)) {
            if let Some(missing) = self.policies.missing(rule).first() {
                panic!(
                    "the `{}` hub requires the authorization policy `{missing}`, which is not \
                     registered: add `.policy(\"{missing}\", |identity| …)` to the hub",
                    descriptor.name
                );
            }
        }
        let mut filters = self.shared_filters;
        filters.extend(self.filters);
        self.lifetime.local().name_metrics(&descriptor.name);
        Arc::new(HubRuntime {
            dispatch: self.dispatch,
            name: descriptor.name,
            options: self.options,
            lifetime: self.lifetime,
            ping: Frame::hub(HubMessage::Ping),
            access: Access {
                hub,
                methods,
                policies: self.policies,
            },
            filters,
        })
    }
}
