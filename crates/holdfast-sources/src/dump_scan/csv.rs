//! Counting the records of a CSV stream as it passes (RFC 4180: quoted
//! fields may hold newlines; `""` is a quote inside a quoted field).

use super::StreamScanner;

/// Counts records (lines outside quotes), and whether the stream ended on
/// a record boundary.
#[derive(Debug, Default)]
pub struct CsvRecords {
    in_quotes: bool,
    records: u64,
    /// Bytes since the last record end.
    pending: u64,
}

impl CsvRecords {
    /// Complete records seen (a header row counts as one).
    pub fn records(&self) -> u64 {
        self.records + u64::from(self.pending > 0 && !self.in_quotes)
    }

    /// Whether the stream stopped inside a quoted field.
    pub fn open_quote(&self) -> bool {
        self.in_quotes
    }
}

impl StreamScanner for CsvRecords {
    fn feed(&mut self, data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() {
            if self.in_quotes {
                match memchr::memchr(b'"', rest) {
                    Some(i) => {
                        self.in_quotes = false;
                        self.pending += i as u64 + 1;
                        rest = &rest[i + 1..];
                    }
                    None => {
                        self.pending += rest.len() as u64;
                        return;
                    }
                }
            } else {
                match memchr::memchr2(b'"', b'\n', rest) {
                    Some(i) if rest[i] == b'"' => {
                        self.in_quotes = true;
                        self.pending += i as u64 + 1;
                        rest = &rest[i + 1..];
                    }
                    Some(i) => {
                        self.records += 1;
                        self.pending = 0;
                        rest = &rest[i + 1..];
                    }
                    None => {
                        self.pending += rest.len() as u64;
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_records_across_quotes_and_cuts() {
        let csv = b"id,note\n1,\"multi\nline, with \"\"quotes\"\"\"\n2,\n3,\"\"\n";
        for cut in 0..csv.len() {
            let mut c = CsvRecords::default();
            c.feed(&csv[..cut]);
            c.feed(&csv[cut..]);
            assert_eq!(c.records(), 4, "cut at {cut}");
            assert!(!c.open_quote());
        }
        let mut c = CsvRecords::default();
        c.feed(b"a\n\"open");
        assert!(c.open_quote());
        let mut c = CsvRecords::default();
        c.feed(b"a\nb");
        assert_eq!(c.records(), 2, "a last record without newline counts");
    }
}
