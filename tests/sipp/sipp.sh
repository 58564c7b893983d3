# SIPp driver for the Sluice SIP tests.  Source it:  . tests/sipp/sipp.sh
#
#   sipp_run NAME SCENARIO TRANSPORT LOCAL_IP LOCAL_PORT REMOTE [sipp args...]
#       Start SIPp in the background (SIPP_FG=1: in the foreground, and
#       return its exit code).  Logs go to $SIPP_LOG_ROOT/NAME, which is
#       also SIPp's working directory; its path is left in SIPP_LAST_DIR.
#       SCENARIO: a name in this directory (pbx_answer, phone_call.xml) or
#       a path.  TRANSPORT: udp|tcp|tls (or u1|t1|l1).  REMOTE: host:port
#       for a UAC, "" or - for a UAS.  Extra args go to SIPp last (-s USER,
#       -au/-ap, -key K V, -r RATE, -m N, -oocsf, ...).
#   sipp_wait LOGDIR [SECS]   wait for the run to end; its exit code
#   sipp_ok LOGDIR [SECS]     wait, succeed if SIPp exited 0 (all calls
#                             successful), else say why on stderr
#   sipp_listening PROTO IP PORT [SECS]   wait until something listens there
#   sipp_stop LOGDIR          end one run;  sipp_stop_all: every run started
#                             from this shell (only those, by their pids)
#   sipp_summary LOGDIR       calls created/successful/failed, from the stats
#   sipp_rtt LOGDIR [RTD]     response times of one rtd (default "setup"):
#                             count, min, avg, p50, p95, max in ms
#   sipp_has_tls              whether $SIPP_BIN was built with TLS
#   TLS without it (Debian's sip-tester has none): a UAC given
#   SIPP_TLS_CA runs over TCP through a socat TLS tunnel (below)
#   sipp_tls_cert DIR         throwaway self-signed cert.pem/key.pem in DIR
#   sipp_gen_pcmu FILE [SECS] raw 8 kHz mu-law tone (the rtp_stream file)
#   sipp_rtp_count IFACE SECS PORT_LO PORT_HI   (root: AF_PACKET) count the
#                             IPv4 UDP packets to/from that port range for
#                             SECS, then print "src:port dst:port packets";
#                             run it in the background next to a call
#
# Settings (environment): SIPP_BIN (sipp), SIPP_LOG_ROOT (a new temporary
# directory), SIPP_CALLS (-m, 1), SIPP_TIMEOUT (-timeout in s, 30),
# SIPP_MEDIA_IP (-mi, LOCAL_IP), SIPP_MEDIA_PORT (-mp, by default
# 20000 + 4 * (LOCAL_PORT mod 10000): SIPp binds -mp and -mp+2 at start),
# SIPP_TRACE_MSG (1: -trace_msg; default on for <= 20 calls),
# SIPP_TLS_CERT / SIPP_TLS_KEY (default: made by sipp_tls_cert), SIPP_FG.
#
# The TLS tunnel, for a SIPp without TLS: with SIPP_TLS_CA set, a UAC run
# over tls becomes SIPp on TCP sending (-rsa) to a socat on LOCAL_IP:
# LOCAL_PORT+20000 (SIPP_TLS_TUNNEL_PORT), which opens one TLS connection
# (1.2 or later) to REMOTE with SIPP_TLS_CERT/SIPP_TLS_KEY as the client
# certificate, checking the server's against SIPP_TLS_CA and its common
# name against SIPP_TLS_SERVER_NAME (default: REMOTE's host).  Messages
# keep REMOTE in their URIs; their Via and Contact say TCP, the transport
# SIPp itself speaks.  SIPP_SOCAT (default socat) runs it, so a namespace
# wrapper like SIPP_BIN's puts it beside SIPp; its log is tunnel.log, and
# it ends with the run (sipp_stop too).
#
# Every run gets: -nostdin -bind_local -i/-p -mi/-mp, -m, -timeout with
# -timeout_error, -trace_err -trace_stat -trace_screen -trace_logs
# -trace_rtt -rtt_freq 1, all files named in LOGDIR (rtt: *_rtt.csv).
# SIPp exit codes: 0 all calls succeeded, 1 some failed, 97 stopped by an
# internal command, 99 no call processed, 255 fatal (also -timeout hit
# with -timeout_error), 254 could not bind.

SIPP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SIPP_BIN=${SIPP_BIN:-sipp}
SIPP_PIDS=()

_sipp_log_root() {
  if [ -z "${SIPP_LOG_ROOT:-}" ]; then
    SIPP_LOG_ROOT=$(mktemp -d /tmp/sluice-sipp.XXXXXX) || return 1
  fi
  mkdir -p "$SIPP_LOG_ROOT"
}

sipp_has_tls() { "$SIPP_BIN" -v 2>&1 | grep -q 'TLS'; }

sipp_tls_cert() {
  local dir=$1
  mkdir -p "$dir" || return 1
  [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
    -subj "/CN=sluice-sipp-test" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 || return 1
  chmod 600 "$dir/key.pem"
}

sipp_gen_pcmu() {
  local file=$1 secs=${2:-1}
  python3 - "$file" "$secs" <<'EOF'
import math, sys
def ulaw(s):  # G.711 mu-law of a 16-bit sample
    sign = 0x80 if s < 0 else 0
    s = min(abs(s), 32635) + 0x84
    exp, mask = 7, 0x4000
    while exp > 0 and not s & mask:
        exp -= 1
        mask >>= 1
    return ~(sign | exp << 4 | (s >> (exp + 3)) & 0x0F) & 0xFF
n = int(8000 * float(sys.argv[2]))
tone = (int(8000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(n))
open(sys.argv[1], 'wb').write(bytes(ulaw(s) for s in tone))
EOF
}

_sipp_transport() {
  case $1 in
    udp|u1|UDP) echo u1 ;;
    tcp|t1|TCP) echo t1 ;;
    tls|l1|TLS) echo l1 ;;
    *) return 1 ;;
  esac
}

_sipp_has_arg() {  # _sipp_has_arg OPT ARGS...: is OPT among ARGS
  local opt=$1 a
  shift
  for a in "$@"; do [ "$a" = "$opt" ] && return 0; done
  return 1
}

sipp_run() {
  if [ $# -lt 6 ]; then
    echo "usage: sipp_run NAME SCENARIO TRANSPORT LOCAL_IP LOCAL_PORT REMOTE [sipp args]" >&2
    return 2
  fi
  local name=$1 scen=$2 tr=$3 lip=$4 lport=$5 remote=$6
  shift 6
  local t
  t=$(_sipp_transport "$tr") || { echo "sipp_run: unknown transport '$tr'" >&2; return 2; }
  case $scen in
    */*) ;;
    *.xml) scen=$SIPP_DIR/$scen ;;
    *) scen=$SIPP_DIR/$scen.xml ;;
  esac
  [ -f "$scen" ] || { echo "sipp_run: no scenario $scen" >&2; return 2; }
  scen=$(cd "$(dirname "$scen")" && pwd)/$(basename "$scen")
  _sipp_log_root || return 2
  local dir=$SIPP_LOG_ROOT/$name
  rm -rf "$dir"
  mkdir -p "$dir" || return 2
  # shellcheck disable=SC2034  # for the caller
  SIPP_LAST_DIR=$dir

  local tunnel=() tport=
  if [ "$t" = l1 ] && ! sipp_has_tls && [ -n "${SIPP_TLS_CA:-}" ]; then
    if [ -z "$remote" ] || [ "$remote" = - ]; then
      echo "sipp_run: the TLS tunnel serves a UAC only (no REMOTE given)" >&2
      return 2
    fi
    command -v "${SIPP_SOCAT:-socat}" >/dev/null ||
      { echo "sipp_run: no socat for the TLS tunnel" >&2; return 2; }
    [ -n "${SIPP_TLS_CERT:-}" ] && [ -n "${SIPP_TLS_KEY:-}" ] ||
      { echo "sipp_run: the TLS tunnel needs SIPP_TLS_CERT and SIPP_TLS_KEY" >&2; return 2; }
    tport=${SIPP_TLS_TUNNEL_PORT:-$((lport + 20000))}
    tunnel=("${SIPP_SOCAT:-socat}" -d -d "TCP-LISTEN:$tport,bind=$lip,reuseaddr"
            "OPENSSL:$remote,cert=$SIPP_TLS_CERT,key=$SIPP_TLS_KEY,cafile=$SIPP_TLS_CA,verify=1,commonname=${SIPP_TLS_SERVER_NAME:-${remote%:*}},openssl-min-proto-version=TLS1.2")
    t=t1  # SIPp speaks TCP, to the tunnel
  fi

  local calls=${SIPP_CALLS:-1}
  # SIPp binds -mp and -mp+2 (audio, video) at start: 4 ports per SIP port
  local mport=${SIPP_MEDIA_PORT:-$(( 20000 + (lport % 10000) * 4 ))}
  local args=()
  [ -n "$remote" ] && [ "$remote" != - ] && args+=("$remote")
  args+=(-sf "$scen" -t "$t" -i "$lip" -p "$lport" -bind_local
         -mi "${SIPP_MEDIA_IP:-$lip}" -mp "$mport" -ci "$lip" -nostdin
         -trace_err -error_file "$dir/errors.log"
         -trace_stat -stf "$dir/stats.csv"
         -trace_screen -screen_file "$dir/screen.log"
         -trace_logs -log_file "$dir/logs.log"
         -trace_rtt -rtt_freq 1)
  [ ${#tunnel[@]} -gt 0 ] && args+=(-rsa "$lip:$tport")
  _sipp_has_arg -m "$@" || args+=(-m "$calls")
  # <pause/> without milliseconds lasts -d (phone_call.xml's talk time).
  _sipp_has_arg -d "$@" || args+=(-d 3000)
  _sipp_has_arg -timeout "$@" || args+=(-timeout "${SIPP_TIMEOUT:-30}s" -timeout_error)
  local trace=${SIPP_TRACE_MSG:-}
  if [ -z "$trace" ]; then
    trace=0
    [ "$calls" -le 20 ] 2>/dev/null && trace=1
  fi
  [ "$trace" = 1 ] && args+=(-trace_msg -message_file "$dir/messages.log")
  # phone_uas takes its incoming call in an out-of-call scenario
  if [ "$(basename "$scen")" = phone_uas.xml ] && ! _sipp_has_arg -oocsf "$@"; then
    args+=(-oocsf "$SIPP_DIR/phone_uas_incoming.xml")
  fi
  if [ "$t" = l1 ]; then
    if ! sipp_has_tls; then
      echo "sipp_run: $SIPP_BIN has no TLS support ($("$SIPP_BIN" -v 2>&1 | grep -o 'SIPp v[^ ]*[^ .]'))" >&2
      echo 254 >"$dir/rc"
      return 3
    fi
    local cert=${SIPP_TLS_CERT:-} key=${SIPP_TLS_KEY:-}
    if [ -z "$cert" ]; then
      sipp_tls_cert "$SIPP_LOG_ROOT/tls" || { echo "sipp_run: openssl failed" >&2; return 2; }
      cert=$SIPP_LOG_ROOT/tls/cert.pem key=$SIPP_LOG_ROOT/tls/key.pem
    fi
    args+=(-tls_cert "$cert" -tls_key "$key")
  fi
  # the rtp_stream scenarios name this file relative to the working dir
  if [ ! -s "$SIPP_LOG_ROOT/sluice_pcmu.raw" ]; then
    sipp_gen_pcmu "$SIPP_LOG_ROOT/sluice_pcmu.raw" 1 || return 2
  fi
  cp "$SIPP_LOG_ROOT/sluice_pcmu.raw" "$dir/"
  args+=("$@")
  printf '%q ' "$SIPP_BIN" "${args[@]}" >"$dir/cmd"
  echo >>"$dir/cmd"

  if [ ${#tunnel[@]} -gt 0 ]; then
    printf '%q ' "${tunnel[@]}" >"$dir/tunnel.cmd"
    "${tunnel[@]}" </dev/null >"$dir/tunnel.log" 2>&1 &
    echo $! >"$dir/tunnel.pid"
    _sipp_tunnel_ready "$dir" "$lip" "$tport" ||
      { echo "sipp_run: the TLS tunnel did not start (see $dir/tunnel.log)" >&2; _sipp_tunnel_stop "$dir"; return 2; }
  fi

  if [ "${SIPP_FG:-0}" = 1 ]; then
    (cd "$dir" && exec "$SIPP_BIN" "${args[@]}" </dev/null >stdout.log 2>stderr.log)
    local rc=$?
    echo $rc >"$dir/rc"
    _sipp_tunnel_stop "$dir"
    return $rc
  fi
  (
    cd "$dir" || exit 1
    "$SIPP_BIN" "${args[@]}" </dev/null >stdout.log 2>stderr.log &
    echo $! >pid
    wait $!
    echo $? >rc
    _sipp_tunnel_stop "$dir"
  ) &
  # wait (briefly) for the pid file, so that sipp_stop can always work
  for _ in $(seq 50); do [ -s "$dir/pid" ] && break; sleep 0.02; done
  SIPP_PIDS+=("$(cat "$dir/pid" 2>/dev/null)")
  return 0
}

# The tunnel's socat listens in SIPp's network namespace, which this shell
# may not be in: it says so in its log.
_sipp_tunnel_ready() {  # DIR IP PORT
  local i
  for i in $(seq 50); do
    grep -q "listening on .*$2:$3" "$1/tunnel.log" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

_sipp_tunnel_stop() {
  local pid
  pid=$(cat "$1/tunnel.pid" 2>/dev/null) || return 0
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
  return 0
}

sipp_wait() {
  local dir=$1 secs=${2:-$(( ${SIPP_TIMEOUT:-30} + 10 ))}
  local end=$(( $(date +%s) + secs ))
  while [ ! -s "$dir/rc" ]; do
    if [ "$(date +%s)" -ge "$end" ]; then
      echo "sipp_wait: $(basename "$dir") still running after ${secs}s, stopping it" >&2
      sipp_stop "$dir"
      sleep 0.2
      [ -s "$dir/rc" ] || echo 124 >"$dir/rc"
      break
    fi
    sleep 0.1
  done
  return "$(cat "$dir/rc")"
}

_sipp_rc_text() {
  case $1 in
    0) echo "all calls successful" ;;
    1) echo "at least one call failed" ;;
    97) echo "stopped by an internal command" ;;
    99) echo "no call processed" ;;
    124) echo "killed by sipp_wait" ;;
    254) echo "could not bind / not started" ;;
    255) echo "fatal error or -timeout reached" ;;
    *) echo "exit code $1" ;;
  esac
}

sipp_ok() {
  local dir=$1
  sipp_wait "$dir" "${2:-}"
  local rc=$?
  [ $rc -eq 0 ] && return 0
  {
    echo "sipp $(basename "$dir"): $(_sipp_rc_text $rc) (rc=$rc); $(sipp_summary "$dir")"
    grep -v '^$' "$dir/stderr.log" 2>/dev/null | grep -v '^Resolving' | head -5 | sed 's/^/  /'
    grep -v '^$' "$dir/errors.log" 2>/dev/null | head -8 | sed 's/^/  /'
  } >&2
  return 1
}

sipp_listening() {
  local proto=$1 ip=$2 port=$3 secs=${4:-5} opt
  case $proto in udp|u1) opt=-Hulnp ;; *) opt=-Htlnp ;; esac
  local end=$(( $(date +%s) + secs ))
  command -v ss >/dev/null || { sleep 0.5; return 0; }
  while ! ss $opt 2>/dev/null | awk '{print $4}' | grep -qx "$ip:$port"; do
    [ "$(date +%s)" -ge "$end" ] && return 1
    sleep 0.05
  done
}

sipp_stop() {
  local dir=$1 pid
  _sipp_tunnel_stop "$dir"
  pid=$(cat "$dir/pid" 2>/dev/null) || return 0
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  return 0
}

sipp_stop_all() {
  local pid
  for pid in "${SIPP_PIDS[@]}"; do
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
  done
  sleep 0.3
  for pid in "${SIPP_PIDS[@]}"; do
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  done
  SIPP_PIDS=()
  return 0
}

sipp_summary() {
  python3 - "$1/stats.csv" <<'EOF'
import csv, sys
try:
    rows = [r for r in csv.reader(open(sys.argv[1]), delimiter=';') if r]
    head, last = rows[0], rows[-1]
    v = dict(zip(head, last))
    out = ['created=%s' % v.get('TotalCallCreated', '?'),
           'successful=%s' % v.get('SuccessfulCall(C)', '?'),
           'failed=%s' % v.get('FailedCall(C)', '?'),
           'rate=%s/s' % v.get('CallRate(C)', '?')]
    why = [k[6:-3] + '=' + x for k, x in v.items()
           if k.startswith('Failed') and k.endswith('(C)') and k != 'FailedCall(C)'
           and x not in ('', '0')]
    print(' '.join(out + why))
except Exception as e:
    print('no statistics (%s)' % e)
EOF
}

sipp_rtt() {
  local dir=$1 rtd=${2:-setup}
  python3 - "$rtd" "$dir"/*_rtt.csv <<'EOF'
import sys
rtd, files = sys.argv[1], sys.argv[2:]
vals = []
for f in files:
    try:
        for line in open(f):
            p = line.strip().split(';')
            if len(p) >= 3 and p[2] == rtd:
                vals.append(float(p[1]))
    except OSError:
        pass
if not vals:
    print('%s: no samples' % rtd)
    sys.exit(1)
vals.sort()
q = lambda f: vals[min(len(vals) - 1, int(f * len(vals)))]
print('%s: n=%d min=%g avg=%.3f p50=%g p95=%g max=%g ms'
      % (rtd, len(vals), vals[0], sum(vals) / len(vals), q(0.5), q(0.95), vals[-1]))
EOF
}

sipp_rtp_count() {
  python3 - "$@" <<'EOF'
import collections, socket, struct, sys, time
iface, secs, lo, hi = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
s.bind((iface, 0))
s.settimeout(0.2)
flows = collections.Counter()
end = time.time() + secs
while time.time() < end:
    try:
        pkt, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING:   # lo shows each packet twice
        continue
    ip = pkt[14:]
    if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
        continue
    udp = ip[(ip[0] & 15) * 4:]
    sport, dport = struct.unpack('!HH', udp[:4])
    if lo <= sport <= hi or lo <= dport <= hi:
        flows[(socket.inet_ntoa(ip[12:16]), sport, socket.inet_ntoa(ip[16:20]), dport)] += 1
for (sa, sp, da, dp), n in sorted(flows.items()):
    print('%s:%d %s:%d %d' % (sa, sp, da, dp, n))
EOF
}
