#!/usr/bin/env bash
# The exception path and drops: UDP and TCP to the relay address outside the
# media range reach kernel sockets in the relay namespace through the TAP;
# media-range packets without a flow are dropped and counted, never punted.
source "$(dirname "$0")/lib.sh"
lab_up || exit 1
lab_start || exit 1

# A kernel UDP socket on the relay's outside address (as SIP would bind).
in_relay python3 -c "
import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('$RELAY_OUT',5060)); s.settimeout(6)
d,a=s.recvfrom(2048); s.sendto(b'pong:'+d,a)
" &
u=$!
# A kernel TCP listener (as SIP over TCP/TLS would).
in_relay python3 -c "
import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('$RELAY_OUT',5061)); s.listen(1); s.settimeout(6)
c,a=s.accept(); c.settimeout(3); c.sendall(b'tcp:'+c.recv(100)); c.close()
" &
t=$!
sleep 0.5
got=$(in_phone python3 -c "
import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b'OPTIONS',('$RELAY_OUT',5060)); print(s.recvfrom(100)[0].decode())
")
check "UDP to port 5060 reached the relay's kernel socket and back" eq "$got" "pong:OPTIONS"
got=$(in_phone python3 -c "
import socket
s=socket.create_connection(('$RELAY_OUT',5061),timeout=3); s.sendall(b'REGISTER'); print(s.recv(100).decode())
")
check "TCP to port 5061 connected through the exception path" eq "$got" "tcp:REGISTER"
wait $u $t

# Media range, no flow: 25 packets to 25000 are dropped and counted.
rtp_peer --netns "$NS_PHONE" --bind $PHONE:4000 --to $RELAY_OUT:25000 --count 25 --linger 0.3 >/dev/null
in_relay python3 -c "
import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('$RELAY_OUT',25000)); s.settimeout(0.5)
try:
  s.recvfrom(10); print('punted')
except OSError: print('none')
" >"$LAB_DIR/punt.txt" &
w=$!
rtp_peer --netns "$NS_PHONE" --bind $PHONE:4000 --to $RELAY_OUT:25000 --count 5 --linger 0.3 >/dev/null
wait $w
check "no media-range packet reached the kernel" eq "$(cat "$LAB_DIR/punt.txt")" none
sleep 0.2
sluicectl stats --json >"$LAB_DIR/stats.json"
check "30 no_flow drops counted" \
  eq "$(json_get "$LAB_DIR/stats.json" '[x["packets"] for x in d["drops"] if x["reason"]=="no_flow"]')" "['30']"
check "punted packets counted on the port" \
  ge "$(json_get "$LAB_DIR/stats.json" 'd["ports"][0]["punted"]')" 3
