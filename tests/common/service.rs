//! `holdfast serve` as the tests run it: a real process on a free port with
//! its own data directory, spoken to over real HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Server {
    pub child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    /// The first admin token (printed on first start only).
    pub admin: Option<String>,
    /// The environment it was started with; `cli` passes it on, so the
    /// commands see the same catalog and server key.
    pub env: Vec<(String, String)>,
    /// What it printed on standard output up to its address.
    pub startup: Vec<String>,
    /// Every line it printed on standard error so far (also forwarded to
    /// the test's standard error with a `[serve]` prefix).
    pub log: Arc<Mutex<Vec<String>>>,
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The JSON of a reply that must be `status` (null for no body).
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        if self.text.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }
}

impl Server {
    /// Start a server on `data_dir` with extra environment.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_as(data_dir, env, None)
    }

    /// [`Server::start`], as the user `uid` (and group `uid`) when given:
    /// the deployment SECURITY.md recommends, a dedicated unprivileged user
    /// (the test must run as root to switch).
    pub fn start_as(data_dir: &Path, env: &[(&str, &str)], uid: Option<u32>) -> Server {
        let mut cmd = match uid {
            None => Command::new(super::holdfast_bin()),
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(super::holdfast_bin());
                c
            }
        };
        super::clean(&mut cmd);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start holdfast serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut admin = None;
        let mut base = None;
        let mut expect_token = false;
        let mut startup = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            startup.push(line.clone());
            if expect_token {
                admin = Some(line.trim().to_string());
                expect_token = false;
            } else if line.contains("shown only this once") {
                expect_token = true;
            } else if let Some(rest) = line.split("listening on ").nth(1) {
                // http://ADDR or https://ADDR
                base = Some(rest.split_whitespace().next().unwrap().to_string());
                break;
            }
        }
        // keep draining stdout so the server never blocks on a full pipe
        std::thread::spawn(move || for _ in lines {});
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[serve] {l}");
                kept.lock().unwrap().push(l);
            }
        });
        Server {
            child,
            base: base.expect("the server printed its address"),
            data_dir: data_dir.to_path_buf(),
            admin,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            startup,
            log,
        }
    }

    /// The standard error lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// An HTTP client for this server (a TLS test server has a
    /// self-signed certificate).
    fn client(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .danger_accept_invalid_certs(self.base.starts_with("https://"))
            .build()
            .unwrap()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self
            .client()
            .request(method.parse().unwrap(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().expect("HTTP request");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        Reply {
            status,
            content_type,
            text: resp.text().unwrap(),
        }
    }

    /// A request that must answer `status`; its JSON.
    pub fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Value {
        let r = self.request(method, path, token, body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.text);
        r.expect(status)
    }

    /// PATCH source `id` of `tenant` with `body`; the reply.
    pub fn patch_source(&self, token: &str, tenant: &str, id: &str, body: Value) -> Reply {
        let path = format!("/api/v1/tenants/{tenant}/sources/{id}");
        self.request("PATCH", &path, Some(token), Some(&body))
    }

    /// A GET that must answer 200; its JSON.
    pub fn get(&self, path: &str, token: &str) -> Value {
        self.expect(200, "GET", path, Some(token), None)
    }

    /// A backup's record.
    pub fn backup(&self, id: &str, token: &str) -> Value {
        self.get(&format!("/api/v1/backups/{id}"), token)
    }

    /// A restore's record.
    pub fn restore(&self, id: &str, token: &str) -> Value {
        self.get(&format!("/api/v1/restores/{id}"), token)
    }

    /// Create a tenant (answer 201); its id.
    pub fn create_tenant(&self, token: &str, name: &str) -> String {
        let t = self.expect(
            201,
            "POST",
            "/api/v1/tenants",
            Some(token),
            Some(&serde_json::json!({ "name": name })),
        );
        t["id"].as_str().unwrap().to_string()
    }

    /// Create a source of tenant `tenant` (answer 201); its JSON.
    pub fn create_source(&self, token: &str, tenant: &str, body: Value) -> Value {
        self.expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{tenant}/sources"),
            Some(token),
            Some(&body),
        )
    }

    /// Replace a tenant's policy (answer 200).
    pub fn set_policy(&self, token: &str, tenant: &str, policy: Value) {
        self.expect(
            200,
            "PUT",
            &format!("/api/v1/tenants/{tenant}/policy"),
            Some(token),
            Some(&policy),
        );
    }

    /// Queue a backup of `source_id` (answer 202); its JSON.
    pub fn queue_backup(
        &self,
        token: &str,
        tenant: &str,
        source_id: impl serde::Serialize,
    ) -> Value {
        self.expect(
            202,
            "POST",
            &format!("/api/v1/tenants/{tenant}/backups"),
            Some(token),
            Some(&serde_json::json!({ "source_id": source_id })),
        )
    }

    /// Poll a backup until it leaves queued/running.
    pub fn wait_backup(&self, id: &str, token: &str) -> Value {
        until_finished(&format!("backup {id}"), || self.backup(id, token))
    }

    /// Poll a restore until it leaves queued/running.
    pub fn wait_restore(&self, id: &str, token: &str) -> Value {
        until_finished(&format!("restore {id}"), || self.restore(id, token))
    }

    /// Queue a backup of `source_id` and wait for its end; the finished
    /// record.
    pub fn run_backup(&self, token: &str, tenant: &str, source_id: impl serde::Serialize) -> Value {
        let q = self.queue_backup(token, tenant, source_id);
        self.wait_backup(q["id"].as_str().unwrap(), token)
    }

    /// Queue a restore of backup `id` (answer 202), with `body` if given;
    /// its JSON.
    pub fn queue_restore(&self, token: &str, id: &str, body: Option<&Value>) -> Value {
        let path = format!("/api/v1/backups/{id}/restore");
        self.expect(202, "POST", &path, Some(token), body)
    }

    /// A DELETE that must answer 200; its JSON.
    pub fn delete(&self, path: &str, token: &str) -> Value {
        self.expect(200, "DELETE", path, Some(token), None)
    }

    /// A tenant's repository password (`tenant export-key`).
    pub fn tenant_key(&self, tenant: &str) -> String {
        let out = self.cli(&["tenant", "export-key", tenant]);
        super::assert_ok(&out);
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// GET `path` with `token`, as raw HTTP (a download).
    pub fn download(&self, path: &str, token: &str) -> reqwest::blocking::Response {
        self.client()
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .unwrap()
    }

    /// A holdfast command on this server's data directory.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(super::holdfast_bin());
        super::clean(&mut cmd);
        cmd.args(args).arg("--data-dir").arg(&self.data_dir);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.output().unwrap()
    }

    /// SIGTERM, then wait for the process to exit (at most `within`);
    /// its exit status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "holdfast serve did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `fetch` until the record's status leaves queued/running (at most
/// two minutes); the record.
fn until_finished(what: &str, fetch: impl Fn() -> Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = fetch();
        let st = r["status"].as_str().unwrap().to_string();
        if st != "queued" && st != "running" {
            return r;
        }
        assert!(Instant::now() < deadline, "{what} still {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A command source's text: on its first run it leaves `marker`, writes
/// its pid to `pidfile`, writes 20 MB and hangs until killed; every later
/// run prints `later` and ends.
pub fn slow_first_run(marker: &Path, pidfile: &Path, later: &str) -> String {
    format!(
        "if [ -e {m} ]; then echo {later}; else echo $$ > {p}; touch {m}; \
         head -c 20000000 /dev/urandom; sleep 120; fi",
        m = marker.display(),
        p = pidfile.display()
    )
}

/// restic on a repository the server wrote, opened with its tenant's key.
pub fn restic_with(repo: &str, password: &str) -> Command {
    let mut c = Command::new("restic");
    super::clean(&mut c);
    c.env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", password)
        .env("RESTIC_CACHE_DIR", format!("{repo}.restic-cache"));
    c
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A configuration file naming `commands` (`[commands] name = "text"`),
/// for `HOLDFAST_CONFIG`: command sources name a command, never its text.
pub fn commands_config(dir: &Path, commands: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = String::from("[commands]\n");
    for (name, cmd) in commands {
        let quoted = cmd.replace('\\', "\\\\").replace('"', "\\\"");
        text.push_str(&format!("{name} = \"{quoted}\"\n"));
    }
    let path = dir.join("holdfast-commands.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The catalog's times, moved by a test: the controlled clock of what the
/// server decides from them (due slots, overdue sources). A source made
/// days ago, or a periodic job's slot taken at a chosen time, is what the
/// scheduler would see after that much real time.
pub struct CatalogClock(rusqlite::Connection);

impl CatalogClock {
    /// The SQLite catalog beneath `data_dir` (the server keeps running).
    pub fn of(data_dir: &Path) -> CatalogClock {
        let db = rusqlite::Connection::open(data_dir.join("catalog.db")).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        CatalogClock(db)
    }

    /// Sources whose `column` (`id`, `tenant_id`) is `value` made at
    /// `when`: an SQLite time modifier from now (`-3 days`) or a time.
    pub fn sources_made(&self, column: &str, value: &str, when: &str) {
        let at = if when.starts_with(['-', '+']) {
            format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '{when}')")
        } else {
            format!("'{when}'")
        };
        let n = self
            .0
            .execute(
                &format!("UPDATE sources SET created_at = {at} WHERE {column} = ?1"),
                [value],
            )
            .unwrap();
        assert!(n > 0, "no source with {column} = {value}");
    }

    /// The periodic job `name`'s last slot taken at `slot` (one far ahead
    /// holds the job back; one long past makes its latest slot due).
    pub fn slot_taken(&self, name: &str, slot: &str) {
        self.0
            .execute(
                "INSERT INTO job_slots (name, slot, node, claimed_at) VALUES (?1, ?2, 'test', ?2)",
                [name, slot],
            )
            .unwrap();
    }
}
