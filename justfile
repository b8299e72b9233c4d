# The everyday commands. `just` lists them.

default:
    @{{just_executable()}} --list --unsorted

# Run the chat server on 127.0.0.1:9999 (see `chat-cli server --help`).
server *args:
    cargo run --release --bin chat-cli -- server {{args}}

# Join the chat from this terminal (see `chat-cli client --help`).
client *args:
    cargo run --release --bin chat-cli -- client {{args}}

# Every test: unit, property, end-to-end over loopback, simulation scenarios, a seed sweep, planted bugs, a few seeds on the real binaries.
test:
    {{just_executable()}} sim 1000 --require-mechanisms
    {{just_executable()}} sim-planted
    cargo nextest run --workspace --no-fail-fast

# Seeded fault-injection sweep: every safety and liveness property, on N seeds (default 300).
sim seeds="300" *flags:
    cargo build --quiet --profile sim -p sim-tests --bin sim
    target/sim/sim sweep --seeds {{seeds}} {{flags}}

# Replay one seed: a legend, its faults on one timeline, the users' screens, every property's verdict (--trace: the whole trace).
sim-seed seed *flags:
    cargo build --quiet --profile sim -p sim-tests --bin sim
    target/sim/sim seed {{seed}} {{flags}}

# Draw one seed as an SVG picture: a lane per host over time, faults as bands, messages as lines, the violation in red.
sim-svg seed file:
    cargo build --quiet --profile sim -p sim-tests --bin sim
    -target/sim/sim seed {{seed}} --svg {{file}}

# Plant each deliberate bug in turn; the oracle must catch each within 200 seeds.
sim-planted:
    RUSTFLAGS='--cfg tokio_unstable --cfg chat_planted' CARGO_TARGET_DIR=target/planted cargo build --quiet --profile sim -p sim-tests --bin sim
    target/planted/sim/sim planted --max-seeds 200

# Draw the seed that catches a planted bug (names and seeds: `just sim-planted`).
sim-planted-svg bug seed file:
    RUSTFLAGS='--cfg tokio_unstable --cfg chat_planted' CARGO_TARGET_DIR=target/planted cargo build --quiet --profile sim -p sim-tests --bin sim
    -target/planted/sim/sim seed {{seed}} --planted {{bug}} --svg {{file}}

# The real binaries under the simulation's oracle: SEEDS seeds from FIRST, PARALLEL at a time, on real processes through a fault-injecting proxy.
real-sim seeds="20" first="0" parallel="3":
    REAL_SIM_SEEDS={{first}}..$(({{first}} + {{seeds}})) REAL_SIM_PARALLEL={{parallel}} cargo test --quiet -p chat-cli --test real_sim -- --nocapture

# One seed on real processes; a failure keeps its files (consoles, reports, data) and names them. Compare with `just sim-seed N`.
real-sim-seed seed:
    REAL_SIM_SEEDS={{seed}} cargo test --quiet -p chat-cli --test real_sim -- --nocapture

# Our server under load, alone: the five scenarios (durable, in memory, and scenario 1 over TLS), one table; then the recovery of a log of one million messages.
bench *flags:
    cargo build --quiet --release --bin chat-cli
    target/release/chat-cli bench --recovery 1000000 --json target/bench/ours.json {{flags}}

# Soak our server: WAVES waves of clients that connect, chat and leave (quit, dropped, reset, half-closed, silent) while three stay; fails if descriptors, memory or the stayers' messages say something leaked.
soak waves="50" *flags:
    cargo build --quiet --release --bin chat-cli
    target/release/chat-cli bench --soak {{waves}} --json target/bench/soak.json {{flags}}

# The same scenarios against ngIRCd and InspIRCd too (installed if missing); ratios in target/bench/peers.json.
bench-peers *flags:
    command -v ngircd >/dev/null && command -v inspircd >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ngircd inspircd)
    -pkill -x ngircd; pkill -x inspircd
    cargo build --quiet --release --bin chat-cli
    target/release/chat-cli bench --peers --peers-config ../shared/peers --json target/bench/peers.json {{flags}}

# Starts from the seeds in fuzz/corpus/TARGET and keeps what it finds in
# fuzz/target/corpus/TARGET; a crash lands in fuzz/artifacts/TARGET, which `cargo test`
# then replays (chat-core's fuzz_corpus test). Needs cargo-fuzz, which this does not
# install: `cargo install cargo-fuzz --locked`. RUSTC_BOOTSTRAP lets the stable toolchain
# take cargo-fuzz's nightly flags.
[doc("Fuzz one target (decode_frames, rooms_inputs, restore_records) for SECONDS, with AddressSanitizer.")]
fuzz target seconds="60":
    mkdir -p fuzz/target/corpus/{{target}}
    RUSTC_BOOTSTRAP=1 cargo fuzz run {{target}} fuzz/target/corpus/{{target}} fuzz/corpus/{{target}} -- -max_total_time={{seconds}}

# Fuzz every target in turn, SECONDS each (one at a time: the machine has 2 cores).
fuzz-all seconds="60":
    {{just_executable()}} fuzz decode_frames {{seconds}}
    {{just_executable()}} fuzz rooms_inputs {{seconds}}
    {{just_executable()}} fuzz restore_records {{seconds}}

# Mutation testing (cargo-mutants 27, installed if missing) of chat-core and chat-net, judged by
# their unit tests, the named simulation scenarios and a short sweep (.cargo/mutants.toml says what
# is left out and why). SHARD k/n runs the k-th of n parts, so that the whole can be spread over
# runs: at about a minute a mutant on this 2-core machine, a 64th (about 27 mutants) takes about
# 30 minutes. Results land in target/mutants/k-n.
[doc("Mutation testing of chat-core and chat-net; SHARD is k/n (0/1 for all at once).")]
mutants shard="0/1" *flags:
    command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked --version '^27'
    cargo mutants --package chat-core --package chat-net --test-package chat-core,chat-net,sim-tests --shard {{shard}} --output target/mutants/$(echo {{shard}} | tr / -) {{flags}}

# Lints and formatting, as CI checks them.
check:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Review pending transcript snapshots in snapshots/.
review:
    cargo insta review --workspace
