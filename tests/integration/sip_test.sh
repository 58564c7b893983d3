#!/usr/bin/env bash
# The whole appliance with real SIP peers: sluice-dataplane and
# sluice-controlplane in the lab, SIPp as teleworker phone (outside) and as
# PBX (inside), a Python TLS client for mutual TLS. Checks signalling end to
# end (REGISTER, calls both ways, hold/resume, BYE from either side, CANCEL),
# RTP through the dataplane, the operator API, and that hostile input from
# one source does not stop calls from another.
source "$(dirname "$0")/lib.sh"
export LAB_TTL_RESET=50  # relayed media leaves with TTL 50 (checked below)
sip_lab_start
export SIPP_TIMEOUT=20

echo "== REGISTER through the relay (UDP)"
pbx reg pbx_registrar udp $PBX 5060 -
sleep 0.5
SIPP_FG=1 phone regph phone_register udp $PHONE 5070 $RELAY_OUT:5060 -s alice
check "phone registered through sluice" both_ok regph reg
check "the binding is listed" eq "$(sluicectl --json registrations list | python3 -c "import json,sys; r=json.load(sys.stdin)['registrations']; print(r[0]['aor'], r[0]['source']['address'])")" "sip:alice@$RELAY_OUT $PHONE"

echo "== call from the teleworker, RTP both ways, hold, resume, BYE from the phone (UDP)"
pbx pbx1 pbx_answer udp $PBX 5060 -
sleep 0.5
phone ph1 phone_call udp $PHONE 5070 $RELAY_OUT:5060 -s 100
sleep 2
check "the call is listed while it runs" eq "$(calls_count)" 1
sluicectl calls list
out_pk=$(flow_packets $RELAY_OUT); in_pk=$(flow_packets $RELAY_IN)
check "RTP phone->PBX crossed the dataplane ($out_pk packets)" ge "$out_pk" 20
check "RTP PBX->phone crossed the dataplane ($in_pk packets)" ge "$in_pk" 20
check "call with hold/resume completed at both ends" both_ok ph1 pbx1
check "the call is gone afterwards" eq "$(calls_count)" 0
check "its flows are removed" eq "$(flows_count)" 0
check "two re-INVITEs relayed" ge "$(grep -c '^INVITE' "$SIPP_LOG_ROOT/pbx1/messages.log")" 3
check "a phone's P-Asserted-Identity never reaches the PBX, its P-Preferred-Identity does" \
  eq "$(grep -c spoofed.example "$SIPP_LOG_ROOT/pbx1/messages.log") $(grep -c -m1 'P-Preferred-Identity: <sip:alice@teleworker.example>' "$SIPP_LOG_ROOT/pbx1/messages.log")" "0 1"

echo "== BYE from the PBX side"
call_through pbx2 pbx_answer_bye ph2 phone_call_wait_bye udp 5070 101
check "PBX hang-up reaches the phone" both_ok ph2 pbx2

echo "== CANCEL while ringing"
call_through pbx3 pbx_ring_cancel ph3 phone_cancel udp 5070 102
check "CANCEL relayed, 487 back to the phone" both_ok ph3 pbx3
check "no call left after CANCEL" eq "$(calls_count)" 0

echo "== offers on connection addresses the dataplane cannot relay to (IPv6, a host name): 488, nothing reaches the PBX"
SIPP_FG=1 phone ph11 phone_offer_refused udp $PHONE 5070 $RELAY_OUT:5060 -s 109 -key conn "IP6 2001:db8::5"
check "an IPv6 offer is refused with 488" sipp_ok "$SIPP_LOG_ROOT/ph11"
SIPP_FG=1 phone ph12 phone_offer_refused udp $PHONE 5070 $RELAY_OUT:5060 -s 109 -key conn "IP4 phone.example.net"
check "an offer on a host name is refused with 488" sipp_ok "$SIPP_LOG_ROOT/ph12"
check "both counted; no call, no flow batch" eq \
  "$(counter sdp_unsupported_address) $(calls_count) $(counter flow_push_failures)" "2 0 0"

echo "== offerless INVITE with reliable provisionals: the offer in a 183 (100rel), its answer in the PRACK"
pbx pbx6 pbx_prack udp $PBX 5060 -
sleep 0.5
phone ph6 phone_prack udp $PHONE 5070 $RELAY_OUT:5060 -s 104
sleep 2
out_pk=$(flow_packets $RELAY_OUT); in_pk=$(flow_packets $RELAY_IN)
check "RTP phone->PBX crossed the dataplane after the PRACK ($out_pk packets)" ge "$out_pk" 20
check "RTP PBX->phone crossed the dataplane after the PRACK ($in_pk packets)" ge "$in_pk" 20
check "183, PRACK, 200, 200, ACK, BYE at both ends" both_ok ph6 pbx6
check "the phone got the offer on the relay's outside address" grep -q "c=IN IP4 $RELAY_OUT" "$SIPP_LOG_ROOT/ph6/messages.log"
check "the PBX got the answer in the PRACK, on the relay's inside address" python3 - "$SIPP_LOG_ROOT/pbx6/messages.log" "$RELAY_IN" <<'PY'
import re, sys
log, relay = open(sys.argv[1]).read(), sys.argv[2]
pracks = [b for b in log.split("\n-----") if re.search(r"^PRACK ", b, re.M)]
sys.exit(0 if pracks and all(("c=IN IP4 " + relay) in b and "RAck: 1 " in b for b in pracks) else 1)
PY
check "counted as a PRACK answer" eq "$(counter prack_answers)" 1
check "no call left" eq "$(calls_count)" 0

echo "== session timer imposed by the relay (RFC 4028): the PBX refreshes, the phone never sees it, the relay ends the call when refreshes stop"
pbx pbx7 pbx_timer udp $PBX 5060 -
sleep 0.5
phone ph7 phone_timer udp $PHONE 5070 $RELAY_OUT:5060 -s 105
check "14400 s asked of the PBX, its refresh confirmed, BYE from the relay at both ends; no timer headers at the phone" both_ok ph7 pbx7
check "one refresh answered, one session ended by its timer" eq "$(counter session_refreshes) $(counter session_timer_expired)" "1 1"
check "no call left" eq "$(calls_count)" 0

echo "== session timer the relay refreshes itself: the PBX names the relay refresher (refresher=uac), the phone never sees a refresh"
pbx pbx8 pbx_timer_relay udp $PBX 5060 -
sleep 0.5
phone ph8 phone_call_wait_bye udp $PHONE 5070 $RELAY_OUT:5060 -s 107
check "two UPDATE refreshes from the relay kept the call past its 4 s interval; the PBX's BYE reached the phone" both_ok ph8 pbx8
check "two refreshes sent, no further session expired" eq "$(counter session_refreshes_sent) $(counter session_timer_expired)" "2 1"
check "no UPDATE reached the phone" eq "$(grep -c '^UPDATE' "$SIPP_LOG_ROOT/ph8/messages.log")" 0
check "no call left" eq "$(calls_count)" 0

echo "== the same with a PBX that allows no UPDATE: the relay refreshes with re-INVITEs carrying the SDP it settled, unchanged"
sent0=$(counter session_refreshes_sent)
pbx pbx9 pbx_timer_reinvite udp $PBX 5060 -
sleep 0.5
phone ph9 phone_call_wait_bye udp $PHONE 5070 $RELAY_OUT:5060 -s 107
# The flows towards the PBX (keyed at the relay's outside address): their
# destination ports, RTP and RTCP.
to_pbx_ports() { sluicectl --json flows list | python3 -c "
import json,sys
print(' '.join(str(p) for p in sorted(f['spec']['destination']['port'] for f in json.load(sys.stdin).get('flows',[])
                                      if f['spec']['key']['localAddress']=='$RELAY_OUT')))"; }
check "the PBX moved its media in its second refresh answer: the flows towards it follow (port 6100, RTCP 6101)" \
  wait_for 10 '[ "$(to_pbx_ports)" = "6100 6101" ]'
check "two re-INVITE refreshes from the relay kept the call past its 4 s interval; the PBX's BYE reached the phone" both_ok ph9 pbx9
check "two refreshes sent, both re-INVITEs, both answers taken, no further session expired" eq \
  "$(($(counter session_refreshes_sent) - sent0)) $(counter session_refresh_reinvites_sent) $(counter session_refresh_answers_taken) $(counter session_timer_expired)" "2 2 2 1"
check "each refresh carried the first INVITE's SDP byte for byte (same o= version), on the relay's inside address" \
  same_invite_sdp "$SIPP_LOG_ROOT/pbx9/messages.log" 3 "$RELAY_IN"
check "no refresh reached the phone (its only INVITE is its own)" eq "$(grep -c '^INVITE' "$SIPP_LOG_ROOT/ph9/messages.log")" 1
check "no call left" eq "$(calls_count)" 0

echo "== the PBX switches codecs in its answer to the relay's refresh re-INVITE: the phone is offered the change"
pbx pbx14 pbx_codec_refresh udp $PBX 5060 -
sleep 0.5
phone ph14 phone_codec_refresh udp $PHONE 5070 $RELAY_OUT:5060 -s 107
check "the PBX's switch to PCMA was offered to the phone and answered" \
  wait_for 6 '[ "$(counter codec_changes_in_refresh) $(counter codec_changes_relayed) $(counter codec_changes_not_relayed)" = "1 1 0" ]'
check "the operator sees the call on PCMA" eq "$(sluicectl --json calls list | python3 -c "
import json,sys
print(json.load(sys.stdin)['calls'][0]['streams'][0]['codecs'])")" "['8 PCMA/8000', '101 telephone-event/8000']"
check "both ends completed (the scenarios check PCMA in the relay's re-INVITE)" both_ok ph14 pbx14
check "the phone got one INVITE from the relay, the PBX none but its refresh" eq \
  "$(grep -c '^INVITE' "$SIPP_LOG_ROOT/ph14/messages.log") $(grep -c '^INVITE' "$SIPP_LOG_ROOT/pbx14/messages.log")" "2 2"
check "no call left" eq "$(calls_count)" 0

echo "== audio and video call: DSCP per stream (EF 46 audio, AF41 34 video), TTL reset, SIP on CS3"
pbx pbxv pbx_video udp $PBX 5060 -
sleep 0.5
phone phv phone_video udp $PHONE 5070 $RELAY_OUT:5060 -s 106
wait_for 5 '[ "$(flows_count)" -ge 8 ]'
sluicectl --json flows list >"$LAB_DIR/video_flows.json"
check "audio flows marked EF, video flows AF41, all with TTL reset to 50" python3 - "$LAB_DIR/video_flows.json" <<'PY'
import json, sys
flows = json.load(open(sys.argv[1]))["flows"]
video = {6000, 6001, 6002, 6003}  # the phone's and the PBX's video RTP/RTCP ports
ok = len(flows) == 8
for f in flows:
    s = f["spec"]
    want = 34 if s["expectedPeer"]["port"] in video or s["destination"]["port"] in video else 46
    if s.get("dscp") != want or s.get("ttlPolicy") != "TTL_POLICY_RESET" or s.get("ttlValue") != 50:
        print("     flow", s["key"], "dscp", s.get("dscp"), s.get("ttlPolicy"), s.get("ttlValue"), file=sys.stderr)
        ok = False
sys.exit(0 if ok else 1)
PY
vport=$(python3 -c "
import json,sys
for f in json.load(open(sys.argv[1]))['flows']:
    s=f['spec']
    if s['key']['localAddress']=='$RELAY_OUT' and s['expectedPeer']['port']==6000: print(s['key']['localPort'])" "$LAB_DIR/video_flows.json")
rtp_peer --netns "$NS_PBX" --bind $PBX:6002 --tos --wait 4 --expect 20 >"$LAB_DIR/video_pbx.json" &
vrx=$!
sleep 0.3
rtp_peer --netns "$NS_PHONE" --bind $PHONE:6000 --to "$RELAY_OUT:${vport:-1}" --count 20 --pps 100 --pt 96 --linger 0.2 >/dev/null
wait $vrx
check "video RTP reached the PBX with DSCP 34 (TOS 136) and TTL 50" \
  eq "$(json_get "$LAB_DIR/video_pbx.json" 'd["received"], d["tos"], d["ttl"]')" "20 [136] [50]"
opt=$(printf 'OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:5098;branch=z9hG4bKdscp1\r\nFrom: <sip:probe@%s>;tag=d1\r\nTo: <sip:%s>\r\nCall-ID: dscp-probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n' \
  "$RELAY_OUT" "$PHONE" "$PHONE" "$RELAY_OUT" | od -An -tx1 | tr -d ' \n')
rtp_peer --netns "$NS_PHONE" --bind $PHONE:5098 --to $RELAY_OUT:5060 --raw "$opt" --tos --expect 1 --wait 3 >"$LAB_DIR/sip_tos.json"
check "the relay's SIP answer left marked CS3 (TOS 96)" eq "$(json_get "$LAB_DIR/sip_tos.json" 'd["received"], d["tos"]')" "1 [96]"
check "audio and video call completed at both ends" both_ok phv pbxv
check "no call left" eq "$(calls_count)" 0

echo "== call from the PBX to a registered teleworker (REGISTER, then inbound INVITE)"
registered_uas reg2 ph4 5072 carol
pbx pbx4 pbx_call udp $PBX 5062 $RELAY_IN:5060 -s carol
check "inbound call reached the phone over its NAT binding" both_ok pbx4 ph4
check "the PBX's asserted identity reached the phone (RFC 3325)" grep -q 'P-Asserted-Identity: "Reception" <sip:200@pbx.example>' "$SIPP_LOG_ROOT/ph4/messages.log"
sipp_stop "$SIPP_LOG_ROOT/reg2"

echo "== message waiting: the phone subscribes at the PBX (RFC 6665 SUBSCRIBE/NOTIFY through the B2BUA)"
pbx vm1 pbx_notifier udp $PBX 5060 -
sleep 0.5
phone sub1 phone_subscribe udp $PHONE 5070 $RELAY_OUT:5060 -s 200 -d 500
check "subscribe, NOTIFY, unsubscribe, final NOTIFY at both ends" both_ok sub1 vm1
check "the mailbox summary reached the phone" grep -q "Voice-Message: 2/8" "$SIPP_LOG_ROOT/sub1/messages.log"
check "the PBX saw the relay's dialog, not the phone's" eq "$(grep -c -E "tag=sub[0-9]+x" "$SIPP_LOG_ROOT/vm1/messages.log")" 0
check "two NOTIFYs relayed" eq "$(counter notifies_relayed)" 2
check "the subscription is gone after the terminating NOTIFY" eq "$(counter subscriptions_terminated)" 1
check "no subscription left" eq "$(sluicectl --json status | python3 -c "import json,sys; print(json.load(sys.stdin).get('subscriptions','0'))")" 0

echo "== pager MESSAGE from the phone; unsolicited NOTIFY, MESSAGE and OPTIONS from the PBX to a registered phone"
pbx msg1 uas_ok udp $PBX 5060 -
sleep 0.5
phone msgph phone_message udp $PHONE 5070 $RELAY_OUT:5060 -s 300
check "the phone's MESSAGE was answered by the PBX" both_ok msgph msg1
check "its text reached the PBX" grep -q "hello from the teleworker" "$SIPP_LOG_ROOT/msg1/messages.log"
pbx mwireg pbx_registrar udp $PBX 5060 - -m 2 -deadcall_wait 0
sleep 0.5
phone mwiph phone_uas udp $PHONE 5076 $RELAY_OUT:5060 -s dave -oocsf "$SIPP_DIR/uas_ok.xml"
wait_for 10 "grep -q sltk= $SIPP_LOG_ROOT/mwireg/messages.log"
token=$(grep -o "sltk=[A-Za-z0-9]*" "$SIPP_LOG_ROOT/mwireg/messages.log" | head -1 | cut -d= -f2)
pbx ood1 pbx_ood udp $PBX 5062 $RELAY_IN:5060 -s dave -key sltk "$token"
check "NOTIFY, MESSAGE and OPTIONS reached the phone over its binding" both_ok ood1 mwiph
check "the phone got the message-waiting summary" grep -q "Voice-Message: 3/3" "$SIPP_LOG_ROOT/mwiph/messages.log"
check "the phone got the PBX's text" grep -q "hello from the PBX" "$SIPP_LOG_ROOT/mwiph/messages.log"
sipp_stop "$SIPP_LOG_ROOT/mwireg"

echo "== attended transfer: REFER with a Replaces in Refer-To, mapped onto the PBX's own dialogs"
in_pbx timeout 30 python3 "$ROOT/tests/integration/transfer_ua.py" pbx $PBX:5060 "$LAB_DIR/xfer-pbx.json" &
xfer_pbx=$!
sleep 0.5
check "two calls, REFER answered 202, the PBX's NOTIFY and both BYEs reached the phone" \
  in_phone timeout 30 python3 "$ROOT/tests/integration/transfer_ua.py" phone $PHONE:5078 $RELAY_OUT:5060 "$LAB_DIR/xfer-phone.json"
check "the PBX saw both calls, the REFER and both BYEs" wait $xfer_pbx
check "Refer-To names the PBX's second dialog, in the first call" python3 - "$LAB_DIR/xfer-pbx.json" "$LAB_DIR/xfer-phone.json" <<'PY'
import json, re, sys, urllib.parse
pbx, phone = (json.load(open(f)) for f in sys.argv[1:3])
call = {c["user"]: c for c in pbx["calls"]}
rt = pbx["refer"]["refer_to"]
got = urllib.parse.unquote(re.search(r"[?&]Replaces=([^&>]*)", rt).group(1))
want = "%s;to-tag=%s;from-tag=%s" % (call["202"]["call_id"], call["202"]["to_tag"], call["202"]["from_tag"])
print("     phone sent:  " + phone["replaces"])
print("     PBX got:     " + got)
ok = (got == want and pbx["refer"]["call_id"] == call["201"]["call_id"]
      and phone["calls"][1]["call_id"] not in rt and pbx["refer"]["referred_by"] != ""
      and phone["notify"]["event"] == "refer" and phone["notify"]["body"] == "SIP/2.0 200 OK")
sys.exit(0 if ok else 1)
PY

echo "== extensions and bodies the relay cannot serve: 420 with Unsupported, 415 with Accept"
ask() {  # ask REQUIRE CONTENT-TYPE: an INVITE from the phone, the answer's status and one header
  in_phone python3 - "$RELAY_OUT" "$PHONE" "$1" "$2" <<'PY'
import socket, sys
relay, me, require, ctype = sys.argv[1:5]
body = "v=0\r\no=p 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio 40100 RTP/AVP 0\r\n" % (me, me)
msg = ("INVITE sip:106@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:5079;branch=z9hG4bKext%s\r\n"
       "From: <sip:phone@%s>;tag=ext1\r\nTo: <sip:106@%s>\r\nCall-ID: ext-%s@phone\r\n"
       "CSeq: 1 INVITE\r\nContact: <sip:phone@%s:5079>\r\nMax-Forwards: 70\r\n%s"
       "Content-Type: %s\r\nContent-Length: %d\r\n\r\n%s") % (
    relay, me, require + ctype, relay, relay, require + ctype, me,
    ("Require: %s\r\n" % require) if require else "", ctype, len(body), body)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((me, 5079))
s.settimeout(3)
s.sendto(msg.encode(), (relay, 5060))
while True:
    lines = s.recv(65535).decode().split("\r\n")
    if not lines[0].startswith("SIP/2.0 1"):
        break
extra = [l for l in lines if l.split(":")[0] in ("Unsupported", "Accept")]
print(lines[0].split(" ")[1], extra[0] if extra else "")
PY
}
check "Require: an unknown extension gets 420 naming it" eq "$(ask 'timer, sec-agree' application/sdp)" "420 Unsupported: sec-agree"
check "a body that is not SDP gets 415 with Accept" eq "$(ask '' multipart/mixed)" "415 Accept: application/sdp"
check "both counted" eq "$(counter bad_extension) $(counter unsupported_media_type)" "1 1"
check "no call was set up" eq "$(calls_count)" 0

# The phone on TCP, then on mutual TLS (the PBX stays on UDP). Debian's
# SIPp has no TLS: sipp.sh puts a socat TLS tunnel under it (client
# certificate from the lab CA, the relay's certificate and name checked).
port=5074
for tr in tcp tls; do
  TR=${tr^^}
  echo "== $TR from the phone: call with RTP both ways, hold, resume, BYE from the phone"
  call_through pbx5$tr pbx_answer ph5$tr phone_call $tr $port 103
  sleep 2
  out_pk=$(flow_packets $RELAY_OUT); in_pk=$(flow_packets $RELAY_IN)
  check "$TR: RTP phone->PBX crossed the dataplane ($out_pk packets)" ge "$out_pk" 20
  check "$TR: RTP PBX->phone crossed the dataplane ($in_pk packets)" ge "$in_pk" 20
  check "$TR: call with hold/resume completed at both ends" both_ok ph5$tr pbx5$tr
  check "$TR: two re-INVITEs relayed" ge "$(grep -c '^INVITE' "$SIPP_LOG_ROOT/pbx5$tr/messages.log")" 3
  if [ $tr = tls ]; then
    check "TLS: the phone's tunnel checked the relay's certificate and spoke TLS 1.2 or later" \
      grep -Eq 'SSL proto version used: TLSv1\.[23]' "$SIPP_LOG_ROOT/ph5tls/tunnel.log"
  fi
  port=$((port + 1))

  echo "== $TR: BYE from the PBX"
  call_through pbx6$tr pbx_answer_bye ph6$tr phone_call_wait_bye $tr $port 101
  check "$TR: the PBX's hang-up reached the phone" both_ok ph6$tr pbx6$tr
  port=$((port + 1))

  echo "== $TR: CANCEL while ringing"
  call_through pbx7$tr pbx_ring_cancel ph7$tr phone_cancel $tr $port 102
  check "$TR: CANCEL relayed, 487 back to the phone" both_ok ph7$tr pbx7$tr
  port=$((port + 1))

  echo "== $TR: call from the PBX to a phone registered over $TR, over its connection"
  registered_uas reg8$tr ph8$tr $port dave $tr
  check "$TR: the binding is listed on $TR from the phone's address" eq \
    "$(sluicectl --json registrations list | python3 -c "
import json,sys
print(' '.join(r['transport'] + ' ' + r['source']['address'] for r in json.load(sys.stdin)['registrations'] if r['aor'].startswith('sip:dave@')))")" \
    "TRANSPORT_$TR $PHONE"
  pbx pbx8$tr pbx_call udp $PBX 5062 $RELAY_IN:5060 -s dave
  check "$TR: the PBX's call reached the phone over its connection, RTP, BYE" both_ok pbx8$tr ph8$tr
  sipp_stop "$SIPP_LOG_ROOT/reg8$tr"
  port=$((port + 1))
  check "$TR: no call and no flow left" eq "$(calls_count) $(flows_count)" "0 0"
done

echo "== mutual TLS (Python ssl client): trusted certificate answered, others refused"
tls_opts() {
  in_phone python3 - "$RELAY_OUT" "$LAB_DIR/tls" "$1" <<'PY'
import socket, ssl, sys
host, d, who = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(d + "/ca.crt")
ctx.check_hostname = False
if who != "none":
    ctx.load_cert_chain(d + f"/{who}.crt", d + f"/{who}.key")
try:
    s = ctx.wrap_socket(socket.create_connection((host, 5061), timeout=3))
    s.sendall(b"OPTIONS sip:" + host.encode() + b" SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.10:5099;branch=z9hG4bKtls1\r\n"
              b"From: <sip:t@lab>;tag=1\r\nTo: <sip:" + host.encode() + b">\r\nCall-ID: tls1\r\nCSeq: 1 OPTIONS\r\n"
              b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    print(s.recv(4096).split(b"\r\n")[0].decode())
except Exception as e:
    print("refused")
PY
}
check "TLS with a client certificate from the CA gets 200" eq "$(tls_opts phone)" "SIP/2.0 200 OK"
check "TLS without a client certificate is refused" eq "$(tls_opts none)" "refused"
check "TLS with an untrusted client certificate is refused" eq "$(tls_opts stranger)" "refused"

echo "== hostile input from 192.0.2.11 while 192.0.2.10 calls"
pbx pbx6 pbx_answer udp $PBX 5060 -
sleep 0.5
in_phone python3 - "$RELAY_OUT" <<'PY' &
import socket, sys, os, time
host = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.11", 5090))
junk = [b"\x00\xff" * 50, b"INVITE sip:x SIP/2.0\r\n\r\n", b"INVITE sip:x SIP/3.0\r\nVia: x\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.11:5090;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:a@b>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\nContent-Length: 99999\r\n\r\n",
        b"REGISTER sip:x SIP/2.0\r\n" + b"X-Pad: " + b"a" * 60000 + b"\r\n\r\n"]
t_end = time.time() + 4
n = 0
while time.time() < t_end and n < 20000:
    s.sendto(junk[n % len(junk)] + os.urandom(n % 7), (host, 5060))
    n += 1
    if n % 200 == 0: time.sleep(0.01)
t = socket.create_connection((host, 5060), timeout=2)  # an oversized stream message
try:
    t.sendall(b"INVITE sip:x SIP/2.0\r\n" + b"X: " + b"b" * 140000)
except OSError:
    pass
PY
JUNK=$!
phone ph6 phone_call udp $PHONE 5070 $RELAY_OUT:5060 -s 104
wait $JUNK
check "a call from another source completes during the flood" both_ok ph6 pbx6
check "malformed messages were counted" ge "$(counter bad_messages)" 100
check "the oversized stream was cut" ge "$(counter transport_oversized)" 1
check "the control plane is still up" kill -0 "$(cat "$LAB_DIR/controlplane.pid")"

echo "== brute force: failed authentications from one source get it blocked"
pbx auth pbx_registrar_auth udp $PBX 5060 - -m 20 -key authuser mallory -key authpass right
sleep 0.5
SIPP_FG=1 SIPP_TIMEOUT=8 SIPP_BIN=$LAB_DIR/sipp-phone sipp_run bf phone_register udp $PHONE2 5076 $RELAY_OUT:5060 \
  -s mallory -au mallory -ap wrong -m 8 >/dev/null 2>&1
check "the source is listed as blocked" eq "$(sluicectl --json blocked list | python3 -c "import json,sys; print([s['address'] for s in json.load(sys.stdin).get('sources',[]) if s.get('blocked')])")" "['$PHONE2']"
check "requests from it are dropped" ge "$(counter blocked_drops)" 1
sluicectl blocked list
check "the operator can lift the block" eq "$(sluicectl blocked remove $PHONE2)" "unblocked $PHONE2"
sipp_stop_all

echo "== failover: the first upstream is silent, the call goes to the next"
cp_stop
LAB_UPSTREAMS="upstreams { host: \"$PBX\" port: 5090 priority: 10 }
upstreams { host: \"$PBX\" port: 5060 priority: 20 }" lab_cp_conf "$LAB_DIR/failover.conf"
cp_start "$LAB_DIR/failover.conf" || exit 1
pbx pbx7 pbx_answer udp $PBX 5060 -
sleep 0.5
phone ph7 phone_call udp $PHONE 5070 $RELAY_OUT:5060 -s 105
check "the call completes through the second upstream" both_ok ph7 pbx7
check "one failover counted" eq "$(counter upstream_failovers)" 1
check "the silent upstream is marked down" eq "$(sluicectl --json upstreams list | python3 -c "
import json,sys
print([u['endpoint']['port'] for u in json.load(sys.stdin).get('upstreams',[]) if u.get('state')=='UPSTREAM_STATE_DOWN'])")" "[5090]"
sluicectl upstreams list

echo "== failover for REGISTER: a fresh control plane, the first upstream still silent"
cp_stop
cp_start "$LAB_DIR/failover.conf" || exit 1
pbx reg4 pbx_registrar udp $PBX 5060 -
sleep 0.5
phone regph2 phone_register udp $PHONE 5070 $RELAY_OUT:5060 -s erin
check "the phone registered through the second upstream" both_ok regph2 reg4
check "one failover counted (the REGISTER's)" eq "$(counter upstream_failovers)" 1
check "the binding is listed" eq "$(sluicectl --json registrations list | grep -c 'sip:erin@')" 1

echo "== DNS SRV upstreams: two targets from a DNS server, the first one silent"
cp_stop
# ip netns exec mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf; it
# execs the stub, so $! is the stub's own pid and kill stops it.
mkdir -p "/etc/netns/$NS_RELAY"
echo "nameserver 127.0.0.1" >"/etc/netns/$NS_RELAY/resolv.conf"
ip netns exec "$NS_RELAY" python3 "$ROOT/tests/integration/dns_stub.py" --bind 127.0.0.1:53 --ttl 5 --seconds 60 \
  --srv _sip._udp.pbx.lab=10:1:5090:pbx-a.lab --srv _sip._udp.pbx.lab=20:1:5060:pbx-b.lab \
  --a pbx-a.lab=$PBX --a pbx-b.lab=$PBX >"$LAB_DIR/dns.log" 2>&1 &
DNS=$!
sleep 0.3
LAB_UPSTREAMS='upstream_srv: "_sip._udp.pbx.lab"' lab_cp_conf "$LAB_DIR/srv.conf"
cp_start "$LAB_DIR/srv.conf" || exit 1
srv_targets() { sluicectl --json upstreams list | python3 -c "
import json,sys
print(' '.join('%s=%s:%s/%s' % (u['host'], u['endpoint']['address'], u['endpoint']['port'], u['priority'])
               for u in json.load(sys.stdin).get('upstreams',[]) if u.get('source')=='srv'))"; }
for _ in $(seq 1 30); do [ -n "$(srv_targets)" ] && break; sleep 0.1; done
check "both SRV targets are upstreams, with their priorities" eq "$(srv_targets)" \
  "pbx-a.lab=$PBX:5090/10 pbx-b.lab=$PBX:5060/20"
pbx pbx8 pbx_answer udp $PBX 5060 -
sleep 0.5
phone ph8 phone_call udp $PHONE 5070 $RELAY_OUT:5060 -s 106
check "the call fails over from the silent SRV target to the next" both_ok ph8 pbx8
check "one failover counted" eq "$(counter upstream_failovers)" 1
check "the resolver re-reads the records at their TTL" wait_for 12 '[ "$(counter srv_lookups)" -ge 2 ]'
sluicectl upstreams list
kill $DNS 2>/dev/null
wait $DNS 2>/dev/null

echo "== RFC 3263: a SIP domain located by NAPTR (an SCTP record skipped, UDP preferred over TCP), then one with SRV records only"
cp_stop
ip netns exec "$NS_RELAY" python3 "$ROOT/tests/integration/dns_stub.py" --bind 127.0.0.1:53 --ttl 30 --seconds 60 \
  --naptr pbx.lab=5:10:s:SIP+D2S:_sip._sctp.pbx.lab --naptr pbx.lab=10:20:s:SIP+D2T:_sip._tcp.pbx.lab \
  --naptr pbx.lab=10:10:s:SIP+D2U:_sip._udp.pbx.lab \
  --srv _sip._udp.pbx.lab=10:1:5060:pbx-b.lab --srv _sip._tcp.pbx.lab=10:1:5060:pbx-b.lab \
  --srv _sip._sctp.pbx.lab=10:1:5060:pbx-b.lab --srv _sip._udp.pbx2.lab=30:1:5060:pbx-c.lab \
  --a pbx-b.lab=$PBX --a pbx-c.lab=$PBX >"$LAB_DIR/dns2.log" 2>&1 &
DNS=$!
sleep 0.3
srv_transports() { sluicectl --json upstreams list | python3 -c "
import json,sys
print(' '.join('%s=%s:%s/%s' % (u['host'], u['endpoint']['address'], u['transport'], u['priority'])
               for u in json.load(sys.stdin).get('upstreams',[]) if u.get('source')=='srv'))"; }
LAB_UPSTREAMS='upstream_srv: "pbx.lab"' lab_cp_conf "$LAB_DIR/naptr.conf"
cp_start "$LAB_DIR/naptr.conf" || exit 1
for _ in $(seq 1 30); do [ -n "$(srv_transports)" ] && break; sleep 0.1; done
check "NAPTR picked SIP+D2U: its SRV target is the upstream, over UDP" eq "$(srv_transports)" "pbx-b.lab=$PBX:TRANSPORT_UDP/10"
check "the log names the SRV name NAPTR led to" grep -q "controlplane: pbx.lab: 1 upstream targets from _sip._udp.pbx.lab" "$LAB_DIR/controlplane.log"
pbx pbx9 pbx_answer udp $PBX 5060 -
sleep 0.5
phone ph9 phone_call udp $PHONE 5070 $RELAY_OUT:5060 -s 107
check "a call reaches the upstream found by NAPTR" both_ok ph9 pbx9
cp_stop
LAB_UPSTREAMS='upstream_srv: "pbx2.lab"' lab_cp_conf "$LAB_DIR/naptr2.conf"
cp_start "$LAB_DIR/naptr2.conf" || exit 1
for _ in $(seq 1 30); do [ -n "$(srv_transports)" ] && break; sleep 0.1; done
check "no NAPTR: _sips._tcp and _sip._tcp tried, _sip._udp answered" eq "$(srv_transports)" "pbx-c.lab=$PBX:TRANSPORT_UDP/30"
check "the DNS server saw the NAPTR query, then the three SRV queries in order" eq \
  "$(grep -o -E '(NAPTR|SRV) [^ ]*pbx2.lab' "$LAB_DIR/dns2.log" | tr '\n' ' ' | sed 's/ $//')" \
  "NAPTR pbx2.lab SRV _sips._tcp.pbx2.lab SRV _sip._tcp.pbx2.lab SRV _sip._udp.pbx2.lab"
kill $DNS 2>/dev/null
wait $DNS 2>/dev/null

echo "== calls whose flows the dataplane refuses have no media: the relay ends them with BYE on both legs"
# A config naming a dataplane port that does not exist: the dataplane
# refuses every batch (the queued, merged ones are retried one by one).
cp_stop
LAB_INSIDE_PORT=nowhere lab_cp_conf "$LAB_DIR/noport.conf"
grep -q 'dataplane_port: "nowhere"' "$LAB_DIR/noport.conf" || echo "     noport.conf lacks the bad port" >&2
cp_start "$LAB_DIR/noport.conf" || exit 1
pbx pbx10 pbx_answer_fast udp $PBX 5060 - -m 3
sleep 0.5
phone ph10 phone_call_wait_bye udp $PHONE 5070 $RELAY_OUT:5060 -s 108 -m 3 -r 10
check "three calls answered, then ended by the relay on both legs (each side took a BYE)" both_ok ph10 pbx10
check "their three batches (one per answer) refused and counted" eq \
  "$(counter flow_push_failures) $(counter flow_batches_refused) $(counter flow_batches)" "3 3 3"
check "three calls ended for it, none left" eq "$(counter calls_ended_media_refused) $(calls_count)" "3 0"
check "each BYE says why (Reason, 3 to the phone, 3 to the PBX)" eq \
  "$(grep -c 'Reason: SIP;cause=200;text="media-refused"' "$SIPP_LOG_ROOT/ph10/messages.log") $(grep -c 'Reason: SIP;cause=200;text="media-refused"' "$SIPP_LOG_ROOT/pbx10/messages.log")" "3 3"
check "no flow reached the dataplane" eq "$(flows_count)" 0

echo "== more new flows than the dataplane has room for: the merged request is retried call by call, only the call that does not fit is refused"
# A dataplane with room for 10 flows (two calls of 4), reached through a
# socket relay that is stopped while three calls are answered: the first
# call's batch waits in its RPC, the other two queue behind it and go out
# merged (8 new flows, 6 free).
cp_stop
lab_stop
sed 's/max_flows: 65536/max_flows: 10/' "$LAB_DIR/dataplane.conf" >"$LAB_DIR/dataplane10.conf"
lab_start "$LAB_DIR/dataplane10.conf" || exit 1
python3 "$ROOT/tests/integration/sock_relay.py" --listen "$LAB_DIR/dp-relay.sock" \
  --target "$LAB_DIR/dataplane.sock" --seconds 120 &
RELAY_PID=$!
for _ in $(seq 1 30); do [ -S "$LAB_DIR/dp-relay.sock" ] && break; sleep 0.1; done
LAB_DP_TARGET="unix:$LAB_DIR/dp-relay.sock" lab_cp_conf "$LAB_DIR/relayed.conf"
cp_start "$LAB_DIR/relayed.conf" || exit 1
pbx pbx11 pbx_answer_or_take_bye udp $PBX 5060 - -m 3
sleep 0.5
kill -STOP $RELAY_PID
phone ph11 phone_call_wait_bye udp $PHONE 5070 $RELAY_OUT:5060 -s 110 -m 3 -r 20
wait_for 3 '[ "$(counter flow_batches)" -ge 3 ]'
kill -CONT $RELAY_PID
wait_for 3 '[ "$(counter flow_push_failures)" -ge 1 ]'
check "three calls answered while the link was held up, their batches queued" eq \
  "$(counter flow_batches) $(counter flow_queue_max)" "3 2"
check "two calls' flows are in (8 of 10), the third call's batch alone refused" eq \
  "$(flows_count) $(counter flow_push_failures)" "8 1"
check "the merged request was refused for room, then each call's batch sent on its own" \
  grep -q "the batch adds 8 flows; 6 free of media.max_flows=10" "$LAB_DIR/controlplane.log"
check "the three calls end: the two with flows by the PBX's BYE, the one without by the relay's" both_ok ph11 pbx11
check "one call ended for its refused flows, with a BYE to each side" eq "$(counter calls_ended_media_refused) $(grep -c 'text="media-refused"' "$SIPP_LOG_ROOT/ph11/messages.log") $(grep -c 'text="media-refused"' "$SIPP_LOG_ROOT/pbx11/messages.log")" "1 1 1"
check "their flows are removed" wait_for 3 '[ "$(flows_count)" = 0 ]'
kill $RELAY_PID 2>/dev/null
wait $RELAY_PID 2>/dev/null

echo "== a re-INVITE adds video to a full table: the video stream is refused and turned off on both legs, the audio keeps going and takes the change"
# Room for 6 flows: the audio call's 4 fit, its video's 4 more do not.
cp_stop
lab_stop
sed 's/max_flows: 65536/max_flows: 6/' "$LAB_DIR/dataplane.conf" >"$LAB_DIR/dataplane6.conf"
lab_start "$LAB_DIR/dataplane6.conf" || exit 1
cp_start || exit 1
call_through pbx12 pbx_add_video ph12 phone_add_video udp 5070 111
wait_for 8 '[ "$(counter flow_changes_refused)" -ge 1 ]'
check "the change that added video was refused, its one new stream left out" eq \
  "$(counter flow_changes_refused) $(counter flow_streams_refused) $(counter flow_batches_refused)" "1 1 1"
check "the audio took the rest of the change: its flows towards the PBX moved to 6100/6101" \
  wait_for 3 '[ "$(to_pbx_ports)" = "6100 6101" ]'
check "the call keeps its 4 audio flows, the operator sees the video stream refused" eq \
  "$(flows_count) $(sluicectl --json calls list | python3 -c "
import json,sys
c=json.load(sys.stdin)['calls'][0]
print(' '.join('%s:%s:%d' % (m['type'], 'refused' if m.get('refused') else 'ok', len(m.get('flows',[]))) for m in c['streams']))")" \
  "4 audio:ok:4 video:refused:0"
check "the relay turned the refused video off with a re-INVITE to each side, both answered (the scenarios check m=video 0)" \
  wait_for 5 '[ "$(counter refused_streams_off_sent) $(counter refused_streams_off) $(counter refused_streams_off_failed)" = "2 2 0" ]'
pk1=$(flow_packets $RELAY_OUT)
sleep 1.5
pk2=$(flow_packets $RELAY_OUT)
check "audio from the phone still crosses the dataplane after the refusal ($pk1 then $pk2 packets)" ge "$pk2" $((pk1 + 20))
cp_stop
cp_start || exit 1
wait_for 5 '[ "$(counter resyncs)" -ge 1 ]'
check "a control-plane restart keeps the call: its audio flows adopted, the refused video not asked for again" eq \
  "$(counter resync_flows_adopted) $(counter resync_calls_pushed) $(calls_count) $(flows_count)" "4 0 1 4"
check "the call ends normally at both ends, never for refused media" both_ok ph12 pbx12
check "nothing ended for it; no call, no flow left" eq \
  "$(counter calls_ended_media_refused) $(calls_count) $(flows_count)" "0 0 0"
check "the refusal is logged" grep -q "refused the 1 stream(s) its change added" "$LAB_DIR/controlplane.log"

echo "== a call offers SRTP audio and video to the same full table: it goes on with audio alone, the video turned off on both legs"
bad0=$(counter bad_answers) nocrypto0=$(counter srtp_no_usable_crypto)
call_through pbx13 pbx_video_cut ph13 phone_video_cut udp 5070 112
wait_for 8 '[ "$(counter flow_setups_narrowed)" -ge 1 ]'
check "its first batch (audio and video, 8 flows) was refused, then audio alone was pushed and taken" eq \
  "$(counter flow_setups_narrowed) $(counter flow_streams_refused) $(counter flow_batches_refused) $(counter calls_ended_media_refused)" "1 1 1 0"
check "the relay turned the video off on both legs; the phone's SRTP answer matched the key offered again" \
  wait_for 5 '[ "$(counter refused_streams_off_sent) $(counter refused_streams_off) $(counter refused_streams_off_failed)" = "2 2 0" ]'
check "no answer was refused for it (bad answers, SRTP keys)" eq \
  "$(( $(counter bad_answers) - bad0 )) $(( $(counter srtp_no_usable_crypto) - nocrypto0 ))" "0 0"
check "the call has its 4 audio flows, the operator sees the video refused" eq \
  "$(flows_count) $(sluicectl --json calls list | python3 -c "
import json,sys
c=json.load(sys.stdin)['calls'][0]
print(' '.join('%s:%s:%d' % (m['type'], 'refused' if m.get('refused') else 'ok', len(m.get('flows',[]))) for m in c['streams']))")" \
  "4 audio:ok:4 video:refused:0"
pk1=$(flow_packets $RELAY_IN)
sleep 1.5
pk2=$(flow_packets $RELAY_IN)
check "audio from the PBX crosses the dataplane to the phone ($pk1 then $pk2 packets)" ge "$pk2" $((pk1 + 20))
check "the call ends normally at both ends" both_ok ph13 pbx13
check "no call, no flow left" eq "$(calls_count) $(flows_count)" "0 0"
check "the narrowing is logged" grep -q "refused its 2 streams; it goes on with its audio stream (0) alone" "$LAB_DIR/controlplane.log"

echo "== NAT loopback at the network edge: a device on a LAN subnet behind a router calls through the relay's public address"
# The device (10.20.0.5) is routed to the relay's inside port; its call is
# an outside leg (it called 192.0.2.1), so the media back to it must leave
# through the inside port, from the public address.
cp_stop
lab_stop
lab_lan_up || exit 1
lab_lan_dataplane_conf "$LAB_DIR/dataplane.conf" "$LAB_DIR/dataplane_lan.conf"
lab_start "$LAB_DIR/dataplane_lan.conf" || exit 1
lab_lan_route
cp_start || exit 1
lan_rx() {  # packets the device's interface received
  ip -n "$NS_LAN" -s -j link show dev0 | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['stats64']['rx']['packets'])"
}
rx0=$(lan_rx)
pbx pbx15 pbx_answer udp $PBX 5060 -
sleep 0.5
SIPP_BIN=$LAB_DIR/sipp-lan sipp_run lan15 phone_call udp $LAN_DEV 5070 $RELAY_OUT:5060 -s 100
sleep 2
check "the relay sees the LAN device's own address on the outside leg" eq "$(sluicectl --json calls list | python3 -c "
import json,sys
c=json.load(sys.stdin)['calls'][0]
print(c['outside']['signallingPeer']['address'], c['streams'][0]['outside']['peer']['address'])")" "$LAN_DEV $LAN_DEV"
sluicectl --json flows list >"$LAB_DIR/lan_flows.json"
check "media from the device crosses to the PBX, and the PBX's back to the device, with no drop" python3 - "$LAB_DIR/lan_flows.json" "$RELAY_OUT" "$RELAY_IN" "$LAN_DEV" <<'PY'
import json, sys
flows, out, inside, dev = json.load(open(sys.argv[1])).get("flows", []), sys.argv[2], sys.argv[3], sys.argv[4]
rtp = [f for f in flows if f["spec"]["key"]["localPort"] % 2 == 0]
up = [f for f in rtp if f["spec"]["key"]["localAddress"] == out]
down = [f for f in rtp if f["spec"]["key"]["localAddress"] == inside]
ok = (len(up) == 1 and len(down) == 1 and up[0].get("latchedPeer", {}).get("address") == dev
      and int(up[0].get("packets", 0)) >= 20 and int(down[0].get("packets", 0)) >= 20
      and not down[0].get("drops"))
print("up", up[0].get("packets") if up else None, "down", down[0].get("packets") if down else None,
      "drops", down[0].get("drops") if down else None)
sys.exit(0 if ok else 1)
PY
rx=$(( $(lan_rx) - rx0 ))
check "the PBX's media reached the device through its router ($rx packets received)" ge "$rx" 40
check "the call with hold/resume completed at both ends" both_ok lan15 pbx15
check "no drop for want of a route" eq "$(sluicectl --json stats | python3 -c "
import json,sys
print(sum(int(d['packets']) for d in json.load(sys.stdin).get('drops', []) if d['reason'] == 'no_route'))")" 0
check "no call, no flow left" eq "$(calls_count) $(flows_count)" "0 0"

sluicectl status | head -12
