//! The bundle's README.md: what the files are and how to open and check
//! them, written for someone who has never heard of holdfast, CSV or SQL —
//! the person a company hands "all your data" to. Markdown so that it
//! reads as plain text too.

use std::fmt::Write as _;

use holdfast_format::snapshot::Snapshot;

use crate::bundle_manifest::{BUNDLE_MANIFEST, BUNDLE_README, BundleManifest};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The snapshot's time as a person reads it, in the offset it was taken in:
/// `1 May 2024 at 14:05 (UTC+02:00)`.
fn human_time(snapshot: &Snapshot) -> String {
    let t = snapshot.time;
    let (y, mo, d, h, mi, _) = t.civil();
    let zone = if t.offset == 0 {
        "UTC".to_string()
    } else {
        let sign = if t.offset < 0 { '-' } else { '+' };
        let o = t.offset.unsigned_abs();
        format!("UTC{sign}{:02}:{:02}", o / 3600, o % 3600 / 60)
    };
    let month = MONTHS
        .get((mo as usize).wrapping_sub(1))
        .copied()
        .unwrap_or("?");
    format!("{d} {month} {y} at {h:02}:{mi:02} ({zone})")
}

fn product(kind: &str) -> &str {
    match kind {
        "postgres" => "PostgreSQL",
        "mysql" => "MySQL",
        "sqlite" => "SQLite",
        other => other,
    }
}

/// Text for a Markdown table cell: `|` would end the cell, a newline the row.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// The README of `bundle`, whose files are all written except the README
/// and the manifest themselves.
pub fn readme(bundle: &BundleManifest, snapshot: &Snapshot, has_schema: bool) -> String {
    let src = &bundle.source;
    let db = src.database.as_deref().unwrap_or("(unnamed)");
    let when = human_time(snapshot);
    let short_id: String = bundle.snapshot.id.chars().take(8).collect();
    let total: u64 = bundle.tables.iter().map(|t| t.rows).sum();
    let mut r = String::new();
    let w = &mut r;

    let _ = writeln!(w, "# Data export: {db}\n");
    let _ = writeln!(
        w,
        "This archive holds a copy of the data in the {} database **{}**, as it was on \
         **{when}**. It was made by holdfast from backup snapshot `{short_id}`. Every file in it \
         opens with ordinary software: nothing here needs holdfast or a database.\n",
        product(&src.kind),
        cell(db)
    );
    let _ = writeln!(w, "- **Taken:** {when}");
    let _ = writeln!(
        w,
        "- **Database:** {} ({}{})",
        cell(db),
        product(&src.kind),
        src.server_version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        w,
        "- **Source:** `{}` (passwords are never stored)",
        src.address.replace('`', "'")
    );
    if let Some(t) = &src.tenant {
        let col = t.get("column").and_then(|v| v.as_str()).unwrap_or("?");
        let val = t
            .get("value")
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default();
        let _ = writeln!(
            w,
            "- **Scope:** only the rows that belong to one customer (tenant): those whose column \
             `{}` is `{}`. Tables without that column, if any are here, hold data shared by all \
             customers.",
            col.replace('`', "'"),
            val.replace('`', "'")
        );
    } else {
        let _ = writeln!(
            w,
            "- **Scope:** the whole database (every row of the tables listed below)"
        );
    }
    let _ = writeln!(
        w,
        "- **Contents:** {} table(s), {} row(s) in total\n",
        bundle.tables.len(),
        thousands(total)
    );

    let _ = writeln!(w, "## What is in this archive\n");
    let _ = writeln!(w, "| File | What it holds | How to open it |");
    let _ = writeln!(w, "|---|---|---|");
    let _ = writeln!(
        w,
        "| `{}` | Every table in one workbook, one sheet per table; the first row of each sheet \
         names the columns | Microsoft Excel, LibreOffice Calc, Apple Numbers or Google Sheets |",
        bundle.workbook
    );
    let _ = writeln!(
        w,
        "| `csv/` | One file per table, exactly as it was backed up (\"comma-separated values\") \
         | Any spreadsheet program, or a text editor |"
    );
    let _ = writeln!(
        w,
        "| `json/` | The same tables in JSON, for programmers and other software | A text editor, \
         or any programming language |"
    );
    if has_schema {
        let _ = writeln!(
            w,
            "| `schema.sql` | The tables' definitions (columns, types, keys), for a database \
             administrator who wants to rebuild the database | A text editor |"
        );
    }
    let _ = writeln!(
        w,
        "| `{BUNDLE_MANIFEST}` | A list of every file with its size and checksum, and every table \
         with its columns, for checking and for software | A text editor |"
    );
    let _ = writeln!(
        w,
        "| `{BUNDLE_README}` | This explanation | A text editor |\n"
    );
    let _ = writeln!(
        w,
        "**Start with `{}`.** To open a CSV file in Excel with accented letters and symbols \
         shown correctly, use *Data → From Text/CSV* and choose the *UTF-8* encoding rather than \
         double-clicking it.\n",
        bundle.workbook
    );

    let _ = writeln!(w, "## Tables\n");
    let _ = writeln!(
        w,
        "| Table | Rows | Spreadsheet sheet | CSV file | JSON file |"
    );
    let _ = writeln!(w, "|---|---:|---|---|---|");
    for t in &bundle.tables {
        let name = if t.kind == "query" {
            format!("{} (saved query result)", cell(&t.name))
        } else {
            cell(&t.name)
        };
        let _ = writeln!(
            w,
            "| {name} | {} | {} | `{}` | `{}` |",
            thousands(t.rows),
            cell(&t.sheets.join(", ")),
            t.csv,
            t.json
        );
    }
    let _ = writeln!(w);
    if !bundle.warnings.is_empty() {
        let _ = writeln!(w, "### Please note\n");
        for note in &bundle.warnings {
            let _ = writeln!(w, "- {}", note.replace(['\n', '\r'], " "));
        }
        let _ = writeln!(w);
    }

    let _ = writeln!(w, "## Empty cells and NULL\n");
    let _ = writeln!(
        w,
        "A database tells apart *no value at all* (called **NULL**: nothing was ever filled in) \
         and *an empty text* (a value that was filled in, with nothing in it). The files show \
         the difference like this:\n"
    );
    let _ = writeln!(
        w,
        "- **CSV files:** NULL is nothing at all between two commas (`1,,3`); an empty text is \
         two double quotes (`1,\"\",3`)."
    );
    let _ = writeln!(
        w,
        "- **JSON files:** NULL is `null`; an empty text is `\"\"`."
    );
    let _ = writeln!(
        w,
        "- **Spreadsheet:** both look like an empty cell. When the difference matters, look the \
         value up in the CSV or JSON file.\n"
    );
    let _ = writeln!(w, "Also good to know:\n");
    let _ = writeln!(
        w,
        "- Binary data (files or images stored in the database) appears as text starting with \
         `\\x` followed by hexadecimal digits."
    );
    let _ = writeln!(
        w,
        "- In the spreadsheet, numbers with more than 15 digits are kept as text, so that no \
         digit is lost; dates and times are shown as the database wrote them."
    );
    let _ = writeln!(
        w,
        "- A value spread over several lines stays one value: in a CSV file it is inside double \
         quotes.\n"
    );

    let _ = writeln!(w, "## Checking that nothing has changed\n");
    let _ = writeln!(
        w,
        "`{BUNDLE_MANIFEST}` lists a SHA-256 checksum (a fingerprint of the exact bytes) for \
         every other file in this archive. If a file's checksum matches, the file is exactly as \
         it was exported. To compute a checksum:\n"
    );
    let _ = writeln!(w, "- Linux: `sha256sum csv/NAME.csv`");
    let _ = writeln!(w, "- macOS: `shasum -a 256 csv/NAME.csv`");
    let _ = writeln!(
        w,
        "- Windows (PowerShell): `Get-FileHash csv\\NAME.csv -Algorithm SHA256`\n"
    );
    let _ = writeln!(
        w,
        "and compare the result with the file's `sha256` in `{BUNDLE_MANIFEST}` (letter case \
         does not matter). The archive as a whole has its own checksum in the file \
         `ARCHIVE.zip.manifest.json` written next to it, and `holdfast export --verify \
         ARCHIVE.zip` checks every checksum at once."
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }

    #[test]
    fn a_split_table_and_its_warning_are_in_the_readme() {
        use crate::bundle_manifest::{BundleSnapshot, BundleSource, BundleTable};
        use holdfast_format::Id;
        use holdfast_format::gotime::GoTime;

        let mut time = GoTime::utc(1_714_572_300, 0);
        time.offset = 2 * 3600;
        let snapshot = Snapshot::new(Id([0; 32]), vec!["/tables".into()], time);
        let bundle = BundleManifest {
            format: crate::bundle_manifest::BUNDLE_FORMAT.into(),
            created: "2024-05-01T14:05:00Z".into(),
            snapshot: BundleSnapshot {
                id: "ab".repeat(32),
                time: time.to_string(),
                hostname: "h".into(),
                paths: vec![],
            },
            source: BundleSource {
                kind: "mysql".into(),
                mode: "tables".into(),
                address: "mysql://app@db/shop".into(),
                database: Some("shop".into()),
                server_version: None,
                backed_up: "2024-05-01T14:05:00Z".into(),
                tenant: None,
            },
            workbook: "shop.xlsx".into(),
            tables: vec![BundleTable {
                name: "events".into(),
                kind: "table".into(),
                rows: 2_000_000,
                columns: vec![],
                csv: "csv/events.csv".into(),
                json: "json/events.json".into(),
                sheets: vec!["events".into(), "events (2)".into()],
                notes: vec!["split".into()],
            }],
            files: vec![],
            warnings: vec!["events: its 2000000 rows are more than one Excel sheet holds".into()],
        };
        let text = readme(&bundle, &snapshot, false);
        assert!(text.contains("1 May 2024 at 16:05 (UTC+02:00)"), "{text}");
        assert!(
            text.contains("| events | 2,000,000 | events, events (2) |"),
            "{text}"
        );
        assert!(text.contains("### Please note"), "{text}");
        assert!(
            text.contains("- events: its 2000000 rows are more"),
            "{text}"
        );
        assert!(text.contains("the whole database"), "{text}");
        assert!(text.contains("MySQL database **shop**"), "{text}");
        assert!(text.contains("`abababab`"), "{text}");
        assert!(!text.contains("schema.sql"), "{text}");
    }
}
