# The everyday commands. `just` lists them.

default:
    @{{just_executable()}} --list --unsorted

# Run the chat server on 127.0.0.1:9999 (see `chat-cli server --help`).
server *args:
    cargo run --release --bin chat-cli -- server {{args}}

# Join the chat from this terminal (see `chat-cli client --help`).
client *args:
    cargo run --release --bin chat-cli -- client {{args}}

# Every test: unit, property, end-to-end over loopback (and, once present, the CI simulation sweep).
test:
    cargo nextest run --workspace --no-fail-fast
    cargo test --workspace --doc

# Lints and formatting, as CI checks them.
check:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Review pending transcript snapshots in snapshots/.
review:
    cargo insta review --workspace
