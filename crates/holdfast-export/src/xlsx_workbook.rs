//! The bundle's Excel workbook: one sheet per table, header row in bold,
//! numbers and booleans as Excel values, written with rust_xlsxwriter's
//! constant-memory mode so only the current row is in memory (each sheet's
//! rows go to a temp file until the workbook is saved).
//!
//! Excel's limits are met here rather than left to fail the export: sheet
//! names are made valid and unique, a table with more rows than a sheet
//! holds continues on further sheets (`orders (2)`, …), and text longer
//! than a cell holds is cut short. Each such change is reported as a
//! warning: the CSV and JSON files are never cut.

use std::collections::HashSet;
use std::io::{self, BufRead, Write};
use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};

use holdfast_engine::{EngineError, Result};
use holdfast_format::manifest::ManifestColumn;
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use crate::column_kinds::{ColumnKind, Columns, is_json_number, parse_boolean, significant_digits};
use holdfast_format::table_csv::{CsvField, CsvRecords};

/// Data rows a sheet holds: Excel's 1,048,576 rows less the header.
pub const EXCEL_MAX_DATA_ROWS: u32 = 1_048_575;
/// Characters (UTF-16 units, as Excel counts) a cell holds.
pub const EXCEL_MAX_CELL_CHARS: usize = 32_767;
/// Columns a sheet holds.
pub const EXCEL_MAX_COLUMNS: usize = 16_384;
/// Characters (UTF-16 units) in a sheet name.
const EXCEL_MAX_SHEET_NAME: usize = 31;
/// Numbers with more significant digits than a double keeps are written
/// as text, so Excel shows every digit instead of rounding an id.
const EXCEL_NUMBER_DIGITS: usize = 15;

/// Hands out sheet names that Excel accepts: at most 31 characters, none
/// of `[]:*?/\`, not starting or ending with `'`, not "History" (Excel
/// reserves it), and unique ignoring case. A clash gets `_2`, `_3`, ….
#[derive(Debug)]
pub struct SheetNamer {
    used: HashSet<String>,
}

impl Default for SheetNamer {
    fn default() -> Self {
        SheetNamer {
            used: HashSet::from(["history".to_string()]),
        }
    }
}

/// `s` cut to at most `max` UTF-16 units, on a character boundary.
pub fn truncate_utf16(s: &str, max: usize) -> &str {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        units += c.len_utf16();
        if units > max {
            return &s[..i];
        }
    }
    s
}

/// `name` with Excel's forbidden characters (and control characters)
/// replaced and apostrophes trimmed from its ends.
fn clean_sheet_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let s = s.trim_matches('\'').to_string();
    if s.trim().is_empty() {
        "Sheet".to_string()
    } else {
        s
    }
}

impl SheetNamer {
    /// A valid, not yet used sheet name as close to `wanted` as possible.
    pub fn name(&mut self, wanted: &str) -> String {
        let clean = clean_sheet_name(wanted);
        let mut n = 1;
        loop {
            let suffix = if n == 1 {
                String::new()
            } else {
                format!("_{n}")
            };
            let base = truncate_utf16(&clean, EXCEL_MAX_SHEET_NAME - suffix.len());
            // Cutting may leave an apostrophe at the end.
            let base = base.trim_end_matches('\'');
            let candidate = format!("{base}{suffix}");
            if self.used.insert(candidate.to_lowercase()) {
                return candidate;
            }
            n += 1;
        }
    }

    /// The name of part `part` (2, 3, …) of a table split across sheets
    /// whose first sheet is `first`: `first (2)`, shortened to fit.
    pub fn continuation(&mut self, first: &str, part: u32) -> String {
        let suffix = format!(" ({part})");
        let base = truncate_utf16(first, EXCEL_MAX_SHEET_NAME - suffix.len());
        self.name(&format!("{}{suffix}", base.trim_end_matches('\'')))
    }
}

/// One table to put in the workbook.
pub struct SheetTable<'a> {
    /// The table's name as the snapshot manifest gives it.
    pub name: &'a str,
    pub columns: &'a [ManifestColumn],
}

/// What the workbook holds for one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSheets {
    pub sheets: Vec<String>,
    pub rows: u64,
    pub truncated_cells: u64,
    /// How the workbook differs from the CSV for this table, in words.
    pub notes: Vec<String>,
}

#[derive(Debug, Default)]
pub struct WorkbookReport {
    /// Per table, in the order given.
    pub tables: Vec<TableSheets>,
    /// Each change made to fit Excel's limits, in words.
    pub warnings: Vec<String>,
}

pub struct WorkbookOptions<'a> {
    /// Data rows per sheet before a table continues on the next sheet;
    /// [`EXCEL_MAX_DATA_ROWS`] except in tests.
    pub max_data_rows: u32,
    /// Where rust_xlsxwriter keeps each sheet's rows until the workbook is
    /// saved: as much space as the sheets' uncompressed XML.
    pub temp_dir: &'a Path,
    /// Switch ZIP64 on inside the workbook (a sheet's XML may pass 4 GiB).
    pub large: bool,
}

fn xlsx_err(e: XlsxError) -> EngineError {
    match e {
        XlsxError::IoError(e) => EngineError::io("writing the Excel workbook", e),
        other => EngineError::io("writing the Excel workbook", io::Error::other(other)),
    }
}

fn csv_err(table: &str) -> impl Fn(io::Error) -> EngineError + '_ {
    move |e| EngineError::io(format!("reading the CSV of {table}"), e)
}

/// The most bytes a table's sheets can take as XML, for choosing ZIP64:
/// every CSV byte at most 7 (`_x0001_`), every cell at most 80 bytes of
/// markup, every row 40.
pub fn sheet_xml_bound(csv_bytes: u64, rows: u64, columns: usize) -> u64 {
    csv_bytes
        .saturating_mul(7)
        .saturating_add(
            rows.saturating_add(1)
                .saturating_mul(columns as u64 * 80 + 40),
        )
        .saturating_add(4096)
}

/// A new constant-memory sheet named `name`, with the header in bold and
/// the header row frozen so it stays in view while scrolling.
fn new_sheet<'w>(
    workbook: &'w mut Workbook,
    name: &str,
    columns: &Columns,
    bold: &Format,
) -> Result<&'w mut Worksheet> {
    let sheet = workbook
        .add_worksheet_with_constant_memory()
        .map_err(xlsx_err)?;
    sheet.set_name(name).map_err(xlsx_err)?;
    sheet.set_freeze_panes(1, 0).map_err(xlsx_err)?;
    for (c, n) in columns.names.iter().take(EXCEL_MAX_COLUMNS).enumerate() {
        let col = c as u16;
        let width = (truncate_utf16(n, 40).chars().count() as f64 + 3.0).clamp(10.0, 40.0);
        sheet.set_column_width(col, width).map_err(xlsx_err)?;
        sheet
            .write_string_with_format(0, col, truncate_utf16(n, EXCEL_MAX_CELL_CHARS), bold)
            .map_err(xlsx_err)?;
    }
    Ok(sheet)
}

/// Write one cell: numbers and booleans as Excel values when the text is
/// one, everything else as text (never as a formula, whatever it starts
/// with). Returns true when the text had to be cut short.
fn write_cell(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    kind: ColumnKind,
    field: &CsvField,
) -> Result<bool> {
    let Some(v) = field.value() else {
        return Ok(false);
    };
    match kind {
        ColumnKind::Number if is_json_number(v) && significant_digits(v) <= EXCEL_NUMBER_DIGITS => {
            if let Ok(n) = v.parse::<f64>()
                && n.is_finite()
            {
                sheet.write_number(row, col, n).map_err(xlsx_err)?;
                return Ok(false);
            }
        }
        ColumnKind::Boolean => {
            if let Some(b) = parse_boolean(v) {
                sheet.write_boolean(row, col, b).map_err(xlsx_err)?;
                return Ok(false);
            }
        }
        _ => {}
    }
    let cut = truncate_utf16(v, EXCEL_MAX_CELL_CHARS);
    sheet.write_string(row, col, cut).map_err(xlsx_err)?;
    Ok(cut.len() < v.len())
}

/// Fill the workbook with every table (reading each CSV through `open`,
/// which the caller may call once per table) and save it to `out`.
pub fn write_workbook<'r, W: Write>(
    tables: &[SheetTable<'_>],
    mut open: impl FnMut(usize) -> Result<Box<dyn BufRead + 'r>>,
    opts: &WorkbookOptions<'_>,
    out: &mut W,
) -> Result<WorkbookReport> {
    let mut workbook = Workbook::new();
    workbook.set_tempdir(opts.temp_dir).map_err(|e| match e {
        XlsxError::TempFileError(dir, e) => EngineError::io(
            format!("creating the workbook's temp files in {}", dir.display()),
            e,
        ),
        other => xlsx_err(other),
    })?;
    workbook.use_zip_large_file(opts.large);
    let bold = Format::new().set_bold();
    let mut namer = SheetNamer::default();
    let mut report = WorkbookReport::default();
    let max_rows = opts.max_data_rows.max(1);

    for (i, table) in tables.iter().enumerate() {
        let mut csv = CsvRecords::new(open(i)?);
        let mut fields = Vec::new();
        let has_header = csv.read_record(&mut fields).map_err(csv_err(table.name))?;
        let columns = Columns::from_header(has_header.then_some(&fields[..]), table.columns);
        let first = namer.name(table.name);
        let mut sheets = TableSheets {
            sheets: vec![first.clone()],
            ..TableSheets::default()
        };
        if columns.names.len() > EXCEL_MAX_COLUMNS {
            sheets.notes.push(format!(
                "only the first {EXCEL_MAX_COLUMNS} of its {} columns fit on a sheet; \
                 the CSV and JSON files hold them all",
                columns.names.len()
            ));
        }
        let mut sheet = new_sheet(&mut workbook, &first, &columns, &bold)?;
        let mut row_in_sheet = 0u32;
        loop {
            let line = csv.line();
            if !csv.read_record(&mut fields).map_err(csv_err(table.name))? {
                break;
            }
            if fields.len() != columns.names.len() {
                return Err(EngineError::corrupt(
                    table.name,
                    format!(
                        "the CSV record on line {line} has {} fields, its header {}",
                        fields.len(),
                        columns.names.len()
                    ),
                ));
            }
            if row_in_sheet == max_rows {
                let name = namer.continuation(&first, sheets.sheets.len() as u32 + 1);
                sheets.sheets.push(name.clone());
                sheet = new_sheet(&mut workbook, &name, &columns, &bold)?;
                row_in_sheet = 0;
            }
            row_in_sheet += 1;
            for (c, f) in fields.iter().take(EXCEL_MAX_COLUMNS).enumerate() {
                if write_cell(sheet, row_in_sheet, c as u16, columns.kinds[c], f)? {
                    sheets.truncated_cells += 1;
                }
            }
            sheets.rows += 1;
        }
        if sheets.sheets.len() > 1 {
            sheets.notes.push(format!(
                "its {} rows are more than one Excel sheet holds ({max_rows}), so the \
                 workbook continues it on sheets {}; the CSV and JSON files hold it whole",
                sheets.rows,
                sheets.sheets[1..]
                    .iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if sheets.truncated_cells > 0 {
            sheets.notes.push(format!(
                "{} value(s) longer than Excel's {EXCEL_MAX_CELL_CHARS}-character cell \
                 limit were cut short in the workbook; the CSV and JSON files hold them whole",
                sheets.truncated_cells
            ));
        }
        for note in &sheets.notes {
            report.warnings.push(format!("{}: {note}", table.name));
        }
        report.tables.push(sheets);
    }
    save_streaming(&mut workbook, out)?;
    Ok(report)
}

/// Chunks of the saved workbook, sent to the thread that writes them out.
struct ChannelWriter {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 << 10;

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the export stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Save `workbook` to `out` as it is produced. rust_xlsxwriter wants a
/// `Send` writer, and an export's writer need not be one (a locked
/// standard output is not): the workbook is saved on a scoped thread into
/// a bounded channel, and this thread writes the chunks out, so at most a
/// few chunks are in memory and nothing goes to disk twice.
fn save_streaming<W: Write>(workbook: &mut Workbook, out: &mut W) -> Result<()> {
    let (tx, rx) = sync_channel::<Vec<u8>>(4);
    std::thread::scope(|scope| {
        let saver = scope.spawn(move || {
            let mut w = ChannelWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            };
            workbook.save_to_writer(&mut w)?;
            w.send().map_err(XlsxError::IoError)
        });
        let mut written = Ok(());
        for chunk in rx.iter() {
            if let Err(e) = out.write_all(&chunk) {
                written = Err(EngineError::io("writing the Excel workbook", e));
                break;
            }
        }
        // Stops the saver (its next send fails) if writing failed.
        drop(rx);
        let saved = saver.join().map_err(|_| {
            EngineError::io(
                "saving the Excel workbook",
                io::Error::other("the saving thread panicked"),
            )
        })?;
        written?;
        saved.map_err(xlsx_err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn sheet_names_follow_excels_rules() {
        let mut n = SheetNamer::default();
        assert_eq!(n.name("public.orders"), "public.orders");
        // Case-insensitively unique.
        assert_eq!(n.name("PUBLIC.ORDERS"), "PUBLIC.ORDERS_2");
        assert_eq!(n.name("public.orders"), "public.orders_3");
        // Forbidden characters, apostrophes at the ends, empty names.
        assert_eq!(n.name("a[b]:c*d?e/f\\g"), "a_b__c_d_e_f_g");
        assert_eq!(n.name("'quoted'"), "quoted");
        assert_eq!(n.name(""), "Sheet");
        assert_eq!(n.name("'"), "Sheet_2");
        // Reserved.
        assert_eq!(n.name("History"), "History_2");
        // 31 UTF-16 units at most, suffix included.
        let long = "a_very_long_schema.a_very_long_table_name";
        let first = n.name(long);
        assert_eq!(first, "a_very_long_schema.a_very_long_");
        assert_eq!(first.len(), 31);
        let second = n.name(long);
        assert_eq!(second, "a_very_long_schema.a_very_lon_2");
        assert_eq!(n.continuation(&first, 2), "a_very_long_schema.a_very_l (2)");
        // Characters outside the BMP count twice, and are never split.
        let emoji = "😀".repeat(20);
        let e = n.name(&emoji);
        assert_eq!(e, "😀".repeat(15));
        assert_eq!(truncate_utf16("ab😀", 3), "ab");
    }

    fn sheet_xml(xlsx: &[u8]) -> (String, Vec<String>) {
        let mut z = zip::ZipArchive::new(io::Cursor::new(xlsx)).unwrap();
        let mut wb = String::new();
        z.by_name("xl/workbook.xml")
            .unwrap()
            .read_to_string(&mut wb)
            .unwrap();
        let mut sheets = Vec::new();
        for i in 1.. {
            let Ok(mut f) = z.by_name(&format!("xl/worksheets/sheet{i}.xml")) else {
                break;
            };
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap();
            sheets.push(s);
        }
        (wb, sheets)
    }

    #[test]
    fn a_table_over_the_row_limit_continues_on_further_sheets() {
        let csv = "id,name,ok\n1,a,t\n2,b,f\n3,,\n4,\"\",1\n5,e,0\n6,f,x\n7,g,t\n";
        let cols = [
            ManifestColumn::stored("id", "integer"),
            ManifestColumn::stored("ok", "boolean"),
        ];
        let tables = [
            SheetTable {
                name: "t",
                columns: &cols,
            },
            SheetTable {
                name: "t (2)",
                columns: &[],
            },
        ];
        let tmp = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let report = write_workbook(
            &tables,
            |i| {
                Ok(Box::new(if i == 0 {
                    csv.as_bytes()
                } else {
                    &b"x\n1\n"[..]
                }))
            },
            &WorkbookOptions {
                max_data_rows: 3,
                temp_dir: tmp.path(),
                large: false,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(
            report.tables[0],
            TableSheets {
                sheets: vec!["t".into(), "t (2)".into(), "t (3)".into()],
                rows: 7,
                truncated_cells: 0,
                notes: report.tables[0].notes.clone(),
            }
        );
        // A table literally named like a continuation sheet gets another name.
        assert_eq!(report.tables[1].sheets, ["t (2)_2"]);
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert!(report.warnings[0].contains("\"t (2)\", \"t (3)\""));

        let (wb, sheets) = sheet_xml(&out);
        for name in ["t", "t (2)", "t (3)", "t (2)_2"] {
            assert!(wb.contains(&format!("name=\"{name}\"")), "{wb}");
        }
        assert_eq!(sheets.len(), 4);
        // Each part repeats the header; rows 1-3, 4-6, 7.
        assert!(
            sheets[0].contains("<c r=\"A4\"><v>3</v></c>"),
            "{}",
            sheets[0]
        );
        assert!(!sheets[0].contains("r=\"A5\""));
        assert!(sheets[1].contains(">id</t>"), "{}", sheets[1]);
        assert!(
            sheets[1].contains("<c r=\"A2\"><v>4</v></c>"),
            "{}",
            sheets[1]
        );
        assert!(
            sheets[2].contains("<c r=\"A2\"><v>7</v></c>"),
            "{}",
            sheets[2]
        );
        // Booleans: t/f/1/0 are Excel booleans, other text stays text.
        assert!(
            sheets[0].contains("<c r=\"C2\" t=\"b\"><v>1</v></c>"),
            "{}",
            sheets[0]
        );
        assert!(
            sheets[1].contains("<c r=\"C2\" t=\"b\"><v>1</v></c>"),
            "{}",
            sheets[1]
        );
        assert!(sheets[1].contains(">x</t>"), "{}", sheets[1]);
        // NULL and the empty string are both an empty cell.
        assert!(!sheets[0].contains("r=\"B4\""));
        assert!(!sheets[1].contains("r=\"B2\""));
    }

    #[test]
    fn long_text_is_cut_and_long_numbers_stay_text() {
        let long = "x".repeat(EXCEL_MAX_CELL_CHARS + 10);
        let csv = format!("n,t\n12345678901234567890,{long}\n1.5,ok\n");
        let cols = [ManifestColumn::stored("n", "numeric")];
        let tmp = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let report = write_workbook(
            &[SheetTable {
                name: "docs",
                columns: &cols,
            }],
            |_| Ok(Box::new(io::Cursor::new(csv.clone().into_bytes()))),
            &WorkbookOptions {
                max_data_rows: EXCEL_MAX_DATA_ROWS,
                temp_dir: tmp.path(),
                large: false,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(report.tables[0].truncated_cells, 1);
        assert!(
            report.warnings[0].contains("cut short"),
            "{:?}",
            report.warnings
        );
        let (_, sheets) = sheet_xml(&out);
        assert!(
            sheets[0].contains(">12345678901234567890</t>"),
            "{}",
            sheets[0]
        );
        assert!(
            sheets[0].contains("<c r=\"A3\"><v>1.5</v></c>"),
            "{}",
            sheets[0]
        );
        assert!(sheets[0].contains(&format!(">{}</t>", "x".repeat(EXCEL_MAX_CELL_CHARS))));
        assert!(!sheets[0].contains(&"x".repeat(EXCEL_MAX_CELL_CHARS + 1)));
    }
}
