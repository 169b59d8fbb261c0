//! SQLite's stored DDL, read as tokens: which objects name a table, and a
//! `CREATE TABLE` without its foreign keys into given tables.
//!
//! SQLite keeps each object's DDL as the text it was created with
//! (`sqlite_schema.sql`), in any layout, so the text is tokenized as
//! SQLite does — quoted names (`"…"`, `[…]`, `` `…` ``), strings, comments —
//! rather than searched for substrings. Names compare case-insensitively
//! (ASCII), as SQLite compares them.

/// One token: its kind and where it is in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Whitespace or a comment.
    Space,
    /// A bare word: keyword or name.
    Word,
    /// A quoted name.
    Quoted,
    /// A string literal.
    Str,
    Punct,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

fn tokenize(sql: &str) -> Vec<Token> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // the end of a quoted run starting at `i` (doubled closers escape)
    let quoted_end = |i: usize, close: u8, doubles: bool| {
        let mut j = i + 1;
        while j < b.len() {
            if b[j] == close {
                if doubles && b.get(j + 1) == Some(&close) {
                    j += 2;
                    continue;
                }
                return j + 1;
            }
            j += 1;
        }
        b.len()
    };
    while i < b.len() {
        let c = b[i];
        let (kind, end) = if c.is_ascii_whitespace() {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            (Kind::Space, j)
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            let j = b[i..]
                .iter()
                .position(|&x| x == b'\n')
                .map_or(b.len(), |p| i + p + 1);
            (Kind::Space, j)
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let j = sql[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
            (Kind::Space, j)
        } else if c == b'\'' {
            (Kind::Str, quoted_end(i, b'\'', true))
        } else if c == b'"' {
            (Kind::Quoted, quoted_end(i, b'"', true))
        } else if c == b'`' {
            (Kind::Quoted, quoted_end(i, b'`', true))
        } else if c == b'[' {
            (Kind::Quoted, quoted_end(i, b']', false))
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            let mut j = i;
            while j < b.len()
                && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'$' || b[j] >= 0x80)
            {
                j += 1;
            }
            (Kind::Word, j)
        } else {
            (Kind::Punct, i + 1)
        };
        out.push(Token {
            kind,
            start: i,
            end,
        });
        i = end;
    }
    out
}

/// The name a word or quoted token stands for.
fn name_of(sql: &str, t: Token) -> Option<String> {
    let s = &sql[t.start..t.end];
    match t.kind {
        Kind::Word => Some(s.to_string()),
        Kind::Quoted | Kind::Str if s.len() >= 2 => {
            let (open, inner) = (s.as_bytes()[0], &s[1..s.len() - 1]);
            Some(match open {
                b'"' => inner.replace("\"\"", "\""),
                b'`' => inner.replace("``", "`"),
                b'\'' => inner.replace("''", "'"),
                _ => inner.to_string(),
            })
        }
        _ => None,
    }
}

fn is_one_of(name: &str, tables: &[String]) -> bool {
    tables.iter().any(|t| t.eq_ignore_ascii_case(name))
}

/// Whether `sql` names one of `tables` anywhere (as a word or a quoted
/// name, not inside a string or a comment).
pub fn names_any(sql: &str, tables: &[String]) -> bool {
    tokenize(sql)
        .into_iter()
        .filter(|t| matches!(t.kind, Kind::Word | Kind::Quoted))
        .any(|t| name_of(sql, t).is_some_and(|n| is_one_of(&n, tables)))
}

/// `sql`, a `CREATE TABLE` statement, without the foreign keys that
/// reference one of `tables`: a `FOREIGN KEY` table constraint goes whole
/// (with its comma), a column's `REFERENCES` clause goes with its actions
/// and deferral (and a `CONSTRAINT name` before it). Also the number of
/// foreign keys removed.
pub fn without_foreign_keys_into(sql: &str, tables: &[String]) -> (String, usize) {
    let toks = tokenize(sql);
    // significant tokens, with their depth inside parentheses
    let mut sig: Vec<(usize, u32)> = Vec::new();
    let mut depth = 0u32;
    for (i, t) in toks.iter().enumerate() {
        if t.kind == Kind::Space {
            continue;
        }
        let text = &sql[t.start..t.end];
        if t.kind == Kind::Punct && text == ")" {
            depth = depth.saturating_sub(1);
        }
        sig.push((i, depth));
        if t.kind == Kind::Punct && text == "(" {
            depth += 1;
        }
    }
    let word = |k: usize| -> String {
        sig.get(k)
            .map(|&(i, _)| toks[i])
            .filter(|t| t.kind == Kind::Word)
            .map(|t| sql[t.start..t.end].to_ascii_uppercase())
            .unwrap_or_default()
    };
    let punct = |k: usize, p: &str| {
        sig.get(k).is_some_and(|&(i, _)| {
            toks[i].kind == Kind::Punct && &sql[toks[i].start..toks[i].end] == p
        })
    };
    let name_at = |k: usize| sig.get(k).and_then(|&(i, _)| name_of(sql, toks[i]));

    // the definitions of the body: runs of depth-1 tokens between commas
    let Some(open) = (0..sig.len()).find(|&k| punct(k, "(")) else {
        return (sql.to_string(), 0);
    };
    let mut defs: Vec<(usize, usize)> = Vec::new(); // [first, last] in `sig`
    let mut first = open + 1;
    for (k, &(_, level)) in sig.iter().enumerate().skip(open + 1) {
        // the body's `)` is back at depth 0
        let closes = level == 0;
        if closes || (level == 1 && punct(k, ",")) {
            if k > first {
                defs.push((first, k - 1));
            }
            first = k + 1;
            if closes {
                break;
            }
        }
    }

    // byte ranges to cut
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut removed = 0;
    let start_of = |k: usize| toks[sig[k].0].start;
    let end_of = |k: usize| toks[sig[k].0].end;
    for (n, &(a, z)) in defs.iter().enumerate() {
        let mut head = a;
        if word(head) == "CONSTRAINT" {
            head += 2;
        }
        if word(head) == "FOREIGN" {
            let refs = (head..=z).find(|&k| word(k) == "REFERENCES");
            if refs.is_some_and(|r| name_at(r + 1).is_some_and(|t| is_one_of(&t, tables))) {
                removed += 1;
                // the definition and the comma before it (after it, when first)
                if n > 0 {
                    cuts.push((end_of(defs[n - 1].1), end_of(z)));
                } else if defs.len() > 1 {
                    cuts.push((start_of(a), start_of(defs[1].0)));
                } else {
                    cuts.push((start_of(a), end_of(z)));
                }
            }
            continue;
        }
        if matches!(word(head).as_str(), "PRIMARY" | "UNIQUE" | "CHECK") {
            continue;
        }
        // a column: its REFERENCES clause at the definition's own level
        let mut k = a;
        while k <= z {
            if sig[k].1 == 1
                && word(k) == "REFERENCES"
                && name_at(k + 1).is_some_and(|t| is_one_of(&t, tables))
            {
                let from = if k >= a + 2 && word(k - 2) == "CONSTRAINT" {
                    k - 2
                } else {
                    k
                };
                let mut end = k + 1;
                if punct(end + 1, "(") {
                    end += 1;
                    while end < z && !(punct(end, ")") && sig[end].1 == 1) {
                        end += 1;
                    }
                }
                // ON DELETE/UPDATE actions, MATCH, [NOT] DEFERRABLE [INITIALLY …]
                loop {
                    let next = end + 1;
                    if next > z {
                        break;
                    }
                    match word(next).as_str() {
                        "ON" => {
                            end = next + 2;
                            match word(end).as_str() {
                                "SET" | "NO" => end += 1,
                                _ => {}
                            }
                        }
                        "MATCH" => end = next + 1,
                        "NOT" if word(next + 1) == "DEFERRABLE" => end = next + 1,
                        "DEFERRABLE" => end = next,
                        "INITIALLY" => end = next + 1,
                        _ => break,
                    }
                }
                let end = end.min(z);
                // with the space before it
                let cut_from = if from > a {
                    end_of(from - 1)
                } else {
                    start_of(from)
                };
                cuts.push((cut_from, end_of(end)));
                removed += 1;
                k = end + 1;
                continue;
            }
            k += 1;
        }
    }
    if cuts.is_empty() {
        return (sql.to_string(), 0);
    }
    cuts.sort();
    let mut out = String::with_capacity(sql.len());
    let mut at = 0;
    for (from, to) in cuts {
        if from >= at {
            out.push_str(&sql[at..from]);
            at = to;
        }
    }
    out.push_str(&sql[at..]);
    (out, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left() -> Vec<String> {
        vec!["Vault".to_string()]
    }

    #[test]
    fn names_are_tokens_not_substrings() {
        assert!(names_any("CREATE VIEW v AS SELECT * FROM vault", &left()));
        assert!(names_any(
            "CREATE VIEW v AS SELECT * FROM \"VAULT\" x",
            &left()
        ));
        assert!(names_any("CREATE VIEW v AS SELECT a FROM [vault]", &left()));
        assert!(!names_any(
            "CREATE VIEW v AS SELECT * FROM vault_archive",
            &left()
        ));
        assert!(!names_any(
            "CREATE VIEW v AS SELECT 'vault' AS s -- vault\n FROM t",
            &left()
        ));
    }

    #[test]
    fn column_references_go_with_their_actions() {
        let sql = "CREATE TABLE orders (id INTEGER PRIMARY KEY, vault_id INT NOT NULL REFERENCES vault(id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED, c INT REFERENCES customers(id))";
        let (out, n) = without_foreign_keys_into(sql, &left());
        assert_eq!(n, 1);
        assert_eq!(
            out,
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, vault_id INT NOT NULL, c INT REFERENCES customers(id))"
        );
        let sql = "CREATE TABLE o (v INT CONSTRAINT o_v REFERENCES \"vault\" ON UPDATE NO ACTION MATCH FULL CHECK (v > 0))";
        assert_eq!(
            without_foreign_keys_into(sql, &left()),
            ("CREATE TABLE o (v INT CHECK (v > 0))".to_string(), 1)
        );
    }

    #[test]
    fn table_constraints_go_whole_with_one_comma() {
        let sql = "CREATE TABLE o (\n  id INT,\n  v INT,\n  CONSTRAINT fk FOREIGN KEY (v) REFERENCES [vault] (id),\n  UNIQUE (v)\n)";
        assert_eq!(
            without_foreign_keys_into(sql, &left()),
            (
                "CREATE TABLE o (\n  id INT,\n  v INT,\n  UNIQUE (v)\n)".to_string(),
                1
            )
        );
        let sql = "CREATE TABLE o (id INT, v INT, FOREIGN KEY (v) REFERENCES vault (id) ON DELETE CASCADE)";
        assert_eq!(
            without_foreign_keys_into(sql, &left()),
            ("CREATE TABLE o (id INT, v INT)".to_string(), 1)
        );
    }

    #[test]
    fn other_tables_are_untouched() {
        let sql = "CREATE TABLE o (id INT REFERENCES vault_archive, 'vault' TEXT, FOREIGN KEY (id) REFERENCES other(id)) -- vault";
        assert_eq!(
            without_foreign_keys_into(sql, &left()),
            (sql.to_string(), 0)
        );
    }
}
