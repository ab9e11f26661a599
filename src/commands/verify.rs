//! `certbound verify`: a resource server's checks of one access token
//! (RFC 9068 §4, RFC 8705 §3), made by `certbound-verify`, the crate
//! resource servers use: prints the claims and `valid`, or the check that
//! failed. For operators and shell scripts; exit status 0 when valid.
//! Offline, like a resource server: a revoked token is valid here until
//! its `exp` (introspection says whether it is revoked).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use certbound_verify::access::{AccessToken, Audience, Expect};
use certbound_verify::binding::{self, Unbound};
use certbound_verify::client::{self, HttpOptions};
use certbound_verify::jwks::Jwks;
use certbound_verify::remote::{KeysOptions, RemoteKeys};
use certbound_verify::verifier::{Keys, Verifier};

/// What to check, and against what.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The access token (`-`: read it from stdin).
    #[arg(long)]
    pub token: String,
    /// The client certificate presented with it (PEM or DER); without it,
    /// a bound token fails.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// The JWKS: an http(s) URL or a file. Default: the issuer's, found by
    /// discovery.
    #[arg(long)]
    pub jwks: Option<String>,
    /// The issuer tokens must name; its metadata locates the JWKS when
    /// --jwks is not given.
    #[arg(long)]
    pub issuer: String,
    /// An audience the token must name (default: the issuer, certbound's
    /// default audience).
    #[arg(long)]
    pub audience: Option<String>,
    /// PEM CA certificates to trust for https URLs (a private CA).
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Accept a token without `cnf` (not bound to a certificate).
    #[arg(long)]
    pub allow_unbound: bool,
}

/// Checks the token; `Ok(true)` when it is valid (the claims are printed
/// on stdout), `Ok(false)` when a check fails (said on stdout).
pub fn run(args: Args) -> Result<bool, String> {
    let token = match args.token.as_str() {
        "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| format!("cannot read the token from stdin: {e}"))?;
            text.trim().to_string()
        }
        t => t.trim().to_string(),
    };
    let presented = args
        .cert
        .as_deref()
        .map(certificate_der)
        .transpose()?
        .map(|der| binding::thumbprint(&der));
    let http = HttpOptions {
        ca_pem: args
            .cacert
            .as_deref()
            .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
            .transpose()?,
        ..HttpOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(async move {
        let keys = keys(&args, &http).await?;
        let expect = expect(&args);
        let verifier = Verifier::new(keys, expect);
        match verifier
            .verify::<serde_json::Map<String, serde_json::Value>>(&token, presented.as_deref())
            .await
        {
            Ok(claims) => {
                println!("{}", claims_json(&claims));
                println!("valid");
                Ok(true)
            }
            Err(failure) if failure.is_unavailable() => Err(failure.to_string()),
            Err(failure) => {
                println!("invalid: {failure}");
                Ok(false)
            }
        }
    })
}

async fn keys(args: &Args, http: &HttpOptions) -> Result<Keys, String> {
    let remote = match &args.jwks {
        Some(jwks) if !jwks.starts_with("http://") && !jwks.starts_with("https://") => {
            let bytes = std::fs::read(jwks).map_err(|e| format!("{jwks}: {e}"))?;
            let set = Jwks::from_json(&bytes, &[]).map_err(|e| format!("{jwks}: {e}"))?;
            return Ok(Keys::Static(Arc::new(set)));
        }
        Some(url) => RemoteKeys::from_jwks_uri(url, client::build(http)?, KeysOptions::default()),
        None => RemoteKeys::from_issuer(&args.issuer, client::build(http)?, KeysOptions::default()),
    };
    remote.ready().await.map_err(|e| e.to_string())?;
    Ok(Keys::Remote(remote))
}

/// The issuer, the audience (default: the issuer, certbound's default
/// audience) and whether unbound tokens pass.
fn expect(args: &Args) -> Expect {
    let audience = args.audience.as_deref().unwrap_or(&args.issuer);
    let mut expect = Expect::new(args.issuer.clone(), audience);
    if args.allow_unbound {
        expect.unbound = Unbound::Accepted;
    }
    expect
}

fn claims_json(claims: &AccessToken<serde_json::Map<String, serde_json::Value>>) -> String {
    let mut all = claims.extra.clone();
    let mut put = |k: &str, v: serde_json::Value| {
        all.insert(k.to_string(), v);
    };
    put("iss", claims.iss.clone().into());
    put("sub", claims.sub.clone().into());
    put("client_id", claims.client_id.clone().into());
    put("scope", claims.scope.clone().into());
    put(
        "aud",
        match &claims.aud {
            Audience::One(a) => a.clone().into(),
            Audience::Many(list) => list.clone().into(),
        },
    );
    put("exp", claims.exp.into());
    put("iat", claims.iat.into());
    if let Some(nbf) = claims.nbf {
        put("nbf", nbf.into());
    }
    put("jti", claims.jti.clone().into());
    if let Some(name) = &claims.username {
        put("username", name.clone().into());
    }
    if let Some(cnf) = &claims.cnf {
        put("cnf", serde_json::json!({"x5t#S256": cnf.x5t_s256}));
    }
    serde_json::to_string_pretty(&serde_json::Value::Object(all)).unwrap_or_default()
}

/// A certificate file's DER (PEM or DER); an error that names the file
/// when it cannot be read or is not a certificate (a private key says so).
pub fn certificate_der(file: &Path) -> Result<Vec<u8>, String> {
    let bytes = if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .map_err(|e| format!("stdin: {e}"))?;
        bytes
    } else {
        std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?
    };
    let der = match std::str::from_utf8(&bytes) {
        Ok(text) if text.contains("PRIVATE KEY-----") => {
            return Err(format!(
                "{} holds a private key, not a certificate",
                file.display()
            ));
        }
        Ok(text) if text.contains("-----BEGIN") => certbound_verify::header::decode(text)
            .map_err(|e| format!("{}: {e}", file.display()))?,
        _ => bytes,
    };
    x509_parser::parse_x509_certificate(&der)
        .map_err(|_| format!("{} is not an X.509 certificate", file.display()))?;
    Ok(der)
}
