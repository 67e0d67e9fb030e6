//! The ASP.NET SignalR 2.x layer on the wire, from Rust: exact documents,
//! envelopes and results (whole strings where the protocol fixes them), the
//! transports' framing, cursors and replay, tokens, and bad input. (The real
//! jQuery client in Chromium is tests/browser/legacy.test.mjs.)

mod common;

use std::net::SocketAddr;

use common::*;
use futures_util::{SinkExt, StreamExt};
use signal::legacy::{HubState, LegacyEndpoint};
use signal::persistent::{Connection, PersistentConnection};
use signal::{Context, HubError, HubHandle, HubStream};
use tokio_tungstenite::tungstenite;

/// What the test hub calls on its clients (through the generated proxy, so
/// the trait's own method is never called).
#[allow(dead_code)]
#[signal::client]
trait LegacyClient {
    async fn message(&self, text: String);
}

/// The test hub.
#[signal::hub(client = LegacyClient)]
trait Legacy {
    async fn echo(&self, message: String) -> String;
    async fn fail(&self, message: String) -> Result<(), HubError>;
    async fn join(&self, cx: &Context<dyn LegacyClient>, group: String) -> Result<(), HubError>;
    async fn to_group(
        &self,
        cx: &Context<dyn LegacyClient>,
        group: String,
        text: String,
    ) -> Result<(), HubError>;
    async fn broadcast(&self, cx: &Context<dyn LegacyClient>, text: String)
    -> Result<(), HubError>;
    async fn count(&self, n: u32) -> HubStream<u32>;
    async fn greet(&self, cx: &Context<dyn LegacyClient>) -> String;
    async fn quit(&self, cx: &Context<dyn LegacyClient>, text: String);
}

struct LegacyHub;

impl Legacy for LegacyHub {
    async fn echo(&self, message: String) -> String {
        message
    }

    async fn fail(&self, message: String) -> Result<(), HubError> {
        Err(HubError::new(message))
    }

    async fn join(&self, cx: &Context<dyn LegacyClient>, group: String) -> Result<(), HubError> {
        Ok(cx.groups().add(cx.connection_id().clone(), &group).await?)
    }

    async fn to_group(
        &self,
        cx: &Context<dyn LegacyClient>,
        group: String,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().group(&group).message(text).await?)
    }

    async fn broadcast(
        &self,
        cx: &Context<dyn LegacyClient>,
        text: String,
    ) -> Result<(), HubError> {
        Ok(cx.clients().all().message(text).await?)
    }

    async fn count(&self, n: u32) -> HubStream<u32> {
        Box::pin(futures_util::stream::iter((0..n).map(Ok)))
    }

    /// Reads the 2.x hub state and changes one key.
    async fn greet(&self, cx: &Context<dyn LegacyClient>) -> String {
        let name = cx
            .items()
            .get::<HubState>()
            .and_then(|state| state.get("userName").cloned())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        cx.items()
            .update(|state: &mut HubState| state.set("greeted", true));
        format!("hello {name}")
    }

    /// Sends `text` to the caller, then closes its connection.
    async fn quit(&self, cx: &Context<dyn LegacyClient>, text: String) {
        let _ = cx.clients().caller().message(text).await;
        cx.abort();
    }
}

/// Serves the hub at `/hub` (Core) and `/signalr` (2.x), and a raw echo at
/// `/raw` (2.x), with `configure` applied to both 2.x endpoints.
async fn serve_legacy(configure: impl Fn(LegacyEndpoint) -> LegacyEndpoint) -> SocketAddr {
    serve_legacy_with_handle(configure).await.0
}

/// Like [`serve_legacy`], with a handle to the hub.
async fn serve_legacy_with_handle(
    configure: impl Fn(LegacyEndpoint) -> LegacyEndpoint,
) -> (SocketAddr, HubHandle<dyn LegacyClient>) {
    let mut legacy = configure(LegacyEndpoint::new().key(b"test key"));
    let hub = LegacyHub.into_hub();
    let handle = hub.handle();
    let core = hub.router_with_legacy(&mut legacy);
    let raw = PersistentConnection::new(echo).legacy_router(configure(
        LegacyEndpoint::new().path("/raw").key(b"test key"),
    ));
    let addr = serve_router(
        axum::Router::new()
            .nest("/hub", core)
            .merge(legacy.router())
            .merge(raw),
    )
    .await;
    (addr, handle)
}

async fn echo(mut connection: Connection) {
    let sender = connection.sender();
    while let Some(message) = connection.next().await {
        if sender.send(message).await.is_err() {
            break;
        }
    }
}

const DATA: &str = "%5B%7B%22name%22%3A%22legacy%22%7D%5D";

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A 2.x client of one connection, speaking HTTP (and WebSockets) by hand.
struct Client {
    http: reqwest::Client,
    addr: SocketAddr,
    base: &'static str,
    token: String,
    id: String,
    data: &'static str,
}

impl Client {
    async fn negotiate(addr: SocketAddr) -> Self {
        Self::negotiate_at(addr, "/signalr", DATA).await
    }

    async fn negotiate_at(addr: SocketAddr, base: &'static str, data: &'static str) -> Self {
        let http = reqwest::Client::new();
        let url = format!("http://{addr}{base}/negotiate?clientProtocol=2.1&connectionData={data}");
        let body = within("negotiate", http.get(url).send())
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        Client {
            http,
            addr,
            base,
            token: value["ConnectionToken"].as_str().unwrap().to_owned(),
            id: value["ConnectionId"].as_str().unwrap().to_owned(),
            data,
        }
    }

    fn url(&self, action: &str, transport: &str, extra: &str) -> String {
        format!(
            "http://{}{}/{action}?transport={transport}&clientProtocol=2.1&connectionToken={}&connectionData={}{extra}",
            self.addr,
            self.base,
            encode(&self.token),
            self.data
        )
    }

    async fn post(&self, url: String, form: &str) -> (u16, String) {
        let response = within(
            "a 2.x request",
            self.http
                .post(url)
                .header(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=UTF-8",
                )
                .body(form.to_owned())
                .send(),
        )
        .await
        .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn get(&self, url: String) -> (u16, String) {
        let response = within("a 2.x request", self.http.get(url).send())
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Long polling `/connect`: the init envelope's cursor.
    async fn connect_long_polling(&self) -> String {
        let (status, body) = self.post(self.url("connect", "longPolling", ""), "").await;
        assert_eq!(status, 200, "{body}");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let cursor = value["C"].as_str().unwrap().to_owned();
        assert_eq!(body, format!(r#"{{"C":"{cursor}","S":1,"M":[]}}"#));
        cursor
    }

    async fn start(&self, transport: &str) {
        let (status, body) = self.get(self.url("start", transport, "")).await;
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{ "Response": "started" }"#)
        );
    }

    async fn send(&self, transport: &str, data: &str) -> (u16, String) {
        self.post(
            self.url("send", transport, ""),
            &format!("data={}", encode(data)),
        )
        .await
    }

    /// One poll from `cursor`: the envelope, leading keep-alive spaces trimmed.
    async fn poll(&self, cursor: &str) -> String {
        let (status, body) = self
            .post(
                self.url("poll", "longPolling", ""),
                &format!("messageId={}", encode(cursor)),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body.trim_start().to_owned()
    }
}

/// The cursor (`C`) of an envelope.
fn cursor_of(envelope: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(envelope).unwrap();
    value["C"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn negotiate_answers_the_2x_document() {
    let addr = serve_legacy(|l| l).await;
    let client = Client::negotiate(addr).await;
    let (status, body) = client
        .get(format!(
            "http://{addr}/signalr/negotiate?clientProtocol=2.1&connectionData={DATA}"
        ))
        .await;
    assert_eq!(status, 200);
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (token, id) = (
        value["ConnectionToken"].as_str().unwrap(),
        value["ConnectionId"].as_str().unwrap(),
    );
    assert_eq!(
        body,
        format!(
            r#"{{"Url":"/signalr","ConnectionToken":"{token}","ConnectionId":"{id}","KeepAliveTimeout":20.0,"DisconnectTimeout":30.0,"ConnectionTimeout":110.0,"TryWebSockets":true,"ProtocolVersion":"2.0","TransportConnectTimeout":5.0,"LongPollDelay":0.0}}"#
        )
    );
    let (status, body) = client.get(format!("http://{addr}/signalr/ping?_=1")).await;
    assert_eq!((status, body.as_str()), (200, r#"{ "Response": "pong" }"#));
}

#[tokio::test]
async fn long_polling_invokes_and_receives_results_state_progress_and_errors() {
    let addr = serve_legacy(|l| l).await;
    let client = Client::negotiate(addr).await;
    let cursor = client.connect_long_polling().await;
    client.start("longPolling").await;
    let send = |data: &'static str| client.send("longPolling", data);
    assert_eq!(
        send(r#"{"H":"legacy","M":"echo","A":["x"],"I":0}"#).await,
        (200, r#"{"R":"x","I":"0"}"#.to_owned())
    );
    assert_eq!(
        send(r#"{"H":"Legacy","M":"Fail","A":["nope"],"I":1}"#).await,
        (200, r#"{"I":"1","H":true,"E":"nope"}"#.to_owned())
    );
    assert_eq!(
        send(r#"{"H":"legacy","M":"greet","A":[],"I":"2","S":{"userName":"bob","greeted":false}}"#)
            .await,
        (
            200,
            r#"{"S":{"greeted":true},"R":"hello bob","I":"2"}"#.to_owned()
        )
    );
    assert_eq!(
        send(r#"{"H":"legacy","M":"nothing","A":[],"I":3}"#).await,
        (
            200,
            r#"{"I":"3","E":"'nothing' method could not be resolved. No method found with that name."}"#
                .to_owned()
        )
    );
    assert_eq!(
        send(r#"{"H":"nohub","M":"echo","A":["x"],"I":4}"#).await,
        (
            200,
            r#"{"I":"4","E":"'nohub' Hub could not be resolved."}"#.to_owned()
        )
    );
    // A streaming method: each item as progress, then the list, all in the
    // envelopes (one channel, so the progress cannot come after the result).
    let result = send(r#"{"H":"legacy","M":"count","A":[2],"I":5}"#).await;
    assert_eq!(result, (200, String::new()));
    let poll = client.poll(&cursor).await;
    let next = cursor_of(&poll);
    assert_eq!(
        poll,
        format!(
            r#"{{"C":"{next}","M":[{{"I":"P|5","P":{{"I":"5","D":0}}}},{{"I":"P|5","P":{{"I":"5","D":1}}}},{{"R":[0,1],"I":"5"}}]}}"#
        )
    );
    // A client invocation reaches the poll as the 2.x {H,M,A}.
    assert_eq!(
        send(r#"{"H":"legacy","M":"broadcast","A":["hi"],"I":6}"#).await,
        (200, r#"{"I":"6"}"#.to_owned())
    );
    let poll = client.poll(&next).await;
    assert_eq!(
        poll,
        format!(
            r#"{{"C":"{}","M":[{{"H":"Legacy","M":"message","A":["hi"]}}]}}"#,
            cursor_of(&poll)
        )
    );
}

#[tokio::test]
async fn a_poll_replays_everything_after_its_cursor_once() {
    let addr = serve_legacy(|l| l).await;
    let client = Client::negotiate(addr).await;
    let first = client.connect_long_polling().await;
    client.start("longPolling").await;
    for text in ["a", "b", "c"] {
        let data = format!(r#"{{"H":"legacy","M":"broadcast","A":["{text}"],"I":0}}"#);
        client.send("longPolling", &data).await;
    }
    let all = client.poll(&first).await;
    let expected = |cursor: &str, texts: &[&str]| {
        let messages: Vec<String> = texts
            .iter()
            .map(|t| format!(r#"{{"H":"Legacy","M":"message","A":["{t}"]}}"#))
            .collect();
        format!(r#"{{"C":"{cursor}","M":[{}]}}"#, messages.join(","))
    };
    assert_eq!(all, expected(&cursor_of(&all), &["a", "b", "c"]));
    // The same cursor again (a lost answer): the same messages, no more.
    let again = client.poll(&first).await;
    assert_eq!(again, all);
    client
        .send(
            "longPolling",
            r#"{"H":"legacy","M":"broadcast","A":["d"],"I":0}"#,
        )
        .await;
    let next = client.poll(&cursor_of(&all)).await;
    assert_eq!(next, expected(&cursor_of(&next), &["d"]));
}

#[tokio::test]
async fn a_cursor_past_the_buffer_or_of_another_connection_is_told_to_start_over() {
    let addr = serve_legacy(|l| l.configure(|o| o.message_buffer_size = 2)).await;
    let client = Client::negotiate(addr).await;
    let first = client.connect_long_polling().await;
    client.start("longPolling").await;
    for text in ["a", "b", "c"] {
        let data = format!(r#"{{"H":"legacy","M":"broadcast","A":["{text}"],"I":0}}"#);
        client.send("longPolling", &data).await;
    }
    assert_eq!(
        client.poll(&first).await,
        r#"{"E":"The connection missed messages while it was away: more were sent after its cursor than the server keeps (2 messages, 4194304 bytes). Stop and start the connection again."}"#
    );
    let other = Client::negotiate(addr).await;
    let foreign = other.connect_long_polling().await;
    assert_eq!(
        client.poll(&foreign).await,
        r#"{"E":"The messageId does not belong to this connection. Send back the cursor ('C') this connection received."}"#
    );
    // The other connection is unharmed.
    other.start("longPolling").await;
    assert_eq!(
        other
            .send(
                "longPolling",
                r#"{"H":"legacy","M":"echo","A":["ok"],"I":0}"#
            )
            .await,
        (200, r#"{"R":"ok","I":"0"}"#.to_owned())
    );
}

#[tokio::test]
async fn forged_foreign_and_missing_tokens_are_refused() {
    let addr = serve_legacy(|l| l).await;
    let mut client = Client::negotiate(addr).await;
    let good = client.token.clone();
    // Another id under the same signature.
    let (_, signature) = good.split_once('.').unwrap();
    client.token = format!("{}.{signature}", "b3RoZXI6");
    let (status, body) = client
        .post(client.url("connect", "longPolling", ""), "")
        .await;
    assert_eq!(
        (status, body.as_str()),
        (400, "The ConnectionId is in the incorrect format.")
    );
    // A token of a server with another key.
    let elsewhere = serve_legacy(|l| l.key(b"another key")).await;
    client.token = Client::negotiate(elsewhere).await.token;
    let (status, _) = client
        .post(client.url("connect", "longPolling", ""), "")
        .await;
    assert_eq!(status, 400);
    client.token = good;
    let (status, body) = client
        .get(format!(
            "http://{addr}/signalr/start?transport=longPolling&clientProtocol=2.1"
        ))
        .await;
    assert_eq!(
        (status, body.as_str()),
        (400, "Protocol error: Missing connection token.")
    );
    let (status, body) = client.get(client.url("start", "carrierPigeon", "")).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "Protocol error: Unknown transport.")
    );
    // A groups token not made for this connection.
    client.connect_long_polling().await;
    let (status, body) = client
        .post(
            client.url("poll", "longPolling", ""),
            "messageId=x&groupsToken=forged",
        )
        .await;
    assert_eq!(
        (status, body.as_str()),
        (400, "The groups token is not valid for this connection.")
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let addr = serve_legacy(|l| l).await;
    let client = Client::negotiate(addr).await;
    let (status, body) = client
        .get(format!(
            "http://{addr}/signalr/negotiate?clientProtocol=2.1&connectionData=%5B%7B%22name%22%3A%22nope%22%7D%5D"
        ))
        .await;
    assert_eq!(
        (status, body.as_str()),
        (400, "'nope' Hub could not be resolved.")
    );
    let (status, body) = client
        .get(format!(
            "http://{addr}/signalr/negotiate?clientProtocol=2.1&callback=jQuery1_2"
        ))
        .await;
    assert_eq!(
        (status, body.as_str()),
        (403, "Forbidden: JSONP is disabled.")
    );

    let client = Client::negotiate(addr).await;
    client.connect_long_polling().await;
    client.start("longPolling").await;
    let (status, body) = client.send("longPolling", "not json").await;
    assert_eq!(status, 400);
    assert!(
        body.starts_with("The message is not a hub invocation"),
        "{body}"
    );
    let big = format!(
        r#"{{"H":"legacy","M":"echo","A":["{}"],"I":0}}"#,
        "x".repeat(70 * 1024)
    );
    let (status, body) = client.send("longPolling", &big).await;
    assert_eq!(status, 413, "{body}");
    // The connection is still fine.
    assert_eq!(
        client
            .send(
                "longPolling",
                r#"{"H":"legacy","M":"echo","A":["ok"],"I":1}"#
            )
            .await,
        (200, r#"{"R":"ok","I":"1"}"#.to_owned())
    );
}

#[tokio::test]
async fn jsonp_wraps_every_answer_when_enabled() {
    let addr = serve_legacy(|l| l.configure(|o| o.enable_jsonp = true)).await;
    let client = Client::negotiate(addr).await;
    let (status, body) = client
        .get(client.url("connect", "longPolling", "&callback=jQuery1_2&_=3"))
        .await;
    assert_eq!(status, 200);
    let cursor = body
        .strip_prefix("jQuery1_2(")
        .and_then(|rest| rest.strip_suffix(");"))
        .map(cursor_of)
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(
        body,
        format!(r#"jQuery1_2({{"C":"{cursor}","S":1,"M":[]}});"#)
    );
    let (_, body) = client
        .get(client.url("start", "longPolling", "&callback=jQuery1_2"))
        .await;
    assert_eq!(body, r#"jQuery1_2({ "Response": "started" });"#);
    let data = encode(r#"{"H":"legacy","M":"echo","A":["j"],"I":0}"#);
    let (_, body) = client
        .get(client.url(
            "send",
            "longPolling",
            &format!("&callback=cb.x&data={data}"),
        ))
        .await;
    assert_eq!(body, r#"cb.x({"R":"j","I":"0"});"#);
    let (status, _) = client
        .get(client.url("start", "longPolling", "&callback=alert(1)"))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn server_sent_events_and_forever_frames_frame_each_envelope() {
    let addr = serve_legacy(|l| l).await;
    let client = Client::negotiate(addr).await;
    let mut events = within(
        "the event stream",
        client
            .http
            .get(client.url("connect", "serverSentEvents", "&tid=1"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    while !seen.contains("\"S\":1") {
        let chunk = within("an event", events.chunk()).await.unwrap().unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let cursor = cursor_of(seen.split("data: ").nth(2).unwrap().trim());
    assert_eq!(
        seen,
        format!("data: initialized\n\ndata: {{\"C\":\"{cursor}\",\"S\":1,\"M\":[]}}\n\n")
    );
    client.start("serverSentEvents").await;
    client
        .send(
            "serverSentEvents",
            r#"{"H":"legacy","M":"broadcast","A":["</script>"],"I":0}"#,
        )
        .await;
    let chunk = within("an event", events.chunk()).await.unwrap().unwrap();
    let text = std::str::from_utf8(&chunk).unwrap();
    let next = cursor_of(text.trim().strip_prefix("data: ").unwrap());
    assert_eq!(
        text,
        format!(
            "data: {{\"C\":\"{next}\",\"M\":[{{\"H\":\"Legacy\",\"M\":\"message\",\"A\":[\"</script>\"]}}]}}\n\n"
        )
    );

    // The same connection falls back to a forever frame (a new receive request).
    let (status, body) = client
        .get(client.url("connect", "foreverFrame", "&frameId=x"))
        .await;
    assert_eq!(
        (status, body.as_str()),
        (400, "The supplied frameId is in the incorrect format.")
    );
    let mut frame = within(
        "the forever frame",
        client
            .http
            .get(client.url(
                "reconnect",
                "foreverFrame",
                &format!("&frameId=7&messageId={}", encode(&cursor)),
            ))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(frame.headers()["content-type"], "text/html; charset=UTF-8");
    let mut seen = String::new();
    while !seen.contains("<script>r(c") || !seen.ends_with(");</script>\r\n") {
        let chunk = within("a script chunk", frame.chunk())
            .await
            .unwrap()
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let prelude = "<!DOCTYPE html><html><head><title>SignalR Forever Frame Transport Stream</title>\r\n<script>\r\n    var $ = window.parent.jQuery,\r\n        ff = $ ? $.signalR.transports.foreverFrame : null,\r\n        c =  ff ? ff.getConnection('7') : null,\r\n        r = ff ? ff.receive : function() {};\r\n    ff ? ff.started(c) : '';</script></head><body>\r\n";
    let envelope = seen
        .strip_prefix(prelude)
        .unwrap_or_else(|| panic!("{seen}"));
    let next = envelope
        .split('"')
        .nth(3)
        .unwrap_or_else(|| panic!("{envelope}"));
    // The replayed message, its `<` and `>` escaped so it cannot end the script.
    assert_eq!(
        envelope,
        format!(
            "<script>r(c, {{\"C\":\"{next}\",\"M\":[{{\"H\":\"Legacy\",\"M\":\"message\",\"A\":[\"\\u003c/script\\u003e\"]}}]}});</script>\r\n"
        )
    );
}

#[tokio::test]
async fn web_sockets_carry_envelopes_out_and_results_back() {
    let addr = serve_legacy(|l| l).await;
    let client = Client::negotiate(addr).await;
    let url = client
        .url("connect", "webSockets", "&tid=3")
        .replace("http://", "ws://");
    let (mut socket, _) = within("the upgrade", tokio_tungstenite::connect_async(url))
        .await
        .unwrap();
    let init = match within("a frame", socket.next()).await {
        Some(Ok(tungstenite::Message::Text(text))) => text.as_str().to_owned(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        init,
        format!(r#"{{"C":"{}","S":1,"M":[]}}"#, cursor_of(&init))
    );
    client.start("webSockets").await;
    socket
        .send(tungstenite::Message::text(
            r#"{"H":"legacy","M":"join","A":["room"],"I":0}"#,
        ))
        .await
        .unwrap();
    let frame = within("a frame", socket.next()).await.unwrap().unwrap();
    assert_eq!(frame.to_text().unwrap(), r#"{"I":"0"}"#);
    // A Core client in the same group reaches the 2.x connection, and the
    // envelope carries the new groups token.
    let mut core = WsClient::connect(addr).await;
    core.send(&invocation("1", "join", r#""room""#)).await;
    core.next_message().await;
    core.send(&invocation("2", "toGroup", r#""room","both""#))
        .await;
    let envelope = within("a frame", socket.next()).await.unwrap().unwrap();
    let envelope = envelope.to_text().unwrap();
    let value: serde_json::Value = serde_json::from_str(envelope).unwrap();
    let groups = value["G"].as_str().expect("a groups token");
    assert_eq!(
        envelope,
        format!(
            r#"{{"C":"{}","G":"{groups}","M":[{{"H":"Legacy","M":"message","A":["both"]}}]}}"#,
            cursor_of(envelope)
        )
    );
    let mut got = Vec::new();
    while got.len() < 2 {
        got.push(core.next_message().await.unwrap());
    }
    assert!(
        got.contains(&record(
            r#"{"type":1,"target":"message","arguments":["both"]}"#
        )),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_persistent_connection_echoes_and_abort_ends_it() {
    let addr = serve_legacy(|l| l).await;
    let client = Client::negotiate_at(addr, "/raw", "").await;
    let (status, body) = client
        .post(client.url("connect", "longPolling", ""), "")
        .await;
    assert_eq!(status, 200, "{body}");
    let cursor = cursor_of(&body);
    client.start("longPolling").await;
    assert_eq!(
        client.send("longPolling", "hello").await,
        (200, String::new())
    );
    let poll = client.poll(&cursor).await;
    assert_eq!(
        poll,
        format!(r#"{{"C":"{}","M":["hello"]}}"#, cursor_of(&poll))
    );
    let (status, body) = client
        .post(client.url("abort", "longPolling", ""), "")
        .await;
    assert_eq!((status, body.as_str()), (200, ""));
    let gone = client.poll(&cursor_of(&poll)).await;
    assert!(
        gone.starts_with(r#"{"E":"The connection is not known to the server"#),
        "{gone}"
    );
    let (status, _) = client.send("longPolling", "late").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_proxy_script_names_hubs_and_methods_as_2x_clients_expect() {
    let addr = serve_legacy(|l| l).await;
    for path in ["hubs", "js"] {
        let response = reqwest::get(format!("http://{addr}/signalr/{path}"))
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "application/javascript; charset=UTF-8"
        );
        let script = response.text().await.unwrap();
        assert!(
            script.contains(r#"proxies["legacy"] = this.createHubProxy("legacy");"#),
            "{script}"
        );
        assert!(
            script.contains(r#""toGroup": function (group, text) {"#),
            "{script}"
        );
        assert!(
            script.contains(r#"$.merge(["toGroup"], $.makeArray(arguments))"#),
            "{script}"
        );
        assert!(
            script.contains(
                r#"signalR.hub = $.hubConnection("/signalr", { useDefaultPath: false });"#
            ),
            "{script}"
        );
    }
}

#[tokio::test]
async fn a_client_that_does_not_come_back_is_disconnected_after_the_timeout() {
    let (addr, handle) = serve_legacy_with_handle(|l| {
        l.configure(|o| o.disconnect_timeout = std::time::Duration::from_millis(300))
    })
    .await;
    let client = Client::negotiate(addr).await;
    let cursor = client.connect_long_polling().await;
    client.start("longPolling").await;
    assert_eq!(handle.connection_count(), 1);
    // No poll follows: the connection ends, and is out of the hub's registry.
    eventually("the disconnect timeout", || handle.connection_count() == 0).await;
    let gone = client.poll(&cursor).await;
    assert!(
        gone.starts_with(r#"{"E":"The connection is not known to the server"#),
        "{gone}"
    );
}

#[tokio::test]
async fn the_hub_may_close_a_2x_connection_after_what_it_sent() {
    let (addr, handle) = serve_legacy_with_handle(|l| l).await;
    let client = Client::negotiate(addr).await;
    let cursor = client.connect_long_polling().await;
    client.start("longPolling").await;
    client
        .send(
            "longPolling",
            r#"{"H":"legacy","M":"quit","A":["bye"],"I":0}"#,
        )
        .await;
    let last = client.poll(&cursor).await;
    assert_eq!(
        last,
        format!(
            r#"{{"C":"{}","M":[{{"H":"Legacy","M":"message","A":["bye"]}}]}}"#,
            cursor_of(&last)
        )
    );
    eventually("the connection's end", || handle.connection_count() == 0).await;
    assert_eq!(
        client.poll(&cursor_of(&last)).await,
        r#"{"E":"The server closed the connection. Start a new connection."}"#
    );
}

#[tokio::test]
async fn nodes_sharing_a_key_accept_each_others_tokens() {
    let a = serve_legacy(|l| l.key(b"shared")).await;
    let b = serve_legacy(|l| l.key(b"shared")).await;
    let mut client = Client::negotiate(a).await;
    client.addr = b;
    client.connect_long_polling().await;
}

#[tokio::test]
async fn idle_streams_get_keep_alives() {
    let addr = serve_legacy(|l| {
        l.configure(|o| o.keep_alive = Some(std::time::Duration::from_millis(100)))
    })
    .await;
    let client = Client::negotiate(addr).await;
    let url = client
        .url("connect", "webSockets", "")
        .replace("http://", "ws://");
    let (mut socket, _) = within("the upgrade", tokio_tungstenite::connect_async(url))
        .await
        .unwrap();
    let mut frames = Vec::new();
    while frames.len() < 3 {
        let frame = within("a frame", socket.next()).await.unwrap().unwrap();
        frames.push(frame.to_text().unwrap().to_owned());
    }
    assert!(frames[0].contains(r#""S":1"#), "{frames:?}");
    assert_eq!(frames[1..], ["{}", "{}"]);
}

/// A backplane's view of sends: every message reaches this node's
/// connections as JSON bytes only, as a Redis backplane relays it.
struct FramedOnly(signal::LocalLifetimeManager);

impl signal::HubLifetimeManager for FramedOnly {
    fn local(&self) -> &signal::LocalLifetimeManager {
        &self.0
    }

    fn send<'a>(
        &'a self,
        recipients: &'a signal::Recipients,
        message: signal::protocol::SerializedHubMessage,
    ) -> signal::BoxFuture<'a, Result<(), signal::SendError>> {
        let json = signal::protocol::ProtocolSet::default()
            .get("json")
            .unwrap();
        let framed = message.framed(&json).unwrap();
        self.0.send_local(
            recipients,
            signal::protocol::SerializedHubMessage::from_framed(json.id(), framed, true),
        );
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test]
async fn messages_relayed_as_other_protocols_bytes_reach_2x_connections() {
    let mut legacy = LegacyEndpoint::new();
    let core = LegacyHub
        .into_hub()
        .lifetime_manager(FramedOnly(signal::LocalLifetimeManager::new()))
        .router_with_legacy(&mut legacy);
    let addr = serve_router(
        axum::Router::new()
            .nest("/hub", core)
            .merge(legacy.router()),
    )
    .await;
    let client = Client::negotiate(addr).await;
    let cursor = client.connect_long_polling().await;
    client.start("longPolling").await;
    client
        .send(
            "longPolling",
            r#"{"H":"legacy","M":"broadcast","A":["relayed"],"I":0}"#,
        )
        .await;
    let poll = client.poll(&cursor).await;
    assert_eq!(
        poll,
        format!(
            r#"{{"C":"{}","M":[{{"H":"Legacy","M":"message","A":["relayed"]}}]}}"#,
            cursor_of(&poll)
        )
    );
}

#[tokio::test]
async fn a_persistent_handle_reaches_2x_connections_all_and_by_group() {
    let endpoint = PersistentConnection::new(echo);
    let handle = endpoint.handle();
    let (core, legacy) = endpoint.routers(LegacyEndpoint::new().path("/raw"));
    let addr = serve_router(axum::Router::new().nest("/core", core).merge(legacy)).await;
    let client = Client::negotiate_at(addr, "/raw", "").await;
    let (_, body) = client
        .post(client.url("connect", "longPolling", ""), "")
        .await;
    let cursor = cursor_of(&body);
    client.start("longPolling").await;
    eventually("the handler's connection", || {
        handle.connection_count() == 1
    })
    .await;
    handle.send_all(signal::persistent::Message::Text("to all".into()));
    let poll = client.poll(&cursor).await;
    assert_eq!(
        poll,
        format!(r#"{{"C":"{}","M":["to all"]}}"#, cursor_of(&poll))
    );
    handle.add_to_group(client.id.as_str(), "g");
    handle.send_group("g", signal::persistent::Message::Text("to g".into()));
    handle.send_group("h", signal::persistent::Message::Text("to h".into()));
    let next = client.poll(&cursor_of(&poll)).await;
    assert_eq!(
        next,
        format!(r#"{{"C":"{}","M":["to g"]}}"#, cursor_of(&next))
    );
}

/// A hub that needs a user, with one method for admins only.
#[signal::hub]
#[signal::authorize]
trait Guarded {
    async fn whoami(&self, cx: &Context) -> Option<String>;
    #[signal::authorize(policy = "admin")]
    async fn admin_only(&self) -> String;
}

struct GuardedHub;

impl Guarded for GuardedHub {
    async fn whoami(&self, cx: &Context) -> Option<String> {
        cx.identity().map(|identity| identity.user_id().to_owned())
    }

    async fn admin_only(&self) -> String {
        "secret".to_owned()
    }
}

#[tokio::test]
async fn a_hub_that_requires_a_user_refuses_2x_requests_without_one_and_authorizes_each_call() {
    let mut legacy = LegacyEndpoint::new().key(b"test key");
    let hub = GuardedHub
        .into_hub()
        .policy("admin", |identity: &signal::auth::Identity| {
            identity.has_claim("roles", "admin")
        });
    let core = hub.router_with_legacy(&mut legacy);
    let addr = serve_router(
        axum::Router::new()
            .nest("/hub", core)
            .merge(legacy.router())
            .layer(axum::middleware::from_fn(identify)),
    )
    .await;
    const GUARDED: &str = "%5B%7B%22name%22%3A%22guarded%22%7D%5D";
    let negotiate =
        format!("http://{addr}/signalr/negotiate?clientProtocol=2.1&connectionData={GUARDED}");
    let anonymous = reqwest::get(&negotiate).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.text().await.unwrap(),
        "Authentication is required to connect to this hub."
    );

    for (user, admin_only) in [
        ("ada", r#"{"R":"secret","I":"1"}"#),
        (
            "bob",
            r#"{"I":"1","E":"There was an error invoking Hub method 'guarded.adminOnly'."}"#,
        ),
    ] {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {user}").parse().unwrap());
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        let body = http
            .get(&negotiate)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let client = Client {
            http,
            addr,
            base: "/signalr",
            token: value["ConnectionToken"].as_str().unwrap().to_owned(),
            id: value["ConnectionId"].as_str().unwrap().to_owned(),
            data: GUARDED,
        };
        client.connect_long_polling().await;
        client.start("longPolling").await;
        // Hub code sees the identity of the request the connection started with.
        assert_eq!(
            client
                .send(
                    "longPolling",
                    r#"{"H":"guarded","M":"whoami","A":[],"I":0}"#
                )
                .await,
            (200, format!(r#"{{"R":"{user}","I":"0"}}"#))
        );
        assert_eq!(
            client
                .send(
                    "longPolling",
                    r#"{"H":"guarded","M":"adminOnly","A":[],"I":1}"#
                )
                .await,
            (200, admin_only.to_owned())
        );
    }
}
