#!/usr/bin/env bash
# The lab: network namespaces and veth pairs standing in for a teleworker on
# the Internet side and a PBX on the LAN side, with sluice-dataplane owning
# the relay's ends through DPDK af_packet. Source it (tests do) or run it:
#
#   lab/lab.sh up | down | start | stop | demo
#
# Topology (LAB = name prefix, default "sl"):
#   ${LAB}-phone: phone0 192.0.2.10/24 (+ .11 for handover tests)
#        |  veth
#   ${LAB}-relay: out0 (DPDK "outside", relay 192.0.2.1, TAP ${LAB}-out)
#                 in0  (DPDK "inside",  relay 198.51.100.1, TAP ${LAB}-in)
#        |  veth
#   ${LAB}-pbx:   pbx0 198.51.100.10/24
# Addresses are documentation ranges and live only inside these namespaces.
#
# LAB_DMZ=1 puts the relay in a DMZ behind a 1:1 NAT instead, as operators
# deploy it behind a firewall: the phone is elsewhere on the Internet and
# reaches the relay's public address, which a router namespace translates
# (nftables) to and from the relay's private outside address:
#   ${LAB}-phone: phone0 203.0.113.10/24 (+ .11), default via 203.0.113.1
#        |  veth
#   ${LAB}-nat:   wan0 203.0.113.1/24, dmz0 10.0.0.254/24;
#                 192.0.2.1 <-> 10.0.0.1 (DNAT in, SNAT out)
#        |  veth
#   ${LAB}-relay: out0 (DPDK "outside", relay 10.0.0.1, gateway 10.0.0.254;
#                 SIP and SDP advertise 192.0.2.1)
# RELAY_OUT stays the address phones use (the public one); RELAY_OUT_LOCAL
# is the relay's own.
set -uo pipefail

LAB=${LAB:-sl}
LAB_DIR=${LAB_DIR:-/tmp/sluice-lab-$LAB}
LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${SLUICE_BUILD:-$LAB_ROOT/build}
[[ $BUILD = /* ]] || BUILD=$LAB_ROOT/$BUILD
NS_RELAY=$LAB-relay
NS_PHONE=$LAB-phone
NS_PBX=$LAB-pbx
NS_NAT=$LAB-nat
NS_LAN=$LAB-lan
LAN_NET=10.20.0.0/16
LAN_ROUTER=10.20.0.1
LAN_DEV=10.20.0.5
LAB_DMZ=${LAB_DMZ:-0}
RELAY_OUT=192.0.2.1
RELAY_IN=198.51.100.1
if [ "$LAB_DMZ" = 1 ]; then
  RELAY_OUT_LOCAL=10.0.0.1
  NAT_DMZ=10.0.0.254
  NAT_WAN=203.0.113.1
  PHONE=203.0.113.10
  PHONE2=203.0.113.11
else
  RELAY_OUT_LOCAL=$RELAY_OUT
  PHONE=192.0.2.10
  PHONE2=192.0.2.11
fi
PBX=198.51.100.10
SOCK=unix:$LAB_DIR/dataplane.sock
CP_SOCK=unix:$LAB_DIR/controlplane.sock
export SLUICE_DATAPLANE=$SOCK
export SLUICE_CONTROLPLANE=$CP_SOCK

lab_up() {
  lab_down >/dev/null 2>&1
  mkdir -p "$LAB_DIR"
  ip netns add "$NS_RELAY" && ip netns add "$NS_PHONE" && ip netns add "$NS_PBX" || return 1
  local ns
  for ns in "$NS_RELAY" "$NS_PHONE" "$NS_PBX"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
  done
  if [ "$LAB_DMZ" = 1 ]; then
    lab_nat_up || return 1
  else
    ip link add out0 netns "$NS_RELAY" type veth peer name phone0 netns "$NS_PHONE" || return 1
  fi
  ip link add in0 netns "$NS_RELAY" type veth peer name pbx0 netns "$NS_PBX" || return 1
  ip -n "$NS_PHONE" addr add $PHONE/24 dev phone0
  ip -n "$NS_PHONE" addr add $PHONE2/24 dev phone0
  ip -n "$NS_PBX" addr add $PBX/24 dev pbx0
  for l in "$NS_RELAY out0" "$NS_RELAY in0" "$NS_PHONE phone0" "$NS_PBX pbx0"; do
    set -- $l
    ip -n "$1" link set "$2" up
  done
  [ "$LAB_DMZ" != 1 ] || ip -n "$NS_PHONE" route add default via $NAT_WAN
  # DPDK reads out0/in0 through af_packet, but the relay namespace's kernel
  # would also take their frames into its own stack (it owns the relay
  # addresses on the TAPs, and Linux accepts a local address on any
  # interface): every SIP packet would arrive twice and media would reach
  # kernel sockets. Strict reverse-path filtering drops them there (the route
  # back to a peer is via the TAP), and arp_ignore keeps the kernel from
  # answering ARP on them; af_packet still sees every frame. A real NIC is
  # bound to DPDK and has no kernel stack at all.
  for dev in out0 in0; do
    ip netns exec "$NS_RELAY" sysctl -qw net.ipv4.conf.$dev.rp_filter=1
    ip netns exec "$NS_RELAY" sysctl -qw net.ipv4.conf.$dev.arp_ignore=8
  done
  # The kernel leaves UDP/TCP checksums unfinished on veth (offload); the
  # relay recomputes media checksums, but punted SIP goes to the relay's
  # kernel as sent, so let the endpoints finish their checksums.
  if ! command -v ethtool >/dev/null; then
    echo "lab: ethtool is missing (scripts/setup.sh installs it)" >&2
    return 1
  fi
  ip netns exec "$NS_PHONE" ethtool -K phone0 tx off >/dev/null
  ip netns exec "$NS_PBX" ethtool -K pbx0 tx off >/dev/null
  cat >"$LAB_DIR/dataplane.conf" <<CONF
# Lab dataplane: af_packet on the relay's veth ends, no hugepages.
eal_args: ["--no-huge", "-m", "512", "--file-prefix", "sluice-$LAB",
           "--log-level=warning", "--no-telemetry"]
lcores: [0, 1]
grpc_listen: "$SOCK"
ports {
  name: "outside" role: "outside"
  device: "net_af_packet0,iface=out0,framecnt=4096"
  address: "$RELAY_OUT_LOCAL" prefix_length: 24${NAT_DMZ:+ gateway: \"$NAT_DMZ\"}
  exception_tap: "$LAB-out"
}
ports {
  name: "inside" role: "inside"
  device: "net_af_packet1,iface=in0,framecnt=4096"
  address: "$RELAY_IN" prefix_length: 24
  exception_tap: "$LAB-in"
}
media { port_min: 20000 port_max: 31000 max_flows: 65536 }
CONF
  lab_tls_material || return 1
  lab_cp_conf
}

# The control plane's config for this lab, to FILE (default
# $LAB_DIR/controlplane.conf); the LAB_* knobs are read at each call, so a
# test can write a second config with other media policies.
lab_cp_conf() {
  local ups=${LAB_UPSTREAMS:-}
  [ -n "$ups" ] || ups="upstreams { host: \"$PBX\" port: ${LAB_PBX_PORT:-5060} transport: ${LAB_PBX_TRANSPORT:-UDP} }"
  local inport=
  [ -z "${LAB_INSIDE_PORT:-}" ] || inport="dataplane_port: \"$LAB_INSIDE_PORT\""
  local adv=  # behind the 1:1 NAT: SIP and SDP carry the public address
  [ "$RELAY_OUT_LOCAL" = "$RELAY_OUT" ] || adv="advertised_address: \"$RELAY_OUT\""
  cat >"${1:-$LAB_DIR/controlplane.conf}" <<CONF
# Lab control plane: teleworkers on the outside (UDP, TCP, TLS with client
# certificates), the PBX on the inside; media anchored on the dataplane.
listeners { name: "out-udp" side: "outside" address: "$RELAY_OUT_LOCAL" port: 5060 transport: UDP $adv }
listeners { name: "out-tcp" side: "outside" address: "$RELAY_OUT_LOCAL" port: 5060 transport: TCP $adv }
listeners { name: "out-tls" side: "outside" address: "$RELAY_OUT_LOCAL" port: 5061 transport: TLS $adv
  tls { certificate_file: "$LAB_DIR/tls/relay.crt" private_key_file: "$LAB_DIR/tls/relay.key"
        ca_file: "$LAB_DIR/tls/ca.crt" require_client_certificate: true } }
listeners { name: "in-udp" side: "inside" address: "$RELAY_IN" port: 5060 transport: UDP }
listeners { name: "in-tcp" side: "inside" address: "$RELAY_IN" port: 5060 transport: TCP }
$ups
media {
  outside { address: "$RELAY_OUT_LOCAL" $adv srtp: ${LAB_SRTP_OUTSIDE:-OPTIONAL} }
  inside { address: "$RELAY_IN" srtp: ${LAB_SRTP_INSIDE:-OFF} $inport }
  inactivity_timeout_s: ${LAB_MEDIA_TIMEOUT:-60}
  ttl_reset: ${LAB_TTL_RESET:-0}
}
monitor { ${LAB_MONITOR:-disabled: true} }
security { auth_failures: ${LAB_AUTH_FAILURES:-5} block_s: 60 }
registrations { mobile_user_agents: "Mobile" max_expires_s: ${LAB_MAX_EXPIRES:-3600} }
dataplane: "${LAB_DP_TARGET:-$SOCK}"
admin_listen: "$CP_SOCK"
state_dir: "$LAB_DIR"
${LAB_CP_EXTRA:-}
CONF
}

# A throwaway CA, the relay's certificate and one client certificate for
# the teleworkers (mutual TLS); made per lab, never kept.
lab_tls_material() {
  local d=$LAB_DIR/tls
  mkdir -p "$d"
  (
    cd "$d" || exit 1
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sluice lab CA" \
      -keyout ca.key -out ca.crt >/dev/null 2>&1 &&
    for n in relay phone; do
      openssl req -newkey rsa:2048 -nodes -subj "/CN=$n.lab.example" -keyout $n.key -out $n.csr \
        >/dev/null 2>&1 &&
      openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out $n.crt \
        >/dev/null 2>&1 || exit 1
    done
    # An untrusted client (its own CA): mutual TLS must refuse it.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=stranger" \
      -keyout stranger.key -out stranger.crt >/dev/null 2>&1
  ) || { echo "lab: openssl failed" >&2; return 1; }
}

# The DMZ's router: the phone's Internet on one side, the relay's outside
# port on the other, and a 1:1 NAT between the relay's public and private
# outside addresses (LAB_DMZ=1).
lab_nat_up() {
  if ! command -v nft >/dev/null; then
    echo "lab: nft is missing (scripts/setup.sh installs nftables)" >&2
    return 1
  fi
  ip netns add "$NS_NAT" || return 1
  ip netns exec "$NS_NAT" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip netns exec "$NS_NAT" sysctl -qw net.ipv4.ip_forward=1
  ip -n "$NS_NAT" link set lo up
  ip link add out0 netns "$NS_RELAY" type veth peer name dmz0 netns "$NS_NAT" || return 1
  ip link add wan0 netns "$NS_NAT" type veth peer name phone0 netns "$NS_PHONE" || return 1
  ip -n "$NS_NAT" addr add $NAT_DMZ/24 dev dmz0
  ip -n "$NS_NAT" addr add $NAT_WAN/24 dev wan0
  ip -n "$NS_NAT" link set dmz0 up
  ip -n "$NS_NAT" link set wan0 up
  # Named counters: what crossed the NAT each way (tests read them).
  ip netns exec "$NS_NAT" nft -f - <<NFT || return 1
table ip lab {
  counter sip_in {}
  counter sip_out {}
  counter media_in {}
  counter media_out {}
  chain nat_in {
    type nat hook prerouting priority dstnat;
    ip daddr $RELAY_OUT dnat to $RELAY_OUT_LOCAL
  }
  chain tally {
    type filter hook forward priority filter;
    ip daddr $RELAY_OUT_LOCAL udp dport 5060 counter name sip_in
    ip daddr $RELAY_OUT_LOCAL tcp dport { 5060, 5061 } counter name sip_in
    ip saddr $RELAY_OUT_LOCAL udp sport 5060 counter name sip_out
    ip saddr $RELAY_OUT_LOCAL tcp sport { 5060, 5061 } counter name sip_out
    ip daddr $RELAY_OUT_LOCAL udp dport 20000-31001 counter name media_in
    ip saddr $RELAY_OUT_LOCAL udp sport 20000-31001 counter name media_out
  }
  chain nat_out {
    type nat hook postrouting priority srcnat;
    ip saddr $RELAY_OUT_LOCAL snat to $RELAY_OUT
  }
}
NFT
}

# Packets a named counter of the DMZ router saw (LAB_DMZ=1).
nat_packets() {
  ip netns exec "$NS_NAT" nft -j list counter ip lab "$1" |
    python3 -c "import json,sys; print(next(o['counter']['packets'] for o in json.load(sys.stdin)['nftables'] if 'counter' in o))"
}

# A LAN subnet that is not directly connected (edge placement): a device
# (${LAB}-lan, dev0 $LAN_DEV) behind a router, which here is the PBX's
# namespace (lan0 $LAN_ROUTER, forwarding). The device reaches the relay's
# public address (NAT loopback): it is routed to the relay's inside port.
# The dataplane needs `routes { prefix: "$LAN_NET" next_hop: "$PBX" port:
# "inside" }` (lab_lan_dataplane_conf); lab_lan_route gives the relay's
# kernel the same route for SIP once the dataplane's TAPs are up.
lab_lan_up() {
  ip netns add "$NS_LAN" || return 1
  ip netns exec "$NS_LAN" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip netns exec "$NS_PBX" sysctl -qw net.ipv4.ip_forward=1
  ip -n "$NS_LAN" link set lo up
  ip link add lan0 netns "$NS_PBX" type veth peer name dev0 netns "$NS_LAN" || return 1
  ip -n "$NS_PBX" addr add $LAN_ROUTER/24 dev lan0
  ip -n "$NS_LAN" addr add $LAN_DEV/24 dev dev0
  ip -n "$NS_PBX" link set lan0 up
  ip -n "$NS_LAN" link set dev0 up
  ip -n "$NS_LAN" route add default via $LAN_ROUTER
  ip -n "$NS_PBX" route add $RELAY_OUT/32 via $RELAY_IN
  ip netns exec "$NS_LAN" ethtool -K dev0 tx off >/dev/null
  lab_sipp_wrappers lan
}
lab_lan_dataplane_conf() {  # SRC DST
  sed "s|^media {|routes { prefix: \"$LAN_NET\" next_hop: \"$PBX\" port: \"inside\" }\nmedia {|" "$1" >"$2"
}
lab_lan_route() { ip -n "$NS_RELAY" route replace $LAN_NET via $PBX dev "$LAB-in"; }

lab_down() {
  cp_stop
  lab_stop
  local ns
  for ns in "$NS_RELAY" "$NS_PHONE" "$NS_PBX" "$NS_NAT" "$NS_LAN"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"  # a test's resolv.conf for the namespace
  done
  [ "${LAB_KEEP:-0}" = 1 ] && echo "lab: kept $LAB_DIR" || rm -rf "$LAB_DIR"
  rm -rf "/var/run/dpdk/sluice-$LAB"
  return 0
}

# Starts NAME (sluice-dataplane or sluice-controlplane) in the relay
# namespace with CONF, logging to $LAB_DIR/NAME.log, and waits until
# `sluicectl PROBE` answers on its gRPC socket.
start_in_relay() {
  local name=$1 bin=$2 conf=$3 probe=$4 sock=$5
  shift 5
  local log=$LAB_DIR/$name.log pidf=$LAB_DIR/$name.pid
  ip netns exec "$NS_RELAY" "$bin" --config "$conf" "$@" >>"$log" 2>&1 &
  echo $! >"$pidf"
  local i
  for i in $(seq 1 100); do
    if "$BUILD/tools/sluicectl" --timeout 1 $probe >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$pidf")" 2>/dev/null; then
      echo "lab: sluice-$name exited:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "lab: sluice-$name did not answer on $sock" >&2
  cat "$log" >&2
  return 1
}

lab_start() {
  : >"$LAB_DIR/dataplane.log"
  start_in_relay dataplane "$BUILD/dataplane/sluice-dataplane" "${1:-$LAB_DIR/dataplane.conf}" stats "$SOCK" ||
    return 1
  # Behind the NAT the phones are off-link: the relay's kernel (SIP, on the
  # TAP the dataplane just made) reaches them through the DMZ router.
  [ "$LAB_DMZ" != 1 ] || ip -n "$NS_RELAY" route replace default via $NAT_DMZ dev "$LAB-out"
}

# Stops the process whose pid is in FILE (TERM, then KILL after 5 s).
stop_pidfile() {
  local pidf=$1
  [ -f "$pidf" ] || return 0
  local pid
  pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    local i
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$pidf"
}

lab_stop() { stop_pidfile "$LAB_DIR/dataplane.pid"; }

# The control plane runs in the relay namespace too: the dataplane's TAPs
# carry the relay addresses there. CP_ARGS adds options (--trace-sip).
cp_start() {
  start_in_relay controlplane "$BUILD/controlplane/sluice-controlplane" \
    "${1:-$LAB_DIR/controlplane.conf}" status "$CP_SOCK" ${CP_ARGS:-}
}

cp_stop() { stop_pidfile "$LAB_DIR/controlplane.pid"; cp_unthrottle; }

# Limits the running control plane to PCT percent of one core with a cgroup
# CPU quota (v2 cpu.max, or v1 cpu.cfs_quota_us), so that its signalling
# core is slower than the offered load: how overload control behaves.
# Returns 1 where no CPU controller can be written. cp_unthrottle lifts it.
cp_throttle() {
  local pct=$1 pid d=
  pid=$(cat "$LAB_DIR/controlplane.pid" 2>/dev/null) || return 1
  if grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    d=/sys/fs/cgroup/sluice-$LAB
    grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control || echo +cpu >/sys/fs/cgroup/cgroup.subtree_control
    mkdir -p "$d" && echo "$((pct * 1000)) 100000" >"$d/cpu.max" || return 1
  elif [ -w /sys/fs/cgroup/cpu/cgroup.procs ]; then
    d=/sys/fs/cgroup/cpu/sluice-$LAB
    mkdir -p "$d" && echo 100000 >"$d/cpu.cfs_period_us" &&
      echo $((pct * 1000)) >"$d/cpu.cfs_quota_us" || return 1
  else
    return 1
  fi
  echo "$d" >"$LAB_DIR/cp_cgroup"
  echo "$pid" >"$d/cgroup.procs"
}

cp_unthrottle() {
  local d pid
  d=$(cat "$LAB_DIR/cp_cgroup" 2>/dev/null) || return 0
  for pid in $(cat "$d/cgroup.procs" 2>/dev/null); do echo "$pid" >"$(dirname "$d")/cgroup.procs"; done
  rmdir "$d" 2>/dev/null
  rm -f "$LAB_DIR/cp_cgroup"
}

# SIPp (and socat) run inside the named lab namespaces (phone, pbx, lan):
# $LAB_DIR/sipp-phone, $LAB_DIR/sipp-pbx, ..., for tests/sipp/sipp.sh's
# SIPP_BIN.
lab_sipp_wrappers() {
  local ns
  for ns in "$@"; do
    printf '#!/bin/sh\nexec ip netns exec %s sipp "$@"\n' "$LAB-$ns" >"$LAB_DIR/sipp-$ns"
    printf '#!/bin/sh\nexec ip netns exec %s socat "$@"\n' "$LAB-$ns" >"$LAB_DIR/socat-$ns"
    chmod +x "$LAB_DIR/sipp-$ns" "$LAB_DIR/socat-$ns"
  done
}

sluicectl() { "$BUILD/tools/sluicectl" "$@"; }
in_phone() { ip netns exec "$NS_PHONE" "$@"; }
in_pbx() { ip netns exec "$NS_PBX" "$@"; }
in_relay() { ip netns exec "$NS_RELAY" "$@"; }
rtp_peer() { python3 "$LAB_ROOT/tests/integration/rtp_peer.py" "$@"; }

lab_demo() {
  trap lab_down EXIT
  echo "== lab: namespaces ${NS_PHONE} (teleworker) <-> ${NS_RELAY} (sluice) <-> ${NS_PBX} (PBX)"
  lab_up || return 1
  lab_start || return 1
  head -1 "$LAB_DIR/dataplane.log"
  echo "== programming a relayed RTP/RTCP stream pair over gRPC"
  sluicectl flows add --pair \
    --a-local $RELAY_OUT:20000 --a-port outside --a-peer $PHONE:4000 \
    --b-local $RELAY_IN:20002 --b-port inside --b-peer $PBX:5000 \
    --latch allow-n --max-senders 4 --with-rtcp --cookie 1 || return 1
  echo "== RTP both ways: teleworker $PHONE:4000 <-> relay <-> PBX $PBX:5000 (200 packets each, G.711 size)"
  # The phone is "behind a NAT": it sends from port 4400, not the 4000 its
  # SDP announced; latching learns the real source.
  # The PBX side listens first and answers once media is flowing; the phone
  # speaks first, as a caller does, so the PBX's media follows the latch.
  rtp_peer --bind $PBX:5000 --to $RELAY_IN:20002 --delay 0.5 --count 200 --pps 100 --ssrc 2222 \
    --expect 200 --expect-ssrc 1111 --wait 10 --netns "$NS_PBX" >"$LAB_DIR/pbx.json" &
  local pbx_pid=$!
  sleep 0.2
  rtp_peer --bind $PHONE:4400 --to $RELAY_OUT:20000 --count 200 --pps 100 --ssrc 1111 \
    --expect 200 --expect-ssrc 2222 --wait 10 --netns "$NS_PHONE" >"$LAB_DIR/phone.json"
  wait $pbx_pid
  echo "phone received: $(cat "$LAB_DIR/phone.json")"
  echo "pbx   received: $(cat "$LAB_DIR/pbx.json")"
  echo "== sluicectl flows list"
  sluicectl flows list
  echo "== sluicectl stats"
  sluicectl stats
  local ok=1
  grep -q '"received": 200, "bad": 0' "$LAB_DIR/phone.json" || ok=0
  grep -q '"received": 200, "bad": 0' "$LAB_DIR/pbx.json" || ok=0
  local peer="$BUILD/tests/integration/srtp_peer"
  if [ -x "$peer" ]; then
    echo "== SRTP re-key: the teleworker speaks AES_CM_128_HMAC_SHA1_80, the PBX AEAD_AES_128_GCM"
    local key_phone key_to_phone key_pbx key_to_pbx
    key_phone=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(30)).decode())')
    key_to_phone=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(30)).decode())')
    key_pbx=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(28)).decode())')
    key_to_pbx=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(28)).decode())')
    sluicectl flows add --pair \
      --a-local $RELAY_OUT:20010 --a-port outside --a-peer $PHONE:4010 \
      --b-local $RELAY_IN:20012 --b-port inside --b-peer $PBX:5010 --cookie 2 \
      --a-key "AES_CM_128_HMAC_SHA1_80:$key_phone" --a-relay-key "AES_CM_128_HMAC_SHA1_80:$key_to_phone" \
      --b-key "AEAD_AES_128_GCM:$key_pbx" --b-relay-key "AEAD_AES_128_GCM:$key_to_pbx" || return 1
    in_pbx "$peer" recv --bind $PBX:5010 --count 200 --timeout-ms 5000 --suite aead_aes_128_gcm \
      --key "$key_to_pbx" --json >"$LAB_DIR/pbx_srtp.json" &
    pbx_pid=$!
    sleep 0.2
    # Across the 16-bit sequence wrap: the rollover counter must follow.
    in_phone "$peer" send --to $RELAY_OUT:20010 --bind $PHONE:4010 --count 200 --seq 65436 \
      --suite aes_cm_128_hmac_sha1_80 --key "$key_phone" --json >/dev/null
    wait $pbx_pid
    echo "pbx   received: $(cat "$LAB_DIR/pbx_srtp.json")"
    sluicectl flows get $RELAY_OUT:20010
    grep -q '"ok":200,"bad":0,"auth_fail":0' "$LAB_DIR/pbx_srtp.json" || ok=0
  fi
  if command -v sipp >/dev/null; then
    echo "== SIP: sluice-controlplane anchors a real call (SIPp phone -> sluice -> SIPp PBX)"
    # The control plane owns the media port range: at start it removes the
    # hand-made flows above, which no call of its own owns.
    cp_start || return 1
    grep "resynchronised" "$LAB_DIR/controlplane.log"
    source "$LAB_ROOT/tests/sipp/sipp.sh"
    SIPP_LOG_ROOT=$LAB_DIR/sipp
    mkdir -p "$SIPP_LOG_ROOT"
    lab_sipp_wrappers phone pbx
    SIPP_BIN=$LAB_DIR/sipp-pbx sipp_run reg pbx_registrar udp $PBX 5060 -
    sleep 0.5
    SIPP_FG=1 SIPP_BIN=$LAB_DIR/sipp-phone sipp_run regph phone_register udp $PHONE 5070 $RELAY_OUT:5060 -s alice
    echo "== sluicectl registrations list"
    sluicectl registrations list
    sipp_stop "$SIPP_LOG_ROOT/reg"
    SIPP_BIN=$LAB_DIR/sipp-pbx sipp_run pbx pbx_answer udp $PBX 5060 -
    sleep 0.5
    SIPP_BIN=$LAB_DIR/sipp-phone sipp_run phone phone_call udp $PHONE 5070 $RELAY_OUT:5060 -s 100
    sleep 2.5
    echo "== sluicectl calls list (while the call runs: RTP both ways, then hold and resume)"
    sluicectl calls list
    echo "== sluicectl flows list"
    sluicectl flows list
    local id
    id=$(sluicectl --json calls list | python3 -c "import json,sys; c=json.load(sys.stdin).get('calls',[]); print(c[0]['id'] if c else '')")
    [ -n "$id" ] && { echo "== sluicectl calls get $id"; sluicectl calls get "$id"; }
    if sipp_ok "$SIPP_LOG_ROOT/phone" 30 && sipp_ok "$SIPP_LOG_ROOT/pbx" 30; then
      echo "phone and PBX: call completed (INVITE, RTP, hold, resume, BYE)"
    else
      ok=0
    fi
    sipp_stop_all
    if command -v baresip >/dev/null; then
      lab_baresip_call || ok=0
    fi
    echo "== sluicectl status"
    sluicectl status | head -12
    cp_stop
  fi
  lab_stop
  if [ $ok = 1 ]; then echo "== lab: media relayed both ways, byte-exact; SRTP re-keyed across the wrap; a SIP call anchored end to end"; else echo "== lab: FAILED"; return 1; fi
}

# The teleworker on SRTP: a baresip phone (SRTP mandatory) registers through
# sluice to a SIPp registrar, then calls a baresip PBX endpoint (plain RTP).
# The dataplane decrypts toward the PBX and encrypts toward the phone; each
# end must decode the other's tone (phone 440 Hz, PBX 1000 Hz).
lab_baresip_call() {
  source "$LAB_ROOT/tests/baresip/baresip.sh"
  local ph=$LAB_DIR/bs-phone pbx=$LAB_DIR/bs-pbx i fa fb
  echo "== SRTP teleworker: baresip phone (SRTP mandatory) -> sluice -> baresip PBX (plain RTP)"
  SIPP_BIN=$LAB_DIR/sipp-pbx sipp_run bsreg pbx_registrar udp $PBX 5060 -
  BARESIP_TONE=440 baresip_config "$ph" alice $PHONE:5080 srtp-mand $RELAY_OUT || return 1
  BARESIP_TONE=1000 baresip_config "$pbx" pbx $PBX:5060 none || return 1
  baresip_start "$NS_PHONE" "$ph" 30 || return 1
  for i in $(seq 1 50); do
    sluicectl registrations list | grep -q "sip:alice@$RELAY_OUT" && break
    sleep 0.1
  done
  sluicectl registrations list
  sipp_stop "$SIPP_LOG_ROOT/bsreg"
  baresip_start "$NS_PBX" "$pbx" 30 || return 1
  baresip_dial "$ph" "sip:pbx@$RELAY_OUT"
  baresip_wait_event "$ph" CALL_ESTABLISHED 8 >/dev/null || { baresip_stop "$ph"; baresip_stop "$pbx"; return 1; }
  sleep 3
  echo "== sluicectl calls list"
  sluicectl calls list
  local id
  id=$(sluicectl --json calls list | python3 -c "import json,sys; c=json.load(sys.stdin).get('calls',[]); print(c[0]['id'] if c else '')")
  [ -n "$id" ] && { echo "== sluicectl calls get $id"; sluicectl calls get "$id"; }
  echo "== sluicectl flows list"
  sluicectl flows list
  baresip_hangup "$ph"
  baresip_wait_event "$pbx" CALL_CLOSED 5 >/dev/null
  baresip_wait_log "$ph" '^errors:' 3 && baresip_wait_log "$pbx" '^errors:' 3
  read -r fa _ < <(baresip_rx_tone "$ph")
  read -r fb _ < <(baresip_rx_tone "$pbx")
  echo "phone: SRTP $(grep -o 'cryptosuite=[A-Z0-9_]*' "$ph/log" | head -1), received $(baresip_rx_packets "$ph") packets, decoded a ${fa:-?} Hz tone, $(baresip_srtp_errors "$ph") SRTP failures"
  echo "PBX:   plain RTP, received $(baresip_rx_packets "$pbx") packets, decoded a ${fb:-?} Hz tone"
  baresip_stop "$ph"
  baresip_stop "$pbx"
  [ "${fa:-0}" -ge 970 ] && [ "${fa:-0}" -le 1030 ] && [ "${fb:-0}" -ge 427 ] && [ "${fb:-0}" -le 453 ] &&
    [ "$(baresip_srtp_errors "$ph")" = 0 ] && echo "baresip phone and PBX: SRTP call completed, both tones decoded"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-demo}" in
    up) lab_up ;;
    down) lab_down ;;
    start) lab_start ;;
    stop) lab_stop ;;
    demo) lab_demo ;;
    *) echo "usage: lab/lab.sh up|down|start|stop|demo" >&2; exit 2 ;;
  esac
fi
