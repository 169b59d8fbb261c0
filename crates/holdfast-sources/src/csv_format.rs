//! The CSV dialect of tables-mode snapshots, for the sources that write it
//! themselves (SQLite; PostgreSQL's own COPY CSV already matches it):
//! RFC 4180, `\n` line ends, a header row, NULL as an empty unquoted field,
//! the empty string as `""`, binary values as `\x` + hex. And a reader
//! that keeps the NULL/empty distinction, for restores.

use std::io::{self, BufRead, Write};

/// One field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Null,
    Text(String),
}

/// Write `s` as one CSV field (quoted when it must be, and always when
/// empty, so it differs from NULL).
pub fn write_text(out: &mut impl Write, s: &str) -> io::Result<()> {
    if s.is_empty() || s.contains([',', '"', '\n', '\r']) || s.starts_with(char::is_whitespace) {
        out.write_all(b"\"")?;
        out.write_all(s.replace('"', "\"\"").as_bytes())?;
        out.write_all(b"\"")
    } else {
        out.write_all(s.as_bytes())
    }
}

/// Binary data as `\x` + lowercase hex.
pub fn hex_field(data: &[u8]) -> String {
    let mut s = String::with_capacity(2 + data.len() * 2);
    s.push_str("\\x");
    for b in data {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Decode a `\x…` field; None if it is not one.
pub fn parse_hex_field(s: &str) -> Option<Vec<u8>> {
    let hex = s.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// Reads records one at a time (fields may hold newlines in quotes).
pub struct CsvReader<R> {
    inner: R,
    line: Vec<u8>,
}

impl<R: BufRead> CsvReader<R> {
    pub fn new(inner: R) -> Self {
        CsvReader {
            inner,
            line: Vec::new(),
        }
    }

    /// The next record, or None at the end.
    pub fn record(&mut self) -> io::Result<Option<Vec<Field>>> {
        self.line.clear();
        // Read whole lines until the quotes balance.
        loop {
            let n = self.inner.read_until(b'\n', &mut self.line)?;
            if n == 0 {
                if self.line.is_empty() {
                    return Ok(None);
                }
                break;
            }
            if self.line.iter().filter(|&&b| b == b'"').count() % 2 == 0 {
                break;
            }
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        }
        let text = std::str::from_utf8(&self.line).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("CSV is not UTF-8: {e}"))
        })?;
        parse_record(text).map(Some)
    }
}

fn parse_record(text: &str) -> io::Result<Vec<Field>> {
    let bad =
        |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bad CSV record: {why}"));
    let mut fields = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        match chars.peek() {
            Some('"') => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            s.push('"');
                        }
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err(bad("an unclosed quote")),
                    }
                }
                fields.push(Field::Text(s));
                match chars.next() {
                    Some(',') => continue,
                    None => return Ok(fields),
                    Some(_) => return Err(bad("text after a closing quote")),
                }
            }
            _ => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some(',') => break,
                        Some(c) => s.push(c),
                        None => {
                            fields.push(if s.is_empty() {
                                Field::Null
                            } else {
                                Field::Text(s)
                            });
                            return Ok(fields);
                        }
                    }
                }
                fields.push(if s.is_empty() {
                    Field::Null
                } else {
                    Field::Text(s)
                });
            }
        }
    }
}

/// Rewrite a CSV stream (with its header) as PostgreSQL's COPY text format
/// (no header): tab-separated, `\N` for NULL, backslash escapes. In this
/// form no data line can be `\.` — which psql would take for the end of
/// inline COPY data, even inside a quoted CSV field. The fields at the
/// indexes in `skip` (generated columns) are left out.
pub fn csv_to_copy_text(r: &mut dyn BufRead, w: &mut dyn Write, skip: &[usize]) -> io::Result<()> {
    let mut csv = CsvReader::new(r);
    csv.record()?; // the header
    let mut line = String::new();
    while let Some(rec) = csv.record()? {
        line.clear();
        let kept = rec.iter().enumerate().filter(|(i, _)| !skip.contains(i));
        for (n, (_, f)) in kept.enumerate() {
            if n > 0 {
                line.push('\t');
            }
            match f {
                Field::Null => line.push_str("\\N"),
                Field::Text(s) => {
                    for c in s.chars() {
                        match c {
                            '\\' => line.push_str("\\\\"),
                            '\n' => line.push_str("\\n"),
                            '\r' => line.push_str("\\r"),
                            '\t' => line.push_str("\\t"),
                            c => line.push(c),
                        }
                    }
                }
            }
        }
        line.push('\n');
        w.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_null_and_empty_apart() {
        let values = [
            None,
            Some(""),
            Some("plain"),
            Some("comma, \"quote\"\nnewline"),
            Some(" lead"),
            Some("日本語 🎉"),
            Some("\\x00ff"),
        ];
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if let Some(s) = v {
                write_text(&mut out, s).unwrap();
            }
        }
        out.extend_from_slice(b"\n,\n");
        let mut r = CsvReader::new(&out[..]);
        let rec = r.record().unwrap().unwrap();
        let want: Vec<Field> = values
            .iter()
            .map(|v| v.map_or(Field::Null, |s| Field::Text(s.to_string())))
            .collect();
        assert_eq!(rec, want);
        assert_eq!(r.record().unwrap().unwrap(), vec![Field::Null, Field::Null]);
        assert!(r.record().unwrap().is_none());
        assert_eq!(
            parse_hex_field(&hex_field(&[0, 255, 16])).unwrap(),
            vec![0, 255, 16]
        );
        assert!(parse_hex_field("\\xg0").is_none());
    }

    #[test]
    fn copy_text_escapes_what_psql_would_misread() {
        let csv = b"id,v\n1,\"x\n\\.\ny\"\n2,\n3,\"\"\n4,\"a\tb\\c\"\n";
        let mut out = Vec::new();
        csv_to_copy_text(&mut &csv[..], &mut out, &[]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1\tx\\n\\\\.\\ny\n2\t\\N\n3\t\n4\ta\\tb\\\\c\n"
        );
        // generated columns are left to the database
        let mut out = Vec::new();
        csv_to_copy_text(&mut &b"a,g,b,h\n1,2,3,4\n,x,,y\n"[..], &mut out, &[1, 3]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "1\t3\n\\N\t\\N\n");
    }
}
