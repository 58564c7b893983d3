#!/usr/bin/env bash
# Overload control with real SIP peers (SIPp, the bench's scenarios): new
# calls over overload.max_calls, over overload.max_call_rate, and while the
# control plane's SIP queue stands (its CPU held to 1% of a core by a cgroup
# quota) are answered 503; every call is either set up or refused, none is
# lost, and once the load is gone calls go through again.
source "$(dirname "$0")/lib.sh"
export LAB_CP_EXTRA='overload { max_calls: 1 retry_after_s: 7 }'
sip_lab_start
export SIPP_TIMEOUT=60
UAC=$ROOT/bench/sipp/uac.xml UAS=$ROOT/bench/sipp/uas.xml
# The PBX answers every call; the phone places N calls at RATE/s, each held
# HOLD ms (a 503 is ACKed and fails the call). The PBX takes any number of
# calls until it is stopped: a BYE the relay still retransmits from the
# previous run (its 200 waited in the throttled relay's queue) must not
# count as the one call it waits for.
calls() {  # name N RATE HOLD_MS (the phone's transport: PHONE_TRANSPORT, default udp)
  SIPP_CALLS=100000 SIPP_TRACE_MSG=0 pbx "$1-pbx" "$UAS" udp $PBX 5060 -
  sleep 0.5
  SIPP_CALLS=$2 SIPP_FG=1 phone "$1" "$UAC" "${PHONE_TRANSPORT:-udp}" $PHONE 5070 $RELAY_OUT:5060 -s pbx \
    -r "$3" -d "$4" -l "$2" >/dev/null
  # Calls still ending keep the PBX until the relay has none left (a late
  # BYE must not reach the next test's PBX).
  wait_for 30 '[ "$(calls_count)" = 0 ]'
  sipp_stop "$SIPP_LOG_ROOT/$1-pbx"
}
stat_of() { python3 - "$SIPP_LOG_ROOT/$1/stats.csv" "$2" <<'PY'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1]), delimiter=';') if r]
print(dict(zip(rows[0], rows[-1])).get(sys.argv[2], '?'))
PY
}
restart_cp() {  # overload config text
  cp_stop
  log_from=$(($(wc -l <"$LAB_DIR/controlplane.log") + 1))
  LAB_CP_EXTRA="$1" lab_cp_conf "$LAB_DIR/overload.conf"
  cp_start "$LAB_DIR/overload.conf" || exit 1
}

echo "== max_calls 1: calls while one is up get 503 with Retry-After: 7"
calls cap 3 10 2000
check "one call set up, two refused" eq "$(stat_of cap 'SuccessfulCall(C)') $(stat_of cap 'FailedCall(C)')" "1 2"
check "counted as max_calls refusals" eq "$(counter calls_refused_max_calls)" 2
check "the 503s carry Retry-After: 7" eq "$(grep -c '^Retry-After: 7' "$SIPP_LOG_ROOT/cap/messages.log")" 2
check "no call left" wait_for 10 '[ "$(calls_count)" = 0 ]'

echo "== max_call_rate 5: one second's burst, then 5 calls per second"
restart_cp 'overload { max_call_rate: 5 }'
t0=$(date +%s.%N)
calls rate 30 50 0
t1=$(date +%s.%N)
ok=$(stat_of rate 'SuccessfulCall(C)')
refused=$(counter calls_refused_rate)
# The bucket starts with 5 and gains 5 per second: at most 5 + 5 * elapsed.
most=$(python3 -c "import math; print(5 + math.ceil(5 * ($t1 - $t0)))")
echo "     $ok set up, $refused refused in $(python3 -c "print(round($t1 - $t0, 2))") s (at most $most)"
check "every call set up or refused" eq "$((ok + refused)) $(stat_of rate 'FailedCall(C)')" "30 $refused"
check "at least the burst set up, no more than the bucket allows" \
  python3 -c "import sys; sys.exit(0 if 5 <= $ok <= $most else 1)"
check "no call left" wait_for 10 '[ "$(calls_count)" = 0 ]'

# NAME TRANSPORT: the control plane (already held to 1% of a core) gets
# 1000 calls at 500/s from the phone over TRANSPORT; the quota is lifted
# after 4 s. Every call is set up or refused, and shedding stops.
shed() {
  (sleep 4; cp_unthrottle) &
  local lifter=$! ok failed refused
  PHONE_TRANSPORT=$2 calls "$1" 1000 500 0
  wait $lifter
  ok=$(stat_of "$1" 'SuccessfulCall(C)')
  failed=$(stat_of "$1" 'FailedCall(C)')
  refused=$(counter calls_refused_overload)
  echo "     $ok set up, $failed failed, $refused refused; SIP waited at most $(counter sip_queue_delay_max_us) us"
  check "new calls over $2 were refused while the signalling loop was behind" ge "$refused" 1
  check "every call was set up or refused with 503, none lost" eq "$((ok + refused)) $failed" "1000 $refused"
  check "calls went through once the load was gone" ge "$ok" 1
  check "status: shedding stops with the load gone" wait_for 10 \
    '[ "$(sluicectl --json status | python3 -c "import json,sys; print(json.load(sys.stdin).get(\"overloaded\", False))")" = False ]'
}

echo "== load shedding: the control plane held to 1% of a core while 1000 calls come at 500/s"
restart_cp 'overload { }'
if ! cp_throttle 1; then
  echo "SKIP: no writable cgroup CPU controller on this machine"
else
  sluicectl calls watch --types overload --count 2 >"$LAB_DIR/overload_events" 2>&1 &
  watcher=$!
  shed shed udp
  log=$(tail -n +"$log_from" "$LAB_DIR/controlplane.log")
  check "shedding started and stopped as often as counted (log)" eq \
    "$(grep -c 'overload: SIP queued' <<<"$log") $(grep -c 'overload over' <<<"$log")" \
    "$(counter overload_episodes) $(counter overload_episodes)"
  check "operators saw it start and stop (calls watch)" wait_for 10 \
    '[ "$(grep -c " overload .*on: SIP queued" "$LAB_DIR/overload_events") $(grep -c " overload .*off: SIP queued" "$LAB_DIR/overload_events")" = "1 1" ]'
  kill $watcher 2>/dev/null
  check "no call left" wait_for 10 '[ "$(calls_count)" = 0 ]'
  echo "== a call after the overload"
  calls after 1 1 0
  check "set up and ended normally" eq "$(stat_of after 'SuccessfulCall(C)')" 1
fi

echo "== low traffic on a starved CPU, the phone on TCP: messages are read late, but the loop is idle between them, so nothing is refused"
# 1% of a core: a call's work is cut off by the quota and finished up to
# 100 ms later, past a 5 ms target; at 2 calls/s no queue stands.
restart_cp 'overload { queue_delay_ms: 5 }'
if ! cp_throttle 1; then
  echo "SKIP: no writable cgroup CPU controller on this machine"
else
  PHONE_TRANSPORT=tcp calls starve 10 2 0
  cp_unthrottle
  echo "     $(stat_of starve 'SuccessfulCall(C)') set up, $(counter calls_refused_overload) refused; SIP waited at most $(counter sip_queue_delay_max_us) us"
  check "messages waited past the 5 ms target" ge "$(counter sip_queue_delay_max_us)" 5000
  check "every call set up, none refused, no overload episode" eq \
    "$(stat_of starve 'SuccessfulCall(C)') $(counter calls_refused_overload) $(counter overload_episodes)" "10 0 0"
fi

echo "== load shedding with the phone on TCP (no arrival times: the signal is how long the loop has been busy)"
restart_cp 'overload { }'
if ! cp_throttle 1; then
  echo "SKIP: no writable cgroup CPU controller on this machine"
else
  shed shedtcp tcp
  check "no call left" wait_for 10 '[ "$(calls_count)" = 0 ]'
fi
finish
