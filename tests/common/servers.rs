//! Private database servers for the tests: a PostgreSQL and a MariaDB
//! instance each started from the Debian packages in a temporary directory,
//! on a free port, with a password user. They are killed with the test
//! process (`setpriv --pdeathsig KILL`). Nothing here relies on a service
//! someone started by hand.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::is_root;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Remove the directories of servers whose test process is gone.
fn sweep_stale(prefix: &str) {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Start a server from a thread that lives as long as the test process:
/// `--pdeathsig` fires when the thread that started the child ends, and
/// test threads end after each test.
fn spawn_for_process_lifetime(mut cmd: Command, what: &str) -> Child {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tx.send(cmd.spawn()).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv()
        .unwrap()
        .unwrap_or_else(|e| panic!("start {what}: {e}"))
}

/// The tests of one binary that create or count drills' scratch databases
/// on the shared servers take turns: a sweep drops every
/// `holdfast_drill_…` database, and the other tests count them.
static SCRATCH_DATABASES: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn scratch_databases() -> std::sync::MutexGuard<'static, ()> {
    SCRATCH_DATABASES.lock().unwrap_or_else(|p| p.into_inner())
}

/// A command run as `user` (when we are root) that dies with this process.
fn as_user(user: Option<&str>, program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    if let Some(u) = user {
        c.arg(format!("--reuid={u}"))
            .arg(format!("--regid={u}"))
            .arg("--clear-groups");
    }
    c.arg("--pdeathsig=KILL").arg(program);
    c
}

pub struct Postgres {
    pub port: u16,
    pub user: String,
    pub password: String,
    pub bin: PathBuf,
    pub dir: PathBuf,
    _server: Child,
}

/// The highest-versioned PostgreSQL installation.
pub fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/test.sh installs it)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
        .expect("a PostgreSQL server binary under /usr/lib/postgresql")
}

impl Postgres {
    /// One server per test binary.
    pub fn shared() -> &'static Postgres {
        static PG: OnceLock<Postgres> = OnceLock::new();
        PG.get_or_init(Postgres::start)
    }

    /// A server of the caller's own, which it may stop.
    pub fn private() -> Postgres {
        Postgres::start()
    }

    /// Fast shutdown (SIGINT to the postmaster: sessions are ended with
    /// "terminating connection due to administrator command"); waits for
    /// the server to exit.
    pub fn stop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self._server);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        let _ = self._server.wait();
    }

    fn start() -> Postgres {
        sweep_stale("holdfast-test-pg-");
        let bin = pg_bin();
        let dir = std::env::temp_dir().join(format!(
            "holdfast-test-pg-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let user = "holdfast".to_string();
        let password = format!("pg-secret-{}", free_port());
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, &password).unwrap();
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o644)).unwrap();
        let os_user = is_root().then_some("postgres");
        run(
            as_user(os_user, &bin.join("initdb"))
                .arg("-D")
                .arg(dir.join("data"))
                .args([
                    "-U",
                    &user,
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ])
                .arg(format!("--pwfile={}", pwfile.display())),
            "initdb",
        );
        let port = free_port();
        let mut cmd = as_user(os_user, &bin.join("postgres"));
        cmd.arg("-D")
            .arg(dir.join("data"))
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let server = spawn_for_process_lifetime(cmd, "postgres");
        let pg = Postgres {
            port,
            user,
            password,
            bin,
            dir,
            _server: server,
        };
        wait_until("PostgreSQL", || {
            Command::new(pg.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        });
        pg
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://{}@127.0.0.1:{}/{}", self.user, self.port, db)
    }

    /// Run SQL with psql (password from the environment, as holdfast's users
    /// do); returns unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                &self.user,
                "-d",
                db,
            ])
            .env("PGPASSWORD", &self.password)
            .arg("-c")
            .arg(sql)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn create_db(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }
}

pub struct MariaDb {
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dir: PathBuf,
    _server: Child,
}

impl MariaDb {
    pub fn shared() -> &'static MariaDb {
        static DB: OnceLock<MariaDb> = OnceLock::new();
        DB.get_or_init(MariaDb::start)
    }

    fn start() -> MariaDb {
        sweep_stale("holdfast-test-maria-");
        let dir = std::env::temp_dir().join(format!(
            "holdfast-test-maria-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let me = if is_root() {
            "root".to_string()
        } else {
            std::env::var("USER").unwrap_or_default()
        };
        run(
            Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", dir.join("data").display()))
                .arg(format!("--user={me}"))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"]),
            "mariadb-install-db",
        );
        let port = free_port();
        let mut cmd = as_user(None, Path::new("/usr/sbin/mariadbd"));
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg(format!("--port={port}"))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--log-error={}", dir.join("err").display()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M",
                "--innodb-flush-log-at-trx-commit=0",
                // What Debian's packaged configuration sets; without it the
                // compiled-in default is latin1.
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .arg(format!("--user={me}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let server = spawn_for_process_lifetime(cmd, "mariadbd");
        let password = format!("maria-secret-{}", free_port());
        let db = MariaDb {
            port,
            user: "holdfast".into(),
            password,
            dir,
            _server: server,
        };
        let started = Instant::now();
        while db.root_sql("SELECT 1").is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "MariaDB did not come up:\n{}",
                std::fs::read_to_string(db.dir.join("err.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        db.root_sql(&format!(
            "CREATE USER 'holdfast'@'%' IDENTIFIED BY '{}'; GRANT ALL ON *.* TO 'holdfast'@'%' WITH GRANT OPTION;",
            db.password
        ))
        .expect("create the test user");
        db
    }

    fn root_sql(&self, sql: &str) -> Option<String> {
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.dir.join("sock").display()))
            .args([
                "--default-character-set=utf8mb4",
                "-uroot",
                "-N",
                "-B",
                "-e",
                sql,
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn url(&self, db: &str) -> String {
        format!("mysql://{}@127.0.0.1:{}/{}", self.user, self.port, db)
    }

    /// A client command as the test user over TCP (password from the
    /// environment, as holdfast's users do).
    pub fn client(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.arg("--no-defaults")
            .args([
                "--protocol=tcp",
                "-h",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
                "-u",
                &self.user,
                "--default-character-set=utf8mb4",
            ])
            .env("MYSQL_PWD", &self.password);
        c
    }

    /// Run an SQL script (fed on stdin, so `DELIMITER` works) in `db`;
    /// returns tab-separated rows, unescaped.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        use std::io::Write;
        let mut child = self
            .client("mariadb")
            .args(["-N", "-B", "--raw", "--max-allowed-packet=64M"])
            .arg(format!("--database={db}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let script = sql.to_string();
        let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
        let out = child.wait_with_output().unwrap();
        // A client that stopped early broke the pipe: its stderr says why.
        let _ = writer.join();
        assert!(
            out.status.success(),
            "mariadb {}: {}",
            &sql[..sql.floor_char_boundary(300)],
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn create_db(&self, name: &str) {
        self.sql("mysql", &format!("CREATE DATABASE `{name}`"));
    }
}

/// A private Garage server (S3-compatible object storage, the real one the
/// object-storage tests run against): one node with a 1 GiB layout in a
/// temporary directory, on free loopback ports, with one bucket and one
/// access key allowed on it. Killed with the test process.
pub struct Garage {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
    pub region: String,
    config: PathBuf,
    dir: PathBuf,
    child: Child,
}

fn garage_bin() -> PathBuf {
    cargo_installed("garage", "cargo install garage --locked")
}

/// A tool `scripts/test.sh` installs with cargo: on PATH or in ~/.cargo/bin.
fn cargo_installed(name: &str, install: &str) -> PathBuf {
    if let Ok(out) = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        && out.status.success()
    {
        return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let p = PathBuf::from(home).join(".cargo/bin").join(name);
    assert!(
        p.exists(),
        "{name} is not installed: run ./scripts/test.sh (it runs `{install}`)"
    );
    p
}

impl Garage {
    /// One server for all the tests of a binary (each works under its own
    /// prefix).
    pub fn shared() -> &'static Garage {
        static G: OnceLock<Garage> = OnceLock::new();
        G.get_or_init(Garage::start)
    }

    /// A holdfast command on the repository under `prefix`, with this
    /// server's key in the standard AWS variables.
    pub fn holdfast(&self, prefix: &str) -> Command {
        let mut c = Command::new(super::holdfast_bin());
        super::clean(&mut c);
        c.env("HOLDFAST_REPO", self.location(prefix))
            .env("HOLDFAST_PASSWORD", super::PASSWORD)
            .envs(self.env());
        c
    }

    /// holdfast's S3 backend itself on the repository under `prefix`, with
    /// this server's key.
    pub fn backend(&self, prefix: &str) -> holdfast_storage::S3Backend {
        let holdfast_storage::Location::S3(loc) =
            holdfast_storage::Location::parse(&self.location(prefix)).unwrap()
        else {
            panic!("an S3 location")
        };
        let settings = holdfast_storage::S3Settings {
            region: Some(self.region.clone()),
            credentials: Some(holdfast_storage::S3Credentials {
                access_key_id: self.key_id.clone(),
                secret_access_key: self.secret.clone(),
                session_token: None,
            }),
            ..holdfast_storage::S3Settings::default()
        };
        holdfast_storage::S3Backend::open(&loc, &settings).unwrap()
    }

    /// restic on the repository under `prefix`.
    pub fn restic(&self, prefix: &str, cache: &std::path::Path) -> Command {
        let mut c = Command::new("restic");
        super::clean(&mut c);
        c.env("RESTIC_REPOSITORY", self.location(prefix))
            .env("RESTIC_PASSWORD", super::PASSWORD)
            .env("RESTIC_CACHE_DIR", cache)
            .envs(self.env());
        c
    }

    /// rustic on the repository under `prefix`: its OpenDAL S3 backend,
    /// configured by a profile in `dir` (rustic takes no S3 location
    /// string; the key sits in a private file, never in argv).
    pub fn rustic(&self, prefix: &str, dir: &std::path::Path) -> Command {
        let cfg = dir.join("rustic-config");
        std::fs::create_dir_all(cfg.join("rustic")).unwrap();
        let profile = cfg.join("rustic/garage.toml");
        std::fs::write(
            &profile,
            format!(
                "[repository]\nrepository = \"opendal:s3\"\npassword = \"{pw}\"\n\
                 no-cache = true\n\n[repository.options]\nbucket = \"{bucket}\"\n\
                 root = \"/{prefix}\"\nendpoint = \"{endpoint}\"\nregion = \"{region}\"\n\
                 access_key_id = \"{key}\"\nsecret_access_key = \"{secret}\"\n",
                pw = super::PASSWORD,
                bucket = self.bucket,
                endpoint = self.endpoint,
                region = self.region,
                key = self.key_id,
                secret = self.secret,
            ),
        )
        .unwrap();
        std::fs::set_permissions(&profile, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut c = Command::new(cargo_installed(
            "rustic",
            "cargo install rustic-rs --locked --no-default-features",
        ));
        super::clean(&mut c);
        c.env("XDG_CONFIG_HOME", &cfg).args(["-P", "garage"]);
        c
    }

    pub fn start() -> Garage {
        sweep_stale("holdfast-garage-");
        let dir = std::env::temp_dir().join(format!(
            "holdfast-garage-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let mut secret = [0u8; 32];
        holdfast_format::crypto::fill_random(&mut secret);
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\nadmin_token = \"{token}\"\n",
                d = dir.display(),
                secret = hex(&secret),
                token = hex(&secret[..16]),
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut cmd = as_user(None, &garage_bin());
        cmd.arg("-c")
            .arg(&config)
            .arg("server")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("server.log")).unwrap(),
            ));
        let child = spawn_for_process_lifetime(cmd, "garage");
        let mut g = Garage {
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: "backups".into(),
            key_id: String::new(),
            secret: String::new(),
            region: "garage".into(),
            config,
            dir,
            child,
        };
        wait_until("Garage", || g.cli(&["status"]).status.success());
        let out = g.cli(&["node", "id", "-q"]);
        let node = String::from_utf8_lossy(&out.stdout)
            .split('@')
            .next()
            .unwrap()
            .trim()
            .to_string();
        g.ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        g.ok(&["layout", "apply", "--version", "1"]);
        g.ok(&["bucket", "create", "backups"]);
        let text = g.ok(&["key", "create", "holdfast-tests"]);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        };
        g.key_id = field("Key ID:");
        g.secret = field("Secret key:");
        g.ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "backups",
            "--key",
            "holdfast-tests",
        ]);
        g
    }

    /// Run the garage CLI on this server.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(garage_bin())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "garage {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// restic's location of a repository under `prefix` in the bucket.
    pub fn location(&self, prefix: &str) -> String {
        format!("s3:{}/{}/{prefix}", self.endpoint, self.bucket)
    }

    /// The standard AWS variables for this server's key.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
        ]
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The test virtual environment `scripts/test.sh` fills (schemathesis,
/// moto): `HOLDFAST_TEST_VENV` or ~/.cache/holdfast-test-venv.
pub fn test_venv() -> PathBuf {
    if let Ok(v) = std::env::var("HOLDFAST_TEST_VENV") {
        return PathBuf::from(v);
    }
    PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/holdfast-test-venv")
}

/// moto's S3 server (from PyPI), for what Garage does not have: object
/// lock, with AWS's rules (versioned buckets, default retention, uploads
/// refused without a body checksum, a delete without a version leaving a
/// delete marker and the locked version in place).
pub struct Moto {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    child: Child,
}

impl Moto {
    pub fn start() -> Moto {
        let venv = test_venv();
        let bin = venv.join("bin/moto_server");
        assert!(
            bin.exists(),
            "moto is not installed in {}: run ./scripts/test.sh (it installs it)",
            venv.display()
        );
        let port = free_port();
        let mut cmd = as_user(None, &bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_for_process_lifetime(cmd, "moto");
        let m = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        wait_until("moto", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        m
    }

    /// Run a Python snippet with `s3`, a boto3 client of this server, in
    /// scope; its standard output.
    pub fn python(&self, code: &str) -> String {
        let script = format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', \
             aws_access_key_id='moto', aws_secret_access_key='moto-secret', \
             region_name='us-east-1')\n{code}",
            self.endpoint
        );
        let out = Command::new(test_venv().join("bin/python"))
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python on moto: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A bucket with object lock on and a default retention of a day.
    pub fn locked_bucket(&self, name: &str) {
        self.python(&format!(
            "s3.create_bucket(Bucket='{name}', ObjectLockEnabledForBucket=True)\n\
             s3.put_object_lock_configuration(Bucket='{name}', ObjectLockConfiguration={{\
             'ObjectLockEnabled': 'Enabled', 'Rule': {{'DefaultRetention': \
             {{'Mode': 'GOVERNANCE', 'Days': 1}}}}}})\n"
        ));
    }

    /// The standard AWS variables for this server (moto takes any key).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "moto".into()),
            ("AWS_SECRET_ACCESS_KEY", "moto-secret".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
