//! What signal's Rust client costs: one connection invoking `echo` in a closed
//! loop through `signal_client::HubConnection`, beside the generator's own
//! bare-minimum loop (pre-encoded frames, no parsing beyond finding the answer)
//! over one connection to the same server.

use std::time::{Duration, Instant};

use signal_client::{HubConnection, JsonHubProtocol, MessagePackHubProtocol, TransportType};

use crate::Error;
use crate::client::{Endpoint, Protocol};
use crate::scenario::{self, histogram, percentiles};
use crate::server::{CpuUse, CpuWindow, Server};

/// The client against the generator's loop, one connection each.
pub(crate) struct ClientRow {
    /// The generator's loop: invocations per second.
    pub(crate) raw_rate: f64,
    /// The generator's loop: round trip, microseconds.
    pub(crate) raw_p50_us: u64,
    /// The Rust client: invocations per second.
    pub(crate) client_rate: f64,
    /// The Rust client: round trip, microseconds.
    pub(crate) client_p50_us: u64,
    /// The Rust client: round trip, microseconds.
    pub(crate) client_p99_us: u64,
    /// CPU over the client's window.
    pub(crate) cpu: CpuUse,
    /// The first error, if any.
    pub(crate) first_error: Option<String>,
}

/// Runs the generator's loop, then the client's, each a warm-up and a window.
pub(crate) async fn rust_client(
    endpoint: &Endpoint<'_>,
    server: &Server,
    payload_len: usize,
    warmup: Duration,
    window: Duration,
) -> Result<ClientRow, Error> {
    let raw = scenario::echo(endpoint, server, 1, payload_len, warmup, window).await?;
    let mut builder = HubConnection::builder(format!(
        "http://127.0.0.1:{}/conformance",
        endpoint.ports[0]
    ))
    .transports([TransportType::WebSockets])
    .skip_negotiation(endpoint.skip_negotiate);
    builder = match endpoint.protocol {
        Protocol::MessagePack => builder.protocol(MessagePackHubProtocol),
        _ => builder.protocol(JsonHubProtocol),
    };
    let connection = builder.build()?;
    connection.start().await?;
    let payload = "x".repeat(payload_len);
    let warm_until = Instant::now() + warmup;
    while Instant::now() < warm_until {
        connection
            .invoke::<String>("echo", (payload.clone(),))
            .await?;
    }
    let mut rtt = histogram();
    let mut count = 0u64;
    let mut first_error = None;
    let cpu = CpuWindow::start(server);
    let started = Instant::now();
    while started.elapsed() < window {
        let sent = Instant::now();
        match connection
            .invoke::<String>("echo", (payload.clone(),))
            .await
        {
            Ok(echoed) if echoed.len() == payload_len => {
                count += 1;
                let _ = rtt.record(sent.elapsed().as_micros() as u64);
            }
            Ok(_) => {
                first_error.get_or_insert_with(|| "the echo came back altered".to_owned());
            }
            Err(error) => {
                first_error.get_or_insert_with(|| error.to_string());
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu = cpu.finish(server);
    connection.stop().await;
    let (client_p50_us, client_p99_us) = percentiles(&rtt);
    Ok(ClientRow {
        raw_rate: raw.rate,
        raw_p50_us: raw.p50_us,
        client_rate: count as f64 / elapsed.as_secs_f64(),
        client_p50_us,
        client_p99_us,
        cpu,
        first_error: first_error.or(raw.first_error),
    })
}
