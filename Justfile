# certbound — `just --list` is the help. Install just with `cargo install just --locked`.

# List the recipes
default:
    @just --list

# Run the server (no config: development mode on https://127.0.0.1:9443)
run *ARGS:
    cargo run --release -- {{ARGS}}

# Run the whole test suite, installing what it needs (chromium, schemathesis, cargo-fuzz)
test *ARGS:
    cargo xtask test {{ARGS}}

# Only the Rust tests (unit and integration; the browser test needs chromium)
test-rust:
    cargo test --workspace --all-features

# The headless-Chromium end-to-end test alone (needs Debian's chromium and chromium-driver)
e2e:
    cargo test --test it -- e2e:: --nocapture

# Hash a user password for [[users]] password_hash (reads the terminal or stdin)
hash-password:
    cargo run --quiet -- users hash-password

# Formatting and lints, as CI runs them
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings

# Regenerate the committed OpenAPI documents in openapi/
openapi:
    cargo run --quiet -- openapi > openapi/certbound.json
    cargo run --quiet -- openapi --yaml > openapi/certbound.yaml

# Generate development CA, server and client certificates into keys/
dev-certs *ARGS:
    cargo run --quiet -- dev-certs {{ARGS}}

# Load benchmark (oha, installed when missing), then the replicas on Redis, then the cost of metrics and the access log; --quick: ~2 s per scenario, no BENCHMARKS.md
bench *ARGS:
    cargo bench --bench load -- {{ARGS}}
    cargo bench --bench replicas -- {{ARGS}}
    cargo bench --bench observability -- {{ARGS}}

# Instructions per request under callgrind (needs valgrind), against the committed figures in BENCHMARKS.md; a full run rewrites them, --quick (CI) fails when one grows more than 10 %
bench-instructions *ARGS:
    cargo bench --bench instructions -- {{ARGS}}

# What metrics and the access log cost: token and introspection at c=32 with both off, metrics on, both on
bench-observability *ARGS:
    cargo bench --bench observability -- {{ARGS}}

# The revocation list on Redis next to the file (revocations/s, refresh rotations/s, propagation between replicas, startup with 1,000,000 entries); needs redis-server
bench-replicas *ARGS:
    cargo bench --bench replicas -- {{ARGS}}

# The revocation list at 1,000,000 entries: load time, memory, lookups, durable revocations/s, compaction
bench-revocations *ARGS:
    cargo bench --bench revocations -- {{ARGS}}

# certbound-verify: access-token verification in-process, µs per token next to its floor (ES256 verify + SHA-256); a full run writes its BENCHMARKS.md section
bench-verify *ARGS:
    cargo bench -p certbound-verify --bench verify -- {{ARGS}}

# Every fuzz target for SECONDS each (cargo fuzz, nightly); new inputs go to fuzz/corpus/
fuzz SECONDS="60" *TARGETS:
    cargo xtask fuzz --seconds {{SECONDS}} {{TARGETS}}

# schemathesis against the committed OpenAPI document
schemathesis EXAMPLES="300":
    cargo xtask schemathesis --max-examples {{EXAMPLES}}

# Mixed load at 70 % of the measured maximum for N minutes (default 10): errors, p99 over time, RSS
soak *ARGS:
    cargo bench --bench soak -- {{ARGS}}

# Everything CI checks
ci: lint test
