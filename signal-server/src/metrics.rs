//! What a hub counts of itself: connections open by transport and protocol,
//! connections opened and closed, hub messages in and out, invocations, groups.
//!
//! Every figure is kept twice, for two readers:
//!
//! - in the hub's registry, read as a [`HubMetrics`] snapshot through
//!   [`HubHandle::metrics`](crate::HubHandle::metrics) (a dashboard, a health
//!   endpoint, a test);
//! - through the [`metrics`](https://docs.rs/metrics) crate's facade, so that
//!   whatever recorder the application installs (a Prometheus exporter, say)
//!   publishes them. Without a recorder these calls do nothing.
//!
//! | name | kind | labels | what |
//! | --- | --- | --- | --- |
//! | `signal_connections` | gauge | `hub`, `transport`, `protocol` | connections open now |
//! | `signal_connections_opened_total` | counter | `hub`, `transport`, `protocol` | connections that finished their handshake |
//! | `signal_connections_closed_total` | counter | `hub`, `transport`, `protocol` | connections that ended |
//! | `signal_messages_received_total` | counter | `hub`, `transport`, `protocol` | hub messages read from clients (every type but stateful reconnect's `Ack` and `Sequence`; a duplicate after a reconnect is not counted) |
//! | `signal_messages_sent_total` | counter | `hub`, `transport`, `protocol` | hub messages written to clients (every type, pings and acks too; a replay after a stateful reconnect is not counted again) |
//! | `signal_invocations_total` | counter | `hub`, `transport`, `protocol` | `Invocation` and `StreamInvocation` messages received |
//! | `signal_groups` | gauge | `hub` | groups with at least one member on this server |
//!
//! `hub` is the hub trait's name (`Chat`); `transport` is `WebSockets`,
//! `ServerSentEvents` or `LongPolling`; `protocol` is the hub protocol's name
//! (`json`, `messagepack`; `signalr-2.x` for ASP.NET SignalR 2.x clients),
//! and `raw` for a [`persistent`](crate::persistent) connection (which has no
//! hub name: its `hub` is empty). Messages are counted for ASP.NET Core
//! clients; connections for every kind.
//!
//! The figures are this server's: with a backplane each node counts its own
//! connections. A registry shared by several hubs counts for all of them under
//! the first hub's name.
//!
//! Cost on the hot path: a message in or out adds one to a shared atomic and
//! to the recorder's counter handle; no lock is taken per message. The
//! recorder's handles are registered once per transport and protocol, with the
//! first such connection, and kept: install the recorder before the server
//! takes connections, as exporters are, at startup.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{Counter, Gauge, Label, SharedString, counter, gauge};
use signal_core::TransportType;

use crate::lifetime::ConnectionHandle;

/// The names of the published metrics, as the table above lists them.
pub mod names {
    /// Gauge: connections open now (`hub`, `transport`, `protocol`).
    pub const CONNECTIONS: &str = "signal_connections";
    /// Counter: connections opened (`hub`, `transport`, `protocol`).
    pub const CONNECTIONS_OPENED: &str = "signal_connections_opened_total";
    /// Counter: connections closed (`hub`, `transport`, `protocol`).
    pub const CONNECTIONS_CLOSED: &str = "signal_connections_closed_total";
    /// Counter: hub messages received (`hub`, `transport`, `protocol`).
    pub const MESSAGES_RECEIVED: &str = "signal_messages_received_total";
    /// Counter: hub messages sent (`hub`, `transport`, `protocol`).
    pub const MESSAGES_SENT: &str = "signal_messages_sent_total";
    /// Counter: invocations received (`hub`, `transport`, `protocol`).
    pub const INVOCATIONS: &str = "signal_invocations_total";
    /// Gauge: groups with members (`hub`).
    pub const GROUPS: &str = "signal_groups";
}

/// The protocol label of a raw (persistent) connection.
const RAW: &str = "raw";

/// A hub's figures at one moment, on this server. Counters (`*_total` in the
/// published names) only grow; take two snapshots to compute rates.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct HubMetrics {
    /// Connections open now.
    pub connections: u64,
    /// Connections open now per transport (`WebSockets`, `ServerSentEvents`,
    /// `LongPolling`); a transport without connections is absent.
    pub connections_by_transport: BTreeMap<&'static str, u64>,
    /// Connections open now per hub protocol (`json`, `messagepack`, …); a
    /// protocol without connections is absent.
    pub connections_by_protocol: BTreeMap<&'static str, u64>,
    /// Connections opened since the hub started.
    pub connections_opened: u64,
    /// Connections closed since the hub started.
    pub connections_closed: u64,
    /// Invocations received (`Invocation` and `StreamInvocation`).
    pub invocations: u64,
    /// Hub messages received (every type but stateful reconnect's `Ack` and `Sequence`).
    pub messages_received: u64,
    /// Hub messages sent, of every type.
    pub messages_sent: u64,
    /// Groups with at least one member on this server.
    pub groups: u64,
}

impl HubMetrics {
    /// Connections open now over `transport`.
    pub fn connections_over(&self, transport: TransportType) -> u64 {
        self.connections_by_transport
            .get(transport.as_str())
            .copied()
            .unwrap_or(0)
    }

    /// Connections open now speaking the protocol `name`.
    pub fn connections_speaking(&self, name: &str) -> u64 {
        self.connections_by_protocol.get(name).copied().unwrap_or(0)
    }
}

/// The counters every connection of a hub adds to.
#[derive(Default)]
struct Totals {
    opened: AtomicU64,
    closed: AtomicU64,
    invocations: AtomicU64,
    received: AtomicU64,
    sent: AtomicU64,
}

/// A registry's meters: what [`LocalLifetimeManager`](crate::LocalLifetimeManager)
/// keeps for its hub.
#[derive(Default)]
pub(crate) struct Meters {
    hub: OnceLock<Arc<str>>,
    totals: Arc<Totals>,
    /// Open connections per (transport, protocol), with the recorder's handles
    /// for those labels: changed on open and close only, never per message.
    open: Mutex<BTreeMap<(&'static str, &'static str), Kind>>,
}

/// The connections of one transport and protocol.
struct Kind {
    /// How many are open now.
    count: u64,
    handles: Arc<Handles>,
}

/// The recorder's handles for one transport and protocol. Registering a metric
/// builds its key (a list of labels, hashed); seven of them for each connection
/// were 6 % of a connect's work.
struct Handles {
    opened: Counter,
    closed: Counter,
    open: Gauge,
    received: Counter,
    sent: Counter,
    invocations: Counter,
}

impl Meters {
    /// Names the hub these meters count for (the `hub` label); the first name wins.
    pub(crate) fn name(&self, hub: &str) {
        let _ = self.hub.set(Arc::from(hub));
    }

    /// The `hub` label's value: the name shared, not copied.
    fn hub(&self) -> SharedString {
        match self.hub.get() {
            Some(hub) => SharedString::from_shared(hub.clone()),
            None => SharedString::const_str(""),
        }
    }

    /// The recorder's handles for a connection's labels: the hub name shared,
    /// the transport and protocol static.
    fn register(&self, transport: &'static str, protocol: &'static str) -> Handles {
        let labels = [
            Label::new("hub", self.hub()),
            Label::from_static_parts("transport", transport),
            Label::from_static_parts("protocol", protocol),
        ];
        Handles {
            opened: counter!(names::CONNECTIONS_OPENED, labels.iter()),
            closed: counter!(names::CONNECTIONS_CLOSED, labels.iter()),
            open: gauge!(names::CONNECTIONS, labels.iter()),
            received: counter!(names::MESSAGES_RECEIVED, labels.iter()),
            sent: counter!(names::MESSAGES_SENT, labels.iter()),
            invocations: counter!(names::INVOCATIONS, labels.iter()),
        }
    }

    /// A connection was registered: counts it, and gives it the meter its
    /// messages are counted with.
    pub(crate) fn opened(&self, connection: &ConnectionHandle) -> ConnectionMeter {
        let (transport, protocol) = kind_of(connection);
        let handles = {
            let mut open = self.open.lock().expect("meters lock");
            let kind = open.entry((transport, protocol)).or_insert_with(|| Kind {
                count: 0,
                handles: Arc::new(self.register(transport, protocol)),
            });
            kind.count += 1;
            kind.handles.clone()
        };
        self.totals.opened.fetch_add(1, Ordering::Relaxed);
        handles.opened.increment(1);
        handles.open.increment(1.0);
        ConnectionMeter {
            totals: self.totals.clone(),
            handles,
        }
    }

    /// A registered connection ended.
    pub(crate) fn closed(&self, connection: &ConnectionHandle) {
        let key = kind_of(connection);
        let handles = {
            let mut open = self.open.lock().expect("meters lock");
            open.get_mut(&key).map(|kind| {
                kind.count -= 1;
                kind.handles.clone()
            })
        };
        self.totals.closed.fetch_add(1, Ordering::Relaxed);
        if let Some(handles) = handles {
            handles.closed.increment(1);
            handles.open.decrement(1.0);
        }
    }

    /// The number of groups changed.
    pub(crate) fn groups(&self, count: usize) {
        gauge!(names::GROUPS, "hub" => self.hub()).set(count as f64);
    }

    /// The figures now; `groups` is read from the registry by the caller.
    pub(crate) fn snapshot(&self, groups: usize) -> HubMetrics {
        let mut metrics = HubMetrics {
            groups: groups as u64,
            connections_opened: self.totals.opened.load(Ordering::Relaxed),
            connections_closed: self.totals.closed.load(Ordering::Relaxed),
            invocations: self.totals.invocations.load(Ordering::Relaxed),
            messages_received: self.totals.received.load(Ordering::Relaxed),
            messages_sent: self.totals.sent.load(Ordering::Relaxed),
            ..HubMetrics::default()
        };
        for (&(transport, protocol), kind) in self.open.lock().expect("meters lock").iter() {
            let count = kind.count;
            if count == 0 {
                continue;
            }
            metrics.connections += count;
            *metrics
                .connections_by_transport
                .entry(transport)
                .or_default() += count;
            *metrics.connections_by_protocol.entry(protocol).or_default() += count;
        }
        metrics
    }
}

/// A connection's transport and protocol: the labels its figures are kept under.
fn kind_of(connection: &ConnectionHandle) -> (&'static str, &'static str) {
    let protocol = connection.protocol.as_ref().map_or(RAW, |p| p.name());
    (connection.transport.as_str(), protocol)
}

/// One connection's meter: the hub's totals and the recorder's counters for
/// the connection's labels.
#[derive(Clone)]
pub(crate) struct ConnectionMeter {
    totals: Arc<Totals>,
    handles: Arc<Handles>,
}

impl ConnectionMeter {
    /// Counts a hub message received, and an invocation when it is one.
    pub(crate) fn received(&self, message: &signal_core::HubMessage) {
        use signal_core::HubMessage;
        self.totals.received.fetch_add(1, Ordering::Relaxed);
        self.handles.received.increment(1);
        if matches!(
            message,
            HubMessage::Invocation(_) | HubMessage::StreamInvocation(_)
        ) {
            self.totals.invocations.fetch_add(1, Ordering::Relaxed);
            self.handles.invocations.increment(1);
        }
    }

    /// Counts a hub message sent.
    pub(crate) fn sent(&self) {
        self.totals.sent.fetch_add(1, Ordering::Relaxed);
        self.handles.sent.increment(1);
    }
}
