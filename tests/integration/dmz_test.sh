#!/usr/bin/env bash
# The relay in a DMZ behind a 1:1 NAT (lab/lab.sh LAB_DMZ=1), the second of
# the two placements operators deploy: its outside port has a private
# address (10.0.0.1), a router namespace translates the public address
# (192.0.2.1) to it with nftables, and the phone is elsewhere on the
# Internet (203.0.113.10). Real SIPp peers register, call and are called
# through the NAT over UDP and TCP; checks that SIP and SDP toward the
# phones carry only the public address, that the phone's real address is
# what the relay sees and latches, and that media crosses the NAT both ways.
export LAB_DMZ=1  # read when lab.sh is sourced
source "$(dirname "$0")/lib.sh"
if ! command -v nft >/dev/null; then
  echo "SKIP: nft is missing (scripts/setup.sh installs nftables)"
  exit 77
fi
sip_lab_start
export SIPP_TIMEOUT=20
leaks() { grep -c -F "$RELAY_OUT_LOCAL" "$SIPP_LOG_ROOT/$1/messages.log"; }  # the private address, seen by a peer
# The first message in a SIPp messages.log whose first line matches a regex.
message() { python3 - "$SIPP_LOG_ROOT/$1/messages.log" "$2" <<'PY'
import re, sys
for block in re.split(r"^-{20,}.*$", open(sys.argv[1]).read(), flags=re.M):
    m = re.search(r"^(?:" + sys.argv[2] + r").*", block, re.M | re.S)
    if m:
        print(m.group(0).replace("\r", "").strip())
        break
PY
}

echo "== REGISTER from the Internet to the relay's public address"
pbx reg pbx_registrar udp $PBX 5060 -
sleep 0.5
SIPP_FG=1 phone regph phone_register udp $PHONE 5070 $RELAY_OUT:5060 -s alice
check "phone registered through the NAT" both_ok regph reg
check "the binding is the phone's real address (the NAT translates only the relay's)" eq \
  "$(sluicectl --json registrations list | python3 -c "import json,sys; r=json.load(sys.stdin)['registrations']; print(r[0]['source']['address'])")" "$PHONE"
check "SIP crossed the NAT both ways" eq "$([ "$(nat_packets sip_in)" -ge 1 ] && [ "$(nat_packets sip_out)" -ge 1 ] && echo yes)" yes

echo "== call from the phone: RTP both ways through the NAT, hold, resume, BYE"
pbx pbx1 pbx_answer udp $PBX 5060 -
sleep 0.5
media_in0=$(nat_packets media_in) media_out0=$(nat_packets media_out)
phone ph1 phone_call udp $PHONE 5070 $RELAY_OUT:5060 -s 100
sleep 2
out_pk=$(flow_packets $RELAY_OUT_LOCAL)
check "RTP phone->PBX reached the relay's private address ($out_pk packets)" ge "$out_pk" 20
check "the outside flows latched to the phone's real address" eq "$(sluicectl --json flows list | python3 -c "
import json,sys
fl=[f for f in json.load(sys.stdin).get('flows',[]) if f['spec']['key']['localAddress']=='$RELAY_OUT_LOCAL' and f.get('latchedPeer')]
print(sorted(set(f['latchedPeer']['address'] for f in fl)))")" "['$PHONE']"
check "call with hold/resume completed at both ends" both_ok ph1 pbx1
media_in=$(($(nat_packets media_in) - media_in0)) media_out=$(($(nat_packets media_out) - media_out0))
check "media crossed the NAT both ways ($media_in in, $media_out out)" eq \
  "$([ $media_in -ge 20 ] && [ $media_out -ge 20 ] && echo yes)" yes
check "the phone was offered media on the public address, in the 200 and both re-INVITE answers" eq \
  "$(tr -d '\r' <"$SIPP_LOG_ROOT/ph1/messages.log" | grep -c "^c=IN IP4 $RELAY_OUT\$")" 3
check "the 200's Contact (the relay's dialog) is on the public address" eq \
  "$(message ph1 'SIP/2.0 200 OK' | grep '^Contact:')" "Contact: <sip:100@$RELAY_OUT:5060>"
check "the private address never reached the phone" eq "$(leaks ph1)" 0
check "nor the PBX (which sees the relay's inside address)" eq "$(leaks pbx1)" 0

echo "== call from the PBX to the phone over its NAT binding"
registered_uas reg2 ph4 5072 carol
pbx pbx4 pbx_call udp $PBX 5062 $RELAY_IN:5060 -s carol
check "the inbound call reached the phone through the NAT" both_ok pbx4 ph4
check "the INVITE came with the public address in Via, Contact and SDP" eq \
  "$(message ph4 'INVITE ' | grep -E "^(Via|Contact|c=)" | sed 's/;branch=.*//')" \
  "$(printf 'Via: SIP/2.0/UDP %s:5060\nContact: <sip:pbx@%s:5060>\nc=IN IP4 %s' $RELAY_OUT $RELAY_OUT $RELAY_OUT)"
check "the private address never reached the phone" eq "$(leaks ph4)" 0
sipp_stop "$SIPP_LOG_ROOT/reg2"

echo "== TCP from the phone through the NAT"
call_through pbx5 pbx_answer ph5 phone_call tcp 5076 103
check "call over TCP with hold/resume through the NAT" both_ok ph5 pbx5
check "the private address never reached the phone" eq "$(leaks ph5)" 0
check "no call and no flow left" eq "$(calls_count) $(flows_count)" "0 0"
