//! The systems under test: how each server is started (pinned to its core with
//! `taskset`), when it is ready, and what it costs (CPU time and resident memory,
//! from `/proc`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::Error;
use crate::client::Protocol;
use crate::http_transport::Transport;

/// How long a server may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Linux reports CPU times in clock ticks of 1/100 s (USER_HZ) on every
/// architecture it runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// One system under test.
#[derive(Clone, Debug)]
pub(crate) struct System {
    /// Short name, used in tables and the chart.
    pub(crate) name: &'static str,
    /// What the generator speaks to it.
    pub(crate) protocol: Protocol,
    /// The program and its arguments.
    pub(crate) command: Vec<String>,
    /// The scenarios it runs (`echo`, `broadcast`, `idle`, `connect`); empty
    /// for all. A variant of another system runs only what it changes (signal
    /// with MessagePack: echo and broadcast).
    pub(crate) scenarios: &'static [&'static str],
    /// How many server processes (nodes) run, each on its own port; clients
    /// are spread over them in turn.
    pub(crate) nodes: usize,
    /// The nodes share a Redis backplane (a `redis-server` the harness starts,
    /// on the server's core).
    pub(crate) redis: bool,
    /// A client negotiates with one node and opens its WebSocket at the next:
    /// what a load balancer without session affinity does.
    pub(crate) unsticky: bool,
    /// How the generator's connections carry frames (WebSocket but for the
    /// systems of `http_systems`).
    pub(crate) transport: Transport,
}

impl System {
    /// Whether `scenario` (`echo`, `broadcast`, `idle`, `connect`) runs for it.
    pub(crate) fn runs(&self, scenario: &str) -> bool {
        self.scenarios.is_empty() || self.scenarios.contains(&scenario)
    }
}

/// Where the programs are.
pub(crate) struct Layout {
    /// The folder of the built binaries (`target/release`).
    pub(crate) bin_dir: PathBuf,
    /// The `bench/` folder.
    pub(crate) bench_dir: PathBuf,
    /// Another build of signal's `conformance` example (`--signal-before`),
    /// run as the system `signal-before`, JSON, beside this tree's: a before and
    /// after in one run.
    pub(crate) signal_before: Option<PathBuf>,
    /// `redis-server`, when installed: adds the scale-out systems.
    pub(crate) redis_server: Option<PathBuf>,
}

/// The systems, the bare server first (every ratio is to it): bare,
/// `signal-before` when asked for, signal (JSON), signal-msgpack (the same
/// server, MessagePack hub protocol), socketioxide, socket.io.
pub(crate) fn systems(layout: &Layout) -> Vec<System> {
    let bin = |name: &str| layout.bin_dir.join(name).display().to_string();
    let system = |name, protocol, command| System {
        name,
        protocol,
        command,
        scenarios: &[],
        nodes: 1,
        redis: false,
        unsticky: false,
        transport: Transport::WebSocket,
    };
    let mut all = vec![system("bare", Protocol::Bare, vec![bin("bare-server")])];
    if let Some(before) = &layout.signal_before {
        all.push(system(
            "signal-before",
            Protocol::SignalR,
            vec![before.display().to_string()],
        ));
    }
    all.extend([
        system(
            "signal",
            Protocol::SignalR,
            vec![bin("examples/conformance")],
        ),
        System {
            scenarios: &["echo", "broadcast", "scale"],
            ..system(
                "signal-msgpack",
                Protocol::MessagePack,
                vec![bin("examples/conformance")],
            )
        },
        system(
            "socketioxide",
            Protocol::SocketIo,
            vec![bin("socketioxide-server")],
        ),
        system(
            "socket.io",
            Protocol::SocketIo,
            vec![
                "node".to_owned(),
                layout
                    .bench_dir
                    .join("peers/node-socketio/server.js")
                    .display()
                    .to_string(),
            ],
        ),
    ]);
    if layout.redis_server.is_some() {
        // Scale-out: one node on Redis (what the backplane costs a node), three
        // nodes (what crossing nodes costs), three behind no affinity (what
        // claiming a connection negotiated elsewhere costs a connect). Every
        // node and Redis share the server's one core: this measures overhead,
        // not the gain of more machines.
        let scaled = |name, nodes, unsticky, scenarios| System {
            scenarios,
            nodes,
            redis: true,
            unsticky,
            ..system(name, Protocol::SignalR, vec![bin("examples/conformance")])
        };
        all.extend([
            scaled("signal-redis", 1, false, &["echo", "broadcast"][..]),
            scaled(
                "signal-redis-3",
                3,
                false,
                &["echo", "broadcast", "connect"][..],
            ),
            scaled(
                "signal-redis-3-unsticky",
                3,
                true,
                &["echo", "broadcast", "connect"][..],
            ),
        ]);
    }
    all
}

/// The systems of `selected` that have an HTTP `transport`, as the generator
/// speaks it: signal over SSE (JSON only: SSE carries text) and long polling
/// (JSON and MessagePack), socketioxide and socket.io over engine.io polling
/// (`Transport::LongPolling`). The bare server has none; signal-before and the
/// scale-out systems would repeat signal's.
pub(crate) fn http_systems(selected: &[System], transport: Transport) -> Vec<System> {
    selected
        .iter()
        .filter(|s| match (transport, s.name) {
            (Transport::Sse, name) => name == "signal",
            (Transport::LongPolling, name) => {
                matches!(
                    name,
                    "signal" | "signal-msgpack" | "socketioxide" | "socket.io"
                )
            }
            (Transport::WebSocket, _) => false,
        })
        .map(|s| System {
            transport,
            ..s.clone()
        })
        .collect()
}

/// A running server process, killed on drop.
pub(crate) struct Server {
    /// The nodes, then Redis (when the system has it).
    processes: Vec<Process>,
    /// The ports the nodes listen on, on 127.0.0.1.
    pub(crate) ports: Vec<u16>,
}

struct Process {
    child: Child,
    /// Ask it to stop (SIGTERM) and wait before killing it: wrapped servers
    /// (a profiler) write their output at exit.
    gentle: bool,
    /// Its process id (`taskset` execs the program, so the id is the server's).
    pid: u32,
}

fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn pinned(program: &[&String], cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).args(program);
            c
        }
        None => {
            let mut c = Command::new(program[0]);
            c.args(&program[1..]);
            c
        }
    }
}

impl Server {
    /// Starts `system` (its Redis first, then each node on a free port),
    /// pinned to `cpu` when given, and waits for each node's `listening on`
    /// line.
    pub(crate) fn start(
        system: &System,
        layout: &Layout,
        cpu: Option<usize>,
        wrap: &[String],
    ) -> Result<Server, Error> {
        let mut server = Server {
            processes: Vec::new(),
            ports: Vec::new(),
        };
        let mut redis_url = None;
        if system.redis {
            let binary = layout
                .redis_server
                .as_ref()
                .ok_or("redis-server is not installed")?
                .display()
                .to_string();
            let port = free_port()?;
            let args = [
                binary,
                "--port".to_owned(),
                port.to_string(),
                "--bind".to_owned(),
                "127.0.0.1".to_owned(),
                "--save".to_owned(),
                String::new(),
                "--appendonly".to_owned(),
                "no".to_owned(),
            ];
            let program: Vec<&String> = args.iter().collect();
            let child = pinned(&program, cpu)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("cannot start redis-server: {e}"))?;
            server.processes.push(Process {
                pid: child.id(),
                child,
                gentle: false,
            });
            let deadline = Instant::now() + READY_TIMEOUT;
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if Instant::now() > deadline {
                    return Err("redis-server did not start".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            redis_url = Some(format!("redis://127.0.0.1:{port}"));
        }
        for _ in 0..system.nodes.max(1) {
            let port = free_port()?;
            let program: Vec<&String> = wrap.iter().chain(&system.command).collect();
            let mut command = pinned(&program, cpu);
            command
                .env("PORT", port.to_string())
                .env("RUST_LOG", "warn")
                .env("NODE_ENV", "production")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if let Some(url) = &redis_url {
                command.env("SIGNAL_REDIS", url);
            }
            let mut child = command
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", system.command.join(" ")))?;
            let pid = child.id();
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let (ready_tx, ready_rx) = mpsc::channel();
            // Reads the ready line, then keeps draining stdout so the server never blocks on it.
            std::thread::spawn(move || {
                let mut ready = Some(ready_tx);
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("listening on")
                        && let Some(tx) = ready.take()
                    {
                        let _ = tx.send(());
                    }
                }
            });
            server.processes.push(Process {
                child,
                gentle: !wrap.is_empty(),
                pid,
            });
            server.ports.push(port);
            if ready_rx.recv_timeout(READY_TIMEOUT).is_err() {
                let last = server.processes.last_mut().expect("just pushed");
                let status = last.child.try_wait().ok().flatten();
                return Err(format!(
                    "{} did not become ready (exit status: {status:?})",
                    system.name
                )
                .into());
            }
        }
        Ok(server)
    }

    /// Resident memory of every process of the system, bytes (VmRSS of
    /// /proc/PID/status).
    pub(crate) fn rss(&self) -> Result<u64, Error> {
        self.processes.iter().map(|p| rss_of(p.pid)).sum()
    }

    /// CPU time used so far by every process of the system, seconds, user
    /// space and kernel apart.
    pub(crate) fn cpu_split(&self) -> Result<CpuTimes, Error> {
        self.processes
            .iter()
            .try_fold(CpuTimes::default(), |sum, p| {
                let times = cpu_times_of(&p.pid.to_string())?;
                Ok(CpuTimes {
                    user: sum.user + times.user,
                    kernel: sum.kernel + times.kernel,
                })
            })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.gentle {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_of(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmRSS")?;
    Ok(kib * 1024)
}

/// CPU seconds of a process, in user space and in the kernel.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CpuTimes {
    pub(crate) user: f64,
    pub(crate) kernel: f64,
}

impl CpuTimes {
    fn total(self) -> f64 {
        self.user + self.kernel
    }
}

/// CPU seconds of a process (`self` for this one), all threads.
fn cpu_of(pid: &str) -> Result<f64, Error> {
    Ok(cpu_times_of(pid)?.total())
}

fn cpu_times_of(pid: &str) -> Result<CpuTimes, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').ok_or("bad stat")? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let utime: f64 = fields.get(11).ok_or("bad stat")?.parse()?;
    let stime: f64 = fields.get(12).ok_or("bad stat")?.parse()?;
    Ok(CpuTimes {
        user: utime / TICKS_PER_SECOND,
        kernel: stime / TICKS_PER_SECOND,
    })
}

/// Waits, up to `max`, for the rest of the machine to use less than `threshold` of
/// a core over one second (other builds or tests sharing the machine make every
/// figure noisy). Returns whether it got quiet.
pub(crate) async fn wait_for_quiet(max: Duration, threshold: f64) -> bool {
    let started = Instant::now();
    loop {
        let (machine, own) = (machine_busy(), cpu_of("self").unwrap_or(0.0));
        let t = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let wall = t.elapsed().as_secs_f64();
        let others = ((machine_busy() - machine) - (cpu_of("self").unwrap_or(0.0) - own)) / wall;
        if others < threshold {
            return true;
        }
        if started.elapsed() >= max {
            return false;
        }
    }
}

/// CPU use of the server and of the generator over a measured window.
pub(crate) struct CpuWindow {
    started: Instant,
    server: CpuTimes,
    generator: f64,
    machine: f64,
}

/// CPU use over a window, as a fraction of one core (1.0 = one core busy).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CpuUse {
    /// The server's.
    pub(crate) server: f64,
    /// The part of the server's spent in the kernel (system calls, the
    /// network stack).
    pub(crate) server_kernel: f64,
    /// The load generator's.
    pub(crate) generator: f64,
    /// Everything else on the machine (other processes, the kernel's own
    /// threads): how noisy the window was.
    pub(crate) others: f64,
}

/// CPU seconds the whole machine spent busy so far (`/proc/stat`).
fn machine_busy() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let fields: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let busy: f64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    busy / TICKS_PER_SECOND
}

impl CpuWindow {
    /// Starts measuring.
    pub(crate) fn start(server: &Server) -> CpuWindow {
        CpuWindow {
            started: Instant::now(),
            server: server.cpu_split().unwrap_or_default(),
            generator: cpu_of("self").unwrap_or(0.0),
            machine: machine_busy(),
        }
    }

    /// Ends the window.
    pub(crate) fn finish(self, server: &Server) -> CpuUse {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let now = server.cpu_split().unwrap_or_default();
        let server_kernel = (now.kernel - self.server.kernel) / wall;
        let server = (now.total() - self.server.total()) / wall;
        let generator = (cpu_of("self").unwrap_or(0.0) - self.generator) / wall;
        let machine = (machine_busy() - self.machine) / wall;
        CpuUse {
            server,
            server_kernel,
            generator,
            others: (machine - server - generator).max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(rss_of(std::process::id()).unwrap() > 0);
        assert!(cpu_of("self").unwrap() >= 0.0);
    }
}
