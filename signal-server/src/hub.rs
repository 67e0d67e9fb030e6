//! Mounting a hub on axum.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use http::request::Parts;

use crate::context::HubHandle;
use crate::dispatch::HubDispatch;
use crate::http_transports::{self, HttpConnections};
use crate::in_process::InProcess;
use crate::lifetime::Lifetime;
use crate::negotiate::{self, Negotiations};
use crate::options::HubOptions;
use crate::websocket;

/// Names the user of a request (from its headers, cookies or extensions, as an
/// authentication layer left them); `None` for an anonymous connection.
pub type UserIdFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

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
    lifetime: Arc<Lifetime>,
}

/// What the endpoints of one mounted hub share.
pub(crate) struct HubRuntime<D: HubDispatch> {
    pub(crate) dispatch: D,
    pub(crate) options: HubOptions,
    pub(crate) user_id: Option<UserIdFn>,
    pub(crate) lifetime: Arc<Lifetime>,
    pub(crate) negotiations: Negotiations,
    pub(crate) http: HttpConnections,
}

impl<D: HubDispatch> Hub<D> {
    /// A hub with default options.
    pub fn new(dispatch: D) -> Self {
        Hub {
            dispatch,
            options: HubOptions::default(),
            user_id: None,
            lifetime: Arc::default(),
        }
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

    /// The options in force.
    pub fn options(&self) -> &HubOptions {
        &self.options
    }

    /// A handle to send to this hub's clients from anywhere.
    pub fn handle(&self) -> HubHandle<D::Client> {
        HubHandle::new(self.lifetime.clone())
    }

    /// The hub's endpoints, to `nest` under the hub's path:
    /// `POST /negotiate` and the transports at `/`.
    pub fn router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let runtime = self.into_runtime();
        Router::new()
            .route("/negotiate", post(negotiate::negotiate::<D>))
            .route(
                "/",
                get(websocket::connect::<D>)
                    .post(http_transports::post::<D>)
                    .delete(http_transports::delete::<D>),
            )
            .with_state(runtime)
    }

    /// The hub without a network: connections in the same process, for tests
    /// and for in-process callers. Runs the real session loop and codec.
    pub fn in_process(self) -> InProcess<D> {
        InProcess::new(self.into_runtime())
    }

    fn into_runtime(self) -> Arc<HubRuntime<D>> {
        Arc::new(HubRuntime {
            dispatch: self.dispatch,
            negotiations: Negotiations::new(self.options.negotiate_timeout),
            options: self.options,
            user_id: self.user_id,
            lifetime: self.lifetime,
            http: HttpConnections::default(),
        })
    }
}
