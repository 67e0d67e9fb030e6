//! The session's link to its client: the connection's duplex, and for stateful
//! reconnect the sequence numbers, the unacknowledged messages, and their replay
//! when the client comes back on a new transport (the connection layer swaps the
//! transport; what to replay is the hub protocol's business).
//!
//! Messages of types 1–5 carry implicit sequence ids from 1 in each direction.
//! The receiver acknowledges the highest it has processed; the sender keeps what
//! is unacknowledged (up to a byte limit, past which it stops sending) and, on a
//! new transport, announces the first unacknowledged id and sends the rest again.
//! Duplicates are dropped on receipt.

use std::collections::VecDeque;
use std::future::ready;

use futures_util::future::Either;

use signal_core::{HubMessage, RegisteredProtocol};

use crate::connection::{Duplex, Event, TransportClosed};
use crate::frame::{Frame, Outbound};
use crate::lifetime::FrameSink;
use crate::metrics::ConnectionMeter;

pub(crate) struct Link {
    duplex: Duplex,
    /// What the connection's frames are encoded with.
    protocol: RegisteredProtocol,
    /// Boxed: most connections are not stateful, and the link lives in every
    /// connection's task.
    stateful: Option<Box<Stateful>>,
    meter: Option<ConnectionMeter>,
}

struct Stateful {
    buffer_limit: usize,
    sent: u64,
    /// Kept as sent: replayed bytes are the bytes the client missed.
    unacked: VecDeque<(u64, Outbound)>,
    unacked_bytes: usize,
    next_receiving: u64,
    latest_received: u64,
    ack_due: bool,
}

impl FrameSink for Link {
    /// Buffers a frame for the transport, encoded in the connection's protocol;
    /// a sequenced frame is also kept until the client acknowledges it. A frame
    /// that cannot be encoded for this connection is dropped (and logged): it
    /// never counts in the sequence, so the client misses nothing it could
    /// notice.
    fn feed(&mut self, frame: Frame) -> impl Future<Output = Result<(), TransportClosed>> + Send {
        let sequenced = frame.is_sequenced();
        let outbound = match frame.outbound(Some(&self.protocol)) {
            Ok(outbound) => outbound,
            Err(error) => {
                tracing::error!(%error, protocol = self.protocol.name(), "a message could not be encoded for this connection; it was not sent");
                return Either::Left(ready(Ok(())));
            }
        };
        if let Some(state) = &mut self.stateful
            && sequenced
        {
            state.sent += 1;
            state.unacked_bytes += outbound.len();
            state.unacked.push_back((state.sent, outbound.clone()));
        }
        if let Some(meter) = &self.meter {
            meter.sent();
        }
        Either::Right(self.duplex.feed(outbound))
    }

    fn flush(&mut self) -> impl Future<Output = Result<(), TransportClosed>> + Send {
        self.duplex.flush()
    }
}

impl Link {
    pub(crate) fn new(duplex: Duplex, protocol: RegisteredProtocol) -> Self {
        Link {
            duplex,
            protocol,
            stateful: None,
            meter: None,
        }
    }

    /// Counts what is written from now on with `meter` (the connection's, once registered).
    pub(crate) fn count_with(&mut self, meter: Option<&ConnectionMeter>) {
        self.meter = meter.cloned();
    }

    /// Ends the transport.
    pub(crate) async fn close(&mut self) {
        self.duplex.close().await;
    }

    pub(crate) fn make_stateful(&mut self, buffer_limit: usize) {
        self.stateful = Some(Box::new(Stateful {
            buffer_limit,
            sent: 0,
            unacked: VecDeque::new(),
            unacked_bytes: 0,
            next_receiving: 1,
            latest_received: 0,
            ack_due: false,
        }));
    }

    pub(crate) fn is_stateful(&self) -> bool {
        self.stateful.is_some()
    }

    /// The next event of the connection; `None` once it is over.
    pub(crate) fn recv(&mut self) -> impl Future<Output = Option<Event>> + Send + '_ {
        self.duplex.recv()
    }

    /// Whether a transport is attached now.
    pub(crate) fn is_attached(&self) -> bool {
        self.duplex.is_attached()
    }

    /// Marks the transport lost after a failed write.
    pub(crate) fn lost(&mut self) {
        self.duplex.lost();
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
                while let Some((id, sent)) = state.unacked.front() {
                    if id > sequence_id {
                        break;
                    }
                    state.unacked_bytes -= sent.len();
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
        Some(Frame::hub(HubMessage::Ack {
            sequence_id: state.latest_received,
        }))
    }

    /// On a new transport: announces the first unacknowledged id and sends every
    /// unacknowledged message again.
    pub(crate) async fn replay(&mut self) -> Result<(), TransportClosed> {
        let Some(state) = &self.stateful else {
            return Ok(());
        };
        let first = state.unacked.front().map_or(state.sent + 1, |(id, _)| *id);
        let replay: Vec<Outbound> = state.unacked.iter().map(|(_, f)| f.clone()).collect();
        let sequence = Frame::hub(HubMessage::Sequence { sequence_id: first });
        match sequence.outbound(Some(&self.protocol)) {
            Ok(sequence) => self.duplex.feed(sequence).await?,
            Err(error) => tracing::error!(%error, "the Sequence message could not be encoded"),
        }
        for frame in replay {
            self.duplex.feed(frame).await?;
        }
        self.duplex.flush().await
    }

    /// Lets the client come back on a new transport (stateful reconnect in force).
    pub(crate) fn is_reattachable(&self) -> bool {
        self.duplex.is_reattachable()
    }

    /// The client did not ask for stateful reconnect after all.
    pub(crate) fn not_reattachable(&mut self) {
        self.duplex.not_reattachable();
    }
}
