//! Serving a router the way real-time traffic needs: every accepted socket
//! with `TCP_NODELAY`, and the peer's address for hub code.

use std::net::SocketAddr;

use axum::Router;
use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};

/// `listener` with `TCP_NODELAY` set on every connection it accepts.
///
/// Nagle's algorithm holds a small write back until the last one is
/// acknowledged. A hub's messages are mostly small, and with delayed ACKs a
/// reply can wait tens of milliseconds. axum's `serve` leaves the option as
/// the OS has it (off).
pub fn nodelay(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_nodelay as fn(&mut TcpStream))
}

fn set_nodelay(tcp: &mut TcpStream) {
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY could not be set");
    }
}

/// Serves `app` on `listener` until the process ends: `TCP_NODELAY` on every
/// connection ([`nodelay`]), and the peer's address in each request's
/// `ConnectInfo<SocketAddr>` (which hub code reads through
/// [`Context::request`](crate::Context::request) and the connection's logs
/// show).
///
/// ```no_run
/// # async fn run(app: axum::Router) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
/// signal_server::serve(listener, app).await
/// # }
/// ```
///
/// Run it on tokio's multi-threaded runtime: [`runtime`] builds it as a server
/// of many connections wants it (`#[tokio::main]`'s default also works).
pub async fn serve(listener: TcpListener, app: Router) -> std::io::Result<()> {
    serve_until(listener, app, std::future::pending()).await
}

/// [`serve`], until `shutdown` completes; then waits for the requests in
/// flight to end (axum's graceful shutdown). Close the hubs' connections in
/// `shutdown` with [`HubHandle::shutdown`](crate::HubHandle::shutdown), so
/// that their clients reconnect elsewhere.
pub async fn serve_until(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        nodelay(listener),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// How many tasks a worker runs from its own queue before it looks at the
/// shared one. With a thousand connections ready at once a worker's own queue
/// (256 tasks) overflows into the shared one, and tasks there waited while the
/// worker kept refilling its own: at tokio's default, a thousand echoing
/// clients saw a p99 of 160 ms against a p50 of 2. At 8 the p99 was 70–80 ms at
/// the same throughput (`bench/run`'s echo); at 4 it was 41 ms, and the
/// throughput a fifth lower.
const GLOBAL_QUEUE_INTERVAL: u32 = 8;

/// tokio's multi-threaded runtime, with every driver, tuned for a server of
/// many connections: a worker turns to the shared queue of ready tasks every
/// 8 tasks, so that when more connections are ready than a worker's queue
/// holds, the ones that overflowed are not left waiting.
///
/// ```no_run
/// fn main() -> std::io::Result<()> {
///     signal_server::runtime()?.block_on(async {
///         let app = axum::Router::new();
///         let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
///         signal_server::serve(listener, app).await
///     })
/// }
/// ```
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .global_queue_interval(GLOBAL_QUEUE_INTERVAL)
        .build()
}
