#!/usr/bin/env bash
# Latching policies on the real dataplane: re-latching under allow-N (WLAN to
# cellular handover), rejection under lock-to-first, both counted.
source "$(dirname "$0")/lib.sh"
lab_up || exit 1
lab_start || exit 1

# allow-N: the phone moves from .10 to .11 mid-call.
check "allow-N pair programmed" program_pair --latch allow-n --max-senders 4
rtp_peer --netns "$NS_PBX" --bind $PBX:5000 --wait 8 --expect 100 >"$LAB_DIR/pbx1.json" &
p=$!
sleep 0.3
rtp_peer --netns "$NS_PHONE" --bind $PHONE:4000 --to $RELAY_OUT:20000 --count 50 --ssrc 5 --linger 0.2 >/dev/null
rtp_peer --netns "$NS_PHONE" --bind $PHONE2:4002 --to $RELAY_OUT:20000 --count 50 --ssrc 5 --seq 51 --linger 0.2 >/dev/null
wait $p
check "PBX got media from both phone addresses" eq "$(json_get "$LAB_DIR/pbx1.json" 'd["received"]')" 100
sluicectl flows get $RELAY_OUT:20000 --json >"$LAB_DIR/f1.json"
check "flow re-latched to the new address" \
  eq "$(json_get "$LAB_DIR/f1.json" 'd["latchedPeer"]["address"]')" "$PHONE2"
check "two senders recorded" eq "$(json_get "$LAB_DIR/f1.json" 'len(d["senders"])')" 2
# The PBX's answer now goes to the new address.
rtp_peer --netns "$NS_PHONE" --bind $PHONE2:4002 --wait 5 --expect 20 >"$LAB_DIR/ph2.json" &
p=$!
sleep 0.3
rtp_peer --netns "$NS_PBX" --bind $PBX:5000 --to $RELAY_IN:20002 --count 20 --linger 0.1 >/dev/null
wait $p
check "PBX media follows the handover" eq "$(json_get "$LAB_DIR/ph2.json" 'd["received"]')" 20

# lock-to-first: a second source is rejected and counted.
sluicectl flows delete $RELAY_OUT:20000 $RELAY_IN:20002 >/dev/null
check "lock-first pair programmed" program_pair --latch first
rtp_peer --netns "$NS_PBX" --bind $PBX:5000 --wait 4 --linger 1.5 >"$LAB_DIR/pbx2.json" &
p=$!
sleep 0.3
rtp_peer --netns "$NS_PHONE" --bind $PHONE:4000 --to $RELAY_OUT:20000 --count 30 --linger 0.2 >/dev/null
rtp_peer --netns "$NS_PHONE" --bind $PHONE2:4002 --to $RELAY_OUT:20000 --count 40 --linger 0.2 >/dev/null
wait $p
check "only the first sender's 30 packets passed" eq "$(json_get "$LAB_DIR/pbx2.json" 'd["received"]')" 30
sluicectl flows get $RELAY_OUT:20000 --json >"$LAB_DIR/f2.json"
check "40 latch rejections counted on the flow" \
  eq "$(json_get "$LAB_DIR/f2.json" '[x["packets"] for x in d["drops"] if x["reason"]=="latch_rejected"]')" "['40']"
check "still latched to the first sender" eq "$(json_get "$LAB_DIR/f2.json" 'd["latchedPeer"]["address"]')" "$PHONE"
