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
[ $? -eq 0 ] || exit 1

# SRTP re-key: the generator protects, the dataplane decrypts and re-encrypts;
# every warm-up reply must come back correctly addressed and sized.
out=$("$bench" dataplane --codec g711 --flows 500 --duration 0.5 --crypto rekey \
  --suite aead_aes_128_gcm --json) || { echo "bench (rekey) failed"; exit 1; }
echo "$out"
python3 - "$out" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
for k in ["crypto", "suite", "cipher_ceiling_mpps", "crypto_ratio", "crypto_bytes_per_flow"]:
    assert k in d, f"missing {k}"
assert d["crypto"] == "rekey" and d["suite"] == "aead_aes_128_gcm", d
assert d["cipher_ceiling_mpps"] > 0 and d["mpps_per_core"] > 0, "nothing re-keyed"
assert d["warmup_replies"] == 500, d["warmup_replies"]
assert d["warmup_bad_checksums"] == 0 and d["warmup_bad_addresses"] == 0, "bad replies"
assert "srtp_auth_failed" not in d["dataplane_drops"], d["dataplane_drops"]
print("bench smoke (rekey) ok")
PY

# NAT loopback: every path is two flows, the first relaying to the second's
# port on the dataplane's own address and SRTP decrypted there, encrypted by
# the second; every reply must come back correctly addressed, with the TTL
# of two relay passes, and each must have been taken back in once.
out=$("$bench" dataplane --codec opus --flows 300 --duration 0.5 --crypto rekey --loopback \
  --json) || { echo "bench (loopback) failed"; exit 1; }
echo "$out"
python3 - "$out" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
assert d["loopback"] is True, d
assert d["warmup_replies"] == 300, d["warmup_replies"]
assert d["warmup_bad_checksums"] == 0 and d["warmup_bad_addresses"] == 0, "bad replies"
# Two relay passes per frame (a frame between its passes at a counter read
# may be off by one pass).
assert abs(d["relayed"] - 2 * d["hairpinned"]) <= 64, (d["hairpinned"], d["relayed"])
assert d["hairpinned"] > 0, "nothing taken back in"
for k in ("hairpin_loop", "srtp_auth_failed", "no_neighbor"):
    assert k not in d["dataplane_drops"], d["dataplane_drops"]
print("bench smoke (loopback) ok")
PY
