//! Long polling: held GETs down, POSTs up, a DELETE to leave.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;
use signal_core::{TransferFormat, TransportType};
use tokio::sync::mpsc;
use url::Url;

use super::{Endpoint, INCOMING_CAPACITY, Incoming, Transport, error_chain, post_loop};

/// How much longer than the server's hold (90 s by default) a poll may take
/// before the client gives up on it.
const POLL_TIMEOUT: Duration = Duration::from_secs(120);

/// Makes the first poll, which the server answers at once: the connection starts.
pub(crate) async fn connect(endpoint: &Endpoint) -> Result<Transport, String> {
    match poll(endpoint, endpoint.timeout).await? {
        Poll::Data(_) => {}
        Poll::Closed => return Err("the server ended the connection at the first poll".into()),
    }
    let (in_tx, in_rx) = mpsc::channel::<Incoming>(INCOMING_CAPACITY);
    let (out_tx, out_rx) = mpsc::unbounded_channel::<(Bytes, TransferFormat)>();
    let poller = {
        let endpoint = endpoint.clone();
        let in_tx = in_tx.clone();
        tokio::spawn(async move {
            loop {
                match poll(&endpoint, POLL_TIMEOUT).await {
                    Ok(Poll::Data(body)) if body.is_empty() => continue,
                    Ok(Poll::Data(body)) => {
                        if in_tx.send(Ok(body)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Poll::Closed) => return,
                    Err(error) => {
                        let _ = in_tx.send(Err(error)).await;
                        return;
                    }
                }
            }
        })
    };
    let writer = {
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            post_loop(endpoint.clone(), out_rx, in_tx).await;
            // The connection is closing: tell the server, which ends the poll.
            let _ = endpoint
                .http
                .delete(endpoint.url.clone())
                .headers(endpoint.headers.clone())
                .timeout(endpoint.timeout)
                .send()
                .await;
        })
    };
    Ok(Transport::new(
        TransportType::LongPolling,
        out_tx,
        in_rx,
        writer,
        vec![poller],
    ))
}

enum Poll {
    Data(Bytes),
    Closed,
}

async fn poll(endpoint: &Endpoint, timeout: Duration) -> Result<Poll, String> {
    let response = endpoint
        .http
        .get(poll_url(&endpoint.url))
        .headers(endpoint.headers.clone())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("a poll failed: {}", error_chain(&e)))?;
    match response.status() {
        StatusCode::NO_CONTENT => Ok(Poll::Closed),
        StatusCode::OK => response
            .bytes()
            .await
            .map(Poll::Data)
            .map_err(|e| format!("a poll's body could not be read: {}", error_chain(&e))),
        status => Err(format!("a poll was answered with {status}")),
    }
}

/// `url&_=<ms>`: keeps caches from answering a poll.
fn poll_url(url: &Url) -> Url {
    let mut url = url.clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    url.query_pairs_mut().append_pair("_", &now.to_string());
    url
}
