#!/usr/bin/env bash
# SRTP calls between real phones through the whole appliance: baresip (an
# independent SIP/SRTP stack, Debian's baresip-core) as the teleworker phone
# outside and as the PBX endpoint inside, sluice-controlplane and
# sluice-dataplane in between.
#   1. SRTP mandatory on the teleworker side, plain RTP on the LAN side: the
#      dataplane decrypts toward the PBX and encrypts toward the phone.
#   2. SRTP on both sides: the relay gives each leg its own keys, so the
#      dataplane re-keys; four different SDES keys are seen on the wire.
#   3. The phone registers through sluice (SIPp registrar as the PBX's
#      registrar) and the PBX endpoint calls it over its NAT binding.
#   4. The same over mutual TLS (the phone's client certificate from the
#      lab CA): the PBX's call reaches the phone over the phone's own TLS
#      connection; then the relay's certificate is renewed and put in
#      service with SIGHUP (a bad one is refused, the good one kept), the
#      expiry alarm follows it, and the phone's connection carries a second
#      call.
#   5. Teleworker to teleworker through a PBX in direct-media mode (a
#      record-routing proxy that passes SDP through): each call's inside SDP
#      names the other call's relay port, so the dataplane relays media to
#      its own inside address and takes it back in (NAT loopback), SRTP
#      decrypted with one phone's key and encrypted with the other's.
# Each time the media must arrive and decode at both ends: every phone sends
# its own tone, and each end's decoded audio must be the other's tone.
source "$(dirname "$0")/lib.sh"
source "$ROOT/tests/baresip/baresip.sh"
source "$ROOT/tests/sipp/sipp.sh"
if ! command -v baresip >/dev/null || ! command -v sipp >/dev/null; then
  echo "SKIP: baresip or sipp is missing"
  trap - EXIT
  exit 77
fi

TONE_PHONE=440
TONE_PBX=1000
HOLD=3
BS=()  # baresip instance directories, stopped on exit
on_exit() {
  local rc=$? d
  for d in "${BS[@]}"; do
    [ -f "$d/pid" ] && baresip_stop "$d"
    if [ "$FAILS" -ne 0 ] || [ $rc -ne 0 ]; then
      echo "--- $d/log"
      grep -v -E '^(\[0:|$)' "$d/log" 2>/dev/null | tail -25
    fi
  done
  (exit $rc)
  finish
}
trap on_exit EXIT
quiet() { "$@" >/dev/null; }
has() { grep -q -E -- "$2" "$1" || { echo "     /$2/ not in $1" >&2; return 1; }; }
hasnt() { ! grep -q -E -- "$2" "$1" || { echo "     /$2/ found in $1" >&2; return 1; }; }
near() {  # VALUE TARGET PERCENT
  local v=${1:-0}
  [ $((v * 100)) -ge $(($2 * (100 - $3))) ] && [ $((v * 100)) -le $(($2 * (100 + $3))) ] ||
    { echo "     expected $2 +-$3%, got '${1:-}'" >&2; return 1; }
}
flow_field() {  # ADDR EXPR: EXPR on the one flow keyed at ADDR with an even port (RTP)
  sluicectl --json flows list | python3 -c "
import json,sys
fl=[f for f in json.load(sys.stdin).get('flows',[]) if f['spec']['key']['localAddress']=='$1' and int(f['spec']['key']['localPort'])%2==0]
f=fl[0] if fl else {}
c=f.get('crypto',{})
print($2)"
}

lab_up || exit 1
lab_start || exit 1
SIPP_LOG_ROOT=$LAB_DIR/sipp
mkdir -p "$SIPP_LOG_ROOT"
lab_sipp_wrappers phone pbx

# media_checks NAME CALLER CALLEE: after the caller hung up
media_checks() {
  local name=$1 a=$2 b=$3 ta tb ra rb fa la fb lb
  check "$name: caller's call closed" quiet baresip_wait_event "$a" CALL_CLOSED 5
  check "$name: callee's call closed (BYE through sluice)" quiet baresip_wait_event "$b" CALL_CLOSED 5
  baresip_wait_log "$a" '^errors:' 3 && baresip_wait_log "$b" '^errors:' 3
  ta=$(baresip_tx_packets "$a"); tb=$(baresip_tx_packets "$b")
  ra=$(baresip_rx_packets "$a"); rb=$(baresip_rx_packets "$b")
  echo "     caller: tx=$ta rx=$ra   callee: tx=$tb rx=$rb"
  check "$name: caller received >= 100 packets" ge "${ra:-0}" 100
  check "$name: callee received >= 100 packets" ge "${rb:-0}" 100
  read -r fa la _ < <(baresip_rx_tone "$a")
  read -r fb lb _ < <(baresip_rx_tone "$b")
  echo "     decoded audio: caller hears ${fa:-?} Hz (rms ${la:-?}), callee hears ${fb:-?} Hz (rms ${lb:-?})"
  check "$name: the caller decoded the callee's tone" near "${fa:-0}" "$(cat "$b/tone")" 3
  check "$name: the callee decoded the caller's tone" near "${fb:-0}" "$(cat "$a/tone")" 3
  check "$name: no SRTP failures at the caller" eq "$(baresip_srtp_errors "$a")" 0
  check "$name: no SRTP failures at the callee" eq "$(baresip_srtp_errors "$b")" 0
}

# new_phone DIR NAME SIP_IP:PORT ENC TONE [REGISTRAR]
new_phone() {
  BARESIP_TONE=$5 baresip_config "$1" "$2" "$3" "$4" "${6:-}" || return 1
  echo "$5" >"$1/tone"
  BS+=("$1")
}

# direct_call NAME INSIDE_POLICY PBX_ENC: phone -> sluice -> PBX endpoint
direct_call() {
  local name=$1 inside=$2 penc=$3 ph=$LAB_DIR/$1-phone pbx=$LAB_DIR/$1-pbx
  cp_stop
  LAB_SRTP_OUTSIDE=MANDATORY LAB_SRTP_INSIDE=$inside lab_cp_conf "$LAB_DIR/$name.conf"
  cp_start "$LAB_DIR/$name.conf" || return 1
  new_phone "$ph" phone $PHONE:5080 srtp-mand $TONE_PHONE || return 1
  new_phone "$pbx" pbx $PBX:5060 "$penc" $TONE_PBX || return 1
  check "$name: phone starts" baresip_start "$NS_PHONE" "$ph" 40 || return 1
  check "$name: PBX endpoint starts" baresip_start "$NS_PBX" "$pbx" 40 || return 1
  check "$name: the phone dials the PBX through sluice" baresip_dial "$ph" "sip:pbx@$RELAY_OUT"
  check "$name: established at the phone" quiet baresip_wait_event "$ph" CALL_ESTABLISHED 8
  check "$name: established at the PBX (auto answer)" quiet baresip_wait_event "$pbx" CALL_ESTABLISHED 8
  check "$name: the phone runs SRTP" has "$ph/events.jsonl" '"CALL_MENC".*AES_CM_128_HMAC_SHA1_80'
  sleep $HOLD
  sluicectl calls list
  sluicectl flows list
  if [ "$inside" = OFF ]; then
    check "$name: the PBX got plain RTP/AVP, no key" hasnt "$pbx/log" '^a=crypto'
    check "$name: phone->PBX flow decrypts" eq "$(flow_field $RELAY_OUT "c.get('mode','')")" CRYPTO_MODE_DECRYPT
    check "$name: PBX->phone flow encrypts" eq "$(flow_field $RELAY_IN "c.get('mode','')")" CRYPTO_MODE_ENCRYPT
    check "$name: the phone saw two keys (its own, the relay's)" eq \
      "$(grep -ho 'inline:[A-Za-z0-9+/=]*' "$ph/log" | sort -u | wc -l)" 2
  else
    check "$name: the PBX runs SRTP" has "$pbx/events.jsonl" '"CALL_MENC".*AES_CM_128_HMAC_SHA1_80'
    check "$name: phone->PBX flow re-keys" eq "$(flow_field $RELAY_OUT "c.get('mode','')")" CRYPTO_MODE_REKEY
    check "$name: PBX->phone flow re-keys" eq "$(flow_field $RELAY_IN "c.get('mode','')")" CRYPTO_MODE_REKEY
    # the phone's, the relay's to the phone, the relay's to the PBX, the
    # PBX's (the relay also offers the PBX a GCM key, which it declines)
    check "$name: four different AES-CM keys on the two legs" eq \
      "$(grep -ho 'AES_CM_128_HMAC_SHA1_80 inline:[A-Za-z0-9+/=]*' "$ph/log" "$pbx/log" | sort -u | wc -l)" 4
  fi
  check "$name: the dataplane decrypted the phone's SRTP" ge "$(flow_field $RELAY_OUT "int(c.get('decrypted',0))")" 100
  check "$name: no SRTP authentication failure on the RTP flows" eq \
    "$(flow_field $RELAY_OUT "int(c.get('authFailed',0))") $(flow_field $RELAY_IN "int(c.get('authFailed',0))")" "0 0"
  check "$name: the phone hangs up" baresip_hangup "$ph"
  media_checks "$name" "$ph" "$pbx"
  baresip_stop "$ph"
  baresip_stop "$pbx"
  check "$name: call and flows gone" eq "$(calls_count) $(flows_count)" "0 0"
}

echo "== 1: SRTP mandatory outside, plain RTP inside"
direct_call srtp-plain OFF none
echo "== 2: SRTP on both sides, a key per leg"
direct_call srtp-srtp MANDATORY srtp-mand

echo "== 3: the phone registers through sluice; the PBX calls it"
ph=$LAB_DIR/reg-phone pbx=$LAB_DIR/reg-pbx
cp_stop
LAB_SRTP_OUTSIDE=MANDATORY LAB_SRTP_INSIDE=OFF lab_cp_conf "$LAB_DIR/reg.conf"
cp_start "$LAB_DIR/reg.conf" || exit 1
SIPP_BIN=$LAB_DIR/sipp-pbx sipp_run reg pbx_registrar udp $PBX 5060 - -m 2 -deadcall_wait 0
sleep 0.5
new_phone "$ph" alice $PHONE:5080 srtp-mand $TONE_PHONE $RELAY_OUT || exit 1
new_phone "$pbx" pbx $PBX:5062 none $TONE_PBX || exit 1
check "reg: phone starts" baresip_start "$NS_PHONE" "$ph" 40 || exit 1
registered() { sluicectl registrations list | grep -q "sip:alice@$RELAY_OUT"; }
for _ in $(seq 1 50); do registered && break; sleep 0.1; done
check "reg: the phone registered through sluice (binding listed)" registered
check "reg: the phone got the 200 (its Contact, not the relay's)" \
  has "$ph/log" '^Contact: <sip:alice-[^@]*@'$PHONE':5080>;expires=[0-9]+.?$'
check "reg: PBX endpoint starts" baresip_start "$NS_PBX" "$pbx" 40 || exit 1
check "reg: the PBX dials the teleworker" baresip_dial "$pbx" "sip:alice@$RELAY_IN"
check "reg: established at the PBX" quiet baresip_wait_event "$pbx" CALL_ESTABLISHED 8
check "reg: established at the phone (auto answer)" quiet baresip_wait_event "$ph" CALL_ESTABLISHED 8
check "reg: the phone runs SRTP" has "$ph/events.jsonl" '"CALL_MENC".*AES_CM_128_HMAC_SHA1_80'
sleep $HOLD
check "reg: the PBX hangs up" baresip_hangup "$pbx"
media_checks reg "$pbx" "$ph"
baresip_stop "$ph"
check "reg: quitting unregisters through sluice" sipp_ok "$SIPP_LOG_ROOT/reg" 10
check "reg: no binding left" eq "$(sluicectl --json registrations list | grep -c alice)" 0
baresip_stop "$pbx"

echo "== 4: the phone over mutual TLS; the PBX calls it over its connection; certificate renewal"
ph=$LAB_DIR/tls-phone pbx=$LAB_DIR/tls-pbx tls=$LAB_DIR/tls
cat "$tls/phone.crt" "$tls/phone.key" >"$tls/phone.pem"
SIPP_BIN=$LAB_DIR/sipp-pbx sipp_run tlsreg pbx_registrar udp $PBX 5060 - -m 2 -deadcall_wait 0
sleep 0.5
BARESIP_TLS_CERT=$tls/phone.pem BARESIP_TLS_CA=$tls/ca.crt \
  new_phone "$ph" alice $PHONE:5086 srtp-mand $TONE_PHONE "$RELAY_OUT:5061;transport=tls" || exit 1
new_phone "$pbx" pbx $PBX:5064 none $TONE_PBX || exit 1
check "tls: phone starts" baresip_start "$NS_PHONE" "$ph" 60 || exit 1
tls_registered() {
  sluicectl --json registrations list | python3 -c "
import json,sys
r=[x for x in json.load(sys.stdin).get('registrations',[]) if 'alice' in x['aor']]
sys.exit(0 if r and r[0].get('transport','')=='TRANSPORT_TLS' else 1)"
}
for _ in $(seq 1 50); do tls_registered && break; sleep 0.1; done
check "tls: the phone registered over TLS with its client certificate" tls_registered
sluicectl registrations list
check "tls: PBX endpoint starts" baresip_start "$NS_PBX" "$pbx" 60 || exit 1
check "tls: the PBX dials the teleworker" baresip_dial "$pbx" "sip:alice@$RELAY_IN"
check "tls: established at the PBX" quiet baresip_wait_event "$pbx" CALL_ESTABLISHED 8
check "tls: established at the phone (the INVITE came down its TLS connection)" \
  quiet baresip_wait_event "$ph" CALL_ESTABLISHED 8
check "tls: the phone runs SRTP" has "$ph/events.jsonl" '"CALL_MENC".*AES_CM_128_HMAC_SHA1_80'
sleep $HOLD
check "tls: the PBX hangs up" baresip_hangup "$pbx"
media_checks tls "$pbx" "$ph"

# The relay's certificate as a phone sees it (verified against the lab CA).
relay_cert() {
  in_phone openssl s_client -connect "$RELAY_OUT:5061" -CAfile "$tls/ca.crt" -cert "$tls/phone.crt" \
    -key "$tls/phone.key" -verify_return_error </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256 2>/dev/null
}
old_cert=$(relay_cert)
check "tls: the relay's certificate verifies against the CA" test -n "$old_cert"
check "tls: the lab's 2-day certificate raised the expiry alarm" ge "$(counter tls_expiry_warnings)" 1
check "tls: one day left on it" eq "$(counter tls_certificate_days_left)" 1
warnings=$(counter tls_expiry_warnings)
(
  cd "$tls" &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=relay.lab.example" -keyout relay2.key \
      -out relay2.csr >/dev/null 2>&1 &&
    openssl x509 -req -in relay2.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -out relay2.crt >/dev/null 2>&1 &&
    cp stranger.key relay.key  # first a bad renewal: a key that does not match
)
kill -HUP "$(cat "$LAB_DIR/controlplane.pid")"
check "tls: a renewal with a mismatched key is refused" \
  wait_for 5 "grep -q 'TLS reload failed, old certificates kept' $LAB_DIR/controlplane.log"
check "tls: the old certificate stays in service" eq "$(relay_cert)" "$old_cert"
cp "$tls/relay2.crt" "$tls/relay.crt" && cp "$tls/relay2.key" "$tls/relay.key"
kill -HUP "$(cat "$LAB_DIR/controlplane.pid")"
check "tls: SIGHUP reloads the renewed certificate" \
  wait_for 5 "grep -q 'TLS certificates reloaded' $LAB_DIR/controlplane.log"
new_cert=$(relay_cert)
echo "     before: ${old_cert#*=}"
echo "     after:  ${new_cert#*=}"
check "tls: new connections get the renewed certificate" test -n "$new_cert" -a "$new_cert" != "$old_cert"
days=$(counter tls_certificate_days_left)
check "tls: 29-30 days left on the renewed one ($days)" test "$days" -ge 29 -a "$days" -le 30
check "tls: no alarm for a 30-day certificate" eq "$(counter tls_expiry_warnings)" "$warnings"
check "tls: the PBX calls again (the phone's connection survived the reload)" baresip_dial "$pbx" "sip:alice@$RELAY_IN"
check "tls: second call established at the phone" quiet baresip_wait_event "$ph" CALL_ESTABLISHED 8 2
check "tls: the PBX hangs up the second call" baresip_hangup "$pbx"
check "tls: second call closed at the phone" quiet baresip_wait_event "$ph" CALL_CLOSED 5 2
baresip_stop "$ph"
check "tls: quitting unregisters through sluice" sipp_ok "$SIPP_LOG_ROOT/tlsreg" 10
baresip_stop "$pbx"

echo "== 5: teleworker to teleworker through a direct-media PBX (NAT loopback)"
a=$LAB_DIR/loop-alice b=$LAB_DIR/loop-bob
cp_stop
LAB_SRTP_OUTSIDE=MANDATORY LAB_SRTP_INSIDE=OFF lab_cp_conf "$LAB_DIR/loop.conf"
cp_start "$LAB_DIR/loop.conf" || exit 1
in_pbx timeout 60 python3 "$ROOT/tests/integration/proxy_pbx.py" --bind $PBX:5060 --seconds 50 \
  --trace "$LAB_DIR/proxy_pbx.trace"   >"$LAB_DIR/proxy_pbx.log" 2>&1 &
sleep 0.5
hairpinned() { sluicectl stats --json | python3 -c 'import json,sys; print(sum(int(w.get("hairpinned",0)) for w in json.load(sys.stdin)["workers"]))'; }
hp0=$(hairpinned)
new_phone "$a" alice $PHONE:5080 srtp-mand $TONE_PHONE $RELAY_OUT || exit 1
new_phone "$b" bob $PHONE:5082 srtp-mand $TONE_PBX $RELAY_OUT || exit 1
check "loop: alice starts" baresip_start "$NS_PHONE" "$a" 40 || exit 1
check "loop: bob starts" baresip_start "$NS_PHONE" "$b" 40 || exit 1
both_registered() { [ "$(sluicectl registrations list | grep -c -E "sip:(alice|bob)@$RELAY_OUT")" -ge 2 ]; }
check "loop: both phones registered through sluice" wait_for 5 both_registered
check "loop: alice dials bob" baresip_dial "$a" "sip:bob@$RELAY_OUT"
check "loop: established at alice" quiet baresip_wait_event "$a" CALL_ESTABLISHED 8
check "loop: established at bob (auto answer)" quiet baresip_wait_event "$b" CALL_ESTABLISHED 8
check "loop: two calls through the relay" eq "$(calls_count)" 2
check "loop: the PBX passed the relay's inside address through to the second call" \
  has "$LAB_DIR/proxy_pbx.log" '"method": "INVITE", "to": "sip:bob[^"]*", .*"sdp": "'$RELAY_IN':[0-9]+"'
to_self() { sluicectl --json flows list | python3 -c "
import json,sys
print(sum(f['spec'].get('destination',{}).get('address')=='$RELAY_IN' for f in json.load(sys.stdin).get('flows',[])))"; }
check "loop: each call's inside RTP and RTCP flows are addressed to the other call's relay ports (4)" eq "$(to_self)" 4
sleep $HOLD
hp=$(( $(hairpinned) - hp0 ))
echo "     frames relayed to the relay's own address: $hp"
check "loop: the dataplane took media back in from its own address (>= 200)" ge "$hp" 200
check "loop: alice hangs up" baresip_hangup "$a"
media_checks loop "$a" "$b"
check "loop: no hairpin loop drop" eq "$(sluicectl stats --json | grep -c hairpin_loop)" 0
check "loop: both calls and their flows gone" wait_for 5 '[ "$(calls_count) $(flows_count)" = "0 0" ]'
baresip_stop "$a"
baresip_stop "$b"
