//! The report: a Markdown page of tables and an SVG chart, both written here with
//! no outside tool.

use std::fmt::Write as _;

use crate::rust_client::ClientRow;
use crate::scenario::{BroadcastRow, ConnectRow, EchoRow, IdleRow, ScaleRow};
use crate::server::CpuUse;
use crate::soak::{FloodRow, StalledRow};

/// One scenario's cell: a system's row, or why there is none.
pub(crate) type Cell<T> = Result<T, String>;

/// Echo cases, `(connections, payload bytes)`, with one cell per system.
pub(crate) type EchoCells = Vec<((usize, usize), Vec<Cell<EchoRow>>)>;

/// Per case: (system, transport, cell) for each system on each HTTP transport.
pub(crate) type TransportCells<K, T> = Vec<(K, Vec<(&'static str, &'static str, Cell<T>)>)>;

/// Per payload: (system, cell) for the systems that run the client scenario.
pub(crate) type ClientCells = Vec<(usize, Vec<(&'static str, Cell<ClientRow>)>)>;

/// Everything one run measured.
pub(crate) struct Results {
    /// Facts about the run, one `key: value` line each.
    pub(crate) meta: Vec<(String, String)>,
    /// The systems' names, bare first.
    pub(crate) systems: Vec<&'static str>,
    /// Per echo case (connections, payload): one cell per system.
    pub(crate) echo: EchoCells,
    /// Per receiver count: one cell per system.
    pub(crate) broadcast: Vec<(usize, Vec<Cell<BroadcastRow>>)>,
    /// The idle levels asked for.
    pub(crate) idle_levels: Vec<usize>,
    /// One cell per system; `None` for a system that does not run it.
    pub(crate) idle: Vec<Option<Cell<IdleRow>>>,
    /// Clients per connect batch.
    pub(crate) connect_clients: usize,
    /// How its SignalR clients negotiated, in a sentence.
    pub(crate) connect_negotiate: String,
    /// One cell per system; `None` for a system that does not run it.
    pub(crate) connect: Vec<Option<Cell<ConnectRow>>>,
    /// Per payload: the Rust client against the generator's loop, per system
    /// that runs it (signal, signal-msgpack).
    pub(crate) client: ClientCells,
    /// Victims of the flood, and the flooder's burst.
    pub(crate) flood_victims: usize,
    pub(crate) flood_burst: u64,
    /// One cell per system; `None` for a system that does not run it.
    pub(crate) flood: Vec<Option<Cell<FloodRow>>>,
    /// One cell per system; `None` for a system that does not run it.
    pub(crate) stalled: Vec<Option<Cell<StalledRow>>>,
    /// Echo over the HTTP transports, per (connections, payload).
    pub(crate) transport_echo: TransportCells<(usize, usize), EchoRow>,
    /// Broadcast over the HTTP transports, per receiver count.
    pub(crate) transport_broadcast: TransportCells<usize, BroadcastRow>,
    /// The scale scenario's broadcast, in words.
    pub(crate) scale_pace: String,
    /// Per connection count: one cell per system; `None` for a system that
    /// does not run it.
    pub(crate) scale: Vec<(usize, Vec<Option<Cell<ScaleRow>>>)>,
}

/// `1234567.8` → `1,234,568`.
pub(crate) fn int(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds as milliseconds, two decimals.
pub(crate) fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn pct(fraction: f64) -> String {
    format!("{:.0} %", fraction * 100.0)
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

fn gib(bytes: f64) -> String {
    if bytes >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GiB", bytes / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.0} MiB", bytes / (1024.0 * 1024.0))
    }
}

/// `a` → `b` as a signed percentage.
fn change(a: f64, b: f64) -> String {
    if a <= 0.0 {
        return "–".to_owned();
    }
    format!("{:+.0} %", (b / a - 1.0) * 100.0)
}

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn ratio(value: f64, base: Option<f64>) -> String {
    match base {
        Some(base) if base > 0.0 => format!("{:.2}×", value / base),
        _ => "–".to_owned(),
    }
}

/// One row of a broadcast table after its `lead` cells; `base` is the p99
/// the row's ratio is to.
fn broadcast_row(md: &mut String, lead: &str, cell: &Cell<BroadcastRow>, base: Option<f64>) {
    match cell {
        Ok(r) => {
            let _ = writeln!(
                md,
                "{lead} {} | {} | {} | {} | {} | {} of {} | {} | {} | {} | {} | {} | {} |",
                int(r.messages as f64),
                int(r.rate),
                ms(r.p50_us),
                ms(r.p99_us),
                ratio(r.p99_us as f64, base),
                int(r.missing as f64),
                int(r.expected as f64),
                r.out_of_order,
                r.lost_receivers + r.failed_connects as u64,
                pct(r.cpu.server),
                pct(r.cpu.generator),
                pct(r.cpu.others),
                per_core(r.rate, r.cpu.server),
            );
        }
        Err(_) => {
            let _ = writeln!(md, "{lead} failed | | | | | | | | | | | |");
        }
    }
}

/// The server's CPU time per unit of work (a call, a connect), in user space
/// and in the kernel: where the time goes, which a rate alone does not say.
fn per_unit(rate: f64, cpu: &CpuUse) -> String {
    if rate > 0.0 && cpu.server > 0.01 {
        let user = (cpu.server - cpu.server_kernel).max(0.0);
        format!(
            "{:.1} + {:.1}",
            user / rate * 1e6,
            cpu.server_kernel / rate * 1e6
        )
    } else {
        "–".to_owned()
    }
}

fn per_core(rate: f64, cpu: f64) -> String {
    if cpu > 0.01 {
        int(rate / cpu)
    } else {
        "–".to_owned()
    }
}

fn payload_name(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

fn failure(name: &str, error: &str) -> String {
    format!("{name}: {}", error.replace('|', "/").replace('\n', " "))
}

impl Results {
    fn base<T>(cells: &[Cell<T>], value: impl Fn(&T) -> f64) -> Option<f64> {
        cells.first().and_then(|c| c.as_ref().ok()).map(value)
    }

    /// The first system's value (the bare server's) where not every system runs.
    fn base_of<T>(cells: &[Option<Cell<T>>], value: impl Fn(&T) -> f64) -> Option<f64> {
        cells
            .first()
            .and_then(|c| c.as_ref())
            .and_then(|c| c.as_ref().ok())
            .map(value)
    }

    /// The Markdown page; `chart` is the SVG file's name beside it.
    pub(crate) fn markdown(&self, chart: &str) -> String {
        let mut md = String::new();
        let title = self
            .meta
            .iter()
            .find(|(k, _)| k == "date")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let _ = writeln!(md, "# signal benchmark, {title}\n");
        for (key, value) in &self.meta {
            let _ = writeln!(md, "- {key}: {value}");
        }
        md.push('\n');
        // The summary and the chart are of echo, broadcast, idle and connect.
        if !(self.echo.is_empty()
            && self.broadcast.is_empty()
            && self.idle.is_empty()
            && self.connect.is_empty())
        {
            self.summary(&mut md);
            let _ = writeln!(md, "![echo and broadcast]({chart})\n");
        }
        self.echo_table(&mut md);
        self.broadcast_table(&mut md);
        self.transport_tables(&mut md);
        self.idle_table(&mut md);
        self.connect_table(&mut md);
        self.scale_table(&mut md);
        self.client_table(&mut md);
        self.soak_tables(&mut md);
        let _ = writeln!(
            md,
            "## How to read this\n\n\
             - Each system runs alone, freshly started for each scenario, pinned to its core; the load \
             generator runs on the other core. CPU is the share of one core used over the measured window \
             (`/proc/PID/stat`); \"per server core\" divides the rate by the server's CPU share; \"server µs per \
             call\" (or connect) splits the server's CPU time per unit into user space and the kernel (system calls, \
             the loopback network stack), from the same counters at the kernel's tick resolution; \"other CPU\" is what \
             the rest of the machine used meanwhile (`/proc/stat`): above a few percent, the row was measured \
             on a busy machine and is noisy.\n\
             - *echo*: every connection invokes `echo` (signal: JSON text frames; signal-msgpack: the same \
             server with the MessagePack hub protocol, binary frames), emits `echo` with an ack (socket.io), or \
             sends a text frame the bare server returns, and waits for the answer before the next (closed \
             loop). Round trips are timed by the generator, after a warm-up. \
             \"Calls per connection\" shows how evenly the server served its connections over the window.\n\
             - *broadcast*: one sender asks the server every 50 ms to send a 64-character text to every \
             connection; the text carries its send time, each receiver times its arrival. Missing = messages \
             × receivers − deliveries (a receiver whose connection ends misses what follows).\n\
             - *idle*: resident memory (`VmRSS`) of the server with no connection and with N idle connections \
             (handshake done; SignalR clients ping every 15 s, socket.io clients answer the server's pings), \
             after holding them; per connection = (RSS_N − RSS_0) / N.\n\
             - *connect*: clients opened {} at a time, each timed from its first TCP connect to the end of the \
             protocol handshake (signal: negotiate POST, on the connection the section states, + WebSocket + handshake; socket.io: WebSocket + \
             engine.io open + namespace connect; bare: WebSocket).\n\
             - *HTTP transports*: the same echo and broadcast, each client on two keep-alive HTTP/1.1 \
             connections as a browser: one sends (negotiate, then one POST per message), the other receives \
             (signal: the Server-Sent Events stream, or one long poll at a time; socketioxide and socket.io: \
             engine.io v4 polling, no upgrade). \"× WebSocket\" compares with the same system's WebSocket row \
             of the same size in this run.\n\
             - *scale*: on a fresh server per count, N idle connections held as in *idle*, then a slow \
             broadcast to all of them; the projection multiplies the largest count's figures and is not a \
             measurement.",
            crate::scenario::CONNECT_CONCURRENCY
        );
        let errors = self.errors();
        if !errors.is_empty() {
            let _ = writeln!(md, "\n## Errors seen\n");
            for e in errors {
                let _ = writeln!(md, "- {e}");
            }
        }
        md
    }

    /// Every failure or first error, as `scenario / system: text`.
    pub(crate) fn errors(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut note = |scenario: String, system: &str, error: Option<&str>| {
            if let Some(error) = error {
                out.push(failure(&format!("{scenario} / {system}"), error));
            }
        };
        for ((conns, payload), cells) in &self.echo {
            for (system, cell) in self.systems.iter().zip(cells) {
                let scenario = format!("echo {conns} × {}", payload_name(*payload));
                match cell {
                    Ok(row) => note(scenario, system, row.first_error.as_deref()),
                    Err(e) => note(scenario, system, Some(e)),
                }
            }
        }
        for (receivers, cells) in &self.broadcast {
            for (system, cell) in self.systems.iter().zip(cells) {
                let scenario = format!("broadcast {receivers}");
                match cell {
                    Ok(row) => note(scenario, system, row.first_error.as_deref()),
                    Err(e) => note(scenario, system, Some(e)),
                }
            }
        }
        for (system, cell) in self.systems.iter().zip(&self.idle) {
            match cell {
                Some(Ok(row)) => note("idle".into(), system, row.first_error.as_deref()),
                Some(Err(e)) => note("idle".into(), system, Some(e)),
                None => {}
            }
        }
        for (system, cell) in self.systems.iter().zip(&self.connect) {
            match cell {
                Some(Ok(row)) => note("connect".into(), system, row.first_error.as_deref()),
                Some(Err(e)) => note("connect".into(), system, Some(e)),
                None => {}
            }
        }
        for (payload, cells) in &self.client {
            for (system, cell) in cells {
                let scenario = format!("client 1 × {}", payload_name(*payload));
                match cell {
                    Ok(row) => note(scenario, system, row.first_error.as_deref()),
                    Err(e) => note(scenario, system, Some(e)),
                }
            }
        }
        for ((conns, payload), cells) in &self.transport_echo {
            for (system, transport, cell) in cells {
                let scenario = format!("echo {conns} × {} ({transport})", payload_name(*payload));
                match cell {
                    Ok(row) => note(scenario, system, row.first_error.as_deref()),
                    Err(e) => note(scenario, system, Some(e)),
                }
            }
        }
        for (receivers, cells) in &self.transport_broadcast {
            for (system, transport, cell) in cells {
                let scenario = format!("broadcast {receivers} ({transport})");
                match cell {
                    Ok(row) => note(scenario, system, row.first_error.as_deref()),
                    Err(e) => note(scenario, system, Some(e)),
                }
            }
        }
        for (connections, cells) in &self.scale {
            for (system, cell) in self.systems.iter().zip(cells) {
                let scenario = format!("scale {connections}");
                match cell {
                    Some(Ok(row)) => note(scenario, system, row.broadcast.first_error.as_deref()),
                    Some(Err(e)) => note(scenario, system, Some(e)),
                    None => {}
                }
            }
        }
        out
    }

    /// The Rust client's table: its rate over one connection against the
    /// generator's bare-minimum loop over one connection to the same server.
    fn client_table(&self, md: &mut String) {
        if self.client.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Rust client (one connection, closed loop)\n");
        let _ = writeln!(
            md,
            "`signal_client::HubConnection::invoke(\"echo\", …)` in a loop, against the load generator's own \
             loop (pre-encoded frames) over one connection to the same server: what calling a hub from Rust \
             costs on top of the wire.\n"
        );
        let _ = writeln!(
            md,
            "| payload | system | generator loop inv/s | signal-client inv/s | × generator loop | p50 ms (loop) | p50 ms (client) | p99 ms (client) | generator CPU | errors |"
        );
        let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
        for (payload, cells) in &self.client {
            for (system, cell) in cells {
                let lead = format!("| {} | {system} |", payload_name(*payload));
                match cell {
                    Ok(r) => {
                        let _ = writeln!(
                            md,
                            "{lead} {} | {} | {} | {} | {} | {} | {} | {} |",
                            int(r.raw_rate),
                            int(r.client_rate),
                            ratio(r.client_rate, Some(r.raw_rate)),
                            ms(r.raw_p50_us),
                            ms(r.client_p50_us),
                            ms(r.client_p99_us),
                            pct(r.cpu.generator),
                            r.first_error.as_deref().unwrap_or("none"),
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(
                            md,
                            "{lead} – | – | – | – | – | – | – | {} |",
                            e.replace('|', "/")
                        );
                    }
                }
            }
        }
        md.push('\n');
    }

    /// Whether every scenario ran for every system with nothing failed or missing.
    pub(crate) fn clean(&self) -> (usize, usize) {
        let mut passed = 0;
        let mut failed = 0;
        let mut count = |ok: bool| {
            if ok { passed += 1 } else { failed += 1 }
        };
        for (_, cells) in &self.echo {
            for cell in cells {
                count(
                    cell.as_ref()
                        .is_ok_and(|r| r.errors == 0 && r.failed_connects == 0 && r.rate > 0.0),
                );
            }
        }
        let echo_ok = |r: &EchoRow| r.errors == 0 && r.failed_connects == 0 && r.rate > 0.0;
        let broadcast_ok =
            |r: &BroadcastRow| r.missing == 0 && r.out_of_order == 0 && r.failed_connects == 0;
        for (_, cells) in &self.broadcast {
            for cell in cells {
                count(cell.as_ref().is_ok_and(broadcast_ok));
            }
        }
        for (_, cells) in &self.transport_echo {
            for (_, _, cell) in cells {
                count(cell.as_ref().is_ok_and(echo_ok));
            }
        }
        for (_, cells) in &self.transport_broadcast {
            for (_, _, cell) in cells {
                count(cell.as_ref().is_ok_and(broadcast_ok));
            }
        }
        for (_, cells) in &self.scale {
            for cell in cells.iter().flatten() {
                count(cell.as_ref().is_ok_and(|r| broadcast_ok(&r.broadcast)));
            }
        }
        for cell in self.idle.iter().flatten() {
            count(cell.as_ref().is_ok_and(|r| r.failures == 0));
        }
        for cell in self.connect.iter().flatten() {
            count(cell.as_ref().is_ok_and(|r| r.failed == 0));
        }
        for (_, cells) in &self.client {
            for (_, cell) in cells {
                count(cell.as_ref().is_ok_and(|r| {
                    r.first_error.is_none() && r.client_rate > 0.0 && r.raw_rate > 0.0
                }));
            }
        }
        for cell in self.flood.iter().flatten() {
            count(
                cell.as_ref().is_ok_and(|r| {
                    r.errors == 0 && r.failed_connects == 0 && r.flooder_answered > 0
                }),
            );
        }
        // What a peer loses to a stalled client is its behaviour, reported;
        // signal must lose nothing.
        for (system, cell) in self.systems.iter().zip(&self.stalled) {
            let Some(cell) = cell else { continue };
            count(
                cell.as_ref().is_ok_and(|r| {
                    !system.starts_with("signal") || r.reader_received == r.messages
                }),
            );
        }
        (passed, failed)
    }

    fn summary(&self, md: &mut String) {
        let _ = writeln!(md, "## Summary\n");
        let mut header = vec!["system".to_owned()];
        let mut align = vec!["---"];
        let echo_cases: Vec<_> = self
            .echo
            .iter()
            .filter(|((c, _), _)| *c == self.echo.first().map(|e| e.0.0).unwrap_or(0))
            .collect();
        for ((conns, payload), _) in &echo_cases {
            header.push(format!("echo {conns} × {} (inv/s)", payload_name(*payload)));
            align.push("---:");
        }
        let big_broadcast = self.broadcast.last();
        if let Some((receivers, _)) = big_broadcast {
            header.push(format!("broadcast {} p99 (ms)", int(*receivers as f64)));
            header.push("missing".to_owned());
            align.push("---:");
            align.push("---:");
        }
        if let Some(level) = self.idle_levels.first().filter(|_| !self.idle.is_empty()) {
            header.push(format!(
                "idle memory per connection ({})",
                int(*level as f64)
            ));
            align.push("---:");
        }
        if !self.connect.is_empty() {
            header.push(format!("connects/s ({})", int(self.connect_clients as f64)));
            align.push("---:");
        }
        let _ = writeln!(md, "| {} |", header.join(" | "));
        let _ = writeln!(md, "|{}|", align.join("|"));
        for (i, system) in self.systems.iter().enumerate() {
            let mut row = vec![format!("**{system}**")];
            for (_, cells) in &echo_cases {
                let base = Self::base(cells, |r| r.rate);
                row.push(match &cells[i] {
                    Ok(r) => format!("{} ({})", int(r.rate), ratio(r.rate, base)),
                    Err(_) => "failed".to_owned(),
                });
            }
            if let Some((_, cells)) = big_broadcast {
                let base = Self::base(cells, |r| r.p99_us as f64);
                match &cells[i] {
                    Ok(r) => {
                        row.push(format!(
                            "{} ({})",
                            ms(r.p99_us),
                            ratio(r.p99_us as f64, base)
                        ));
                        row.push(format!(
                            "{} of {}",
                            int(r.missing as f64),
                            int(r.expected as f64)
                        ));
                    }
                    Err(_) => {
                        row.push("failed".to_owned());
                        row.push("–".to_owned());
                    }
                }
            }
            if !self.idle_levels.is_empty() && !self.idle.is_empty() {
                let base = Self::base_of(&self.idle, |r| {
                    r.levels.first().map_or(0.0, |l| l.per_connection)
                });
                row.push(match &self.idle[i] {
                    Some(Ok(r)) => match r.levels.first() {
                        Some(l) => format!(
                            "{} ({})",
                            kib(l.per_connection),
                            ratio(l.per_connection, base)
                        ),
                        None => "–".to_owned(),
                    },
                    Some(Err(_)) => "failed".to_owned(),
                    None => "–".to_owned(),
                });
            }
            if let Some(cell) = self.connect.get(i) {
                let base = Self::base_of(&self.connect, |r| r.rate);
                row.push(match cell {
                    Some(Ok(r)) => format!("{} ({})", int(r.rate), ratio(r.rate, base)),
                    Some(Err(_)) => "failed".to_owned(),
                    None => "–".to_owned(),
                });
            }
            let _ = writeln!(md, "| {} |", row.join(" | "));
        }
        let _ = writeln!(
            md,
            "\nIn parentheses: the ratio to the bare server (higher is better for rates, lower for \
             latency and memory). signal-msgpack runs echo and broadcast only (–).\n"
        );
    }

    fn echo_table(&self, md: &mut String) {
        if self.echo.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Echo (closed loop)\n");
        // With `--rounds`, each row is its system's median round, and a last
        // column lists every round's rate.
        let rounds = self
            .echo
            .iter()
            .flat_map(|(_, cells)| cells.iter().flatten())
            .any(|r| !r.round_rates.is_empty());
        let _ = writeln!(
            md,
            "| connections | payload | system | invocations/s | × bare | p50 ms | p99 ms | p99.9 ms | calls per connection, min–max | server CPU | generator CPU | other CPU | inv/s per server core | server µs per call, user + kernel | errors |{}",
            if rounds { " rounds, inv/s |" } else { "" }
        );
        let _ = writeln!(
            md,
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
            if rounds { "---|" } else { "" }
        );
        for ((conns, payload), cells) in &self.echo {
            let base = Self::base(cells, |r| r.rate);
            for (system, cell) in self.systems.iter().zip(cells) {
                let lead = format!(
                    "| {} | {} | {system} |",
                    int(*conns as f64),
                    payload_name(*payload)
                );
                match cell {
                    Ok(r) => {
                        let _ = writeln!(
                            md,
                            "{lead} {} | {} | {} | {} | {} | {}–{} | {} | {} | {} | {} | {} | {} |{}",
                            int(r.rate),
                            ratio(r.rate, base),
                            ms(r.p50_us),
                            ms(r.p99_us),
                            ms(r.p999_us),
                            int(r.per_connection.0 as f64),
                            int(r.per_connection.1 as f64),
                            pct(r.cpu.server),
                            pct(r.cpu.generator),
                            pct(r.cpu.others),
                            per_core(r.rate, r.cpu.server),
                            per_unit(r.rate, &r.cpu),
                            r.errors + r.failed_connects as u64,
                            if rounds {
                                let rates: Vec<String> =
                                    r.round_rates.iter().map(|&rate| int(rate)).collect();
                                format!(" {} |", rates.join(" / "))
                            } else {
                                String::new()
                            },
                        );
                    }
                    Err(_) => {
                        let more = if rounds { " |" } else { "" };
                        let _ = writeln!(md, "{lead} failed | | | | | | | | | | | | |{more}");
                    }
                }
            }
        }
        md.push('\n');
    }

    fn broadcast_table(&self, md: &mut String) {
        if self.broadcast.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Broadcast (one message every 50 ms)\n");
        let _ = writeln!(
            md,
            "| receivers | system | messages | deliveries/s | p50 ms | p99 ms | p99 × bare | missing | out of order | lost connections | server CPU | generator CPU | other CPU | deliveries/s per server core |"
        );
        let _ = writeln!(
            md,
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (receivers, cells) in &self.broadcast {
            let base = Self::base(cells, |r| r.p99_us as f64);
            for (system, cell) in self.systems.iter().zip(cells) {
                let lead = format!("| {} | {system} |", int(*receivers as f64));
                broadcast_row(md, &lead, cell, base);
            }
        }
        md.push('\n');
    }

    /// The same system's WebSocket cell of a scenario, by name.
    fn websocket<'a, T>(&self, cells: Option<&'a Vec<Cell<T>>>, system: &str) -> Option<&'a T> {
        let i = self.systems.iter().position(|s| *s == system)?;
        cells?.get(i)?.as_ref().ok()
    }

    /// Echo and broadcast over the HTTP transports, each beside the same
    /// system's WebSocket figure of the same size.
    fn transport_tables(&self, md: &mut String) {
        if !self.transport_echo.is_empty() {
            let _ = writeln!(md, "## HTTP transports: echo (closed loop)\n");
            let _ = writeln!(
                md,
                "| connections | payload | system | transport | invocations/s | × WebSocket | p50 ms | p99 ms | p99.9 ms | server CPU | generator CPU | other CPU | inv/s per server core | errors |"
            );
            let _ = writeln!(
                md,
                "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for (case, cells) in &self.transport_echo {
                let ws = self.echo.iter().find(|(c, _)| c == case).map(|(_, c)| c);
                for (system, transport, cell) in cells {
                    let lead = format!(
                        "| {} | {} | {system} | {transport} |",
                        int(case.0 as f64),
                        payload_name(case.1)
                    );
                    match cell {
                        Ok(r) => {
                            let base = self.websocket(ws, system).map(|w| w.rate);
                            let _ = writeln!(
                                md,
                                "{lead} {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                                int(r.rate),
                                ratio(r.rate, base),
                                ms(r.p50_us),
                                ms(r.p99_us),
                                ms(r.p999_us),
                                pct(r.cpu.server),
                                pct(r.cpu.generator),
                                pct(r.cpu.others),
                                per_core(r.rate, r.cpu.server),
                                r.errors + r.failed_connects as u64,
                            );
                        }
                        Err(_) => {
                            let _ = writeln!(md, "{lead} failed | | | | | | | | | |");
                        }
                    }
                }
            }
            md.push('\n');
        }
        if !self.transport_broadcast.is_empty() {
            let _ = writeln!(
                md,
                "## HTTP transports: broadcast (one message every 50 ms)\n"
            );
            let _ = writeln!(
                md,
                "| receivers | system | transport | messages | deliveries/s | p50 ms | p99 ms | p99 × WebSocket | missing | out of order | lost connections | server CPU | generator CPU | other CPU | deliveries/s per server core |"
            );
            let _ = writeln!(
                md,
                "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for (receivers, cells) in &self.transport_broadcast {
                let ws = self
                    .broadcast
                    .iter()
                    .find(|(n, _)| n == receivers)
                    .map(|(_, c)| c);
                for (system, transport, cell) in cells {
                    let lead = format!("| {} | {system} | {transport} |", int(*receivers as f64));
                    let base = self.websocket(ws, system).map(|w| w.p99_us as f64);
                    broadcast_row(md, &lead, cell, base);
                }
            }
            md.push('\n');
        }
    }

    /// The scale table, then per system its growth from the smallest count to
    /// the largest and a linear projection to 100,000 and 1,000,000.
    fn scale_table(&self, md: &mut String) {
        if self.scale.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "## Scale (N idle connections on a fresh server, then {} to all)\n",
            self.scale_pace
        );
        let _ = writeln!(
            md,
            "| connections | system | RSS per connection | total RSS (none) | broadcast p50 ms | p99 ms | deliveries/s | missing | out of order | lost connections | server CPU | server CPU per delivery | other CPU |"
        );
        let _ = writeln!(
            md,
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (connections, cells) in &self.scale {
            for (system, cell) in self.systems.iter().zip(cells) {
                let Some(cell) = cell else { continue };
                let lead = format!("| {} | {system} |", int(*connections as f64));
                match cell {
                    Ok(r) => {
                        let b = &r.broadcast;
                        let open = if r.open < *connections {
                            format!(" ({} open)", int(r.open as f64))
                        } else {
                            String::new()
                        };
                        let _ = writeln!(
                            md,
                            "{lead} {} | {} | {} | {} | {} | {} of {} | {} | {} | {} | {} | {} |",
                            r.per_connection().map_or("–".to_owned(), kib),
                            match r.rss {
                                Some(rss) => format!("{} ({}){open}", mib(rss), mib(r.base_rss)),
                                None => format!("–{open}"),
                            },
                            ms(b.p50_us),
                            ms(b.p99_us),
                            int(b.rate),
                            int(b.missing as f64),
                            int(b.expected as f64),
                            b.out_of_order,
                            b.lost_receivers + b.failed_connects as u64,
                            pct(b.cpu.server),
                            r.cpu_per_delivery()
                                .map_or("–".to_owned(), |s| format!("{:.2} µs", s * 1e6)),
                            pct(b.cpu.others),
                        );
                    }
                    Err(_) => {
                        let _ = writeln!(md, "{lead} failed | | | | | | | | | | |");
                    }
                }
            }
        }
        md.push('\n');
        let _ = writeln!(
            md,
            "Growth from {} to {} connections, and a **linear projection (not a measurement)** from the \
             largest count: memory = RSS with none + per-connection bytes × N; the server CPU one broadcast \
             per second to every connection would need (N deliveries/s) = N × CPU per delivery, which \
             includes the idle connections' own keep-alive traffic and so errs high. Neither counts the \
             kernel's socket buffers outside the process, nor a second core.\n",
            int(self.scale.first().map_or(0, |(n, _)| *n) as f64),
            int(self.scale.last().map_or(0, |(n, _)| *n) as f64),
        );
        for (i, system) in self.systems.iter().enumerate() {
            let rows: Vec<(usize, &ScaleRow)> = self
                .scale
                .iter()
                .filter_map(|(n, cells)| Some((*n, cells.get(i)?.as_ref()?.as_ref().ok()?)))
                .collect();
            let (Some(&(n0, first)), Some(&(n1, last))) = (rows.first(), rows.last()) else {
                continue;
            };
            let mut parts = Vec::new();
            if let (Some(a), Some(b)) = (first.per_connection(), last.per_connection()) {
                parts.push(format!(
                    "memory per connection {} at {} → {} at {} ({})",
                    kib(a),
                    int(n0 as f64),
                    kib(b),
                    int(n1 as f64),
                    change(a, b)
                ));
            }
            parts.push(format!(
                "broadcast p99 {} → {} ms ({:.2}×)",
                ms(first.broadcast.p99_us),
                ms(last.broadcast.p99_us),
                last.broadcast.p99_us as f64 / first.broadcast.p99_us.max(1) as f64
            ));
            let mut projected = Vec::new();
            for n in [100_000.0, 1_000_000.0] {
                let mut cell = Vec::new();
                if let Some(per) = last.per_connection() {
                    cell.push(gib(last.base_rss as f64 + per * n));
                }
                if let Some(cpu) = last.cpu_per_delivery() {
                    cell.push(format!("{:.2} cores", cpu * n));
                }
                if !cell.is_empty() {
                    projected.push(format!("{}: {}", int(n), cell.join(", ")));
                }
            }
            if !projected.is_empty() {
                parts.push(format!("projected {}", projected.join("; ")));
            }
            let _ = writeln!(md, "- **{system}**: {}.", parts.join("; "));
        }
        md.push('\n');
    }

    fn idle_table(&self, md: &mut String) {
        if self.idle.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Idle memory\n");
        let mut header = vec!["system".to_owned(), "RSS, no connection".to_owned()];
        for level in &self.idle_levels {
            let n = int(*level as f64);
            header.push(format!("RSS, {n}"));
            header.push(format!("per connection, {n}"));
            header.push("× bare".to_owned());
        }
        header.push("failures".to_owned());
        let _ = writeln!(md, "| {} |", header.join(" | "));
        let _ = writeln!(md, "|---|{}", "---:|".repeat(header.len() - 1));
        for (system, cell) in self.systems.iter().zip(&self.idle) {
            let Some(cell) = cell else { continue };
            let mut row = vec![system.to_string()];
            match cell {
                Ok(r) => {
                    row.push(mib(r.base_rss));
                    for (j, level) in self.idle_levels.iter().enumerate() {
                        let base = Self::base_of(&self.idle, |b| {
                            b.levels.get(j).map_or(0.0, |l| l.per_connection)
                        });
                        match r.levels.get(j) {
                            Some(l) => {
                                let open = if l.open < *level {
                                    format!(" ({} open)", int(l.open as f64))
                                } else {
                                    String::new()
                                };
                                row.push(format!("{}{open}", mib(l.rss)));
                                row.push(kib(l.per_connection));
                                row.push(ratio(l.per_connection, base));
                            }
                            None => row.extend(["–".to_owned(), "–".to_owned(), "–".to_owned()]),
                        }
                    }
                    row.push(r.failures.to_string());
                }
                Err(_) => row.push("failed".to_owned()),
            }
            let _ = writeln!(md, "| {} |", row.join(" | "));
        }
        md.push('\n');
    }

    /// The soak scenarios: a flooding client beside closed-loop victims, and
    /// a client that stopped reading beside a broadcast.
    fn soak_tables(&self, md: &mut String) {
        if !self.flood.is_empty() {
            let _ = writeln!(
                md,
                "## Flood ({} victims echoing 32 B in a closed loop, one client flooding bursts of {} invocations, {} in flight)\n",
                int(self.flood_victims as f64),
                int(self.flood_burst as f64),
                512
            );
            let _ = writeln!(
                md,
                "| system | victims alone p50 ms | alone p99 ms | alone inv/s | flooded p50 ms | flooded p99 ms | flooded p99 × alone | flooded inv/s | slowest victim (calls) | flooder answered | server CPU | errors |"
            );
            let _ = writeln!(
                md,
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for (system, cell) in self.systems.iter().zip(&self.flood) {
                let Some(cell) = cell else { continue };
                match cell {
                    Ok(r) => {
                        let _ = writeln!(
                            md,
                            "| {system} | {} | {} | {} | {} | {} | {} | {} | {} | {}{} | {} | {} |",
                            ms(r.baseline_p50_us),
                            ms(r.baseline_p99_us),
                            int(r.baseline_rate),
                            ms(r.flood_p50_us),
                            ms(r.flood_p99_us),
                            ratio(r.flood_p99_us as f64, Some(r.baseline_p99_us as f64)),
                            int(r.flood_rate),
                            r.slowest_victim,
                            int(r.flooder_answered as f64),
                            r.flooder_stopped
                                .as_deref()
                                .map(|e| format!(" (stopped: {e})"))
                                .unwrap_or_default(),
                            pct(r.cpu.server),
                            r.errors + r.failed_connects as u64,
                        );
                    }
                    Err(error) => {
                        let _ = writeln!(md, "| {system} | failed: {error} | | | | | | | | | | |");
                    }
                }
            }
            md.push('\n');
        }
        if !self.stalled.is_empty() {
            let _ = writeln!(
                md,
                "## Stalled reader (one client stops reading; a broadcast goes on; another client reads it all)\n"
            );
            let _ = writeln!(
                md,
                "| system | messages × bytes | server RSS before | peak | after | reader received | stalled client could still read | stalled client |"
            );
            let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---|");
            for (system, cell) in self.systems.iter().zip(&self.stalled) {
                let Some(cell) = cell else { continue };
                match cell {
                    Ok(r) => {
                        let _ = writeln!(
                            md,
                            "| {system} | {} × {} | {} | {} | {} | {} | {} | {} |",
                            int(r.messages as f64),
                            r.size,
                            mib(r.base_rss),
                            mib(r.peak_rss),
                            mib(r.after_rss),
                            int(r.reader_received as f64),
                            int(r.stalled_read as f64),
                            r.stalled_closed
                                .as_deref()
                                .map(|e| format!("closed: {}", e.replace('|', "\\|")))
                                .unwrap_or_else(|| "still open".to_owned()),
                        );
                    }
                    Err(error) => {
                        let _ = writeln!(md, "| {system} | failed: {error} | | | | | | |");
                    }
                }
            }
            md.push('\n');
        }
    }

    fn connect_table(&self, md: &mut String) {
        if self.connect.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "## Connect ({} clients)\n\n{}\n",
            int(self.connect_clients as f64),
            self.connect_negotiate
        );
        let _ = writeln!(
            md,
            "| system | connects/s | × bare | p50 ms | p99 ms | server CPU | generator CPU | other CPU | connects/s per server core | server µs per connect, user + kernel | failed |"
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let base = Self::base_of(&self.connect, |r| r.rate);
        for (system, cell) in self.systems.iter().zip(&self.connect) {
            let Some(cell) = cell else { continue };
            match cell {
                Ok(r) => {
                    let _ = writeln!(
                        md,
                        "| {system} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        int(r.rate),
                        ratio(r.rate, base),
                        ms(r.p50_us),
                        ms(r.p99_us),
                        pct(r.cpu.server),
                        pct(r.cpu.generator),
                        pct(r.cpu.others),
                        per_core(r.rate, r.cpu.server),
                        per_unit(r.rate, &r.cpu),
                        r.failed,
                    );
                }
                Err(_) => {
                    let _ = writeln!(md, "| {system} | failed | | | | | | | | | |");
                }
            }
        }
        md.push('\n');
    }

    /// The chart: echo invocations/s per case, and broadcast p50/p99 per receiver
    /// count, one bar per system.
    pub(crate) fn svg(&self) -> String {
        let echo: Vec<(String, Vec<Option<f64>>)> = self
            .echo
            .iter()
            .map(|((c, p), cells)| {
                (
                    format!("{} conn · {}", int(*c as f64), payload_name(*p)),
                    cells
                        .iter()
                        .map(|c| c.as_ref().ok().map(|r| r.rate))
                        .collect(),
                )
            })
            .collect();
        let p99: Vec<(String, Vec<Option<f64>>)> = self
            .broadcast
            .iter()
            .map(|(n, cells)| {
                (
                    format!("{} receivers", int(*n as f64)),
                    cells
                        .iter()
                        .map(|c| c.as_ref().ok().map(|r| r.p99_us as f64 / 1000.0))
                        .collect(),
                )
            })
            .collect();
        let p50: Vec<Vec<Option<f64>>> = self
            .broadcast
            .iter()
            .map(|(_, cells)| {
                cells
                    .iter()
                    .map(|c| c.as_ref().ok().map(|r| r.p50_us as f64 / 1000.0))
                    .collect()
            })
            .collect();
        let width = 980.0;
        let panel_h = 300.0;
        let mut svg = String::new();
        let height = 2.0 * panel_h + 110.0;
        let _ = writeln!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"##
        );
        let _ = writeln!(
            svg,
            r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
        );
        let colors: Vec<&str> = self
            .systems
            .iter()
            .enumerate()
            .map(|(i, s)| color(s, i))
            .collect();
        // Legend.
        for (i, system) in self.systems.iter().enumerate() {
            let x = 70.0 + i as f64 * 150.0;
            let _ = writeln!(
                svg,
                r##"<rect x="{x}" y="14" width="14" height="14" fill="{}"/><text x="{}" y="26">{}</text>"##,
                colors[i],
                x + 20.0,
                escape(system)
            );
        }
        bars(
            &mut svg,
            40.0,
            panel_h,
            width,
            "Echo: invocations per second (higher is better)",
            &echo,
            &colors,
            None,
            false,
            // Thousands: six bars a group leave about 30 px for each label.
            |v| {
                if v >= 10_000.0 {
                    format!("{}k", int(v / 1000.0))
                } else {
                    int(v)
                }
            },
        );
        bars(
            &mut svg,
            40.0 + panel_h + 50.0,
            panel_h,
            width,
            "Broadcast: p99 delivery latency, ms, log scale (lower is better; tick = p50)",
            &p99,
            &colors,
            Some(&p50),
            true,
            |v| {
                if v >= 100.0 {
                    int(v)
                } else {
                    format!("{v:.1}")
                }
            },
        );
        svg.push_str("</svg>\n");
        svg
    }
}

/// Each system keeps its colour from run to run (signal's variants in blues);
/// a system without one takes from the spare colours by position.
fn color(system: &str, index: usize) -> &'static str {
    const SPARE: [&str; 3] = ["#9467bd", "#d62728", "#8c564b"];
    match system {
        "bare" => "#7f7f7f",
        "signal" => "#1f77b4",
        "signal-msgpack" => "#6baed6",
        "signal-before" => "#08306b",
        "signal-redis" => "#9ecae1",
        "signal-redis-3" => "#4292c6",
        "signal-redis-3-unsticky" => "#2171b5",
        "socketioxide" => "#ff7f0e",
        "socket.io" => "#2ca02c",
        _ => SPARE[index % SPARE.len()],
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// How values map to bar heights.
enum Scale {
    /// 0 to `max`.
    Linear { max: f64 },
    /// 10^`lo` to 10^`hi`: latencies from 1 ms to seconds side by side.
    Log { lo: f64, hi: f64 },
}

impl Scale {
    fn for_values(values: impl Iterator<Item = f64> + Clone, log: bool) -> Scale {
        let max = values.clone().fold(0.0_f64, f64::max);
        if !log {
            return Scale::Linear {
                max: nice_ceiling(max),
            };
        }
        let min = values.filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
        let lo = if min.is_finite() {
            min.log10().floor()
        } else {
            0.0
        };
        let hi = max.log10().ceil().max(lo + 1.0);
        Scale::Log { lo, hi }
    }

    /// Where `v` sits between the bottom (0) and the top (1).
    fn fraction(&self, v: f64) -> f64 {
        let f = match self {
            Scale::Linear { max } => v / max,
            Scale::Log { lo, hi } => (v.max(1e-9).log10() - lo) / (hi - lo),
        };
        f.clamp(0.0, 1.0)
    }

    /// The gridlines: (fraction, value).
    fn grid(&self) -> Vec<(f64, f64)> {
        match self {
            Scale::Linear { max } => (0..=4)
                .map(|i| (i as f64 / 4.0, max * i as f64 / 4.0))
                .collect(),
            Scale::Log { lo, hi } => {
                let decades = (hi - lo).round() as i32;
                (0..=decades)
                    .map(|i| (i as f64 / decades as f64, 10f64.powf(lo + i as f64)))
                    .collect()
            }
        }
    }
}

/// One grouped bar panel at `top`, `height` tall; groups of one bar per system
/// (coloured `colors[system]`), with an optional tick per bar (`ticks`, same
/// shape as the groups' values).
#[allow(clippy::too_many_arguments)]
fn bars(
    svg: &mut String,
    top: f64,
    height: f64,
    width: f64,
    title: &str,
    groups: &[(String, Vec<Option<f64>>)],
    colors: &[&str],
    ticks: Option<&[Vec<Option<f64>>]>,
    log: bool,
    label: impl Fn(f64) -> String,
) {
    let left = 70.0;
    let right = width - 20.0;
    let plot_top = top + 30.0;
    let plot_bottom = top + height - 30.0;
    let _ = writeln!(
        svg,
        r##"<text x="{left}" y="{}" font-size="14" font-weight="bold">{}</text>"##,
        top + 18.0,
        escape(title)
    );
    let values = groups.iter().flat_map(|(_, v)| v.iter().flatten()).copied();
    let any = values.clone().any(|v| v > 0.0);
    let scale = Scale::for_values(values, log);
    // Axis and grid.
    for (fraction, value) in scale.grid() {
        let y = plot_bottom - (plot_bottom - plot_top) * fraction;
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#dddddd"/><text x="{}" y="{:.1}" text-anchor="end" fill="#555555">{}</text>"##,
            left - 6.0,
            y + 4.0,
            label(value)
        );
    }
    if groups.is_empty() || !any {
        return;
    }
    let group_w = (right - left) / groups.len() as f64;
    for (g, (name, values)) in groups.iter().enumerate() {
        let x0 = left + g as f64 * group_w;
        let n = values.len().max(1) as f64;
        let bar_w = ((group_w * 0.8) / n).min(70.0);
        let first_x = x0 + (group_w - bar_w * n) / 2.0;
        let font = if bar_w < 36.0 { 9 } else { 10 };
        for (s, value) in values.iter().enumerate() {
            let x = first_x + s as f64 * bar_w;
            let color = colors.get(s).copied().unwrap_or("#000000");
            match value {
                Some(v) => {
                    let h = (plot_bottom - plot_top) * scale.fraction(*v);
                    let _ = writeln!(
                        svg,
                        r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="{font}">{}</text>"##,
                        plot_bottom - h,
                        bar_w - 2.0,
                        x + (bar_w - 2.0) / 2.0,
                        plot_bottom - h - 3.0,
                        label(*v)
                    );
                    if let Some(Some(t)) = ticks.and_then(|t| t.get(g)).and_then(|t| t.get(s)) {
                        let ty = plot_bottom - (plot_bottom - plot_top) * scale.fraction(*t);
                        let _ = writeln!(
                            svg,
                            r##"<line x1="{x:.1}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#000000" stroke-width="2"/>"##,
                            x + bar_w - 2.0
                        );
                    }
                }
                None => {
                    let _ = writeln!(
                        svg,
                        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10" fill="#d62728">n/a</text>"##,
                        x + bar_w / 2.0,
                        plot_bottom - 3.0
                    );
                }
            }
        }
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            x0 + group_w / 2.0,
            plot_bottom + 18.0,
            escape(name)
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{plot_bottom}" x2="{right}" y2="{plot_bottom}" stroke="#333333"/>"##
    );
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if step * magnitude >= value {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(int(1234567.6), "1,234,568");
        assert_eq!(int(999.0), "999");
        assert_eq!(ms(1500), "1.50");
        assert_eq!(nice_ceiling(130_000.0), 200_000.0);
        assert_eq!(nice_ceiling(4.0), 5.0);
        assert_eq!(payload_name(1024), "1 KiB");
        assert_eq!(payload_name(32), "32 B");
        assert_eq!(change(10.0, 9.9), "-1 %");
        assert_eq!(gib(2.0 * 1024.0 * 1024.0 * 1024.0), "2.0 GiB");
        assert_eq!(gib(819.0 * 1024.0 * 1024.0), "819 MiB");
        let log = Scale::for_values([9.0, 6434.0].into_iter(), true);
        assert!(matches!(log, Scale::Log { lo: 0.0, hi: 4.0 }));
        assert_eq!(log.fraction(100.0), 0.5);
    }
}
