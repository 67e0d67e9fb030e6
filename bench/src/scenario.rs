//! The scenarios: echo, broadcast, idle memory, connect, scale (idle memory and
//! broadcast latency at one large connection count). Each runs against one
//! freshly started server and returns one row. Echo and broadcast run on every
//! transport the endpoint names (WebSocket, SSE, long polling).
//!
//! Connections are tasks on the generator's single thread (a `LocalSet`); they
//! share counters and histograms through `Rc` without locks.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::Error;
use crate::client::{self, Conn, Endpoint, Event, SIGNALR_PING_INTERVAL};
use crate::server::{CpuUse, CpuWindow, Server};

/// How many connections are being opened at once.
pub(crate) const CONNECT_CONCURRENCY: usize = 128;
/// The length of a broadcast message's text.
const BROADCAST_TEXT_LEN: usize = 64;

/// Microseconds since the generator started: the clock broadcast stamps use.
pub(crate) fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// A latency histogram in microseconds, 1 µs to 10 min, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// p50 and p99 of a histogram, microseconds (0 when empty).
pub(crate) fn percentiles(h: &Histogram<u64>) -> (u64, u64) {
    if h.is_empty() {
        return (0, 0);
    }
    (h.value_at_quantile(0.50), h.value_at_quantile(0.99))
}

/// Errors seen by connection tasks: how many, and the first one's text.
#[derive(Default)]
pub(crate) struct Failures {
    pub(crate) count: Cell<u64>,
    first: RefCell<Option<String>>,
}

impl Failures {
    pub(crate) fn note(&self, error: impl std::fmt::Display) {
        self.count.set(self.count.get() + 1);
        let mut first = self.first.borrow_mut();
        if first.is_none() {
            *first = Some(error.to_string());
        }
    }

    pub(crate) fn first(&self) -> Option<String> {
        self.first.borrow().clone()
    }
}

/// What opening a batch of connections gave.
pub(crate) struct Opened {
    /// Connections opened.
    pub(crate) ok: usize,
    /// Connections that failed to open.
    pub(crate) failed: usize,
    /// The first failure.
    pub(crate) first_error: Option<String>,
    /// Wall time of the whole batch.
    pub(crate) elapsed: Duration,
    /// Time to open each connection, microseconds.
    pub(crate) latency: Histogram<u64>,
}

/// Opens `n` connections, `CONNECT_CONCURRENCY` at a time, handing each to
/// `on_conn` as soon as it is ready. With kept-alive negotiate, the openers
/// share up to about `CONNECT_CONCURRENCY` negotiate connections per port.
pub(crate) async fn open_many(
    endpoint: &Endpoint<'_>,
    n: usize,
    mut on_conn: impl FnMut(Conn),
) -> Opened {
    let started = Instant::now();
    let mut opened = Opened {
        ok: 0,
        failed: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latency: histogram(),
    };
    let mut attempts = futures_util::stream::iter(0..n)
        .map(|_| async {
            let t = Instant::now();
            let result = client::connect(endpoint).await;
            (result, t.elapsed())
        })
        .buffer_unordered(CONNECT_CONCURRENCY);
    while let Some((result, took)) = attempts.next().await {
        match result {
            Ok(conn) => {
                opened.ok += 1;
                opened
                    .latency
                    .saturating_record(took.as_micros().max(1) as u64);
                on_conn(conn);
            }
            Err(error) => {
                opened.failed += 1;
                opened.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    opened.elapsed = started.elapsed();
    // Outside the timing: the batch's idle negotiate connections are closed.
    endpoint.negotiator.close_idle();
    opened
}

/// Reads one frame and hands its events to `on_event`; answers socket.io pings.
/// A failure message from the server is an error.
pub(crate) async fn read_events(
    conn: &mut Conn,
    mut on_event: impl FnMut(&[u8], bool),
) -> Result<(), Error> {
    let frame = conn.next_frame().await?;
    handle_frame(conn, &frame, &mut on_event).await
}

/// `on_event(message, is_reply)` for each reply or delivery in `frame`.
pub(crate) async fn handle_frame(
    conn: &mut Conn,
    frame: &Message,
    on_event: &mut impl FnMut(&[u8], bool),
) -> Result<(), Error> {
    let mut pings = 0;
    let mut failure = None;
    conn.protocol.events(frame, |event| match event {
        Event::Reply(message) => on_event(message, true),
        Event::Delivery(message) => on_event(message, false),
        Event::Ping => pings += 1,
        Event::Failure(message) => failure = Some(message.into_owned()),
        Event::Other => {}
    });
    if let Some(message) = failure {
        return Err(format!("server sent {message}").into());
    }
    conn.answer(pings).await
}

// ---------------------------------------------------------------------------- echo

/// One echo measurement.
#[derive(Clone, Debug)]
pub(crate) struct EchoRow {
    /// Connections that could not be opened.
    pub(crate) failed_connects: usize,
    /// Completed invocations per second over the window.
    pub(crate) rate: f64,
    /// Round trip, microseconds.
    pub(crate) p50_us: u64,
    /// Round trip, microseconds.
    pub(crate) p99_us: u64,
    /// Round trip, microseconds.
    pub(crate) p999_us: u64,
    /// Round trip, microseconds.
    pub(crate) max_us: u64,
    /// The fewest and the most round trips one connection completed in the window:
    /// far apart when some connections are starved.
    pub(crate) per_connection: (u64, u64),
    /// CPU over the window.
    pub(crate) cpu: CpuUse,
    /// Connections that failed while running, and the first error.
    pub(crate) errors: u64,
    /// The first error, if any.
    pub(crate) first_error: Option<String>,
    /// With `--rounds`: every round's rate, in run order (this row is the
    /// median one's); empty for a single round.
    pub(crate) round_rates: Vec<f64>,
}

pub(crate) struct EchoShared {
    pub(crate) measuring: Cell<bool>,
    pub(crate) per_connection: RefCell<Vec<Rc<Cell<u64>>>>,
    pub(crate) count: Cell<u64>,
    pub(crate) rtt: RefCell<Histogram<u64>>,
    pub(crate) failures: Failures,
}

/// `connections` clients each invoking `echo(payload)` in a closed loop: a
/// warm-up, then a measured window.
pub(crate) async fn echo(
    endpoint: &Endpoint<'_>,
    server: &Server,
    connections: usize,
    payload_len: usize,
    warmup: Duration,
    window: Duration,
) -> Result<EchoRow, Error> {
    let mut conns = Vec::with_capacity(connections);
    let opened = open_many(endpoint, connections, |c| conns.push(c)).await;
    if opened.ok == 0 {
        return Err(opened
            .first_error
            .unwrap_or_else(|| "no connection".into())
            .into());
    }
    let payload: Rc<str> = "x".repeat(payload_len).into();
    let shared = Rc::new(EchoShared {
        measuring: Cell::new(false),
        count: Cell::new(0),
        rtt: RefCell::new(histogram()),
        failures: Failures::default(),
        per_connection: RefCell::default(),
    });
    let mut tasks = JoinSet::new();
    for conn in conns {
        let count = Rc::new(Cell::new(0));
        shared.per_connection.borrow_mut().push(count.clone());
        tasks.spawn_local(echo_loop(conn, payload.clone(), shared.clone(), count));
    }
    tokio::time::sleep(warmup).await;
    let cpu = CpuWindow::start(server);
    let started = Instant::now();
    shared.measuring.set(true);
    tokio::time::sleep(window).await;
    shared.measuring.set(false);
    let elapsed = started.elapsed();
    let cpu = cpu.finish(server);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let (p50_us, p99_us) = percentiles(&shared.rtt.borrow());
    let counts = shared.per_connection.borrow();
    Ok(EchoRow {
        p999_us: shared.rtt.borrow().value_at_quantile(0.999),
        max_us: shared.rtt.borrow().max(),
        per_connection: (
            counts.iter().map(|c| c.get()).min().unwrap_or(0),
            counts.iter().map(|c| c.get()).max().unwrap_or(0),
        ),
        failed_connects: opened.failed,
        rate: shared.count.get() as f64 / elapsed.as_secs_f64(),
        p50_us,
        p99_us,
        cpu,
        errors: shared.failures.count.get(),
        first_error: shared.failures.first().or(opened.first_error),
        round_rates: Vec::new(),
    })
}

pub(crate) async fn echo_loop(
    mut conn: Conn,
    payload: Rc<str>,
    shared: Rc<EchoShared>,
    count: Rc<Cell<u64>>,
) {
    if let Err(error) = echo_loop_inner(&mut conn, &payload, &shared, &count).await {
        shared.failures.note(error);
    }
}

async fn echo_loop_inner(
    conn: &mut Conn,
    payload: &str,
    shared: &EchoShared,
    count: &Cell<u64>,
) -> Result<(), Error> {
    let request = conn.prepare(conn.protocol.echo_request(payload));
    // The request never changes (same payload, same id), so neither does a right
    // reply: the first is checked for the payload, and the frame that held only
    // it is kept; later frames are compared to that one whole (a memcmp, and over
    // a WebSocket no copy and no UTF-8 check: reading each reply would cost the
    // generator more than the server spends on the call). A frame that differs
    // is read message by message, its reply compared to the first one's.
    let mut expected: Option<Vec<u8>> = None;
    let mut expected_frame: Option<Bytes> = None;
    loop {
        let sent = Instant::now();
        conn.send_prepared(&request).await?;
        let mut answer = None;
        while answer.is_none() {
            let frame = match &expected_frame {
                Some(reply) => match conn.next_unless(reply).await? {
                    None => {
                        answer = Some(true);
                        break;
                    }
                    Some(frame) => frame,
                },
                None => conn.next_frame().await?,
            };
            handle_frame(conn, &frame, &mut |message, is_reply| {
                if is_reply {
                    answer = Some(match &expected {
                        Some(reply) => message == reply,
                        None if client::contains(message, payload.as_bytes()) => {
                            expected = Some(message.to_vec());
                            true
                        }
                        None => false,
                    });
                }
            })
            .await?;
            if answer == Some(true) && expected_frame.is_none() {
                let mut messages = 0;
                conn.protocol.events(&frame, |_| messages += 1);
                if messages == 1 {
                    expected_frame = Some(frame.into_data());
                }
            }
        }
        if answer != Some(true) {
            return Err("an echo reply without the payload, or unlike the first one".into());
        }
        if shared.measuring.get() {
            let rtt = sent.elapsed().as_micros().max(1) as u64;
            shared.rtt.borrow_mut().saturating_record(rtt);
            shared.count.set(shared.count.get() + 1);
            count.set(count.get() + 1);
        }
    }
}

// ----------------------------------------------------------------------- broadcast

/// One broadcast measurement.
#[derive(Clone, Debug)]
pub(crate) struct BroadcastRow {
    /// Receivers that could not be opened.
    pub(crate) failed_connects: usize,
    /// Messages sent.
    pub(crate) messages: u64,
    /// messages × receivers connected.
    pub(crate) expected: u64,
    /// expected − delivered.
    pub(crate) missing: u64,
    /// Messages seen twice or out of order.
    pub(crate) out_of_order: u64,
    /// Receivers whose connection ended during the run.
    pub(crate) lost_receivers: u64,
    /// Deliveries per second, first send to last delivery.
    pub(crate) rate: f64,
    /// Delivery latency across receivers, microseconds.
    pub(crate) p50_us: u64,
    /// Delivery latency across receivers, microseconds.
    pub(crate) p99_us: u64,
    /// CPU from the first send to the last delivery.
    pub(crate) cpu: CpuUse,
    /// The first error, if any.
    pub(crate) first_error: Option<String>,
}

#[derive(Default)]
pub(crate) struct BroadcastShared {
    pub(crate) delivered: Cell<u64>,
    out_of_order: Cell<u64>,
    last_delivery: Cell<Option<Instant>>,
    latency: RefCell<Option<Histogram<u64>>>,
    pub(crate) failures: Failures,
}

impl BroadcastShared {
    fn record(&self, message: &[u8], last_seq: &mut Option<u64>) {
        let Some((seq, sent_us)) = client::parse_stamp(message) else {
            return;
        };
        if let Some(latency) = self.latency.borrow_mut().as_mut() {
            latency.saturating_record(now_us().saturating_sub(sent_us).max(1));
        }
        if last_seq.is_some_and(|last| seq <= last) {
            self.out_of_order.set(self.out_of_order.get() + 1);
        } else {
            self.delivered.set(self.delivered.get() + 1);
            *last_seq = Some(seq);
        }
        self.last_delivery.set(Some(Instant::now()));
    }
}

/// A receiving (or idle) connection: reads until aborted, pings when the protocol
/// wants the client to, and records deliveries into `shared`.
pub(crate) async fn receive_loop(mut conn: Conn, shared: Rc<BroadcastShared>) {
    let mut last_seq = None;
    let pings = conn.protocol.client_pings();
    let first = tokio::time::Instant::now() + SIGNALR_PING_INTERVAL;
    let mut keep_alive = tokio::time::interval_at(first, SIGNALR_PING_INTERVAL);
    loop {
        let result = tokio::select! {
            frame = conn.next_frame() => match frame {
                Ok(frame) => {
                    handle_frame(&mut conn, &frame, &mut |message, is_reply| {
                        if !is_reply {
                            shared.record(message, &mut last_seq);
                        }
                    })
                    .await
                }
                Err(error) => Err(error),
            },
            _ = keep_alive.tick(), if pings => conn.keep_alive().await,
        };
        if let Err(error) = result {
            shared.failures.note(error);
            return;
        }
    }
}

/// The sender: one broadcast every `interval`, `messages` in all; then it keeps
/// reading its own connection (signal's `broadcast` reaches the caller too).
async fn send_loop(
    mut conn: Conn,
    messages: u64,
    interval: Duration,
    sent: Rc<Cell<u64>>,
) -> Result<(), Error> {
    let mut ticker = tokio::time::interval(interval);
    let mut ignore = |_: &[u8], _: bool| {};
    while sent.get() < messages {
        tokio::select! {
            _ = ticker.tick() => {
                let text = client::stamp(sent.get(), now_us(), BROADCAST_TEXT_LEN);
                conn.send(conn.protocol.broadcast_request(&text)).await?;
                sent.set(sent.get() + 1);
            }
            frame = conn.next_frame() => handle_frame(&mut conn, &frame?, &mut ignore).await?,
        }
    }
    loop {
        read_events(&mut conn, &mut ignore).await?;
    }
}

/// The pace of a broadcast: a message every `interval` for `duration`, then up
/// to `drain` for the last deliveries; `settle` is the pause between opening the
/// connections and the first send.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pace {
    pub(crate) interval: Duration,
    pub(crate) duration: Duration,
    pub(crate) drain: Duration,
    pub(crate) settle: Duration,
}

/// One sender and `receivers` receivers, at `pace`.
pub(crate) async fn broadcast(
    endpoint: &Endpoint<'_>,
    server: &Server,
    receivers: usize,
    pace: Pace,
) -> Result<BroadcastRow, Error> {
    let shared = Rc::new(BroadcastShared::default());
    let mut tasks = JoinSet::new();
    let opened = open_receivers(endpoint, receivers, &shared, &mut tasks).await?;
    measure_broadcast(endpoint, server, &shared, tasks, opened, pace).await
}

/// Opens `receivers` receiving connections as tasks of `tasks`; an error when
/// none opened.
async fn open_receivers(
    endpoint: &Endpoint<'_>,
    receivers: usize,
    shared: &Rc<BroadcastShared>,
    tasks: &mut JoinSet<()>,
) -> Result<Opened, Error> {
    let opened = open_many(endpoint, receivers, |c| {
        tasks.spawn_local(receive_loop(c, shared.clone()));
    })
    .await;
    if opened.ok == 0 {
        return Err(opened
            .first_error
            .unwrap_or_else(|| "no receiver".into())
            .into());
    }
    Ok(opened)
}

/// Connects the sender and broadcasts at `pace` to the receivers already open
/// (`opened`, running as `tasks`), then stops them.
async fn measure_broadcast(
    endpoint: &Endpoint<'_>,
    server: &Server,
    shared: &Rc<BroadcastShared>,
    mut tasks: JoinSet<()>,
    opened: Opened,
    pace: Pace,
) -> Result<BroadcastRow, Error> {
    let Pace {
        interval,
        duration,
        drain,
        settle,
    } = pace;
    let sender = client::connect(endpoint).await?;
    // Let the last connections settle (on_connected, registration) before timing.
    tokio::time::sleep(settle).await;
    let messages = (duration.as_micros() / interval.as_micros().max(1)).max(1) as u64;
    let sent = Rc::new(Cell::new(0));
    *shared.latency.borrow_mut() = Some(histogram());
    let cpu = CpuWindow::start(server);
    let started = Instant::now();
    let sender = tokio::task::spawn_local(send_loop(sender, messages, interval, sent.clone()));
    let expected = messages * opened.ok as u64;
    let mut sender_error = None;
    let mut last_sent_at = None;
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if sender.is_finished() {
            // The sender only ends on an error.
            sender_error = Some(match sender.await {
                Ok(Err(error)) => error.to_string(),
                _ => "the sender stopped".to_owned(),
            });
            break;
        }
        if sent.get() < messages {
            continue;
        }
        let last_sent = *last_sent_at.get_or_insert_with(Instant::now);
        if shared.delivered.get() >= expected || last_sent.elapsed() >= drain {
            break;
        }
    }
    let cpu = cpu.finish(server);
    let end = shared.last_delivery.get().unwrap_or_else(Instant::now);
    let span = end
        .saturating_duration_since(started)
        .as_secs_f64()
        .max(1e-9);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let latency = shared.latency.borrow_mut().take().unwrap_or_else(histogram);
    let (p50_us, p99_us) = percentiles(&latency);
    let delivered = shared.delivered.get();
    let first_error = sender_error
        .clone()
        .or_else(|| shared.failures.first())
        .or(opened.first_error);
    if let Some(error) = sender_error
        && sent.get() < messages
    {
        return Err(format!("the sender failed: {error}").into());
    }
    Ok(BroadcastRow {
        failed_connects: opened.failed,
        messages,
        expected,
        missing: expected.saturating_sub(delivered),
        out_of_order: shared.out_of_order.get(),
        lost_receivers: shared.failures.count.get(),
        rate: delivered as f64 / span,
        p50_us,
        p99_us,
        cpu,
        first_error,
    })
}

// --------------------------------------------------------------------------- scale

/// Idle memory and broadcast latency at one connection count, on a fresh server.
#[derive(Clone, Debug)]
pub(crate) struct ScaleRow {
    /// Resident memory with no connection, bytes.
    pub(crate) base_rss: u64,
    /// Receivers open (and alive) when memory was read.
    pub(crate) open: usize,
    /// Resident memory with them idle, bytes; `None` when memory was not asked
    /// for (a protocol variant of the same server).
    pub(crate) rss: Option<u64>,
    /// The broadcast to them, right after.
    pub(crate) broadcast: BroadcastRow,
}

impl ScaleRow {
    /// (rss − rss with none) / open, bytes.
    pub(crate) fn per_connection(&self) -> Option<f64> {
        self.rss
            .map(|rss| rss.saturating_sub(self.base_rss) as f64 / self.open.max(1) as f64)
    }

    /// Server CPU seconds per delivery over the broadcast (its CPU share over
    /// its deliveries per second): what the projection scales.
    pub(crate) fn cpu_per_delivery(&self) -> Option<f64> {
        let b = &self.broadcast;
        (b.rate > 0.0).then(|| b.cpu.server / b.rate)
    }
}

/// `connections` idle receivers on a fresh server: with `memory`, held for
/// `hold` (pings flowing) before reading the server's memory, as the idle
/// scenario does; then one sender broadcasts to them at `pace`.
pub(crate) async fn scale(
    endpoint: &Endpoint<'_>,
    server: &Server,
    connections: usize,
    memory: bool,
    hold: Duration,
    pace: Pace,
) -> Result<ScaleRow, Error> {
    tokio::time::sleep(pace.settle).await;
    let base_rss = server.rss()?;
    let shared = Rc::new(BroadcastShared::default());
    let mut tasks = JoinSet::new();
    let opened = open_receivers(endpoint, connections, &shared, &mut tasks).await?;
    let mut rss = None;
    if memory {
        tokio::time::sleep(hold).await;
        rss = Some(server.rss()?);
    }
    let open = opened
        .ok
        .saturating_sub(shared.failures.count.get() as usize);
    let broadcast = measure_broadcast(endpoint, server, &shared, tasks, opened, pace).await?;
    Ok(ScaleRow {
        base_rss,
        open,
        rss,
        broadcast,
    })
}

// ---------------------------------------------------------------------------- idle

/// Server memory with a number of idle connections.
#[derive(Clone, Debug)]
pub(crate) struct IdleLevel {
    /// Connections open when memory was read.
    pub(crate) open: usize,
    /// Resident memory, bytes.
    pub(crate) rss: u64,
    /// (rss − rss with none) / open.
    pub(crate) per_connection: f64,
}

/// The idle-memory measurement of one system.
#[derive(Clone, Debug)]
pub(crate) struct IdleRow {
    /// Resident memory with no connection, bytes.
    pub(crate) base_rss: u64,
    /// One entry per level.
    pub(crate) levels: Vec<IdleLevel>,
    /// Connections that failed to open or ended while idle.
    pub(crate) failures: u64,
    /// The first error, if any.
    pub(crate) first_error: Option<String>,
}

/// Server memory with no connection, then with each of `levels` idle connections
/// (handshake done, pings flowing), each held for `hold` before reading it;
/// the server first gets `settle` to finish starting.
pub(crate) async fn idle(
    endpoint: &Endpoint<'_>,
    server: &Server,
    levels: &[usize],
    hold: Duration,
    settle: Duration,
) -> Result<IdleRow, Error> {
    tokio::time::sleep(settle).await;
    let base_rss = server.rss()?;
    let shared = Rc::new(BroadcastShared::default());
    let mut tasks = JoinSet::new();
    let mut row = IdleRow {
        base_rss,
        levels: Vec::new(),
        failures: 0,
        first_error: None,
    };
    let mut open = 0;
    for &target in levels {
        let opened = open_many(endpoint, target.saturating_sub(open), |c| {
            tasks.spawn_local(receive_loop(c, shared.clone()));
        })
        .await;
        open += opened.ok;
        row.failures += opened.failed as u64;
        row.first_error = row.first_error.or(opened.first_error);
        tokio::time::sleep(hold).await;
        let alive = open.saturating_sub(shared.failures.count.get() as usize);
        let rss = server.rss()?;
        row.levels.push(IdleLevel {
            open: alive,
            rss,
            per_connection: rss.saturating_sub(base_rss) as f64 / alive.max(1) as f64,
        });
    }
    row.failures += shared.failures.count.get();
    row.first_error = row.first_error.or(shared.failures.first());
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok(row)
}

// ------------------------------------------------------------------------- connect

/// The connection rate of one system.
#[derive(Clone, Debug)]
pub(crate) struct ConnectRow {
    /// Clients that could not connect.
    pub(crate) failed: usize,
    /// Connections completed per second (negotiate + WebSocket + handshake).
    pub(crate) rate: f64,
    /// Time to connect one client, microseconds.
    pub(crate) p50_us: u64,
    /// Time to connect one client, microseconds.
    pub(crate) p99_us: u64,
    /// CPU over the batch.
    pub(crate) cpu: CpuUse,
    /// The first error, if any.
    pub(crate) first_error: Option<String>,
}

/// `clients` clients connect, `CONNECT_CONCURRENCY` at a time, and stay
/// connected until all have; the server first gets `settle` to finish starting.
pub(crate) async fn connect(
    endpoint: &Endpoint<'_>,
    server: &Server,
    clients: usize,
    settle: Duration,
) -> Result<ConnectRow, Error> {
    tokio::time::sleep(settle).await;
    let shared = Rc::new(BroadcastShared::default());
    let mut tasks = JoinSet::new();
    let cpu = CpuWindow::start(server);
    let opened = open_many(endpoint, clients, |c| {
        tasks.spawn_local(receive_loop(c, shared.clone()));
    })
    .await;
    let cpu = cpu.finish(server);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if opened.ok == 0 {
        return Err(opened
            .first_error
            .unwrap_or_else(|| "no connection".into())
            .into());
    }
    let (p50_us, p99_us) = percentiles(&opened.latency);
    Ok(ConnectRow {
        failed: opened.failed,
        rate: opened.ok as f64 / opened.elapsed.as_secs_f64().max(1e-9),
        p50_us,
        p99_us,
        cpu,
        first_error: opened.first_error,
    })
}
