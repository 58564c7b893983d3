#!/usr/bin/env bash
# RTP both ways between kernel sockets through the real EAL on af_packet:
# byte-exact payloads, latching to a NATed source, DSCP/TTL, ARP resolution,
# counters in sluicectl.
source "$(dirname "$0")/lib.sh"
lab_up || exit 1
lab_start || exit 1
check "stream pair programmed over gRPC" program_pair --cookie 42

# The phone sends from 4400 although its SDP said 4000 (its NAT remapped it).
rtp_peer --netns "$NS_PBX" --bind $PBX:5000 --to $RELAY_IN:20002 --delay 0.5 --count 300 \
  --ssrc 2222 --expect 300 --expect-ssrc 1111 --wait 15 --tos >"$LAB_DIR/pbx.json" &
pbx=$!
sleep 0.2
rtp_peer --netns "$NS_PHONE" --bind $PHONE:4400 --to $RELAY_OUT:20000 --count 300 --ssrc 1111 \
  --expect 300 --expect-ssrc 2222 --wait 15 --tos >"$LAB_DIR/phone.json"
wait $pbx
cat "$LAB_DIR/phone.json" "$LAB_DIR/pbx.json"
check "PBX received all 300 packets" eq "$(json_get "$LAB_DIR/pbx.json" 'd["received"]')" 300
check "phone received all 300 packets" eq "$(json_get "$LAB_DIR/phone.json" 'd["received"]')" 300
check "PBX payloads byte-exact" eq "$(json_get "$LAB_DIR/pbx.json" 'd["bad"]')" 0
check "phone payloads byte-exact" eq "$(json_get "$LAB_DIR/phone.json" 'd["bad"]')" 0
check "PBX sees media from the relay's inside address" \
  eq "$(json_get "$LAB_DIR/pbx.json" 'list(d["sources"])')" "['$RELAY_IN:20002']"
check "phone sees media from the relay's outside address" \
  eq "$(json_get "$LAB_DIR/phone.json" 'list(d["sources"])')" "['$RELAY_OUT:20000']"
check "DSCP EF (46) on relayed media" eq "$(json_get "$LAB_DIR/phone.json" 'd["tos"]')" "[184]"
check "TTL decremented once" eq "$(json_get "$LAB_DIR/pbx.json" 'd["ttl"]')" "[63]"

sluicectl flows get $RELAY_OUT:20000 --json >"$LAB_DIR/flow.json"
check "flow latched to the NATed source" \
  eq "$(json_get "$LAB_DIR/flow.json" 'd["latchedPeer"]["address"]+":"+str(d["latchedPeer"]["port"])')" "$PHONE:4400"
check "flow counted 300 packets" eq "$(json_get "$LAB_DIR/flow.json" 'd["packets"]')" 300
check "flow saw SSRC 1111" eq "$(json_get "$LAB_DIR/flow.json" 'd["lastSsrc"]')" 1111
sluicectl flows get $RELAY_IN:20002 --json >"$LAB_DIR/rev.json"
check "reverse flow sends to the latched source" \
  eq "$(json_get "$LAB_DIR/rev.json" 'd["currentDestination"]["port"]')" 4400

sluicectl stats --json >"$LAB_DIR/stats.json"
pbx_mac=$(ip -n "$NS_PBX" -j link show pbx0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')
check "next hop resolved by ARP to the PBX's MAC" \
  eq "$(json_get "$LAB_DIR/stats.json" '[n["mac"] for n in d["neighbors"] if n["address"]=="'$PBX'"]')" "['$pbx_mac']"
out_mac=$(json_get "$LAB_DIR/stats.json" 'd["ports"][0]["mac"]')
check "the phone resolved the relay address to the port's MAC" \
  bash -c "ip -n $NS_PHONE neigh show $RELAY_OUT | grep -q $out_mac"
check "flows list shows both flows" bash -c "'$BUILD/tools/sluicectl' flows list | grep -c 'active' | grep -q 2"
