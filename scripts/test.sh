#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit (also under
# AddressSanitizer+UBSan), integration (real EAL in namespaces), bench smoke.
# Ends with one line: "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
if ! scripts/setup.sh; then
  echo "setup or build failed"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

meson test -C build --no-rebuild --print-errorlogs
rc_main=$?

# Sanitizer build of the unit tests (the packet core, the QSBR flow table
# under concurrent readers, config parsing).
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized \
    -Dwerror=true >/dev/null || echo "asan setup failed"
fi
asan_targets=$(cd build-asan 2>/dev/null && ninja -t targets all 2>/dev/null | grep -oE '^tests/(unit_[a-z_]+|fuzz_[a-z]+_replay):' | tr -d ':' | sort -u)
rc_asan=1
if ninja -C build-asan $asan_targets; then
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --no-rebuild --suite unit --print-errorlogs
  rc_asan=$?
fi

python3 - <<'PY'
import json, os
passed = failed = skipped = 0
for d in ("build", "build-asan"):
    p = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(p):
        failed += 1
        continue
    for line in open(p):
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
[ $rc_main -eq 0 ] && [ $rc_asan -eq 0 ]
