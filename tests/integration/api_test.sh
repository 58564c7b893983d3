#!/usr/bin/env bash
# The gRPC contract under bad input: every malformed request gets a status
# with a message naming the field, the dataplane keeps its state and keeps
# running; idempotent upserts and generations; config errors at start-up.
source "$(dirname "$0")/lib.sh"
lab_up || exit 1

# Config errors name the field and exit 2 without touching the EAL.
sed 's/address: "192.0.2.1"/address: "192.0.2.300"/' "$LAB_DIR/dataplane.conf" >"$LAB_DIR/bad.conf"
out=$("$BUILD/dataplane/sluice-dataplane" --config "$LAB_DIR/bad.conf" 2>&1); rc=$?
check "bad config exits 2" eq "$rc" 2
check "bad config names the field" bash -c "grep -q 'ports\[0\].address' <<<'$out'"

lab_start || exit 1
check "pair programmed" program_pair --generation 10
expect_err() {  # expect_err "grep pattern" sluicectl args...
  local pat=$1
  shift
  local out
  out=$(sluicectl "$@" 2>&1)
  local rc=$?
  [ $rc -ne 0 ] && grep -q -- "$pat" <<<"$out" || { echo "     rc=$rc: $out" >&2; return 1; }
}
check "non-relay local address rejected" expect_err "INVALID_ARGUMENT.*local_address" \
  flows add --local 203.0.113.5:20000 --egress-port inside --source $RELAY_IN:20002 --dest $PBX:5000
check "port outside the media range rejected" expect_err "INVALID_ARGUMENT.*media port range" \
  flows add --local $RELAY_OUT:5060 --egress-port inside --source $RELAY_IN:20002 --dest $PBX:5000
check "unknown egress port rejected" expect_err "INVALID_ARGUMENT.*egress_port" \
  flows add --local $RELAY_OUT:20010 --egress-port dmz --source $RELAY_IN:20012 --dest $PBX:5000
check "strict latch without expected peer rejected" expect_err "INVALID_ARGUMENT.*STRICT" \
  flows add --local $RELAY_OUT:20010 --egress-port inside --source $RELAY_IN:20012 --dest $PBX:5000 --latch strict
check "bad JSON batch rejected" bash -c "echo '{\"flows\": [{\"key\": 5}]}' >'$LAB_DIR/bad.json'; ! '$BUILD/tools/sluicectl' flows add --file '$LAB_DIR/bad.json' 2>/dev/null"
# A batch with one bad flow applies nothing.
cat >"$LAB_DIR/batch.json" <<JSON
{"generation": "11", "flows": [
 {"key": {"localAddress": "$RELAY_OUT", "localPort": 20020}, "egressPort": "inside",
  "egressSource": {"address": "$RELAY_IN", "port": 20022}, "destination": {"address": "$PBX", "port": 5002}},
 {"key": {"localAddress": "$RELAY_OUT", "localPort": 20024}, "egressPort": "inside",
  "egressSource": {"address": "$RELAY_IN", "port": 20026}, "destination": {"address": "$PBX", "port": 5002}, "dscp": 99}]}
JSON
check "batch with a bad flow names it" expect_err "flows\[1\].dscp" flows add --file "$LAB_DIR/batch.json"
check "and applies nothing" expect_err "NOT_FOUND" flows get $RELAY_OUT:20020
check "get of an unknown flow is NOT_FOUND" expect_err "NOT_FOUND" flows get $RELAY_OUT:29999
check "get with a bad key is INVALID_ARGUMENT" expect_err "INVALID_ARGUMENT" flows get 1.2.3.4.5:1

# Idempotence and generations.
out=$(sluicectl flows add --pair --a-local $RELAY_OUT:20000 --a-port outside --a-peer $PHONE:4000 \
  --b-local $RELAY_IN:20002 --b-port inside --b-peer $PBX:5000 --generation 10 --json)
check "same batch again is unchanged" bash -c "grep -q '\"unchanged\": *2' <<<'$out'"
out=$(sluicectl flows add --pair --a-local $RELAY_OUT:20000 --a-port outside --a-peer $PHONE:4000 \
  --b-local $RELAY_IN:20002 --b-port inside --b-peer $PBX:5001 --generation 9 --json)
check "older generation is stale" bash -c "grep -q '\"stale\": *2' <<<'$out'"
sluicectl flows get $RELAY_OUT:20000 --json >"$LAB_DIR/f.json"
check "stale batch did not change the flow" eq "$(json_get "$LAB_DIR/f.json" 'd["spec"]["destination"]["port"]')" 5000
out=$(sluicectl flows delete $RELAY_OUT:20000 --generation 5 --json)
check "delete from an older generation is stale" bash -c "grep -q '\"stale\": *1' <<<'$out'"

# A watcher sees events; a flood of garbage does not disturb the dataplane.
sluicectl flows watch --count 1 --types latched --json >"$LAB_DIR/watch.json" &
wpid=$!
sleep 0.5
rtp_peer --netns "$NS_PHONE" --bind $PHONE:4000 --to $RELAY_OUT:20000 --count 3 --linger 0.2 >/dev/null
for i in $(seq 1 20); do kill -0 $wpid 2>/dev/null || break; sleep 0.1; done
kill $wpid 2>/dev/null; wait $wpid 2>/dev/null
check "watch reported the latch" bash -c "grep -q LATCHED '$LAB_DIR/watch.json'"
for hex in 00 8000 ffffffffffffffffffffffff 80000001; do
  rtp_peer --netns "$NS_PHONE" --bind $PHONE:4000 --to $RELAY_OUT:20000 --raw $hex --linger 0.05 >/dev/null
done
check "dataplane still serving after bad input" bash -c "'$BUILD/tools/sluicectl' stats >/dev/null"
check "flows kept" bash -c "'$BUILD/tools/sluicectl' flows get $RELAY_IN:20002 >/dev/null"
