//! Go's `strconv.Quote` / `strconv.Unquote`, as restic applies them to node
//! names before JSON encoding: a name is stored as the body of a Go quoted
//! string, which is how names that are not valid UTF-8 survive JSON.

/// Quote `name` the way Go's `strconv.Quote` does (without the surrounding
/// quotes). Invalid UTF-8 bytes become `\xNN`; control characters are
/// escaped; printable text is kept literally.
pub fn quote(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_escaped(&mut out, s);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                push_escaped(&mut out, std::str::from_utf8(valid).unwrap());
                let bad = e.error_len().unwrap_or(after.len());
                for b in &after[..bad] {
                    out.push_str(&format!("\\x{b:02x}"));
                }
                rest = &after[bad..];
            }
        }
    }
    out
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            // C1 controls and a few invisible code points Go does not
            // consider printable.
            c if (0x80..0xa0).contains(&(c as u32)) || c == '\u{ad}' || c == '\u{feff}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid Go-quoted name {0:?}")]
pub struct UnquoteError(pub String);

/// Inverse of [`quote`]: accepts everything Go's `strconv.Unquote` accepts
/// for a double-quoted string body.
pub fn unquote(s: &str) -> Result<Vec<u8>, UnquoteError> {
    let err = || UnquoteError(s.to_string());
    if !s.contains('\\') && !s.contains('"') && !s.contains('\n') {
        return Ok(s.as_bytes().to_vec());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\n' {
            return Err(err());
        }
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *b.get(i + 1).ok_or_else(err)?;
        i += 2;
        let hex = |n: usize, i: usize| -> Result<u32, UnquoteError> {
            let h = s.get(i..i + n).ok_or_else(err)?;
            if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(err());
            }
            u32::from_str_radix(h, 16).map_err(|_| err())
        };
        match e {
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'\\' => out.push(b'\\'),
            b'"' => out.push(b'"'),
            b'x' => {
                out.push(hex(2, i)? as u8);
                i += 2;
            }
            b'0'..=b'7' => {
                let o = s.get(i - 1..i + 2).ok_or_else(err)?;
                if !o.bytes().all(|c| (b'0'..=b'7').contains(&c)) {
                    return Err(err());
                }
                let v = u32::from_str_radix(o, 8).map_err(|_| err())?;
                if v > 255 {
                    return Err(err());
                }
                out.push(v as u8);
                i += 2;
            }
            b'u' | b'U' => {
                let n = if e == b'u' { 4 } else { 8 };
                let v = hex(n, i)?;
                let ch = char::from_u32(v).ok_or_else(err)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                i += n;
            }
            _ => return Err(err()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_go_for_common_cases() {
        assert_eq!(quote(b"plain.txt"), "plain.txt");
        assert_eq!(quote(b"a\"b\\c"), "a\\\"b\\\\c");
        assert_eq!(quote(b"tab\there\n"), "tab\\there\\n");
        assert_eq!(quote(b"\xff\xfeok"), "\\xff\\xfeok");
        assert_eq!(quote("grüße 日本".as_bytes()), "grüße 日本");
        assert_eq!(quote(b"\x01\x7f"), "\\x01\\x7f");
    }

    #[test]
    fn unquotes_go_forms() {
        assert_eq!(
            unquote("\\xff\\u00e4\\U0001F600\\101").unwrap(),
            b"\xff\xc3\xa4\xf0\x9f\x98\x80A"
        );
        assert!(unquote("bad\\q").is_err());
        assert!(unquote("a\"b").is_err());
        assert!(unquote("trailing\\").is_err());
        assert!(unquote("\\x4").is_err());
        assert!(unquote("\\777").is_err());
    }

    proptest! {
        #[test]
        fn prop_round_trip(name in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(unquote(&quote(&name)).unwrap(), name);
        }
        #[test]
        fn prop_unquote_never_panics(s in ".{0,40}") {
            let _ = unquote(&s);
        }
    }
}
