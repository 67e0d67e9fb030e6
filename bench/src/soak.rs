//! Soak scenarios: what one hostile (or broken) client costs the others.
//!
//! - *flood*: `victims` clients echo in a closed loop; their latency is taken
//!   alone, then while one more client floods the server with invocations
//!   (bursts of `burst`, pipelined, as many in flight as the server lets a
//!   connection queue). A fair server keeps the victims' p99 near its
//!   baseline; the flooder's own rate shows what it got.
//! - *stalled*: one client stops reading while another broadcasts; a third
//!   reads every message. The server's memory is sampled throughout: a server
//!   that buffers for the stalled client without bound grows by everything
//!   sent, one that bounds its queue (and drops the client) does not.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::task::JoinSet;

use crate::Error;
use crate::client::{self, Conn, Endpoint};
use crate::scenario::{
    BroadcastShared, EchoShared, Failures, echo_loop, handle_frame, histogram, now_us, open_many,
    percentiles, read_events, receive_loop,
};
use crate::server::{CpuUse, CpuWindow, Server};

/// Invocations a flooder keeps in flight: below signal's
/// `pending_invocation_capacity` (1024), which closes a connection that queues
/// more, so the flood measures fairness rather than that limit.
const FLOOD_IN_FLIGHT: u64 = 512;

/// One flood measurement.
#[derive(Clone, Debug)]
pub(crate) struct FloodRow {
    /// Victims that could not be opened.
    pub(crate) failed_connects: usize,
    /// The victims' round trips alone, microseconds.
    pub(crate) baseline_p50_us: u64,
    /// The victims' round trips alone, microseconds.
    pub(crate) baseline_p99_us: u64,
    /// The victims' invocations per second alone.
    pub(crate) baseline_rate: f64,
    /// The victims' round trips during the flood, microseconds.
    pub(crate) flood_p50_us: u64,
    /// The victims' round trips during the flood, microseconds.
    pub(crate) flood_p99_us: u64,
    /// The victims' invocations per second during the flood.
    pub(crate) flood_rate: f64,
    /// The fewest round trips one victim completed during the flood.
    pub(crate) slowest_victim: u64,
    /// Invocations the flooder had answered during the flood window.
    pub(crate) flooder_answered: u64,
    /// Why the flooder stopped early, if it did (the server closed it, say).
    pub(crate) flooder_stopped: Option<String>,
    /// CPU over the flood window.
    pub(crate) cpu: CpuUse,
    /// Victims that failed, and the first error.
    pub(crate) errors: u64,
    /// The first error, if any.
    pub(crate) first_error: Option<String>,
}

/// See the module's documentation.
pub(crate) async fn flood(
    endpoint: &Endpoint<'_>,
    server: &Server,
    victims: usize,
    burst: u64,
    window: Duration,
) -> Result<FloodRow, Error> {
    let mut conns = Vec::with_capacity(victims);
    let opened = open_many(endpoint, victims, |c| conns.push(c)).await;
    if opened.ok == 0 {
        return Err(opened
            .first_error
            .unwrap_or_else(|| "no connection".into())
            .into());
    }
    let flooder = client::connect(endpoint).await?;
    let payload: Rc<str> = "x".repeat(32).into();
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
    // Warm up, then the victims alone.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let measure = async |shared: &EchoShared| {
        shared.rtt.replace(histogram());
        shared.count.set(0);
        for count in shared.per_connection.borrow().iter() {
            count.set(0);
        }
        let started = Instant::now();
        shared.measuring.set(true);
        tokio::time::sleep(window).await;
        shared.measuring.set(false);
        let (p50, p99) = percentiles(&shared.rtt.borrow());
        let rate = shared.count.get() as f64 / started.elapsed().as_secs_f64();
        (p50, p99, rate)
    };
    let (baseline_p50_us, baseline_p99_us, baseline_rate) = measure(&shared).await;

    let answered = Rc::new(Cell::new(0u64));
    let stopped: Rc<RefCell<Option<String>>> = Rc::default();
    let flooding = tokio::task::spawn_local(flood_loop(
        flooder,
        burst,
        answered.clone(),
        stopped.clone(),
    ));
    // The flood's first burst reaches the server before the window opens.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let at_start = answered.get();
    let cpu = CpuWindow::start(server);
    let (flood_p50_us, flood_p99_us, flood_rate) = measure(&shared).await;
    let cpu = cpu.finish(server);
    let flooder_answered = answered.get() - at_start;
    flooding.abort();
    let slowest_victim = shared
        .per_connection
        .borrow()
        .iter()
        .map(|c| c.get())
        .min()
        .unwrap_or(0);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let flooder_stopped = stopped.borrow().clone();
    Ok(FloodRow {
        failed_connects: opened.failed,
        baseline_p50_us,
        baseline_p99_us,
        baseline_rate,
        flood_p50_us,
        flood_p99_us,
        flood_rate,
        slowest_victim,
        flooder_answered,
        flooder_stopped,
        cpu,
        errors: shared.failures.count.get(),
        first_error: shared.failures.first().or(opened.first_error),
    })
}

/// Sends bursts of `burst` echo invocations, `FLOOD_IN_FLIGHT` at a time
/// without waiting for each answer, until aborted or closed.
async fn flood_loop(
    mut conn: Conn,
    burst: u64,
    answered: Rc<Cell<u64>>,
    stopped: Rc<RefCell<Option<String>>>,
) {
    let request = conn.protocol.echo_request("flood");
    let result: Result<(), Error> = async {
        loop {
            let mut sent = 0u64;
            let mut done = 0u64;
            while done < burst {
                while sent < burst && sent - done < FLOOD_IN_FLIGHT {
                    conn.send(request.clone()).await?;
                    sent += 1;
                }
                let mut got = 0;
                read_events(&mut conn, |_, is_reply| {
                    if is_reply {
                        got += 1;
                    }
                })
                .await?;
                done += got;
                answered.set(answered.get() + got);
            }
        }
    }
    .await;
    if let Err(error) = result {
        *stopped.borrow_mut() = Some(error.to_string());
    }
}

/// One stalled-reader measurement.
#[derive(Clone, Debug)]
pub(crate) struct StalledRow {
    /// Server memory before the stalled client connected, bytes.
    pub(crate) base_rss: u64,
    /// The most server memory seen while the messages went out, bytes.
    pub(crate) peak_rss: u64,
    /// Server memory once the messages were out and the server settled, bytes.
    pub(crate) after_rss: u64,
    /// Messages broadcast, and their size.
    pub(crate) messages: u64,
    /// Bytes of one message's text.
    pub(crate) size: usize,
    /// Messages the reading client received.
    pub(crate) reader_received: u64,
    /// What became of the stalled client: how many messages it could still
    /// read, and whether the server had closed it.
    pub(crate) stalled_read: u64,
    /// The server closed the stalled client (with its reason, as read).
    pub(crate) stalled_closed: Option<String>,
}

/// See the module's documentation.
pub(crate) async fn stalled(
    endpoint: &Endpoint<'_>,
    server: &Server,
    messages: u64,
    size: usize,
    settle: Duration,
) -> Result<StalledRow, Error> {
    tokio::time::sleep(settle).await;
    let base_rss = server.rss()?;
    let mut stalled = client::connect(endpoint).await?;
    let reader = Rc::new(BroadcastShared::default());
    let mut tasks = JoinSet::new();
    tasks.spawn_local(receive_loop(
        client::connect(endpoint).await?,
        reader.clone(),
    ));
    let mut sender = client::connect(endpoint).await?;
    tokio::time::sleep(settle).await;

    let peak = Cell::new(base_rss);
    let mut sent = 0u64;
    let mut last_sample = Instant::now();
    let mut ignore = |_: &[u8], _: bool| {};
    // The sender stays at most 64 messages ahead of the reading client: the
    // server, not the generator, sets the pace. It reads its own connection
    // all along (some servers send the broadcast to it too), so that it is
    // not a stalled client itself.
    while sent < messages {
        while let Some(frame) = sender.next_frame().now_or_never() {
            handle_frame(&mut sender, &frame?, &mut ignore).await?;
        }
        if sent.saturating_sub(reader.delivered.get()) < 64 {
            let text = client::stamp(sent, now_us(), size);
            sender
                .send(sender.protocol.broadcast_request(&text))
                .await?;
            sent += 1;
        } else {
            tokio::select! {
                frame = sender.next_frame() => handle_frame(&mut sender, &frame?, &mut ignore).await?,
                () = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
        if last_sample.elapsed() >= Duration::from_millis(50) {
            peak.set(peak.get().max(server.rss()?));
            last_sample = Instant::now();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while reader.delivered.get() < messages && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        peak.set(peak.get().max(server.rss()?));
    }
    tokio::time::sleep(settle).await;
    let after_rss = server.rss()?;
    peak.set(peak.get().max(after_rss));
    // Now read what the stalled client can still get: until the server's
    // close, or nothing for a second.
    let mut stalled_read = 0u64;
    let stalled_closed = loop {
        match tokio::time::timeout(Duration::from_secs(1), stalled.next_frame()).await {
            Err(_) => break None,
            Ok(Err(error)) => break Some(error.to_string()),
            Ok(Ok(frame)) => {
                let mut closed = None;
                stalled.protocol.events(&frame, |event| match event {
                    client::Event::Delivery(_) => stalled_read += 1,
                    client::Event::Failure(message) => closed = Some(message.into_owned()),
                    _ => {}
                });
                if let Some(reason) = closed {
                    break Some(reason);
                }
            }
        }
    };
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok(StalledRow {
        base_rss,
        peak_rss: peak.get(),
        after_rss,
        messages,
        size,
        reader_received: reader.delivered.get(),
        stalled_read,
        stalled_closed,
    })
}
