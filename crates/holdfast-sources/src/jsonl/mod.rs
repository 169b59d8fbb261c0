//! Application event streams: a JSON Lines HTTP endpoint pulled into a
//! snapshot ([`backup`]), and replayed into an ingest endpoint in order,
//! in batches, resumably ([`replay`]). [`events`] validates the lines.
//!
//! The bearer token comes from `HOLDFAST_SOURCE_TOKEN` or a token file and
//! is sent only in the `Authorization` header; URLs in errors, logs and
//! snapshots are redacted.

pub mod backup;
pub mod events;
pub mod replay;

use std::time::Duration;

use holdfast_engine::{EngineError, Result};

use crate::secret::Secret;
use crate::source_url::{HttpAddress, SourceAddress};

/// The stored file of an event-stream snapshot.
pub const EVENTS_FILE: &str = "events.jsonl";

/// An HTTP endpoint with its credentials.
pub struct Endpoint {
    pub address: HttpAddress,
    pub token: Option<Secret>,
}

impl Endpoint {
    /// The URL as shown to people: password and token parameters masked.
    pub fn display(&self) -> String {
        SourceAddress::Jsonl(self.address.clone()).to_string()
    }

    /// A blocking client: connect within 15 s; `read_timeout` without a
    /// byte fails the transfer (a stalled stream is a failed backup).
    pub(crate) fn client(&self, read_timeout: Duration) -> Result<reqwest::blocking::Client> {
        let mut b = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            // In the blocking client this bounds each wait: for the response
            // headers, and for every read of the body — not the whole body.
            .timeout(read_timeout)
            .user_agent(concat!("holdfast/", env!("CARGO_PKG_VERSION")));
        if let Some(addr) = self.address.pinned {
            // a tenant's endpoint: to the checked address only, and a
            // redirect (which could point anywhere) is an error
            let (host, _) = self.address.host_port().ok_or_else(|| {
                EngineError::Invalid(format!("{}: not an HTTP URL", self.display()))
            })?;
            b = b
                .resolve(&host, addr)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy();
        }
        b.build().map_err(|e| {
            EngineError::source(format!("setting up the HTTP client: {}", e.without_url()))
        })
    }

    pub(crate) fn request(
        &self,
        client: &reqwest::blocking::Client,
        method: reqwest::Method,
    ) -> reqwest::blocking::RequestBuilder {
        let mut rb = client.request(method, &self.address.url);
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t.expose());
        }
        rb
    }

    /// An HTTP failure in words, never with the URL's secrets.
    pub(crate) fn describe(&self, e: reqwest::Error) -> String {
        let kind = if e.is_connect() {
            "cannot connect"
        } else if e.is_timeout() {
            "timed out"
        } else if e.is_body() || e.is_decode() {
            "the response body broke off"
        } else {
            "the request failed"
        };
        let e = e.without_url();
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            let text = s.to_string();
            if !msg.contains(&text) {
                msg.push_str(": ");
                msg.push_str(&text);
            }
            src = s.source();
        }
        let msg = msg.replace(&self.address.url, &self.display());
        format!("{}: {kind}: {msg}", self.display())
    }
}

/// Up to 500 bytes of an error response's body, for the error message.
/// For a tenant's endpoint (pinned) the body goes to the server's log
/// only: what another server answers never reaches a tenant verbatim.
pub(crate) fn body_excerpt(endpoint: &Endpoint, resp: reqwest::blocking::Response) -> String {
    use std::io::Read;
    let status = resp.status();
    let mut buf = Vec::new();
    let _ = resp.take(500).read_to_end(&mut buf);
    let s = String::from_utf8_lossy(&buf).trim().to_string();
    if endpoint.address.pinned.is_some() {
        if !s.is_empty() {
            eprintln!(
                "{} answered HTTP {status}; its body began: {}",
                endpoint.display(),
                s.escape_debug()
            );
        }
        return if status.is_redirection() {
            "; redirects are not followed".to_string()
        } else {
            String::new()
        };
    }
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}
