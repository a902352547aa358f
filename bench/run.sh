#!/usr/bin/env bash
# The benchmark, in one command:  bench/run.sh [sqlite|postgres] [extra subledger-bench flags]
# Builds the release server and harness, then runs the harness against it.
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"
shift || true
cargo build --release --locked -p subledger -p subledger-bench
exec target/release/subledger-bench --backend "$backend" --server target/release/subledger "$@"
