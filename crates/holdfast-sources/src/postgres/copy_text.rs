//! PostgreSQL's side of the tables-mode CSV dialect (the dialect itself is
//! `holdfast_format::table_csv`): a stored table's CSV rewritten as COPY
//! text for a restore.

use std::io::{self, BufRead, Write};

use holdfast_format::table_csv::CsvRecords;

/// Rewrite a CSV stream (with its header) as PostgreSQL's COPY text format
/// (no header): tab-separated, `\N` for NULL, backslash escapes. In this
/// form no data line can be `\.` — which psql would take for the end of
/// inline COPY data, even inside a quoted CSV field. The fields at the
/// indexes in `skip` (generated columns) are left out.
pub fn csv_to_copy_text(r: &mut dyn BufRead, w: &mut dyn Write, skip: &[usize]) -> io::Result<()> {
    let mut csv = CsvRecords::new(r);
    let mut rec = Vec::new();
    csv.read_record(&mut rec)?; // the header
    let mut line = String::new();
    while csv.read_record(&mut rec)? {
        line.clear();
        let kept = rec.iter().enumerate().filter(|(i, _)| !skip.contains(i));
        for (n, (_, f)) in kept.enumerate() {
            if n > 0 {
                line.push('\t');
            }
            match f.value() {
                None => line.push_str("\\N"),
                Some(s) => {
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
