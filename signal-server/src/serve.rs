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
/// Run it on tokio's multi-threaded runtime (`#[tokio::main]`'s default):
/// connections are spread over every core.
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
