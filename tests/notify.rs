//! Notifications against real receivers: a local HTTP server that records
//! every request (and answers 500 when told to), and a local SMTP server
//! with STARTTLS (Python's aiosmtpd from the test environment) — through a
//! real `holdfast serve`.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::service::Server;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// An HTTP receiver on a free loopback port: records every request, and
/// answers 500 to the first `n` requests of a path given in `fail`.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
    fail: Arc<Mutex<HashMap<String, usize>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let fail: Arc<Mutex<HashMap<String, usize>>> = Arc::new(Mutex::new(HashMap::new()));
        let (g, f) = (got.clone(), fail.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut headers = HashMap::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let status = {
                    let mut fail = f.lock().unwrap();
                    match fail.get_mut(&path) {
                        Some(n) if *n > 0 => {
                            *n -= 1;
                            "500 Internal Server Error"
                        }
                        _ => "200 OK",
                    }
                };
                g.lock().unwrap().push(Got {
                    path,
                    headers,
                    body,
                });
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        Receiver { port, got, fail }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests to `path` so far.
    fn at(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path == path)
            .cloned()
            .collect()
    }

    /// Wait until `path` got `n` requests; them.
    fn wait(&self, path: &str, n: usize) -> Vec<Got> {
        let start = Instant::now();
        loop {
            let got = self.at(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{path} got {} of {n} requests: {got:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `t=UNIX,v1=HEX` checked as a receiver would: HMAC-SHA256 under the
/// shared secret of `UNIX.BODY`.
fn signature_ok(header: &str, secret: &str, body: &[u8]) -> bool {
    let Some((t, v1)) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
    else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    want == v1
}

/// A private SMTP server with STARTTLS required (aiosmtpd), its CA's
/// certificate, and the file each received message is appended to.
struct Smtp {
    child: std::process::Child,
    port: u16,
    ca: std::path::PathBuf,
    out: std::path::PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SMTP_SERVER: &str = r#"
import datetime, json, ssl, sys, time
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import ipaddress

d, port = sys.argv[1], int(sys.argv[2])
now = datetime.datetime.now(datetime.timezone.utc)
def name(cn): return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = (x509.CertificateBuilder().subject_name(name("holdfast test CA")).issuer_name(name("holdfast test CA"))
      .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
      .not_valid_after(now + datetime.timedelta(days=1))
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
leaf = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(2).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256()))
open(d + "/ca.pem", "wb").write(ca.public_bytes(serialization.Encoding.PEM))
open(d + "/leaf.pem", "wb").write(leaf.public_bytes(serialization.Encoding.PEM))
open(d + "/key.pem", "wb").write(key.private_bytes(serialization.Encoding.PEM,
     serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(d + "/leaf.pem", d + "/key.pem")

class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(d + "/mail.jsonl", "a") as f:
            f.write(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                                "tls": session.ssl is not None,
                                "data": envelope.content.decode("utf8", "replace")}) + "\n")
        return "250 OK"

c = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True)
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

impl Smtp {
    fn start(dir: &Path) -> Smtp {
        let venv = std::env::var("HOLDFAST_TEST_VENV")
            .expect("HOLDFAST_TEST_VENV: scripts/test.sh installs aiosmtpd there");
        let script = dir.join("smtp.py");
        std::fs::write(&script, SMTP_SERVER).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new(Path::new(&venv).join("bin/python"))
            .arg(&script)
            .arg(dir)
            .arg(port.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        Smtp {
            child,
            port,
            ca: dir.join("ca.pem"),
            out: dir.join("mail.jsonl"),
        }
    }

    fn mails(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn events_reach_each_tenants_own_channels_signed_retried_and_by_mail() {
    events_reach_their_channels(&[]);
}

/// The same with the catalog on PostgreSQL (a fresh database on the
/// shared private server).
#[test]
fn events_reach_their_channels_on_a_postgres_catalog() {
    let pg = common::servers::Postgres::shared();
    pg.create_db("notify_pg");
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{}/notify_pg",
        pg.user, pg.password, pg.port
    );
    let key = holdfast_catalog::ServerKey::random().to_base64();
    events_reach_their_channels(&[
        ("HOLDFAST_CATALOG_URL", url.as_str()),
        ("HOLDFAST_SERVER_KEY", key.as_str()),
    ]);
}

fn events_reach_their_channels(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let hooks = Receiver::start();
    let smtp = Smtp::start(dir.path());
    let mut env = env.to_vec();
    env.extend([
        ("HOLDFAST_NOTIFY_RETRY_BASE_SECONDS", "1"),
        ("HOLDFAST_NOTIFY_CA_FILE", smtp.ca.to_str().unwrap()),
    ]);
    let s = Server::start(&dir.path().join("data"), &env);
    let admin = s.admin.clone().unwrap();
    let acme = s.create_tenant(&admin, "acme");
    let other = s.create_tenant(&admin, "other");
    let op = |tenant: &str| {
        s.expect(
            201,
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            Some(&json!({"role": "operator", "tenant": tenant, "label": "op"})),
        )["secret"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (acme_op, other_op) = (op("acme"), op("other"));
    let channels = |t: &str| format!("/api/v1/tenants/{t}/channels");
    const SECRET: &str = "whsec-4f1b9c";

    // an operator may not point a channel at the host's own network …
    let refused = s.request(
        "POST",
        &channels(&acme),
        Some(&acme_op),
        Some(&json!({"name": "hook", "kind": "webhook", "url": hooks.url("/acme/T0KEN")})),
    );
    assert_eq!(
        (
            refused.status,
            refused.json()["code"].as_str(),
            refused.json()["field"].as_str()
        ),
        (403, Some("refused_by_policy"), Some("url")),
        "{}",
        refused.text
    );
    // … until the admin names it; and fields are checked before anything is stored
    s.set_policy(&admin, &acme, json!({"notification_hosts": ["127.0.0.1"]}));
    s.set_policy(&admin, &other, json!({"notification_hosts": ["127.0.0.1"]}));
    for (body, field) in [
        (
            json!({"name": "x", "kind": "pager", "url": hooks.url("/x")}),
            "kind",
        ),
        (
            json!({"name": "x", "kind": "webhook", "url": "ftp://127.0.0.1/x"}),
            "url",
        ),
        (
            json!({"name": "x", "kind": "webhook", "url": hooks.url("/x"), "events": ["everything"]}),
            "events",
        ),
        (
            json!({"name": "x", "kind": "email", "url": format!("smtp://127.0.0.1:{}", smtp.port)}),
            "settings.to",
        ),
        (
            json!({"name": "x", "kind": "healthchecks", "url": hooks.url("/hc"), "settings": {"source_id": "nope"}}),
            "settings.source_id",
        ),
    ] {
        let r = s.request("POST", &channels(&acme), Some(&acme_op), Some(&body));
        assert_eq!(
            (r.status, r.json()["field"].as_str()),
            (422, Some(field)),
            "{body}: {}",
            r.text
        );
    }
    let flaky = s.create_source(
        &admin,
        &acme,
        json!({"name": "flaky", "kind": "directory", "target": dir.path().join("later"), "schedule": null}),
    );
    let flaky_id = flaky["id"].as_str().unwrap().to_string();
    let create = |token: &str, tenant: &str, body: Value| -> Value {
        s.expect(201, "POST", &channels(tenant), Some(token), Some(&body))
    };
    let hook = create(
        &acme_op,
        &acme,
        json!({"name": "hook", "kind": "webhook", "url": hooks.url("/acme/T0KEN"), "secret": SECRET}),
    );
    let slack = create(
        &acme_op,
        &acme,
        json!({"name": "chat", "kind": "slack", "url": hooks.url("/slack/S3CRET"),
               "events": ["backup_failed"]}),
    );
    // ntfy and Gotify, each with its token (sent as a header, never in
    // the URL)
    create(
        &acme_op,
        &acme,
        json!({"name": "phone", "kind": "ntfy", "url": hooks.url("/ntfy/holdfast-acme"),
               "secret": "tk_ntfy", "events": ["backup_failed"]}),
    );
    create(
        &acme_op,
        &acme,
        json!({"name": "gotify", "kind": "gotify", "url": hooks.url("/gotify/message"),
               "secret": "G0T1FY", "events": ["backup_failed"]}),
    );
    let hc = create(
        &acme_op,
        &acme,
        json!({"name": "pings", "kind": "healthchecks", "url": hooks.url("/hc/uuid"),
               "settings": {"source_id": flaky_id}}),
    );
    let mail = create(
        &admin,
        &acme,
        json!({"name": "mail", "kind": "email", "url": format!("smtp://127.0.0.1:{}", smtp.port),
               "settings": {"from": "holdfast@example.com", "to": ["ops@example.com"]},
               "events": ["backup_failed"]}),
    );
    create(
        &other_op,
        &other,
        json!({"name": "theirs", "kind": "webhook", "url": hooks.url("/other")}),
    );
    // never read back: the URL shown without its path, the secret as a flag
    assert_eq!(
        hook["url_shown"],
        format!("http://127.0.0.1:{}/…", hooks.port)
    );
    assert_eq!(hook["has_secret"], true);
    assert!(!hook.to_string().contains(SECRET) && !hook.to_string().contains("T0KEN"));
    assert_eq!(hook["defined_by"], "operator");
    // another tenant's operator sees none of acme's
    assert_eq!(
        s.request(
            "GET",
            &format!("{}/{}", channels(&acme), hook["id"].as_str().unwrap()),
            Some(&other_op),
            None
        )
        .status,
        404
    );
    let theirs = s.get(&channels(&other), &other_op)["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(theirs.len(), 1);

    // the webhook's receiver fails twice: the delivery is tried again
    hooks.fail.lock().unwrap().insert("/acme/T0KEN".into(), 2);
    let failed = s.run_backup(&admin, &acme, &flaky_id);
    assert_eq!(failed["status"], "failed");
    let got = hooks.wait("/acme/T0KEN", 3);
    let last = got.last().unwrap();
    let notice = last.json();
    assert_eq!(notice["event"], "backup_failed", "{notice}");
    assert_eq!(notice["severity"], "error");
    assert_eq!(notice["tenant"]["name"], "acme");
    assert_eq!(notice["source"], json!({"id": flaky_id, "name": "flaky"}));
    assert_eq!(notice["subject"], failed["id"]);
    assert!(
        notice["text"].as_str().unwrap().contains("no such file"),
        "{notice}"
    );
    assert_eq!(last.headers["x-holdfast-event"], "backup_failed");
    assert!(
        signature_ok(&last.headers["x-holdfast-signature"], SECRET, &last.body),
        "{:?}",
        last.headers
    );
    assert!(!signature_ok(
        &last.headers["x-holdfast-signature"],
        "wrong",
        &last.body
    ));
    let deliveries = |ch: &Value| {
        s.get(
            &format!(
                "{}/{}/deliveries",
                channels(&acme),
                ch["id"].as_str().unwrap()
            ),
            &acme_op,
        )["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    wait_for("the delivery recorded", || {
        deliveries(&hook)
            .first()
            .is_some_and(|d| d["status"] == "delivered")
    });
    let d = &deliveries(&hook)[0];
    assert_eq!(
        (d["attempts"].as_i64(), d["event"].as_str()),
        (Some(3), Some("backup_failed"))
    );
    let h = s.get(
        &format!("{}/{}", channels(&acme), hook["id"].as_str().unwrap()),
        &acme_op,
    );
    assert_eq!(h["last_status"], "delivered", "{h}");
    // Slack's shape
    let chat = hooks.wait("/slack/S3CRET", 1);
    let text = chat[0].json()["text"].as_str().unwrap().to_string();
    assert!(text.starts_with("*Backup of flaky failed*\n"), "{text}");
    // ntfy: the text as the body, title, priority and tags as headers
    let push = &hooks.wait("/ntfy/holdfast-acme", 1)[0];
    let body = String::from_utf8(push.body.clone()).unwrap();
    assert!(body.contains("flaky"), "{body}");
    assert_eq!(push.headers["title"], "Backup of flaky failed", "{push:?}");
    assert_eq!(push.headers["priority"], "high");
    assert_eq!(push.headers["tags"], "rotating_light");
    assert_eq!(push.headers["authorization"], "Bearer tk_ntfy");
    // Gotify: its JSON message, the application token in X-Gotify-Key
    let g = &hooks.wait("/gotify/message", 1)[0];
    let m = g.json();
    assert_eq!(m["title"], "Backup of flaky failed", "{m}");
    assert_eq!(m["priority"], 8);
    assert!(m["message"].as_str().unwrap().contains("flaky"), "{m}");
    assert_eq!(g.headers["x-gotify-key"], "G0T1FY");
    // healthchecks: start, then fail
    let pings: Vec<String> = hooks
        .wait("/hc/uuid/fail", 1)
        .iter()
        .map(|g| g.path.clone())
        .collect();
    assert_eq!(pings.len(), 1);
    assert_eq!(hooks.at("/hc/uuid/start").len(), 1);
    // by mail, over STARTTLS
    wait_for("the mail", || !smtp.mails().is_empty());
    let m = &smtp.mails()[0];
    assert_eq!(
        (m["tls"].as_bool(), m["to"].clone()),
        (Some(true), json!(["ops@example.com"])),
        "{m}"
    );
    let data = m["data"].as_str().unwrap();
    assert!(
        data.contains("Subject: [holdfast] Backup of flaky failed"),
        "{data}"
    );

    // the first success after the failure: recovered, and the success ping
    std::fs::create_dir_all(dir.path().join("later")).unwrap();
    let ok = s.run_backup(&admin, &acme, &flaky_id);
    assert_eq!(ok["status"], "done");
    let got = hooks.wait("/acme/T0KEN", 4);
    assert_eq!(got[3].json()["event"], "backup_recovered");
    hooks.wait("/hc/uuid", 1);
    // the Slack channel asked for failures only
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(hooks.at("/slack/S3CRET").len(), 1);
    assert_eq!(smtp.mails().len(), 1);

    // a test message on demand
    let t = s.expect(
        202,
        "POST",
        &format!("{}/{}/test", channels(&acme), slack["id"].as_str().unwrap()),
        Some(&acme_op),
        None,
    );
    assert_eq!(t["event"], "test");
    let chat = hooks.wait("/slack/S3CRET", 2);
    assert!(chat[1].json()["text"].as_str().unwrap().contains("test"));

    // no event of acme's reached the other tenant's channel
    assert!(hooks.at("/other").is_empty(), "{:?}", hooks.at("/other"));
    // and no secret anywhere the API or the audit log answers
    let everything = [
        s.get(&channels(&acme), &acme_op).to_string(),
        s.get("/api/v1/audit?limit=200", &admin).to_string(),
        s.get(
            &format!(
                "{}/{}/deliveries",
                channels(&acme),
                hc["id"].as_str().unwrap()
            ),
            &acme_op,
        )
        .to_string(),
        s.get(
            &format!("{}/{}", channels(&acme), mail["id"].as_str().unwrap()),
            &admin,
        )
        .to_string(),
    ]
    .concat();
    for secret in [SECRET, "T0KEN", "S3CRET", "uuid"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    // a deleted channel gets nothing more
    s.expect(
        204,
        "DELETE",
        &format!("{}/{}", channels(&acme), slack["id"].as_str().unwrap()),
        Some(&acme_op),
        None,
    );
    let events: Vec<String> = s.get(&format!("/api/v1/audit?tenant={acme}"), &admin)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    for e in ["channel_created", "channel_deleted"] {
        assert!(events.contains(&e.to_string()), "{events:?}");
    }
}
