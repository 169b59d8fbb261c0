//! pg_dump's plain format: `COPY schema.table (cols) FROM stdin;`, one line
//! per row, `\.` to end the block; the dump ends with the comment
//! `-- PostgreSQL database dump complete` (newer pg_dump versions follow it
//! with a `\unrestrict` line).

use super::{DumpScanner, LineSplitter, StreamScanner, TableRows};

const COMPLETE: &[u8] = b"-- PostgreSQL database dump complete";
/// A COPY header longer than this is still recognised: the table name
/// comes first.
const LINE_CAP: usize = 64 * 1024;

#[derive(Debug)]
pub struct PgDumpScan {
    lines: LineSplitter,
    in_copy: bool,
    tables: Vec<TableRows>,
    complete: bool,
    /// Something other than comments came after the completion marker.
    trailing: bool,
    /// A COPY header whose table name could not be read.
    bad_header: Option<String>,
}

impl Default for PgDumpScan {
    fn default() -> Self {
        PgDumpScan {
            lines: LineSplitter::new(LINE_CAP),
            in_copy: false,
            tables: Vec::new(),
            complete: false,
            trailing: false,
            bad_header: None,
        }
    }
}

/// Parse a (possibly schema-qualified) PostgreSQL identifier at the start
/// of `s`: its unquoted parts and the text it spans.
pub fn parse_qualified_name(s: &[u8]) -> Option<(Vec<String>, usize)> {
    let mut parts = Vec::new();
    let mut i = 0;
    loop {
        if s.get(i) == Some(&b'"') {
            let mut part = Vec::new();
            i += 1;
            loop {
                match s.get(i)? {
                    b'"' if s.get(i + 1) == Some(&b'"') => {
                        part.push(b'"');
                        i += 2;
                    }
                    b'"' => {
                        i += 1;
                        break;
                    }
                    &c => {
                        part.push(c);
                        i += 1;
                    }
                }
            }
            parts.push(String::from_utf8(part).ok()?);
        } else {
            let start = i;
            while let Some(&c) = s.get(i) {
                if c == b'.' || c == b' ' || c == b'(' {
                    break;
                }
                i += 1;
            }
            if i == start {
                return None;
            }
            parts.push(String::from_utf8(s[start..i].to_vec()).ok()?);
        }
        if s.get(i) == Some(&b'.') {
            i += 1;
        } else {
            return Some((parts, i));
        }
    }
}

/// Quote an identifier for PostgreSQL, always.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl PgDumpScan {
    fn line(&mut self, line: &[u8], len: u64) {
        if self.in_copy {
            if line == b"\\." {
                self.in_copy = false;
            } else if let Some(t) = self.tables.last_mut() {
                t.rows += 1;
            }
            return;
        }
        if let Some(rest) = line.strip_prefix(b"COPY ") {
            // Only a whole line ending in "FROM stdin;" opens a data block.
            if len as usize <= line.len() && !line.ends_with(b" FROM stdin;") {
                return;
            }
            match parse_qualified_name(rest) {
                Some((parts, n)) => {
                    self.tables.push(TableRows {
                        sql_name: String::from_utf8_lossy(&rest[..n]).into_owned(),
                        parts,
                        rows: 0,
                    });
                    self.in_copy = true;
                }
                None => {
                    self.bad_header =
                        Some(String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned());
                }
            }
            return;
        }
        if line == COMPLETE {
            self.complete = true;
            self.trailing = false;
        } else if self.complete
            && !line.is_empty()
            && !line.starts_with(b"--")
            && !line.starts_with(b"\\unrestrict")
        {
            self.trailing = true;
        }
    }

    pub fn tables(&self) -> &[TableRows] {
        &self.tables
    }
}

impl DumpScanner for PgDumpScan {
    fn into_tables(self) -> Vec<TableRows> {
        self.tables
    }

    /// Whether the dump is whole: `Err` says why not.
    fn verdict(&self) -> Result<(), String> {
        if let Some(h) = &self.bad_header {
            return Err(format!(
                "pg_dump wrote a COPY line holdfast cannot read: {h}"
            ));
        }
        if self.in_copy {
            let t = self
                .tables
                .last()
                .map(|t| t.display_name())
                .unwrap_or_default();
            return Err(format!(
                "the dump ends inside the rows of table {t}: it was cut short"
            ));
        }
        if !self.complete || self.trailing || self.lines.pending() > 0 {
            return Err(
                "the dump ends without pg_dump's completion marker: it was cut short".into(),
            );
        }
        Ok(())
    }
}

impl StreamScanner for PgDumpScan {
    fn feed(&mut self, data: &[u8]) {
        let mut lines = std::mem::replace(&mut self.lines, LineSplitter::new(0));
        lines.feed(data, |l, n| self.line(l, n));
        self.lines = lines;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\\restrict abc\nSET x = 1;\n\
        CREATE TABLE public.t (a int);\n\
        COPY public.t (a, b) FROM stdin;\n1\tx\n2\t\\N\n\\.\n\n\
        COPY public.\"Odd \"\"name\"\" (x)\" (id) FROM stdin;\n\\.\n\n\
        COPY s.many FROM stdin;\n1\n2\n3\n\\.\n\
        -- COPY public.fake (a) FROM stdin; in a comment\n\
        --\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n";

    fn scan(parts: &[&[u8]]) -> PgDumpScan {
        let mut s = PgDumpScan::default();
        for p in parts {
            s.feed(p);
        }
        s
    }

    #[test]
    fn counts_rows_per_table_whatever_the_read_sizes() {
        for step in [1, 3, 7, 64, 4096] {
            let parts: Vec<&[u8]> = DUMP.as_bytes().chunks(step).collect();
            let s = scan(&parts);
            assert_eq!(s.verdict(), Ok(()));
            let got: Vec<(String, Vec<String>, u64)> = s
                .tables()
                .iter()
                .map(|t| (t.sql_name.clone(), t.parts.clone(), t.rows))
                .collect();
            assert_eq!(
                got,
                vec![
                    ("public.t".into(), vec!["public".into(), "t".into()], 2),
                    (
                        "public.\"Odd \"\"name\"\" (x)\"".into(),
                        vec!["public".into(), "Odd \"name\" (x)".into()],
                        0
                    ),
                    ("s.many".into(), vec!["s".into(), "many".into()], 3),
                ]
            );
        }
    }

    #[test]
    fn every_cut_is_detected() {
        let full = DUMP.as_bytes();
        // Any prefix that stops before the marker line is incomplete.
        let marker_end = DUMP.find("dump complete").unwrap() + "dump complete".len();
        for cut in 0..marker_end {
            let s = scan(&[&full[..cut]]);
            assert!(s.verdict().is_err(), "cut at {cut} passed");
        }
        let s = scan(&[&full[..DUMP.find("\\.\n\nCOPY public.\"Odd").unwrap()]]);
        assert!(
            s.verdict()
                .unwrap_err()
                .contains("inside the rows of table public.t")
        );
        assert!(scan(&[b""]).verdict().is_err());
    }

    #[test]
    fn names_round_trip_through_quoting() {
        let (parts, n) = parse_qualified_name(b"\"a.b\".\"c\"\"d\" (x)").unwrap();
        assert_eq!(parts, vec!["a.b", "c\"d"]);
        assert_eq!(n, 12);
        assert_eq!(quote_ident("c\"d"), "\"c\"\"d\"");
        assert!(parse_qualified_name(b"\"open").is_none());
    }
}
