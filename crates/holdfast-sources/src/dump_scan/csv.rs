//! Counting the records of a tables-mode CSV stream as it passes: the
//! dialect's one counter (`holdfast_format::table_csv::RecordCounter`), fed
//! by a [`super::ScanningReader`].

use holdfast_format::table_csv::RecordCounter;

use super::StreamScanner;

impl StreamScanner for RecordCounter {
    fn feed(&mut self, data: &[u8]) {
        RecordCounter::feed(self, data)
    }
}
