//! Collaborative editing: one text edited by several browsers at once, kept
//! consistent by a CRDT: Yjs in the pages (`yjs` from the npm install), its
//! Rust port `yrs` on the server.
//!
//! Run: `npm ci && cargo run --example collab`, then open
//! http://127.0.0.1:5003 in two tabs and type in both. `?transport=` forces a
//! transport, as in the chat. "work offline" stops the page's connection:
//! its edits stay in its document and merge with the others' when it
//! connects again.
//!
//! The server keeps the document too, so that a page that joins late (or
//! comes back) gets what it is missing from the server, not from another
//! page that may be gone: `join` takes the page's state vector and answers
//! with the difference and the server's own state vector, against which the
//! page sends its offline edits. Every edit after that is an update the hub
//! applies and relays to the other pages. Updates commute, so their order
//! across pages (or a duplicate) does not matter.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use signal::{ConnectionId, Context, HubError};
use signal_examples_api::collab::{Collab, CollabClient, Joined};
use tower_http::services::{ServeDir, ServeFile};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

/// The group of the pages that have joined.
const EDITORS: &str = "editors";
/// The largest update or state vector a page may send, in base64 characters
/// (a paste of a few tens of kilobytes fits).
const MAX_MESSAGE: usize = 256 * 1024;
/// Update bytes the document accepts in all before it refuses more, so that
/// one page cannot grow the server's memory without end.
const MAX_DOCUMENT: usize = 8 * 1024 * 1024;

struct Document {
    doc: Doc,
    /// Bytes of all the updates applied so far.
    size: usize,
    /// The connections that joined (and receive the others' updates).
    editors: HashSet<ConnectionId>,
}

#[derive(Clone)]
struct CollabHub {
    document: Arc<Mutex<Document>>,
}

fn decoded(what: &str, text: &str) -> Result<Vec<u8>, HubError> {
    if text.len() > MAX_MESSAGE {
        return Err(HubError::new(format!(
            "{what} is {} characters long; at most {MAX_MESSAGE} are accepted",
            text.len()
        )));
    }
    BASE64
        .decode(text)
        .map_err(|e| HubError::new(format!("{what} is not base64: {e}")))
}

/// Decodes an update, and tries it on an empty document first: on some
/// malformed updates (client ids beyond 53 bits, clocks that overflow) `yrs`
/// panics in debug builds rather than returning an error, and a panic while
/// applying to the shared document would leave it half-changed (and its lock
/// poisoned).
fn checked_update(bytes: &[u8]) -> Result<Update, HubError> {
    let decode = || {
        Update::decode_v1(bytes)
            .map_err(|e| HubError::new(format!("the update does not decode: {e}")))
    };
    // Nothing outside the closure is changed by it: a panic leaves no harm.
    let trial = std::panic::catch_unwind(|| {
        Doc::new()
            .transact_mut()
            .apply_update(decode()?)
            .map_err(|e| HubError::new(format!("the update does not apply: {e}")))
    });
    match trial {
        Ok(Ok(())) => decode(),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(HubError::new("the update is not a valid Yjs update")),
    }
}

impl Collab for CollabHub {
    async fn join(
        &self,
        cx: &Context<dyn CollabClient>,
        state_vector: String,
    ) -> Result<Joined, HubError> {
        let bytes = decoded("the state vector", &state_vector)?;
        let remote = StateVector::decode_v1(&bytes)
            .map_err(|e| HubError::new(format!("the state vector does not decode: {e}")))?;
        // In the group first: an update applied meanwhile reaches the page
        // either way, in the answer or relayed (twice does no harm).
        cx.groups().add(cx.connection_id().clone(), EDITORS).await?;
        let mut document = self.document.lock().expect("document lock");
        document.editors.insert(cx.connection_id().clone());
        let txn = document.doc.transact();
        Ok(Joined {
            update: BASE64.encode(txn.encode_state_as_update_v1(&remote)),
            state_vector: BASE64.encode(txn.state_vector().encode_v1()),
        })
    }

    async fn update(&self, cx: &Context<dyn CollabClient>, update: String) -> Result<(), HubError> {
        let bytes = decoded("the update", &update)?;
        let decoded = checked_update(&bytes)?;
        {
            let mut document = self.document.lock().expect("document lock");
            if !document.editors.contains(cx.connection_id()) {
                return Err(HubError::new("call join before sending updates"));
            }
            if document.size + bytes.len() > MAX_DOCUMENT {
                return Err(HubError::new(format!(
                    "the document is full ({MAX_DOCUMENT} bytes of updates); no more edits are accepted"
                )));
            }
            document
                .doc
                .transact_mut()
                .apply_update(decoded)
                .map_err(|e| HubError::new(format!("the update does not apply: {e}")))?;
            document.size += bytes.len();
        }
        cx.clients()
            .others_in_group(EDITORS)
            .apply_update(update)
            .await?;
        Ok(())
    }

    async fn on_disconnected(&self, cx: &Context<dyn CollabClient>, _error: Option<&str>) {
        let mut document = self.document.lock().expect("document lock");
        document.editors.remove(cx.connection_id());
    }
}

fn main() -> std::io::Result<()> {
    signal::runtime()?.block_on(run_server())
}

async fn run_server() -> std::io::Result<()> {
    support::init_tracing();
    let yjs = support::node_module("yjs/dist/yjs.mjs")?;
    let lib0 = support::node_module("lib0")?;
    let hub = CollabHub {
        document: Arc::new(Mutex::new(Document {
            doc: Doc::new(),
            size: 0,
            editors: HashSet::new(),
        })),
    }
    .into_hub()
    // Past the 32 KiB default a large paste would close the connection; with
    // room for four times the largest update `update` accepts, a page that
    // sends too much gets `update`'s error and stays connected.
    .configure(|options| options.maximum_receive_message_size = 4 * MAX_MESSAGE);
    let handle = hub.handle();
    let app = axum::Router::new()
        .nest("/collab", hub.router())
        .merge(support::page("collab")?)
        // Yjs's ES module and the lib0 modules it imports (the page's import
        // map names them), straight from the npm install: no bundler.
        .route_service("/lib/yjs.mjs", ServeFile::new(yjs))
        .nest_service("/lib/lib0", ServeDir::new(lib0));
    support::serve_on(5003, app, async move {
        handle.shutdown(Duration::from_secs(5)).await
    })
    .await
}
