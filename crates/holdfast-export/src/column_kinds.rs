//! What a column's SQL type means for the bundle's typed views (JSON and
//! the workbook): numbers stay numbers, booleans booleans, JSON columns
//! embedded documents, and everything else text. The CSV is the exact copy;
//! these views only ever *add* typing where the text is unambiguous, so a
//! value that does not fit its column's kind (`NaN` in a numeric column,
//! `yes` in a boolean one) is kept as text rather than guessed at.

use holdfast_format::manifest::ManifestColumn;

use holdfast_format::table_csv::CsvField;

/// How a column's values are rendered in JSON and in the workbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Integer, decimal and floating-point types.
    Number,
    Boolean,
    /// `json`/`jsonb`: the value is itself a JSON document.
    Json,
    Text,
}

/// The type names (lowercase, without `(…)` arguments and MySQL's
/// `unsigned`/`zerofill`) whose values are numbers: PostgreSQL's, MySQL's
/// and SQLite's usual spellings. Exact names, not substrings: SQLite's
/// "contains INT" rule would make PostgreSQL's `interval` and `point`
/// numbers.
const NUMBER_TYPES: &[&str] = &[
    "smallint",
    "integer",
    "int",
    "bigint",
    "int2",
    "int4",
    "int8",
    "tinyint",
    "mediumint",
    "smallserial",
    "serial",
    "bigserial",
    "serial2",
    "serial4",
    "serial8",
    "numeric",
    "decimal",
    "dec",
    "fixed",
    "real",
    "float",
    "float4",
    "float8",
    "double",
    "double precision",
    "unsigned big int",
];

impl ColumnKind {
    /// The kind of a column whose type the server reported as `sql_type`.
    pub fn of(sql_type: &str) -> ColumnKind {
        let lower = sql_type.trim().to_ascii_lowercase();
        // Arrays (`integer[]`) are text: `{1,2}` is no JSON number.
        if lower.ends_with(']') {
            return ColumnKind::Text;
        }
        // `numeric(20,6)`, `int(11) unsigned`, `decimal(10, 2) zerofill`.
        let mut base = String::new();
        let mut depth = 0;
        for c in lower.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => base.push(c),
                _ => {}
            }
        }
        let words: Vec<&str> = base
            .split_whitespace()
            .filter(|w| !matches!(*w, "unsigned" | "signed" | "zerofill"))
            .collect();
        let base = words.join(" ");
        if NUMBER_TYPES.contains(&base.as_str()) {
            ColumnKind::Number
        } else if matches!(base.as_str(), "boolean" | "bool") {
            ColumnKind::Boolean
        } else if matches!(base.as_str(), "json" | "jsonb") {
            ColumnKind::Json
        } else {
            ColumnKind::Text
        }
    }
}

/// True when `s` is a number in JSON's grammar (`-?int(.frac)?(e±exp)?`),
/// so it can be written into JSON as it is, digit for digit. `NaN`,
/// `Infinity`, `+1` and `.5` are not.
pub fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// The significant digits of a JSON number (`0.00120` → 2, `1000` → 1):
/// up to 15 survive a trip through a double (Excel's number) unchanged.
pub fn significant_digits(s: &str) -> usize {
    let mantissa = s.split(['e', 'E']).next().unwrap_or("");
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let start = digits.iter().position(|&d| d != b'0');
    let end = digits.iter().rposition(|&d| d != b'0');
    match (start, end) {
        (Some(a), Some(z)) => z - a + 1,
        _ => 0,
    }
}

/// A boolean column's value: PostgreSQL writes `t`/`f`, others
/// `true`/`false` or `1`/`0`. Anything else is not a boolean.
pub fn parse_boolean(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "t" | "true" | "1" => Some(true),
        "f" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// True when `s` is one complete JSON document (what a `json`/`jsonb`
/// column should hold), checked without building it in memory.
pub fn is_json_document(s: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
}

/// A table's columns as its CSV header names them, with their kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub names: Vec<String>,
    pub kinds: Vec<ColumnKind>,
}

impl Columns {
    /// Columns from a CSV header, typed from the snapshot manifest's
    /// declared columns: by position when the names agree there, else by
    /// name, else text. With no header (an empty file) the declared
    /// columns stand in.
    pub fn from_header(header: Option<&[CsvField]>, declared: &[ManifestColumn]) -> Columns {
        let names: Vec<String> = match header {
            Some(h) => h
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    if f.text.is_empty() {
                        format!("column_{}", i + 1)
                    } else {
                        f.text.clone()
                    }
                })
                .collect(),
            None => declared.iter().map(|c| c.name.clone()).collect(),
        };
        let kinds = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let decl = declared
                    .get(i)
                    .filter(|c| &c.name == name)
                    .or_else(|| declared.iter().find(|c| &c.name == name));
                decl.map_or(ColumnKind::Text, |c| ColumnKind::of(&c.sql_type))
            })
            .collect();
        Columns { names, kinds }
    }

    /// The names as JSON object keys: unique (a query may return two `id`
    /// columns; the second becomes `id_2`), so no value is lost to a
    /// reader that keeps the last of duplicate keys.
    pub fn unique_keys(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.names
            .iter()
            .map(|n| {
                let mut key = n.clone();
                let mut k = 2;
                while !seen.insert(key.clone()) {
                    key = format!("{n}_{k}");
                    k += 1;
                }
                key
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_postgres_mysql_and_sqlite_type_names() {
        for t in [
            "integer",
            "bigint",
            "numeric(20,6)",
            "double precision",
            "real",
            "int",
            "int(11) unsigned",
            "decimal(10, 2) zerofill",
            "tinyint(1)",
            "INTEGER",
            "REAL",
            "NUMERIC",
            "smallserial",
        ] {
            assert_eq!(ColumnKind::of(t), ColumnKind::Number, "{t}");
        }
        for t in ["boolean", "bool", "BOOLEAN"] {
            assert_eq!(ColumnKind::of(t), ColumnKind::Boolean, "{t}");
        }
        for t in ["json", "jsonb", "JSON"] {
            assert_eq!(ColumnKind::of(t), ColumnKind::Json, "{t}");
        }
        for t in [
            "text",
            "varchar(255)",
            "bytea",
            "blob",
            "interval",
            "point",
            "integer[]",
            "timestamp with time zone",
            "money",
            "TEXT",
            "BLOB",
            "",
        ] {
            assert_eq!(ColumnKind::of(t), ColumnKind::Text, "{t}");
        }
    }

    #[test]
    fn json_numbers_follow_the_json_grammar() {
        for s in [
            "0",
            "-0",
            "12",
            "-12.5",
            "1e10",
            "1.5E-7",
            "0.000120",
            "123456789012345678901234567890",
        ] {
            assert!(is_json_number(s), "{s}");
        }
        for s in [
            "",
            "-",
            "+1",
            ".5",
            "5.",
            "01",
            "1e",
            "NaN",
            "Infinity",
            "-Infinity",
            "1,5",
            " 1",
            "0x1f",
            "1 ",
        ] {
            assert!(!is_json_number(s), "{s}");
        }
    }

    #[test]
    fn significant_digits_ignore_leading_and_trailing_zeros() {
        assert_eq!(significant_digits("0.00120"), 2);
        assert_eq!(significant_digits("1000"), 1);
        assert_eq!(significant_digits("-123.450e5"), 5);
        assert_eq!(significant_digits("9007199254740993"), 16);
        assert_eq!(significant_digits("0"), 0);
    }

    #[test]
    fn booleans_and_json_documents() {
        assert_eq!(parse_boolean("t"), Some(true));
        assert_eq!(parse_boolean("FALSE"), Some(false));
        assert_eq!(parse_boolean("1"), Some(true));
        assert_eq!(parse_boolean("0"), Some(false));
        assert_eq!(parse_boolean("yes"), None);
        assert!(is_json_document(r#"{"a": [1, 2.5, null]}"#));
        assert!(is_json_document(" 3 "));
        assert!(!is_json_document("{\"a\": 1} x"));
        assert!(!is_json_document("{'a': 1}"));
        assert!(!is_json_document(""));
    }

    #[test]
    fn columns_take_kinds_by_position_then_by_name() {
        let declared = vec![
            ManifestColumn::stored("id", "integer"),
            ManifestColumn::stored("ok", "boolean"),
        ];
        let field = |t: &str| CsvField {
            text: t.into(),
            quoted: false,
        };
        let c = Columns::from_header(Some(&[field("ok"), field("id"), field("")]), &declared);
        assert_eq!(c.names, ["ok", "id", "column_3"]);
        assert_eq!(
            c.kinds,
            [ColumnKind::Boolean, ColumnKind::Number, ColumnKind::Text]
        );
        let c = Columns::from_header(None, &declared);
        assert_eq!(c.names, ["id", "ok"]);
        let dup = Columns {
            names: vec!["id".into(), "id".into(), "id_2".into()],
            kinds: vec![ColumnKind::Text; 3],
        };
        assert_eq!(dup.unique_keys(), ["id", "id_2", "id_2_2"]);
    }
}
