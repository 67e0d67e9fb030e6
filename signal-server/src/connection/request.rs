//! The connect request as a connection keeps it, for its whole life (hub code
//! reads it through `Context::request`, as ASP.NET Core keeps the connection's
//! `HttpContext`).
//!
//! Kept compact, because every idle connection holds one:
//! - as parsed, header values and the URI are slices of the HTTP connection's
//!   read buffer (8 KiB or more), which would stay allocated with the
//!   connection; they are copied out;
//! - a `HeaderMap` costs about 100 bytes per header before its values (a
//!   browser sends 15 or more), so the headers are kept as one packed buffer,
//!   and the `Parts` hub code sees are built from it on first use: most hubs
//!   never look.

use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use http::request::Parts;
use http::{Extensions, HeaderName, HeaderValue, Method, Uri, Version};

/// Marks a sensitive header's line in the packed buffer (a control byte, which
/// no header name can start with).
const SENSITIVE: u8 = 0x01;

/// The request a connection started with.
#[derive(Debug)]
pub(crate) struct KeptRequest {
    method: Method,
    uri: Uri,
    version: Version,
    /// Each header as `name:value\n`, after [`SENSITIVE`] for a sensitive one:
    /// names hold neither `:` nor control bytes, values no line breaks.
    headers: Bytes,
    /// What middleware left (an authentication layer's identity).
    extensions: Extensions,
    /// Built on first use. Boxed, so that a request nobody reads does not
    /// carry its size.
    parts: OnceLock<Box<Parts>>,
}

/// The URI in bytes of its own. A request's URI is usually its path and query
/// only, copied as they are; one with a scheme and authority is formatted and
/// parsed again.
fn copied_uri(uri: &Uri) -> Uri {
    if uri.scheme().is_none()
        && uri.authority().is_none()
        && let Some(path_and_query) = uri.path_and_query()
        && let Ok(copy) = http::uri::PathAndQuery::from_maybe_shared(Bytes::copy_from_slice(
            path_and_query.as_str().as_bytes(),
        ))
    {
        return Uri::from(copy);
    }
    uri.to_string().parse().unwrap_or_else(|_| uri.clone())
}

impl KeptRequest {
    /// Keeps `parts`, copying what refers to the HTTP connection's buffer.
    pub(crate) fn new(parts: Parts) -> Self {
        let length = parts
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 3)
            .sum();
        let mut packed = BytesMut::with_capacity(length);
        for (name, value) in &parts.headers {
            if value.is_sensitive() {
                packed.put_u8(SENSITIVE);
            }
            packed.put_slice(name.as_str().as_bytes());
            packed.put_u8(b':');
            packed.put_slice(value.as_bytes());
            packed.put_u8(b'\n');
        }
        let uri = copied_uri(&parts.uri);
        KeptRequest {
            method: parts.method,
            uri,
            version: parts.version,
            headers: packed.freeze(),
            extensions: parts.extensions,
            parts: OnceLock::new(),
        }
    }

    /// The request as `http` models it.
    pub(crate) fn parts(&self) -> &Parts {
        self.parts.get_or_init(|| Box::new(self.build()))
    }

    /// What middleware left on the request, without building the rest.
    pub(crate) fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    fn build(&self) -> Parts {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = self.method.clone();
        parts.uri = self.uri.clone();
        parts.version = self.version;
        parts.extensions = self.extensions.clone();
        let lines = self.headers.split(|&byte| byte == b'\n');
        let count = lines.clone().filter(|line| !line.is_empty()).count();
        parts.headers.reserve(count);
        let mut start = 0;
        for line in lines {
            let end = start + line.len();
            let range = start..end;
            start = end + 1;
            if line.is_empty() {
                continue;
            }
            let sensitive = line[0] == SENSITIVE;
            let line_start = range.start + usize::from(sensitive);
            let Some(colon) = self.headers[line_start..range.end]
                .iter()
                .position(|&byte| byte == b':')
            else {
                continue;
            };
            let name = HeaderName::from_bytes(&self.headers[line_start..line_start + colon]);
            // The value shares the packed buffer: no copy per header.
            let value = HeaderValue::from_maybe_shared(
                self.headers.slice(line_start + colon + 1..range.end),
            );
            match (name, value) {
                (Ok(name), Ok(mut value)) => {
                    value.set_sensitive(sensitive);
                    parts.headers.append(name, value);
                }
                // What the parser took once parses again; should it not,
                // the header is left out rather than failing hub code.
                _ => tracing::debug!("a kept request header could not be rebuilt; left out"),
            }
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderValue, Uri, header};

    use super::KeptRequest;

    /// A kept request must not hold on to the buffer it was parsed from, as
    /// hyper's header values and URI do (slices of its read buffer).
    #[test]
    fn a_kept_request_holds_none_of_the_buffer_it_was_parsed_from() {
        let buffer = Bytes::from(b"/hub?id=abc\0Bearer token".to_vec());
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.uri = Uri::from_maybe_shared(buffer.slice(0..11)).unwrap();
        let mut value = HeaderValue::from_maybe_shared(buffer.slice(12..)).unwrap();
        value.set_sensitive(true);
        parts.headers.insert(header::AUTHORIZATION, value);

        let kept = KeptRequest::new(parts);

        assert!(
            buffer.try_into_mut().is_ok(),
            "the kept request still shares the request's buffer"
        );
        let parts = kept.parts();
        assert_eq!(parts.uri, "/hub?id=abc");
        let authorization = &parts.headers[header::AUTHORIZATION];
        assert_eq!(authorization, "Bearer token");
        assert!(authorization.is_sensitive());
    }

    /// Every header comes back as it was: repeated names in order, empty
    /// values, values with colons and non-ASCII bytes, sensitivity; and the
    /// method, version and extensions with them.
    #[test]
    fn a_kept_request_gives_back_the_request_it_kept() {
        let mut request = http::Request::builder()
            .method("POST")
            .uri("http://example.test:8080/chat?id=x%20y&access_token=t")
            .version(http::Version::HTTP_11)
            .header(header::HOST, "example.test:8080")
            .header(header::COOKIE, "a=1")
            .header(header::COOKIE, "b=2")
            .header("x-empty", "")
            .header("x-colons", "a:b::c")
            .header(
                "x-latin1",
                HeaderValue::from_bytes(b"caf\xe9").expect("obs-text is a valid value"),
            )
            .body(())
            .unwrap();
        request.extensions_mut().insert(7_u32);
        let (parts, ()) = request.into_parts();
        let original = parts.headers.clone();

        let kept = KeptRequest::new(parts);

        assert_eq!(kept.extensions().get::<u32>(), Some(&7));
        let parts = kept.parts();
        assert_eq!(parts.method, http::Method::POST);
        assert_eq!(parts.version, http::Version::HTTP_11);
        assert_eq!(
            parts.uri,
            "http://example.test:8080/chat?id=x%20y&access_token=t"
        );
        assert_eq!(parts.headers, original);
        let cookies: Vec<_> = parts.headers.get_all(header::COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert!(!parts.headers[header::HOST].is_sensitive());
        assert_eq!(parts.extensions.get::<u32>(), Some(&7));
        assert!(std::ptr::eq(parts, kept.parts()), "built once");
    }
}
