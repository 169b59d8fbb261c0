//! mysqldump/mariadb-dump DDL without the foreign keys that reference
//! left-out tables.
//!
//! `--ignore-table` leaves a table out, but a kept table's `CREATE TABLE`
//! still carries its foreign keys, and one that references a left-out
//! table names it (and fails to restore without it). The dump tools write
//! `CREATE TABLE` as `SHOW CREATE TABLE` does — one definition per line:
//!
//! ```text
//! CREATE TABLE `orders` (
//!   `id` int(11) NOT NULL,
//!   PRIMARY KEY (`id`),
//!   CONSTRAINT `orders_vault_fk` FOREIGN KEY (`vault_id`) REFERENCES `vault` (`id`)
//! ) ENGINE=InnoDB …;
//! ```
//!
//! so a constraint is one line, dropped whole; when it was the last
//! definition, the comma that ended the line before goes too. Lines are
//! handled one at a time: memory is bounded by the longest line.

use std::collections::HashSet;

use crate::dump_scan::mysql::parse_backtick_name;
use crate::line_filter::LineEdit;

/// Leaves out the foreign keys named in `drop` as (table, constraint); use
/// with [`LineFilter`](crate::line_filter::LineFilter).
pub struct DropForeignKeys {
    drop: HashSet<(String, String)>,
    /// The table whose `CREATE TABLE` body is being read.
    table: Option<String>,
    /// The previous line, held back in case its comma must go.
    held: Vec<u8>,
    /// Constraints left out so far.
    pub dropped: usize,
}

impl DropForeignKeys {
    pub fn new(drop: HashSet<(String, String)>) -> DropForeignKeys {
        DropForeignKeys {
            drop,
            table: None,
            held: Vec::new(),
            dropped: 0,
        }
    }

    /// Whether `line` is a foreign key to leave out.
    fn is_dropped_constraint(&self, line: &[u8]) -> bool {
        let Some(table) = &self.table else {
            return false;
        };
        let Some(rest) = line.strip_prefix(b"  CONSTRAINT ") else {
            return false;
        };
        match parse_backtick_name(rest) {
            Some((name, n)) if rest[n..].starts_with(b" FOREIGN KEY") => {
                self.drop.contains(&(table.clone(), name))
            }
            _ => false,
        }
    }
}

impl LineEdit for DropForeignKeys {
    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        if let Some(rest) = line.strip_prefix(b"CREATE TABLE ") {
            self.table = parse_backtick_name(rest).map(|(name, _)| name);
        } else if self.is_dropped_constraint(line) {
            self.dropped += 1;
            return;
        } else if self.table.is_some() && line.starts_with(b")") {
            // a well-formed body has no comma before its `)`: one here
            // ended a definition that was left out
            if self.held.ends_with(b",\n") {
                let n = self.held.len();
                self.held.remove(n - 2);
            }
            self.table = None;
        }
        out.append(&mut self.held);
        self.held.extend_from_slice(line);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
    }

    fn is_identity(&self) -> bool {
        self.drop.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line_filter::filter_in_pieces;

    const DDL: &str = "/*!40101 SET character_set_client = utf8mb4 */;
CREATE TABLE `orders` (
  `id` int(11) NOT NULL,
  `vault_id` int(11) DEFAULT NULL,
  `customer_id` int(11) DEFAULT NULL,
  PRIMARY KEY (`id`),
  CONSTRAINT `orders_customer_fk` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`),
  CONSTRAINT `orders_vault_fk` FOREIGN KEY (`vault_id`) REFERENCES `vault` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE `we``ird` (
  `id` int(11) NOT NULL,
  CONSTRAINT `w_fk` FOREIGN KEY (`id`) REFERENCES `vault` (`id`),
  PRIMARY KEY (`id`)
) ENGINE=InnoDB;
-- Dump completed
";

    fn filtered(drop: &[(&str, &str)]) -> (String, usize) {
        let set = drop
            .iter()
            .map(|(t, c)| (t.to_string(), c.to_string()))
            .collect();
        let (out, edit) = filter_in_pieces(DDL, DropForeignKeys::new(set), 3);
        (out, edit.dropped)
    }

    #[test]
    fn drops_the_named_foreign_keys_and_a_comma_left_dangling() {
        let (out, dropped) = filtered(&[("orders", "orders_vault_fk"), ("we`ird", "w_fk")]);
        assert_eq!(dropped, 2);
        assert!(!out.contains("vault`"), "{out}");
        assert!(out.contains(
            "  CONSTRAINT `orders_customer_fk` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`)\n) ENGINE"
        ));
        assert!(out.contains("  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;"));
        assert!(out.ends_with("-- Dump completed\n"));
    }

    #[test]
    fn other_constraints_pass_unchanged() {
        assert_eq!(filtered(&[]), (DDL.to_string(), 0));
        assert_eq!(
            filtered(&[("customers", "orders_vault_fk")]),
            (DDL.to_string(), 0)
        );
    }
}
