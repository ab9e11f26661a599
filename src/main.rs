//! The `certbound` command: serve, and the operator tools around it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use sha2::Digest;

use certbound::config::{Config, Source};
use certbound::{AppState, dev, server::Server};

/// Stateless OAuth 2.0 authorization server: mutual-TLS client
/// authentication and certificate-bound JWT access tokens.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (default: $CERTBOUND_CONFIG, else ./certbound.toml, else
    /// the embedded development configuration).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// `--config`, on the commands that read the configuration.
#[derive(clap::Args, Default)]
struct At {
    /// Config file (default: $CERTBOUND_CONFIG, else ./certbound.toml, else
    /// the embedded development configuration).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default command).
    Serve(At),
    /// Check the configuration and everything it names without starting
    /// anything; print every problem, exit 1 if there is any.
    Check(At),
    /// Ask the running server to reload its configuration (as SIGHUP does)
    /// and print the outcome.
    Reload(At),
    /// Manage signing and sealing keys in keys.dir.
    Keys {
        #[command(flatten)]
        at: At,
        /// A tenant's keys (its keys_dir) instead of the default tenant's.
        #[arg(long, global = true)]
        tenant: Option<String>,
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Generate a development CA, server and client certificates; or, with
    /// --client, another client certificate from that CA.
    DevCerts {
        #[command(flatten)]
        at: At,
        /// Output directory (default: keys.dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// Issue NAME.crt and NAME.key (CN=NAME) from the development CA in
        /// the directory, and print the [[clients]] entry for it.
        #[arg(long, value_name = "NAME")]
        client: Option<String>,
    },
    /// Generate a client secret (256 bits) and its client_secret_sha256.
    Secret,
    /// Print the x5t#S256 thumbprint of a PEM or DER certificate.
    Thumbprint {
        /// Certificate file, or - for stdin.
        file: PathBuf,
    },
    /// Revoke every token of a client or of a user issued until now, or one
    /// token by its jti: one record on the revocation list, written by the
    /// running server (through server.control_socket) and acknowledged
    /// once durable.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["client", "user", "jti"])))]
    Revoke {
        #[command(flatten)]
        at: At,
        /// Every token of this client.
        #[arg(long)]
        client: Option<String>,
        /// Every token of this user (username).
        #[arg(long)]
        user: Option<String>,
        /// The token with this jti.
        #[arg(long)]
        jti: Option<String>,
        /// The tenant (its domain; default: the default tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Inspect, compact or import the revocation list (its file, or Redis).
    Revocations {
        #[command(flatten)]
        at: At,
        #[command(subcommand)]
        action: certbound::commands::revocations::Action,
    },
    /// User tools.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Check an access token as a resource server would (certbound-verify):
    /// print its claims and "valid", or the check that failed; exit 1
    /// unless valid.
    Verify(certbound::commands::verify::Args),
    /// Print the OpenAPI document.
    Openapi {
        /// YAML instead of JSON.
        #[arg(long)]
        yaml: bool,
    },
}

#[derive(Subcommand)]
enum UsersAction {
    /// Read a password (prompted without echo on a terminal, else the first
    /// line of stdin) and print its argon2id hash for `password_hash`.
    HashPassword,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Add a key. It is published at once and activates after
    /// keys.publish_before (plus keys.poll_interval, so every server has
    /// seen it), or at --activate-at; the first key activates at once.
    Generate {
        /// ES256, RS256, PS256 or EdDSA (default: tokens.signing_algorithm).
        #[arg(long)]
        alg: Option<String>,
        /// When it starts signing: RFC 3339 or Unix seconds.
        #[arg(long)]
        activate_at: Option<String>,
        /// A sealing key (codes, cookies) instead of a signing key.
        #[arg(long)]
        sealing: bool,
    },
    /// List signing and sealing keys: state, activation, next change.
    List,
    /// Add a key (as generate) and retire to keys/retired/ every key beyond
    /// the newest --keep that nothing valid depends on.
    Rotate {
        /// Algorithm of the new key (default: tokens.signing_algorithm).
        #[arg(long)]
        alg: Option<String>,
        /// Keys to keep published, the new one included (at least 1).
        #[arg(long, default_value_t = 2)]
        keep: usize,
        /// Sealing keys instead of signing keys.
        #[arg(long)]
        sealing: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("certbound: {message}");
            ExitCode::FAILURE
        }
    }
}

impl Command {
    /// The `--config` given after the command, for those that read it.
    fn config(&self) -> Option<&Path> {
        match self {
            Self::Serve(at) | Self::Check(at) | Self::Reload(at) => at.config.as_deref(),
            Self::Keys { at, .. }
            | Self::DevCerts { at, .. }
            | Self::Revoke { at, .. }
            | Self::Revocations { at, .. } => at.config.as_deref(),
            _ => None,
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let command = cli.command.unwrap_or(Command::Serve(At::default()));
    let explicit = command.config().map(Path::to_path_buf).or(cli.config);
    let locate = || Config::locate(explicit.as_deref()).map_err(|e| e.to_string());
    let load = || -> Result<(Config, Source), String> {
        let source = locate()?;
        let config = Config::load(&source).map_err(|e| format!("config: {e}"))?;
        Ok((config, source))
    };
    match command {
        Command::Serve(_) => serve(locate()?),
        Command::Check(_) => check(&locate()?),
        Command::Reload(_) => {
            // Only to find the control socket: the server checks the rest.
            let config = Config::parse(&locate()?).map_err(|e| format!("config: {e}"))?;
            let lines =
                certbound::control::request_reload(&config).map_err(|e| format!("reload: {e}"))?;
            for line in lines {
                println!("{line}");
            }
            Ok(())
        }
        Command::Keys { tenant, action, .. } => {
            let (config, _) = load()?;
            // A tenant's own keys only: never keys another tenant uses too.
            if let Some(domain) = tenant
                .as_deref()
                .filter(|d| *d != config.tenancy.default_domain)
            {
                let dir_of = |d: &str| config.tenant_config(d).map(|c| c.keys.dir);
                let own = dir_of(domain);
                let shared_with = std::iter::once(config.tenancy.default_domain.as_str())
                    .chain(config.tenants.iter().map(|t| t.domain.as_str()))
                    .filter(|d| *d != domain)
                    .find(|d| own.is_some() && dir_of(d) == own);
                if let Some(other) = shared_with {
                    return Err(format!(
                        "tenant {domain:?} shares its keys directory with {other:?} (a change there changes both); manage shared keys without --tenant"
                    ));
                }
            }
            let config = match tenant {
                Some(domain) => config
                    .tenant_config(&domain)
                    .ok_or_else(|| format!("no tenant {domain:?} in the configuration"))?,
                None => config,
            };
            keys_command(&config, action)
        }
        Command::DevCerts {
            dir, force, client, ..
        } => {
            let dir = match dir {
                Some(dir) => dir,
                None => load()?.0.keys.dir,
            };
            if let Some(name) = client {
                let entry = dev::generate_client(&dir, &name, force)?;
                println!(
                    "wrote {name}.crt and {name}.key in {} (issued by the development CA); a client it authenticates:\n\n{entry}",
                    dir.display()
                );
                return Ok(());
            }
            if !dev::generate(&dir, force)? {
                return Err(format!(
                    "{} exists; pass --force to replace the development certificates",
                    dir.join("ca.crt").display()
                ));
            }
            println!("wrote {} in {}", dev::FILES.join(", "), dir.display());
            Ok(())
        }
        Command::Secret => {
            let mut bytes = [0u8; 32];
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "random generator failed")?;
            let secret =
                base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
            println!("client_secret = {secret}");
            println!(
                "client_secret_sha256 = \"{}\"",
                hex::encode(sha2::Sha256::digest(secret.as_bytes()))
            );
            Ok(())
        }
        Command::Thumbprint { file } => {
            println!("{}", thumbprint_file(&file)?);
            Ok(())
        }
        Command::Revoke {
            client,
            user,
            jti,
            tenant,
            ..
        } => {
            let (kind, name) = match (client, user, jti) {
                (Some(c), _, _) => ("client", c),
                (_, Some(u), _) => ("user", u),
                (_, _, Some(j)) => ("jti", j),
                _ => return Err("name --client, --user or --jti".into()),
            };
            let tenant = tenant.unwrap_or_else(|| "-".into());
            let one_line = |v: &str| !v.is_empty() && !v.chars().any(char::is_control);
            if !one_line(&name) || !one_line(&tenant) || tenant.contains(' ') {
                return Err("the name and the tenant must be one non-empty line (the tenant without spaces)".into());
            }
            let config = Config::parse(&locate()?).map_err(|e| format!("config: {e}"))?;
            let lines =
                certbound::control::request(&config, &format!("revoke {kind} {tenant} {name}"))?;
            for line in lines.iter().skip(1) {
                println!("{line}");
            }
            Ok(())
        }
        Command::Revocations { action, .. } => {
            let (config, _) = load()?;
            certbound::commands::revocations::run(&config.revocation, action)
        }
        Command::Users {
            action: UsersAction::HashPassword,
        } => {
            let password = read_password()?;
            println!("{}", certbound::users::hash_password(&password)?);
            Ok(())
        }
        Command::Verify(args) => match certbound::commands::verify::run(args)? {
            true => Ok(()),
            false => Err("the token is not valid".into()),
        },
        Command::Openapi { yaml } => {
            let api = certbound::openapi();
            println!("{}", if yaml { api.spec_yaml() } else { api.spec() });
            Ok(())
        }
    }
}

fn keys_command(config: &Config, action: KeysAction) -> Result<(), String> {
    use certbound::commands::keys::{self, Kind};
    let kind = |sealing: bool| {
        if sealing {
            Kind::Sealing
        } else {
            Kind::Signing
        }
    };
    let now = certbound::keys::unix_now();
    let out = match action {
        KeysAction::Generate {
            alg,
            activate_at,
            sealing,
        } => {
            let at = activate_at.as_deref().map(keys::parse_time).transpose()?;
            keys::generate(config, kind(sealing), alg.as_deref(), at, now)?
        }
        KeysAction::List => keys::list(config, now)?,
        KeysAction::Rotate { alg, keep, sealing } => {
            keys::rotate(config, kind(sealing), alg.as_deref(), keep, now)?
        }
    };
    println!("{}", out.trim_end());
    Ok(())
}

fn read_password() -> Result<String, String> {
    let password = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    Ok(password)
}

fn thumbprint_file(file: &Path) -> Result<String, String> {
    certbound::commands::verify::certificate_der(file).map(|der| certbound::cert::thumbprint(&der))
}

/// `certbound check`: every problem on its own line.
fn check(source: &Source) -> Result<(), String> {
    match certbound::settings::Settings::load(source) {
        Ok((settings, unsaved)) => {
            let what = match source {
                Source::File(path) => path.display().to_string(),
                Source::EmbeddedDev => "the embedded development configuration".into(),
            };
            println!(
                "{what}: no problem found ({} clients, {} signing keys, issuer {})",
                settings.clients.iter().count(),
                settings.keys.all().len(),
                settings.tokens.issuer
            );
            if let Some(u) = unsaved {
                println!("{} will be created on first start", u.path.display());
            }
            Ok(())
        }
        Err(problems) => {
            for problem in problems.lines() {
                println!("{problem}");
            }
            Err(format!(
                "{} problem{} in the configuration",
                problems.0.len(),
                if problems.0.len() == 1 { "" } else { "s" }
            ))
        }
    }
}

fn serve(source: Source) -> Result<(), String> {
    // The log's format is needed before anything is logged; the rest of
    // the configuration is checked by AppState::open.
    let log = Config::parse(&source).map(|c| c.log).unwrap_or_default();
    let _log = certbound::logging::init(&log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(async move {
        let hangups = certbound::control::hangups();
        let state = Arc::new(AppState::open(source).map_err(|p| p.to_string())?);
        let settings = state.settings();
        let control = certbound::control::Control::bind(&settings.config)?;
        if settings.config.server.admin.is_some() {
            certbound::metrics::install()?;
        }
        let server = Server::bind(state.clone()).await?;
        let issuer = settings.tokens.issuer.clone();
        if let Some(addr) = server.https_addr() {
            tracing::info!(%addr, %issuer, "listening (https, client certificates requested)");
        }
        if let Some(addr) = server.http_addr() {
            tracing::info!(%addr, "listening (plain http, for a TLS-terminating proxy)");
        }
        if let Some(addr) = server.admin_addr() {
            tracing::info!(%addr, "listening (admin: /metrics, /healthz, /readyz, /admin/revoke)");
        }
        if settings.config.mtls.header_on_https && server.https_addr().is_some() {
            tracing::warn!(
                trusted = %settings.config.mtls.trusted_proxies.join(", "),
                "mtls.header_on_https: the HTTPS listener believes the certificate header from these addresses; any process there can present a client's public certificate"
            );
        }
        if *state.source() == Source::EmbeddedDev
            && let Some(addr) = server.https_addr()
        {
            println!("{}", dev::banner(&settings.config, addr));
        }
        drop(settings);
        tracing::info!(version = env!("CARGO_PKG_VERSION"), "started");
        tokio::spawn(certbound::control::reload_on_hangup(state.clone(), hangups));
        tokio::spawn(certbound::control::watch_keys(state.clone()));
        tokio::spawn(control.serve(state.clone()));
        server.run(shutdown_signal()).await;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
