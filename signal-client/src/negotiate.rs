//! `POST {hub}/negotiate?negotiateVersion=1`, following redirects as the official
//! clients do (at most 100; a redirect's access token replaces the caller's).

use std::time::Duration;

use http::HeaderMap;
use serde::Deserialize;
use signal_core::{TransferFormat, TransportType};
use url::Url;

use crate::error::Error;
use crate::transport::error_chain;

/// The most redirects followed, as in the official clients.
const MAX_REDIRECTS: usize = 100;

/// What negotiate settled.
#[derive(Debug)]
pub(crate) struct Negotiated {
    /// The hub URL after redirects.
    pub(crate) url: Url,
    /// The access token a redirect handed out, when one did.
    pub(crate) access_token: Option<String>,
    /// The public connection id.
    pub(crate) connection_id: Option<String>,
    /// What opens transports: the token (version 1) or the id (version 0).
    pub(crate) token: Option<String>,
    /// The server's transports in its order, with their transfer formats.
    pub(crate) transports: Vec<(TransportType, Vec<TransferFormat>)>,
    /// Whether the server agreed to stateful reconnect.
    pub(crate) stateful_reconnect: bool,
}

/// The negotiate answer in every shape a server may give: a connection, a
/// redirect or an error. Unknown fields and transports are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    url: Option<String>,
    access_token: Option<String>,
    error: Option<String>,
    connection_id: Option<String>,
    connection_token: Option<String>,
    #[serde(default)]
    negotiate_version: u32,
    #[serde(default)]
    available_transports: Vec<AnswerTransport>,
    #[serde(default)]
    use_stateful_reconnect: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerTransport {
    transport: String,
    #[serde(default)]
    transfer_formats: Vec<String>,
}

/// Negotiates at `url`.
pub(crate) async fn negotiate(
    http: &reqwest::Client,
    mut url: Url,
    headers: &HeaderMap,
    mut access_token: Option<String>,
    stateful_reconnect: bool,
    timeout: Duration,
) -> Result<Negotiated, Error> {
    let mut redirected = false;
    for _ in 0..=MAX_REDIRECTS {
        let negotiate_url = negotiate_url(&url, stateful_reconnect);
        let failed = |reason: String| Error::Negotiate {
            url: negotiate_url.to_string(),
            reason,
        };
        let mut request = http
            .post(negotiate_url.clone())
            .headers(headers.clone())
            .header("X-Requested-With", "XMLHttpRequest")
            .timeout(timeout);
        if let Some(token) = &access_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                failed(format!("no answer within {timeout:?}"))
            } else {
                failed(error_chain(&e))
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            let hint = match status.as_u16() {
                404 => "; is a hub mapped at this URL?",
                401 | 403 => "; does the server need an access token?",
                _ => "",
            };
            return Err(failed(format!("the server answered {status}{hint}")));
        }
        let body = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                failed(format!("no answer within {timeout:?}"))
            } else {
                failed(error_chain(&e))
            }
        })?;
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|e| failed(format!("the answer is not a negotiate document: {e}")))?;
        if let Some(error) = answer.error {
            return Err(Error::Refused(error));
        }
        if let Some(redirect) = answer.url {
            url = Url::parse(&redirect)
                .map_err(|e| failed(format!("the redirect URL '{redirect}' is invalid: {e}")))?;
            if answer.access_token.is_some() {
                access_token = answer.access_token;
            }
            redirected = true;
            continue;
        }
        let mut negotiated = connection(answer, url, stateful_reconnect).map_err(failed)?;
        negotiated.access_token = redirected.then_some(access_token).flatten();
        return Ok(negotiated);
    }
    Err(Error::TooManyRedirects)
}

/// A negotiate answer that names a connection: its id, what opens transports
/// (the token in version 1, the id in version 0) and the transports offered.
fn connection(answer: Answer, url: Url, stateful_reconnect: bool) -> Result<Negotiated, String> {
    let token = if answer.negotiate_version >= 1 {
        answer.connection_token
    } else {
        answer.connection_id.clone()
    };
    if token.is_none() {
        return Err("the answer names no connection".into());
    }
    let transports = answer
        .available_transports
        .into_iter()
        .filter_map(|t| {
            let kind = t.transport.parse::<TransportType>().ok()?;
            let formats = t
                .transfer_formats
                .iter()
                .filter_map(|f| match f.as_str() {
                    "Text" => Some(TransferFormat::Text),
                    "Binary" => Some(TransferFormat::Binary),
                    _ => None,
                })
                .collect();
            Some((kind, formats))
        })
        .collect();
    Ok(Negotiated {
        url,
        access_token: None,
        connection_id: answer.connection_id,
        token,
        transports,
        stateful_reconnect: answer.use_stateful_reconnect && stateful_reconnect,
    })
}

/// `{path}/negotiate?{query}&negotiateVersion=1[&useStatefulReconnect=true]`.
fn negotiate_url(url: &Url, stateful_reconnect: bool) -> Url {
    let mut out = url.clone();
    let path = format!("{}/negotiate", url.path().trim_end_matches('/'));
    out.set_path(&path);
    {
        let mut query = out.query_pairs_mut();
        query.append_pair("negotiateVersion", "1");
        if stateful_reconnect {
            query.append_pair("useStatefulReconnect", "true");
        }
    }
    out
}

/// `url` with `id=<token>` added.
pub(crate) fn connect_url(url: &Url, token: Option<&str>) -> Url {
    let mut out = url.clone();
    if let Some(token) = token {
        out.query_pairs_mut().append_pair("id", token);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Negotiated, String> {
        let url = Url::parse("http://h/hub").unwrap();
        connection(serde_json::from_str(json).unwrap(), url, true)
    }

    #[test]
    fn versions_zero_and_one_name_what_opens_transports() {
        let v0 = read(
            r#"{"connectionId":"abc","availableTransports":[{"transport":"LongPolling","transferFormats":["Text","Binary"]}]}"#,
        )
        .unwrap();
        assert_eq!(v0.token.as_deref(), Some("abc"), "version 0: the id");
        assert_eq!(
            v0.transports,
            [(
                TransportType::LongPolling,
                vec![TransferFormat::Text, TransferFormat::Binary]
            )]
        );
        let v1 = read(
            r#"{"connectionId":"abc","connectionToken":"secret","negotiateVersion":1,"useStatefulReconnect":true,"availableTransports":[{"transport":"Carrier","transferFormats":["Text"]},{"transport":"WebSockets","transferFormats":["Text","Smoke"]}],"extra":1}"#,
        )
        .unwrap();
        assert_eq!(v1.token.as_deref(), Some("secret"), "version 1: the token");
        assert_eq!(v1.connection_id.as_deref(), Some("abc"));
        assert!(v1.stateful_reconnect);
        assert_eq!(
            v1.transports,
            [(TransportType::WebSockets, vec![TransferFormat::Text])],
            "unknown transports and formats are ignored"
        );
        assert!(read(r#"{"negotiateVersion":1,"connectionId":"abc"}"#).is_err());
    }

    #[test]
    fn negotiate_keeps_the_query() {
        let url = Url::parse("http://h/hub/?a=1").unwrap();
        assert_eq!(
            negotiate_url(&url, true).as_str(),
            "http://h/hub/negotiate?a=1&negotiateVersion=1&useStatefulReconnect=true"
        );
        assert_eq!(
            connect_url(&url, Some("t+/")).as_str(),
            "http://h/hub/?a=1&id=t%2B%2F"
        );
    }
}
