//! `holdfast export`: snapshots as standard files that open without
//! holdfast — GNU tar, bsdtar and unzip extract them — each with a checksum
//! manifest that `export --verify` recomputes and that catches corruption.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

fn export(repo: &Repo, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["export", "--json"];
    a.extend_from_slice(args);
    summary(&repo.ok(&a))
}

fn extract(tool: &str, archive: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    let mut cmd = Command::new(tool);
    match tool {
        "tar" => cmd.args(["--xattrs", "--xattrs-include=user.*", "-xpf"]),
        "bsdtar" => cmd.args(["--xattrs", "-xpf"]),
        _ => unreachable!(),
    };
    run_ok(cmd.arg(archive).arg("-C").arg(into));
}

#[test]
fn directory_exports_extract_with_gnu_tar_and_bsdtar() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    make_rich_tree(&src);
    repo.backup(&[&src], &[]);
    let no_sparse = Compare {
        sparse: false,
        ..Compare::ALL
    };
    for format in ["tar", "tar.gz", "tar.zst"] {
        let file = repo.dir.path().join(format!("home.{format}"));
        let s = export(&repo, &["latest", "-o", file.to_str().unwrap()]);
        assert_eq!(s["format"], format, "the format follows the file name");
        let bytes = fs::read(&file).unwrap();
        assert_eq!(s["bytes"], bytes.len());
        assert_eq!(s["sha256"], sha256_hex(&bytes));
        assert!(!Path::new(&format!("{}.partial", file.display())).exists());
        for tool in ["tar", "bsdtar"] {
            let x = repo.dir.path().join(format!("x-{format}-{tool}"));
            extract(tool, &file, &x);
            assert_same_tree_with(&src, &restored(&x, &src), no_sparse);
        }
        let v = summary(&repo.ok(&["export", "--json", "--verify", file.to_str().unwrap()]));
        assert_eq!(v["ok"], true);
        assert!(v["files_checked"].as_u64().unwrap() >= 15, "{v}");
    }
    // The manifest lists every regular file with the SHA-256 of its content.
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.dir.path().join("home.tar.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["format"], "holdfast-export/1");
    assert_eq!(m["snapshot"].as_str().unwrap(), repo.snapshot_ids()[0]);
    let small = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("/small.txt"))
        .expect("small.txt listed");
    assert_eq!(small["sha256"], sha256_hex(b"hello holdfast\n"));

    // --subtree exports one directory, named as in the snapshot.
    let sub = format!("{}/dir", src.display());
    let file = repo.dir.path().join("dir.tar.zst");
    export(
        &repo,
        &["latest", "--subtree", &sub, "-o", file.to_str().unwrap()],
    );
    let x = repo.dir.path().join("x-sub");
    extract("tar", &file, &x);
    let (a, b) = (
        scan_tree(&src.join("dir")),
        scan_tree(&restored(&x, &src.join("dir"))),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, e) in &a {
        assert_eq!(e.content_hash, b[k].content_hash);
        assert_eq!((e.mode, e.mtime), (b[k].mode, b[k].mtime));
    }
    assert!(!restored(&x, &src).join("small.txt").exists());

    // Standard output gets the same bytes as a file.
    let out = repo
        .cmd()
        .args(["export", "latest", "--format", "tar.gz"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        out.stdout,
        fs::read(repo.dir.path().join("home.tar.gz")).unwrap()
    );
}

#[test]
fn zip_export_opens_with_unzip_and_names_what_it_left_out() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    make_rich_tree(&src);
    repo.backup(&[&src], &[]);
    let file = repo.dir.path().join("home.zip");
    let out = repo.run(&["export", "latest", "-o", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("fifo: a fifo cannot be stored in a zip archive"),
        "{err}"
    );
    assert!(err.contains("not UTF-8"), "{err}");
    let x = repo.dir.path().join("x");
    run_ok(Command::new("unzip").arg("-q").arg(&file).arg("-d").arg(&x));
    let a = scan_tree(&src);
    let b = scan_tree(&restored(&x, &src));
    let mut regular = 0;
    for (path, e) in &a {
        // unzip escapes control characters in names when it extracts.
        let odd_name = std::str::from_utf8(path).map_or(true, |p| p.contains(['\n', '\t']));
        if e.content_hash.is_none() || odd_name {
            continue;
        }
        let got = b
            .get(path)
            .unwrap_or_else(|| panic!("{} missing", String::from_utf8_lossy(path)));
        assert_eq!(
            got.content_hash,
            e.content_hash,
            "{}",
            String::from_utf8_lossy(path)
        );
        assert_eq!(
            got.mode & 0o777,
            e.mode & 0o777,
            "{}",
            String::from_utf8_lossy(path)
        );
        regular += 1;
    }
    assert!(regular >= 15);
    assert_eq!(
        fs::read_link(restored(&x, &src).join("link-rel")).unwrap(),
        Path::new("small.txt")
    );
    repo.ok(&["export", "--verify", file.to_str().unwrap()]);
}

#[test]
fn verify_catches_a_changed_byte_a_missing_file_and_a_missing_manifest() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..20 {
        fs::write(
            src.join(format!("f{i}.txt")),
            format!("file {i}\n").repeat(1000),
        )
        .unwrap();
    }
    repo.backup(&[&src], &[]);
    for format in ["tar", "zip"] {
        let file = repo.dir.path().join(format!("e.{format}"));
        repo.ok(&["export", "latest", "-o", file.to_str().unwrap()]);
        repo.ok(&["export", "--verify", file.to_str().unwrap()]);
        let good = fs::read(&file).unwrap();

        // One flipped byte inside a file's data.
        let mut bad = good.clone();
        let at = match format {
            "tar" => good.windows(9).position(|w| w == b"file 7\nfi").unwrap() + 3,
            // zip deflates: any byte of the compressed data will do.
            _ => good.len() / 3,
        };
        bad[at] ^= 0x20;
        fs::write(&file, &bad).unwrap();
        let out = repo.run(&["export", "--verify", file.to_str().unwrap()]);
        assert!(!out.status.success(), "{format}: a corrupt export verified");
        let err = stderr(&out);
        assert!(
            err.contains("does not match its manifest"),
            "{format}: {err}"
        );
        assert!(err.contains("SHA-256"), "{format}: {err}");
        if format == "tar" {
            assert!(
                err.contains("f7.txt"),
                "{format}: the damaged file is named: {err}"
            );
        }

        // A truncated artifact.
        fs::write(&file, &good[..good.len() / 2]).unwrap();
        let out = repo.run(&["export", "--verify", file.to_str().unwrap()]);
        assert!(
            !out.status.success(),
            "{format}: a truncated export verified"
        );

        // No manifest beside it.
        fs::write(&file, &good).unwrap();
        fs::remove_file(format!("{}.manifest.json", file.display())).unwrap();
        let out = repo.run(&["export", "--verify", file.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("e.") && stderr(&out).contains(".manifest.json"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn export_errors_are_clear_and_leave_nothing_behind() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    repo.backup(&[&src], &[]);
    // A dump format for a directory snapshot.
    let file = repo.dir.path().join("x.sql.gz");
    let out = repo.run(&["export", "latest", "-o", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("needs a database dump snapshot"),
        "{}",
        stderr(&out)
    );
    assert!(!file.exists());
    assert!(!Path::new(&format!("{}.partial", file.display())).exists());
    // An unknown format.
    let out = repo.run(&["export", "latest", "--format", "rar"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown export format"),
        "{}",
        stderr(&out)
    );
    // A directory that does not exist.
    let out = repo.run(&["export", "latest", "-o", "/nonexistent/dir/x.tar"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/dir/x.tar"),
        "{}",
        stderr(&out)
    );
    // A subtree that is not in the snapshot.
    let t = repo.dir.path().join("t.tar");
    let out = repo.run(&[
        "export",
        "latest",
        "--subtree",
        "/no/such",
        "-o",
        t.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/no/such not found in the snapshot"),
        "{}",
        stderr(&out)
    );
    assert!(!t.exists());
}
