#!/usr/bin/env bash
# Survivability with real SIP peers (SIPp phone and PBX) and RTP:
# - sluice-controlplane is killed (SIGKILL) in the middle of a call. The
#   dataplane keeps forwarding. Restarted, the control plane restores the
#   call from its journal, adopts the dataplane's flows without pushing them
#   again, removes a flow in its port range that no call owns, and the call
#   then carries a hold re-INVITE, a resume and the phone's BYE. A phone's
#   UDP registration survives the same restart: the PBX then calls it.
#   A call whose session timer the relay refreshes by re-INVITE survives it
#   too: the restarted relay re-sends the SDP it journalled. A call that
#   has carried 1100 in-dialog requests does too, its CSeqs still rising.
# - sluice-dataplane is stopped in the middle of a call and started again:
#   the control plane pushes the call's flows again and RTP flows again.
source "$(dirname "$0")/lib.sh"
sip_lab_start
export SIPP_TIMEOUT=40
SIPP_WAIT=45
generations() {  # "key=generation ..." of every flow, sorted
  sluicectl --json flows list | python3 -c "
import json,sys
d=json.load(sys.stdin)
print(' '.join(sorted('%s:%s=%s' % (f['spec']['key']['localAddress'], f['spec']['key']['localPort'], f.get('generation','0')) for f in d.get('flows',[]))))"
}

long_call() {  # long_call N: phone phN calls PBX pbxN (14 s of RTP, then hold, resume, BYE)
  pbx "pbx$1" pbx_answer udp $PBX 5060 -
  sleep 0.5
  phone "ph$1" phone_call udp $PHONE 5070 $RELAY_OUT:5060 -s "20$1" -d 14000
  wait_for 10 '[ "$(flows_count)" -ge 4 ]'
  sleep 1
  check "call $1 is up" eq "$(calls_count)" 1
}
kill_cp() {  # SIGKILL: no chance to clean up
  kill -9 "$(cat "$LAB_DIR/controlplane.pid")"
  rm -f "$LAB_DIR/controlplane.pid"
}

echo "== the control plane is killed mid-call"
long_call 1
nflows=$(flows_count)
gens_before=$(generations)
check "the journal is private to the control plane" eq "$(stat -c %a "$LAB_DIR/journal")" 600
kill_cp
p1=$(flow_packets $RELAY_OUT)
sleep 2
p2=$(flow_packets $RELAY_OUT)
check "RTP keeps crossing the dataplane with the control plane dead ($p1 -> $p2 packets)" ge $((p2 - p1)) 50
# A flow in the control plane's range that no call owns: left over from a
# call that ended while the control plane was away.
sluicectl flows add --local $RELAY_OUT:30000 --egress-port inside --source $RELAY_IN:30002 \
  --dest $PBX:7000 >/dev/null
check "a stale flow is there" eq "$(flows_count)" $((nflows + 1))
cp_start || exit 1
wait_for 5 '[ "$(counter resyncs)" -ge 1 ]'
check "the call is restored from the journal" eq "$(counter calls_restored)" 1
check "it is listed again" eq "$(calls_count)" 1
sluicectl calls list
check "its $nflows flows are adopted" eq "$(counter resync_flows_adopted)" "$nflows"
check "none is pushed again" eq "$(counter resync_calls_pushed)" 0
check "the stale flow is removed" eq "$(counter resync_flows_removed)" 1
check "the flows are the same ones (same generations)" eq "$(generations)" "$gens_before"
check "after the restart the call carries hold, resume and the phone's BYE" both_ok ph1 pbx1
check "the call is gone afterwards" eq "$(calls_count)" 0
check "its flows are removed" eq "$(flows_count)" 0

echo "== a registration survives the control plane's restart"
registered_uas reg ph3 5072 carol
kill_cp
cp_start || exit 1
check "the binding is restored from the journal" eq "$(counter registrations_restored)" 1
pbx pbx3 pbx_call udp $PBX 5062 $RELAY_IN:5060 -s carol
check "a call from the PBX reaches the phone over its restored NAT binding" both_ok pbx3 ph3
sipp_stop "$SIPP_LOG_ROOT/reg"

echo "== a subscription survives the control plane's restart"
pbx vm2 pbx_notifier udp $PBX 5060 -
sleep 0.5
phone sub2 phone_subscribe udp $PHONE 5074 $RELAY_OUT:5060 -s 201 -d 6000
wait_for 5 '[ "$(counter notifies_relayed)" -ge 1 ]'
kill_cp
cp_start || exit 1
check "the subscription is restored from the journal" eq "$(counter subscriptions_restored)" 1
check "after the restart the unsubscribe and the final NOTIFY follow the restored dialogs" both_ok sub2 vm2
check "it ends with its terminating NOTIFY" eq "$(counter subscriptions_terminated)" 1

echo "== a call the relay refreshes with re-INVITE survives the control plane's restart (its SDP is journalled)"
pbx tmr pbx_timer_reinvite udp $PBX 5060 -
sleep 0.5
phone ph5 phone_call_wait_bye udp $PHONE 5070 $RELAY_OUT:5060 -s 107
wait_for 5 '[ "$(flows_count)" -ge 2 ]'
kill_cp
cp_start || exit 1
check "the call is restored from the journal" eq "$(counter calls_restored)" 1
check "the restarted relay refreshed it twice by re-INVITE; then the PBX's BYE reached the phone" both_ok ph5 tmr
check "two re-INVITE refreshes from the restarted relay" eq "$(counter session_refresh_reinvites_sent)" 2
check "each carried the journalled SDP, the first INVITE's byte for byte" \
  same_invite_sdp "$SIPP_LOG_ROOT/tmr/messages.log" 3 "$RELAY_IN"
check "no call left" eq "$(calls_count)" 0

echo "== a call past 1000 in-dialog requests survives the control plane's restart: the relay's CSeqs keep rising"
# The relay journals a leg again every 500 requests it sends on it and
# restores the leg 1000 above what it journalled (RFC 3261 12.2.1.1: each
# new request's CSeq is above the last); 1100 INFOs go past that margin.
pbx inf pbx_info_sink udp $PBX 5060 -
sleep 0.5
phone ph6 phone_info_burst udp $PHONE 5070 $RELAY_OUT:5060 -s 108
check "1100 INFOs relayed to the PBX" wait_for 30 '[ "$(grep -c "^INFO sip:" "$SIPP_LOG_ROOT/inf/messages.log")" -ge 1100 ]'
kill_cp
cp_start || exit 1
check "the call is restored from the journal" eq "$(counter calls_restored)" 1
check "the phone's BYE reached the PBX through the restarted relay" both_ok ph6 inf
check "at the PBX, the relay's CSeqs rose through the INFOs and the BYE after the restart is above them all" \
  python3 - "$SIPP_LOG_ROOT/inf/messages.log" <<'PY'
import re, sys
seqs = []
for block in open(sys.argv[1]).read().split("\n-----"):
    m = re.search(r"^(INFO|BYE) sip:", block, re.M)
    c = re.search(r"^CSeq: *(\d+) (INFO|BYE)", block, re.M)
    if "message received" in block and m and c:
        seqs.append((c.group(2), int(c.group(1))))
infos = [n for k, n in seqs if k == "INFO"]
byes = [n for k, n in seqs if k == "BYE"]
print("     %d INFOs, CSeq %s..%s; BYE %s" % (len(infos), infos[0] if infos else "-", infos[-1] if infos else "-", byes),
      file=sys.stderr)
ok = len(infos) >= 1100 and all(a < b for a, b in zip(infos, infos[1:])) and byes and min(byes) > infos[-1]
sys.exit(0 if ok else 1)
PY
check "no call left" eq "$(calls_count)" 0

echo "== the dataplane restarts mid-call"
long_call 2
nflows=$(flows_count)
pushed0=$(counter resync_calls_pushed)
lab_stop
sleep 1
lab_start || exit 1
check "the control plane pushes the call again" wait_for 10 '[ "$(counter resync_calls_pushed)" -gt "$pushed0" ]'
check "all $nflows flows are back" eq "$(flows_count)" "$nflows"
sleep 2
out_pk=$(flow_packets $RELAY_OUT)
in_pk=$(flow_packets $RELAY_IN)
check "RTP phone->PBX flows again after the restart ($out_pk packets)" ge "$out_pk" 50
check "RTP PBX->phone flows again after the restart ($in_pk packets)" ge "$in_pk" 50
check "the call completes (hold, resume, BYE)" both_ok ph2 pbx2
check "no call and no flow left" eq "$(calls_count) $(flows_count)" "0 0"

echo "== the dataplane comes back with no room for a call's flows: the call, left without media, is ended with BYE on both legs"
pbx pbx7 pbx_answer_fast udp $PBX 5060 -
sleep 0.5
phone ph7 phone_call_wait_bye udp $PHONE 5070 $RELAY_OUT:5060 -s 207
check "call 7 is up with its 4 flows" wait_for 10 '[ "$(calls_count) $(flows_count)" = "1 4" ]'
refused0=$(counter flow_batches_refused)
lab_stop
sed 's/max_flows: 65536/max_flows: 2/' "$LAB_DIR/dataplane.conf" >"$LAB_DIR/dataplane2.conf"
lab_start "$LAB_DIR/dataplane2.conf" || exit 1
check "the dataplane refuses the re-pushed batch" wait_for 10 '[ "$(counter flow_batches_refused)" -gt "$refused0" ]'
check "the phone and the PBX each took the relay's BYE" both_ok ph7 pbx7
check "counted as ended for it; no call and no flow left" eq \
  "$(counter calls_ended_media_refused) $(calls_count) $(flows_count)" "1 0 0"
