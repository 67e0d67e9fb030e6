//! The life of a 2.x connection: opened by its first `/connect`, attached
//! to the hubs it subscribes to (their queues drained into its replay
//! buffer), started by `/start`, fed by `/send`s and WebSocket frames, and
//! ended by `/abort`, the disconnect timeout, or the hub.

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use tokio::sync::mpsc;

use super::connection::{Capacity, HubLink, LegacyConnection};
use super::endpoint::{Kind, Params, Shared, subscribed_hubs};
use super::hubs::{self, HubInvocation, LegacyHub};
use super::{LegacyTransport, refuse};
use crate::connection::{ConnectionId, Message};
use crate::frame::Frame;
use crate::lifetime::Next;

/// The connection a `/connect` opens (or the same one, when the client falls
/// back to another transport with its token).
pub(crate) fn connect(
    shared: &Arc<Shared>,
    id: &ConnectionId,
    user: Option<Arc<str>>,
    params: &Params,
    transport: LegacyTransport,
    request: &http::request::Parts,
) -> Result<Arc<LegacyConnection>, Box<Response>> {
    let hubs = match &shared.kind {
        Kind::Hubs(_) => subscribed_hubs(shared, params)
            .map_err(|error| Box::new(refuse(StatusCode::BAD_REQUEST, error)))?,
        Kind::Raw(_) => Vec::new(),
    };
    let mut connections = shared.connections.lock().expect("connections lock");
    if let Some(connection) = connections.get(id) {
        return Ok(connection.clone());
    }
    let options = shared.options();
    let connection = Arc::new(
        LegacyConnection::new(
            id.clone(),
            user.clone(),
            Capacity {
                messages: options.message_buffer_size,
                bytes: options.message_buffer_bytes,
            },
        )
        .with_request(request),
    );
    {
        let mut links = connection.hubs.lock().expect("hubs lock");
        for hub in hubs {
            links.push(link_hub(shared, &connection, hub, transport, true));
        }
    }
    connections.insert(id.clone(), connection.clone());
    drop(connections);
    tokio::spawn(watch_disconnect(shared.clone(), connection.clone()));
    tracing::debug!(connection = %id, transport = transport.name(), "2.x connection opened");
    Ok(connection)
}

/// Attaches the connection to `hub`: a handle whose queue is drained into the
/// connection's replay buffer, in the hub's 2.x encoding.
fn link_hub(
    shared: &Arc<Shared>,
    connection: &Arc<LegacyConnection>,
    hub: Arc<dyn LegacyHub>,
    transport: LegacyTransport,
    subscribed: bool,
) -> HubLink {
    let (tx, rx) = crate::lifetime::outbox(1024);
    let handle = hub.attach(
        &connection.id,
        connection.user.clone(),
        transport.core(),
        tx,
        subscribed,
        connection.request.clone(),
    );
    tokio::spawn(pump_frames(
        shared.clone(),
        connection.clone(),
        hub.clone(),
        rx,
    ));
    HubLink {
        hub,
        handle,
        subscribed,
    }
}

/// Moves what a hub queues for the connection into its replay buffer. When
/// the hub closes the connection (`Context::abort`, a server shutdown), what
/// was queued still goes in, then the connection ends: its client is told to
/// start over when it next comes for messages.
async fn pump_frames(
    shared: Arc<Shared>,
    connection: Arc<LegacyConnection>,
    hub: Arc<dyn LegacyHub>,
    mut frames: crate::lifetime::OutboxReceiver,
) {
    let push = |frame: Frame| match hub.encode(frame) {
        Ok(Some(bytes)) => {
            connection.push(bytes);
        }
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(%error, "a message could not be encoded for a 2.x client; dropped")
        }
    };
    loop {
        tokio::select! {
            _ = connection.ended.cancelled() => return,
            next = frames.next(true) => match next {
                Some(Next::Frame(frame)) => push(frame),
                Some(Next::Closing) => break,
                None => return,
            },
        }
    }
    while let Some(frame) = frames.try_recv() {
        push(frame);
    }
    tracing::debug!(connection = %connection.id, "the hub closed a 2.x connection");
    close(&shared, &connection).await;
}

/// Ends the connection once it has had no transport for the disconnect timeout.
async fn watch_disconnect(shared: Arc<Shared>, connection: Arc<LegacyConnection>) {
    let timeout = shared.options().disconnect_timeout;
    loop {
        let deadline = match connection.idle_since() {
            Some(since) if since.elapsed() >= timeout => break,
            Some(since) => since + timeout,
            None => tokio::time::Instant::now() + timeout,
        };
        tokio::select! {
            _ = connection.ended.cancelled() => return,
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    tracing::debug!(connection = %connection.id, "2.x client did not come back within the disconnect timeout");
    end(&shared, &connection, false).await;
}

/// Ends a connection once: out of the endpoint and the hubs' registries, with
/// `on_disconnected`; a raw connection's handler sees its messages end.
pub(crate) async fn end(shared: &Shared, connection: &Arc<LegacyConnection>, stop_called: bool) {
    if !connection.begin_end() {
        return;
    }
    forget(shared, connection);
    disconnect(connection, stop_called).await;
}

/// Ends a connection the server closes (the hub, a shutdown): it stays
/// reachable for [`CLOSED_LINGER`], so that its client still gets what was
/// sent before the close, then is told the server closed it.
pub(crate) async fn close(shared: &Arc<Shared>, connection: &Arc<LegacyConnection>) {
    if !connection.begin_end() {
        return;
    }
    {
        let shared = shared.clone();
        let connection = connection.clone();
        tokio::spawn(async move {
            tokio::time::sleep(CLOSED_LINGER).await;
            forget(&shared, &connection);
        });
    }
    disconnect(connection, false).await;
}

/// How long a connection the server closed still answers its client.
const CLOSED_LINGER: Duration = Duration::from_secs(5);

fn forget(shared: &Shared, connection: &Arc<LegacyConnection>) {
    let mut connections = shared.connections.lock().expect("connections lock");
    if connections
        .get(&connection.id)
        .is_some_and(|c| Arc::ptr_eq(c, connection))
    {
        connections.remove(&connection.id);
    }
}

async fn disconnect(connection: &Arc<LegacyConnection>, stop_called: bool) {
    tracing::debug!(connection = %connection.id, stop_called, "2.x connection ended");
    let links = std::mem::take(&mut *connection.hubs.lock().expect("hubs lock"));
    // A connection that never started saw no `on_connected`: no `on_disconnected` either.
    let started = connection
        .started
        .load(std::sync::atomic::Ordering::Acquire);
    for link in links {
        if link.subscribed {
            link.hub.disconnected(link.handle, started).await;
        }
    }
    connection.raw.lock().expect("raw lock").take();
}

/// `/start`: runs `on_connected` of the subscribed hubs (or starts the raw
/// handler) once, before the client is told it has started.
pub(crate) async fn start(
    shared: &Arc<Shared>,
    connection: &Arc<LegacyConnection>,
    transport: LegacyTransport,
    parts: Parts,
) {
    if connection
        .started
        .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        return;
    }
    match &shared.kind {
        Kind::Hubs(_) => {
            let links: Vec<_> = connection
                .hubs
                .lock()
                .expect("hubs lock")
                .iter()
                .filter(|l| l.subscribed)
                .map(|l| (l.hub.clone(), l.handle.clone()))
                .collect();
            for (hub, handle) in links {
                hub.connected(handle).await;
            }
        }
        Kind::Raw(raw) => raw.start(shared.clone(), connection.clone(), transport, parts),
    }
}

/// A message from the client (a `/send`'s `data`, a WebSocket frame): a hub
/// invocation, answered with its result, or a raw connection's message.
pub(crate) async fn receive_data(
    shared: &Arc<Shared>,
    connection: &Arc<LegacyConnection>,
    transport: LegacyTransport,
    data: String,
) -> Result<Option<String>, String> {
    if let Kind::Raw(_) = shared.kind {
        let sender = connection.raw.lock().expect("raw lock").clone();
        return match sender {
            Some(sender) => {
                let _ = sender.send(Message::Text(data.into())).await;
                Ok(None)
            }
            None => Err("The connection has not started: send /start first.".to_owned()),
        };
    }
    let invocation: HubInvocation = serde_json::from_str(&data).map_err(|error| {
        format!("The message is not a hub invocation ({{\"H\",\"M\",\"A\",\"I\"}}): {error}")
    })?;
    if let Some(state) = &invocation.state {
        let length = serde_json::to_string(state).map_or(0, |s| s.len());
        if length > 4096 {
            return Ok(Some(result_json(&hubs::HubResult::error(
                invocation.id_text(),
                "State has exceeded the maximum length of 4096 bytes.".to_owned(),
            ))));
        }
    }
    let Some(hub) = shared.find_hub(&invocation.hub) else {
        return Ok(Some(result_json(&hubs::HubResult::error(
            invocation.id_text(),
            format!("'{}' Hub could not be resolved.", invocation.hub),
        ))));
    };
    let handle = {
        let mut links = connection.hubs.lock().expect("hubs lock");
        match links.iter().find(|l| Arc::ptr_eq(&l.hub, &hub)) {
            Some(link) => link.handle.clone(),
            None => {
                // Invoking a hub the client did not subscribe to is allowed;
                // its handle is not registered, so it gets no broadcasts.
                let link = link_hub(shared, connection, hub.clone(), transport, false);
                let handle = link.handle.clone();
                links.push(link);
                handle
            }
        }
    };
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel::<Bytes>();
    let forward = {
        let connection = connection.clone();
        tokio::spawn(async move {
            let mut last = None;
            while let Some(message) = progress_rx.recv().await {
                last = Some(connection.push(message));
            }
            last
        })
    };
    let result = {
        let _turn = connection.calls.lock().await;
        hub.invoke(handle, invocation, progress_tx).await
    };
    let json = result_json(&result);
    if let Ok(Some(_)) = forward.await {
        // Progress travels in envelopes, and the client drops progress that
        // arrives after the result: the result follows the progress there,
        // on the same channel, instead of in this answer.
        connection.push(Bytes::from(json));
        return Ok(None);
    }
    Ok(Some(json))
}

fn result_json(result: &hubs::HubResult) -> String {
    serde_json::to_string(result).unwrap_or_else(|error| {
        serde_json::json!({
            "I": result.id,
            "E": format!("The result could not be serialized: {error}"),
        })
        .to_string()
    })
}
