//! The four 2.x transports over one feed of envelopes: a receive request
//! (`/connect`, `/reconnect`, `/poll`) opens a feed from a cursor, and each
//! transport frames what it yields — WebSocket text frames, `data:` events,
//! `<script>` chunks in a forever frame, or one long-poll answer (JSONP-wrapped
//! when asked).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{StatusCode, header};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::connection::{LegacyConnection, Receiver};
use super::{LegacyTransport, Params, Shared, groups_token, receive_data, refuse};

/// At most this many messages go in one envelope.
const MAX_BATCH: usize = 1000;

/// Where a receive request starts.
#[derive(Debug)]
pub(crate) enum From {
    /// `/connect`: the init envelope (`S:1`), then what follows.
    Init,
    /// After the cursor the client echoes (`messageId`).
    Cursor(String),
    /// No cursor: from now on.
    Now,
}

/// What a feed yields for its transport to frame.
enum Chunk {
    /// An envelope (or an error envelope `{"E":…}`).
    Json(String),
    /// Nothing to send for a while: a keep-alive.
    KeepAlive,
}

impl Chunk {
    /// The JSON to write; `None` for a keep-alive.
    fn into_json(self) -> Option<String> {
        match self {
            Chunk::Json(json) => Some(json),
            Chunk::KeepAlive => None,
        }
    }
}

/// The persistent response `{"C":…[,"S":1][,"G":…],"M":[…]}`, in the 2.x order.
fn envelope(cursor: &str, init: bool, groups: Option<&str>, messages: &[Bytes]) -> String {
    let mut out = String::with_capacity(32 + messages.iter().map(Bytes::len).sum::<usize>());
    out.push_str("{\"C\":");
    out.push_str(&serde_json::to_string(cursor).expect("strings serialize"));
    if init {
        out.push_str(",\"S\":1");
    }
    if let Some(groups) = groups {
        out.push_str(",\"G\":");
        out.push_str(&serde_json::to_string(groups).expect("strings serialize"));
    }
    out.push_str(",\"M\":[");
    for (index, message) in messages.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&String::from_utf8_lossy(message));
    }
    out.push_str("]}");
    out
}

/// The envelope that stops the client with `text` (its `onError`, then `stop`).
fn error_envelope(text: &str) -> String {
    serde_json::json!({ "E": text }).to_string()
}

/// How a feed runs.
struct Mode {
    init: bool,
    /// Long polling: one envelope, then the answer ends.
    once: bool,
    /// Long polling: how long to wait for something to send.
    hold: Option<Duration>,
    keep_alive: Option<Duration>,
}

/// Yields envelopes of the connection's messages after `after`, until the
/// client goes, a newer receive request replaces this one, or the connection ends.
async fn feed(
    shared: Arc<Shared>,
    connection: Arc<LegacyConnection>,
    mut receiver: Receiver,
    mut after: u64,
    mode: Mode,
    tx: mpsc::Sender<Chunk>,
) {
    if mode.init {
        let cursor = connection.read_after(after, 0).map(|b| b.cursor);
        let groups = groups_token(&shared, &connection);
        let init = envelope(&cursor.unwrap_or_default(), true, groups.as_deref(), &[]);
        if tx.send(Chunk::Json(init)).await.is_err() || mode.once {
            return;
        }
    }
    let mut last = connection.watch_last();
    let deadline = mode.hold.map(|hold| Instant::now() + hold);
    loop {
        last.borrow_and_update();
        let batch = match connection.read_after(after, MAX_BATCH) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::debug!(connection = %connection.id, %error, "2.x client told to start over");
                let _ = tx
                    .send(Chunk::Json(error_envelope(&error.to_string())))
                    .await;
                return;
            }
        };
        if !batch.messages.is_empty() {
            after = batch.last;
            let groups = groups_token(&shared, &connection);
            let json = envelope(&batch.cursor, false, groups.as_deref(), &batch.messages);
            if tx.send(Chunk::Json(json)).await.is_err() {
                return;
            }
            if mode.once {
                return;
            }
            continue;
        }
        if connection.ended.is_cancelled() {
            // Everything sent before the end has gone out.
            let _ = tx
                .send(Chunk::Json(error_envelope(
                    "The server closed the connection. Start a new connection.",
                )))
                .await;
            return;
        }
        let empty = || Chunk::Json(envelope(&batch.cursor, false, None, &[]));
        tokio::select! {
            biased;
            // Round again: what is left goes out, then the end.
            _ = connection.ended.cancelled() => {}
            _ = receiver.replaced() => {
                if mode.once {
                    let _ = tx.send(empty()).await;
                }
                return;
            }
            changed = last.changed() => if changed.is_err() { return },
            _ = sleep_until(deadline), if deadline.is_some() => {
                let _ = tx.send(empty()).await;
                return;
            }
            _ = tokio::time::sleep(mode.keep_alive.unwrap_or(Duration::MAX)), if mode.keep_alive.is_some() => {
                if tx.send(Chunk::KeepAlive).await.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A receive request of a live connection.
pub(crate) async fn receive(
    shared: Arc<Shared>,
    connection: Arc<LegacyConnection>,
    transport: LegacyTransport,
    from: From,
    params: &Params,
    callback: Option<&str>,
    upgrade: Option<WebSocketUpgrade>,
) -> Response {
    let (after, init) = match &from {
        From::Init | From::Now => (connection.last_seq(), matches!(from, From::Init)),
        From::Cursor(cursor) => match connection.parse_cursor(cursor) {
            Ok(after) => (after, false),
            Err(error) => {
                tracing::debug!(connection = %connection.id, %error, "refused a cursor");
                return one_envelope(
                    transport,
                    callback,
                    upgrade,
                    params,
                    error_envelope(&error.to_string()),
                );
            }
        },
    };
    let options = shared.options().clone();
    let jsonp = callback.is_some();
    let mode = Mode {
        init,
        once: transport == LegacyTransport::LongPolling,
        hold: (transport == LegacyTransport::LongPolling).then_some(options.connection_timeout),
        // A JSONP answer is a script: spaces before it are fine, but it is
        // read only when complete, so they would keep nothing alive.
        keep_alive: if jsonp { None } else { options.keep_alive },
    };
    if transport == LegacyTransport::WebSockets {
        let Some(upgrade) = upgrade else {
            return refuse(StatusCode::BAD_REQUEST, "Not a valid web socket request.");
        };
        return upgrade
            .max_message_size(options.max_message_size)
            .on_upgrade(move |socket| async move {
                let receiver = connection.open_receiver();
                web_socket(shared, connection, receiver, after, mode, socket).await;
            });
    }
    let frame_id = match frame_id(transport, params) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let (tx, rx) = mpsc::channel(8);
    let receiver = connection.open_receiver();
    tokio::spawn(feed(shared, connection, receiver, after, mode, tx));
    stream_response(transport, callback, frame_id, rx)
}

/// A reconnect or poll of a connection the server does not know (any more):
/// the client is told to start over.
pub(crate) fn gone(
    transport: LegacyTransport,
    callback: Option<&str>,
    upgrade: Option<WebSocketUpgrade>,
    params: &Params,
) -> Response {
    one_envelope(
        transport,
        callback,
        upgrade,
        params,
        error_envelope(super::gone_text()),
    )
}

/// Answers a receive request with one envelope through its transport.
fn one_envelope(
    transport: LegacyTransport,
    callback: Option<&str>,
    upgrade: Option<WebSocketUpgrade>,
    params: &Params,
    json: String,
) -> Response {
    if transport == LegacyTransport::WebSockets {
        let Some(upgrade) = upgrade else {
            return refuse(StatusCode::BAD_REQUEST, "Not a valid web socket request.");
        };
        return upgrade.on_upgrade(move |mut socket| async move {
            let _ = socket.send(WsMessage::Text(json.into())).await;
            let _ = socket.close().await;
        });
    }
    let frame_id = match frame_id(transport, params) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Chunk::Json(json));
    stream_response(transport, callback, frame_id, rx)
}

/// The forever frame's `frameId` (a UInt32, as 2.x requires).
fn frame_id(transport: LegacyTransport, params: &Params) -> Result<Option<u32>, Box<Response>> {
    if transport != LegacyTransport::ForeverFrame {
        return Ok(None);
    }
    params
        .get("frameId")
        .and_then(|id| id.parse::<u32>().ok())
        .map(Some)
        .ok_or_else(|| {
            Box::new(refuse(
                StatusCode::BAD_REQUEST,
                "The supplied frameId is in the incorrect format.",
            ))
        })
}

/// A streamed HTTP answer: server-sent events, a forever frame, or a long poll.
fn stream_response(
    transport: LegacyTransport,
    callback: Option<&str>,
    frame_id: Option<u32>,
    rx: mpsc::Receiver<Chunk>,
) -> Response {
    let callback = callback.map(str::to_owned);
    let (content_type, prelude): (&str, Option<String>) = match transport {
        LegacyTransport::ServerSentEvents => (
            "text/event-stream",
            Some("data: initialized\n\n".to_owned()),
        ),
        LegacyTransport::ForeverFrame => (
            "text/html; charset=UTF-8",
            Some(forever_frame_prelude(frame_id.unwrap_or(0))),
        ),
        _ if callback.is_some() => ("application/javascript; charset=UTF-8", None),
        _ => ("application/json; charset=UTF-8", None),
    };
    let chunks = move |chunk: Chunk| match (transport, chunk.into_json()) {
        (LegacyTransport::ServerSentEvents, Some(json)) => format!("data: {json}\n\n"),
        (LegacyTransport::ServerSentEvents, None) => "data: {}\n\n".to_owned(),
        (LegacyTransport::ForeverFrame, Some(json)) => {
            format!("<script>r(c, {});</script>\r\n", script_safe(&json))
        }
        (LegacyTransport::ForeverFrame, None) => "<script>r(c, {});</script>\n\n".to_owned(),
        (_, Some(json)) => match &callback {
            Some(callback) => format!("{callback}({json});"),
            None => json,
        },
        (_, None) => " ".to_owned(),
    };
    let body =
        futures_util::stream::iter(prelude.map(|p| Ok::<_, Infallible>(Bytes::from(p)))).chain(
            futures_util::stream::unfold((rx, chunks), |(mut rx, chunks)| async move {
                let chunk = rx.recv().await?;
                Some((Ok(Bytes::from(chunks(chunk))), (rx, chunks)))
            }),
        );
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response()
}

/// JSON that cannot close the script it sits in: `<` and `>` escaped (inside
/// JSON they only occur in strings, where `\u003c` means the same).
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c").replace('>', "\\u003e")
}

/// What the 2.x server writes first in a forever frame: it finds the client's
/// connection in the parent page and tells it the transport has started.
fn forever_frame_prelude(frame_id: u32) -> String {
    format!(
        "<!DOCTYPE html><html><head><title>SignalR Forever Frame Transport Stream</title>\r\n\
<script>\r\n    var $ = window.parent.jQuery,\r\n        ff = $ ? $.signalR.transports.foreverFrame : null,\r\n        c =  ff ? ff.getConnection('{frame_id}') : null,\r\n        r = ff ? ff.receive : function() {{}};\r\n    ff ? ff.started(c) : '';</script></head><body>\r\n"
    )
}

/// A WebSocket: envelopes out, invocations (or raw messages) in; each
/// invocation's result goes back on the socket as its own frame.
async fn web_socket(
    shared: Arc<Shared>,
    connection: Arc<LegacyConnection>,
    receiver: Receiver,
    after: u64,
    mode: Mode,
    socket: WebSocket,
) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel(8);
    let feeder = tokio::spawn(feed(
        shared.clone(),
        connection.clone(),
        receiver,
        after,
        mode,
        tx,
    ));
    // One message at a time, in the order they came: a raw handler sees them
    // in order, and hub calls run in order (as 2.x runs them).
    let (inbox_tx, mut inbox) = mpsc::channel::<String>(16);
    let (results_tx, mut results_rx) = mpsc::unbounded_channel::<String>();
    let processor = {
        let shared = shared.clone();
        let connection = connection.clone();
        tokio::spawn(async move {
            while let Some(data) = inbox.recv().await {
                let answer =
                    match receive_data(&shared, &connection, LegacyTransport::WebSockets, data)
                        .await
                    {
                        Ok(Some(result)) => result,
                        Ok(None) => continue,
                        Err(error) => error_envelope(&error),
                    };
                if results_tx.send(answer).is_err() {
                    break;
                }
            }
        })
    };
    loop {
        let text = tokio::select! {
            // Envelopes first: what was sent before a call's answer goes first.
            biased;
            chunk = rx.recv() => match chunk {
                Some(chunk) => chunk.into_json().unwrap_or_else(|| "{}".to_owned()),
                None => break,
            },
            Some(result) = results_rx.recv() => result,
            message = stream.next() => match message {
                Some(Ok(WsMessage::Text(text))) => {
                    if inbox_tx.send(text.as_str().to_owned()).await.is_err() {
                        break;
                    }
                    continue;
                }
                Some(Ok(WsMessage::Binary(_))) => error_envelope("2.x clients send text frames; a binary frame was received."),
                Some(Ok(_)) => continue,
                Some(Err(error)) => {
                    tracing::debug!(connection = %connection.id, %error, "2.x WebSocket failed");
                    break;
                }
                None => break,
            },
        };
        if sink.send(WsMessage::Text(text.into())).await.is_err() {
            break;
        }
    }
    processor.abort();
    feeder.abort();
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_read_as_the_2x_server_writes_them() {
        assert_eq!(
            envelope("ab-0", true, None, &[]),
            r#"{"C":"ab-0","S":1,"M":[]}"#
        );
        assert_eq!(
            envelope(
                "ab-2",
                false,
                Some("tok"),
                &[Bytes::from_static(br#""hi""#), Bytes::from_static(b"{}")]
            ),
            r#"{"C":"ab-2","G":"tok","M":["hi",{}]}"#
        );
        assert_eq!(
            script_safe(r#"{"M":["</script>"]}"#),
            r#"{"M":["\u003c/script\u003e"]}"#
        );
    }
}
