//! A real headless Chromium, driven over WebDriver (Debian's `chromium`
//! and `chromium-driver`, which `scripts/test.sh` installs): a small
//! client of the W3C protocol on reqwest — sessions, navigation, elements,
//! scripts, cookies and screenshots — and axe-core (from npm, installed by
//! the test script) run inside the page.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// WebDriver's code points of keys without a character.
pub const TAB: char = '\u{E004}';
pub const ENTER: char = '\u{E007}';
pub const SPACE: char = '\u{E00D}';
pub const DOWN: char = '\u{E015}';
pub const SHIFT: char = '\u{E008}';

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn which(name: &str, fallback: &str) -> String {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| fallback.to_string())
}

impl Browser {
    /// Start chromedriver on a free port and a fresh headless Chromium
    /// with `lang` as its preferred language, `width` × `height`.
    pub fn start(lang: &str, width: u32, height: u32) -> Browser {
        let chromium = which("chromium", "/usr/bin/chromium");
        let driver_bin = which("chromedriver", "/usr/bin/chromedriver");
        assert!(
            Path::new(&chromium).exists() && Path::new(&driver_bin).exists(),
            "chromium and chromedriver are not installed: run ./scripts/test.sh (it installs them)"
        );
        let port = super::servers::free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let start = Instant::now();
        while http.get(format!("{base}/status")).send().is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                    format!("--lang={lang}"),
                ],
                "prefs": {"intl.accept_languages": lang},
            }
        }}});
        let v: Value = http
            .post(format!("{base}/session"))
            .header("content-type", "application/json")
            .body(caps.to_string())
            .send()
            .and_then(|r| r.text())
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        let b = Browser {
            driver,
            base,
            session,
            http,
            _profile: profile,
        };
        b.call(
            "POST",
            "/window/rect",
            json!({"width": width, "height": height}),
        );
        b
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string()),
        };
        let v: Value = serde_json::from_str(&req.send().unwrap().text().unwrap()).unwrap();
        if let Some(err) = v["value"].get("error") {
            panic!(
                "WebDriver {method} {path}: {err}: {}",
                v["value"]["message"]
            );
        }
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url}));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", Value::Null)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Every element matching the CSS selector (their WebDriver ids).
    pub fn all(&self, css: &str) -> Vec<String> {
        self.call(
            "POST",
            "/elements",
            json!({"using": "css selector", "value": css}),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("not an element: {e}"))
                .to_string()
        })
        .collect()
    }

    /// The first element matching, waiting up to 10 s for it.
    pub fn find(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(e) = self.all(css).into_iter().next() {
                return e;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no element {css} on {}:\n{}",
                self.url(),
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/click"), json!({}));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/clear"), json!({}));
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            json!({"text": text}),
        );
    }

    /// The visible text of the first element matching ("" when none);
    /// read by a script, so a page changing meanwhile is no error.
    pub fn text(&self, css: &str) -> String {
        self.exec(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''",
            json!([css]),
        )
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    /// Press keys as a person would, one after another: text, or the
    /// WebDriver code points of special keys ([`TAB`], [`ENTER`], …).
    pub fn keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for c in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": c.to_string()}));
            actions.push(json!({"type": "keyUp", "value": c.to_string()}));
        }
        self.call(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        );
        self.call("DELETE", "/actions", Value::Null);
    }

    /// Give the page the keyboard (as a person clicking into the window
    /// does): a click on the page's top-left corner, where nothing is.
    pub fn focus_page(&self) {
        self.call(
            "POST",
            "/actions",
            json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                "actions": [
                    {"type": "pointerMove", "x": 1, "y": 1, "origin": "viewport"},
                    {"type": "pointerDown", "button": 0},
                    {"type": "pointerUp", "button": 0}]}]}),
        );
        self.call("DELETE", "/actions", Value::Null);
    }

    /// The element that has the keyboard's focus: its tag, id, classes,
    /// link target, text, whether the focus ring shows (an outline or a
    /// shadow), and whether it lies on the screen.
    pub fn focused(&self) -> Value {
        self.exec(
            "const e = document.activeElement; if (!e) return null;
             const s = getComputedStyle(e); const r = e.getBoundingClientRect();
             return {tag: e.tagName.toLowerCase(), id: e.id, class: e.className,
                     href: e.getAttribute('href') || '', type: e.getAttribute('type') || '',
                     value: e.value === undefined ? null : e.value, checked: !!e.checked,
                     text: (e.innerText || e.value || '').trim().slice(0, 80),
                     ring: (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0)
                           || s.boxShadow !== 'none',
                     visible: r.width > 1 && r.height > 1 && r.right > 0 && r.bottom > 0
                              && r.left < innerWidth};",
            json!([]),
        )
    }

    /// Run a script in the page; its return value.
    pub fn exec(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// Wait (up to `secs`) until `cond` holds.
    pub fn wait_for(&self, what: &str, secs: u64, mut cond: impl FnMut(&Browser) -> bool) {
        let start = Instant::now();
        while !cond(self) {
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {what} on {}:\n{}",
                self.url(),
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn cookie(&self, name: &str) -> Option<Value> {
        let all = self.call("GET", "/cookie", Value::Null);
        all.as_array()?.iter().find(|c| c["name"] == name).cloned()
    }

    /// A PNG of the whole page (the window stretched to the document's
    /// height first) into `dir/name.png`.
    pub fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let size = self.call("POST", "/window/rect", json!({}));
        let h = self
            .exec("return document.documentElement.scrollHeight", json!([]))
            .as_u64()
            .unwrap_or(900);
        let w = size["width"].as_u64().unwrap_or(1280);
        self.call(
            "POST",
            "/window/rect",
            json!({"width": w, "height": h.clamp(300, 6000)}),
        );
        let png = self.call("GET", "/screenshot", Value::Null);
        self.call(
            "POST",
            "/window/rect",
            json!({"width": w, "height": size["height"]}),
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// axe-core's serious and critical violations on this page, as
    /// "rule: target" lines.
    pub fn axe(&self) -> Vec<String> {
        let src = std::fs::read_to_string(axe_js()).unwrap();
        self.exec(&src, json!([]));
        let script = "const done = arguments[arguments.length - 1];\
            axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations\
              .filter(v => v.impact === 'serious' || v.impact === 'critical')\
              .flatMap(v => v.nodes.map(n => v.id + ': ' + n.target.join(' ') + ' — ' + v.help))))\
              .catch(e => done(['axe failed: ' + e]));";
        self.call(
            "POST",
            "/execute/async",
            json!({"script": script, "args": []}),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect()
    }
}

/// axe-core's script, from the npm package the test script installs.
fn axe_js() -> PathBuf {
    if let Ok(p) = std::env::var("HOLDFAST_AXE_JS") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let p = PathBuf::from(home).join(".cache/holdfast-test-node/node_modules/axe-core/axe.min.js");
    assert!(
        p.exists(),
        "axe-core is not installed: run ./scripts/test.sh (it installs it with npm)"
    );
    p
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
