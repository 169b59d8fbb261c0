//! The CSV dialect of tables-mode snapshots (FORMAT.md): RFC 4180, `\n`
//! line ends, a header row, NULL as an empty *unquoted* field, the empty
//! string as `""`, binary values as `\x` + hex. The writer's helpers, one
//! streaming reader and one record counter — for the sources that write it,
//! the restores that load it and the exports that turn it into JSON and
//! sheets.
//!
//! Hand-written rather than the `csv` crate because the dialect gives
//! quoting a meaning: the `csv` crate hides whether a field was quoted, so
//! it cannot tell NULL from the empty string; this reader reports it per
//! field.

use sha2::{Digest, Sha256};
use std::io::{self, BufRead, Write};

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

/// One field of a record. `quoted` says whether any part of it was inside
/// quotes, which is what separates the empty string from NULL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvField {
    pub text: String,
    pub quoted: bool,
}

impl CsvField {
    /// The field's SQL value: `None` for NULL (empty and unquoted).
    pub fn value(&self) -> Option<&str> {
        if self.text.is_empty() && !self.quoted {
            None
        } else {
            Some(&self.text)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// At the first byte of a field.
    #[default]
    FieldStart,
    /// In an unquoted field (or after a quoted part, leniently).
    Unquoted,
    /// Inside quotes.
    Quoted,
    /// Just read a `"` inside quotes: an escaped quote or the closing one.
    QuoteInQuoted,
}

/// Reads records from a CSV stream. Memory holds one record, never the
/// file: the field buffers are reused from record to record.
pub struct CsvRecords<R> {
    inner: R,
    /// The record being read, as raw bytes per field (UTF-8 is checked
    /// once the field is complete, since a multi-byte character may span
    /// two reads).
    raw: Vec<Vec<u8>>,
    /// 1-based line number where the next record starts, for errors.
    line: u64,
    done: bool,
}

impl<R: BufRead> CsvRecords<R> {
    pub fn new(inner: R) -> Self {
        CsvRecords {
            inner,
            raw: Vec::new(),
            line: 1,
            done: false,
        }
    }

    /// The line the next record starts on (1-based).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Read the next record into `fields` (resized to the record's field
    /// count). Returns false at the end of the stream. An empty line is a
    /// record of one NULL field (a one-column table's NULL row), not
    /// something to skip; only the end of the stream ends the records.
    pub fn read_record(&mut self, fields: &mut Vec<CsvField>) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        let start_line = self.line;
        let mut quoted: Vec<bool> = Vec::with_capacity(fields.len().max(1));
        let mut count = 0usize;
        let mut state = State::FieldStart;
        let mut any = false;
        // Start the first field.
        begin_field(&mut self.raw, &mut count, &mut quoted);
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                // End of the stream.
                self.done = true;
                if state == State::Quoted {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a quoted field opened on line {start_line} is never closed"),
                    ));
                }
                if !any {
                    return Ok(false);
                }
                break;
            }
            any = true;
            let mut used = 0;
            let mut end_of_record = false;
            for &b in buf {
                used += 1;
                let field = &mut self.raw[count - 1];
                match state {
                    State::FieldStart | State::Unquoted => match b {
                        b'"' if state == State::FieldStart => {
                            quoted[count - 1] = true;
                            state = State::Quoted;
                        }
                        b',' => {
                            state = State::FieldStart;
                            begin_field(&mut self.raw, &mut count, &mut quoted);
                        }
                        b'\n' => {
                            // A CRLF line end: the CR is not data (a CR
                            // in a value is always quoted).
                            if field.last() == Some(&b'\r') && state == State::Unquoted {
                                field.pop();
                            }
                            self.line += 1;
                            end_of_record = true;
                            break;
                        }
                        _ => {
                            state = State::Unquoted;
                            field.push(b);
                        }
                    },
                    State::Quoted => {
                        if b == b'"' {
                            state = State::QuoteInQuoted;
                        } else {
                            if b == b'\n' {
                                self.line += 1;
                            }
                            field.push(b);
                        }
                    }
                    State::QuoteInQuoted => match b {
                        b'"' => {
                            field.push(b'"');
                            state = State::Quoted;
                        }
                        b',' => {
                            state = State::FieldStart;
                            begin_field(&mut self.raw, &mut count, &mut quoted);
                        }
                        b'\n' => {
                            self.line += 1;
                            end_of_record = true;
                            break;
                        }
                        b'\r' => {
                            // `"…"\r\n`: wait for the LF, keep nothing.
                        }
                        _ => {
                            // `"ab"c`: not RFC 4180; keep the bytes rather
                            // than fail, as most readers do.
                            state = State::Unquoted;
                            field.push(b);
                        }
                    },
                }
            }
            self.inner.consume(used);
            if end_of_record {
                break;
            }
        }
        fields.resize_with(count, CsvField::default);
        for (i, f) in fields.iter_mut().enumerate() {
            f.quoted = quoted[i];
            f.text.clear();
            match std::str::from_utf8(&self.raw[i]) {
                Ok(s) => f.text.push_str(s),
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "field {} of the record on line {start_line} is not UTF-8: {e}",
                            i + 1
                        ),
                    ));
                }
            }
        }
        Ok(true)
    }
}

/// Counts a CSV stream's records as its bytes pass, by the same rules as
/// [`CsvRecords`] but without keeping any field: the bundle counts rows
/// while copying a table's CSV, to know how large its JSON and sheets can
/// grow before they are started.
#[derive(Debug, Default)]
pub struct RecordCounter {
    state: State,
    records: u64,
    /// Bytes of a record not yet ended by a newline.
    pending: bool,
}

impl RecordCounter {
    pub fn feed(&mut self, mut data: &[u8]) {
        while let Some(end) = self.advance(data) {
            data = &data[end + 1..];
        }
    }

    /// Take the bytes of `data` up to and including the first newline that
    /// ends a record; its index, or `None` when every byte was taken and
    /// none ended one. The bytes that change nothing — inside quotes all
    /// but `"`, in an unquoted field all but `,` and the newline — are
    /// skipped with `memchr`, so a stream is counted at memory speed.
    fn advance(&mut self, data: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < data.len() {
            let skip = match self.state {
                State::Quoted => memchr::memchr(b'"', &data[i..]),
                State::Unquoted => memchr::memchr2(b',', b'\n', &data[i..]),
                State::FieldStart | State::QuoteInQuoted => Some(0),
            };
            let Some(k) = skip else {
                // the rest leaves the state as it is, inside a record
                self.pending = true;
                return None;
            };
            i += k;
            if self.step(data[i]) {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// Take one byte; whether it ended a record (its newline).
    fn step(&mut self, b: u8) -> bool {
        self.pending = true;
        let mut ended = false;
        self.state = match (self.state, b) {
            (State::FieldStart, b'"') => State::Quoted,
            (State::FieldStart | State::Unquoted | State::QuoteInQuoted, b',') => State::FieldStart,
            (State::FieldStart | State::Unquoted | State::QuoteInQuoted, b'\n') => {
                self.records += 1;
                self.pending = false;
                ended = true;
                State::FieldStart
            }
            (State::FieldStart | State::Unquoted, _) => State::Unquoted,
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => State::Quoted,
            (State::QuoteInQuoted, b'"') => State::Quoted,
            (State::QuoteInQuoted, b'\r') => State::QuoteInQuoted,
            (State::QuoteInQuoted, _) => State::Unquoted,
        };
        ended
    }

    /// Records seen so far, a last one without its newline included.
    pub fn records(&self) -> u64 {
        self.records + u64::from(self.pending)
    }

    /// Whether the stream so far ends inside a quoted field (a cut one).
    pub fn open_quote(&self) -> bool {
        self.state == State::Quoted
    }
}

/// A CSV stream's records as a multiset, by the rules of [`RecordCounter`]:
/// the same records give the same digest in whatever order they come. A
/// drill compares a table read back from a restored database with the
/// stored file this way when the bytes differ, since the server that
/// restored it may sort text by another collation.
///
/// Each record's bytes (without its newline) are hashed with SHA-256; the
/// digest is the sum of the first 16 bytes of each, modulo 2^128 — an
/// order-free sum that a changed, lost or added record moves (this guards
/// against damage and loader bugs, not against a forger, whom the stored
/// files' SHA-256 in the manifest stops).
#[derive(Debug, Default)]
pub struct RecordDigest {
    counter: RecordCounter,
    record: Sha256,
    sum: u128,
}

impl RecordDigest {
    pub fn feed(&mut self, mut data: &[u8]) {
        while let Some(end) = self.counter.advance(data) {
            self.record.update(&data[..end]);
            self.end_record();
            data = &data[end + 1..];
        }
        self.record.update(data);
    }

    fn end_record(&mut self) {
        let h = std::mem::take(&mut self.record).finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&h[..16]);
        self.sum = self.sum.wrapping_add(u128::from_le_bytes(first));
    }

    /// The records (a last one without its newline included) and their
    /// digest.
    pub fn finish(mut self) -> (u64, u128) {
        if self.counter.pending {
            self.end_record();
        }
        (self.counter.records(), self.sum)
    }
}

/// A stream copied in (`io::copy`) is fed as it passes.
impl Write for RecordDigest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Start field number `count + 1`, reusing its buffer from an earlier record.
fn begin_field(raw: &mut Vec<Vec<u8>>, count: &mut usize, quoted: &mut Vec<bool>) {
    if raw.len() <= *count {
        raw.push(Vec::new());
    }
    raw[*count].clear();
    *count += 1;
    quoted.push(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(data: &[u8], pieces: usize) -> (u64, u128) {
        let mut d = RecordDigest::default();
        for part in data.chunks(pieces.max(1)) {
            d.feed(part);
        }
        d.finish()
    }

    #[test]
    fn the_skipping_counter_agrees_with_one_step_a_byte() {
        // every short stream over the bytes that matter, and some longer
        // pseudo-random ones, fed whole and in pieces
        let alphabet = b",\"\n\ra";
        let mut streams: Vec<Vec<u8>> = Vec::new();
        for n in 0..5u32 {
            for mut k in 0..alphabet.len().pow(n) {
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(alphabet[k % alphabet.len()]);
                    k /= alphabet.len();
                }
                streams.push(v);
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in [50, 200, 1000] {
            let mut v = Vec::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                v.push(alphabet[(seed % 5) as usize]);
            }
            streams.push(v);
        }
        for data in &streams {
            let mut one = RecordCounter::default();
            for &b in data {
                one.step(b);
            }
            for piece in [1, 2, 3, 7, data.len().max(1)] {
                let mut c = RecordCounter::default();
                for part in data.chunks(piece) {
                    c.feed(part);
                }
                assert_eq!(
                    (c.records(), c.open_quote(), c.state, c.pending),
                    (one.records(), one.open_quote(), one.state, one.pending),
                    "{:?} in pieces of {piece}",
                    String::from_utf8_lossy(data)
                );
            }
        }
    }

    #[test]
    fn a_record_digest_ignores_order_and_how_the_bytes_arrive_but_not_content() {
        let a = b"id,name\n1,\"a\nb\"\n2,\n3,\"\"\n";
        let reordered = b"id,name\n3,\"\"\n1,\"a\nb\"\n2,\n";
        let whole = digest(a, a.len());
        assert_eq!(whole.0, 4);
        for n in [1, 2, 3, 7] {
            assert_eq!(digest(a, n), whole, "fed {n} bytes at a time");
        }
        assert_eq!(digest(reordered, 5), whole);
        // the last newline is the record's end, not part of it
        assert_eq!(digest(&a[..a.len() - 1], 4), whole);
        // NULL (empty unquoted) and the empty string ("") differ
        assert_ne!(digest(b"id,name\n1,\"a\nb\"\n2,\"\"\n3,\"\"\n", 9), whole);
        // a record lost, one duplicated
        assert_ne!(digest(b"id,name\n1,\"a\nb\"\n2,\n", 9).1, whole.1);
        assert_ne!(
            digest(b"id,name\n1,\"a\nb\"\n2,\n2,\n3,\"\"\n", 9).1,
            whole.1
        );
        // records split differently: the newline inside quotes is data
        assert_ne!(digest(b"id,name\n1,a\nb\n2,\n3,\"\"\n", 9).1, whole.1);
    }

    fn records(data: &[u8]) -> Vec<Vec<Option<String>>> {
        // A tiny buffer so fields and quotes span reads.
        let mut r = CsvRecords::new(io::BufReader::with_capacity(3, data));
        let mut out = Vec::new();
        let mut fields = Vec::new();
        while r.read_record(&mut fields).unwrap() {
            out.push(
                fields
                    .iter()
                    .map(|f| f.value().map(str::to_string))
                    .collect(),
            );
        }
        out
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn null_is_an_empty_unquoted_field_and_quotes_make_the_empty_string() {
        let got = records(b"a,b,c\n,\"\",x\n\"\",,\n");
        assert_eq!(
            got,
            vec![
                vec![s("a"), s("b"), s("c")],
                vec![None, s(""), s("x")],
                vec![s(""), None, None],
            ]
        );
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_newlines_and_unicode() {
        let got = records("id,t\n1,\"a, \"\"b\"\"\nc\"\n2,\"ünï ✓ 😀\"\n3,\"\r\n\"\n".as_bytes());
        assert_eq!(
            got,
            vec![
                vec![s("id"), s("t")],
                vec![s("1"), s("a, \"b\"\nc")],
                vec![s("2"), s("ünï ✓ 😀")],
                vec![s("3"), s("\r\n")],
            ]
        );
    }

    #[test]
    fn empty_lines_are_one_null_field_and_a_missing_last_newline_is_fine() {
        assert_eq!(
            records(b"x\n\n1\n\n"),
            vec![vec![s("x")], vec![None], vec![s("1")], vec![None]]
        );
        assert_eq!(
            records(b"x,y\n1,2"),
            vec![vec![s("x"), s("y")], vec![s("1"), s("2")]]
        );
        assert_eq!(records(b"x\n\"\""), vec![vec![s("x")], vec![s("")]]);
        assert!(records(b"").is_empty());
    }

    #[test]
    fn crlf_line_ends_and_lenient_quotes() {
        assert_eq!(
            records(b"a,b\r\n1,\"2\"\r\n"),
            vec![vec![s("a"), s("b")], vec![s("1"), s("2")]]
        );
        // A quote inside an unquoted field is data.
        assert_eq!(records(b"a\"b,c\n"), vec![vec![s("a\"b"), s("c")]]);
    }

    #[test]
    fn what_the_writer_writes_the_reader_reads_back_null_and_empty_apart() {
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
        let want: Vec<Option<String>> = values.iter().map(|v| v.map(str::to_string)).collect();
        assert_eq!(records(&out), vec![want, vec![None, None]]);
        assert_eq!(
            parse_hex_field(&hex_field(&[0, 255, 16])).unwrap(),
            vec![0, 255, 16]
        );
        assert!(parse_hex_field("\\xg0").is_none());
    }

    #[test]
    fn the_counter_counts_across_cuts_and_sees_a_cut_quote() {
        let csv = b"id,note\n1,\"multi\nline, with \"\"quotes\"\"\"\n2,\n3,\"\"\n";
        for cut in 0..csv.len() {
            let mut c = RecordCounter::default();
            c.feed(&csv[..cut]);
            c.feed(&csv[cut..]);
            assert_eq!(c.records(), 4, "cut at {cut}");
            assert!(!c.open_quote());
        }
        let mut c = RecordCounter::default();
        c.feed(b"a\n\"open");
        assert!(c.open_quote());
        let mut c = RecordCounter::default();
        c.feed(b"a\nb");
        assert_eq!(c.records(), 2, "a last record without newline counts");
    }

    #[test]
    fn the_counter_agrees_with_the_reader() {
        for data in [
            &b"a,b\n1,\"x\ny\"\n\n\"\"\n"[..],
            b"x\n1",
            b"",
            b"\n\n",
            b"a\"b,\"c\"\"\nd\"\r\n",
            b"q,\"a\"b\nc\n",
        ] {
            let mut c = RecordCounter::default();
            for chunk in data.chunks(2) {
                c.feed(chunk);
            }
            assert_eq!(c.records() as usize, records(data).len(), "{data:?}");
        }
    }

    #[test]
    fn an_unclosed_quote_and_bad_utf8_are_errors_with_the_line() {
        let mut r = CsvRecords::new(&b"a\n\"open\nstill\n"[..]);
        let mut f = Vec::new();
        assert!(r.read_record(&mut f).unwrap());
        let e = r.read_record(&mut f).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let mut r = CsvRecords::new(&b"a\n\xff\n"[..]);
        assert!(r.read_record(&mut f).unwrap());
        let e = r.read_record(&mut f).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }
}
