//! A command-line chat client, talking to `examples/chat.rs` beside the browsers.
//!
//! Run the server (`cargo run --example chat`), then:
//! `cargo run --example chat_cli -- --name ada --room lobby`
//! (`--url http://127.0.0.1:5000/chat` by default; `--transport LongPolling`
//! forces a transport; `--messagepack` switches the hub protocol). Type a line
//! to send it to the room; `/quit` or end of input leaves.
//!
//! The client goes through the typed proxy `#[signal::hub]` generates for the
//! `Chat` contract (`ChatProxy`), and receives the server's calls on an
//! implementation of the `ChatClient` trait, registered once.

use std::io::BufRead;

use signal_client::{HubConnection, MessagePackHubProtocol, TransportType};
use signal_examples_api::chat::{ChatClient, ChatClientHandler, ChatProxy};
use tokio::sync::mpsc;

/// Prints what the hub calls on this client.
struct Terminal {
    name: String,
}

impl ChatClient for Terminal {
    async fn receive_message(&self, room: String, user: String, text: String) {
        if user != self.name {
            println!("[{room}] {user}: {text}");
        }
    }

    async fn user_joined(&self, room: String, user: String, members: Vec<String>) {
        println!("[{room}] {user} joined; here: {}", members.join(", "));
    }

    async fn user_left(&self, room: String, user: String, members: Vec<String>) {
        println!("[{room}] {user} left; here: {}", members.join(", "));
    }

    async fn online_users(&self, users: Vec<String>) {
        println!("online: {}", users.join(", "));
    }
}

struct Options {
    url: String,
    name: String,
    room: String,
    transport: Option<TransportType>,
    messagepack: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        url: "http://127.0.0.1:5000/chat".into(),
        name: String::new(),
        room: "lobby".into(),
        transport: None,
        messagepack: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--url" => options.url = value("--url")?,
            "--name" => options.name = value("--name")?,
            "--room" => options.room = value("--room")?,
            "--transport" => {
                options.transport = Some(value("--transport")?.parse().map_err(|e| format!("{e}"))?)
            }
            "--messagepack" => options.messagepack = true,
            other => {
                return Err(format!(
                    "unknown argument '{other}'; expected --name NAME [--room ROOM] [--url URL] \
                     [--transport WebSockets|ServerSentEvents|LongPolling] [--messagepack]"
                ));
            }
        }
    }
    if options.name.is_empty() {
        return Err("--name NAME is required".into());
    }
    Ok(options)
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("chat_cli: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let options = options()?;
    let mut builder = HubConnection::builder(&options.url).with_automatic_reconnect();
    if let Some(transport) = options.transport {
        builder = builder.transports([transport]);
    }
    if options.messagepack {
        builder = builder.protocol(MessagePackHubProtocol);
    }
    let connection = builder.build()?;
    connection.register(ChatClientHandler::new(Terminal {
        name: options.name.clone(),
    }));
    connection.on_reconnecting(|error| eprintln!("connection lost ({error}); reconnecting…"));
    connection.on_closed(|error| match error {
        Some(error) => eprintln!("connection closed: {error}"),
        None => eprintln!("connection closed"),
    });
    connection.start().await?;
    let chat = ChatProxy::new(&connection);
    let members = chat
        .join_room(options.name.clone(), options.room.clone())
        .await?;
    eprintln!(
        "joined {} over {} as {}; here: {}. Type a line to send it, /quit to leave.",
        options.room,
        connection.transport().map_or("?", |t| t.as_str()),
        options.name,
        members.join(", ")
    );
    {
        // After a reconnect the server knows a new connection: join again.
        let (name, room) = (options.name.clone(), options.room.clone());
        let rejoin = connection.clone();
        connection.on_reconnected(move |_| {
            let (rejoin, name, room) = (rejoin.clone(), name.clone(), room.clone());
            tokio::spawn(async move {
                if let Err(error) = ChatProxy::new(&rejoin).join_room(name, room).await {
                    eprintln!("could not join again: {error}");
                }
            });
        });
    }

    // Standard input is blocking: read it on a thread of its own.
    let (lines_tx, mut lines) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let text = line.trim();
        if text == "/quit" {
            break;
        }
        if text.is_empty() {
            continue;
        }
        if let Err(error) = chat
            .send_message(options.room.clone(), text.to_owned())
            .await
        {
            eprintln!("not sent: {error}");
        }
    }
    let _ = chat.leave_room(options.room.clone()).await;
    connection.stop().await;
    Ok(())
}
