//! What is told, pure: which audit events become notices ([`Notice`], the
//! generic webhook's documented JSON body), which channel wants which
//! notice, and what each kind of channel is sent ([`outgoing`]).
//!
//! Notices (`event`): `backup_failed` (after its last attempt),
//! `backup_overdue`, `backup_recovered` (the first success after a failed
//! run), `drill_failed`, `drill_overdue`, `drill_recovered`,
//! `verification_failed`, `retention_summary` (what a retention sweep
//! deleted, one per tenant and sweep), `test`. A healthchecks channel
//! instead gets its source's `backup_started`, `backup_succeeded` and
//! `backup_failed` as pings.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The notices a channel may subscribe to (its `events`; empty: all).
pub const EVENTS: &[&str] = &[
    "backup_failed",
    "backup_overdue",
    "backup_recovered",
    "drill_failed",
    "drill_overdue",
    "drill_recovered",
    "verification_failed",
    "retention_summary",
];

/// The kinds of channel.
pub const KINDS: &[&str] = &[
    "webhook",
    "slack",
    "discord",
    "ntfy",
    "gotify",
    "email",
    "healthchecks",
];

/// A name and id (a tenant's, a source's).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// One thing to tell: the body a generic webhook receives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Notice {
    /// See the module comment.
    pub event: String,
    /// `error`, `warning` or `info`.
    pub severity: String,
    pub tenant: Option<Named>,
    pub source: Option<Named>,
    /// The run, drill or verification it is about.
    pub subject: Option<String>,
    /// When it happened (the audit row's time).
    pub time: String,
    /// One line, for a title or a subject.
    pub title: String,
    /// A few sentences, for people.
    pub text: String,
    /// The audit row's metadata (error, attempts, missed slot, …).
    pub details: serde_json::Value,
    /// The audit row it came from (0 for a test).
    pub audit_seq: i64,
}

impl Notice {
    /// The notice of `event` about `source` of `tenant`, with its severity
    /// and words; `subject`, `time` and `audit_seq` say where it came from.
    pub fn new(
        event: &str,
        tenant: Option<Named>,
        source: Option<Named>,
        (subject, time, audit_seq): (Option<String>, String, i64),
        details: serde_json::Value,
    ) -> Notice {
        let (title, text) = words(
            event,
            tenant.as_ref().map_or("every tenant", |t| t.name.as_str()),
            source.as_ref().map(|s| s.name.as_str()),
            &details,
        );
        Notice {
            event: event.to_string(),
            severity: severity(event).to_string(),
            tenant,
            source,
            subject,
            time,
            title,
            text,
            details,
            audit_seq,
        }
    }
}

/// The event's severity.
pub fn severity(event: &str) -> &'static str {
    match event {
        "backup_failed" | "drill_failed" | "verification_failed" => "error",
        "backup_overdue" | "drill_overdue" => "warning",
        _ => "info",
    }
}

/// Title and text of a notice, in English.
pub fn words(
    event: &str,
    tenant: &str,
    source: Option<&str>,
    details: &serde_json::Value,
) -> (String, String) {
    let src = source.unwrap_or("?");
    let s = |k: &str| details[k].as_str().unwrap_or("").to_string();
    let (head, what) = if event.starts_with("drill") {
        ("Restore drill", "restore drill")
    } else {
        ("Backup", "backup")
    };
    match event {
        "backup_failed" => (
            format!("Backup of {src} failed"),
            format!(
                "The backup of {src} ({tenant}) failed after {} attempt(s): {}",
                details["attempt"].as_i64().unwrap_or(1),
                s("error")
            ),
        ),
        "backup_overdue" | "drill_overdue" => (
            format!("{head} of {src} is overdue"),
            format!(
                "{src} ({tenant}) has had no successful {what} since the one due at {} \
                 (last success: {}).",
                s("missed_slot"),
                details["last_success_at"].as_str().unwrap_or("never")
            ),
        ),
        "backup_recovered" | "drill_recovered" => (
            format!("{head} of {src} recovered"),
            format!("The {what} of {src} ({tenant}) succeeded again after a failure."),
        ),
        "drill_failed" => (
            format!("{head} of {src} failed"),
            format!("The {what} of {src} ({tenant}) failed: {}", s("error")),
        ),
        "verification_failed" => (
            format!("Verification of {tenant}'s repository failed"),
            format!(
                "The verification of {tenant}'s repository failed: {}{}",
                s("error"),
                match details["damaged_backups"].as_array().map(Vec::len) {
                    Some(n) if n > 0 => format!(" ({n} backup(s) marked damaged)"),
                    _ => String::new(),
                }
            ),
        ),
        "retention_summary" => (
            format!("Retention for {tenant}"),
            format!(
                "The retention sweep deleted {} backup(s) of {tenant} ({} failed to delete).",
                details["deleted"].as_u64().unwrap_or(0),
                details["failed"].as_u64().unwrap_or(0)
            ),
        ),
        "backup_started" => (
            format!("Backup of {src} started"),
            format!("The backup of {src} ({tenant}) started."),
        ),
        "backup_succeeded" => (
            format!("Backup of {src} succeeded"),
            format!("The backup of {src} ({tenant}) succeeded."),
        ),
        _ => (
            "holdfast test notification".to_string(),
            format!("A test message for {tenant}: this channel works."),
        ),
    }
}

/// Whether a channel of `kind` subscribed to `events` (for a healthchecks
/// channel: pinging `source_id`) wants `n`.
pub fn wants(kind: &str, events: &[String], source_id: Option<&str>, n: &Notice) -> bool {
    if n.event == "test" {
        return true;
    }
    if kind == "healthchecks" {
        return matches!(
            n.event.as_str(),
            "backup_started" | "backup_succeeded" | "backup_failed"
        ) && n.source.as_ref().map(|s| s.id.as_str()) == source_id
            && source_id.is_some();
    }
    EVENTS.contains(&n.event.as_str()) && (events.is_empty() || events.contains(&n.event))
}

/// What to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Http {
        url: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Mail {
        subject: String,
        text: String,
    },
}

/// The generic webhook's signature header: `t=UNIX,v1=HEX`, where HEX is
/// HMAC-SHA256 under the channel's secret of `UNIX.BODY` (the body's exact
/// bytes), so a receiver can check both the body and its age.
pub fn signature(secret: &str, unix: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={unix},v1={hex}")
}

/// The request (or mail) a channel of `kind` at `url` sends for `n`.
/// `delivery` names this delivery (the webhook's `X-Holdfast-Delivery`);
/// `unix` is now.
pub fn outgoing(
    kind: &str,
    url: &str,
    secret: Option<&str>,
    n: &Notice,
    delivery: &str,
    unix: i64,
) -> Outgoing {
    let json = |v: serde_json::Value| v.to_string().into_bytes();
    let line = format!("{}\n{}", n.title, n.text);
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    let body = match kind {
        "email" => {
            return Outgoing::Mail {
                subject: format!("[holdfast] {}", n.title),
                text: format!(
                    "{}\n\nEvent: {}\nTime: {}\n{}",
                    n.text,
                    n.event,
                    n.time,
                    n.subject
                        .as_deref()
                        .map(|s| format!("About: {s}\n"))
                        .unwrap_or_default()
                ),
            };
        }
        "slack" => json(serde_json::json!({ "text": format!("*{}*\n{}", n.title, n.text) })),
        "discord" => json(serde_json::json!({ "content": format!("**{}**\n{}", n.title, n.text) })),
        "ntfy" => {
            headers = vec![
                ("Title".into(), n.title.clone()),
                (
                    "Priority".into(),
                    if n.severity == "info" {
                        "default"
                    } else {
                        "high"
                    }
                    .into(),
                ),
                (
                    "Tags".into(),
                    match n.severity.as_str() {
                        "error" => "rotating_light",
                        "warning" => "warning",
                        _ => "white_check_mark",
                    }
                    .into(),
                ),
            ];
            if let Some(token) = secret {
                headers.push(("Authorization".into(), format!("Bearer {token}")));
            }
            n.text.clone().into_bytes()
        }
        "gotify" => {
            if let Some(token) = secret {
                headers.push(("X-Gotify-Key".into(), token.to_string()));
            }
            json(serde_json::json!({
                "title": n.title,
                "message": n.text,
                "priority": match n.severity.as_str() { "error" => 8, "warning" => 5, _ => 2 },
            }))
        }
        "healthchecks" => {
            let url = match n.event.as_str() {
                "backup_started" => format!("{}/start", url.trim_end_matches('/')),
                "backup_failed" => format!("{}/fail", url.trim_end_matches('/')),
                _ => url.to_string(),
            };
            return Outgoing::Http {
                url,
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body: line.into_bytes(),
            };
        }
        // the generic webhook
        _ => {
            let body = json(serde_json::to_value(n).unwrap_or_default());
            headers.push(("X-Holdfast-Event".into(), n.event.clone()));
            headers.push(("X-Holdfast-Delivery".into(), delivery.to_string()));
            if let Some(key) = secret {
                headers.push(("X-Holdfast-Signature".into(), signature(key, unix, &body)));
            }
            body
        }
    };
    Outgoing::Http {
        url: url.to_string(),
        headers,
        body,
    }
}

/// A channel URL as the API shows it: scheme, user (for mail), host and
/// port; a path, query or password is left out (`…`), since a webhook's
/// path is often its token.
pub fn shown(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "…".into();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let (user, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (userinfo.split(':').next().map(|u| format!("{u}@")), host),
        None => (None, authority),
    };
    let more = rest[end..].trim_start_matches('/');
    format!(
        "{scheme}://{}{host}{}",
        user.unwrap_or_default(),
        if more.is_empty() { "" } else { "/…" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(event: &str) -> Notice {
        Notice::new(
            event,
            Some(Named {
                id: "t1".into(),
                name: "acme".into(),
            }),
            Some(Named {
                id: "s1".into(),
                name: "site".into(),
            }),
            (Some("b1".into()), "2026-12-06T10:00:00.000Z".into(), 7),
            serde_json::json!({"error": "disk full", "attempt": 3}),
        )
    }

    #[test]
    fn the_webhook_body_is_the_notice_and_its_signature_verifies() {
        let n = notice("backup_failed");
        let Outgoing::Http { url, headers, body } = outgoing(
            "webhook",
            "https://h.example/hook",
            Some("k3y"),
            &n,
            "d1",
            1_765_000_000,
        ) else {
            panic!("not http")
        };
        assert_eq!(url, "https://h.example/hook");
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["event"], "backup_failed");
        assert_eq!(parsed["severity"], "error");
        assert_eq!(parsed["source"]["name"], "site");
        assert!(
            parsed["text"]
                .as_str()
                .unwrap()
                .contains("after 3 attempt(s): disk full")
        );
        let sig = headers
            .iter()
            .find(|(k, _)| k == "X-Holdfast-Signature")
            .unwrap();
        assert_eq!(sig.1, signature("k3y", 1_765_000_000, &body));
        // the construction, against Python's hmac module (an independent
        // implementation): HMAC-SHA256(key, "t.body")
        assert_eq!(
            signature("k3y", 1_765_000_000, br#"{"a":1}"#),
            "t=1765000000,v1=647586b832cbac0f18bb36f8f229342e999d768943cf599b39ecea15b5c5785b"
        );
        // without a secret: no signature
        let Outgoing::Http { headers, .. } = outgoing("webhook", "https://h/", None, &n, "d1", 1)
        else {
            panic!()
        };
        assert!(!headers.iter().any(|(k, _)| k == "X-Holdfast-Signature"));
    }

    #[test]
    fn each_kind_gets_its_own_shape() {
        let n = notice("backup_failed");
        let body = |kind: &str| match outgoing(kind, "https://x/y", Some("tok"), &n, "d", 1) {
            Outgoing::Http { body, headers, url } => {
                (String::from_utf8(body).unwrap(), headers, url)
            }
            Outgoing::Mail { .. } => panic!(),
        };
        let (slack, _, _) = body("slack");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&slack).unwrap(),
            serde_json::json!({"text": format!("*Backup of site failed*\n{}", n.text)})
        );
        let (discord, _, _) = body("discord");
        assert!(discord.starts_with("{\"content\":\"**Backup of site failed**"));
        let (ntfy, headers, _) = body("ntfy");
        assert_eq!(ntfy, n.text);
        assert!(headers.contains(&("Priority".into(), "high".into())));
        assert!(headers.contains(&("Authorization".into(), "Bearer tok".into())));
        let (gotify, headers, _) = body("gotify");
        assert!(gotify.contains("\"priority\":8"));
        assert!(headers.contains(&("X-Gotify-Key".into(), "tok".into())));
        let (_, _, url) = body("healthchecks");
        assert_eq!(url, "https://x/y/fail");
        match outgoing("email", "smtp://h", None, &n, "d", 1) {
            Outgoing::Mail { subject, text } => {
                assert_eq!(subject, "[holdfast] Backup of site failed");
                assert!(text.contains("disk full") && text.contains("About: b1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn channels_get_what_they_asked_for_and_healthchecks_their_source() {
        let failed = notice("backup_failed");
        assert!(wants("webhook", &[], None, &failed));
        assert!(wants("slack", &["backup_failed".into()], None, &failed));
        assert!(!wants("slack", &["drill_failed".into()], None, &failed));
        // successes and starts are pings only
        assert!(!wants("webhook", &[], None, &notice("backup_succeeded")));
        assert!(wants(
            "healthchecks",
            &[],
            Some("s1"),
            &notice("backup_succeeded")
        ));
        assert!(wants("healthchecks", &[], Some("s1"), &failed));
        assert!(!wants("healthchecks", &[], Some("s2"), &failed));
        assert!(!wants("healthchecks", &[], None, &failed));
        assert!(!wants(
            "healthchecks",
            &[],
            Some("s1"),
            &notice("drill_failed")
        ));
    }

    #[test]
    fn urls_are_shown_without_what_may_be_secret() {
        assert_eq!(
            shown("https://hooks.slack.com/services/T0/B0/XYZ"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(shown("https://ntfy.sh/"), "https://ntfy.sh");
        assert_eq!(
            shown("https://u:pw@h.example:8443/x?token=1"),
            "https://u@h.example:8443/…"
        );
        assert_eq!(
            shown("smtp://mailer:hunter2@mail.example:587"),
            "smtp://mailer@mail.example:587"
        );
        assert_eq!(shown("gotify.example/message?token=abc"), "…");
        assert!(!shown("https://h/?token=abc").contains("abc"));
    }
}
