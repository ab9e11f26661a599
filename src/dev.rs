//! Development PKI: a CA, a server certificate and a demo client
//! certificate, generated into `keys/` on the first run with no config (or
//! by `certbound dev-certs`). Never used when a config file names its own.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// File names written by [`generate`], relative to the keys directory.
pub const FILES: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "server.crt",
    "server.key",
    "client.crt",
    "client.key",
];

/// PEM armour around DER.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes a secret file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(bytes)
}

/// Writes a new secret file (owner only) at `path` whole or not at all,
/// never replacing one: it is written under a temporary name and then
/// linked into place, so a reader never sees half of it and two writers
/// never overwrite each other (the second gets `AlreadyExists`).
pub fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let written = opts
        .open(&temporary)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    let linked = written.and_then(|()| fs::hard_link(&temporary, path));
    let _ = fs::remove_file(&temporary);
    linked
}

/// Generates the development PKI into `dir` unless `dir/ca.crt` exists (or
/// `force`). Returns whether files were written.
pub fn generate(dir: &Path, force: bool) -> Result<bool, String> {
    if dir.join("ca.crt").exists() && !force {
        return Ok(false);
    }
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let err = |e: rcgen::Error| e.to_string();

    let ca_key = KeyPair::generate().map_err(err)?;
    let ca = ca_params().map_err(err)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, &ca_key);

    let server_key = KeyPair::generate().map_err(err)?;
    let mut server = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(err)?;
    server.distinguished_name = name("localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).map_err(err)?;

    let (client_cert, client_key) = client_certificate("demo-client", &issuer).map_err(err)?;

    let files: [(&str, String, bool); 6] = [
        ("ca.crt", ca_cert.pem(), false),
        ("ca.key", ca_key.serialize_pem(), true),
        ("server.crt", server_cert.pem(), false),
        ("server.key", server_key.serialize_pem(), true),
        ("client.crt", client_cert.pem(), false),
        ("client.key", client_key.serialize_pem(), true),
    ];
    for (file, contents, secret) in files {
        let path = dir.join(file);
        let written = if secret {
            write_private(&path, contents.as_bytes())
        } else {
            fs::write(&path, contents)
        };
        written.map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(true)
}

/// The development CA's certificate parameters (its name and uses): the
/// same every time, so a CA key on disk can sign again.
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = name("certbound dev CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(ca)
}

/// A client certificate `CN=<cn>,O=certbound dev` for client authentication.
fn client_certificate<S: rcgen::SigningKey>(
    cn: &str,
    issuer: &Issuer<'_, S>,
) -> Result<(rcgen::Certificate, KeyPair), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client.distinguished_name = name(cn);
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok((client.signed_by(&key, issuer)?, key))
}

/// `certbound dev-certs --client NAME`: `NAME.crt` and `NAME.key` in `dir`,
/// issued by the development CA there (`ca.key`), never replacing files
/// unless `force`. Returns the `[[clients]]` entry that accepts it.
pub fn generate_client(dir: &Path, cn: &str, force: bool) -> Result<String, String> {
    let safe = (1..=64).contains(&cn.len())
        && cn
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !cn.starts_with('.');
    if !safe {
        return Err(format!(
            "{cn:?}: a client name is 1 to 64 letters, digits, '-', '_' or '.' (it names the files)"
        ));
    }
    let (crt, key) = (dir.join(format!("{cn}.crt")), dir.join(format!("{cn}.key")));
    if !force && (crt.exists() || key.exists()) {
        return Err(format!(
            "{} exists; pass --force to replace it",
            crt.display()
        ));
    }
    let ca_key_path = dir.join("ca.key");
    let ca_key = fs::read_to_string(&ca_key_path).map_err(|e| {
        format!(
            "{}: {e} (run `certbound dev-certs` first)",
            ca_key_path.display()
        )
    })?;
    let err = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::from_pem(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params().map_err(err)?, ca_key);
    let (cert, key_pair) = client_certificate(cn, &issuer).map_err(err)?;
    fs::write(&crt, cert.pem()).map_err(|e| format!("{}: {e}", crt.display()))?;
    write_private(&key, key_pair.serialize_pem().as_bytes())
        .map_err(|e| format!("{}: {e}", key.display()))?;
    Ok(format!(
        "[[clients]]\nclient_id = \"{cn}\"\ntoken_endpoint_auth_method = \"tls_client_auth\"\ntls_client_auth_subject_dn = \"CN={cn},O=certbound dev\"\nscope = \"read\"\n"
    ))
}

/// The development server's redirect URI path (development mode only).
pub const CALLBACK: &str = "/dev/callback";

/// The PKCE pair the development banner and README use (RFC 7636
/// Appendix B); a real client makes a fresh verifier per request.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// `GET /dev/callback` (development mode): the code the browser brought,
/// with the commands that redeem it, refresh and ask for the user's claims.
#[poem::handler]
pub fn callback(
    req: &poem::Request,
    settings: poem::web::Data<&std::sync::Arc<crate::settings::Settings>>,
) -> poem::Response {
    let mut code = None;
    let mut error = None;
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*k {
            "code" => code = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            _ => {}
        }
    }
    // Only what certbound's codes are made of reaches a shell command.
    let well_formed = |c: &String| {
        (1..=8192).contains(&c.len())
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    };
    let base = &settings.tokens.issuer;
    let dir = settings.config.keys.dir.display().to_string();
    // Pasted unquoted into a shell: only plain paths and URLs.
    let plain = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._:-".contains(&b))
    };
    let html = match (code.filter(well_formed), error) {
        (Some(_), _) if !plain(base) || !plain(&dir) => crate::login::pages::dev_callback(Err(
            "keys.dir or the issuer has characters a pasted command cannot carry safely.",
        )),
        (Some(code), _) => crate::login::pages::dev_callback(Ok(&format!(
            "TLS=\"--cacert {dir}/ca.crt --cert {dir}/client.crt --key {dir}/client.key\"\n\
                 RESP=$(curl -s $TLS -d grant_type=authorization_code -d client_id=demo \
                 -d redirect_uri={base}{CALLBACK} -d code_verifier={VERIFIER} \
                 -d code={code} {base}/oauth2/token); echo \"$RESP\"\n\
                 ACCESS=$(echo \"$RESP\" | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n\
                 REFRESH=$(echo \"$RESP\" | sed -E 's/.*\"refresh_token\":\"([^\"]+)\".*/\\1/')\n\
                 curl -s $TLS -H \"Authorization: Bearer $ACCESS\" {base}/oauth2/userinfo\n\
                 curl -s $TLS -d grant_type=refresh_token -d client_id=demo \
                 --data-urlencode \"refresh_token=$REFRESH\" {base}/oauth2/token\n"
        ))),
        (None, Some(error)) => crate::login::pages::dev_callback(Err(&format!(
            "The authorization server answered error={error}."
        ))),
        (None, None) => crate::login::pages::dev_callback(Err(
            "No code in this address: start at the authorize URL the server printed.",
        )),
    };
    poem::Response::builder()
        .content_type("text/html; charset=utf-8")
        .body(html)
}

/// What the development server prints once it listens at `addr`: the
/// commands to try it, ready to paste.
pub fn banner(config: &crate::config::Config, addr: std::net::SocketAddr) -> String {
    let dir = config.keys.dir.display();
    let base = format!("https://{addr}");
    let tls = format!("--cacert {dir}/ca.crt --cert {dir}/client.crt --key {dir}/client.key");
    let redirect = percent_encoding::utf8_percent_encode(
        &format!("{base}{}", CALLBACK),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    format!(
        r#"
certbound is running in development mode (no config file): keys and certificates in {dir}/.

# 1. A certificate-bound access token, the client authenticated by mutual TLS:
TOKEN=$(curl -s {tls} -d grant_type=client_credentials -d client_id=demo -d scope=read {base}/oauth2/token | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

# 2. Introspect it (the demo client may introspect, authenticated the same way):
curl -s {tls} -d client_id=demo --data-urlencode "token=$TOKEN" {base}/oauth2/introspect

# 3. Revoke it (RFC 7009); introspection then answers {{"active":false}}:
curl -s {tls} -d client_id=demo --data-urlencode "token=$TOKEN" {base}/oauth2/revoke

# 4. Browser flow (authorization code + PKCE): open this URL, sign in as alice@example.com / dev-password and
#    approve. The page you land on ({base}/dev/callback) shows the code and the commands that redeem it,
#    ask for the user's claims and rotate the refresh token, ready to paste:
#    {base}/oauth2/authorize?response_type=code&client_id=demo&redirect_uri={redirect}&scope=openid%20profile%20email%20read&state=s1&nonce=n1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256

# The same token request with the certificate in the WSO2-style header, as a TLS-terminating proxy sends it:
curl -s --cacert {dir}/ca.crt -H "x-wso2-mtls-cert: $(tr -d '\n' < {dir}/client.crt)" -d grant_type=client_credentials -d client_id=demo {base}/oauth2/token

# Keys and metadata:  curl --cacert {dir}/ca.crt {base}/oauth2/jwks   ·   API docs: {base}/docs
"#
    )
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "certbound dev");
    dn
}

/// Development mode's first run: the dev PKI and a signing key in
/// `keys.dir`, each only when missing.
pub fn prepare(config: &crate::config::Config) -> Result<(), String> {
    let dir = &config.keys.dir;
    if generate(dir, false)? {
        tracing::info!(dir = %dir.display(), "generated development CA, server and client certificates");
    }
    crate::keys::KeySet::load(dir, Some(config.tokens.signing_algorithm))
        .map(|_| ())
        .map_err(|e| e.to_string())
}
