//! A table's CSV as a JSON array of objects keyed by column name, written
//! row by row as the CSV is read: one object per line, so memory holds one
//! row and `jq`/`grep` can work line by line too.
//!
//! NULL becomes `null` and the empty string `""`; numbers, booleans and
//! JSON documents are typed as [`crate::column_kinds`] decides. Numbers and
//! JSON documents are copied as text, never parsed into doubles or maps,
//! so a `numeric(30,10)` keeps every digit and a document its key order.

use std::io::{self, BufRead, Write};

use crate::column_kinds::{ColumnKind, Columns, is_json_document, is_json_number, parse_boolean};
use holdfast_format::table_csv::{CsvField, CsvRecords};

/// Write `value` (None = NULL) as a JSON value for a column of `kind`.
pub fn write_json_value(
    out: &mut impl Write,
    kind: ColumnKind,
    value: Option<&str>,
) -> io::Result<()> {
    let Some(v) = value else {
        return out.write_all(b"null");
    };
    match kind {
        ColumnKind::Number if is_json_number(v) => out.write_all(v.as_bytes()),
        ColumnKind::Boolean => match parse_boolean(v) {
            Some(true) => out.write_all(b"true"),
            Some(false) => out.write_all(b"false"),
            None => write_json_string(out, v),
        },
        ColumnKind::Json if is_json_document(v) => out.write_all(v.trim().as_bytes()),
        _ => write_json_string(out, v),
    }
}

fn write_json_string(out: &mut impl Write, s: &str) -> io::Result<()> {
    serde_json::to_writer(&mut *out, s).map_err(io::Error::other)
}

/// The most bytes the JSON for a table can take, from its CSV's size and
/// record count: a CSV byte becomes at most 6 (`\u001f`), every field adds
/// its key and punctuation (and `null` for a NULL's zero bytes). Used to
/// switch ZIP64 on before the entry is started, as a streamed zip must.
pub fn json_size_bound(csv_bytes: u64, rows: u64, keys: &[String]) -> u64 {
    let per_row: u64 = keys.iter().map(|k| k.len() as u64 * 6 + 2 + 9).sum::<u64>() + 8;
    csv_bytes
        .saturating_mul(6)
        .saturating_add(rows.saturating_mul(per_row))
        .saturating_add(64)
}

/// Stream the records after the header from `csv` to `out` as a JSON
/// array. Returns the number of rows. A record whose field count differs
/// from the header's is an error: the CSV is then not what the snapshot
/// format promises, and guessing which value belongs to which column would
/// hand the reader wrong data.
pub fn write_json_rows<R: BufRead>(
    csv: &mut CsvRecords<R>,
    columns: &Columns,
    out: &mut impl Write,
) -> io::Result<u64> {
    let keys: Vec<Vec<u8>> = columns
        .unique_keys()
        .iter()
        .map(|k| serde_json::to_vec(k).expect("a string serialises"))
        .collect();
    let mut fields: Vec<CsvField> = Vec::new();
    let mut rows = 0u64;
    out.write_all(b"[")?;
    loop {
        let line = csv.line();
        if !csv.read_record(&mut fields)? {
            break;
        }
        if fields.len() != keys.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the record on line {line} has {} fields, the header {}",
                    fields.len(),
                    keys.len()
                ),
            ));
        }
        out.write_all(if rows == 0 { b"\n  {" } else { b",\n  {" })?;
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.write_all(b", ")?;
            }
            out.write_all(&keys[i])?;
            out.write_all(b": ")?;
            write_json_value(out, columns.kinds[i], f.value())?;
        }
        out.write_all(b"}")?;
        rows += 1;
    }
    out.write_all(if rows == 0 { b"]\n" } else { b"\n]\n" })?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_format::manifest::ManifestColumn;

    fn convert(csv: &str, types: &[(&str, &str)]) -> serde_json::Value {
        let declared: Vec<ManifestColumn> = types
            .iter()
            .map(|(n, t)| ManifestColumn::stored(n, t))
            .collect();
        let mut r = CsvRecords::new(csv.as_bytes());
        let mut header = Vec::new();
        assert!(r.read_record(&mut header).unwrap());
        let cols = Columns::from_header(Some(&header), &declared);
        let mut out = Vec::new();
        let rows = write_json_rows(&mut r, &cols, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
        assert_eq!(rows as usize, v.as_array().unwrap().len());
        v
    }

    #[test]
    fn values_are_typed_by_column_and_null_differs_from_empty() {
        let v = convert(
            "id,price,ok,doc,note,bin\n\
             1,12.50,t,\"{\"\"b\"\": 1, \"\"a\"\": [true]}\",\"\",\\x0aff\n\
             -2,NaN,f,not json,,\n\
             ,,,,\"say \"\"hi\"\",\nbye\",\n",
            &[
                ("id", "bigint"),
                ("price", "numeric(10,2)"),
                ("ok", "boolean"),
                ("doc", "jsonb"),
                ("note", "text"),
                ("bin", "bytea"),
            ],
        );
        assert_eq!(
            v,
            serde_json::json!([
                {"id": 1, "price": 12.50, "ok": true, "doc": {"b": 1, "a": [true]}, "note": "", "bin": "\\x0aff"},
                {"id": -2, "price": "NaN", "ok": false, "doc": "not json", "note": null, "bin": null},
                {"id": null, "price": null, "ok": null, "doc": null, "note": "say \"hi\",\nbye", "bin": null},
            ])
        );
    }

    #[test]
    fn numbers_and_documents_keep_their_exact_text() {
        let mut out = Vec::new();
        write_json_value(
            &mut out,
            ColumnKind::Number,
            Some("12345678901234567890.123456"),
        )
        .unwrap();
        assert_eq!(out, b"12345678901234567890.123456");
        out.clear();
        write_json_value(&mut out, ColumnKind::Json, Some(r#"{"z": 1, "a": 2}"#)).unwrap();
        assert_eq!(out, br#"{"z": 1, "a": 2}"#);
        out.clear();
        write_json_value(&mut out, ColumnKind::Text, Some("\u{1}ü")).unwrap();
        assert_eq!(out, "\"\\u0001ü\"".as_bytes());
    }

    #[test]
    fn an_empty_table_is_an_empty_array_and_ragged_rows_fail() {
        assert_eq!(convert("a,b\n", &[]), serde_json::json!([]));
        let mut r = CsvRecords::new(&b"a,b\n1,2\n3\n"[..]);
        let mut h = Vec::new();
        r.read_record(&mut h).unwrap();
        let cols = Columns::from_header(Some(&h), &[]);
        let e = write_json_rows(&mut r, &cols, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("line 3 has 1 fields"), "{e}");
    }

    #[test]
    fn the_size_bound_holds_for_the_worst_case() {
        // Control characters (6 bytes each in JSON) and NULLs (4 bytes from 0).
        let csv = "k\u{1}\n\u{1}\u{1}\u{1}\n\n\n";
        let mut r = CsvRecords::new(csv.as_bytes());
        let mut h = Vec::new();
        r.read_record(&mut h).unwrap();
        let cols = Columns::from_header(Some(&h), &[]);
        let mut out = Vec::new();
        let rows = write_json_rows(&mut r, &cols, &mut out).unwrap();
        assert!((out.len() as u64) <= json_size_bound(csv.len() as u64, rows, &cols.unique_keys()));
    }
}
