//! Sending one delivery: an HTTP request or an e-mail, to a destination
//! checked against the channel's egress rules first.
//!
//! A channel an operator defined may reach only what its tenant's policy
//! allows (`notification_hosts`; by default any public address, never a
//! loopback, private or link-local one): the host is resolved, every
//! address checked, and the connection made to the checked address (TLS
//! still verifies the name). An admin's channel is not restricted.
//! Redirects are not followed (one could lead anywhere). Errors name the
//! channel's redacted URL, never its path or secret.

use std::time::Duration;

use holdfast_confine::egress::{self, HostRule};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::message::{Outgoing, shown};

/// Where a delivery goes and what it may reach.
pub struct Destination<'a> {
    pub url: &'a str,
    pub secret: Option<&'a str>,
    /// E-mail: `from`, `to` (an array).
    pub settings: &'a serde_json::Value,
    /// `None`: unrestricted (an admin's channel).
    pub rules: Option<Vec<HostRule>>,
    pub timeout: Duration,
    /// Extra CA certificates (PEM) for SMTP servers.
    pub ca_pem: Option<&'a [u8]>,
}

/// Resolve and check `host:port` against `rules` (blocking DNS on a
/// blocking thread); the address to connect to.
async fn pin(
    rules: &Option<Vec<HostRule>>,
    host: &str,
    port: u16,
) -> Result<Option<std::net::SocketAddr>, String> {
    let Some(rules) = rules.clone() else {
        return Ok(None);
    };
    let host = host.to_string();
    tokio::task::spawn_blocking(move || egress::resolve_checked(&rules, &host, port))
        .await
        .map_err(|e| e.to_string())?
        .map(|p| Some(p.addr))
        .map_err(|r| format!("refused: {r}"))
}

/// Send `out` to `d`.
pub async fn send(d: &Destination<'_>, out: Outgoing) -> Result<(), String> {
    match out {
        Outgoing::Http { url, headers, body } => http(d, &url, headers, body).await,
        Outgoing::Mail { subject, text } => mail(d, subject, text).await,
    }
}

async fn http(
    d: &Destination<'_>,
    url: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Result<(), String> {
    let shown_url = shown(url);
    let parsed = reqwest::Url::parse(url).map_err(|_| format!("{shown_url} is not a URL"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{shown_url} names no host"))?
        .to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(d.timeout)
        .connect_timeout(d.timeout);
    if let Some(addr) = pin(&d.rules, &host, port).await? {
        client = client.resolve(host.trim_matches(['[', ']']), addr);
    }
    let client = client.build().map_err(|e| e.without_url().to_string())?;
    let mut req = client.post(parsed).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot reach {shown_url}: {}", e.without_url()))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{shown_url} answered {status}"))
    }
}

async fn mail(d: &Destination<'_>, subject: String, text: String) -> Result<(), String> {
    let shown_url = shown(d.url);
    let parsed = reqwest::Url::parse(d.url).map_err(|_| format!("{shown_url} is not a URL"))?;
    let implicit_tls = match parsed.scheme() {
        "smtps" => true,
        "smtp" => false,
        other => {
            return Err(format!(
                "{other}: an e-mail channel's URL is smtp:// or smtps://"
            ));
        }
    };
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{shown_url} names no host"))?
        .trim_matches(['[', ']'])
        .to_string();
    let port = parsed
        .port()
        .unwrap_or(if implicit_tls { 465 } else { 587 });
    let connect = match pin(&d.rules, &host, port).await? {
        Some(addr) => addr.ip().to_string(),
        None => host.clone(),
    };
    let mut tls = TlsParameters::builder(host.clone());
    if let Some(pem) = d.ca_pem {
        let cert = Certificate::from_pem(pem).map_err(|e| format!("the CA file: {e}"))?;
        tls = tls.add_root_certificate(cert);
    }
    let tls = tls
        .build_rustls()
        .map_err(|e| format!("TLS for {shown_url}: {e}"))?;
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(connect)
        .port(port)
        .timeout(Some(d.timeout))
        .tls(if implicit_tls {
            Tls::Wrapper(tls)
        } else {
            // STARTTLS, or no mail at all: never in the clear
            Tls::Required(tls)
        });
    if let Some(password) = d.secret {
        let user = urlencoding_decode(parsed.username());
        transport = transport.credentials(Credentials::new(user, password.to_string()));
    }
    let from = d.settings["from"]
        .as_str()
        .unwrap_or("holdfast@localhost")
        .parse()
        .map_err(|e| format!("from: {e}"))?;
    let mut message = Message::builder().from(from).subject(subject);
    for to in d.settings["to"].as_array().into_iter().flatten() {
        let to = to
            .as_str()
            .unwrap_or("")
            .parse()
            .map_err(|e| format!("to: {e}"))?;
        message = message.to(to);
    }
    let message = message
        .header(ContentType::TEXT_PLAIN)
        .body(text)
        .map_err(|e| format!("the message: {e}"))?;
    transport
        .build()
        .send(message)
        .await
        .map(drop)
        .map_err(|e| format!("sending to {shown_url}: {e}"))
}

/// A URL's user name with `%XX` escapes decoded.
fn urlencoding_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%' && i + 3 <= b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
