//! The audit chain, as pure logic: each row's `hash` is an HMAC-SHA-256,
//! under a key derived from the server key, over the previous row's hash
//! and this row's content. Editing a row breaks its own hash; deleting or
//! inserting one breaks the link of the row after it (or the sequence);
//! and without the server key nobody can forge a consistent replacement.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::Actor;

/// One audit event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub time: String,
    pub actor: Actor,
    pub tenant_id: Option<String>,
    pub event: String,
    pub subject: Option<String>,
    /// The metadata JSON exactly as stored (the chain hashes this text).
    pub metadata_text: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of `row` given the hash before it. The content is encoded as
/// a JSON array, so no two different rows encode alike.
pub fn row_hash(key: &[u8; 32], prev_hash: &str, row: &AuditRow) -> String {
    let content = serde_json::json!([
        row.seq,
        row.time,
        row.actor.token_id,
        row.actor.label,
        row.tenant_id,
        row.event,
        row.subject,
        row.metadata_text,
    ]);
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(prev_hash.as_bytes());
    mac.update(b"\n");
    mac.update(content.to_string().as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Where the chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// Sequence numbers jump: rows were deleted.
    Missing { after: i64, next: i64 },
    /// A row does not link to the one before it: a row before it was
    /// deleted, or this one was inserted.
    Unlinked { seq: i64 },
    /// The row's content does not match its hash: it was edited.
    Edited { seq: i64 },
    /// The log ends before a head recorded outside the catalog: its newest
    /// rows were deleted.
    Truncated {
        last: i64,
        anchor: AuditHead,
        source: String,
    },
    /// A row differs from the head recorded outside the catalog for it:
    /// the log was rewritten (and re-chained) after the anchor was taken.
    Rewritten { anchor: AuditHead, source: String },
}

/// The head of the chain: the newest row's number and hash. Recorded
/// outside the catalog (an anchor) so that a shortened or re-chained log is
/// caught even though every link in it is intact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
}

/// Check one anchor against the catalog: `hash_at` is the stored hash of
/// row `anchor.seq` (None: no such row), `last` the newest row's number.
/// `source` says where the anchor was found, for the message.
pub fn check_anchor(
    anchor: &AuditHead,
    hash_at: Option<&str>,
    last: i64,
    source: &str,
) -> Result<(), ChainBreak> {
    match hash_at {
        None if anchor.seq > last => Err(ChainBreak::Truncated {
            last,
            anchor: anchor.clone(),
            source: source.to_string(),
        }),
        Some(h) if h == anchor.hash => Ok(()),
        _ => Err(ChainBreak::Rewritten {
            anchor: anchor.clone(),
            source: source.to_string(),
        }),
    }
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainBreak::Missing { after, next } => write!(
                f,
                "audit row {} is missing: the sequence jumps from {after} to {next} (a row was deleted)",
                after + 1
            ),
            ChainBreak::Unlinked { seq } => write!(
                f,
                "audit row {seq} does not link to the row before it (a row was deleted or inserted there)"
            ),
            ChainBreak::Edited { seq } => {
                write!(f, "audit row {seq} does not match its hash (it was edited)")
            }
            ChainBreak::Truncated {
                last,
                anchor,
                source,
            } => write!(
                f,
                "the audit log ends at row {last}, but {source} recorded row {} (rows {}–{} were \
                 deleted from the end)",
                anchor.seq,
                last + 1,
                anchor.seq
            ),
            ChainBreak::Rewritten { anchor, source } => write!(
                f,
                "audit row {} differs from its hash recorded in {source} (the log was rewritten \
                 or re-chained after that)",
                anchor.seq
            ),
        }
    }
}

/// Checks rows in sequence order, one at a time.
pub struct ChainVerifier {
    key: [u8; 32],
    last_seq: i64,
    last_hash: String,
    pub rows: u64,
}

impl ChainVerifier {
    pub fn new(key: [u8; 32]) -> ChainVerifier {
        ChainVerifier {
            key,
            last_seq: 0,
            last_hash: GENESIS.to_string(),
            rows: 0,
        }
    }

    pub fn check(&mut self, row: &AuditRow) -> Result<(), ChainBreak> {
        if row.seq != self.last_seq + 1 {
            if row.seq > self.last_seq + 1 && row.prev_hash != self.last_hash {
                return Err(ChainBreak::Missing {
                    after: self.last_seq,
                    next: row.seq,
                });
            }
            return Err(ChainBreak::Unlinked { seq: row.seq });
        }
        if row_hash(&self.key, &row.prev_hash, row) != row.hash {
            return Err(ChainBreak::Edited { seq: row.seq });
        }
        if row.prev_hash != self.last_hash {
            return Err(ChainBreak::Unlinked { seq: row.seq });
        }
        self.last_seq = row.seq;
        self.last_hash = row.hash.clone();
        self.rows += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Actor;

    fn chain(key: &[u8; 32], n: i64) -> Vec<AuditRow> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let mut r = AuditRow {
                    seq,
                    time: format!("2026-12-04T00:00:{seq:02}.000Z"),
                    actor: Actor::system(),
                    tenant_id: Some("t".into()),
                    event: "backup_created".into(),
                    subject: Some(format!("b{seq}")),
                    metadata_text: "{}".into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                r.hash = row_hash(key, &prev, &r);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    fn verify(key: [u8; 32], rows: &[AuditRow]) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::new(key);
        for r in rows {
            v.check(r)?;
        }
        Ok(v.rows)
    }

    #[test]
    fn an_intact_chain_verifies_and_each_kind_of_tampering_is_named() {
        let key = [7u8; 32];
        let rows = chain(&key, 6);
        assert_eq!(verify(key, &rows), Ok(6));

        let mut edited = rows.clone();
        edited[2].metadata_text = r#"{"size":1}"#.into();
        assert_eq!(verify(key, &edited), Err(ChainBreak::Edited { seq: 3 }));

        let mut deleted = rows.clone();
        deleted.remove(3);
        assert_eq!(
            verify(key, &deleted),
            Err(ChainBreak::Missing { after: 3, next: 5 })
        );

        // deleted and the rest renumbered to hide the gap
        let mut renumbered = rows.clone();
        renumbered.remove(3);
        for r in &mut renumbered[3..] {
            r.seq -= 1;
        }
        assert_eq!(verify(key, &renumbered), Err(ChainBreak::Edited { seq: 4 }));

        // a row inserted with a well-formed hash made without the server key
        let mut inserted = rows.clone();
        let mut fake = rows[5].clone();
        fake.seq = 7;
        fake.prev_hash = rows[5].hash.clone();
        fake.hash = row_hash(&[0u8; 32], &fake.prev_hash, &fake);
        inserted.push(fake);
        assert_eq!(verify(key, &inserted), Err(ChainBreak::Edited { seq: 7 }));

        // the last row deleted cannot be told from a shorter log by the
        // chain alone, but any row before it can
        assert!(verify([8u8; 32], &rows).is_err(), "another key verifies");
    }

    #[test]
    fn anchors_catch_a_shortened_or_rewritten_log() {
        let key = [7u8; 32];
        let rows = chain(&key, 6);
        let head = AuditHead {
            seq: 6,
            hash: rows[5].hash.clone(),
        };
        assert_eq!(check_anchor(&head, Some(&rows[5].hash), 6, "a"), Ok(()));
        // the last two rows deleted: the chain still verifies, the anchor not
        assert_eq!(verify(key, &rows[..4]), Ok(4));
        assert!(matches!(
            check_anchor(&head, None, 4, "a"),
            Err(ChainBreak::Truncated { last: 4, .. })
        ));
        // re-chained with the key from row 3 on: row 6's hash differs
        let other = chain(&[9u8; 32], 6);
        assert!(matches!(
            check_anchor(&head, Some(&other[5].hash), 6, "a"),
            Err(ChainBreak::Rewritten { .. })
        ));
        let msg = check_anchor(&head, None, 4, "the anchor file")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("ends at row 4") && msg.contains("rows 5–6"),
            "{msg}"
        );
    }
}
