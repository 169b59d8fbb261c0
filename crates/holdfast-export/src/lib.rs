//! Exports: a snapshot (or part of one) written as standard files that open
//! without holdfast. Every exporter streams: memory stays constant whatever
//! the snapshot's size.

pub mod tar_export;
