//! What every example's `main` does: logging, the port, the ready line, serving.

/// Logs to stderr, filtered by `RUST_LOG` (`info` by default; `signal=debug`
/// shows each connection's id, transport and remote address).
pub(crate) fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Serves `app` on `127.0.0.1:$PORT` (5000 by default) and prints
/// `listening on http://127.0.0.1:PORT` once ready. On Ctrl-C or SIGTERM it runs
/// `shutdown` (closing the hubs' connections with `allowReconnect`) and stops.
#[allow(dead_code)] // examples beside the chat use `serve_on`
pub(crate) async fn serve(
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(5000, app, shutdown).await
}

/// [`serve`] with another default port, for examples meant to run beside the
/// chat.
#[allow(dead_code)] // the chat's family uses `serve`
pub(crate) async fn serve_on(
    default_port: u16,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| default_port.to_string());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let address = listener.local_addr()?;
    println!("listening on http://{address}");
    // TCP_NODELAY on every connection, the peer's address for hub code.
    signal::serve_until(listener, app, async move {
        stop_requested().await;
        shutdown.await;
    })
    .await
}

/// The repository's root, where `examples/` and the npm install are.
#[allow(dead_code)] // not every example serves a page
pub(crate) fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file or folder of the npm install; an error saying to run `npm ci`
/// when it is missing.
#[allow(dead_code)] // not every example serves a page
pub(crate) fn node_module(path: &str) -> std::io::Result<std::path::PathBuf> {
    let file = root().join("node_modules").join(path);
    if file.exists() {
        Ok(file)
    } else {
        Err(std::io::Error::other(format!(
            "{} is missing; run `npm ci` in {} first",
            file.display(),
            root().display()
        )))
    }
}

/// The routes of the example page in `examples/{name}/`: `/` (its
/// `index.html`), `/{name}.js` (its script), `/page.js` (what every page
/// shares), `/signalr.js` (the official client's browser bundle, from the
/// npm install, never a CDN) and `/generated/{name}.js` (the typed proxy
/// the build script rendered).
#[allow(dead_code)] // not every example serves a page
pub(crate) fn page(name: &str) -> std::io::Result<axum::Router> {
    use tower_http::services::ServeFile;
    let bundle = node_module("@microsoft/signalr/dist/browser/signalr.js")?;
    let examples = root().join("examples");
    let page = examples.join(name);
    Ok(axum::Router::new()
        .route_service("/", ServeFile::new(page.join("index.html")))
        .route_service(
            &format!("/{name}.js"),
            ServeFile::new(page.join(format!("{name}.js"))),
        )
        .route_service("/page.js", ServeFile::new(examples.join("support/page.js")))
        .route_service("/signalr.js", ServeFile::new(bundle))
        .route_service(
            &format!("/generated/{name}.js"),
            ServeFile::new(examples.join(format!("generated/{name}.js"))),
        ))
}

/// A comma-separated environment variable as a list; `None` when unset or empty.
#[allow(dead_code)] // not every example reads one
pub(crate) fn env_list(name: &str) -> Option<Vec<String>> {
    let value = std::env::var(name).ok()?;
    let items: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

/// An environment variable in milliseconds; `None` when unset, an error when
/// it is not a whole number.
#[allow(dead_code)] // not every example reads one
pub(crate) fn env_millis(name: &str) -> std::io::Result<Option<std::time::Duration>> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(value) => value
            .trim()
            .parse::<u64>()
            .map(|ms| Some(std::time::Duration::from_millis(ms)))
            .map_err(|e| std::io::Error::other(format!("{name}={value:?}: {e}"))),
    }
}

/// An environment variable as a whole number; `None` when unset, an error
/// when it is not one.
#[allow(dead_code)] // not every example reads one
pub(crate) fn env_number<T: std::str::FromStr>(name: &str) -> std::io::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(value) => value
            .trim()
            .parse::<T>()
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("{name}={value:?}: {e}"))),
    }
}

/// Ctrl-C, or SIGTERM where there is one (how service managers stop a server).
async fn stop_requested() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// With `SIGNAL_REDIS=redis://HOST:PORT` set, the hub joins that Redis
/// backplane, its channels named `name` (no prefix); unset, it stays on this
/// node. Await [`Backplane::ready`] once the hub is mounted.
#[allow(dead_code)] // not every example scales out
pub(crate) fn backplane<D: signal::HubDispatch>(
    hub: signal::Hub<D>,
    name: &str,
) -> std::io::Result<(signal::Hub<D>, Backplane)> {
    let Ok(url) = std::env::var("SIGNAL_REDIS") else {
        return Ok((hub, Backplane(None)));
    };
    let redis = std::sync::Arc::new(
        signal_redis::Redis::new(&url)
            .map_err(std::io::Error::other)?
            .hub_name(name),
    );
    tracing::info!(url, name, "joining the Redis backplane");
    Ok((hub.lifetime_manager(redis.clone()), Backplane(Some(redis))))
}

/// The Redis backplane an example joined, if any.
#[allow(dead_code)] // not every example scales out
pub(crate) struct Backplane(Option<std::sync::Arc<signal_redis::Redis>>);

#[allow(dead_code)] // not every example scales out
impl Backplane {
    /// Waits (up to 10 s) until the node has subscribed to its channels, so
    /// that it takes part in the cluster from its first request; a Redis that
    /// is down does not keep the server from starting.
    pub(crate) async fn ready(&self) {
        if let Some(redis) = &self.0
            && tokio::time::timeout(std::time::Duration::from_secs(10), redis.ready())
                .await
                .is_err()
        {
            tracing::warn!("Redis is not answering yet; serving this node's clients meanwhile");
        }
    }
}
