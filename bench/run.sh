#!/usr/bin/env bash
# The benchmarks, in one command each:
#   bench/run.sh [sqlite|postgres] [flags]          transferIn vs /healthz (subledger-bench)
#   bench/run.sh usage [sqlite|postgres] [flags]    POST /v1/usage ingestion over HTTP (usage-bench)
#   bench/run.sh close [sqlite|postgres] [flags]    month close of 10,000 accounts, in-process (close-bench)
#   bench/run.sh soak [sqlite|postgres] [flags]     minutes of mixed load: RSS flat, WAL bounded (soak)
#   bench/run.sh fairness [sqlite|postgres] [flags] transferIn p99 while another tenant's month closes (fairness-bench)
#   bench/run.sh oplog [sqlite|postgres] [flags]    operation-log queries over 1,000,000 entries (oplog-bench)
#   bench/run.sh ads [sqlite|postgres] [flags]      spend cap changes through a 100 ms fake Graph API, insights reads (ads-bench)
# Builds the release server and harness, then runs the harness against it.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=subledger-bench
case "${1:-}" in
    usage) bench=usage-bench; shift ;;
    close) bench=close-bench; shift ;;
    soak) bench=soak; shift ;;
    fairness) bench=fairness-bench; shift ;;
    oplog) bench=oplog-bench; shift ;;
    ads) bench=ads-bench; shift ;;
esac
backend="${1:-sqlite}"
shift || true
cargo build --release --locked -p subledger -p subledger-bench
if [ "$bench" = close-bench ]; then
    exec target/release/close-bench --backend "$backend" "$@"
fi
exec "target/release/$bench" --backend "$backend" --server target/release/subledger "$@"
