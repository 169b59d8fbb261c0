//! The audit chain, as pure logic: each row's `hash` is an HMAC-SHA-256,
//! under a key derived from the server key, over the previous row's hash
//! and this row's content. Editing a row breaks its own hash; deleting or
//! inserting one breaks the link of the row after it (or the sequence);
//! and without the server key nobody can forge a consistent replacement.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::audit::AuditRow;

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

        // the last row deleted cannot be told from a shorter log, but any
        // row before it can
        assert!(verify([8u8; 32], &rows).is_err(), "another key verifies");
    }
}
