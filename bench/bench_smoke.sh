#!/usr/bin/env bash
# Runs sluice-bench briefly and checks the report's shape and sanity (every
# field present, packets relayed, nothing mis-addressed). Speed is reported
# by the benchmark itself, never asserted here.
set -uo pipefail
bench=$1
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root"; exit 77; fi
out=$("$bench" dataplane --codec g729 --flows 2000 --duration 1 --json) || { echo "bench failed"; exit 1; }
echo "$out"
python3 - "$out" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
need = ["mpps_per_core", "ceiling_mpps", "ratio", "loss", "p50_us", "p99_us", "flows", "bytes_per_flow"]
missing = [k for k in need if k not in d]
assert not missing, f"missing fields: {missing}"
assert d["flows"] == 2000, d["flows"]
assert d["mpps_per_core"] > 0 and d["ceiling_mpps"] > 0, "nothing relayed"
assert d["warmup_bad_checksums"] == 0 and d["warmup_bad_addresses"] == 0, "bad replies"
assert 0 <= d["loss"] < 0.5, d["loss"]
print("bench smoke ok")
PY
