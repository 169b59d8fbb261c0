//! Validating a JSON Lines event stream line by line: every line is a JSON
//! object with an `eventId` (a non-empty string or an integer) and an
//! optional `schemaVersion` (a positive integer; absent means 1) no higher
//! than the operator allows. Blank lines (keep-alives) are skipped.
//!
//! [`EventReader`] sits between the HTTP body and the repository: it hands
//! on only whole, valid lines, each ending in `\n`, and remembers why it
//! stopped, so a stream cut short never looks like a complete one.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read};

use serde_json::Value;

/// A line longer than this is refused (an event is not a video).
pub const MAX_LINE: usize = 16 << 20;

/// What was learned from the events so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventStats {
    pub events: u64,
    pub first_event_id: Option<String>,
    pub last_event_id: Option<String>,
    /// schemaVersion → number of events.
    pub schema_versions: BTreeMap<u64, u64>,
}

/// Why a stream is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    /// 1-based line number in the stream as received.
    pub line: u64,
    pub why: String,
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

/// The event's id as text (integers in decimal).
pub fn event_id(v: &serde_json::Map<String, Value>) -> Result<String, String> {
    match v.get("eventId") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Some(other) => Err(format!(
            "eventId must be a non-empty string or an integer, not {other}"
        )),
        None => Err("the event has no eventId".into()),
    }
}

/// The event's schema version (1 when absent).
pub fn schema_version(v: &serde_json::Map<String, Value>) -> Result<u64, String> {
    match v.get("schemaVersion") {
        None => Ok(1),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v >= 1) => Ok(n.as_u64().unwrap()),
        Some(other) => Err(format!(
            "schemaVersion must be a positive integer, not {other}"
        )),
    }
}

/// Checks lines and keeps the statistics.
#[derive(Debug, Default)]
pub struct EventValidator {
    pub max_schema_version: Option<u64>,
    pub stats: EventStats,
}

impl EventValidator {
    pub fn new(max_schema_version: Option<u64>) -> Self {
        EventValidator {
            max_schema_version,
            stats: EventStats::default(),
        }
    }

    /// Check one line (without its `\n`). Ok(false) for a blank line.
    pub fn check(&mut self, line: &[u8]) -> Result<bool, String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(false);
        }
        let v: serde_json::Map<String, Value> = serde_json::from_slice(line).map_err(|e| {
            if e.is_eof() {
                "the line ends in the middle of a JSON object".to_string()
            } else {
                format!("not a JSON object: {e}")
            }
        })?;
        let id = event_id(&v)?;
        let version = schema_version(&v)?;
        if let Some(max) = self.max_schema_version
            && version > max
        {
            return Err(format!(
                "event {id} has schemaVersion {version}, above --max-schema-version {max}; \
                 upgrade the consumer of these events before backing them up"
            ));
        }
        let s = &mut self.stats;
        s.events += 1;
        if s.first_event_id.is_none() {
            s.first_event_id = Some(id.clone());
        }
        s.last_event_id = Some(id);
        *s.schema_versions.entry(version).or_default() += 1;
        Ok(true)
    }
}

/// A reader over a JSON Lines body that yields only validated lines, each
/// ending in `\n`. On a bad line it returns an error and keeps the reason
/// in [`EventReader::failure`].
pub struct EventReader<R> {
    inner: R,
    pub validator: EventValidator,
    pub failure: Option<EventError>,
    line_no: u64,
    line: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    done: bool,
}

impl<R: BufRead> EventReader<R> {
    pub fn new(inner: R, validator: EventValidator) -> Self {
        EventReader {
            inner,
            validator,
            failure: None,
            line_no: 0,
            line: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            done: false,
        }
    }

    /// The reader it read from.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn fail(&mut self, why: String) -> io::Error {
        let e = EventError {
            line: self.line_no,
            why,
        };
        let io = io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        self.failure = Some(e);
        io
    }

    /// Read the next line into `self.line`; false at the end of the stream.
    fn next_line(&mut self) -> io::Result<bool> {
        self.line.clear();
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.line_no += 1;
                    return Err(self.fail(format!("the stream broke off: {e}")));
                }
            };
            if buf.is_empty() {
                if self.line.is_empty() {
                    return Ok(false);
                }
                // A last line without its newline must still be whole.
                self.line_no += 1;
                return Ok(true);
            }
            let (take, found) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let body = if found {
                &buf[..take - 1]
            } else {
                &buf[..take]
            };
            self.line.extend_from_slice(body);
            self.inner.consume(take);
            if self.line.len() > MAX_LINE {
                self.line_no += 1;
                return Err(self.fail(format!("a line is longer than {} MiB", MAX_LINE >> 20)));
            }
            if found {
                self.line_no += 1;
                return Ok(true);
            }
        }
    }
}

impl<R: BufRead> Read for EventReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            if let Some(f) = &self.failure {
                return Err(io::Error::new(io::ErrorKind::InvalidData, f.to_string()));
            }
            if !self.next_line()? {
                self.done = true;
                return Ok(0);
            }
            let line = std::mem::take(&mut self.line);
            let outcome = self.validator.check(&line);
            match outcome {
                Ok(true) => {
                    self.out.clear();
                    self.out
                        .extend_from_slice(line.strip_suffix(b"\r").unwrap_or(&line));
                    self.out.push(b'\n');
                    self.out_pos = 0;
                }
                Ok(false) => {}
                Err(why) => return Err(self.fail(why)),
            }
            self.line = line;
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], max: Option<u64>) -> (Vec<u8>, EventReader<&[u8]>) {
        let mut r = EventReader::new(input, EventValidator::new(max));
        let mut out = Vec::new();
        let _ = r.read_to_end(&mut out);
        (out, r)
    }

    #[test]
    fn valid_stream_with_keepalives_and_crlf() {
        let input = b"{\"eventId\":\"a\",\"schemaVersion\":2}\r\n\n{\"eventId\":7}\n  \n{\"eventId\":\"z\",\"x\":[1]}";
        let (out, r) = run(input, Some(2));
        assert!(r.failure.is_none(), "{:?}", r.failure);
        assert_eq!(
            out,
            b"{\"eventId\":\"a\",\"schemaVersion\":2}\n{\"eventId\":7}\n{\"eventId\":\"z\",\"x\":[1]}\n"
        );
        let s = r.validator.stats;
        assert_eq!(s.events, 3);
        assert_eq!(s.first_event_id.as_deref(), Some("a"));
        assert_eq!(s.last_event_id.as_deref(), Some("z"));
        assert_eq!(s.schema_versions, BTreeMap::from([(1, 2), (2, 1)]));
    }

    #[test]
    fn bad_lines_are_named() {
        let cases: &[(&[u8], Option<u64>, &str, u64)] = &[
            (
                b"{\"eventId\":1}\n{\"eventId\":2,\"a\":\"cut",
                None,
                "ends in the middle",
                2,
            ),
            (b"{\"eventId\":1}\n[1,2]\n", None, "not a JSON object", 2),
            (b"{\"id\":1}\n", None, "no eventId", 1),
            (b"{\"eventId\":\"\"}\n", None, "non-empty string", 1),
            (
                b"{\"eventId\":1.5}\n",
                None,
                "non-empty string or an integer",
                1,
            ),
            (
                b"{\"eventId\":1,\"schemaVersion\":0}\n",
                None,
                "positive integer",
                1,
            ),
            (
                b"{\"eventId\":1,\"schemaVersion\":\"2\"}\n",
                None,
                "positive integer",
                1,
            ),
            (
                b"{\"eventId\":1}\n\n{\"eventId\":2,\"schemaVersion\":4}\n",
                Some(3),
                "above --max-schema-version 3",
                3,
            ),
        ];
        for (input, max, want, line) in cases {
            let (_, r) = run(input, *max);
            let f = r
                .failure
                .unwrap_or_else(|| panic!("{:?} accepted", String::from_utf8_lossy(input)));
            assert!(f.why.contains(want), "{f}");
            assert_eq!(f.line, *line, "{f}");
        }
    }

    #[test]
    fn a_broken_body_is_a_failure() {
        struct Broken(u8);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "reset by peer",
                    ));
                }
                self.0 -= 1;
                let line = b"{\"eventId\":1}\n";
                buf[..line.len()].copy_from_slice(line);
                Ok(line.len())
            }
        }
        let mut r = EventReader::new(io::BufReader::new(Broken(3)), EventValidator::new(None));
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
        let f = r.failure.unwrap();
        assert!(f.why.contains("broke off"), "{f}");
        assert_eq!(r.validator.stats.events, 3);
    }
}
