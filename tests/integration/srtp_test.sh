#!/usr/bin/env bash
# SRTP through the real EAL on af_packet, between independent libsrtp2
# endpoints on kernel sockets: re-key (AES-CM on the phone side, GCM on the
# PBX side), SRTCP, decrypt and encrypt (a plain-RTP PBX), tampered, replayed
# and wrong-key packets dropped and counted, the auth-failure event, and a key
# replaced on a live flow.
source "$(dirname "$0")/lib.sh"
KA=$(key 30) KRA=$(key 30) KB=$(key 28) KRB=$(key 28) KA2=$(key 30) KWRONG=$(key 30)
lab_up || exit 1
lab_start || exit 1

flow() { sluicectl flows get "$1" --json >"$LAB_DIR/f.json"; json_get "$LAB_DIR/f.json" "$2"; }

# 1. Re-key both ways, RTP and RTCP (ports +1).
check "re-key pair programmed" program_pair --with-rtcp \
  --a-key "$CM:$KA" --a-relay-key "$CM:$KRA" --b-key "$GCM:$KB" --b-relay-key "$GCM:$KRB"
sluicectl flows list >"$LAB_DIR/list.txt"
check "listing shows the mode, never a key" bash -c \
  "grep -q rekey '$LAB_DIR/list.txt' && ! grep -qF -e '$KA' -e '${KA:0:16}' '$LAB_DIR/list.txt'"
sluicectl flows get $RELAY_OUT:20000 --json >"$LAB_DIR/get.json"
sluicectl flows get $RELAY_OUT:20000 >>"$LAB_DIR/get.json"
check "get shows suites, never key bytes" bash -c \
  "grep -q AES_CM_128_HMAC_SHA1_80 '$LAB_DIR/get.json' && ! grep -qi -e masterKey -e master_key -e '${KA:0:16}' '$LAB_DIR/get.json'"

sluicectl flows watch --types srtp_auth_failed --count 1 --json >"$LAB_DIR/events.json" 2>&1 &
watch=$!
in_ns "$NS_PBX" recv --bind $PBX:5000 --count 188 --timeout-ms 4000 --suite $GCM --key "$KRB" \
  --json >"$LAB_DIR/pbx.json" &
pbx=$!
in_ns "$NS_PBX" recv --bind $PBX:5001 --rtcp --count 20 --timeout-ms 4000 --suite $GCM \
  --key "$KRB" --json >"$LAB_DIR/pbx_rtcp.json" &
pbx_rtcp=$!
sleep 0.3
# Across the sequence wrap; every 16th packet tampered, every 25th replayed
# (no packet is both).
in_ns "$NS_PHONE" send --to $RELAY_OUT:20000 --bind $PHONE:4000 --count 200 --seq 65450 \
  --interval-us 2000 --suite $CM --key "$KA" --tamper-every 16 --replay-every 25 \
  --json >"$LAB_DIR/phone_send.json"
in_ns "$NS_PHONE" send --to $RELAY_OUT:20001 --bind $PHONE:4001 --rtcp --count 20 \
  --suite $CM --key "$KA" --json >/dev/null
wait $pbx $pbx_rtcp
cat "$LAB_DIR/phone_send.json" "$LAB_DIR/pbx.json" "$LAB_DIR/pbx_rtcp.json"
T=$(json_get "$LAB_DIR/phone_send.json" 'd["tampered"]')
R=$(json_get "$LAB_DIR/phone_send.json" 'd["replayed"]')
check "sender tampered 12 and replayed 8" eq "$T/$R" 12/8
check "PBX got every untampered packet, re-keyed to GCM" \
  eq "$(json_get "$LAB_DIR/pbx.json" 'd["ok"]')" $((200 - T))
check "PBX saw no bad, failed or replayed packet" \
  eq "$(json_get "$LAB_DIR/pbx.json" 'd["bad"]+d["auth_fail"]+d["replay_fail"]+d["other_fail"]')" 0
check "PBX got the SRTCP reports re-keyed" eq "$(json_get "$LAB_DIR/pbx_rtcp.json" 'd["ok"]')" 20
check "relay counted 12 authentication failures" \
  eq "$(flow $RELAY_OUT:20000 'd["crypto"].get("authFailed",0)')" 12
check "relay counted 8 replays" eq "$(flow $RELAY_OUT:20000 'd["crypto"].get("replayed",0)')" 8
check "relay decrypted 188 and encrypted 188" \
  eq "$(flow $RELAY_OUT:20000 'str(d["crypto"]["decrypted"])+"/"+str(d["crypto"]["encrypted"])')" 188/188
check "rollover counter 1 after the wrap, both legs" \
  eq "$(flow $RELAY_OUT:20000 'str(d["crypto"].get("decryptRoc",0))+"/"+str(d["crypto"].get("encryptRoc",0))')" 1/1
sleep 1.5
kill $watch 2>/dev/null; wait $watch 2>/dev/null
check "auth failures reported on the watch stream" grep -qi srtp_auth_failed "$LAB_DIR/events.json"

# The other direction: PBX (GCM) -> phone (AES-CM).
in_ns "$NS_PHONE" recv --bind $PHONE:4000 --count 100 --timeout-ms 4000 --suite $CM --key "$KRA" \
  --json >"$LAB_DIR/phone.json" &
phone=$!
sleep 0.3
in_ns "$NS_PBX" send --to $RELAY_IN:20002 --bind $PBX:5000 --count 100 --suite $GCM --key "$KB" \
  --json >/dev/null
wait $phone
check "phone got 100 packets re-keyed to AES-CM" eq "$(json_get "$LAB_DIR/phone.json" 'd["ok"]')" 100

# 2. A wrong key: everything dropped and counted, nothing reaches the PBX.
in_ns "$NS_PBX" recv --bind $PBX:5000 --count 1 --timeout-ms 1500 --suite $GCM --key "$KRB" \
  --json >"$LAB_DIR/pbx_wrong.json" &
pbx=$!
in_ns "$NS_PHONE" send --to $RELAY_OUT:20000 --bind $PHONE:4000 --count 30 --seq 900 \
  --suite $CM --key "$KWRONG" --json >/dev/null
wait $pbx
check "wrong-key packets do not reach the PBX" eq "$(json_get "$LAB_DIR/pbx_wrong.json" 'd["received"]')" 0
check "wrong-key packets counted" eq "$(flow $RELAY_OUT:20000 'd["crypto"]["authFailed"]')" 42

# 3. The phone re-INVITEs with a new key. Packets it sent under the old key
# (continuing its rollover counter) that are still in flight pass; after its first new-key packet the old key
# is refused.
check "new phone key installed on the live flow" program_pair --with-rtcp \
  --a-key "$CM:$KA2" --a-relay-key "$CM:$KRA" --b-key "$GCM:$KB" --b-relay-key "$GCM:$KRB"
in_ns "$NS_PBX" recv --bind $PBX:5000 --count 40 --timeout-ms 3000 --suite $GCM --key "$KRB" \
  --json >"$LAB_DIR/pbx_rekey.json" &
pbx=$!
sleep 0.3
in_ns "$NS_PHONE" send --to $RELAY_OUT:20000 --bind $PHONE:4000 --count 10 --seq 2000 \
  --ssrc 0x5555 --suite $CM --key "$KA" --json >/dev/null
in_ns "$NS_PHONE" send --to $RELAY_OUT:20000 --bind $PHONE:4000 --count 30 --seq 3000 \
  --ssrc 0x5555 --suite $CM --key "$KA2" --json >/dev/null
in_ns "$NS_PHONE" send --to $RELAY_OUT:20000 --bind $PHONE:4000 --count 5 --seq 4000 \
  --ssrc 0x5555 --suite $CM --key "$KA" --json >/dev/null
wait $pbx
check "in-flight old-key and new-key packets all delivered" \
  eq "$(json_get "$LAB_DIR/pbx_rekey.json" 'd["ok"]')" 40
check "10 accepted under the previous key" \
  eq "$(flow $RELAY_OUT:20000 'd["crypto"].get("previousKeyUsed",0)')" 10
check "old key refused after the switch" eq "$(flow $RELAY_OUT:20000 'd["crypto"]["authFailed"]')" 47

# 4. Legacy PBX: SRTP to the phone, plain RTP to the PBX (decrypt one way,
# encrypt the other).
check "SRTP<->RTP pair programmed" program_pair --a-key "$CM:$KA" --a-relay-key "$GCM:$KB"
in_ns "$NS_PBX" recv --bind $PBX:5000 --count 50 --timeout-ms 3000 --json >"$LAB_DIR/pbx_plain.json" &
pbx=$!
sleep 0.3
in_ns "$NS_PHONE" send --to $RELAY_OUT:20000 --bind $PHONE:4000 --count 50 --seq 7000 \
  --suite $CM --key "$KA" --json >/dev/null
wait $pbx
check "PBX got plain RTP (decrypt mode)" \
  eq "$(json_get "$LAB_DIR/pbx_plain.json" 'str(d["ok"])+"/"+str(d["bad"])')" 50/0
in_ns "$NS_PHONE" recv --bind $PHONE:4000 --count 50 --timeout-ms 3000 --suite $GCM --key "$KB" \
  --json >"$LAB_DIR/phone_srtp.json" &
phone=$!
sleep 0.3
in_ns "$NS_PBX" send --to $RELAY_IN:20002 --bind $PBX:5000 --count 50 --json >/dev/null
wait $phone
check "phone got SRTP from plain RTP (encrypt mode)" eq "$(json_get "$LAB_DIR/phone_srtp.json" 'd["ok"]')" 50
check "modes shown per flow" \
  eq "$(flow $RELAY_OUT:20000 'd["crypto"]["mode"]')/$(flow $RELAY_IN:20002 'd["crypto"]["mode"]')" \
  CRYPTO_MODE_DECRYPT/CRYPTO_MODE_ENCRYPT
check "dataplane log holds no key" bash -c "! grep -qF -e '$KA' -e '$KB' -e '$KRA' '$LAB_DIR/dataplane.log'"
