//! The fuzz targets' bodies (`fuzz/src/lib.rs`) on the stable toolchain,
//! over every input kept in `fuzz/seeds/TARGET/` (small valid examples the
//! campaigns start from) and `fuzz/regressions/TARGET/` (inputs a campaign
//! found crashing, kept after the fix). A body panics on a bad outcome.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz_bodies;

use std::path::Path;

#[test]
fn every_kept_fuzz_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    for (name, body) in fuzz_bodies::TARGETS {
        for kind in ["seeds", "regressions"] {
            let Ok(dir) = std::fs::read_dir(root.join(kind).join(name)) else {
                continue;
            };
            for entry in dir.flatten() {
                let data = std::fs::read(entry.path()).unwrap();
                let caught = std::panic::catch_unwind(|| body(&data));
                assert!(
                    caught.is_ok(),
                    "{name}: {} fails its target",
                    entry.path().display()
                );
                ran += 1;
            }
        }
    }
    // every target has at least one seed
    assert!(ran >= fuzz_bodies::TARGETS.len(), "only {ran} inputs found");
}
