//! Client → server streams: a hub parameter that receives the items a client
//! uploads (`streamIds` in its invocation).

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::de::DeserializeOwned;
use signal_core::Payload;
use tokio::sync::mpsc;

use super::error::HubError;

/// What the session forwards to an upload stream.
#[derive(Debug)]
pub(crate) enum UploadItem {
    /// An item, decoded when the hub method reads it.
    Item(Payload),
    /// The client completed the stream with an error.
    Error(String),
}

/// The items a client uploads, typed. Ends when the client completes the stream;
/// a client-side error or an item of the wrong type arrives as an `Err` item.
pub struct UploadStream<T> {
    items: mpsc::Receiver<UploadItem>,
    _item: PhantomData<fn() -> T>,
}

impl<T> UploadStream<T> {
    pub(crate) fn new(items: mpsc::Receiver<UploadItem>) -> Self {
        UploadStream {
            items,
            _item: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for UploadStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UploadStream(..)")
    }
}

impl<T: DeserializeOwned> Stream for UploadStream<T> {
    type Item = Result<T, HubError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.items.poll_recv(cx).map(|item| {
            item.map(|item| match item {
                UploadItem::Item(item) => item.decode().map_err(|e| {
                    HubError::new(format!(
                        "a stream item could not be read as {}: {e}",
                        std::any::type_name::<T>()
                    ))
                }),
                UploadItem::Error(error) => Err(HubError::new(error)),
            })
        })
    }
}
