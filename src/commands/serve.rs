//! `holdfast serve` and the commands that work on the service's catalog
//! directly: `token`, `tenant export-key`, `audit verify`, `report`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use holdfast_catalog::tokens::Role;
use holdfast_catalog::{Actor, Catalog};
use holdfast_service::{AppState, Config};

use crate::exit;
use crate::ui::Ui;

/// Where the service's state is: shared by `serve` and the catalog commands.
#[derive(Args, Debug, Clone)]
pub struct ServiceDirArgs {
    /// Data directory: the SQLite catalog, the server key, the tenants'
    /// repositories [default: ./holdfast-data]
    #[arg(long, value_name = "DIR", env = "HOLDFAST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file (HOLDFAST_… variables override it)
    #[arg(long, value_name = "FILE", env = "HOLDFAST_CONFIG")]
    pub config: Option<PathBuf>,
}

impl ServiceDirArgs {
    fn config(&self) -> Result<Config> {
        let mut c = Config::load(self.config.as_deref(), &|k| std::env::var(k).ok())?;
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
            c.make_absolute()?;
        }
        Ok(c)
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dir: ServiceDirArgs,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn open(config: &Config) -> Result<Catalog> {
    let (catalog, _) =
        holdfast_service::open_catalog(config, holdfast_service::Opening::Console).await?;
    Ok(catalog)
}

pub fn serve(ui: &Ui, a: &ServeArgs) -> Result<u8> {
    let mut config = a.dir.config()?;
    if let Some(l) = &a.listen {
        config.listen = l.clone();
        l.parse::<std::net::SocketAddr>()
            .with_context(|| format!("--listen {l:?}: not an address like 127.0.0.1:8080"))?;
    }
    runtime()?.block_on(async {
        let (catalog, key_created) =
            holdfast_service::open_catalog(&config, holdfast_service::Opening::Serve).await?;
        // the audit chain's head, recorded outside the catalog after every append
        let anchor = holdfast_service::anchor::AnchorWriter::new(&config.data_dir);
        anchor.start(&catalog).await?;
        let catalog = catalog.with_head_hook(anchor.hook());
        // tools run for tenants never see the server's environment or HOME
        let home = config.data_dir.join("tool-home");
        std::fs::create_dir_all(&home)
            .with_context(|| format!("cannot create {}", home.display()))?;
        holdfast_confine::tool_env::confine(&home);
        if key_created {
            ui.notice(&format!(
                "created the server key {} — it encrypts every tenant's repository password: back it up \
                 (or keep each password with `holdfast tenant export-key`)",
                config.server_key_path().display()
            ));
        }
        if let Some(secret) = holdfast_service::bootstrap_admin(&catalog).await? {
            ui.print("first start: created an admin token; it is shown only this once:");
            ui.print(&secret);
        }
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        // a bad certificate stops the start before it says it listens
        let tls = match &config.tls {
            Some(t) => Some(
                holdfast_service::http::tls_config(&t.cert, &t.key).map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        let auth_limiter = Arc::new(holdfast_service::auth::AuthLimiter::new(
            config.auth_failures_per_minute,
        ));
        ui.print(&format!(
            "holdfast serve: listening on {scheme}://{addr} (catalog {}, data {})",
            catalog.shown_url(),
            config.data_dir.display()
        ));
        let state = AppState {
            catalog,
            config: Arc::new(config),
            node: format!("{}/{}", holdfast_engine::system::hostname(), std::process::id()),
            wake: Arc::new(tokio::sync::Notify::new()),
            metrics: Arc::default(),
            jobs: Arc::default(),
            auth_limiter,
        };
        let shutdown = async {
            while !holdfast_engine::cancel::requested() {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        };
        holdfast_service::serve(state, listener, tls, shutdown).await?;
        Ok(exit::OK)
    })
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create an API token; its secret is the last line of the output
    Create {
        #[command(flatten)]
        dir: ServiceDirArgs,
        /// admin, operator or viewer
        #[arg(long, value_name = "ROLE")]
        role: String,
        /// The tenant (name or id) an operator or viewer token is limited to
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
        /// What the token is for, shown in the audit log
        #[arg(long, value_name = "TEXT", default_value = "")]
        label: String,
    },
    /// List tokens (never their secrets)
    List {
        #[command(flatten)]
        dir: ServiceDirArgs,
    },
    /// Revoke a token
    Revoke {
        #[command(flatten)]
        dir: ServiceDirArgs,
        /// The token's id
        id: String,
    },
}

/// The operator at the server's console.
fn console() -> Actor {
    Actor {
        token_id: None,
        label: format!("console:{}", holdfast_engine::system::username()),
    }
}

pub fn token(ui: &Ui, cmd: &TokenCmd) -> Result<u8> {
    runtime()?.block_on(async {
        match cmd {
            TokenCmd::Create {
                dir,
                role,
                tenant,
                label,
            } => {
                let catalog = open(&dir.config()?).await?;
                let role = Role::parse(role)?;
                let tenant_id = match tenant {
                    Some(t) => Some(
                        catalog
                            .tenant(t)
                            .await
                            .with_context(|| format!("tenant {t:?}"))?
                            .id,
                    ),
                    None => None,
                };
                let (t, secret) = catalog
                    .create_token(role, tenant_id.as_deref(), label, &console())
                    .await?;
                ui.json_line(&serde_json::json!({"token": t, "secret": secret}));
                if !ui.json {
                    ui.print(&format!(
                        "created {} token {} ({})",
                        t.role.as_str(),
                        t.id,
                        t.label
                    ));
                    println!("{secret}");
                }
            }
            TokenCmd::List { dir } => {
                let catalog = open(&dir.config()?).await?;
                let tokens = catalog.tokens(None).await?;
                if ui.json {
                    ui.json_line(&serde_json::json!(tokens));
                } else {
                    for t in tokens {
                        println!(
                            "{}  {:<8}  {:<36}  {}{}",
                            t.id,
                            t.role.as_str(),
                            t.tenant_id.as_deref().unwrap_or("(all tenants)"),
                            t.label,
                            if t.revoked_at.is_some() {
                                "  [revoked]"
                            } else {
                                ""
                            }
                        );
                    }
                }
            }
            TokenCmd::Revoke { dir, id } => {
                let catalog = open(&dir.config()?).await?;
                let t = catalog.revoke_token(id, &console()).await?;
                ui.print(&format!("revoked token {} ({})", t.id, t.label));
            }
        }
        Ok(exit::OK)
    })
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Check the audit log's hash chain; names the first row that was
    /// edited, inserted or deleted and exits non-zero
    Verify {
        #[command(flatten)]
        dir: ServiceDirArgs,
    },
}

pub fn audit(ui: &Ui, cmd: &AuditCmd) -> Result<u8> {
    let AuditCmd::Verify { dir } = cmd;
    runtime()?.block_on(async {
        let config = dir.config()?;
        let catalog = open(&config).await?;
        // anchors outside the catalog: the anchor file, and the newest head
        // recorded in each tenant's snapshots
        let mut anchors = Vec::new();
        let file = holdfast_service::anchor::anchor_path(&config.data_dir);
        match holdfast_service::anchor::read_anchor(&file) {
            Some(Ok(h)) => anchors.push((h, format!("the anchor file {}", file.display()))),
            Some(Err(e)) => bail!("the audit anchor cannot be read: {e}"),
            None => ui.notice(&format!(
                "no anchor file at {} (written by holdfast serve)",
                file.display()
            )),
        }
        for t in catalog.tenants().await? {
            let password = catalog.tenant_password(&t.id).await?;
            let repo =
                holdfast_service::repos::RepoAt::of_tenant(&config, &catalog, &t.id, &t.repository)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            let found = tokio::task::spawn_blocking(move || {
                holdfast_service::anchor::newest_snapshot_anchor(&repo, &password)
            })
            .await?;
            match found {
                Ok(Some(a)) => anchors.push(a),
                Ok(None) => {}
                Err(e) => ui.notice(&format!(
                    "tenant {}: its snapshots cannot be read for anchors: {e}",
                    t.name
                )),
            }
        }
        match catalog.verify_audit_with(&anchors).await? {
            Ok(n) => {
                ui.print(&format!(
                    "audit log intact: {n} rows, every link and hash verified; {} anchors \
                     outside the catalog agree",
                    anchors.len()
                ));
                Ok(exit::OK)
            }
            Err(b) => bail!("the audit log was tampered with: {b}"),
        }
    })
}

#[derive(Subcommand, Debug)]
pub enum CatalogCmd {
    /// Copy the whole catalog into a new, empty PostgreSQL database: how one
    /// node on SQLite grows into several (docs/OPERATIONS.md). The password
    /// comes from PGPASSWORD, never the command line
    Copy {
        #[command(flatten)]
        dir: ServiceDirArgs,
        /// postgres://USER@HOST[:PORT]/DATABASE (without a password)
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

pub fn catalog(ui: &Ui, cmd: &CatalogCmd) -> Result<u8> {
    let CatalogCmd::Copy { dir, to } = cmd;
    let url = target_url(to, std::env::var("PGPASSWORD").ok().as_deref())?;
    runtime()?.block_on(async {
        let config = dir.config()?;
        let source = open(&config).await?;
        let dest = Catalog::open(&url, source.key().clone()).await?;
        let report = source.copy_into(&dest).await?;
        let total: u64 = report.iter().map(|(_, n)| n).sum();
        for (table, n) in &report {
            ui.print(&format!("{table:>10}: {n} rows"));
        }
        // the copy must verify where it landed, as it did where it was
        match dest.verify_audit_with(&[]).await? {
            Ok(n) => ui.print(&format!(
                "copied {total} rows from {} to {}; the audit chain verifies ({n} rows).\n\
                 Next: stop every node, set catalog_url (HOLDFAST_CATALOG_URL) to the new catalog \
                 with the same server key, and start them",
                source.shown_url(),
                dest.shown_url()
            )),
            Err(b) => bail!("the copied audit chain does not verify: {b}"),
        }
        Ok(exit::OK)
    })
}

/// The destination URL with the password from PGPASSWORD; a password in
/// the argument is refused (argv is visible to every user of the host).
fn target_url(to: &str, password: Option<&str>) -> Result<String> {
    let Some(rest) = to
        .strip_prefix("postgres://")
        .or_else(|| to.strip_prefix("postgresql://"))
    else {
        bail!("--to {to:?}: a postgres:// URL");
    };
    let (auth, host) = rest
        .split_once('@')
        .ok_or_else(|| anyhow::anyhow!("--to needs a user: postgres://USER@HOST/DATABASE"))?;
    if auth.contains(':') {
        bail!("keep the password out of the command line: put it in PGPASSWORD");
    }
    Ok(match password {
        Some(p) => format!("postgres://{auth}:{}@{host}", percent_encode(p)),
        None => format!("postgres://{auth}@{host}"),
    })
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// Print a tenant's repository location and password (opens the
    /// repository with holdfast or restic, without the server)
    ExportKey {
        #[command(flatten)]
        dir: ServiceDirArgs,
        /// Tenant name or id
        tenant: String,
    },
}

pub fn tenant(ui: &Ui, cmd: &TenantCmd) -> Result<u8> {
    let TenantCmd::ExportKey { dir, tenant } = cmd;
    runtime()?.block_on(async {
        let catalog = open(&dir.config()?).await?;
        let t = catalog
            .tenant(tenant)
            .await
            .with_context(|| format!("tenant {tenant:?}"))?;
        let password = catalog.tenant_password(&t.id).await?;
        ui.notice(&format!(
            "repository of tenant {} ({}): {}",
            t.name, t.id, t.repository
        ));
        println!("{password}");
        Ok(exit::OK)
    })
}

/// `holdfast report TENANT` makes a signed evidence report;
/// `holdfast report verify FILE` checks one.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub cmd: Option<ReportCmd>,
    #[command(flatten)]
    pub dir: ServiceDirArgs,
    /// Tenant name or id
    pub tenant: Option<String>,
    /// Start of the period (RFC 3339) [default: 30 days before --to]
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the period (RFC 3339) [default: now]
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// A printable HTML page instead of JSON
    #[arg(long)]
    pub html: bool,
    /// Write it here instead of standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ReportCmd {
    /// Check a report (JSON or HTML) against this server's key, or the
    /// public key given; exits non-zero when it was changed after signing
    Verify {
        file: PathBuf,
        /// The signer's public key (hex), for checking without the server
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
        #[command(flatten)]
        dir: ServiceDirArgs,
    },
}

fn parse_time(flag: &str, text: &str) -> Result<jiff::Timestamp> {
    text.parse()
        .with_context(|| format!("{flag} {text:?}: an RFC 3339 time (2026-12-01T00:00:00Z)"))
}

pub fn report(ui: &Ui, args: &ReportArgs) -> Result<u8> {
    if let Some(ReportCmd::Verify {
        file,
        public_key,
        dir,
    }) = &args.cmd
    {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let key = match public_key {
            Some(k) => k.trim().to_ascii_lowercase(),
            None => runtime()?.block_on(async {
                let catalog = open(&dir.config()?).await?;
                Ok::<_, anyhow::Error>(holdfast_service::report::public_key(catalog.key()))
            })?,
        };
        return match holdfast_service::report::verify(&text, &key) {
            Ok(r) => {
                ui.print(&format!(
                    "report verified: tenant {} ({}), {} to {}, made {}; signed by {key}",
                    r.tenant.name, r.tenant.id, r.from, r.to, r.generated_at
                ));
                Ok(exit::OK)
            }
            Err(e) => bail!("{}: {e}", file.display()),
        };
    }
    let Some(tenant) = &args.tenant else {
        bail!(
            "name a tenant (holdfast report TENANT), or check a report: holdfast report verify FILE"
        );
    };
    runtime()?.block_on(async {
        let catalog = open(&args.dir.config()?).await?;
        let t = catalog
            .tenant(tenant)
            .await
            .with_context(|| format!("tenant {tenant:?}"))?;
        let to = match &args.to {
            Some(t) => parse_time("--to", t)?,
            None => jiff::Timestamp::now(),
        };
        let from = match &args.from {
            Some(f) => parse_time("--from", f)?,
            None => to
                .checked_sub(jiff::SignedDuration::from_hours(24 * 30))
                .unwrap_or(to),
        };
        if from >= to {
            bail!("--from must be before --to");
        }
        let report = holdfast_service::report::build(&catalog, &t, from, to).await?;
        let signed = holdfast_service::report::sign(catalog.key(), &report);
        let text = if args.html {
            holdfast_service::report::html_page(&report, &signed)
        } else {
            serde_json::to_string_pretty(&signed)? + "\n"
        };
        match &args.output {
            Some(f) => {
                std::fs::write(f, text).with_context(|| format!("cannot write {}", f.display()))?;
                ui.notice(&format!(
                    "evidence report of {} written to {}",
                    t.name,
                    f.display()
                ));
            }
            None => print!("{text}"),
        }
        Ok(exit::OK)
    })
}
