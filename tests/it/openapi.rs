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
