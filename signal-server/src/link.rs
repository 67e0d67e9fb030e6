//! The session's link to its client: the current transport, and for stateful
//! reconnect the sequence numbers, the unacknowledged messages, and the swap to a
//! new transport when the client comes back.
//!
//! Messages of types 1–5 carry implicit sequence ids from 1 in each direction.
//! The receiver acknowledges the highest it has processed; the sender keeps what
//! is unacknowledged (up to a byte limit, past which it stops sending) and, on a
//! new transport, announces the first unacknowledged id and sends the rest again.
//! Duplicates are dropped on receipt.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use signal_core::HubMessage;

use tokio::sync::mpsc;

use crate::frame::Frame;
use crate::session::{Inbound, Outgoing, TransportClosed};

impl<I, O> Outgoing for Link<I, O>
where
    I: Stream<Item = Inbound> + Unpin + Send,
    O: Outgoing,
{
    /// Buffers a frame for the transport; a sequenced frame is also kept until
    /// the client acknowledges it.
    async fn feed(&mut self, frame: Frame) -> Result<(), TransportClosed> {
        if let Some(state) = &mut self.stateful
            && frame.is_sequenced()
        {
            state.sent += 1;
            state.unacked_bytes += frame.len();
            state.unacked.push_back((state.sent, frame.clone()));
        }
        tokio::time::timeout(self.write_timeout, self.outgoing.feed(frame))
            .await
            .unwrap_or(Err(TransportClosed))
    }

    async fn flush(&mut self) -> Result<(), TransportClosed> {
        tokio::time::timeout(self.write_timeout, self.outgoing.flush())
            .await
            .unwrap_or(Err(TransportClosed))
    }

    async fn close(&mut self) {
        let _ = tokio::time::timeout(self.write_timeout, self.outgoing.close()).await;
    }
}

/// A transport's two halves.
pub(crate) type Attachment<I, O> = (I, O);

pub(crate) struct Link<I, O> {
    incoming: I,
    outgoing: O,
    stateful: Option<Stateful>,
    /// How long one write may take: a client that stops reading must not hold
    /// its connection (and the session's task) forever.
    write_timeout: Duration,
}

struct Stateful {
    buffer_limit: usize,
    sent: u64,
    unacked: VecDeque<(u64, Frame)>,
    unacked_bytes: usize,
    next_receiving: u64,
    latest_received: u64,
    ack_due: bool,
}

impl<I, O> Link<I, O>
where
    I: Stream<Item = Inbound> + Unpin + Send,
    O: Outgoing,
{
    pub(crate) fn new(incoming: I, outgoing: O, write_timeout: Duration) -> Self {
        Link {
            incoming,
            outgoing,
            stateful: None,
            write_timeout,
        }
    }

    /// Turns on stateful reconnect: at most `buffer_limit` bytes stay
    /// unacknowledged.
    pub(crate) fn make_stateful(&mut self, buffer_limit: usize) {
        self.stateful = Some(Stateful {
            buffer_limit,
            sent: 0,
            unacked: VecDeque::new(),
            unacked_bytes: 0,
            next_receiving: 1,
            latest_received: 0,
            ack_due: false,
        });
    }

    pub(crate) fn is_stateful(&self) -> bool {
        self.stateful.is_some()
    }

    pub(crate) async fn recv(&mut self) -> Option<Inbound> {
        self.incoming.next().await
    }

    /// Whether more may be sent: false while the unacknowledged messages fill
    /// the stateful-reconnect buffer.
    pub(crate) fn can_send(&self) -> bool {
        self.stateful
            .as_ref()
            .is_none_or(|s| s.unacked_bytes < s.buffer_limit)
    }

    /// Decides what becomes of a message from the client: `Ok(true)` to process
    /// it, `Ok(false)` when it was Ack/Sequence bookkeeping or a duplicate.
    pub(crate) fn accept(&mut self, message: &HubMessage) -> Result<bool, String> {
        let Some(state) = &mut self.stateful else {
            return Ok(!matches!(
                message,
                HubMessage::Ack { .. } | HubMessage::Sequence { .. }
            ));
        };
        match message {
            HubMessage::Ack { sequence_id } => {
                while let Some((id, frame)) = state.unacked.front() {
                    if id > sequence_id {
                        break;
                    }
                    state.unacked_bytes -= frame.len();
                    state.unacked.pop_front();
                }
                Ok(false)
            }
            HubMessage::Sequence { sequence_id } => {
                if *sequence_id > state.next_receiving {
                    // ASP.NET Core's `MessageBuffer.ResetSequence` text.
                    return Err(
                        "Connection closed with an error. InvalidOperationException: Sequence ID greater than amount of messages we've received."
                            .to_owned(),
                    );
                }
                state.next_receiving = *sequence_id;
                Ok(false)
            }
            message if (1..=5).contains(&message.message_type()) => {
                let current = state.next_receiving;
                state.next_receiving += 1;
                if current <= state.latest_received {
                    return Ok(false);
                }
                state.latest_received = current;
                state.ack_due = true;
                Ok(true)
            }
            _ => Ok(true),
        }
    }

    /// The Ack to send, when messages arrived since the last one.
    pub(crate) fn take_ack(&mut self) -> Option<Frame> {
        let state = self.stateful.as_mut()?;
        if !std::mem::take(&mut state.ack_due) {
            return None;
        }
        Some(Frame::encode(&HubMessage::Ack {
            sequence_id: state.latest_received,
        }))
    }

    /// Moves to a new transport: closes the old one, announces the first
    /// unacknowledged id and sends every unacknowledged message again.
    pub(crate) async fn attach(
        &mut self,
        (incoming, outgoing): Attachment<I, O>,
    ) -> Result<(), TransportClosed> {
        self.close().await;
        self.incoming = incoming;
        self.outgoing = outgoing;
        let Some(state) = &self.stateful else {
            return Ok(());
        };
        let first = state.unacked.front().map_or(state.sent + 1, |(id, _)| *id);
        let replay: Vec<Frame> = state.unacked.iter().map(|(_, f)| f.clone()).collect();
        let resend = async {
            self.outgoing
                .feed(Frame::encode(&HubMessage::Sequence { sequence_id: first }))
                .await?;
            for frame in replay {
                self.outgoing.feed(frame).await?;
            }
            self.outgoing.flush().await
        };
        tokio::time::timeout(self.write_timeout, resend)
            .await
            .unwrap_or(Err(TransportClosed))
    }
}

/// The next transport the client opens for a stateful connection; never
/// resolves without one.
pub(crate) async fn next_attachment<I, O>(
    attachments: &mut Option<mpsc::Receiver<Attachment<I, O>>>,
) -> Attachment<I, O> {
    match attachments {
        Some(attachments) => match attachments.recv().await {
            Some(attachment) => attachment,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
