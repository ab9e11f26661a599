//! The files in `deploy/` as an operator installs them: the systemd unit
//! passes `systemd-analyze verify`; the proxy-mode configuration starts as
//! it is (once a signing key exists) and serves through the nginx example,
//! run as written but for addresses, ports and certificate paths.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::rs::{Nginx, free_port};
use crate::common::{Api, Pki, jwt_part, run_certbound, self_signed};

fn deploy(file: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy")
            .join(file),
    )
    .unwrap()
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = deploy("certbound.service");
    let bin = "/usr/local/bin/certbound";
    assert!(unit.contains(&format!(
        "ExecStart={bin} serve --config /etc/certbound/certbound.toml"
    )));
    for hardening in [
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/certbound",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(hardening), "{hardening}");
    }
    // The binary where this build has it (verify checks that it exists).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("certbound.service");
    std::fs::write(&path, unit.replace(bin, env!("CARGO_BIN_EXE_certbound"))).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is not installed: `cargo xtask test` installs systemd");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// The server of `config`, killed when dropped.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_proxy_config_starts_as_it_is_behind_the_nginx_example() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new("deploy test CA");
    let tls = pki.server();
    let client = self_signed("orders-service");
    std::fs::write(d.join("auth.crt"), &tls.cert_pem).unwrap();
    std::fs::write(d.join("auth.key"), &tls.key_pem).unwrap();
    std::fs::write(d.join("orders-service.crt"), &client.cert_pem).unwrap();
    let (http, admin, public) = (free_port(), free_port(), free_port());
    let config = deploy("certbound.toml")
        .replace("/var/lib/certbound", &d.join("var").display().to_string())
        .replace("127.0.0.1:9080", &format!("127.0.0.1:{http}"))
        .replace("127.0.0.1:9090", &format!("127.0.0.1:{admin}"))
        + &format!(
            "\n[[clients]]\nclient_id = \"orders-service\"\ntoken_endpoint_auth_method = \"self_signed_tls_client_auth\"\ncertificates = [\"{}\"]\nscope = \"orders.read\"\n",
            d.join("orders-service.crt").display()
        );
    let path = d.join("certbound.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.display().to_string();
    let (ok, out, err) = run_certbound(&["keys", "generate", "--config", &path], None);
    assert!(ok, "{out}{err}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_certbound"))
        .args(["serve", "--config", &path])
        .current_dir(d)
        .env("CERTBOUND_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let served = Served(child);
    let rx = crate::common::lines(stdout);
    loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the server did not start");
        let json: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}"));
        if json["message"] == "started" {
            break;
        }
    }
    let nginx_dir = d.join("nginx");
    std::fs::create_dir_all(&nginx_dir).unwrap();
    let site = deploy("nginx.conf")
        .replace("listen 443 ssl", &format!("listen 127.0.0.1:{public} ssl"))
        .replace(
            "/etc/nginx/tls/auth.example.com.crt",
            &d.join("auth.crt").display().to_string(),
        )
        .replace(
            "/etc/nginx/tls/auth.example.com.key",
            &d.join("auth.key").display().to_string(),
        )
        .replace(
            "server 127.0.0.1:9080;",
            &format!("server 127.0.0.1:{http};"),
        );
    let _nginx = Nginx::start(&nginx_dir, &site, &[public]).await;
    let lb = Api::at(
        std::net::SocketAddr::from(([127, 0, 0, 1], public)),
        &pki.ca_pem,
    );
    let (status, body, _) = lb
        .post(
            &lb.client(Some(&client)),
            &lb.https_url("/oauth2/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "orders-service"),
            ],
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert_eq!(
        claims["iss"], "https://auth.example.com",
        "the configured issuer"
    );
    assert_eq!(claims["cnf"]["x5t#S256"], client.thumbprint());
    let ready = lb
        .client(None)
        .get(lb.https_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    drop(served);
}
