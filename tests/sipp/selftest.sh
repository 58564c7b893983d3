#!/bin/bash
# Self-test of the SIPp scenarios: every UAC/UAS pair, SIPp against SIPp
# over loopback, on UDP, TCP and TLS.  Prints PASS/FAIL/SKIP per pair and
# transport; exits 0 when nothing failed (TLS is skipped, not failed, when
# sipp was built without it, unless SELFTEST_REQUIRE_TLS=1).
#
#   tests/sipp/selftest.sh [PAIR...]       (default: all pairs)
#   SELFTEST_TRANSPORTS="udp tcp"  SELFTEST_KEEP=1 (keep logs)
#   SELFTEST_BASE_PORT=15100 (SIP ports used: BASE .. BASE+400)
#
# Traffic stays on 127.0.0.1; every SIPp run is bounded by -m and -timeout
# and killed (by pid) on exit.  Root adds an RTP check: packets counted on
# lo in both directions of the media of the "call" pair.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/sipp.sh"

IP=127.0.0.1
TRANSPORTS=${SELFTEST_TRANSPORTS:-udp tcp tls}
BASE=${SELFTEST_BASE_PORT:-15100}
export SIPP_TIMEOUT=${SIPP_TIMEOUT:-20}
SIPP_LOG_ROOT=$(mktemp -d /tmp/sluice-sipp-selftest.XXXXXX)
export SIPP_LOG_ROOT

ALL_PAIRS="register register_auth register_badpass call pbx_bye cancel incoming phone_uas registrar_then_call fast"
PAIRS=${*:-$ALL_PAIRS}

FAILS=0
RESULTS=()
cleanup() {
  sipp_stop_all
  if [ "$FAILS" -eq 0 ] && [ "${SELFTEST_KEEP:-0}" != 1 ]; then
    rm -rf "$SIPP_LOG_ROOT"
  else
    echo "logs: $SIPP_LOG_ROOT"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mport() { echo $(( 20000 + ($1 % 10000) * 4 )); }  # sipp.sh's default -mp

# UAS first, wait until it listens, then the UAC.
start_uas() {  # start_uas NAME SCENARIO T PORT [args]
  local name=$1 scen=$2 t=$3 port=$4
  shift 4
  sipp_run "$name" "$scen" "$t" $IP "$port" - "$@" || return 1
  UAS=$SIPP_LAST_DIR
  sipp_listening "$t" $IP "$port" 5 || { echo "  $name: not listening on $t $port" >&2; return 1; }
}

start_uac() {  # start_uac NAME SCENARIO T PORT REMOTE_PORT [args]
  local name=$1 scen=$2 t=$3 port=$4 rport=$5
  shift 5
  sipp_run "$name" "$scen" "$t" $IP "$port" "$IP:$rport" "$@" || return 1
  UAC=$SIPP_LAST_DIR
}

# Both ends must succeed; a failed UAC stops the UAS rather than letting
# it wait for its -timeout.
both_ok() {  # both_ok UAS_DIR UAC_DIR
  local ok=0
  sipp_ok "$2" || { ok=1; sipp_stop "$1"; }
  sipp_ok "$1" 10 || ok=1
  return $ok
}

pair_register() {  # T PORT
  start_uas reg_uas pbx_registrar "$1" "$2" || return 1
  start_uac reg_uac phone_register "$1" $(($2 + 2)) "$2" -s alice || return 1
  both_ok "$UAS" "$UAC"
}

pair_register_auth() {
  start_uas auth_uas pbx_registrar_auth "$1" "$2" -key authuser alice -key authpass s3cret || return 1
  start_uac auth_uac phone_register "$1" $(($2 + 2)) "$2" -s alice -au alice -ap s3cret || return 1
  both_ok "$UAS" "$UAC"
}

# Negative: a wrong password must give 403, and both ends must say so.
pair_register_badpass() {
  start_uas bad_uas pbx_registrar_auth "$1" "$2" -key authuser alice -key authpass s3cret || return 1
  start_uac bad_uac phone_register "$1" $(($2 + 2)) "$2" -s alice -au alice -ap wrong || return 1
  sipp_wait "$UAC"
  local uac_rc=$?
  sipp_wait "$UAS" 10
  local uas_rc=$?
  if [ $uac_rc -ne 1 ] || [ $uas_rc -ne 1 ]; then
    echo "  expected both to fail (rc 1): uac rc=$uac_rc, uas rc=$uas_rc" >&2
    return 1
  fi
  grep -q 'SIP/2.0 403' "$UAC/messages.log" || { echo "  no 403 seen by the phone" >&2; return 1; }
}

pair_call() {
  local rtp="" sniffer=""
  if [ "$(id -u)" -eq 0 ]; then
    rtp=$SIPP_LOG_ROOT/call_rtp_$1.txt
    sipp_rtp_count lo 9 "$(mport "$2")" "$(( $(mport $(($2 + 2))) + 3 ))" >"$rtp" 2>&1 &
    sniffer=$!
  fi
  start_uas call_uas pbx_answer "$1" "$2" || return 1
  start_uac call_uac phone_call "$1" $(($2 + 2)) "$2" -s 100 || return 1
  both_ok "$UAS" "$UAC" || return 1
  grep -q 'a=recvonly' "$UAS/messages.log" || { echo "  hold not answered recvonly" >&2; return 1; }
  if [ -n "$rtp" ]; then
    wait "$sniffer"
    local a b pa pb
    pa=$(mport "$2") pb=$(mport $(($2 + 2)))
    a=$(awk -v f="$IP:$pa" -v t="$IP:$pb" '$1 == f && $2 == t {print $3}' "$rtp")
    b=$(awk -v f="$IP:$pb" -v t="$IP:$pa" '$1 == f && $2 == t {print $3}' "$rtp")
    echo "  rtp: pbx->phone ${a:-0} packets, phone->pbx ${b:-0} packets"
    if [ "${a:-0}" -lt 100 ] || [ "${b:-0}" -lt 100 ]; then
      echo "  too little RTP" >&2
      cat "$rtp" >&2
      return 1
    fi
  fi
}

pair_pbx_bye() {
  start_uas bye_uas pbx_answer_bye "$1" "$2" || return 1
  start_uac bye_uac phone_call_wait_bye "$1" $(($2 + 2)) "$2" -s 100 || return 1
  both_ok "$UAS" "$UAC"
}

pair_cancel() {
  start_uas cancel_uas pbx_ring_cancel "$1" "$2" || return 1
  start_uac cancel_uac phone_cancel "$1" $(($2 + 2)) "$2" -s 100 || return 1
  both_ok "$UAS" "$UAC"
}

# The PBX calls the teleworker: pbx_call against the phone's answering
# half (phone_uas_incoming.xml run as a plain UAS).
pair_incoming() {
  start_uas in_uas phone_uas_incoming "$1" "$2" || return 1
  start_uac in_uac pbx_call "$1" $(($2 + 2)) "$2" -s alice || return 1
  both_ok "$UAS" "$UAC"
}

# phone_uas: register, take a call back over the same socket/connection,
# unregister.  The peer is a self-test helper playing relay + PBX.
pair_phone_uas() {
  start_uas puas_peer selftest_pbx_registrar_call "$1" "$2" || return 1
  start_uac puas_phone phone_uas "$1" $(($2 + 2)) "$2" -s alice -callid_slash_ign || return 1
  both_ok "$UAS" "$UAC"
}

# phone_uas with separate registrar and caller, as the PBX side will run
# behind the relay: pbx_registrar takes the REGISTER and the unregistering
# one (same Call-ID: -m 2 -deadcall_wait 0), pbx_call calls the phone on
# its own (over TCP on a new connection: a SIPp UAC listens on its -p port
# too).  The registrar must stay up until the unregister: the phone's
# connection closing under its waiting call would fail that call.
pair_registrar_then_call() {
  start_uas rtc_registrar pbx_registrar "$1" "$2" -m 2 -deadcall_wait 0 || return 1
  local reg=$UAS
  start_uac rtc_phone phone_uas "$1" $(($2 + 2)) "$2" -s alice || return 1
  local phone=$UAC
  # wait for the registration before calling
  for _ in $(seq 50); do
    grep -q 'SIP/2.0 200' "$phone/messages.log" 2>/dev/null && break
    sleep 0.1
  done
  start_uac rtc_call pbx_call "$1" $(($2 + 4)) $(($2 + 2)) -s alice || return 1
  local call=$UAC ok=0
  sipp_ok "$call" || ok=1
  sipp_ok "$phone" || ok=1
  sipp_ok "$reg" 10 || ok=1
  return $ok
}

# A short load run: 20 calls at 20/s, setup times in the rtt file.
pair_fast() {
  start_uas fast_uas pbx_answer_fast "$1" "$2" -m 20 || return 1
  start_uac fast_uac phone_call_fast "$1" $(($2 + 2)) "$2" -s 100 -m 20 -r 20 || return 1
  both_ok "$UAS" "$UAC" || return 1
  echo "  $(sipp_summary "$UAC")"
  echo "  $(sipp_rtt "$UAC" setup)"
  sipp_rtt "$UAC" setup | grep -q ' n=20 ' || { echo "  expected 20 setup samples" >&2; return 1; }
}

if sipp_has_tls; then
  TLS_OK=1
else
  TLS_OK=0
  if sipp_tls_cert "$SIPP_LOG_ROOT/tls"; then
    echo "note: $("$SIPP_BIN" -v 2>&1 | grep -o 'SIPp v[^ ]*[^ .]') has no TLS support; TLS runs are skipped (test cert generation works)"
  else
    echo "note: sipp has no TLS support and openssl could not make a test cert"
  fi
fi

idx=0
for pair in $PAIRS; do
  if ! declare -F "pair_$pair" >/dev/null; then
    echo "unknown pair '$pair' (pairs: $ALL_PAIRS)" >&2
    FAILS=$((FAILS + 1))
    continue
  fi
  line=$(printf '%-20s' "$pair")
  tidx=0
  for t in $TRANSPORTS; do
    port=$(( BASE + idx * 30 + tidx * 10 ))
    tidx=$((tidx + 1))
    if [ "$t" = tls ] && [ $TLS_OK = 0 ]; then
      if [ "${SELFTEST_REQUIRE_TLS:-0}" = 1 ]; then
        echo "FAIL $t $pair: sipp has no TLS support"
        FAILS=$((FAILS + 1))
        line+=$(printf ' %-5s' FAIL)
      else
        echo "SKIP $t $pair: sipp has no TLS support"
        line+=$(printf ' %-5s' skip)
      fi
      continue
    fi
    SKIP_WHY=""
    "pair_$pair" "$t" "$port"
    rc=$?
    sipp_stop_all
    if [ $rc -eq 0 ]; then
      echo "PASS $t $pair"
      line+=$(printf ' %-5s' pass)
    elif [ $rc -eq 77 ]; then
      echo "SKIP $t $pair: $SKIP_WHY"
      line+=$(printf ' %-5s' n/a)
    else
      echo "FAIL $t $pair (logs: $SIPP_LOG_ROOT)"
      FAILS=$((FAILS + 1))
      line+=$(printf ' %-5s' FAIL)
      # keep this run's logs apart from the next transport's
      for d in "$SIPP_LOG_ROOT"/*/; do
        case $(basename "$d") in tls|failed-*) ;; *) mv "$d" "$SIPP_LOG_ROOT/failed-$t-$(basename "$d")" ;; esac
      done
    fi
  done
  RESULTS+=("$line")
  idx=$((idx + 1))
done

echo
printf '%-20s' pair
for t in $TRANSPORTS; do printf ' %-5s' "$t"; done
echo
for line in "${RESULTS[@]}"; do echo "$line"; done
echo "$FAILS failed"
[ "$FAILS" -eq 0 ]
