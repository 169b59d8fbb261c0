//! mysqldump / mariadb-dump output: `CREATE TABLE `t` (` opens a table,
//! `INSERT INTO `t` VALUES (…),(…);` statements carry its rows (strings with
//! backslash escapes, binary as 0x… with --hex-blob); the dump ends with
//! `-- Dump completed`. MySQL and older MariaDB write each INSERT on one
//! line; mariadb-dump 10.11 and later starts every row on a line of its own
//! (`INSERT INTO `t` VALUES` then `(1,…),` lines), so an INSERT ends at the
//! `;` outside a string, not at a newline.
//!
//! Rows are counted as tuples opened outside string literals, so a byte
//! state machine runs over INSERT statements (which can be megabytes long);
//! all other lines are looked at only by their first bytes.

use super::{DumpScanner, StreamScanner, TableRows};

const COMPLETE: &[u8] = b"-- Dump completed";
/// How much of a line is kept to recognise it.
const PREFIX: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting the first bytes of a line.
    LineStart,
    /// Inside the VALUES of an INSERT statement.
    Values { in_string: bool, escaped: bool },
    /// The rest of an uninteresting line.
    Skip,
}

#[derive(Debug)]
pub struct MysqlDumpScan {
    state: State,
    prefix: Vec<u8>,
    tables: Vec<TableRows>,
    /// Index into `tables` of the INSERT being read.
    current: usize,
    complete: bool,
    trailing: bool,
    bytes: u64,
}

impl Default for MysqlDumpScan {
    fn default() -> Self {
        MysqlDumpScan {
            state: State::LineStart,
            prefix: Vec::new(),
            tables: Vec::new(),
            current: 0,
            complete: false,
            trailing: false,
            bytes: 0,
        }
    }
}

/// Parse a backtick-quoted identifier at the start of `s`.
pub fn parse_backtick_name(s: &[u8]) -> Option<(String, usize)> {
    if s.first() != Some(&b'`') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        match s.get(i)? {
            b'`' if s.get(i + 1) == Some(&b'`') => {
                out.push(b'`');
                i += 2;
            }
            b'`' => return Some((String::from_utf8(out).ok()?, i + 1)),
            &c => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// Quote an identifier for MySQL/MariaDB, always.
pub fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

impl MysqlDumpScan {
    fn table_index(&mut self, name: String) -> usize {
        if let Some(i) = self.tables.iter().rposition(|t| t.parts[0] == name) {
            return i;
        }
        self.tables.push(TableRows {
            sql_name: quote_ident(&name),
            parts: vec![name],
            rows: 0,
        });
        self.tables.len() - 1
    }

    /// A whole short line, or the first PREFIX bytes of a long one
    /// (`whole` false). Returns the offset where VALUES begin, for INSERTs.
    fn classify(&mut self, line: &[u8], whole: bool) -> Option<usize> {
        if let Some(rest) = line.strip_prefix(b"INSERT INTO ") {
            if let Some((name, n)) = parse_backtick_name(rest)
                && let Some(after) = rest[n..].strip_prefix(b" VALUES")
                && ((after.is_empty() && whole)
                    || after.starts_with(b" ")
                    || after.starts_with(b"("))
            {
                self.current = self.table_index(name);
                return Some(12 + n + 7);
            }
        } else if let Some(rest) = line.strip_prefix(b"CREATE TABLE ") {
            if let Some((name, _)) = parse_backtick_name(rest) {
                self.table_index(name);
            }
        } else if whole && line.starts_with(COMPLETE) {
            self.complete = true;
            self.trailing = false;
            return None;
        }
        if self.complete && !line.is_empty() && !line.starts_with(b"--") {
            self.trailing = true;
        }
        None
    }

    /// Scan VALUES bytes; returns how many were consumed (up to and
    /// including the statement's closing `;`, if reached — the rest of its
    /// line is then skipped).
    fn values(&mut self, data: &[u8]) -> usize {
        let State::Values {
            mut in_string,
            mut escaped,
        } = self.state
        else {
            unreachable!()
        };
        let mut i = 0;
        while i < data.len() {
            if escaped {
                escaped = false;
                i += 1;
                continue;
            }
            if in_string {
                match memchr::memchr2(b'\\', b'\'', &data[i..]) {
                    None => {
                        i = data.len();
                    }
                    Some(p) => {
                        if data[i + p] == b'\\' {
                            escaped = true;
                        } else {
                            in_string = false;
                        }
                        i += p + 1;
                    }
                }
            } else {
                match memchr::memchr3(b'\'', b'(', b';', &data[i..]) {
                    None => i = data.len(),
                    Some(p) => {
                        let c = data[i + p];
                        i += p + 1;
                        match c {
                            b'\'' => in_string = true,
                            b'(' => self.tables[self.current].rows += 1,
                            _ => {
                                self.state = State::Skip;
                                return i;
                            }
                        }
                    }
                }
            }
        }
        self.state = State::Values { in_string, escaped };
        i
    }

    pub fn tables(&self) -> &[TableRows] {
        &self.tables
    }
}

impl DumpScanner for MysqlDumpScan {
    fn into_tables(self) -> Vec<TableRows> {
        self.tables
    }

    fn verdict(&self) -> Result<(), String> {
        if self.bytes == 0 {
            return Err("the dump is empty".into());
        }
        let pending_insert = self
            .prefix
            .strip_prefix(b"INSERT INTO ")
            .and_then(parse_backtick_name)
            .map(|(name, _)| name);
        if let Some(t) = pending_insert {
            return Err(format!(
                "the dump ends inside the rows of table {t}: it was cut short"
            ));
        }
        if matches!(self.state, State::Values { .. }) {
            let t = self.tables[self.current].display_name();
            return Err(format!(
                "the dump ends inside the rows of table {t}: it was cut short"
            ));
        }
        if !self.complete || self.trailing || !self.prefix.is_empty() {
            return Err(
                "the dump ends without its \"-- Dump completed\" marker: it was cut short".into(),
            );
        }
        Ok(())
    }
}

impl StreamScanner for MysqlDumpScan {
    fn feed(&mut self, mut data: &[u8]) {
        self.bytes += data.len() as u64;
        while !data.is_empty() {
            match self.state {
                State::Values { .. } => {
                    let n = self.values(data);
                    data = &data[n..];
                }
                State::Skip => match memchr::memchr(b'\n', data) {
                    Some(p) => {
                        self.state = State::LineStart;
                        data = &data[p + 1..];
                    }
                    None => data = &[],
                },
                State::LineStart => {
                    let room = PREFIX - self.prefix.len();
                    let look = &data[..data.len().min(room)];
                    let nl = memchr::memchr(b'\n', look);
                    let take = nl.unwrap_or(look.len());
                    self.prefix.extend_from_slice(&look[..take]);
                    let whole = nl.is_some();
                    if !whole && self.prefix.len() < PREFIX {
                        data = &data[take..];
                        continue;
                    }
                    let mut line = std::mem::take(&mut self.prefix);
                    match self.classify(&line, whole) {
                        Some(at) => {
                            self.state = State::Values {
                                in_string: false,
                                escaped: false,
                            };
                            self.values(&line[at..]);
                            // The line's newline (if `take` reached it) is
                            // left to the VALUES or to the skipped rest of
                            // the statement's line.
                            data = &data[take..];
                        }
                        None if whole => data = &data[take + 1..],
                        None => {
                            self.state = State::Skip;
                            data = &data[take..];
                        }
                    }
                    line.clear();
                    self.prefix = line;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "-- MariaDB dump 10.19\n--\n\
        DROP TABLE IF EXISTS `t`;\nCREATE TABLE `t` (\n  `id` int NOT NULL,\n  PRIMARY KEY (`id`)\n);\n\
        LOCK TABLES `t` WRITE;\n\
        INSERT INTO `t` VALUES (1,'a(b',NULL),(2,'it\\'s (x)\\\\',0x28),(3,'\\n(',1.5);\n\
        INSERT INTO `t` VALUES (4,'',NULL);\n\
        UNLOCK TABLES;\nCREATE TABLE `empty``s` (\n  `id` int\n);\n\
        /*!50001 CREATE TABLE `v` (x int) */;\n\
        -- Dump completed on 2026-11-23 10:00:00\n";

    fn scan(parts: &[&[u8]]) -> MysqlDumpScan {
        let mut s = MysqlDumpScan::default();
        for p in parts {
            s.feed(p);
        }
        s
    }

    /// Each table's name and rows, once the scan's verdict is clean.
    fn counted(s: &MysqlDumpScan) -> Vec<(String, u64)> {
        assert_eq!(s.verdict(), Ok(()));
        s.tables()
            .iter()
            .map(|t| (t.display_name(), t.rows))
            .collect()
    }

    #[test]
    fn counts_rows_outside_strings_whatever_the_read_sizes() {
        for step in [1, 2, 5, 13, 4096] {
            let parts: Vec<&[u8]> = DUMP.as_bytes().chunks(step).collect();
            let s = scan(&parts);
            assert_eq!(
                counted(&s),
                [("t".into(), 4), ("empty`s".into(), 0)],
                "step {step}"
            );
            assert_eq!(s.tables()[1].sql_name, "`empty``s`");
        }
    }

    #[test]
    fn long_insert_lines_are_counted() {
        let mut d = String::from("CREATE TABLE `big` (\n`v` text);\nINSERT INTO `big` VALUES ");
        let rows: Vec<String> = (0..5000)
            .map(|i| format!("({i},'{}')", "x(".repeat(i % 7)))
            .collect();
        d.push_str(&rows.join(","));
        d.push_str(";\n-- Dump completed\n");
        for step in [3, 1000, 1 << 20] {
            let parts: Vec<&[u8]> = d.as_bytes().chunks(step).collect();
            let s = scan(&parts);
            assert_eq!(s.verdict(), Ok(()));
            assert_eq!(s.tables()[0].rows, 5000);
        }
    }

    /// mariadb-dump 10.11's layout: one row per line after a bare
    /// `INSERT INTO … VALUES` line.
    const ROW_PER_LINE: &str = "/*M!999999\\- enable the sandbox mode */ \n\
        -- MariaDB dump 10.19  Distrib 10.11.14-MariaDB\n\
        CREATE TABLE `c` (\n  `id` int(11) NOT NULL\n) ENGINE=InnoDB;\n\
        LOCK TABLES `c` WRITE;\n\
        INSERT INTO `c` VALUES\n\
        (1,'Zo\u{eb} (\\'x\\')',0x00FF27,'{\\\"a\\\":1}'),\n\
        (2,NULL,NULL,NULL),\n\
        (3,'a\\0b\\\\c\\'d\\n;(','','[]');\n\
        UNLOCK TABLES;\n\
        CREATE TABLE `d` (\n  `id` int(11)\n);\n\
        INSERT INTO `d` VALUES\n(7);\n\
        -- Dump completed\n";

    #[test]
    fn counts_rows_one_per_line() {
        for step in [1, 3, 7, 4096] {
            let parts: Vec<&[u8]> = ROW_PER_LINE.as_bytes().chunks(step).collect();
            let s = scan(&parts);
            assert_eq!(
                counted(&s),
                [("c".into(), 3), ("d".into(), 1)],
                "step {step}"
            );
        }
        // Cut between two rows, or right after the INSERT line: inside the rows.
        for at in ["(2,NULL", "(3,", "(7)"] {
            let cut = ROW_PER_LINE.find(at).unwrap();
            let err = scan(&[&ROW_PER_LINE.as_bytes()[..cut]])
                .verdict()
                .unwrap_err();
            assert!(err.contains("inside the rows"), "{at}: {err}");
        }
    }

    #[test]
    fn cuts_are_detected() {
        let full = DUMP.as_bytes();
        let end = DUMP.find("Dump completed").unwrap() + "Dump completed".len();
        for cut in 0..end {
            assert!(scan(&[&full[..cut]]).verdict().is_err(), "cut at {cut}");
        }
        let mid = DUMP.find("(2,").unwrap();
        assert!(
            scan(&[&full[..mid]])
                .verdict()
                .unwrap_err()
                .contains("inside the rows of table t")
        );
    }
}
