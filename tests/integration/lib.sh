# Shared by the integration tests: a private lab (unique namespace names,
# DPDK file prefix and socket), assertions, and cleanup on every exit path.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export SLUICE_BUILD=${SLUICE_BUILD:-$ROOT/build}
export LAB=${LAB:-t$$}
source "$ROOT/lab/lab.sh"

FAILS=0
CHECKS=0
check() {  # check "description" command...
  local what=$1
  shift
  CHECKS=$((CHECKS + 1))
  if "$@"; then
    echo "ok   - $what"
  else
    echo "FAIL - $what"
    FAILS=$((FAILS + 1))
  fi
}
# jq-like field access with python: json_get FILE 'expr on d'
json_get() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
eq() { [ "$1" = "$2" ] || { echo "     expected '$2', got '$1'" >&2; return 1; }; }
ge() { [ "$1" -ge "$2" ] 2>/dev/null || { echo "     expected >= $2, got '$1'" >&2; return 1; }; }

finish() {
  local rc=$?
  if [ "$FAILS" -ne 0 ] || [ $rc -ne 0 ]; then
    echo "--- dataplane log"
    cat "$LAB_DIR/dataplane.log" 2>/dev/null | tail -30
  fi
  lab_down
  # Nothing of this test may survive it.
  if ip netns list | grep -q "^$LAB-"; then echo "FAIL - namespaces left behind"; FAILS=$((FAILS + 1)); fi
  echo "$CHECKS checks, $FAILS failed"
  [ "$FAILS" -eq 0 ] && [ $rc -eq 0 ] && exit 0
  exit 1
}
trap finish EXIT

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: integration tests need root (namespaces, af_packet, tap)"
  trap - EXIT
  exit 77
fi

# The standard stream pair of the lab: phone <-> out:20000 | in:20002 <-> PBX.
program_pair() {
  sluicectl flows add --pair \
    --a-local $RELAY_OUT:20000 --a-port outside --a-peer $PHONE:4000 \
    --b-local $RELAY_IN:20002 --b-port inside --b-peer $PBX:5000 "$@" >/dev/null
}

# SRTP tests: the libsrtp2 peer, run in a namespace; random SDES keys.
PEER="$BUILD/tests/integration/srtp_peer"
key() { python3 -c "import base64,os; print(base64.b64encode(os.urandom($1)).decode())"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$PEER" "$@"; }
CM=aes_cm_128_hmac_sha1_80
GCM=aead_aes_128_gcm

# The control plane through sluicectl.
calls_count() { sluicectl --json calls list | python3 -c "import json,sys; print(len(json.load(sys.stdin).get('calls',[])))"; }
counter() { sluicectl --json status | python3 -c "import json,sys; d=json.load(sys.stdin); print(next((int(c['value']) for c in d.get('counters',[]) if c['name']=='$1'),0))"; }
flows_count() { sluicectl --json flows list | python3 -c "import json,sys; print(len(json.load(sys.stdin).get('flows',[])))"; }
flow_packets() {  # total packets on the dataplane's flows keyed at one relay address
  sluicectl --json flows list | python3 -c "
import json,sys
d=json.load(sys.stdin)
print(sum(int(f.get('packets',0)) for f in d.get('flows',[]) if f['spec']['key']['localAddress']=='$1'))"
}
# same_invite_sdp SIPP_MESSAGES_LOG N ADDRESS: the log holds N INVITEs whose
# SDP bodies are identical byte for byte and on ADDRESS (session refreshes
# that re-send the SDP settled before).
same_invite_sdp() {
  python3 - "$1" "$2" "$3" <<'PY'
import re, sys
log, n, addr = open(sys.argv[1]).read().replace("\r\n", "\n"), int(sys.argv[2]), sys.argv[3]
invites = [b for b in log.split("\n-----") if re.search(r"^INVITE ", b, re.M)]
bodies = [b[b.find("\nv=0"):].strip() if "\nv=0" in b else "" for b in invites]
ok = len(bodies) == n and bodies[0] and all(x == bodies[0] for x in bodies) and ("c=IN IP4 " + addr) in bodies[0]
print("     %d INVITEs, bodies identical: %s" % (len(bodies), len(set(bodies)) == 1))
for x in bodies[1:]:
    if x != bodies[0]:
        print("     first:   %r\n     refresh: %r" % (bodies[0], x))
        break
sys.exit(0 if ok else 1)
PY
}
wait_for() {  # wait_for SECONDS 'shell condition': until it holds
  local n=$(($1 * 10)) i
  for i in $(seq 1 $n); do eval "$2" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

# The SIP tests' lab: both sluice processes, SIPp run in the phone and PBX
# namespaces (phone/pbx NAME SCENARIO ...), both_ok A B when both ended well
# (within SIPP_WAIT seconds). Skips the test when SIPp is missing.
sip_lab_start() {
  source "$ROOT/tests/sipp/sipp.sh"
  command -v sipp >/dev/null || { echo "SKIP: sipp is missing"; trap - EXIT; lab_down; exit 77; }
  lab_up || exit 1
  lab_start || exit 1
  cp_start || exit 1
  SIPP_LOG_ROOT=$LAB_DIR/sipp
  mkdir -p "$SIPP_LOG_ROOT"
  lab_sipp_wrappers phone pbx
}
# A phone on TLS presents the lab's client certificate and checks the
# relay's (through sipp.sh's socat tunnel when SIPp has no TLS of its own).
phone() {
  SIPP_BIN=$LAB_DIR/sipp-phone SIPP_SOCAT=$LAB_DIR/socat-phone SIPP_TLS_CA=$LAB_DIR/tls/ca.crt \
    SIPP_TLS_CERT=$LAB_DIR/tls/phone.crt SIPP_TLS_KEY=$LAB_DIR/tls/phone.key \
    SIPP_TLS_SERVER_NAME=relay.lab.example sipp_run "$@"
}
sip_port() { [ "$1" = tls ] && echo 5061 || echo 5060; }  # the relay's, per transport
pbx() { SIPP_BIN=$LAB_DIR/sipp-pbx sipp_run "$@"; }
# REG PH PORT USER [TRANSPORT]: a PBX registrar REG (for the REGISTER and
# the final un-REGISTER) and a phone PH that registers USER through the
# relay from PORT (over UDP, or TRANSPORT) and then takes calls; returns
# once the binding is listed.
registered_uas() {
  local tr=${5:-udp}
  pbx "$1" pbx_registrar udp $PBX 5060 - -m 2 -deadcall_wait 0
  sleep 0.5
  phone "$2" phone_uas "$tr" $PHONE "$3" $RELAY_OUT:"$(sip_port "$tr")" -s "$4"
  wait_for 5 "[ \"\$(sluicectl --json registrations list | grep -c 'sip:$4@')\" -ge 1 ]"
}
# PBX_NAME PBX_SCENARIO PHONE_NAME PHONE_SCENARIO TRANSPORT PORT USER [sipp
# args]: a PBX (on UDP) to take the call, then a phone on TRANSPORT calling
# USER through the relay from PORT; both run in the background.
call_through() {
  pbx "$1" "$2" udp $PBX 5060 -
  sleep 0.5
  phone "$3" "$4" "$5" $PHONE "$6" $RELAY_OUT:"$(sip_port "$5")" -s "$7" "${@:8}"
}
both_ok() { sipp_ok "$SIPP_LOG_ROOT/$1" "${SIPP_WAIT:-30}" && sipp_ok "$SIPP_LOG_ROOT/$2" "${SIPP_WAIT:-30}"; }
