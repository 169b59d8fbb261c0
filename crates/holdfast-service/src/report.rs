//! The evidence report: what an operator hands an auditor or a customer.
//! For one tenant and a period — per source the backup success rate, the
//! longest gap between successful backups (the achieved RPO), the last and
//! the slowest drill (the measured RTO) and the retention applied; the
//! repository's verifications; the audit chain's head when the report was
//! made — signed with the server's Ed25519 key, so that a later edit is
//! detectable ([`verify`], `holdfast report verify FILE`).
//!
//! The signature covers the canonical form of the report: its JSON value
//! with keys in sorted order and no whitespace (what `serde_json` writes for
//! a `Value`). The HTML form embeds the signed JSON and is rendered from it
//! alone, so verifying an HTML file re-renders it and compares every byte.
//! [`source_evidence`] and [`verification_evidence`] are pure over catalog
//! rows; [`build`] reads them.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use holdfast_catalog::audit::AuditFilter;
use holdfast_catalog::backups::Backup;
use holdfast_catalog::restores::Restore;
use holdfast_catalog::sources::Source;
use holdfast_catalog::verifications::Verification;
use holdfast_catalog::{Catalog, CatalogError, ServerKey, clock};
use jiff::Timestamp;
use maud::{DOCTYPE, PreEscaped, html};
use serde::{Deserialize, Serialize};

pub const TITLE: &str = "holdfast evidence report";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// One source's evidence over the period.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceEvidence {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub schedule: Option<String>,
    pub backups_succeeded: u64,
    pub backups_failed: u64,
    /// Succeeded / finished, when any finished.
    pub success_rate: Option<f64>,
    /// The longest time in the period without a successful backup before
    /// it: between two successes, from the period's start (or the source's
    /// creation) to the first, from the last to the period's end. The RPO
    /// the period achieved.
    pub longest_gap_seconds: Option<i64>,
    pub last_success_at: Option<String>,
    pub drills_succeeded: u64,
    pub drills_failed: u64,
    /// The measured restore time of the newest and of the slowest
    /// successful drill (restore and verification).
    pub last_drill_seconds: Option<f64>,
    pub slowest_drill_seconds: Option<f64>,
    pub last_drill_at: Option<String>,
    /// Retention sweeps that looked at the source, and what they deleted.
    pub retention_sweeps: u64,
    pub retention_deleted: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerificationEvidence {
    pub succeeded: u64,
    pub failed: u64,
    pub last_success_at: Option<String>,
    /// Packs whose data was read, over all verifications of the period.
    pub packs_read: u64,
    /// Live backups marked damaged when the report was made.
    pub damaged_backups: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub report: String,
    pub version: u32,
    pub tenant: Named,
    pub from: String,
    pub to: String,
    pub generated_at: String,
    pub sources: Vec<SourceEvidence>,
    pub verification: VerificationEvidence,
    /// The audit chain's newest row when the report was made.
    pub audit_head: Option<AuditHead>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Signature {
    pub algorithm: String,
    /// The server's public key (hex).
    pub public_key: String,
    /// Over the report's canonical JSON (hex).
    pub value: String,
}

fn secs(a: &str, b: &str) -> Option<i64> {
    Some(clock::parse(b)?.as_second() - clock::parse(a)?.as_second())
}

/// The evidence of one source from its rows in the period.
pub fn source_evidence(
    src: &Source,
    backups: &[&Backup],
    drills: &[&Restore],
    sweeps: &[serde_json::Value],
    (from, to): (&str, &str),
) -> SourceEvidence {
    // a success is a run that produced a snapshot (retention may have
    // deleted it since)
    let successes: Vec<&str> = backups
        .iter()
        .filter(|b| b.snapshot_id.is_some() && b.status != "failed")
        .filter_map(|b| b.finished_at.as_deref())
        .collect();
    let failed = backups.iter().filter(|b| b.status == "failed").count() as u64;
    let finished = successes.len() as u64 + failed;
    let start = if src.created_at.as_str() > from {
        src.created_at.as_str()
    } else {
        from
    };
    let mut points = vec![start];
    points.extend(&successes);
    points.push(to);
    let longest_gap_seconds = points.windows(2).filter_map(|w| secs(w[0], w[1])).max();
    let done: Vec<&&Restore> = drills.iter().filter(|d| d.status == "done").collect();
    let seconds = |d: &Restore| {
        d.verification
            .as_ref()
            .and_then(|v| v["duration_seconds"].as_f64())
    };
    SourceEvidence {
        id: src.id.clone(),
        name: src.name.clone(),
        kind: src.kind.clone(),
        schedule: src.schedule.clone(),
        backups_succeeded: successes.len() as u64,
        backups_failed: failed,
        success_rate: (finished > 0).then(|| successes.len() as f64 / finished as f64),
        longest_gap_seconds,
        last_success_at: successes.last().map(|s| s.to_string()),
        drills_succeeded: done.len() as u64,
        drills_failed: drills.iter().filter(|d| d.status == "failed").count() as u64,
        last_drill_seconds: done.last().and_then(|d| seconds(d)),
        slowest_drill_seconds: done
            .iter()
            .filter_map(|d| seconds(d))
            .max_by(|a, b| a.total_cmp(b)),
        last_drill_at: done.last().and_then(|d| d.finished_at.clone()),
        retention_sweeps: sweeps.len() as u64,
        retention_deleted: sweeps
            .iter()
            .map(|m| m["deleted"].as_array().map_or(0, Vec::len) as u64)
            .sum(),
    }
}

/// What the repository's verifications of the period showed.
pub fn verification_evidence(runs: &[Verification], damaged: i64) -> VerificationEvidence {
    VerificationEvidence {
        succeeded: runs.iter().filter(|v| v.status == "done").count() as u64,
        failed: runs.iter().filter(|v| v.status == "failed").count() as u64,
        last_success_at: runs
            .iter()
            .filter(|v| v.status == "done")
            .filter_map(|v| v.finished_at.clone())
            .next_back(),
        packs_read: runs
            .iter()
            .filter_map(|v| v.summary.as_ref()?["packs_read"].as_u64())
            .sum(),
        damaged_backups: damaged,
    }
}

/// Read what the report says of `tenant` between `from` and `to`.
pub async fn build(
    c: &Catalog,
    tenant: &holdfast_catalog::tenants::Tenant,
    from: Timestamp,
    to: Timestamp,
) -> Result<Report, CatalogError> {
    let until = clock::format(
        to.checked_add(jiff::SignedDuration::from_millis(1))
            .unwrap_or(to),
    );
    let (from, to) = (clock::format(from), clock::format(to));
    let backups: Vec<Backup> = c.finished_between(&tenant.id, &from, &to).await?;
    let drills: Vec<Restore> = c
        .finished_between::<Restore>(&tenant.id, &from, &to)
        .await?
        .into_iter()
        .filter(|r| r.drill)
        .collect();
    let sweeps: Vec<(String, serde_json::Value)> = c
        .audit_after(
            &AuditFilter {
                tenant_id: Some(tenant.id.clone()),
                event: Some("retention_applied".into()),
                since: Some(from.clone()),
                // `until` is exclusive; the period includes `to`
                until: Some(until),
                ..Default::default()
            },
            0,
            1_000_000,
        )
        .await?
        .into_iter()
        .map(|r| {
            let v = r.view();
            (v.subject.unwrap_or_default(), v.metadata)
        })
        .collect();
    let sources = c
        .sources(&tenant.id)
        .await?
        .iter()
        .map(|src| {
            let b: Vec<&Backup> = backups.iter().filter(|b| b.source_id == src.id).collect();
            let d: Vec<&Restore> = drills
                .iter()
                .filter(|d| d.source_id.as_deref() == Some(src.id.as_str()))
                .collect();
            let s: Vec<serde_json::Value> = sweeps
                .iter()
                .filter(|(id, _)| *id == src.id)
                .map(|(_, m)| m.clone())
                .collect();
            source_evidence(src, &b, &d, &s, (&from, &to))
        })
        .collect();
    let verification = verification_evidence(
        &c.finished_between::<Verification>(&tenant.id, &from, &to)
            .await?,
        c.damaged_backups(&tenant.id).await?,
    );
    Ok(Report {
        report: TITLE.into(),
        version: 1,
        tenant: Named {
            id: tenant.id.clone(),
            name: tenant.name.clone(),
        },
        from,
        to,
        generated_at: clock::now(),
        sources,
        verification,
        audit_head: c.audit_head().await?.map(|h| AuditHead {
            seq: h.seq,
            hash: h.hash,
        }),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn key_pair(key: &ServerKey) -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&key.report_seed()).expect("32 bytes are a seed")
}

/// The server's public key for reports (hex): what an auditor compares.
pub fn public_key(key: &ServerKey) -> String {
    hex(key_pair(key).public_key().as_ref())
}

/// The report with its `signature` (a JSON object).
pub fn sign(key: &ServerKey, report: &Report) -> serde_json::Value {
    let mut doc = serde_json::to_value(report).expect("a report is JSON");
    let canonical = doc.to_string();
    let pair = key_pair(key);
    doc["signature"] = serde_json::to_value(Signature {
        algorithm: "ed25519".into(),
        public_key: hex(pair.public_key().as_ref()),
        value: hex(pair.sign(canonical.as_bytes()).as_ref()),
    })
    .expect("JSON");
    doc
}

/// Why a report does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    #[error("not a holdfast evidence report ({0})")]
    Form(String),
    #[error("signed with another key ({found}), not this server's ({expected})")]
    OtherKey { found: String, expected: String },
    #[error("the signature does not match the content: the report was changed after it was signed")]
    Changed,
    #[error("the page around the signed report was changed after it was made")]
    PageChanged,
}

/// Check a report (its JSON or its HTML page) against `public_key` (hex);
/// the report as signed.
pub fn verify(file: &str, public_key: &str) -> Result<Report, Unverified> {
    let trimmed = file.trim_start();
    let (json, page) = if trimmed.starts_with('{') {
        (file.to_string(), false)
    } else {
        let start = file
            .find(EMBED_START)
            .ok_or_else(|| Unverified::Form("no embedded report".into()))?
            + EMBED_START.len();
        let end = file[start..]
            .find(EMBED_END)
            .ok_or_else(|| Unverified::Form("the embedded report does not end".into()))?;
        (file[start..start + end].to_string(), true)
    };
    let mut doc: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| Unverified::Form(e.to_string()))?;
    let sig: Signature = doc
        .as_object_mut()
        .and_then(|o| o.remove("signature"))
        .and_then(|s| serde_json::from_value(s).ok())
        .ok_or_else(|| Unverified::Form("no signature".into()))?;
    if sig.algorithm != "ed25519" {
        return Err(Unverified::Form(format!("algorithm {:?}", sig.algorithm)));
    }
    if sig.public_key != public_key {
        return Err(Unverified::OtherKey {
            found: sig.public_key,
            expected: public_key.to_string(),
        });
    }
    let key = unhex(public_key).ok_or_else(|| Unverified::Form("public key".into()))?;
    let value = unhex(&sig.value).ok_or_else(|| Unverified::Form("signature".into()))?;
    UnparsedPublicKey::new(&ED25519, key)
        .verify(doc.to_string().as_bytes(), &value)
        .map_err(|_| Unverified::Changed)?;
    let report: Report =
        serde_json::from_value(doc.clone()).map_err(|e| Unverified::Form(e.to_string()))?;
    if page {
        let mut signed = doc;
        signed["signature"] = serde_json::to_value(&sig).expect("JSON");
        if html_page(&report, &signed) != file {
            return Err(Unverified::PageChanged);
        }
    }
    Ok(report)
}

const EMBED_START: &str = "<script type=\"application/json\" id=\"holdfast-report\">";
const EMBED_END: &str = "</script>";

fn rate(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{:.1} %", r * 100.0))
}

fn duration(s: Option<f64>) -> String {
    match s {
        None => "–".into(),
        Some(s) if s < 10.0 => format!("{s:.2} s"),
        Some(s) if s < 120.0 => format!("{s:.1} s"),
        Some(s) if s < 7200.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

/// The printable page: the report as tables, the signed JSON embedded
/// (`<` escaped inside it, so no text can end the script element).
pub fn html_page(r: &Report, signed: &serde_json::Value) -> String {
    let embedded = signed.to_string().replace('<', "\\u003c");
    let sig = &signed["signature"];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (TITLE) ": " (r.tenant.name) }
                style { (PreEscaped("body{font-family:sans-serif;margin:2em;color:#111}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #999;padding:.3em .6em;text-align:left}td.n{text-align:right}code{font-size:.85em;word-break:break-all}@media print{body{margin:0}}")) }
            }
            body {
                h1 { "Backup evidence: " (r.tenant.name) }
                p { "Period " (r.from) " to " (r.to) ", made " (r.generated_at) ". Tenant id " code { (r.tenant.id) } "." }
                h2 { "Sources" }
                table {
                    thead { tr {
                        th { "Source" } th { "Kind" } th { "Schedule" } th { "Backups ok / failed" } th { "Success rate" }
                        th { "Longest gap (achieved RPO)" } th { "Last success" } th { "Drills ok / failed" }
                        th { "Last drill (RTO)" } th { "Slowest drill" } th { "Retention: sweeps / deleted" }
                    } }
                    tbody {
                        @for s in &r.sources {
                            tr {
                                td { (s.name) } td { (s.kind) } td { (s.schedule.as_deref().unwrap_or("on demand")) }
                                td.n { (s.backups_succeeded) " / " (s.backups_failed) }
                                td.n { (rate(s.success_rate)) }
                                td.n { (duration(s.longest_gap_seconds.map(|g| g as f64))) }
                                td { (s.last_success_at.as_deref().unwrap_or("–")) }
                                td.n { (s.drills_succeeded) " / " (s.drills_failed) }
                                td.n { (duration(s.last_drill_seconds)) }
                                td.n { (duration(s.slowest_drill_seconds)) }
                                td.n { (s.retention_sweeps) " / " (s.retention_deleted) }
                            }
                        }
                    }
                }
                h2 { "Repository verification" }
                p {
                    (r.verification.succeeded) " passed, " (r.verification.failed) " failed, "
                    (r.verification.packs_read) " packs read and re-hashed; last pass "
                    (r.verification.last_success_at.as_deref().unwrap_or("–")) "; "
                    (r.verification.damaged_backups) " backups marked damaged."
                }
                h2 { "Audit chain" }
                @match &r.audit_head {
                    Some(h) => { p { "Head at row " (h.seq) ": " code { (h.hash) } } }
                    None => { p { "The audit log was empty." } }
                }
                h2 { "Signature" }
                p {
                    "Ed25519 over the embedded JSON (keys sorted, no whitespace, without the signature). Public key "
                    code { (sig["public_key"].as_str().unwrap_or("")) }
                    ". Check it with " code { "holdfast report verify FILE" } "."
                }
                (PreEscaped(format!("{EMBED_START}{embedded}{EMBED_END}")))
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        crate::health::test_source(
            Some("0 3 * * *"),
            serde_json::json!({}),
            "2026-11-01T00:00:00.000Z",
        )
    }

    fn report() -> Report {
        Report {
            report: TITLE.into(),
            version: 1,
            tenant: Named {
                id: "t".into(),
                name: "acme </script><b>".into(),
            },
            from: "2026-12-01T00:00:00.000Z".into(),
            to: "2026-12-05T00:00:00.000Z".into(),
            generated_at: "2026-12-05T00:00:01.000Z".into(),
            sources: Vec::new(),
            verification: verification_evidence(&[], 0),
            audit_head: Some(AuditHead {
                seq: 9,
                hash: "ab".into(),
            }),
        }
    }

    #[test]
    fn the_longest_gap_counts_from_the_period_start_to_its_end() {
        let b = |finished: &str, status: &str| Backup {
            id: format!("b-{finished}"),
            tenant_id: "t".into(),
            source_id: "s1".into(),
            source_name: "site".into(),
            kind: "scheduled".into(),
            status: status.into(),
            requested_by: None,
            requested_by_label: "system".into(),
            snapshot_id: (status != "failed").then(|| "snap".into()),
            repository: "/r".into(),
            size: None,
            bytes_added: None,
            counts: None,
            warnings: Vec::new(),
            error: None,
            error_kind: None,
            attempts: 1,
            max_attempts: 3,
            run_after: finished.into(),
            lease_owner: None,
            lease_until: None,
            queued_at: finished.into(),
            started_at: None,
            finished_at: Some(finished.into()),
            deleted_at: None,
            progress: None,
            damaged_at: None,
            damage: None,
        };
        let runs = [
            b("2026-12-01T03:00:00.000Z", "done"),
            b("2026-12-02T03:00:00.000Z", "failed"),
            b("2026-12-03T03:00:00.000Z", "deleted"),
        ];
        let refs: Vec<&Backup> = runs.iter().collect();
        let e = source_evidence(
            &source(),
            &refs,
            &[],
            &[serde_json::json!({"deleted": ["x", "y"]})],
            ("2026-12-01T00:00:00.000Z", "2026-12-05T00:00:00.000Z"),
        );
        assert_eq!((e.backups_succeeded, e.backups_failed), (2, 1));
        assert!((e.success_rate.unwrap() - 2.0 / 3.0).abs() < 1e-9);
        // the failed run on the 2nd does not count: 1 Dec 03:00 → 3 Dec
        // 03:00 is the longest (the end's 45 h and the start's 3 h are
        // shorter)
        assert_eq!(e.longest_gap_seconds, Some(48 * 3600));
        assert_eq!(
            e.last_success_at.as_deref(),
            Some("2026-12-03T03:00:00.000Z")
        );
        assert_eq!((e.retention_sweeps, e.retention_deleted), (1, 2));
    }

    #[test]
    fn a_signed_report_verifies_and_any_edit_is_found() {
        let key = ServerKey::random();
        let pk = public_key(&key);
        let signed = sign(&key, &report());
        let json = serde_json::to_string_pretty(&signed).unwrap();
        assert_eq!(verify(&json, &pk).unwrap(), report());
        // an edited number, an added field
        let edited = json.replace("\"seq\": 9", "\"seq\": 10");
        assert_eq!(verify(&edited, &pk), Err(Unverified::Changed));
        let mut added = signed.clone();
        added["note"] = "all fine".into();
        assert_eq!(verify(&added.to_string(), &pk), Err(Unverified::Changed));
        // another server's key
        assert!(matches!(
            verify(&json, &public_key(&ServerKey::random())),
            Err(Unverified::OtherKey { .. })
        ));
        // the page: verifies as made; an edit outside the JSON is found too
        let page = html_page(&report(), &signed);
        assert!(
            !page.contains("</script><b>"),
            "the name cannot end the script"
        );
        assert_eq!(verify(&page, &pk).unwrap(), report());
        let reworded = page.replacen("passed", "passed (all)", 1);
        assert_eq!(verify(&reworded, &pk), Err(Unverified::PageChanged));
    }
}
