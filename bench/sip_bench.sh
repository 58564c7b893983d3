#!/usr/bin/env bash
# sluice-bench sip: call setups through the whole lab appliance
# (sluice-dataplane + sluice-controlplane on veth/af_packet), driven by SIPp
# as teleworker UAC and PBX UAS, then registrations. Prints one JSON object.
#
#   sluice-bench sip [--calls N] [--rate R] [--hold-ms MS] [--registrations M]
#                    [--reg-rate R] [--transport udp|tcp] [--cp-config TEXT]
#                    [--cp-cpu PCT] [--json]
#
# Latency added by sluice is the through-sluice INVITE->200 time minus the
# same scenario run directly UAC->UAS (no relay) in the same run (SIPp
# measures in whole milliseconds); calls_per_second is setups completed per
# second from the first to the last; memory per
# call and per registration are the control plane's RSS growth divided by
# what it held at the peak. --cp-config appends TEXT to the lab control
# plane's config (e.g. 'overload { queue_delay_ms: 0 }'); calls it refused
# with 503 count as failed and are also reported by reason. --cp-cpu limits
# the control plane to PCT% of one core (a cgroup quota): a signalling core
# slower than the offered load, to see overload control at work.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CALLS=2000 RATE=200 HOLD=2000 REGS=10000 REG_RATE=2000 TRANSPORT=udp JSON=0 CP_CPU=0
while [ $# -gt 0 ]; do
  case $1 in
    --calls) CALLS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --hold-ms) HOLD=$2; shift ;;
    --registrations) REGS=$2; shift ;;
    --reg-rate) REG_RATE=$2; shift ;;
    --transport) TRANSPORT=$2; shift ;;
    --cp-config) export LAB_CP_EXTRA=$2; shift ;;
    --cp-cpu) CP_CPU=$2; shift ;;
    --json) JSON=1 ;;
    -h|--help) sed -n 2,19p "$0"; exit 0 ;;
    *) echo "sluice-bench sip: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
for n in "$CALLS" "$RATE" "$HOLD" "$REGS" "$REG_RATE" "$CP_CPU"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "sluice-bench sip: '$n' is not a number" >&2; exit 2; }
done
case $TRANSPORT in udp) T=u1 ;; tcp) T=t1 ;; *) echo "sluice-bench sip: --transport udp|tcp" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "sluice-bench sip: needs root (namespaces)" >&2; exit 2; }
command -v sipp >/dev/null || { echo "sluice-bench sip: sipp is missing (scripts/setup.sh installs it)" >&2; exit 2; }

export SLUICE_BUILD=${SLUICE_BUILD:-$ROOT/build}
export LAB=${LAB:-bs$$}
export LAB_MEDIA_TIMEOUT=600
source "$ROOT/lab/lab.sh"
[ "$TRANSPORT" = tcp ] && export LAB_PBX_TRANSPORT=TCP
SC=$ROOT/bench/sipp
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; lab_down; }
trap cleanup EXIT
log() { [ $JSON = 1 ] || echo "sip-bench: $*" >&2; }

lab_up >/dev/null || exit 1
lab_start || exit 1
cp_start || exit 1
if [ "$CP_CPU" -gt 0 ]; then
  cp_throttle "$CP_CPU" || { echo "sluice-bench sip: --cp-cpu needs a writable cgroup CPU controller" >&2; exit 2; }
fi
W=$LAB_DIR/bench
mkdir -p "$W"
CP_PID=$(cat "$LAB_DIR/controlplane.pid")
rss() { awk '/VmRSS/ {print $2 * 1024}' /proc/$CP_PID/status; }
status_field() { sluicectl --json status 2>/dev/null | python3 -c "import json,sys; print(int(json.load(sys.stdin).get('$1', 0)))"; }
percentiles() {  # rtt csv files -> "count p50 p99 setups_per_second"
  python3 - "$@" <<'PY'
import sys
v, t = [], []
for f in sys.argv[1:]:
    for line in open(f):
        p = line.strip().split(';')
        if len(p) >= 3 and p[2] == 'setup':
            try:
                v.append(float(p[1])); t.append(float(p[0]))
            except ValueError: pass
v.sort(); t.sort()
q = lambda x: v[min(len(v) - 1, int(x * len(v)))] if v else 0.0
# Sustained rate: completed setups over the span from the first to the last.
rate = (len(t) - 1) / ((t[-1] - t[0]) / 1000.0) if len(t) > 1 and t[-1] > t[0] else 0.0
print(len(v), round(q(0.5), 3), round(q(0.99), 3), round(rate, 1))
PY
}
last_stat() {  # stat csv, column name -> value of the last row
  python3 - "$1" "$2" <<'PY'
import sys
rows = [l.rstrip('\n').split(';') for l in open(sys.argv[1]) if l.strip()]
h = rows[0]
print(rows[-1][h.index(sys.argv[2])] if len(rows) > 1 else 0)
PY
}
run_calls() {  # dir netns_uac uac_ip target uas_netns uas_ip uas_port
  local d=$1 nsu=$2 uip=$3 target=$4 nss=$5 sip=$6 sport=$7
  mkdir -p "$d"
  (cd "$d" && exec ip netns exec "$nss" timeout 600 sipp -sf "$SC/uas.xml" -t $T -i "$sip" -p "$sport" \
     -nostdin -max_socket 4096 -bind_local >/dev/null 2>&1) &
  local uas=$!
  PIDS+=($uas)
  sleep 0.5
  local limit=$((CALLS / (RATE > 0 ? RATE : 1) + HOLD / 1000 + 60))
  (cd "$d" && ip netns exec "$nsu" timeout $limit sipp -sf "$SC/uac.xml" -s pbx -t $T -i "$uip" -p 5070 \
     "$target" -r "$RATE" -m "$CALLS" -d "$HOLD" -l $((RATE * (HOLD / 1000 + 5) + 100)) \
     -nostdin -trace_rtt -rtt_freq 1 -trace_stat -fd 1 -max_socket 4096 >/dev/null 2>&1)
  local rc=$?
  kill $uas 2>/dev/null
  wait $uas 2>/dev/null
  return $rc
}

# 1. Baseline: the same SIPp pair without the relay, inside the PBX namespace.
log "baseline: $CALLS calls at $RATE/s directly UAC -> UAS"
run_calls "$W/direct" "$NS_PBX" "$PBX" "$PBX:5090" "$NS_PBX" "$PBX" 5090
read -r direct_n direct_p50 direct_p99 direct_cps < <(percentiles "$W"/direct/*_rtt.csv)

# 2. Through sluice: phone namespace -> relay outside -> PBX.
log "through sluice: $CALLS calls at $RATE/s, held ${HOLD} ms, $TRANSPORT"
rss0=$(rss)
( peak=0; peak_rss=0
  while :; do
    c=$(status_field calls); r=$(rss)
    [ "${c:-0}" -gt "$peak" ] && { peak=$c; peak_rss=$r; echo "$peak $peak_rss" >"$W/peak"; }
    sleep 0.5
  done ) &
SAMPLER=$!
PIDS+=($SAMPLER)
t0=$(date +%s.%N)
run_calls "$W/relay" "$NS_PHONE" "$PHONE" "$RELAY_OUT:5060" "$NS_PBX" "$PBX" 5060
t1=$(date +%s.%N)
kill $SAMPLER 2>/dev/null
read -r relay_n relay_p50 relay_p99 relay_cps < <(percentiles "$W"/relay/*_rtt.csv)
stat=$(ls "$W"/relay/uac_*_.csv 2>/dev/null | head -1)
ok=$(last_stat "$stat" "SuccessfulCall(C)" 2>/dev/null || echo 0)
failed=$(last_stat "$stat" "FailedCall(C)" 2>/dev/null || echo "$CALLS")
read -r peak_calls peak_rss <"$W/peak" 2>/dev/null || { peak_calls=0; peak_rss=$rss0; }
counter_of() { sluicectl --json status | python3 -c "import json,sys; d=json.load(sys.stdin); print(next((int(c['value']) for c in d.get('counters',[]) if c['name']=='$1'),0))"; }
flows_pushed=$(counter_of flows_pushed)
# Where the signalling thread's time went in the calls phase: its longest
# loop iterations, and the flow RPCs to the dataplane it waits for.
sluicectl --json status >"$W/status_calls.json" 2>/dev/null
left=$(status_field calls)
# Calls still up when SIPp ended are a backlog being worked off (at
# overload): they must drain. Seconds until none was left, -1 if some still
# were after 30 s.
drain_t0=$(date +%s.%N); drain_s=-1
for _ in $(seq 1 300); do
  c=$(status_field calls)
  if [ "${c:-0}" = 0 ]; then drain_s=$(python3 -c "print(round($(date +%s.%N) - $drain_t0, 1))"); break; fi
  sleep 0.1
done
left_after_drain=$(status_field calls)

# 3. Registrations held: the PBX registrar answers; the phones register.
log "registrations: $REGS at $REG_RATE/s"
(cd "$W" && exec ip netns exec "$NS_PBX" timeout 600 sipp -sf "$SC/registrar.xml" -t $T -i "$PBX" -p 5060 \
   -nostdin -max_socket 4096 >/dev/null 2>&1) &
REGISTRAR=$!
PIDS+=($REGISTRAR)
sleep 0.5
rss1=$(rss)
(cd "$W" && ip netns exec "$NS_PHONE" timeout 600 sipp -sf "$SC/reg.xml" -t $T -i "$PHONE" -p 5072 \
   "$RELAY_OUT:5060" -r "$REG_RATE" -m "$REGS" -nostdin -trace_stat -fd 1 -max_socket 4096 >/dev/null 2>&1)
regs_held=$(status_field registrations)
rss2=$(rss)
# The journal compacts on its own thread; the signalling thread only
# appends, and waits for the compactor only while it copies the tail.
compactions=$(counter_of journal_compactions)
compaction_max_us=$(counter_of journal_compaction_max_us)
stall_max_us=$(counter_of journal_stall_max_us)
kill $REGISTRAR 2>/dev/null

python3 - <<PY
import json
calls, rate = $CALLS, $RATE
elapsed = $t1 - $t0 - $HOLD / 1000.0
ok = int("$ok" or 0)
d = {
  "bench": "sip", "transport": "$TRANSPORT", "controlplane_cpu_pct": $CP_CPU or None, "calls": calls, "rate": rate, "hold_ms": $HOLD,
  "successful_calls": ok, "failed_calls": int("$failed" or 0) + max(0, calls - ok - int("$failed" or 0)),
  "calls_per_second": $relay_cps,
  "calls_per_second_direct": $direct_cps,
  "wall_seconds": round(elapsed, 2),
  "p50_setup_ms": round(max(0.0, $relay_p50 - $direct_p50), 3),
  "p99_setup_ms": round(max(0.0, $relay_p99 - $direct_p99), 3),
  "p50_setup_through_ms": $relay_p50, "p99_setup_through_ms": $relay_p99,
  "p50_setup_direct_ms": $direct_p50, "p99_setup_direct_ms": $direct_p99,
  "setup_samples": $relay_n,
  "peak_calls": int("$peak_calls" or 0),
  "bytes_per_call": int(($peak_rss - $rss0) / $peak_calls) if int("$peak_calls" or 0) > 0 else None,
  "calls_left_after": int("$left" or 0),
  "calls_drain_s": $drain_s, "calls_left_after_drain": int("$left_after_drain" or 0),
  "flows_pushed": int("$flows_pushed" or 0),
  "registrations": $REGS, "registrations_held": int("$regs_held" or 0),
  "bytes_per_registration": int(($rss2 - $rss1) / int("$regs_held")) if int("$regs_held" or 0) > 0 else None,
  "controlplane_rss_bytes": $rss2,
  "journal_compactions": int("$compactions" or 0),
  "journal_compaction_max_ms": round(int("$compaction_max_us" or 0) / 1000.0, 1),
  "journal_stall_max_ms": round(int("$stall_max_us" or 0) / 1000.0, 1),
}
try:
    cs = {c["name"]: int(c["value"]) for c in json.load(open("$W/status_calls.json")).get("counters", [])}
except (OSError, ValueError):
    cs = {}
d["loop_turn_max_ms"] = round(cs.get("loop_turn_max_us", 0) / 1000.0, 1)
d["loop_turns_over_5ms"] = cs.get("loop_turns_over_5ms", 0)
d["loop_turns_over_20ms"] = cs.get("loop_turns_over_20ms", 0)
d["loop_turn_cpu_max_ms"] = round(cs.get("loop_turn_cpu_max_us", 0) / 1000.0, 1)
d["loop_turn_cpus_over_5ms"] = cs.get("loop_turn_cpus_over_5ms", 0)
d["loop_turn_cpus_over_20ms"] = cs.get("loop_turn_cpus_over_20ms", 0)
d["loop_busy_share"] = round(cs.get("loop_turn_us_total", 0) / 1e6 / max(0.001, elapsed + $HOLD / 1000.0), 3)
d["loop_cpu_share"] = round(cs.get("loop_turn_cpu_us_total", 0) / 1e6 / max(0.001, elapsed + $HOLD / 1000.0), 3)
d["flow_rpcs"] = cs.get("flow_rpcs", 0)
d["flow_rpc_mean_ms"] = round(cs.get("flow_rpc_us_total", 0) / 1000.0 / max(1, cs.get("flow_rpcs", 0)), 3)
d["flow_rpc_max_ms"] = round(cs.get("flow_rpc_max_us", 0) / 1000.0, 1)
d["flow_rpcs_over_5ms"] = cs.get("flow_rpcs_over_5ms", 0)
d["flow_batches"] = cs.get("flow_batches", 0)
d["flow_queue_max"] = cs.get("flow_queue_max", 0)
d["calls_refused_overload"] = cs.get("calls_refused_overload", 0)
d["calls_refused_rate"] = cs.get("calls_refused_rate", 0)
d["calls_refused_max_calls"] = cs.get("calls_refused_max_calls", 0)
d["overload_episodes"] = cs.get("overload_episodes", 0)
d["sip_queue_delay_max_ms"] = round(cs.get("sip_queue_delay_max_us", 0) / 1000.0, 1)
d["sip_queued_over_100ms"] = cs.get("sip_queued_over_100ms", 0)
d["sip_retransmissions_absorbed"] = cs.get("sip_retransmissions_absorbed", 0)
print(json.dumps(d, indent=None if $JSON else 2))
PY
