//! The fuzz targets' bodies: each takes arbitrary bytes and must neither
//! panic nor loop, whatever they hold; where a property is cheap to state
//! (a round trip, the same answer whatever the read sizes), it is asserted.
//! `fuzz_targets/*.rs` hand libFuzzer's inputs to these; the stable suite
//! (`tests/fuzz_regressions.rs`) replays every saved input through them.

use std::io::{BufRead, Read};

use holdfast_format::crypto::MasterKey;
use holdfast_format::index::IndexFile;
use holdfast_format::keyfile::KeyFile;
use holdfast_format::lock::Lock;
use holdfast_format::manifest::Manifest;
use holdfast_format::pack;
use holdfast_format::snapshot::Snapshot;
use holdfast_format::table_csv::{CsvRecords, RecordCounter, RecordDigest};
use holdfast_format::tree::{Tree, TreeRefs};
use holdfast_format::unpacked;
use holdfast_sources::dump_scan::DumpScanner;
use holdfast_sources::dump_scan::mysql::MysqlDumpScan;
use holdfast_sources::dump_scan::postgres::PgDumpScan;
use holdfast_sources::jsonl::events::{EventReader, EventValidator};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name, for the regression replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("pack_header", pack_header),
    ("index", index),
    ("tree", tree),
    ("snapshot", snapshot),
    ("key", key),
    ("lock", lock),
    ("unpacked", unpacked_file),
    ("manifest", manifest),
    ("pg_dump", pg_dump),
    ("mysqldump", mysqldump),
    ("table_csv", table_csv),
    ("jsonl_events", jsonl_events),
];

/// A fixed key, so inputs can be sealed and the parsers behind the MAC
/// reached.
fn key_of_the_fuzzer() -> MasterKey {
    MasterKey::from_kdf_output(&[7u8; 64])
}

/// The first byte picks how the rest is cut into reads (1 to 256 bytes).
fn split(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&b, rest)) => (b as usize + 1, rest),
        None => (1, data),
    }
}

/// A pack's tail: the raw bytes as a tail (hostile lengths), and the bytes
/// as a plaintext header sealed with the key (the entry decoder behind the
/// MAC); a decoded header encodes back to the same entries.
pub fn pack_header(data: &[u8]) {
    let key = key_of_the_fuzzer();
    let _ = pack::parse_tail(&key, data, data.len() as u64);
    let _ = pack::header_length(data, data.len() as u64 + 1000);
    if let Ok(blobs) = pack::decode_header(data) {
        let again = pack::decode_header(&pack::encode_header(&blobs)).expect("re-encoded");
        assert_eq!(blobs, again);
    }
    let mut tail = key.seal(data);
    let hl = tail.len() as u32;
    tail.extend_from_slice(&hl.to_le_bytes());
    let _ = pack::parse_tail(&key, &tail, tail.len() as u64);
}

pub fn index(data: &[u8]) {
    let _ = IndexFile::from_json(data);
}

/// A tree parses, and what parses writes back to a tree that parses the
/// same.
pub fn tree(data: &[u8]) {
    let _ = TreeRefs::from_blob(data);
    if let Ok(t) = Tree::from_blob(data) {
        let again = Tree::from_blob(&t.to_blob()).expect("a written tree parses");
        assert_eq!(t, again);
    }
}

pub fn snapshot(data: &[u8]) {
    if let Ok(s) = Snapshot::from_json(data) {
        Snapshot::from_json(&s.to_json()).expect("a written snapshot parses");
    }
}

pub fn key(data: &[u8]) {
    let _ = KeyFile::parse(data);
    let _ = MasterKey::from_json(data);
}

pub fn lock(data: &[u8]) {
    let _ = Lock::from_json(data);
}

/// An unpacked file (index, snapshot, lock): raw bytes as a sealed file,
/// and as the plaintext framing (a version byte, then zstd or JSON) behind
/// the MAC.
pub fn unpacked_file(data: &[u8]) {
    let key = key_of_the_fuzzer();
    let _ = unpacked::open_json(&key, data.to_vec());
    let _ = unpacked::decode_plaintext(data.to_vec());
    let _ = unpacked::open_json(&key, key.seal(data));
}

pub fn manifest(data: &[u8]) {
    if let Ok(m) = Manifest::parse(data) {
        Manifest::parse(&m.to_json()).expect("a written manifest parses");
    }
}

/// A scanner fed the stream in pieces gives the same tables and verdict as
/// one fed it whole.
fn scan_both_ways<S: DumpScanner + Default>(data: &[u8]) {
    let (step, data) = split(data);
    let mut whole = S::default();
    whole.feed(data);
    let mut pieces = S::default();
    for c in data.chunks(step) {
        pieces.feed(c);
    }
    assert_eq!(whole.verdict(), pieces.verdict(), "verdict at step {step}");
    assert_eq!(
        whole.into_tables(),
        pieces.into_tables(),
        "tables at step {step}"
    );
}

pub fn pg_dump(data: &[u8]) {
    scan_both_ways::<PgDumpScan>(data);
}

pub fn mysqldump(data: &[u8]) {
    scan_both_ways::<MysqlDumpScan>(data);
}

/// The tables-mode CSV: the streaming reader and the record counter agree
/// on the number of records of any input that does not end inside quotes,
/// whatever the read sizes; converting to COPY text does not panic.
pub fn table_csv(data: &[u8]) {
    let (step, data) = split(data);
    let mut counter = RecordCounter::default();
    for c in data.chunks(step) {
        counter.feed(c);
    }
    let mut reader = CsvRecords::new(std::io::BufReader::with_capacity(step.max(8), data));
    let mut fields = Vec::new();
    let mut records = 0u64;
    let mut readable = true;
    loop {
        match reader.read_record(&mut fields) {
            Ok(true) => records += 1,
            Ok(false) => break,
            Err(_) => {
                readable = false;
                break;
            }
        }
    }
    if readable && !counter.open_quote() {
        assert_eq!(records, counter.records(), "records at step {step}");
    }
    // the drill's record digest: the same in pieces as whole, counting as
    // the counter does
    let mut pieces = RecordDigest::default();
    for c in data.chunks(step) {
        pieces.feed(c);
    }
    let mut whole = RecordDigest::default();
    whole.feed(data);
    let (n, digest) = pieces.finish();
    assert_eq!((n, digest), whole.finish(), "digest at step {step}");
    assert_eq!(n, counter.records(), "digest records at step {step}");
    let mut out = Vec::new();
    let _ = holdfast_sources::postgres::copy_text::csv_to_copy_text(
        &mut std::io::BufReader::new(data) as &mut dyn BufRead,
        &mut out,
        &[0],
    );
}

/// A JSON Lines body read through the validating reader, in pieces.
pub fn jsonl_events(data: &[u8]) {
    let (step, data) = split(data);
    let reader = std::io::BufReader::with_capacity(step.max(8), data);
    let mut events = EventReader::new(reader, EventValidator::new(Some(3)));
    let mut sink = Vec::new();
    let _ = events.read_to_end(&mut sink);
}
