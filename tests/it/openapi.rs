//! The committed OpenAPI document must match the generated one.

#[test]
fn openapi_documents_do_not_drift() {
    let api = certbound::openapi();
    let root = env!("CARGO_MANIFEST_DIR");
    for (file, generated) in [
        ("certbound.json", api.spec()),
        ("certbound.yaml", api.spec_yaml()),
    ] {
        let path = format!("{root}/openapi/{file}");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed.trim_end() == generated.trim_end(),
            "{path} is out of date: run `just openapi` and commit it"
        );
    }
}

/// The `Allow` table of 405 answers lists exactly the documented methods
/// (plus the browser endpoint and the document itself, not in the spec).
#[test]
fn allow_table_matches_the_document() {
    let spec: serde_json::Value = serde_json::from_str(&certbound::openapi().spec()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    for (path, ops) in paths {
        let mut methods: Vec<String> = ops
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        methods.sort();
        assert_eq!(
            certbound::oauth::allowed_methods(path),
            Some(methods.join(", ").as_str()),
            "{path}"
        );
    }
    assert_eq!(certbound::oauth::METHODS.len(), paths.len() + 2);
}

/// The document's servers are `/` and `/t/{domain}`: every operation is
/// served under each (the default tenant by both names, and a tenant).
#[tokio::test]
async fn every_operation_is_served_under_every_server() {
    let spec: serde_json::Value = serde_json::from_str(&certbound::openapi().spec()).unwrap();
    let servers: Vec<&str> = spec["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["url"].as_str().unwrap())
        .collect();
    assert_eq!(servers, ["/", "/t/{domain}"]);
    let server = crate::common::TestServer::start("[[tenants]]\ndomain = \"acme.com\"\n").await;
    let client = server.client(None);
    for prefix in ["", "/t/carbon.super", "/t/acme.com"] {
        for (path, ops) in spec["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let status = client
                    .request(method.clone(), server.https_url(&format!("{prefix}{path}")))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                assert!(
                    status != 404 && status != 405,
                    "{method} {prefix}{path}: {status}"
                );
            }
        }
    }
}
