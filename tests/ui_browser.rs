//! The web UI in a real headless Chromium (Debian's, over WebDriver),
//! against a real `holdfast serve` on the embedded defaults: sign-in,
//! the overview, the backup list with its filters and paging, a backup's
//! detail, the language switch (German strings), a phone-sized screen,
//! sign-out; a hostile source name shown as text; sessions that end with
//! their token; forged and cross-site posts refused; axe-core on every
//! screen. Screenshots of every page go to target/ui-screenshots.

mod common;

use std::path::PathBuf;

use common::browser::{Browser, DOWN, ENTER, TAB};
use common::service::{Server, commands_config};
use serde_json::{Value, json};

const HOSTILE: &str = "<script>alert(1)</script>";

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots")
}

/// A server with a tenant, three sources (one with a hostile name) and
/// runs: done, failed, and a second done.
fn seeded() -> (tempfile::TempDir, Server, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = commands_config(
        dir.path(),
        &[
            (
                "orders",
                "printf 'id,total\\n1,10\\n2,20\\n'; head -c 300000 /dev/urandom",
            ),
            ("broken", "echo 'connection refused' >&2; exit 3"),
            (
                "slow",
                "for i in 1 2 3 4 5 6 7 8 9 10; do head -c 300000 /dev/urandom; sleep 0.6; done",
            ),
        ],
    );
    let config = config.to_str().unwrap().to_string();
    let s = Server::start(
        &dir.path().join("data"),
        &[
            ("HOLDFAST_CONFIG", &config),
            ("HOLDFAST_RETRY_BASE_SECONDS", "1"),
        ],
    );
    let admin = s.admin.clone().unwrap();
    let t = s.create_tenant(&admin, "acme");
    let orders = s.create_source(
        &admin,
        &t,
        json!({"name": "orders-db", "kind": "command", "target": "orders",
               "schedule": "0 3 * * *", "options": {"filename": "orders.csv"}}),
    );
    let hostile = s.create_source(
        &admin,
        &t,
        json!({"name": HOSTILE, "kind": "command", "target": "orders", "schedule": null,
               "options": {"filename": "x.bin"}}),
    );
    let broken = s.create_source(
        &admin,
        &t,
        json!({"name": "billing", "kind": "command", "target": "broken", "schedule": null,
               "options": {"filename": "b.bin"}}),
    );
    s.create_source(
        &admin,
        &t,
        json!({"name": "slow-export", "kind": "command", "target": "slow", "schedule": null,
               "options": {"filename": "slow.bin"}}),
    );
    for src in [&orders, &hostile, &orders, &broken] {
        let q = s.queue_backup(&admin, &t, &src["id"]);
        s.wait_backup(q["id"].as_str().unwrap(), &admin);
    }
    (dir, s, admin, t)
}

fn sign_in(b: &Browser, base: &str, token: &str) {
    b.goto(&format!("{base}/"));
    b.wait_for("the sign-in page", 10, |b| b.url().contains("/ui/signin"));
    b.type_into("#token", token);
    b.click("form.stack button[type=submit]");
    b.wait_for("the overview", 10, |b| !b.url().contains("/ui/signin"));
}

/// The error page, saying `words`.
fn error_page_says(b: &Browser, words: &str) {
    b.wait_for("the error page", 10, |b| {
        b.text("h1") == "Something went wrong" || b.text("h1") == "Etwas ist schiefgegangen"
    });
    let body = b.text("body");
    assert!(body.contains(words), "{body}");
}

/// Follow the page a confirmed form leads to (its address holds `path`)
/// until its badge says done; that page's address.
fn follow_until_done(b: &Browser, path: &str, what: &str) -> String {
    b.wait_for(&format!("{what}'s page"), 10, |b| b.url().contains(path));
    let url = b.url();
    b.wait_for(&format!("{what} to finish"), 60, |b| {
        b.text("p.lead span.badge") == "done"
    });
    url
}

fn no_axe_violations(b: &Browser, page: &str) {
    let v = b.axe();
    assert!(v.is_empty(), "axe on {page}:\n{}", v.join("\n"));
}

#[test]
fn an_admin_signs_in_reads_every_page_in_both_languages_and_signs_out() {
    let (_dir, s, admin, t) = seeded();
    let out = shots();
    let b = Browser::start("en-US", 1280, 900);
    sign_in(&b, &s.base, &admin);

    // the overview: one row per source, the failed one marked
    assert_eq!(b.text("h1"), "Overview");
    let rows = b.all("table.overview tbody tr");
    assert_eq!(rows.len(), 4);
    assert_eq!(b.all("table.overview tbody tr.attention").len(), 1);
    let body = b.text("body");
    assert!(
        body.contains("orders-db") && body.contains("billing"),
        "{body}"
    );
    assert!(body.contains("1 source needs attention"), "{body}");
    // the hostile name is text, not markup: one script (ours) in the page
    assert!(body.contains(HOSTILE), "{body}");
    assert_eq!(
        b.exec("return document.scripts.length", json!([])),
        json!(1)
    );
    assert_eq!(
        b.all("svg.spark").len(),
        2,
        "a chart for each source that has runs done"
    );
    no_axe_violations(&b, "overview");
    b.screenshot(&out, "overview-en");

    // run the slow source now and watch its progress on its page, live
    let slow = s.get(&format!("/api/v1/tenants/{t}/sources"), &admin)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "slow-export")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.click(&format!("a[href='/ui/sources/{slow}/run']"));
    b.wait_for("the confirmation", 10, |b| {
        b.text("div.confirm").contains("slow-export")
    });
    b.click("div.confirm button[type=submit]");
    b.wait_for("the run's page", 10, |b| b.url().contains("/ui/backups/"));
    let mut seen = Vec::new();
    b.wait_for("progress to show bytes read", 30, |b| {
        let t = b.text("p.live");
        if !t.is_empty() && !seen.contains(&t) {
            seen.push(t.clone());
        }
        t.contains("KiB read") || t.contains("MiB read")
    });
    b.screenshot(&out, "backup-running-en");
    b.wait_for("the run to finish without a reload by hand", 60, |b| {
        let t = b.text("p.live");
        if !t.is_empty() && !seen.contains(&t) {
            seen.push(t);
        }
        b.text("p.lead span.badge") == "done"
    });
    assert!(b.all("p.live").is_empty());
    // the figures moved on while the page stayed open
    let reads: Vec<&String> = seen.iter().filter(|t| t.contains(" read · ")).collect();
    assert!(reads.len() >= 2, "{seen:?}");
    assert!(
        reads.iter().all(|t| t.contains("/s · running for")),
        "{seen:?}"
    );
    b.goto(&format!("{}/", s.base));

    // the backup list, then filtered to the failed run
    b.click("nav.side a[href^='/ui/backups']");
    b.wait_for("the list", 10, |b| b.text("h1") == "Backups");
    assert_eq!(b.all("table.list tbody tr").len(), 5);
    no_axe_violations(&b, "backups");
    b.screenshot(&out, "backups-en");
    b.exec(
        "document.querySelector('#f-status').value = 'failed'",
        json!([]),
    );
    b.click("form.filters button[type=submit]");
    b.wait_for("the filter", 10, |b| b.url().contains("status=failed"));
    assert_eq!(b.all("table.list tbody tr").len(), 1);
    assert!(b.text("table.list").contains("billing"));

    // a failed run's detail: the error text and its audit rows
    b.click("table.list tbody tr a");
    b.wait_for("the detail", 10, |b| b.url().contains("/ui/backups/0"));
    let body = b.text("body");
    assert!(body.contains("connection refused"), "{body}");
    assert!(body.contains("backup_created"), "{body}");
    no_axe_violations(&b, "a failed backup");
    b.screenshot(&out, "backup-failed-en");

    // a done run's detail: snapshot, sizes
    b.goto(&format!("{}/ui/backups?status=done", s.base));
    b.click("table.list tbody tr a");
    b.wait_for("the detail", 10, |b| b.text("h1").starts_with("Backup "));
    let body = b.text("body");
    assert!(body.contains("Snapshot") && body.contains("iB ("), "{body}");
    no_axe_violations(&b, "a done backup");
    b.screenshot(&out, "backup-done-en");

    // German, remembered across pages
    b.click("nav.lang a[lang=de]");
    b.wait_for("German", 10, |b| b.text("h1").starts_with("Sicherung "));
    assert!(b.text("body").contains("Verlauf"));
    b.screenshot(&out, "backup-done-de");
    b.goto(&format!("{}/", s.base));
    assert_eq!(b.text("h1"), "Übersicht");
    assert!(b.text("body").contains("1 Quelle braucht Aufmerksamkeit"));
    assert_eq!(
        b.exec("return document.documentElement.lang", json!([])),
        json!("de")
    );
    no_axe_violations(&b, "Übersicht");
    b.screenshot(&out, "overview-de");
    b.goto(&format!("{}/ui/backups", s.base));
    assert_eq!(b.text("h1"), "Sicherungen");
    assert!(b.text("table.list").contains("fehlgeschlagen"));
    b.screenshot(&out, "backups-de");
    // every other page in German too, each checked by axe
    for (path, h1, name) in [
        ("/ui/sources", "Quellen", "sources-de"),
        ("/ui/sources/new", "Neue Quelle", "source-form-de"),
        ("/ui/audit", "Prüfprotokoll", "audit-de"),
        ("/ui/tokens", "Tokens", "tokens-de"),
        ("/ui/tenants", "Mandanten", "tenants-de"),
    ] {
        b.goto(&format!("{}{path}", s.base));
        assert_eq!(b.text("h1"), h1, "{path}");
        no_axe_violations(&b, name);
        b.screenshot(&out, name);
    }

    // sign out: the session is over, the page asks to sign in again
    b.click("header form button.link");
    b.wait_for("the sign-in page", 10, |b| b.url().contains("/ui/signin"));
    assert!(b.text("body").contains("abgemeldet"));
    assert!(b.cookie("hf_session").is_none());
    b.screenshot(&out, "signin-de");
    b.goto(&format!("{}/ui/backups", s.base));
    b.wait_for("the sign-in page", 10, |b| b.url().contains("/ui/signin"));
    no_axe_violations(&b, "sign-in");
}

/// A verification that finds a pack damaged marks the backups whose
/// snapshots it held: the list shows them as damaged (and needing
/// attention), and each one's page says what was found — in English and
/// in German.
#[test]
fn backups_a_verification_found_damaged_are_marked_in_the_list_and_on_their_page() {
    let (_dir, s, admin, t) = seeded();
    let backups = s.get(&format!("/api/v1/tenants/{t}/backups"), &admin)["items"].clone();
    let repo = backups[0]["repository"].as_str().unwrap().to_string();
    common::damage_biggest_pack(std::path::Path::new(&repo));
    let v = s.expect(
        202,
        "POST",
        &format!("/api/v1/tenants/{t}/verifications"),
        Some(&admin),
        Some(&json!({"read_data": "all"})),
    );
    let vpath = format!(
        "/api/v1/tenants/{t}/verifications/{}",
        v["id"].as_str().unwrap()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !["done", "failed"].contains(&s.get(&vpath, &admin)["status"].as_str().unwrap()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the verification did not end"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let damaged: Vec<String> = s.get(&format!("/api/v1/tenants/{t}/backups"), &admin)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| !b["damaged_at"].is_null())
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!damaged.is_empty(), "{}", s.get(&vpath, &admin));

    let b = Browser::start("en-US", 1280, 900);
    sign_in(&b, &s.base, &admin);
    b.goto(&format!("{}/ui/backups", s.base));
    // one badge a damaged backup, in a row that asks for attention
    let marked = b.exec(
        "return [...document.querySelectorAll('table.list tbody tr')]\
           .filter(r => r.querySelector('.badge.damaged'))\
           .map(r => [r.querySelector('a').getAttribute('href'), r.className, \
                      r.querySelector('.badge.damaged').textContent])",
        json!([]),
    );
    let mut want: Vec<Value> = damaged
        .iter()
        .map(|id| json!([format!("/ui/backups/{id}"), "attention", "damaged"]))
        .collect();
    let mut got = marked.as_array().unwrap().clone();
    want.sort_by_key(|v| v.to_string());
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, want);
    no_axe_violations(&b, "backups with damaged ones");
    b.screenshot(&shots(), "backups-damaged-en");
    b.goto(&format!("{}/ui/backups/{}", s.base, damaged[0]));
    let alert = b.text("p.alert");
    assert!(
        alert.contains("A verification found this backup's data damaged")
            && alert.contains(&format!(
                "verification {}: the repository is damaged",
                v["id"].as_str().unwrap()
            )),
        "{alert}"
    );
    no_axe_violations(&b, "a damaged backup");
    b.screenshot(&shots(), "backup-damaged-en");
    b.goto(&format!("{}/ui/lang/de?next=%2Fui%2Fbackups", s.base));
    b.goto(&format!("{}/ui/backups/{}", s.base, damaged[0]));
    assert!(
        b.text("p.alert")
            .contains("Eine Prüfung fand die Daten dieser Sicherung"),
        "{}",
        b.text("p.alert")
    );
    assert!(b.text("p.lead").contains("beschädigt"));
    b.screenshot(&shots(), "backup-damaged-de");
}

/// Press Tab until `want` holds of the focused element (at most `max`
/// times); every element passed on the way shows its focus ring and lies
/// on the screen. The focused elements, in order.
#[test]
fn a_source_whose_drill_is_overdue_is_marked_on_the_overview() {
    let (dir, s, admin, t) = seeded();
    let orders = s.get(&format!("/api/v1/tenants/{t}/sources"), &admin)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "orders-db")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // the source three weeks old with its weekly drills held back: a drill
    // slot passed, and the next one too, without a drill
    let clock = common::service::CatalogClock::of(&dir.path().join("data"));
    clock.slot_taken(&format!("drill:{orders}"), "2999-01-01T00:00:00.000Z");
    clock.sources_made("id", &orders, "-21 days");
    let b = Browser::start("en-US", 1280, 900);
    sign_in(&b, &s.base, &admin);
    let row = b.all("table.overview tbody tr.attention");
    assert_eq!(row.len(), 2, "the failed source and the undrilled one");
    let body = b.text("body");
    assert!(body.contains("2 sources need attention"), "{body}");
    assert!(body.contains("drill overdue"), "{body}");
    no_axe_violations(&b, "overview with a drill overdue");
    b.screenshot(&shots(), "overview-drill-overdue-en");
}

fn tab_to(b: &Browser, max: usize, want: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    for _ in 0..max {
        b.keys(&TAB.to_string());
        let f = b.focused();
        assert!(
            f["ring"] == json!(true) && f["visible"] == json!(true),
            "focus without a visible ring, or off the screen, on {}: {f}",
            b.url()
        );
        seen.push(f.clone());
        if want(&f) {
            return seen;
        }
    }
    panic!(
        "{max} presses of Tab did not reach it on {}; passed: {seen:?}",
        b.url()
    );
}

#[test]
fn the_keyboard_alone_signs_in_moves_through_the_pages_and_chooses_a_restore() {
    let (_dir, s, admin, t) = seeded();
    let b = Browser::start("en-US", 1280, 900);
    b.goto(&format!("{}/", s.base));
    b.wait_for("the sign-in page", 10, |b| b.url().contains("/ui/signin"));
    b.focus_page();
    tab_to(&b, 10, |f| f["id"] == "token");
    b.keys(&admin);
    b.keys(&ENTER.to_string());
    b.wait_for("the overview", 10, |b| b.text("h1") == "Overview");

    // the first stop is the skip link, shown while focused; it leads into
    // the page's content
    let first = tab_to(&b, 1, |_| true);
    assert!(
        first[0]["class"].as_str().unwrap().contains("skip"),
        "{first:?}"
    );
    b.keys(&ENTER.to_string());
    assert!(b.url().ends_with("#main"), "{}", b.url());
    tab_to(&b, 1, |_| true);
    assert_eq!(
        b.exec(
            "return document.querySelector('main').contains(document.activeElement)",
            json!([])
        ),
        json!(true),
        "after the skip link the focus is in the content"
    );

    // the whole overview, from the top: every link and control is reached,
    // each with its ring
    b.goto(&format!("{}/", s.base));
    let stops = tab_to(&b, 80, |f| f["href"] == "/ui/backups");
    assert!(stops.len() <= 12, "the navigation comes early: {stops:?}");
    b.keys(&ENTER.to_string());
    b.wait_for("the backups page", 10, |b| b.text("h1") == "Backups");

    // a finished run's restore form, by keyboard: the arrow keys move the
    // choice between the radio buttons
    let done = s.get(
        &format!("/api/v1/tenants/{t}/backups?status=done&limit=1"),
        &admin,
    );
    let id = done["items"][0]["id"].as_str().unwrap().to_string();
    b.goto(&format!("{}/ui/backups/{id}", s.base));
    tab_to(&b, 60, |f| {
        f["href"]
            .as_str()
            .is_some_and(|h| h.ends_with(&format!("/ui/backups/{id}/restore")))
    });
    b.keys(&ENTER.to_string());
    b.wait_for("the restore form", 10, |b| {
        b.text("h1") == "Restore this backup"
    });
    let on = tab_to(&b, 40, |f| f["id"] == "where-new");
    assert_eq!(on.last().unwrap()["checked"], json!(true));
    b.keys(&DOWN.to_string());
    let f = b.focused();
    // a command source has no "over the source": the next choice is
    // "another target"
    assert_eq!(f["id"], json!("where-other"), "{f}");
    assert_eq!(f["checked"], json!(true), "{f}");
    tab_to(&b, 3, |f| f["id"] == "target");
    b.keys("not/absolute");
    b.keys(&ENTER.to_string());
    error_page_says(&b, "Invalid target: an absolute directory path");
    b.screenshot(&shots(), "keyboard-refusal-en");
}

#[test]
fn on_a_phone_the_pages_fit_the_screen() {
    let (_dir, s, admin, _t) = seeded();
    let b = Browser::start("en-US", 390, 844);
    sign_in(&b, &s.base, &admin);
    let failed = s.get(
        &format!("/api/v1/tenants/{_t}/backups?status=failed"),
        &admin,
    )["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = format!("/ui/backups/{failed}");
    for (path, name) in [
        ("/", "overview-phone"),
        ("/ui/backups", "backups-phone"),
        (detail.as_str(), "backup-phone"),
        ("/ui/sources", "sources-phone"),
        ("/ui/audit", "audit-phone"),
    ] {
        b.goto(&format!("{}{path}", s.base));
        // nothing wider than the screen but the scrolling table boxes
        let wide = b.exec(
            "return [...document.querySelectorAll('body *')]\
               .filter(e => !e.closest('.table-wrap') && e.getBoundingClientRect().right > window.innerWidth + 1)\
               .map(e => e.tagName + '.' + e.className).slice(0, 5)",
            json!([]),
        );
        assert_eq!(wide, json!([]), "{path} overflows");
        no_axe_violations(&b, name);
        b.screenshot(&shots(), name);
    }
    // the checker itself finds what it must: an image without a text
    // alternative is a critical violation
    b.exec(
        "const i = document.createElement('img'); i.src = 'data:,'; document.body.appendChild(i)",
        json!([]),
    );
    assert!(b.axe().iter().any(|v| v.starts_with("image-alt")));
}

/// `application/x-www-form-urlencoded` of the fields.
fn form_body(fields: &[(&str, &str)]) -> String {
    let enc = |v: &str| {
        v.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The session cookie a sign-in sets, read from the response.
fn session_cookie(base: &str, token: &str) -> (String, String) {
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{base}/ui/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("token", token), ("next", "/")]))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let set = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let value = set
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("hf_session=")
        .unwrap()
        .to_string();
    (value, set)
}

#[test]
fn sessions_are_strict_cookies_end_with_their_token_and_refuse_forged_posts() {
    let (_dir, s, admin, t) = seeded();
    // a viewer of the tenant
    let viewer: Value = s.expect(
        201,
        "POST",
        "/api/v1/tokens",
        Some(&admin),
        Some(&json!({"role": "viewer", "tenant": t, "label": "auditor"})),
    );
    let viewer_secret = viewer["secret"].as_str().unwrap().to_string();
    let (cookie, set) = session_cookie(&s.base, &viewer_secret);
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(set.contains("Max-Age="), "{set}");
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| {
        http.get(format!("{}{path}", s.base))
            .header("cookie", format!("hf_session={cookie}"))
            .send()
            .unwrap()
    };
    let r = get("/");
    assert_eq!(r.status().as_u16(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let page = r.text().unwrap();
    // escaped in the HTML itself
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains(HOSTILE));
    // a viewer is offered no action: the only form that posts is sign-out
    assert_eq!(page.matches("method=\"post\"").count(), 1, "{page}");

    // a forged post (no CSRF secret) and a cross-site one (an Origin of
    // another site, even with the secret) are refused; the session lives on
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let post = |origin: Option<&str>, form: &[(&str, &str)]| {
        let mut r = http
            .post(format!("{}/ui/signout", s.base))
            .header("cookie", format!("hf_session={cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(post(None, &[("csrf", "forged")]), 403);
    assert_eq!(post(Some("https://evil.example"), &[("csrf", &csrf)]), 403);
    assert_eq!(get("/").status().as_u16(), 200, "still signed in");
    // another tenant's backup is not found, as in the API
    let other = s.create_tenant(&admin, "globex");
    let src = s.create_source(
        &admin,
        &other,
        json!({"name": "theirs", "kind": "command", "target": "orders", "schedule": null,
               "options": {"filename": "t.bin"}}),
    );
    let q = s.queue_backup(&admin, &other, &src["id"]);
    let id = q["id"].as_str().unwrap().to_string();
    s.wait_backup(&id, &admin);
    assert_eq!(get(&format!("/ui/backups/{id}")).status().as_u16(), 404);
    assert_eq!(
        get(&format!("/ui/backups/{id}/progress")).status().as_u16(),
        404
    );

    // revoking the token ends its sessions at once
    s.delete(
        &format!("/api/v1/tokens/{}", viewer["token"]["id"].as_str().unwrap()),
        &admin,
    );
    let r = get("/");
    assert_eq!(r.status().as_u16(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/ui/signin")
    );

    // a wrong token is refused with the page, not a session
    let r = http
        .post(format!("{}/ui/signin", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("token", "hf_wrong"), ("next", "/")]))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    // sign-in never sends you to another site
    let (_, _) = session_cookie(&s.base, &admin);
    let r = http
        .post(format!("{}/ui/signin", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("token", admin.as_str()),
            ("next", "//evil.example/x"),
        ]))
        .send()
        .unwrap();
    assert_eq!(r.headers()["location"], "/");
    // the audit log has each sign-in
    let events = s.get("/api/v1/audit?event=session_started", &admin);
    assert!(events["items"].as_array().unwrap().len() >= 3, "{events}");
}

/// The operator's morning: run a backup now, watch it finish without
/// reloading, download the portable bundle, restore it, read the audit
/// rows of each step; a viewer of the same tenant is offered none of it
/// and is refused when it tries anyway.
#[test]
fn an_operator_runs_downloads_and_restores_from_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    std::fs::create_dir_all(&root).unwrap();
    let db = root.join("shop.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
         INSERT INTO orders SELECT i, i * 3 FROM n;",
    )
    .unwrap();
    drop(conn);
    let s = Server::start(&dir.path().join("data"), &[]);
    let admin = s.admin.clone().unwrap();
    let t = s.create_tenant(&admin, "acme");
    s.set_policy(
        &admin,
        &t,
        json!({"directory_roots": [root.to_str().unwrap()]}),
    );
    let token = |role: &str| {
        s.expect(
            201,
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            Some(&json!({"role": role, "tenant": t, "label": format!("{role} of acme")})),
        )["secret"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (op, viewer) = (token("operator"), token("viewer"));
    let out = shots();
    let b = Browser::start("en-US", 1280, 900);
    sign_in(&b, &s.base, &op);

    // create the source in the form; outside the policy first, refused
    let fill = |b: &Browser, target: &str| {
        b.goto(&format!("{}/", s.base));
        b.click("nav.side a[href^='/ui/sources']");
        b.wait_for("sources", 10, |b| b.text("h1") == "Sources");
        b.click("a.button[href^='/ui/sources/new']");
        b.wait_for("the form", 10, |b| b.text("h1") == "New source");
        b.type_into("#f-name", "shop");
        b.exec(
            "document.querySelector('#f-kind').value = 'sqlite'",
            json!([]),
        );
        b.type_into("#f-target", target);
        b.type_into("#f-schedule", "30 2 * * *");
        b.wait_for("the schedule's preview", 10, |b| {
            b.text("#f-schedule-preview").starts_with("Next runs: ")
                && b.text("#f-schedule-preview").contains("02:30 UTC")
        });
        b.type_into("#f-keep_daily", "7");
        b.type_into("#f-options", r#"{"mode": "tables"}"#);
    };
    fill(&b, "sqlite:///etc/passwd.db");
    b.click("form.source button[type=submit]");
    error_page_says(
        &b,
        &format!(
            "Refused by policy: target: /etc/passwd.db is not beneath a directory this tenant \
             may use ({})",
            root.display()
        ),
    );
    // the same refusal on a German page is German, and so is a bad schedule
    b.goto(&format!("{}/ui/lang/de?next=%2Fui%2Fsources%2Fnew", s.base));
    b.wait_for("the German form", 10, |b| b.text("h1") == "Neue Quelle");
    b.type_into("#f-name", "shop");
    b.exec(
        "document.querySelector('#f-kind').value = 'sqlite'",
        json!([]),
    );
    b.type_into("#f-target", "sqlite:///etc/passwd.db");
    b.type_into("#f-schedule", "61 * * * *");
    b.wait_for("the German schedule check", 10, |b| {
        b.text("#f-schedule-preview")
            == "Kein gültiger Zeitplan: Minute: \"61\" liegt außerhalb von 0–59"
    });
    b.type_into("#f-schedule", "");
    b.click("form.source button[type=submit]");
    error_page_says(
        &b,
        &format!(
            "Von der Richtlinie abgelehnt: Ziel: /etc/passwd.db liegt unter keinem Verzeichnis, \
             das dieser Mandant nutzen darf ({})",
            root.display()
        ),
    );
    b.screenshot(&out, "refused-de");
    b.goto(&format!("{}/ui/lang/en?next=%2F", s.base));
    b.wait_for("English again", 10, |b| b.text("h1") == "Overview");
    fill(&b, &format!("sqlite://{}", db.display()));
    no_axe_violations(&b, "the source form");
    b.screenshot(&out, "source-form-en");
    b.click("form.source button[type=submit]");
    b.wait_for("the list", 10, |b| {
        b.text("h1") == "Sources" && b.text("table.list").contains("shop")
    });
    assert!(b.text("table.list").contains("Next runs"));
    no_axe_violations(&b, "sources");
    b.screenshot(&out, "sources-en");
    let listed = s.get(&format!("/api/v1/tenants/{t}/sources"), &op);
    let src = &listed["items"][0];
    assert_eq!(src["options"], json!({"mode": "tables"}));
    assert_eq!(src["retention"]["keep_daily"], json!(7));
    assert_eq!(src["schedule"], json!("30 2 * * *"));
    let src_id = src["id"].as_str().unwrap().to_string();
    b.goto(&format!("{}/", s.base));

    // run now, confirmed, then the run's page follows it to the end
    b.click(&format!("a[href='/ui/sources/{src_id}/run']"));
    b.wait_for("the confirmation", 10, |b| {
        b.text("h1") == "Run a backup now"
    });
    b.screenshot(&out, "confirm-run-en");
    b.click("div.confirm button[type=submit]");
    let backup_url = follow_until_done(&b, "/ui/backups/", "the run");
    let backup_id = backup_url.rsplit('/').next().unwrap().to_string();
    let body = b.text("body");
    assert!(
        body.contains("rows") && body.contains("5,000"),
        "row counts: {body}"
    );
    no_axe_violations(&b, "a finished run");
    b.screenshot(&out, "backup-actions-en");

    // download the bundle the page offers, with this session
    let cookie = b.cookie("hf_session").unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        b.exec("return document.querySelector('#format').value", json!([])),
        json!("zip")
    );
    let zip = reqwest::blocking::Client::new()
        .get(format!("{}/ui/backups/{backup_id}/file?format=zip", s.base))
        .header("cookie", format!("hf_session={cookie}"))
        .send()
        .unwrap();
    assert_eq!(zip.status().as_u16(), 200);
    let bytes = zip.bytes().unwrap();
    let zpath = dir.path().join("bundle.zip");
    std::fs::write(&zpath, &bytes).unwrap();
    let listing = std::process::Command::new("unzip")
        .arg("-l")
        .arg(&zpath)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("manifest.json") && listing.contains("orders"),
        "{listing}"
    );
    let manifest = std::process::Command::new("unzip")
        .arg("-p")
        .arg(&zpath)
        .arg("manifest.json")
        .output()
        .unwrap();
    let manifest: Value = serde_json::from_slice(&manifest.stdout).unwrap();
    assert!(manifest.to_string().contains("5000"), "{manifest}");

    // restore to a new place beside the source, confirmed, followed to the end
    b.goto(&backup_url);
    b.click(&format!("a[href='/ui/backups/{backup_id}/restore']"));
    b.wait_for("the restore form", 10, |b| {
        b.text("h1") == "Restore this backup"
    });
    no_axe_violations(&b, "the restore form");
    b.screenshot(&out, "confirm-restore-en");
    b.click("div.confirm button[type=submit]");
    follow_until_done(&b, "/ui/restores/", "the restore");
    let proof = b.text("body");
    assert!(
        proof.contains("orders") && proof.contains("5,000"),
        "{proof}"
    );
    assert!(proof.contains("Row counts match the manifest"), "{proof}");
    b.screenshot(&out, "restore-done-en");
    // the overview now knows when the source was last restored
    b.goto(&format!("{}/", s.base));
    let row = b.text("table.overview tbody tr");
    assert!(
        !row.contains("never restored") && row.contains(" ago"),
        "{row}"
    );

    // a tables-mode backup is a slice: the form offers no "over the source"
    b.goto(&format!("{}/ui/backups/{backup_id}/restore", s.base));
    b.wait_for("the restore form", 10, |b| {
        b.text("h1") == "Restore this backup"
    });
    assert!(b.all("#where-source").is_empty());
    // the whole file, backed up as a second source: restore over it, the
    // name typed, and the database is as it was at the backup
    let whole = s.create_source(
        &op,
        &t,
        json!({"name": "shop-file", "kind": "sqlite", "schedule": null,
               "target": format!("sqlite://{}", db.display())}),
    );
    let file_backup = s.run_backup(&op, &t, &whole["id"]);
    assert_eq!(file_backup["status"], "done", "{file_backup}");
    let file_backup_id = file_backup["id"].as_str().unwrap().to_string();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "DELETE FROM orders WHERE id > 100; INSERT INTO orders VALUES (9999999, 1);",
    )
    .unwrap();
    drop(conn);
    let over_source = |b: &Browser, name: &str| {
        b.goto(&format!("{}/ui/backups/{file_backup_id}/restore", s.base));
        b.wait_for("the restore form", 10, |b| {
            b.text("h1") == "Restore this backup"
        });
        b.click("#where-source");
        b.type_into("#confirm_name", name);
        b.click("div.confirm button[type=submit]");
    };
    over_source(&b, "not-the-name");
    error_page_says(&b, "Invalid confirm_name: type the source's name");
    let count = || {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*), max(id) FROM orders", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .unwrap()
    };
    assert_eq!(count(), (101, 9999999), "nothing was restored");
    over_source(&b, "shop-file");
    follow_until_done(&b, "/ui/restores/", "the restore over the source");
    assert!(
        b.text("body").contains("Row counts match the manifest"),
        "{}",
        b.text("body")
    );
    assert_eq!(
        count(),
        (5000, 5000),
        "the source is as it was at the backup"
    );
    let restore_id = b.url().rsplit('/').next().unwrap().to_string();
    let r = s.restore(&restore_id, &op);
    assert_eq!(r["in_place"], json!(true), "{r}");
    assert_eq!(
        r["target"],
        json!(format!("sqlite://{}", db.display())),
        "{r}"
    );

    // the run's audit rows: queued by this operator, downloaded, restored
    b.goto(&backup_url);
    let audit = b.text("#h-audit + .table-wrap");
    for event in ["backup_created", "backup_downloaded", "restore_started"] {
        assert!(audit.contains(event), "{event} in:\n{audit}");
    }
    assert!(audit.contains("operator of acme"), "{audit}");

    // a viewer sees the same run and no action, and a forged post is refused
    b.click("header form button.link");
    b.wait_for("signed out", 10, |b| b.url().contains("/ui/signin"));
    sign_in(&b, &s.base, &viewer);
    b.goto(&backup_url);
    assert!(b.all("nav.actions").is_empty());
    assert!(
        b.all(&format!("a[href='/ui/sources/{src_id}/run']"))
            .is_empty()
    );
    b.screenshot(&out, "backup-viewer-en");
    let csrf = b
        .exec(
            "return document.querySelector('input[name=csrf]').value",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_string();
    let cookie = b.cookie("hf_session").unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        format!("/ui/sources/{src_id}/run"),
        format!("/ui/backups/{backup_id}/delete"),
        format!("/ui/backups/{backup_id}/restore"),
    ] {
        let r = http
            .post(format!("{}{path}", s.base))
            .header("cookie", format!("hf_session={cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&[("csrf", &csrf)]))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "a viewer's POST {path}");
    }
    let r = http
        .get(format!("{}/ui/backups/{backup_id}/file?format=zip", s.base))
        .header("cookie", format!("hf_session={cookie}"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "a viewer downloads nothing");
    let runs = s.get(&format!("/api/v1/tenants/{t}/backups"), &admin);
    assert_eq!(
        runs["items"].as_array().unwrap().len(),
        2,
        "the operator's two runs, nothing queued by the viewer"
    );
}

/// An admin's pages: the audit log with its filters and the chain's
/// state, tokens (a new secret shown once, revocation), tenants and a
/// tenant's policy (saved through the API's own checks).
#[test]
fn an_admin_manages_tokens_and_tenants_and_reads_the_audit_log() {
    let (_dir, s, admin, _t) = seeded();
    let out = shots();
    let b = Browser::start("en-US", 1280, 900);
    sign_in(&b, &s.base, &admin);

    b.click("nav.side a[href='/ui/audit']");
    b.wait_for("the audit log", 10, |b| b.text("h1") == "Audit log");
    assert!(
        b.text("p.ok").contains("The chain is intact"),
        "{}",
        b.text("body")
    );
    assert!(b.all("table.list tbody tr").len() > 5);
    no_axe_violations(&b, "audit log");
    b.screenshot(&out, "audit-en");
    b.type_into("#a-event", "session_started");
    b.click("form.filters button[type=submit]");
    b.wait_for("the filter", 10, |b| {
        b.url().contains("event=session_started")
    });
    let rows = b.all("table.list tbody tr");
    assert_eq!(rows.len(), 1, "{}", b.text("table.list"));

    // a token: its secret once, then only its label
    b.click("nav.side a[href='/ui/tokens']");
    b.wait_for("tokens", 10, |b| b.text("h1") == "Tokens");
    b.type_into("#t-label", "deploy bot");
    b.click("form.filters button[type=submit]");
    b.wait_for("the new secret", 10, |b| !b.all("#new-secret").is_empty());
    let secret = b.text("#new-secret");
    assert!(secret.starts_with("hf_"), "{secret}");
    no_axe_violations(&b, "tokens");
    b.screenshot(&out, "tokens-en");
    b.goto(&format!("{}/ui/tokens", s.base));
    assert!(b.all("#new-secret").is_empty(), "shown only once");
    assert!(!b.text("body").contains(&secret));
    // the new token works, then is revoked from the page
    assert_eq!(
        s.request("GET", "/api/v1/tokens", Some(&secret), None)
            .status,
        403
    );
    let link = b
        .exec(
            "return [...document.querySelectorAll('table.list tbody tr')]\
               .find(r => r.textContent.includes('deploy bot'))\
               .querySelector('a').getAttribute('href')",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_string();
    b.goto(&format!("{}{link}", s.base));
    b.wait_for("the confirmation", 10, |b| {
        b.text("div.confirm").contains("deploy bot")
    });
    b.click("div.confirm button[type=submit]");
    b.wait_for("the list", 10, |b| b.url().ends_with("/ui/tokens"));
    assert_eq!(
        s.request("GET", "/api/v1/tokens", Some(&secret), None)
            .status,
        401
    );

    // a tenant and its policy
    b.click("nav.side a[href='/ui/tenants']");
    b.wait_for("tenants", 10, |b| b.text("h1") == "Tenants");
    b.type_into("#n-name", "globex");
    b.click("form.filters button[type=submit]");
    b.wait_for("the tenant's page", 10, |b| b.text("h1") == "globex");
    let globex = b.url().rsplit('/').next().unwrap().to_string();
    b.type_into("#policy", r#"{"directory_roots": ["/srv/globex"]}"#);
    b.click("form.stack button[type=submit]");
    b.wait_for("saved", 10, |b| b.text("p.ok").contains("saved"));
    assert!(
        b.text("#policy").contains("/srv/globex")
            || b.exec("return document.querySelector('#policy').value", json!([]))
                .as_str()
                .unwrap()
                .contains("/srv/globex")
    );
    no_axe_violations(&b, "a tenant");
    b.screenshot(&out, "tenant-en");
    // the API's own checks: the server's data directory is refused
    let data = s.data_dir.to_str().unwrap().to_string();
    b.type_into("#policy", &format!(r#"{{"directory_roots": ["{data}"]}}"#));
    b.click("form.stack button[type=submit]");
    error_page_says(&b, "Invalid directory_roots[0]: the server's own data");
    let policy = s.get(&format!("/api/v1/tenants/{globex}/policy"), &admin);
    assert_eq!(policy["directory_roots"], json!(["/srv/globex"]));
}
