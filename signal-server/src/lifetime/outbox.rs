//! A connection's outgoing queue: bounded, fed by any task (hub code, a
//! broadcast on another thread), read by the connection's own task.
//!
//! Not tokio's `mpsc`: that allocates a 32-slot block and a cache-padded
//! channel when it is made, about 0.8 KiB that every idle connection carried.
//! This queue is a `VecDeque` behind a mutex that is never held across an
//! `.await`; the one reader waits on an `AtomicWaker` (a registration per
//! wait, nothing to undo when a `select!` drops the wait), senders that wait
//! for room on a `Notify`. It allocates as frames arrive (and keeps the
//! capacity it grew to, as tokio's channel keeps its blocks).
//!
//! The queue also carries the request to close the connection: the reader
//! is the connection's task, which waits on the queue anyway, so a close
//! needs no second thing to wait on (a `CancellationToken` took two locks
//! on every turn of the connection's loop).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

use crate::frame::Frame;

/// Why [`OutboxSender::try_send`] did not queue a frame.
#[derive(Debug)]
pub(crate) enum TrySendError {
    /// The queue holds its capacity already.
    Full,
    /// The connection's task is gone.
    Closed,
}

/// The connection's task is gone.
#[derive(Debug)]
pub(crate) struct Closed;

/// What [`OutboxReceiver::next`] brings.
#[derive(Debug)]
pub(crate) enum Next {
    /// A frame to write.
    Frame(Frame),
    /// The connection is asked to close (frames still queued stay queued).
    Closing,
}

struct Shared {
    state: Mutex<State>,
    /// How many frames are queued, as of the last change under the lock: the
    /// reader finds the queue empty without taking the lock (after each frame
    /// it looks once or twice more).
    queued: AtomicUsize,
    senders: AtomicUsize,
    /// Set once: the connection is asked to close.
    closing: AtomicBool,
    capacity: usize,
    /// Wakes the reader when a frame arrives or the last sender leaves.
    readable: AtomicWaker,
    /// Wakes a sender waiting for room when a frame leaves, or every one when
    /// the reader goes.
    writable: Notify,
}

struct State {
    frames: VecDeque<Frame>,
    /// Senders waiting for room: a frame taken wakes one only then.
    waiting: usize,
    reader_gone: bool,
}

/// Makes a queue of at most `capacity` frames (at least one).
pub(crate) fn outbox(capacity: usize) -> (OutboxSender, OutboxReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            frames: VecDeque::new(),
            waiting: 0,
            reader_gone: false,
        }),
        queued: AtomicUsize::new(0),
        senders: AtomicUsize::new(1),
        closing: AtomicBool::new(false),
        capacity: capacity.max(1),
        readable: AtomicWaker::new(),
        writable: Notify::new(),
    });
    (OutboxSender(shared.clone()), OutboxReceiver(shared))
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock is held cannot leave the queue half-changed
        // (each change is one VecDeque call), so a poisoned lock is used as is.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `frame` unless the queue is full or its reader gone; a sender
    /// that will wait for room is counted as waiting under the same lock.
    fn push(&self, frame: Frame, will_wait: bool) -> Result<(), (TrySendError, Frame)> {
        {
            let mut state = self.state();
            if state.reader_gone {
                return Err((TrySendError::Closed, frame));
            }
            if state.frames.len() >= self.capacity {
                state.waiting += usize::from(will_wait);
                return Err((TrySendError::Full, frame));
            }
            state.frames.push_back(frame);
            self.queued.store(state.frames.len(), Ordering::Release);
        }
        self.readable.wake();
        Ok(())
    }

    /// Takes the next frame if one is queued, waking a sender that waits for
    /// room.
    fn take(&self) -> Option<Frame> {
        if self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut state = self.state();
        let frame = state.frames.pop_front()?;
        self.queued.store(state.frames.len(), Ordering::Release);
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.writable.notify_one();
        }
        Some(frame)
    }
}

/// The sending side, kept by the connection's handle.
pub(crate) struct OutboxSender(Arc<Shared>);

impl OutboxSender {
    /// Queues `frame` unless the queue is full or its reader gone.
    pub(crate) fn try_send(&self, frame: Frame) -> Result<(), (TrySendError, Frame)> {
        self.0.push(frame, false)
    }

    /// Queues `frame`, waiting while the queue is full.
    pub(crate) async fn send(&self, mut frame: Frame) -> Result<(), Closed> {
        loop {
            // Made before the attempt, so that room made in between is not missed.
            let writable = self.0.writable.notified();
            match self.0.push(frame, true) {
                Ok(()) => return Ok(()),
                Err((TrySendError::Closed, _)) => return Err(Closed),
                Err((TrySendError::Full, back)) => frame = back,
            }
            let _waiting = Waiting(&self.0);
            writable.await;
        }
    }

    /// How many frames the queue holds at most.
    pub(crate) fn max_capacity(&self) -> usize {
        self.0.capacity
    }

    /// Asks the connection to close: its reader gets [`Next::Closing`].
    pub(crate) fn close(&self) {
        self.0.closing.store(true, Ordering::Release);
        self.0.readable.wake();
    }

    /// Whether the connection was asked to close.
    pub(crate) fn is_closing(&self) -> bool {
        self.0.closing.load(Ordering::Acquire)
    }
}

impl Clone for OutboxSender {
    fn clone(&self) -> Self {
        self.0.senders.fetch_add(1, Ordering::Relaxed);
        OutboxSender(self.0.clone())
    }
}

impl Drop for OutboxSender {
    fn drop(&mut self) {
        if self.0.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.readable.wake();
        }
    }
}

/// Counts a sender waiting for room, until it stops (done or dropped).
struct Waiting<'a>(&'a Shared);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.state().waiting -= 1;
    }
}

/// The reading side, kept by the connection's task.
pub(crate) struct OutboxReceiver(Arc<Shared>);

impl OutboxReceiver {
    /// The next frame; `None` once every sender is gone and the queue is empty.
    /// Cancel-safe: a frame is taken only when it is returned.
    pub(crate) fn recv(&mut self) -> impl Future<Output = Option<Frame>> + Send + '_ {
        std::future::poll_fn(move |cx| match self.poll_next(cx, true, false) {
            Poll::Ready(Some(Next::Frame(frame))) => Poll::Ready(Some(frame)),
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
    }

    /// The request to close the connection, before anything else, or the next
    /// frame when `frames` (a connection that cannot write now waits for the
    /// close alone). `None` once every sender is gone and no frame is queued.
    /// Cancel-safe, as [`recv`](Self::recv).
    pub(crate) fn next(&mut self, frames: bool) -> impl Future<Output = Option<Next>> + Send + '_ {
        std::future::poll_fn(move |cx| self.poll_next(cx, frames, true))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        frames: bool,
        closing: bool,
    ) -> Poll<Option<Next>> {
        let shared = &*self.0;
        let ready = |senders_left: bool| {
            if closing && shared.closing.load(Ordering::Acquire) {
                return Some(Some(Next::Closing));
            }
            if !frames {
                return None;
            }
            match shared.take() {
                Some(frame) => Some(Some(Next::Frame(frame))),
                None if !senders_left => Some(None),
                None => None,
            }
        };
        if let Some(next) = ready(true) {
            return Poll::Ready(next);
        }
        shared.readable.register(cx.waker());
        // Again once registered: what came in between woke nobody. The senders
        // are counted first, so that a frame queued before the last one left is
        // seen.
        let senders_left = shared.senders.load(Ordering::Acquire) > 0;
        match ready(senders_left) {
            Some(next) => Poll::Ready(next),
            None => Poll::Pending,
        }
    }

    /// The next frame if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Frame> {
        self.0.take()
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        let frames = {
            let mut state = self.0.state();
            state.reader_gone = true;
            std::mem::take(&mut state.frames)
        };
        // Dropped outside the lock: a frame's drop may run user code's drops.
        drop(frames);
        self.0.writable.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Next, TrySendError, outbox};
    use crate::frame::Frame;

    fn frame(text: &str) -> Frame {
        Frame::text(text.to_owned().into())
    }

    fn text(frame: Frame) -> String {
        frame
            .outbound(None)
            .expect("a raw frame")
            .text()
            .expect("text")
            .as_str()
            .to_owned()
    }

    #[tokio::test]
    async fn frames_come_out_in_order_and_a_full_queue_refuses_more() {
        let (tx, mut rx) = outbox(2);
        tx.try_send(frame("a")).unwrap();
        tx.try_send(frame("b")).unwrap();
        assert!(matches!(
            tx.try_send(frame("c")),
            Err((TrySendError::Full, _))
        ));
        assert_eq!(text(rx.recv().await.unwrap()), "a");
        tx.try_send(frame("c")).unwrap();
        assert_eq!(text(rx.try_recv().unwrap()), "b");
        assert_eq!(text(rx.try_recv().unwrap()), "c");
        assert!(rx.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_sender_waits_for_room_and_a_reader_for_frames() {
        let (tx, mut rx) = outbox(1);
        tx.try_send(frame("first")).unwrap();
        let sending = tokio::spawn(async move {
            tx.send(frame("second")).await.unwrap();
            tx
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !sending.is_finished(),
            "the send waits while the queue is full"
        );
        assert_eq!(text(rx.recv().await.unwrap()), "first");
        let tx = sending.await.unwrap();
        assert_eq!(text(rx.recv().await.unwrap()), "second");

        let reading = tokio::spawn(async move { rx.recv().await.map(text) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !reading.is_finished(),
            "the reader waits while the queue is empty"
        );
        tx.try_send(frame("third")).unwrap();
        assert_eq!(reading.await.unwrap().as_deref(), Some("third"));
    }

    #[tokio::test]
    async fn the_ends_see_each_other_go() {
        let (tx, mut rx) = outbox(1);
        tx.try_send(frame("last")).unwrap();
        drop(tx);
        assert_eq!(text(rx.recv().await.unwrap()), "last");
        assert!(rx.recv().await.is_none(), "no senders, nothing queued");

        let (tx, rx) = outbox(1);
        tx.try_send(frame("fills")).unwrap();
        let waiting = tokio::spawn(async move { tx.send(frame("waits")).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        assert!(
            waiting.await.unwrap().is_err(),
            "a waiting send fails when the reader goes"
        );
    }

    #[tokio::test]
    async fn a_close_comes_before_queued_frames_and_is_heard_without_them() {
        let (tx, mut rx) = outbox(4);
        tx.try_send(frame("queued")).unwrap();
        let waiting = tokio::spawn(async move {
            let next = rx.next(false).await;
            (rx, next)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "a reader that takes no frames waits for the close alone"
        );
        assert!(!tx.is_closing());
        tx.close();
        assert!(tx.is_closing());
        let (mut rx, next) = waiting.await.unwrap();
        assert!(matches!(next, Some(Next::Closing)));
        assert!(
            matches!(rx.next(true).await, Some(Next::Closing)),
            "the close stays, ahead of the frames"
        );
        assert_eq!(
            text(rx.recv().await.unwrap()),
            "queued",
            "frames queued before the close are still there to drain"
        );
        drop(tx);
        assert!(rx.recv().await.is_none());
    }
}
