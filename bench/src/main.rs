//! `signal-bench`: the load generator and the runner of the comparison.
//!
//! `signal-bench run [--smoke]` starts each system in turn (signal's `conformance`
//! example, spoken to in JSON and in MessagePack, a bare tokio-tungstenite server,
//! socketioxide, Node's socket.io),
//! pinned to one core, drives it from this process on another core over loopback
//! (127.0.0.0/8 only), and writes `<out>/<date>.md` and `<date>.svg`.
//! `bench/run` builds everything and calls it; see `bench/README.md`.

mod client;
mod http_transport;
mod msgpack;
mod report;
mod rust_client;
mod scenario;
mod server;
mod soak;
mod websocket;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use client::{Endpoint, Sources};
use http_transport::{NegotiateMode, Negotiator, Transport};
use report::{Cell, Results, int, mib, ms};
use scenario::EchoRow;
use server::{Layout, Server, System};

/// Other processes may use this share of a core before a run waits for them.
const QUIET_THRESHOLD: f64 = 0.10;
/// Runs that started on a busy machine all the same.
static BUSY_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Errors of the generator: text for the report.
pub(crate) type Error = Box<dyn std::error::Error>;

/// Sizes and durations of one run.
struct Plan {
    echo_connections: Vec<usize>,
    echo_payloads: Vec<usize>,
    echo_warmup: Duration,
    echo_window: Duration,
    broadcast_receivers: Vec<usize>,
    broadcast_interval: Duration,
    broadcast_duration: Duration,
    broadcast_drain: Duration,
    idle_levels: Vec<usize>,
    idle_hold: Duration,
    /// The HTTP transports echo and broadcast run on (beside WebSocket), the
    /// echo connections (at each of `echo_payloads`) and the broadcast
    /// receivers there: HTTP costs more per connection than a WebSocket.
    echo_transports: Vec<Transport>,
    broadcast_transports: Vec<Transport>,
    transport_echo_connections: usize,
    transport_broadcast_receivers: usize,
    /// Connection counts of the scale scenario (each on a fresh server), and its
    /// broadcast's pace: slow enough that the bare server is not saturated at
    /// the largest count.
    scale_levels: Vec<usize>,
    scale_interval: Duration,
    scale_duration: Duration,
    connect_clients: usize,
    /// Payloads of the Rust client's scenario (one connection, closed loop).
    client_payloads: Vec<usize>,
    /// Victims of the flood scenario (0: not run), the flooder's burst, and
    /// each measured window (alone, then flooded).
    flood_victims: usize,
    flood_burst: u64,
    flood_window: Duration,
    /// Messages (of `stalled_size` bytes) broadcast past a client that stopped
    /// reading (0: not run).
    stalled_messages: u64,
    stalled_size: usize,
    /// Pause between two runs, for the kernel to finish closing sockets.
    pause: Duration,
    /// Time a fresh server gets before measuring (memory, connects), and
    /// connections before the first broadcast.
    settle: Duration,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            echo_connections: vec![100, 1_000],
            echo_payloads: vec![32, 1024],
            echo_warmup: Duration::from_secs(2),
            echo_window: Duration::from_secs(5),
            broadcast_receivers: vec![1_000, 10_000],
            broadcast_interval: Duration::from_millis(50),
            broadcast_duration: Duration::from_secs(10),
            broadcast_drain: Duration::from_secs(10),
            idle_levels: vec![10_000, 50_000],
            // Past signal's 15 s keep-alive, so server pings have gone out.
            idle_hold: Duration::from_secs(16),
            echo_transports: vec![Transport::Sse, Transport::LongPolling],
            broadcast_transports: vec![Transport::Sse, Transport::LongPolling],
            transport_echo_connections: 100,
            transport_broadcast_receivers: 1_000,
            // Under the 20,000 open files this machine allows a process.
            scale_levels: vec![5_000, 10_000, 19_000],
            // 2 broadcasts/s: 38k deliveries/s at 19,000, a fifth of what bare
            // delivered at 100 % of its core (161k/s), so p99 is latency, not a
            // growing backlog.
            scale_interval: Duration::from_millis(500),
            scale_duration: Duration::from_secs(10),
            connect_clients: 5_000,
            client_payloads: vec![32, 1024],
            flood_victims: 100,
            flood_burst: 10_000,
            flood_window: Duration::from_secs(5),
            stalled_messages: 20_000,
            stalled_size: 1024,
            pause: Duration::from_millis(500),
            settle: Duration::from_secs(1),
        }
    }

    fn smoke() -> Plan {
        Plan {
            echo_connections: vec![10],
            echo_payloads: vec![32, 1024],
            echo_warmup: Duration::from_millis(100),
            echo_window: Duration::from_millis(300),
            broadcast_receivers: vec![20],
            broadcast_interval: Duration::from_millis(50),
            broadcast_duration: Duration::from_millis(300),
            broadcast_drain: Duration::from_secs(5),
            idle_levels: vec![50],
            idle_hold: Duration::from_millis(300),
            echo_transports: vec![Transport::Sse, Transport::LongPolling],
            broadcast_transports: vec![Transport::Sse, Transport::LongPolling],
            // The WebSocket sizes, so that "× WebSocket" is filled in.
            transport_echo_connections: 10,
            transport_broadcast_receivers: 20,
            scale_levels: vec![30, 60],
            scale_interval: Duration::from_millis(50),
            scale_duration: Duration::from_millis(300),
            connect_clients: 50,
            client_payloads: vec![32],
            flood_victims: 5,
            flood_burst: 200,
            flood_window: Duration::from_millis(300),
            stalled_messages: 300,
            stalled_size: 1024,
            pause: Duration::ZERO,
            settle: Duration::from_millis(100),
        }
    }
}

struct Options {
    smoke: bool,
    out: PathBuf,
    server_cpu: Option<usize>,
    only: Option<Vec<String>>,
    scenarios: Option<Vec<String>>,
    layout: Layout,
    sources: u8,
    /// How long to wait for a quiet machine before each run (`None`: do not).
    quiet_wait: Option<Duration>,
    skip_negotiate: bool,
    /// How SignalR clients over WebSockets negotiate.
    negotiate: NegotiateMode,
    /// A command each server runs under (a profiler), split on spaces.
    server_wrap: Vec<String>,
    idle_levels: Option<Vec<usize>>,
    scale_levels: Option<Vec<usize>>,
    /// How many times each WebSocket echo cell runs, the systems taking turns;
    /// the report keeps each system's median round.
    echo_rounds: usize,
}

const USAGE: &str = "usage: signal-bench run [--smoke] [--out DIR] [--server-cpu N | --no-pin] \
[--systems bare,signal,signal-msgpack,socketioxide,socket.io] \
[--scenarios echo,broadcast,echo-sse,echo-longpolling,broadcast-sse,broadcast-longpolling,transports,idle,connect,client,flood,stalled,scale] \
[--signal-before PATH/TO/conformance] [--bin-dir DIR] [--bench-dir DIR] [--sources N] [--no-wait] \
[--negotiate kept-alive|fresh] [--skip-negotiate] [--idle-levels N,N] [--scale-levels N,N] [--rounds N] \
[--server-wrap 'valgrind --tool=massif']

echo and broadcast are over WebSockets; echo-sse, echo-longpolling, broadcast-sse and
broadcast-longpolling run them over signal's HTTP transports (SSE: JSON only; long polling: JSON and
MessagePack) and socketioxide's and socket.io's engine.io polling (the longpolling ones);
transports names all four. scale (idle memory and broadcast p99 at 5,000, 10,000 and 19,000
connections, or --scale-levels) runs only when named, or in --smoke.
--signal-before adds the system signal-before: that build of the conformance example (another
commit's), spoken to in JSON, measured in the same run as this tree's signal.
--negotiate: SignalR clients over WebSockets negotiate on kept-alive HTTP/1.1 connections, an idle
one reused for the next client as browsers and Node's fetch do (kept-alive, the default), or each on
a TCP connection of its own, closed after the answer (fresh: the model of reports before the option).
--rounds N: each WebSocket echo cell runs N times, the systems taking turns within each round, and
the report keeps each system's median round (and lists every round's rate): on a VM the kernel's
time per call can settle at one of two levels for a whole cell, which moves a single round's rates
by a fifth.";

/// One system's echo cell from its rounds: the round of median rate (the
/// lower of the two middle ones for an even count), listing every round's
/// rate in run order; a failed round makes the cell a failure.
fn median_round(rounds: Vec<Cell<EchoRow>>) -> Cell<EchoRow> {
    let rounds: Vec<EchoRow> = rounds.into_iter().collect::<Result<_, _>>()?;
    let rates: Vec<f64> = rounds.iter().map(|r| r.rate).collect();
    let mut order: Vec<usize> = (0..rounds.len()).collect();
    order.sort_by(|&a, &b| rates[a].total_cmp(&rates[b]));
    let median = order[(order.len() - 1) / 2];
    let mut row = rounds
        .into_iter()
        .nth(median)
        .ok_or_else(|| "no round ran".to_owned())?;
    if rates.len() > 1 {
        row.round_rates = rates;
    }
    Ok(row)
}

fn parse_args() -> Result<Options, Error> {
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut options = Options {
        smoke: false,
        out: bench_dir.join("results"),
        server_cpu: Some(0),
        only: None,
        scenarios: None,
        layout: Layout {
            bin_dir: exe_dir,
            bench_dir,
            signal_before: None,
            redis_server: find_on_path("redis-server"),
        },
        sources: 32,
        quiet_wait: Some(Duration::from_secs(120)),
        skip_negotiate: false,
        negotiate: NegotiateMode::KeptAlive,
        server_wrap: Vec::new(),
        idle_levels: None,
        scale_levels: None,
        echo_rounds: 1,
    };
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("run") {
        args.next();
    }
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--smoke" => {
                options.smoke = true;
                options.quiet_wait = None;
            }
            "--no-wait" => options.quiet_wait = None,
            "--skip-negotiate" => options.skip_negotiate = true,
            "--negotiate" => {
                let name = value()?;
                options.negotiate = NegotiateMode::parse(&name).ok_or_else(|| {
                    format!("--negotiate is kept-alive or fresh, not {name}\n{USAGE}")
                })?;
            }
            "--idle-levels" => {
                let levels: Result<Vec<usize>, _> = value()?.split(',').map(str::parse).collect();
                options.idle_levels = Some(levels?);
            }
            "--rounds" => {
                let rounds: usize = value()?.parse()?;
                if rounds == 0 {
                    return Err(format!("--rounds needs at least 1\n{USAGE}").into());
                }
                options.echo_rounds = rounds;
            }
            "--scale-levels" => {
                let levels: Result<Vec<usize>, _> = value()?.split(',').map(str::parse).collect();
                options.scale_levels = Some(levels?);
            }
            "--server-wrap" => {
                options.server_wrap = value()?.split_whitespace().map(str::to_owned).collect();
            }
            "--out" => options.out = value()?.into(),
            "--server-cpu" => options.server_cpu = Some(value()?.parse()?),
            "--no-pin" => options.server_cpu = None,
            "--systems" => {
                options.only = Some(value()?.split(',').map(str::to_owned).collect());
            }
            "--scenarios" => {
                options.scenarios = Some(value()?.split(',').map(str::to_owned).collect());
            }
            "--bin-dir" => options.layout.bin_dir = value()?.into(),
            "--signal-before" => options.layout.signal_before = Some(value()?.into()),
            "--bench-dir" => options.layout.bench_dir = value()?.into(),
            "--sources" => options.sources = value()?.parse()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    Ok(options)
}

/// Raises this process's open-file limit (and so its children's, the servers):
/// both limits when allowed (root), else the soft one to the hard one.
fn raise_fd_limit() -> u64 {
    let wanted: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
        .min(1 << 20);
    if rlimit::Resource::NOFILE.set(wanted, wanted).is_ok() {
        return wanted;
    }
    rlimit::increase_nofile_limit(wanted).unwrap_or(1024)
}

fn mem_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Today's date in UTC, `YYYY-MM-DD`.
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn node_socketio_version(layout: &Layout) -> String {
    let path = layout
        .bench_dir
        .join("peers/node-socketio/node_modules/socket.io/package.json");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v.get("version")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// Runs one scenario against a fresh server of `system`; any failure (the server
/// did not start, the scenario failed or overran `limit`) becomes the cell's text.
async fn run_one<T>(
    system: &System,
    options: &Options,
    sources: &Sources,
    limit: Duration,
    scenario: impl AsyncFnOnce(&Endpoint<'_>, &Server) -> Result<T, Error>,
) -> Result<T, String> {
    if let Some(max) = options.quiet_wait
        && !server::wait_for_quiet(max, QUIET_THRESHOLD).await
    {
        BUSY_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        say(&format!(
            "(the machine is busy with other work: measuring {} anyway)",
            system.name
        ));
    }
    let server = Server::start(
        system,
        &options.layout,
        options.server_cpu,
        &options.server_wrap,
    )
    .map_err(|e| e.to_string())?;
    let endpoint = Endpoint {
        protocol: system.protocol,
        ports: &server.ports,
        next_port: std::cell::Cell::new(0),
        unsticky: system.unsticky,
        sources,
        skip_negotiate: options.skip_negotiate,
        negotiator: Negotiator::new(options.negotiate),
        transport: system.transport,
    };
    let result = tokio::time::timeout(limit, scenario(&endpoint, &server)).await;
    drop(server);
    match result {
        Ok(Ok(row)) => Ok(row),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("did not finish within {limit:?}")),
    }
}

/// How the SignalR clients of the connect scenario negotiated, for the report.
fn negotiate_words(options: &Options) -> String {
    if options.skip_negotiate {
        return "SignalR clients skipped negotiation (`--skip-negotiate`): WebSocket straight away."
            .to_owned();
    }
    let how = match options.negotiate {
        NegotiateMode::KeptAlive => {
            "on kept-alive HTTP/1.1 connections, an idle one reused for the next client's \
             negotiate as browsers and Node's fetch do (one per opener at a time, per node), so a \
             connect costs one new TCP connection, the WebSocket's"
        }
        NegotiateMode::Fresh => {
            "each on a TCP connection of its own, closed after the answer (as reports before \
             `--negotiate` did), so a connect costs two new TCP connections"
        }
    };
    format!(
        "SignalR clients negotiated {how} (`--negotiate {}`).",
        options.negotiate.name()
    )
}

/// The first `name` on the `PATH`.
fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

/// `sse, longpolling` (`none` when empty).
fn names(transports: &[Transport]) -> String {
    if transports.is_empty() {
        return "none".to_owned();
    }
    let names: Vec<&str> = transports.iter().map(|t| t.scenario_suffix()).collect();
    names.join(", ")
}

fn say(line: &str) {
    eprintln!("{line}");
}

/// A broadcast cell's line on the console.
fn broadcast_line(r: &scenario::BroadcastRow) -> String {
    format!(
        "{} deliveries/s  p50 {} ms  p99 {} ms  missing {} of {}  server CPU {:.0} %  generator CPU {:.0} %",
        int(r.rate),
        ms(r.p50_us),
        ms(r.p99_us),
        r.missing,
        r.expected,
        r.cpu.server * 100.0,
        r.cpu.generator * 100.0
    )
}

fn show<T>(cell: &Result<T, String>, line: impl Fn(&T) -> String) -> String {
    match cell {
        Ok(row) => line(row),
        Err(error) => format!("FAILED: {error}"),
    }
}

async fn run(options: Options, mut plan: Plan) -> Result<Results, Error> {
    let started = Instant::now();
    if let Some(levels) = &options.idle_levels {
        plan.idle_levels = levels.clone();
    }
    if let Some(levels) = &options.scale_levels {
        plan.scale_levels = levels.clone();
    }
    if let Some(scenarios) = &options.scenarios {
        let wanted = |name: &str| scenarios.iter().any(|s| s == name);
        if !wanted("echo") {
            plan.echo_connections.clear();
        }
        if !wanted("broadcast") {
            plan.broadcast_receivers.clear();
        }
        // `echo-sse`, `broadcast-longpolling`, …, or `transports` for all.
        let on = |scenario: &str, t: &Transport| {
            wanted("transports") || wanted(&format!("{scenario}-{}", t.scenario_suffix()))
        };
        plan.echo_transports.retain(|t| on("echo", t));
        plan.broadcast_transports.retain(|t| on("broadcast", t));
        if !wanted("scale") {
            plan.scale_levels.clear();
        }
        if !wanted("idle") {
            plan.idle_levels.clear();
        }
        if !wanted("connect") {
            plan.connect_clients = 0;
        }
        if !wanted("client") {
            plan.client_payloads.clear();
        }
        if !wanted("flood") {
            plan.flood_victims = 0;
        }
        if !wanted("stalled") {
            plan.stalled_messages = 0;
        }
    } else if !options.smoke {
        // Opening 34,000 connections per system (and holding them) would
        // double the full run: scale runs when named (`--scenarios scale`).
        plan.scale_levels.clear();
    }
    let fd_limit = raise_fd_limit();
    let mut notes = Vec::new();
    // Each idle connection costs the generator one descriptor and the server one
    // (the servers inherit this process's limit), plus negotiate sockets for a
    // moment; and memory on both sides.
    let available = mem_available();
    plan.idle_levels.retain(|&level| {
        let fits = level as u64 + 1_000 <= fd_limit && (level as u64) * 256 * 1024 <= available;
        if !fits {
            notes.push(format!(
                "idle level {} skipped: this machine allows {fd_limit} open files per process \
                 (the hard limit; raising it needs CAP_SYS_RESOURCE), {} MiB available",
                int(level as f64),
                available >> 20
            ));
        }
        fits
    });
    // Each scale level runs alone on a fresh server: a level above the limit
    // falls back to the most the limit allows (once).
    let mut scale_levels = Vec::new();
    for &level in &plan.scale_levels {
        let most =
            (fd_limit.saturating_sub(1_000) as usize).min((available / (256 * 1024)) as usize);
        let fitted = level.min(most);
        if fitted < level {
            notes.push(format!(
                "scale level {} lowered to {}: this machine allows {fd_limit} open files per process \
                 (`ulimit -Hn`; raising it needs CAP_SYS_RESOURCE), {} MiB available",
                int(level as f64),
                int(fitted as f64),
                available >> 20
            ));
        }
        if fitted > 0 && !scale_levels.contains(&fitted) {
            scale_levels.push(fitted);
        }
    }
    plan.scale_levels = scale_levels;
    let sources = Sources::new(options.sources);
    let all = server::systems(&options.layout);
    if let Some(names) = &options.only
        && let Some(unknown) = names.iter().find(|n| !all.iter().any(|s| s.name == *n))
    {
        let known: Vec<&str> = all.iter().map(|s| s.name).collect();
        let hint = if unknown == "signal-before" {
            " (it needs --signal-before PATH)"
        } else {
            ""
        };
        return Err(format!("no system {unknown}{hint}; there are {}", known.join(", ")).into());
    }
    let systems: Vec<System> = match &options.only {
        Some(names) => all
            .into_iter()
            .filter(|s| names.iter().any(|n| n == s.name))
            .collect(),
        None => all,
    };
    let mut results = Results {
        meta: Vec::new(),
        systems: systems.iter().map(|s| s.name).collect(),
        echo: Vec::new(),
        broadcast: Vec::new(),
        idle_levels: plan.idle_levels.clone(),
        idle: Vec::new(),
        connect_clients: plan.connect_clients,
        connect_negotiate: negotiate_words(&options),
        connect: Vec::new(),
        client: Vec::new(),
        flood_victims: plan.flood_victims,
        flood_burst: plan.flood_burst,
        flood: Vec::new(),
        stalled: Vec::new(),
        transport_echo: Vec::new(),
        transport_broadcast: Vec::new(),
        scale_pace: format!(
            "one broadcast every {:?} for {:?}",
            plan.scale_interval, plan.scale_duration
        ),
        scale: Vec::new(),
    };

    for &connections in &plan.echo_connections {
        for &payload in &plan.echo_payloads {
            let mut rounds: Vec<Vec<Cell<EchoRow>>> = systems.iter().map(|_| Vec::new()).collect();
            for round in 1..=options.echo_rounds {
                for (system, cells) in systems.iter().zip(&mut rounds) {
                    let limit = plan.echo_warmup + plan.echo_window + Duration::from_secs(90);
                    let cell = run_one(system, &options, &sources, limit, async |ep, server| {
                        let (warmup, window) = (plan.echo_warmup, plan.echo_window);
                        scenario::echo(ep, server, connections, payload, warmup, window).await
                    })
                    .await;
                    let round = if options.echo_rounds > 1 {
                        format!(" (round {round})")
                    } else {
                        String::new()
                    };
                    say(&format!(
                        "echo {connections} × {payload} B  {:<14} {}{round}",
                        system.name,
                        show(&cell, |r| format!(
                            "{} inv/s  p50 {} ms  p99 {} ms  p99.9 {} ms  max {} ms  per connection {}..{}  server CPU {:.0} %  generator CPU {:.0} %  errors {}",
                            int(r.rate),
                            ms(r.p50_us),
                            ms(r.p99_us),
                            ms(r.p999_us),
                            ms(r.max_us),
                            r.per_connection.0,
                            r.per_connection.1,
                            r.cpu.server * 100.0,
                            r.cpu.generator * 100.0,
                            r.errors + r.failed_connects as u64
                        ))
                    ));
                    cells.push(cell);
                    tokio::time::sleep(plan.pause).await;
                }
            }
            let cells = rounds.into_iter().map(median_round).collect();
            results.echo.push(((connections, payload), cells));
        }
    }

    let broadcast_pace = scenario::Pace {
        interval: plan.broadcast_interval,
        duration: plan.broadcast_duration,
        drain: plan.broadcast_drain,
        settle: plan.settle,
    };
    for &receivers in &plan.broadcast_receivers {
        let mut cells = Vec::new();
        for system in &systems {
            let limit = plan.broadcast_duration + plan.broadcast_drain + Duration::from_secs(180);
            let cell = run_one(system, &options, &sources, limit, async |ep, server| {
                scenario::broadcast(ep, server, receivers, broadcast_pace).await
            })
            .await;
            say(&format!(
                "broadcast {receivers}  {:<14} {}",
                system.name,
                show(&cell, broadcast_line)
            ));
            cells.push(cell);
            tokio::time::sleep(plan.pause).await;
        }
        results.broadcast.push((receivers, cells));
    }

    // The HTTP transports, at their own (smaller) sizes.
    for &payload in plan
        .echo_payloads
        .iter()
        .filter(|_| !plan.echo_transports.is_empty())
    {
        let connections = plan.transport_echo_connections;
        let mut cells = Vec::new();
        for base in &systems {
            for &transport in &plan.echo_transports {
                for system in server::http_systems(std::slice::from_ref(base), transport) {
                    let limit = plan.echo_warmup + plan.echo_window + Duration::from_secs(90);
                    let cell = run_one(&system, &options, &sources, limit, async |ep, server| {
                        let (warmup, window) = (plan.echo_warmup, plan.echo_window);
                        scenario::echo(ep, server, connections, payload, warmup, window).await
                    })
                    .await;
                    let label = transport.label(system.protocol);
                    say(&format!(
                        "echo {connections} × {payload} B  {:<14} {label:<20} {}",
                        system.name,
                        show(&cell, |r| format!(
                            "{} inv/s  p50 {} ms  p99 {} ms  server CPU {:.0} %  generator CPU {:.0} %  errors {}",
                            int(r.rate),
                            ms(r.p50_us),
                            ms(r.p99_us),
                            r.cpu.server * 100.0,
                            r.cpu.generator * 100.0,
                            r.errors + r.failed_connects as u64
                        ))
                    ));
                    cells.push((system.name, label, cell));
                    tokio::time::sleep(plan.pause).await;
                }
            }
        }
        results.transport_echo.push(((connections, payload), cells));
    }
    if !plan.broadcast_transports.is_empty() {
        let receivers = plan.transport_broadcast_receivers;
        let mut cells = Vec::new();
        for base in &systems {
            for &transport in &plan.broadcast_transports {
                for system in server::http_systems(std::slice::from_ref(base), transport) {
                    let limit =
                        plan.broadcast_duration + plan.broadcast_drain + Duration::from_secs(180);
                    let cell = run_one(&system, &options, &sources, limit, async |ep, server| {
                        scenario::broadcast(ep, server, receivers, broadcast_pace).await
                    })
                    .await;
                    let label = transport.label(system.protocol);
                    say(&format!(
                        "broadcast {receivers}  {:<14} {label:<20} {}",
                        system.name,
                        show(&cell, broadcast_line)
                    ));
                    cells.push((system.name, label, cell));
                    tokio::time::sleep(plan.pause).await;
                }
            }
        }
        results.transport_broadcast.push((receivers, cells));
    }

    // Scale: each count on a fresh server, idle memory then a slow broadcast.
    let scale_pace = scenario::Pace {
        interval: plan.scale_interval,
        duration: plan.scale_duration,
        drain: plan.broadcast_drain,
        settle: plan.settle,
    };
    for &connections in &plan.scale_levels {
        let mut cells = Vec::new();
        for system in &systems {
            if !system.runs("scale") {
                cells.push(None);
                continue;
            }
            // A protocol variant of a server (signal-msgpack) has its memory
            // measured as that server: broadcast only.
            let memory = system.runs("idle");
            let hold = plan.idle_hold;
            let limit =
                hold + plan.scale_duration + plan.broadcast_drain + Duration::from_secs(240);
            let cell = run_one(system, &options, &sources, limit, async |ep, server| {
                scenario::scale(ep, server, connections, memory, hold, scale_pace).await
            })
            .await;
            say(&format!(
                "scale {connections}  {:<14} {}",
                system.name,
                show(&cell, |r| {
                    let b = &r.broadcast;
                    format!(
                        "{}  broadcast {} deliveries/s  p50 {} ms  p99 {} ms  missing {} of {}  out of order {}  server CPU {:.0} %  generator CPU {:.0} %",
                        match (r.rss, r.per_connection()) {
                            (Some(rss), Some(per)) => format!(
                                "{} open: {:.1} MiB, {:.1} KiB/conn (none: {:.1} MiB)",
                                r.open,
                                rss as f64 / 1048576.0,
                                per / 1024.0,
                                r.base_rss as f64 / 1048576.0
                            ),
                            _ => format!("{} open", r.open),
                        },
                        int(b.rate),
                        ms(b.p50_us),
                        ms(b.p99_us),
                        b.missing,
                        b.expected,
                        b.out_of_order,
                        b.cpu.server * 100.0,
                        b.cpu.generator * 100.0
                    )
                })
            ));
            cells.push(Some(cell));
            tokio::time::sleep(plan.pause * 4).await;
        }
        results.scale.push((connections, cells));
    }

    if !plan.idle_levels.is_empty() {
        for system in &systems {
            if !system.runs("idle") {
                results.idle.push(None);
                continue;
            }
            let limit = (plan.idle_hold + Duration::from_secs(150)) * plan.idle_levels.len() as u32;
            let levels = plan.idle_levels.clone();
            let hold = plan.idle_hold;
            let cell = run_one(system, &options, &sources, limit, async |ep, server| {
                scenario::idle(ep, server, &levels, hold, plan.settle).await
            })
            .await;
            say(&format!(
                "idle  {:<14} {}",
                system.name,
                show(&cell, |r| {
                    let levels: Vec<String> = r
                        .levels
                        .iter()
                        .map(|l| {
                            format!(
                                "{}: {:.1} MiB, {:.1} KiB/conn",
                                l.open,
                                l.rss as f64 / 1048576.0,
                                l.per_connection / 1024.0
                            )
                        })
                        .collect();
                    format!(
                        "none: {:.1} MiB  {}  failures {}",
                        r.base_rss as f64 / 1048576.0,
                        levels.join("  "),
                        r.failures
                    )
                })
            ));
            results.idle.push(Some(cell));
            tokio::time::sleep(plan.pause * 4).await;
        }
    }

    for system in systems.iter().filter(|_| plan.connect_clients > 0) {
        if !system.runs("connect") {
            results.connect.push(None);
            continue;
        }
        let clients = plan.connect_clients;
        let cell = run_one(
            system,
            &options,
            &sources,
            Duration::from_secs(180),
            async |ep, server| scenario::connect(ep, server, clients, plan.settle).await,
        )
        .await;
        say(&format!(
            "connect {clients}  {:<14} {}",
            system.name,
            show(&cell, |r| format!(
                "{} connects/s  p50 {} ms  p99 {} ms  failed {}  server CPU {:.0} %  generator CPU {:.0} %",
                int(r.rate),
                ms(r.p50_us),
                ms(r.p99_us),
                r.failed,
                r.cpu.server * 100.0,
                r.cpu.generator * 100.0
            ))
        ));
        results.connect.push(Some(cell));
        tokio::time::sleep(plan.pause).await;
    }

    // The Rust client's own cost, against signal only (JSON and MessagePack).
    for &payload in &plan.client_payloads {
        let mut cells = Vec::new();
        for system in systems
            .iter()
            .filter(|s| matches!(s.name, "signal" | "signal-msgpack"))
        {
            let limit = (plan.echo_warmup + plan.echo_window) * 2 + Duration::from_secs(90);
            let cell = run_one(system, &options, &sources, limit, async |ep, server| {
                let (warmup, window) = (plan.echo_warmup, plan.echo_window);
                rust_client::rust_client(ep, server, payload, warmup, window).await
            })
            .await;
            say(&format!(
                "client 1 × {payload} B  {:<14} {}",
                system.name,
                show(&cell, |r| format!(
                    "generator loop {} inv/s (p50 {} ms)  signal-client {} inv/s (p50 {} ms  p99 {} ms)  generator CPU {:.0} %",
                    int(r.raw_rate),
                    ms(r.raw_p50_us),
                    int(r.client_rate),
                    ms(r.client_p50_us),
                    ms(r.client_p99_us),
                    r.cpu.generator * 100.0
                ))
            ));
            cells.push((system.name, cell));
            tokio::time::sleep(plan.pause).await;
        }
        results.client.push((payload, cells));
    }

    // Soak: one flooding client beside closed-loop victims; a stalled reader
    // beside a broadcast.
    for system in systems.iter().filter(|_| plan.flood_victims > 0) {
        if !system.runs("flood") {
            results.flood.push(None);
            continue;
        }
        let (victims, burst, window) = (plan.flood_victims, plan.flood_burst, plan.flood_window);
        let cell = run_one(
            system,
            &options,
            &sources,
            window * 2 + Duration::from_secs(90),
            async |ep, server| soak::flood(ep, server, victims, burst, window).await,
        )
        .await;
        say(&format!(
            "flood {victims} + 1  {:<14} {}",
            system.name,
            show(&cell, |r| format!(
                "victims alone p50 {} ms p99 {} ms {} inv/s; flooded p50 {} ms p99 {} ms {} inv/s (slowest victim {}); flooder {} answered{}  server CPU {:.0} %",
                ms(r.baseline_p50_us),
                ms(r.baseline_p99_us),
                int(r.baseline_rate),
                ms(r.flood_p50_us),
                ms(r.flood_p99_us),
                int(r.flood_rate),
                r.slowest_victim,
                int(r.flooder_answered as f64),
                r.flooder_stopped
                    .as_deref()
                    .map(|e| format!(" (stopped: {e})"))
                    .unwrap_or_default(),
                r.cpu.server * 100.0
            ) + &r
                .first_error
                .as_deref()
                .map(|e| format!("  first error: {e}"))
                .unwrap_or_default())
        ));
        results.flood.push(Some(cell));
        tokio::time::sleep(plan.pause).await;
    }
    for system in systems.iter().filter(|_| plan.stalled_messages > 0) {
        if !system.runs("stalled") {
            results.stalled.push(None);
            continue;
        }
        let (messages, size) = (plan.stalled_messages, plan.stalled_size);
        let cell = run_one(
            system,
            &options,
            &sources,
            Duration::from_secs(120),
            async |ep, server| soak::stalled(ep, server, messages, size, plan.settle).await,
        )
        .await;
        say(&format!(
            "stalled reader, {messages} × {size} B  {:<14} {}",
            system.name,
            show(&cell, |r| format!(
                "server RSS {} → peak {} → after {}; reader got {}; stalled client read {}, {}",
                mib(r.base_rss),
                mib(r.peak_rss),
                mib(r.after_rss),
                r.reader_received,
                r.stalled_read,
                r.stalled_closed
                    .as_deref()
                    .map(|e| format!("closed ({e})"))
                    .unwrap_or_else(|| "still open".to_owned())
            ))
        ));
        results.stalled.push(Some(cell));
        tokio::time::sleep(plan.pause).await;
    }

    let cores = std::fs::read_to_string("/proc/cpuinfo").map_or(0, |c| {
        c.lines().filter(|l| l.starts_with("processor")).count()
    });
    let mut meta = vec![
        ("date".to_owned(), today()),
        (
            "command".to_owned(),
            // bench/run names itself and the arguments it was given.
            match std::env::var("SIGNAL_BENCH_COMMAND") {
                Ok(command) => format!("`{command}`"),
                Err(_) => format!(
                    "`signal-bench {}`",
                    std::env::args().skip(1).collect::<Vec<_>>().join(" ")
                ),
            },
        ),
        (
            "mode".to_owned(),
            if options.smoke {
                "smoke (tiny sizes; the figures mean nothing)".to_owned()
            } else {
                "full".to_owned()
            },
        ),
        (
            "machine".to_owned(),
            format!(
                "{} × {}, Linux {}",
                cores,
                cpu_model(),
                std::fs::read_to_string("/proc/sys/kernel/osrelease")
                    .unwrap_or_default()
                    .trim()
            ),
        ),
        (
            "pinning".to_owned(),
            match options.server_cpu {
                Some(cpu) => format!(
                    "server on CPU {cpu} (`taskset -c {cpu}`), load generator on the other (one thread)"
                ),
                None => "none".to_owned(),
            },
        ),
        (
            "systems".to_owned(),
            format!(
                "bare = tokio-tungstenite 0.29 echo/broadcast server, no protocol (`bench/peers/bare.rs`); \
                 signal = `examples/conformance`, JSON hub protocol; signal-msgpack = the same server, \
                 MessagePack hub protocol (echo and broadcast only); {}socketioxide 0.18.6 \
                 (`bench/peers/socketioxide.rs`); socket.io = socket.io {} on Node {} (`bench/peers/node-socketio`)",
                match &options.layout.signal_before {
                    Some(path) => format!(
                        "signal-before = `{}` (another build of `examples/conformance`{}), JSON; ",
                        path.display(),
                        path.parent()
                            .and_then(|dir| command_output(
                                "git",
                                &[
                                    "-C",
                                    &dir.display().to_string(),
                                    "log",
                                    "-1",
                                    "--format=%h %s"
                                ]
                            ))
                            .map(|commit| format!(": commit {commit}"))
                            .unwrap_or_default()
                    ),
                    None => String::new(),
                },
                node_socketio_version(&options.layout),
                command_output("node", &["--version"]).unwrap_or_else(|| "?".to_owned())
            ),
        ),
        (
            "scale-out".to_owned(),
            match &options.layout.redis_server {
                Some(_) => format!(
                    "signal-redis = signal on a Redis backplane ({}), one node; signal-redis-3 = three \
                     nodes on it, clients spread over them in turn (a broadcast crosses to the two \
                     other nodes through Redis); signal-redis-3-unsticky = the same, each client \
                     negotiating at one node and opening its WebSocket at the next (the connection \
                     is claimed through Redis). Redis and every node share the server's core: \
                     these figures are the backplane's overhead, not the gain of more machines",
                    command_output("redis-server", &["--version"])
                        .and_then(|v| v.split_whitespace().nth(2).map(str::to_owned))
                        .unwrap_or_else(|| "?".to_owned())
                ),
                None => "not measured: redis-server is not installed".to_owned(),
            },
        ),
        (
            "generator".to_owned(),
            format!(
                "one thread, {} loopback source addresses (127.0.0.2 on), open-file limit {fd_limit}",
                options.sources
            ),
        ),
        (
            "sizes".to_owned(),
            format!(
                "echo {:?} connections × {:?} B, {:?} warm-up + {:?} measured{}; broadcast {:?} receivers, \
                 every {:?} for {:?}; HTTP transports: echo {} connections ({}), broadcast {} receivers ({}); \
                 idle {:?} held {:?}; connect {}; scale {:?}, held {:?}, then a broadcast every {:?} for {:?}",
                plan.echo_connections,
                plan.echo_payloads,
                plan.echo_warmup,
                plan.echo_window,
                match options.echo_rounds {
                    1 => String::new(),
                    n => format!(", {n} rounds (systems taking turns), each system's median kept"),
                },
                plan.broadcast_receivers,
                plan.broadcast_interval,
                plan.broadcast_duration,
                plan.transport_echo_connections,
                names(&plan.echo_transports),
                plan.transport_broadcast_receivers,
                names(&plan.broadcast_transports),
                plan.idle_levels,
                plan.idle_hold,
                plan.connect_clients,
                plan.scale_levels,
                plan.idle_hold,
                plan.scale_interval,
                plan.scale_duration
            ),
        ),
    ];
    if let Some(max) = options.quiet_wait {
        meta.push((
            "quiet machine".to_owned(),
            format!(
                "each run first waited (up to {max:?}) for other processes to use under {:.0} % of a core; \
                 {} runs started on a busy machine all the same (see the \"other CPU\" columns)",
                QUIET_THRESHOLD * 100.0,
                BUSY_RUNS.load(std::sync::atomic::Ordering::Relaxed)
            ),
        ));
    }
    if options.skip_negotiate {
        meta.push((
            "note".to_owned(),
            "signal clients skipped negotiation (`--skip-negotiate`): WebSocket straight away"
                .to_owned(),
        ));
    }
    for note in notes {
        meta.push(("note".to_owned(), note));
    }
    meta.push((
        "run time".to_owned(),
        format!("{:.0} s", started.elapsed().as_secs_f64()),
    ));
    results.meta = meta;
    Ok(results)
}

fn main() {
    let options = match parse_args() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
    let smoke = options.smoke;
    let out = options.out.clone();
    let scenarios = options.scenarios.clone();
    let plan = if smoke { Plan::smoke() } else { Plan::full() };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let local = tokio::task::LocalSet::new();
    let results = match local.block_on(&runtime, run(options, plan)) {
        Ok(results) => results,
        Err(error) => {
            eprintln!("signal-bench: {error}");
            std::process::exit(1);
        }
    };
    // A run of some scenarios is named after them, so that it does not
    // replace the day's full report.
    let date = match &scenarios {
        Some(names) => format!("{}-{}", today(), names.join("-")),
        None => today(),
    };
    let chart = format!("{date}.svg");
    let markdown = results.markdown(&chart);
    let written = std::fs::create_dir_all(&out)
        .and_then(|()| std::fs::write(out.join(format!("{date}.md")), &markdown))
        .and_then(|()| std::fs::write(out.join(&chart), results.svg()));
    if let Err(error) = written {
        eprintln!("signal-bench: cannot write {}: {error}", out.display());
        std::process::exit(1);
    }
    println!("{markdown}");
    eprintln!("wrote {}", out.join(format!("{date}.md")).display());
    let (passed, failed) = results.clean();
    if smoke {
        // The plain closing line CI reads; timings are never judged, only that every
        // system ran every scenario with nothing failed or missing.
        println!("bench: {passed} passed, {failed} failed");
        if failed > 0 {
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rate: f64) -> Cell<EchoRow> {
        Ok(EchoRow {
            failed_connects: 0,
            rate,
            p50_us: rate as u64,
            p99_us: 0,
            p999_us: 0,
            max_us: 0,
            per_connection: (0, 0),
            cpu: server::CpuUse::default(),
            errors: 0,
            first_error: None,
            round_rates: Vec::new(),
        })
    }

    #[test]
    fn the_median_round_is_kept_with_every_rounds_rate() {
        let kept = median_round(vec![row(100.0), row(300.0), row(200.0)]).unwrap();
        assert_eq!(
            (kept.rate, kept.p50_us),
            (200.0, 200),
            "the whole median row"
        );
        assert_eq!(kept.round_rates, [100.0, 300.0, 200.0]);
        let even = median_round(vec![row(4.0), row(1.0), row(3.0), row(2.0)]).unwrap();
        assert_eq!(even.rate, 2.0, "the lower middle");
        let single = median_round(vec![row(5.0)]).unwrap();
        assert_eq!((single.rate, single.round_rates.len()), (5.0, 0));
        let failed = median_round(vec![row(1.0), Err("refused".into()), row(2.0)]);
        assert_eq!(failed.unwrap_err(), "refused");
    }
}
