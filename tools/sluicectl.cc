// sluicectl: the operator CLI for Sluice.
//
// A thin client of two gRPC services: the dataplane's
// sluice.dataplane.v1.Dataplane (flows, stats) and the control plane's
// sluice.admin.v1.Admin (calls, registrations, upstreams, blocked sources,
// status). Human tables by default, protobuf JSON with --json. Exit status:
// 0 success, 1 gRPC error (printed as "sluicectl: CODE: message"), 2 bad
// command line.
#include <arpa/inet.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <memory>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli.h"
#include "sluice/admin/v1/admin.grpc.pb.h"
#include "sluice/dataplane/v1/dataplane.grpc.pb.h"
#include "sluice_version.h"

namespace sluicectl {
namespace {

namespace pb = sluice::dataplane::v1;
namespace apb = sluice::admin::v1;

constexpr char kDefaultSocket[] = "unix:/run/sluice/dataplane.sock";
constexpr char kDefaultCpSocket[] = "unix:/run/sluice/controlplane.sock";
constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kU32Max = std::numeric_limits<uint32_t>::max();

// ---------------------------------------------------------------------------
// Help texts

const char kMainHelp[] =
    "Usage: sluicectl [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]\n"
    "\n"
    "Operator CLI for Sluice, a client of two gRPC services: the dataplane's\n"
    "sluice.dataplane.v1.Dataplane and the control plane's sluice.admin.v1.Admin.\n"
    "\n"
    "Dataplane commands (--socket, $SLUICE_DATAPLANE):\n"
    "  flows list     list flows\n"
    "  flows get      show one flow in detail\n"
    "  flows watch    stream flow events (latching, peer changes, timeouts, drops)\n"
    "  flows add      create or replace flows: one flow, a relayed pair, or a JSON batch\n"
    "  flows delete   remove flows by key\n"
    "  stats          dataplane summary: ports, workers, drops, neighbors\n"
    "\n"
    "Control plane commands (--cp-socket, $SLUICE_CONTROLPLANE):\n"
    "  calls list           list calls: state, parties, duration, media, hold\n"
    "  calls get            show one call: both legs and every media stream\n"
    "  calls watch          stream control plane events (calls, registrations,\n"
    "                       blocks, upstreams, media)\n"
    "  registrations list   list registered phones (AOR, contact, NAT binding)\n"
    "  upstreams list       list upstream servers (PBX) and their health\n"
    "  blocked list         list sources blocked for authentication failures\n"
    "  blocked remove       lift a block early\n"
    "  status               control plane summary and counters\n"
    "\n"
    "  help [COMMAND]       show help for a command\n"
    "\n"
    "Global options (before or after the command):\n"
    "  --socket ADDR      the dataplane's gRPC address, unix:/path or host:port\n"
    "                     (default: $SLUICE_DATAPLANE, else unix:/run/sluice/dataplane.sock)\n"
    "  --cp-socket ADDR   the control plane's gRPC address, unix:/path or host:port\n"
    "                     (default: $SLUICE_CONTROLPLANE, else\n"
    "                     unix:/run/sluice/controlplane.sock)\n"
    "  --timeout SECONDS  deadline for each request (default 5). After 'flows add',\n"
    "                     --timeout is the flow's inactivity timeout: give the\n"
    "                     deadline before the command there.\n"
    "  --json             print protobuf JSON instead of tables (one document per call;\n"
    "                     one object per line for 'flows watch' and 'calls watch')\n"
    "  -h, --help         show help ('sluicectl COMMAND --help' for a command)\n"
    "  --version          print the version\n"
    "\n"
    "Exit status: 0 success, 1 the dataplane or control plane returned an error or\n"
    "could not be reached, 2 bad command line.\n";

const char kFlowsHelp[] =
    "Usage: sluicectl flows VERB [ARGS] [OPTIONS]\n"
    "\n"
    "Verbs:\n"
    "  list     list flows\n"
    "  get      show one flow in detail\n"
    "  watch    stream flow events\n"
    "  add      create or replace flows\n"
    "  delete   remove flows by key\n"
    "\n"
    "'sluicectl flows VERB --help' describes a verb.\n";

const char kListHelp[] =
    "Usage: sluicectl flows list [--cookie N] [--page-size N] [--all]\n"
    "\n"
    "Lists flows with their counters. Columns: LOCAL (the flow key), KIND, STATE,\n"
    "PEER (latched sender), DEST (where packets go now), EGRESS (port), PKTS, BYTES,\n"
    "DROPS (all reasons), GAPS (RTP sequence gaps), IDLE (seconds since the last\n"
    "accepted packet), WORKER.\n"
    "\n"
    "Options:\n"
    "  --cookie N      only flows with this control-plane cookie (N > 0)\n"
    "  --page-size N   flows per request (1..10000, default 1000); given alone it\n"
    "                  lists only the first page\n"
    "  --all           with --page-size: follow the pages to the end (the default\n"
    "                  without --page-size)\n"
    "  --json          print {\"flows\":[...],\"total\":N}; total counts every flow in\n"
    "                  the dataplane, with or without --cookie\n";

const char kGetHelp[] =
    "Usage: sluicectl flows get ADDR:PORT\n"
    "\n"
    "Shows one flow, keyed by its relay-local address and port: state, senders,\n"
    "counters, drops per reason and the programmed spec. --json prints the Flow\n"
    "message.\n";

const char kWatchHelp[] =
    "Usage: sluicectl flows watch [--types TYPE[,TYPE...]] [--count N]\n"
    "\n"
    "Streams dataplane events, one line each: TIME (UTC), TYPE, KEY, PEER, COOKIE,\n"
    "DROPS. Runs until interrupted (Ctrl-C), until --count events have arrived, or\n"
    "until the dataplane ends the stream. A slow reader loses events; the next\n"
    "event then says how many were lost.\n"
    "\n"
    "Options:\n"
    "  --types LIST   only these event types (comma-separated, repeatable):\n"
    "                 latched, peer_changed, timed_out, drops, resumed,\n                 srtp_auth_failed\n"
    "  --count N      exit after N events\n"
    "  --json         one Event JSON object per line\n";

const char kAddHelp[] =
    "Usage:\n"
    "  sluicectl flows add --local ADDR:PORT --egress-port NAME --source ADDR:PORT\n"
    "                      [--dest ADDR:PORT] [--expect ADDR:PORT] [FLOW OPTIONS]\n"
    "  sluicectl flows add --pair --a-local ADDR:PORT --a-port NAME --a-peer ADDR:PORT\n"
    "                      --b-local ADDR:PORT --b-port NAME --b-peer ADDR:PORT\n"
    "                      [--with-rtcp] [FLOW OPTIONS]\n"
    "  sluicectl flows add --file FILE [--generation N]\n"
    "\n"
    "Creates or replaces flows in one batch (UpsertFlows) and prints the counts\n"
    "(created, updated, unchanged, stale) and the dataplane's generation.\n"
    "\n"
    "One flow:\n"
    "  --local ADDR:PORT     the flow key: relay address and port it receives on\n"
    "  --egress-port NAME    the dataplane port packets leave through\n"
    "  --source ADDR:PORT    relay address:port packets leave from (egress source)\n"
    "  --dest ADDR:PORT      destination (default: unknown until the reverse flow\n"
    "                        latches a sender)\n"
    "  --expect ADDR:PORT    the peer the signalling announced (expected peer)\n"
    "\n"
    "Both directions of a relayed stream (--pair). Side A's peer is reached through\n"
    "port --a-port from relay address --a-local; side B likewise:\n"
    "  flow 1: key a-local, egress b-port from b-local to b-peer, expects a-peer\n"
    "  flow 2: key b-local, egress a-port from a-local to a-peer, expects b-peer\n"
    "  --with-rtcp           also the two RTCP flows, every port + 1 (peer port 0\n"
    "                        stays 0)\n"
    "  --a-key SUITE:KEY     SRTP: the key side A sends with (its a=crypto); flow 1\n"
    "                        decrypts with it\n"
    "  --a-relay-key SUITE:KEY  the key the relay announced to A; flow 2 encrypts\n"
    "  --b-key, --b-relay-key   the same for side B (flow 2 decrypts, flow 1\n"
    "                        encrypts). Keys given for one side only convert\n"
    "                        between SRTP and plain RTP.\n"
    "\n"
    "A batch from a file:\n"
    "  --file FILE           an UpsertFlowsRequest in protobuf JSON ('-': stdin);\n"
    "                        its generation is kept unless --generation is given\n"
    "                        (0 or absent: the default below)\n"
    "\n"
    "Flow options (applied to every flow of --pair):\n"
    "  --latch POLICY        first (default), allow-n or strict\n"
    "  --max-senders N       distinct senders for allow-n, 1..10 (default 4)\n"
    "  --kind KIND           rtp (default), rtcp or mux (RTP and RTCP on one port)\n"
    "  --dscp N              DSCP of relayed packets, 0..63 (default 46)\n"
    "  --ttl-reset N         set TTL to N (1..255) instead of decrementing it\n"
    "  --police-pps N        police to N packets/s (default: no policer)\n"
    "  --police-burst N      policer burst in packets (default: pps/10, at least 8)\n"
    "  --timeout SECONDS     inactivity timeout before a TIMED_OUT event (default 60)\n"
    "  --cookie N            opaque control-plane handle (shown by list --cookie)\n"
    "  --decrypt SUITE:KEY   (one flow) verify and decrypt arriving SRTP/SRTCP\n"
    "  --encrypt SUITE:KEY   (one flow) protect leaving packets\n"
    "                        SUITE: AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32,\n"
    "                        AES_256_CM_HMAC_SHA1_80, AEAD_AES_128_GCM or\n"
    "                        AEAD_AES_256_GCM; KEY: the SDES inline key, base64 of\n"
    "                        master key || salt ('inline:' prefix allowed, no MKI).\n"
    "                        Keys on a command line are visible to other local\n"
    "                        users: prefer --file (mode 0600) in production. Keys\n"
    "                        are never printed, not even by --dry-run.\n"
    "  --generation N        batch generation (default: unix time in milliseconds);\n"
    "                        a flow stored with a newer generation is left alone\n"
    "  --dry-run             print the request as JSON and send nothing\n"
    "\n"
    "The global request deadline must come before the command here:\n"
    "  sluicectl --timeout 10 flows add ...\n";

const char kDeleteHelp[] =
    "Usage: sluicectl flows delete ADDR:PORT [ADDR:PORT...] [--generation N]\n"
    "\n"
    "Removes flows by key and prints the counts (deleted, not found, stale).\n"
    "Unknown keys are counted, not an error.\n"
    "\n"
    "Options:\n"
    "  --generation N   delete only flows stored with generation <= N, and raise\n"
    "                   the dataplane's generation to N (default 0: delete\n"
    "                   whatever the flow's generation)\n";

const char kStatsHelp[] =
    "Usage: sluicectl stats\n"
    "\n"
    "Prints the dataplane summary (version, uptime, generation, flows and capacity,\n"
    "flow table memory) and tables of ports, workers, drops by reason and\n"
    "neighbors. --json prints the Stats message.\n";

const char kCallsHelp[] =
    "Usage: sluicectl calls VERB [ARGS] [OPTIONS]\n"
    "\n"
    "Calls through the control plane (--cp-socket, $SLUICE_CONTROLPLANE).\n"
    "\n"
    "Verbs:\n"
    "  list     list calls\n"
    "  get      show one call in detail\n"
    "  watch    stream control plane events\n"
    "\n"
    "'sluicectl calls VERB --help' describes a verb.\n";

const char kCallsListHelp[] =
    "Usage: sluicectl calls list\n"
    "\n"
    "Lists the control plane's calls. Columns: ID (also the cookie of the call's\n"
    "dataplane flows), STATE (calling, early, confirmed, terminating), DIR\n"
    "(outbound: the teleworker called; inbound: the PBX called), FROM and TO (the\n"
    "outside leg's URIs), DURATION (since the answer), STREAMS, MEDIA (per stream:\n"
    "type, first codec, outside > inside protection: SRTP:SUITE or RTP), HOLD.\n"
    "--json prints the ListCallsResponse.\n";

const char kCallsGetHelp[] =
    "Usage: sluicectl calls get ID\n"
    "\n"
    "Shows one call: state, both SIP legs (call-id, tags, From, To, remote target,\n"
    "transport, signalling peer, user agent) and every media stream (codecs,\n"
    "rtcp-mux, direction, relay/advertised/peer address, profile and SRTP suite on\n"
    "each side, dataplane flow keys). SRTP keys are never shown. --json prints the\n"
    "Call message.\n";

const char kCallsWatchHelp[] =
    "Usage: sluicectl calls watch [--types TYPE[,TYPE...]] [--count N]\n"
    "\n"
    "Streams control plane events, one line each: TIME (UTC), TYPE, CALL, AOR,\n"
    "ADDRESS, DETAIL. Runs until interrupted (Ctrl-C), until --count events have\n"
    "arrived, or until the control plane ends the stream. A slow reader loses\n"
    "events; the next event then says how many were lost.\n"
    "\n"
    "Options:\n"
    "  --types LIST   only these event types (comma-separated, repeatable):\n"
    "                 call_started, call_answered, call_updated, call_ended,\n"
    "                 registered, unregistered, blocked, unblocked, upstream_up,\n"
    "                 upstream_down, media_latched, media_timeout, overload\n"
    "  --count N      exit after N events\n"
    "  --json         one AdminEvent JSON object per line\n";

const char kRegistrationsHelp[] =
    "Usage: sluicectl registrations list [--aor AOR]\n"
    "\n"
    "Lists the phones registered through the control plane (--cp-socket,\n"
    "$SLUICE_CONTROLPLANE). Columns: AOR, CONTACT (the phone's own Contact URI),\n"
    "TRANSPORT, SOURCE (the NAT binding the phone's SIP came from), EXPIRES\n"
    "(seconds left), USER-AGENT, LISTENER.\n"
    "\n"
    "Options:\n"
    "  --aor AOR   only this address of record, exactly as registered\n"
    "              (e.g. sip:alice@example.com)\n"
    "  --json      print the ListRegistrationsResponse\n";

const char kUpstreamsHelp[] =
    "Usage: sluicectl upstreams list\n"
    "\n"
    "Lists the upstream servers (the PBX side) the control plane routes to\n"
    "(--cp-socket, $SLUICE_CONTROLPLANE). Columns: HOST, ENDPOINT, TRANSPORT,\n"
    "PRIO, WEIGHT, STATE (up, down, unknown: not probed yet), ACTIVE (yes: new\n"
    "requests go there now), RTT (milliseconds, the last OPTIONS round trip),\n"
    "FAILURES (consecutive), REQUESTS (routed to it). --json prints the\n"
    "ListUpstreamsResponse.\n";

const char kBlockedHelp[] =
    "Usage: sluicectl blocked VERB [ARGS] [OPTIONS]\n"
    "\n"
    "Sources the control plane blocks after repeated authentication failures\n"
    "(--cp-socket, $SLUICE_CONTROLPLANE).\n"
    "\n"
    "Verbs:\n"
    "  list     list blocked sources\n"
    "  remove   lift a block early\n"
    "\n"
    "'sluicectl blocked VERB --help' describes a verb.\n";

const char kBlockedListHelp[] =
    "Usage: sluicectl blocked list [--all]\n"
    "\n"
    "Lists blocked source addresses. Columns: ADDRESS, FAILURES (authentication\n"
    "failures counted in the window), BLOCKED, REMAINING (seconds of the block),\n"
    "DROPPED (requests dropped while blocked), LAST-FAILURE (UTC).\n"
    "\n"
    "Options:\n"
    "  --all    also sources with failures counted but not (yet) blocked\n"
    "  --json   print the ListBlockedResponse\n";

const char kBlockedRemoveHelp[] =
    "Usage: sluicectl blocked remove ADDRESS\n"
    "\n"
    "Lifts the block of one source address early; its failure count restarts at\n"
    "zero. Prints 'unblocked ADDRESS', or 'ADDRESS was not blocked' (not an\n"
    "error). --json prints the UnblockResponse.\n";

const char kStatusHelp[] =
    "Usage: sluicectl status [--all]\n"
    "\n"
    "Prints the control plane summary (version, uptime, calls, registrations,\n"
    "blocked sources, transactions, connections, the dataplane link and its\n"
    "generation, flows, relay ports, state memory) and its counters.\n"
    "\n"
    "Options:\n"
    "  --all    also the counters that are zero\n"
    "  --json   print the Status message (every counter)\n";

// ---------------------------------------------------------------------------
// Errors and the clients

// A gRPC call failed; main prints "sluicectl: CODE: message" and exits 1.
class RpcError : public std::runtime_error {
 public:
  RpcError(grpc::StatusCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  grpc::StatusCode code() const { return code_; }

 private:
  grpc::StatusCode code_;
};

const char* code_name(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

struct Options {
  std::string socket;     // the dataplane
  std::string cp_socket;  // the control plane
  double timeout = 5;
  bool json = false;
};

// A channel to one service: the unary deadline and the error mapping that
// both clients share.
class Connection {
 public:
  Connection(const Options& o, const std::string& target) : target_(target), timeout_(o.timeout) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);  // a ListFlows page of 10000 flows is large
    channel_ = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  }

  std::chrono::system_clock::time_point deadline() const {
    return std::chrono::system_clock::now() + std::chrono::microseconds(int64_t(timeout_ * 1e6));
  }
  // A fresh context with the unary deadline.
  std::unique_ptr<grpc::ClientContext> context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(deadline());
    return ctx;
  }
  grpc::Channel& channel() { return *channel_; }
  const std::string& target() const { return target_; }
  double timeout() const { return timeout_; }

  // Throws RpcError for a failed call; a deadline says what it waited for.
  void check(const grpc::Status& s) const {
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
      throw RpcError(s.error_code(), absl::StrCat("no answer from ", target_, " within ",
                                                  timeout_, " s (--timeout)"));
    if (!s.ok()) throw RpcError(s.error_code(), s.error_message());
  }

 protected:
  std::shared_ptr<grpc::Channel> channel_;

 private:
  std::string target_;
  double timeout_;
};

// The dataplane (--socket).
class Client : public Connection {
 public:
  explicit Client(const Options& o)
      : Connection(o, o.socket), stub_(pb::Dataplane::NewStub(channel_)) {}
  pb::Dataplane::Stub& stub() { return *stub_; }

 private:
  std::unique_ptr<pb::Dataplane::Stub> stub_;
};

// The control plane's operator API (--cp-socket).
class AdminClient : public Connection {
 public:
  explicit AdminClient(const Options& o)
      : Connection(o, o.cp_socket), stub_(apb::Admin::NewStub(channel_)) {}
  apb::Admin::Stub& stub() { return *stub_; }

 private:
  std::unique_ptr<apb::Admin::Stub> stub_;
};

// ---------------------------------------------------------------------------
// Formatting

std::string to_json(const google::protobuf::Message& m, bool pretty = false) {
  google::protobuf::util::JsonPrintOptions opt;
  opt.always_print_primitive_fields = true;  // a stable shape for scripts
  opt.add_whitespace = pretty;
  std::string out;
  auto st = google::protobuf::util::MessageToJsonString(m, &out, opt);
  if (!st.ok())
    throw RpcError(grpc::StatusCode::INTERNAL,
                   "cannot encode JSON: " + std::string(st.message().data(), st.message().size()));
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string ep(const pb::Endpoint& e) {
  if (e.address().empty() || (e.address() == "0.0.0.0" && e.port() == 0)) return "-";
  if (e.address().find(':') != std::string::npos)
    return absl::StrCat("[", e.address(), "]:", e.port());
  return absl::StrCat(e.address(), ":", e.port());
}

std::string key_str(const pb::FlowKey& k) {
  pb::Endpoint e;
  e.set_address(k.local_address());
  e.set_port(k.local_port());
  return ep(e);
}

std::string kind_name(pb::FlowKind k) {
  switch (k) {
    case pb::FLOW_KIND_UNSPECIFIED:
    case pb::FLOW_KIND_RTP:
      return "rtp";
    case pb::FLOW_KIND_RTCP:
      return "rtcp";
    case pb::FLOW_KIND_RTP_RTCP_MUX:
      return "mux";
    default:
      return absl::StrCat("kind-", int(k));
  }
}

std::string state_name(pb::FlowState s) {
  switch (s) {
    case pb::FLOW_STATE_WAITING:
      return "waiting";
    case pb::FLOW_STATE_ACTIVE:
      return "active";
    case pb::FLOW_STATE_TIMED_OUT:
      return "timed-out";
    case pb::FLOW_STATE_UNSPECIFIED:
      return "-";
    default:
      return absl::StrCat("state-", int(s));
  }
}

std::string latch_name(pb::LatchPolicy l) {
  switch (l) {
    case pb::LATCH_POLICY_UNSPECIFIED:
    case pb::LATCH_POLICY_FIRST:
      return "first";
    case pb::LATCH_POLICY_ALLOW_N:
      return "allow-n";
    case pb::LATCH_POLICY_STRICT:
      return "strict";
    default:
      return absl::StrCat("latch-", int(l));
  }
}

// Event types by their command-line name (a proto enum value of either
// service's EventType).
struct EventTypeName {
  int type;
  const char* name;
};
constexpr EventTypeName kEventTypes[] = {
    {pb::EVENT_TYPE_LATCHED, "latched"},     {pb::EVENT_TYPE_PEER_CHANGED, "peer_changed"},
    {pb::EVENT_TYPE_TIMED_OUT, "timed_out"}, {pb::EVENT_TYPE_DROPS, "drops"},
    {pb::EVENT_TYPE_RESUMED, "resumed"},     {pb::EVENT_TYPE_SRTP_AUTH_FAILED, "srtp_auth_failed"},
};
constexpr EventTypeName kAdminEventTypes[] = {
    {apb::EVENT_TYPE_CALL_STARTED, "call_started"},
    {apb::EVENT_TYPE_CALL_ANSWERED, "call_answered"},
    {apb::EVENT_TYPE_CALL_UPDATED, "call_updated"},
    {apb::EVENT_TYPE_CALL_ENDED, "call_ended"},
    {apb::EVENT_TYPE_REGISTERED, "registered"},
    {apb::EVENT_TYPE_UNREGISTERED, "unregistered"},
    {apb::EVENT_TYPE_BLOCKED, "blocked"},
    {apb::EVENT_TYPE_UNBLOCKED, "unblocked"},
    {apb::EVENT_TYPE_UPSTREAM_UP, "upstream_up"},
    {apb::EVENT_TYPE_UPSTREAM_DOWN, "upstream_down"},
    {apb::EVENT_TYPE_MEDIA_LATCHED, "media_latched"},
    {apb::EVENT_TYPE_MEDIA_TIMEOUT, "media_timeout"},
    {apb::EVENT_TYPE_OVERLOAD, "overload"},
};

template <size_t N>
std::string type_name(const EventTypeName (&table)[N], int t) {
  for (const auto& e : table)
    if (e.type == t) return e.name;
  return absl::StrCat("type-", t);
}

std::string event_name(pb::EventType t) { return type_name(kEventTypes, t); }

uint64_t drop_sum(const google::protobuf::RepeatedPtrField<pb::DropCount>& d) {
  uint64_t n = 0;
  for (const auto& c : d) n += c.packets();
  return n;
}

std::string drops_inline(const google::protobuf::RepeatedPtrField<pb::DropCount>& d) {
  if (d.empty()) return "-";
  std::vector<std::string> parts;
  for (const auto& c : d) parts.push_back(absl::StrCat(c.reason(), "=", c.packets()));
  return absl::StrJoin(parts, ",");
}

std::string seconds1(const google::protobuf::Duration& d) {
  return format_seconds1(d.seconds(), d.nanos());
}

// "label:" padded so that values line up.
void kv(const std::string& label, const std::string& value, int indent = 0) {
  std::printf("%*s%-*s %s\n", indent, "", 22 - indent, (label + ":").c_str(), value.c_str());
}

uint64_t now_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

void no_positional(const Args& a) {
  if (!a.positional().empty())
    throw UsageError(absl::StrCat("unexpected argument '", a.positional()[0], "'"));
}

pb::FlowKey parse_key(const std::string& flag, const std::string& v) {
  HostPort hp = parse_endpoint(flag, v, 1);
  pb::FlowKey k;
  k.set_local_address(hp.address);
  k.set_local_port(hp.port);
  return k;
}

pb::Endpoint parse_ep(const std::string& flag, const std::string& v, uint32_t min_port) {
  HostPort hp = parse_endpoint(flag, v, min_port);
  pb::Endpoint e;
  e.set_address(hp.address);
  e.set_port(hp.port);
  return e;
}

// ---------------------------------------------------------------------------
// flows list

const char* crypto_mode_name(pb::CryptoMode m) {
  switch (m) {
    case pb::CRYPTO_MODE_DECRYPT: return "decrypt";
    case pb::CRYPTO_MODE_ENCRYPT: return "encrypt";
    case pb::CRYPTO_MODE_REKEY: return "rekey";
    default: return "-";
  }
}

std::string suite_name(pb::SrtpSuite s) {
  std::string n = pb::SrtpSuite_Name(s);
  return absl::StartsWith(n, "SRTP_SUITE_") ? n.substr(11) : n;
}

void print_flow_table(const std::vector<pb::Flow>& flows) {
  Table t({"LOCAL", "KIND", "STATE", "PEER", "DEST", "EGRESS", "SRTP", "PKTS", "BYTES", "DROPS",
           "GAPS", "IDLE", "WORKER"},
          "lllllllrrrrrr");
  for (const auto& f : flows) {
    t.add({key_str(f.spec().key()), kind_name(f.spec().kind()), state_name(f.state()),
           ep(f.latched_peer()), ep(f.current_destination()), f.spec().egress_port(),
           crypto_mode_name(f.crypto().mode()), absl::StrCat(f.packets()), absl::StrCat(f.bytes()), absl::StrCat(drop_sum(f.drops())),
           absl::StrCat(f.sequence_gaps()), f.has_idle() ? seconds1(f.idle()) : "-",
           absl::StrCat(f.worker())});
  }
  t.print(stdout);
}

int flows_list(const Options& o, const Args& a) {
  no_positional(a);
  pb::ListFlowsRequest req;
  if (a.has("cookie")) req.set_cookie(parse_uint("--cookie", a.value("cookie"), 1, kU64Max));
  bool follow = true;
  if (a.has("page-size")) {
    req.set_page_size(uint32_t(parse_uint("--page-size", a.value("page-size"), 1, 10000)));
    follow = a.has("all");
  }
  Client c(o);
  std::vector<pb::Flow> flows;
  uint64_t total = 0;
  std::string left;  // a page token when pages were left unread
  for (;;) {
    pb::ListFlowsResponse resp;
    auto ctx = c.context();
    c.check(c.stub().ListFlows(ctx.get(), req, &resp));
    for (auto& f : *resp.mutable_flows()) flows.push_back(std::move(f));
    total = resp.total();
    if (resp.next_page_token().empty()) break;
    if (!follow) {
      left = resp.next_page_token();
      break;
    }
    if (resp.next_page_token() == req.page_token())
      throw RpcError(grpc::StatusCode::INTERNAL, "ListFlows returned the same page token twice");
    req.set_page_token(resp.next_page_token());
  }
  if (o.json) {
    std::string out = "{\"flows\":[";
    for (size_t i = 0; i < flows.size(); ++i) {
      if (i) out += ",";
      out += to_json(flows[i]);
    }
    absl::StrAppend(&out, "],\"total\":", total, "}");
    std::printf("%s\n", out.c_str());
  } else if (flows.empty()) {
    std::fprintf(stderr, "no flows%s (%llu in the dataplane)\n",
                 req.cookie() ? " with this cookie" : "", (unsigned long long)total);
  } else {
    print_flow_table(flows);
  }
  if (!left.empty())
    std::fprintf(stderr, "sluicectl: listed the first %zu flows; more follow (add --all)\n",
                 flows.size());
  return 0;
}

// ---------------------------------------------------------------------------
// flows get

int flows_get(const Options& o, const Args& a) {
  if (a.positional().size() != 1)
    throw UsageError(a.positional().empty() ? "flows get needs one ADDR:PORT"
                                            : "flows get takes exactly one ADDR:PORT");
  pb::GetFlowRequest req;
  *req.mutable_key() = parse_key("flow key", a.positional()[0]);
  Client c(o);
  pb::Flow f;
  auto ctx = c.context();
  c.check(c.stub().GetFlow(ctx.get(), req, &f));
  if (o.json) {
    std::printf("%s\n", to_json(f).c_str());
    return 0;
  }
  const pb::FlowSpec& s = f.spec();
  kv("key", key_str(s.key()));
  kv("kind", kind_name(s.kind()));
  kv("state", state_name(f.state()));
  kv("latched peer", ep(f.latched_peer()));
  std::vector<std::string> senders;
  for (const auto& e : f.senders()) senders.push_back(ep(e));
  kv("senders", senders.empty() ? "-" : absl::StrJoin(senders, ", "));
  kv("current destination", ep(f.current_destination()));
  kv("packets", absl::StrCat(f.packets()));
  kv("bytes", absl::StrCat(f.bytes()));
  kv("sequence gaps", absl::StrCat(f.sequence_gaps()));
  kv("last ssrc", f.packets() ? absl::StrFormat("0x%08x", f.last_ssrc()) : "-");
  kv("last payload type", f.packets() ? absl::StrCat(f.last_payload_type()) : "-");
  kv("idle", f.has_idle() ? seconds1(f.idle()) + " s" : "-");
  kv("worker", absl::StrCat(f.worker()));
  kv("generation", absl::StrCat(f.generation()));
  kv("cookie", absl::StrCat(s.cookie()));
  std::printf("spec:\n");
  kv("egress port", s.egress_port(), 2);
  kv("egress source", ep(s.egress_source()), 2);
  kv("destination", ep(s.destination()), 2);
  kv("expected peer", ep(s.expected_peer()), 2);
  kv("latch",
     s.latch() == pb::LATCH_POLICY_ALLOW_N
         ? absl::StrCat("allow-n (max ", s.max_senders(), " senders)")
         : latch_name(s.latch()),
     2);
  kv("dscp", s.has_dscp() ? absl::StrCat(s.dscp()) : "46 (default)", 2);
  kv("ttl",
     s.ttl_policy() == pb::TTL_POLICY_RESET ? absl::StrCat("reset to ", s.ttl_value())
                                            : "decrement",
     2);
  kv("policer",
     s.policer().rate_pps()
         ? absl::StrCat(s.policer().rate_pps(), " pps, burst ", s.policer().burst())
         : "none",
     2);
  const auto& to = s.inactivity_timeout();
  kv("inactivity timeout", to.seconds() || to.nanos() ? seconds1(to) + " s" : "60.0 s (default)",
     2);
  if (f.has_crypto() && f.crypto().mode() != pb::CRYPTO_MODE_PASSTHROUGH &&
      f.crypto().mode() != pb::CRYPTO_MODE_UNSPECIFIED) {
    const pb::CryptoStatus& c = f.crypto();
    std::printf("srtp:\n");
    kv("mode", crypto_mode_name(c.mode()), 2);
    if (c.decrypt_suite()) kv("decrypt suite", suite_name(c.decrypt_suite()), 2);
    if (c.encrypt_suite()) kv("encrypt suite", suite_name(c.encrypt_suite()), 2);
    if (c.decrypt_suite()) kv("decrypted", absl::StrCat(c.decrypted(), " (roc ", c.decrypt_roc(), ")"), 2);
    if (c.encrypt_suite()) kv("encrypted", absl::StrCat(c.encrypted(), " (roc ", c.encrypt_roc(), ")"), 2);
    kv("auth failed", absl::StrCat(c.auth_failed()), 2);
    kv("replayed", absl::StrCat(c.replayed()), 2);
    kv("malformed", absl::StrCat(c.malformed()), 2);
    kv("previous key", absl::StrCat(c.previous_key_live() ? "live" : "retired", ", ",
                                    c.previous_key_used(), " packets"), 2);
    kv("owner changes", absl::StrCat(c.owner_changes()), 2);
    kv("key memory", absl::StrCat(c.key_bytes(), " B"), 2);
  } else {
    kv("srtp", "passthrough");
  }
  if (f.drops().empty()) {
    kv("drops", "none");
  } else {
    std::printf("drops:\n");
    for (const auto& d : f.drops()) kv(d.reason(), absl::StrCat(d.packets()), 2);
  }
  return 0;
}

// ---------------------------------------------------------------------------
// flows watch

// SIGINT and SIGTERM end a watch. They are blocked before gRPC starts its
// threads (which inherit the mask), and a SignalWaiter thread takes them with
// sigwait() and cancels the call.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);  // our own wake-up at the end
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

class SignalWaiter {
 public:
  SignalWaiter(const sigset_t& set, grpc::ClientContext* ctx) : set_(set) {
    thread_ = std::thread([this, ctx] {
      int sig = 0;
      sigwait(&set_, &sig);
      if (sig != SIGUSR1) {
        stopped_ = true;
        ctx->TryCancel();
      }
    });
  }
  ~SignalWaiter() {
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }
  bool stopped() const { return stopped_; }

 private:
  sigset_t set_;
  std::atomic<bool> stopped_{false};
  std::thread thread_;
};

// --types LIST (comma-separated, repeatable): the names of `table`, each
// type once. Empty: all types.
template <size_t N>
std::vector<int> parse_types(const Args& a, const EventTypeName (&table)[N]) {
  std::vector<int> out;
  for (const std::string& v : a.values("types")) {
    for (absl::string_view t : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
      std::string name(t);
      std::replace(name.begin(), name.end(), '-', '_');
      auto it = std::find_if(std::begin(table), std::end(table),
                             [&](const EventTypeName& e) { return name == e.name; });
      if (it == std::end(table)) {
        std::vector<std::string> names;
        for (const auto& e : table) names.push_back(e.name);
        throw UsageError(absl::StrCat("--types: unknown event type '", t, "' (",
                                      absl::StrJoin(names, ", "), ")"));
      }
      if (std::find(out.begin(), out.end(), it->type) == out.end()) out.push_back(it->type);
    }
  }
  if (a.has("types") && out.empty()) throw UsageError("--types: no event type given");
  return out;
}

// A stream has no deadline; bound the connection attempt instead. A refused
// connection (TRANSIENT_FAILURE) lets the call fail right away with gRPC's
// own UNAVAILABLE message. False: a signal ended the wait.
bool wait_connected(Connection& c, const SignalWaiter& signals) {
  auto deadline = c.deadline();
  auto state = c.channel().GetState(true);
  while (state != GRPC_CHANNEL_READY && state != GRPC_CHANNEL_TRANSIENT_FAILURE &&
         state != GRPC_CHANNEL_SHUTDOWN) {
    if (signals.stopped()) return false;
    auto now = std::chrono::system_clock::now();
    if (now >= deadline)
      throw RpcError(grpc::StatusCode::UNAVAILABLE,
                     absl::StrCat("no connection to ", c.target(), " within ", c.timeout(), " s"));
    c.channel().WaitForStateChange(state, std::min(deadline, now + std::chrono::milliseconds(100)));
    state = c.channel().GetState(true);
  }
  return true;
}

// Reads a watch stream until `count` events (0: no limit), a stop signal, a
// failed write to stdout or the end of the stream; print(ev, n) prints the
// n-th event (from 0). `server` names the peer for a stream it ended.
template <typename Event, typename Print>
int follow_events(const Options& o, const Connection& c, grpc::ClientContext& ctx,
                  const SignalWaiter& signals, grpc::ClientReader<Event>& reader, uint64_t count,
                  const char* server, Print print) {
  Event ev;
  uint64_t n = 0;
  bool done = false;  // we ended the stream ourselves
  while (reader.Read(&ev)) {
    print(ev, n);
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) done = true;  // reader went away
    if (++n == count) done = true;
    if (done) {
      ctx.TryCancel();
      while (reader.Read(&ev)) {
      }
      break;
    }
  }
  grpc::Status st = reader.Finish();
  if (done || signals.stopped()) return 0;
  c.check(st);
  if (!o.json) std::fprintf(stderr, "sluicectl: %s ended the event stream\n", server);
  return 0;
}

// The event's time, or now when it has none.
std::string event_time(bool has_time, const google::protobuf::Timestamp& t) {
  if (has_time) return format_utc_ms(t.seconds(), t.nanos());
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  return format_utc_ms(ns / 1000000000, int32_t(ns % 1000000000));
}

void print_event(const Options& o, const pb::Event& ev) {
  if (o.json) {
    std::printf("%s\n", to_json(ev).c_str());
    return;
  }
  std::string when = event_time(ev.has_time(), ev.time());
  std::string key = ev.has_key() && !ev.key().local_address().empty() ? key_str(ev.key()) : "-";
  std::string line =
      absl::StrFormat("%-24s  %-12s  %-21s  %-21s  %-10d  %s", when, event_name(ev.type()), key,
                      ep(ev.peer()), ev.cookie(), drops_inline(ev.drops()));
  if (ev.lost_before())
    absl::StrAppend(&line, "  (", ev.lost_before(), " events lost before this one)");
  std::printf("%s\n", line.c_str());
}

int flows_watch(const Options& o, const Args& a) {
  no_positional(a);
  pb::WatchEventsRequest req;
  for (int t : parse_types(a, kEventTypes)) req.add_types(pb::EventType(t));
  uint64_t count = a.has("count") ? parse_uint("--count", a.value("count"), 1, kU64Max) : 0;

  sigset_t stop_set = block_stop_signals();  // before gRPC starts any thread
  Client c(o);
  grpc::ClientContext ctx;
  SignalWaiter signals(stop_set, &ctx);  // declared after ctx: joined before ctx goes
  if (!wait_connected(c, signals)) return 0;

  auto reader = c.stub().WatchEvents(&ctx, req);
  return follow_events(o, c, ctx, signals, *reader, count, "the dataplane",
                       [&](const pb::Event& ev, uint64_t n) {
                         if (!o.json && n == 0)
                           std::printf("%-24s  %-12s  %-21s  %-21s  %-10s  %s\n", "TIME", "TYPE",
                                       "KEY", "PEER", "COOKIE", "DROPS");
                         print_event(o, ev);
                       });
}

// ---------------------------------------------------------------------------
// flows add

// The flow options shared by all three forms, applied to a template spec.
pb::FlowSpec spec_template(const Args& a) {
  pb::FlowSpec s;
  if (a.has("latch")) {
    std::string v = a.value("latch");
    if (v == "first") {
      s.set_latch(pb::LATCH_POLICY_FIRST);
    } else if (v == "allow-n" || v == "allow_n") {
      s.set_latch(pb::LATCH_POLICY_ALLOW_N);
    } else if (v == "strict") {
      s.set_latch(pb::LATCH_POLICY_STRICT);
    } else {
      throw UsageError(absl::StrCat("--latch: '", v, "' is not first, allow-n or strict"));
    }
  }
  if (a.has("max-senders")) {
    if (s.latch() != pb::LATCH_POLICY_ALLOW_N)
      throw UsageError("--max-senders needs --latch allow-n");
    s.set_max_senders(uint32_t(parse_uint("--max-senders", a.value("max-senders"), 1, 10)));
  }
  if (a.has("kind")) {
    std::string v = a.value("kind");
    if (v == "rtp") {
      s.set_kind(pb::FLOW_KIND_RTP);
    } else if (v == "rtcp") {
      s.set_kind(pb::FLOW_KIND_RTCP);
    } else if (v == "mux") {
      s.set_kind(pb::FLOW_KIND_RTP_RTCP_MUX);
    } else {
      throw UsageError(absl::StrCat("--kind: '", v, "' is not rtp, rtcp or mux"));
    }
  }
  if (a.has("dscp")) s.set_dscp(uint32_t(parse_uint("--dscp", a.value("dscp"), 0, 63)));
  if (a.has("ttl-reset")) {
    s.set_ttl_policy(pb::TTL_POLICY_RESET);
    s.set_ttl_value(uint32_t(parse_uint("--ttl-reset", a.value("ttl-reset"), 1, 255)));
  }
  if (a.has("police-pps"))
    s.mutable_policer()->set_rate_pps(
        uint32_t(parse_uint("--police-pps", a.value("police-pps"), 1, 10000000)));
  if (a.has("police-burst")) {
    if (!a.has("police-pps")) throw UsageError("--police-burst needs --police-pps");
    s.mutable_policer()->set_burst(
        uint32_t(parse_uint("--police-burst", a.value("police-burst"), 1, kU32Max)));
  }
  if (a.has("timeout")) {
    double sec = parse_seconds("--timeout", a.value("timeout"), 0.001, 86400);
    int64_t ms = std::llround(sec * 1000);
    s.mutable_inactivity_timeout()->set_seconds(ms / 1000);
    s.mutable_inactivity_timeout()->set_nanos(int32_t(ms % 1000) * 1000000);
  }
  if (a.has("cookie")) s.set_cookie(parse_uint("--cookie", a.value("cookie"), 0, kU64Max));
  return s;
}

std::string read_input(const std::string& path) {
  std::ostringstream ss;
  if (path == "-") {
    ss << std::cin.rdbuf();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      throw UsageError(absl::StrCat("--file: cannot open ", path, ": ", std::strerror(errno)));
    ss << in.rdbuf();
  }
  return ss.str();
}

// Bumps an endpoint's port by one for the RTCP companion flow (0 stays 0).
void next_port(const std::string& what, pb::Endpoint* e) {
  if (e->port() == 0) return;
  if (e->port() >= 65535)
    throw UsageError(absl::StrCat("--with-rtcp: ", what, " port ", e->port(), " has no port + 1"));
  e->set_port(e->port() + 1);
}

// SUITE:KEY, KEY being the SDES inline key (RFC 4568): base64 of the master
// key followed by the master salt.
pb::SrtpKey parse_srtp_key(const std::string& flag, const std::string& v) {
  struct S {
    const char* sdes;
    const char* lower;
    pb::SrtpSuite suite;
    size_t key, salt;
  };
  static const S suites[] = {
      {"AES_CM_128_HMAC_SHA1_80", "aes_cm_128_hmac_sha1_80", pb::SRTP_SUITE_AES_CM_128_HMAC_SHA1_80, 16, 14},
      {"AES_CM_128_HMAC_SHA1_32", "aes_cm_128_hmac_sha1_32", pb::SRTP_SUITE_AES_CM_128_HMAC_SHA1_32, 16, 14},
      {"AES_256_CM_HMAC_SHA1_80", "aes_256_cm_hmac_sha1_80", pb::SRTP_SUITE_AES_256_CM_HMAC_SHA1_80, 32, 14},
      {"AEAD_AES_128_GCM", "aead_aes_128_gcm", pb::SRTP_SUITE_AEAD_AES_128_GCM, 16, 12},
      {"AEAD_AES_256_GCM", "aead_aes_256_gcm", pb::SRTP_SUITE_AEAD_AES_256_GCM, 32, 12},
  };
  size_t colon = v.find(':');
  if (colon == std::string::npos)
    throw UsageError(absl::StrCat(flag, ": expected SUITE:KEY"));
  std::string name = v.substr(0, colon);
  std::string key = v.substr(colon + 1);
  if (absl::StartsWith(key, "inline:")) key = key.substr(7);
  size_t bar = key.find('|');
  if (bar != std::string::npos) {
    std::string rest = key.substr(bar + 1);
    if (rest.find(':') != std::string::npos)
      throw UsageError(absl::StrCat(flag, ": MKI is not supported"));
    key = key.substr(0, bar);  // a key lifetime is accepted and ignored
  }
  const S* s = nullptr;
  for (const S& c : suites)
    if (name == c.sdes || name == c.lower) s = &c;
  if (!s) throw UsageError(absl::StrCat(flag, ": unknown SRTP suite '", name, "'"));
  std::string raw;
  if (!absl::Base64Unescape(key, &raw))
    throw UsageError(absl::StrCat(flag, ": the key is not base64"));
  if (raw.size() != s->key + s->salt)
    throw UsageError(absl::StrCat(flag, ": ", s->sdes, " needs ", s->key + s->salt,
                                  " key bytes (master key || salt), got ", raw.size()));
  pb::SrtpKey k;
  k.set_suite(s->suite);
  k.set_master_key(raw.substr(0, s->key));
  k.set_master_salt(raw.substr(s->key));
  return k;
}

int flows_add(const Options& o, const Args& a) {
  no_positional(a);
  static const std::set<std::string> single_flags = {"local", "egress-port", "source", "dest",
                                                     "expect", "decrypt", "encrypt"};
  static const std::set<std::string> pair_flags = {
      "a-local", "a-port", "a-peer",      "b-local",    "b-port",
      "b-peer",  "with-rtcp", "a-key", "a-relay-key", "b-key", "b-relay-key"};
  static const std::set<std::string> flow_flags = {"latch",        "max-senders", "kind",
                                                   "dscp",         "ttl-reset",   "police-pps",
                                                   "police-burst", "timeout",     "cookie"};
  const bool pair = a.has("pair");
  const bool file = a.has("file");
  if (pair && file) throw UsageError("--pair and --file cannot be combined");
  for (const std::string& f : a.given()) {
    if (single_flags.count(f) && (pair || file))
      throw UsageError(
          absl::StrCat("--", f, " cannot be combined with ", pair ? "--pair" : "--file"));
    if (pair_flags.count(f) && !pair) throw UsageError(absl::StrCat("--", f, " needs --pair"));
    if (flow_flags.count(f) && file)
      throw UsageError(
          absl::StrCat("--", f, " cannot be combined with --file (set it in the file)"));
  }
  auto need = [&](const std::string& f) {
    if (!a.has(f))
      throw UsageError(absl::StrCat("flows add", pair ? " --pair" : "", " needs --", f));
    return a.value(f);
  };

  pb::UpsertFlowsRequest req;
  if (file) {
    std::string path = a.value("file");
    std::string text = read_input(path);
    google::protobuf::util::JsonParseOptions po;
    auto st = google::protobuf::util::JsonStringToMessage(text, &req, po);
    if (!st.ok())
      throw UsageError(absl::StrCat("--file: ", path, " is not an UpsertFlowsRequest in JSON: ",
                                    std::string(st.message().data(), st.message().size())));
    if (req.flows().empty()) throw UsageError(absl::StrCat("--file: ", path, " holds no flows"));
  } else if (pair) {
    pb::FlowSpec base = spec_template(a);
    pb::FlowKey a_local = parse_key("--a-local", need("a-local"));
    pb::FlowKey b_local = parse_key("--b-local", need("b-local"));
    std::string a_port = need("a-port");
    std::string b_port = need("b-port");
    pb::Endpoint a_peer = parse_ep("--a-peer", need("a-peer"), 0);
    pb::Endpoint b_peer = parse_ep("--b-peer", need("b-peer"), 0);
    if (a_local.local_address() == b_local.local_address() &&
        a_local.local_port() == b_local.local_port())
      throw UsageError("--a-local and --b-local must differ");
    auto as_ep = [](const pb::FlowKey& k) {
      pb::Endpoint e;
      e.set_address(k.local_address());
      e.set_port(k.local_port());
      return e;
    };
    pb::FlowSpec* f1 = req.add_flows();
    *f1 = base;
    *f1->mutable_key() = a_local;
    f1->set_egress_port(b_port);
    *f1->mutable_egress_source() = as_ep(b_local);
    *f1->mutable_destination() = b_peer;
    *f1->mutable_expected_peer() = a_peer;
    pb::FlowSpec* f2 = req.add_flows();
    *f2 = base;
    *f2->mutable_key() = b_local;
    f2->set_egress_port(a_port);
    *f2->mutable_egress_source() = as_ep(a_local);
    *f2->mutable_destination() = a_peer;
    *f2->mutable_expected_peer() = b_peer;
    if (a.has("a-key"))
      *f1->mutable_crypto()->mutable_decrypt() = parse_srtp_key("--a-key", a.value("a-key"));
    if (a.has("b-relay-key"))
      *f1->mutable_crypto()->mutable_encrypt() =
          parse_srtp_key("--b-relay-key", a.value("b-relay-key"));
    if (a.has("b-key"))
      *f2->mutable_crypto()->mutable_decrypt() = parse_srtp_key("--b-key", a.value("b-key"));
    if (a.has("a-relay-key"))
      *f2->mutable_crypto()->mutable_encrypt() =
          parse_srtp_key("--a-relay-key", a.value("a-relay-key"));
    if (a.has("with-rtcp")) {
      if (base.kind() == pb::FLOW_KIND_RTCP || base.kind() == pb::FLOW_KIND_RTP_RTCP_MUX)
        throw UsageError("--with-rtcp needs --kind rtp (the RTCP flows are added on port + 1)");
      for (int i = 0; i < 2; ++i) {
        pb::FlowSpec r = req.flows(i);
        r.set_kind(pb::FLOW_KIND_RTCP);
        if (r.key().local_port() >= 65535)
          throw UsageError(
              absl::StrCat("--with-rtcp: key port ", r.key().local_port(), " has no port + 1"));
        r.mutable_key()->set_local_port(r.key().local_port() + 1);
        next_port("egress source", r.mutable_egress_source());
        next_port("destination", r.mutable_destination());
        next_port("expected peer", r.mutable_expected_peer());
        *req.add_flows() = std::move(r);
      }
    }
  } else {
    pb::FlowSpec* f = req.add_flows();
    *f = spec_template(a);
    *f->mutable_key() = parse_key("--local", need("local"));
    f->set_egress_port(need("egress-port"));
    *f->mutable_egress_source() = parse_ep("--source", need("source"), 1);
    if (a.has("dest")) *f->mutable_destination() = parse_ep("--dest", a.value("dest"), 0);
    if (a.has("expect")) *f->mutable_expected_peer() = parse_ep("--expect", a.value("expect"), 0);
    if (a.has("decrypt"))
      *f->mutable_crypto()->mutable_decrypt() = parse_srtp_key("--decrypt", a.value("decrypt"));
    if (a.has("encrypt"))
      *f->mutable_crypto()->mutable_encrypt() = parse_srtp_key("--encrypt", a.value("encrypt"));
  }
  if (a.has("generation"))
    req.set_generation(parse_uint("--generation", a.value("generation"), 0, kU64Max));
  else if (req.generation() == 0)
    req.set_generation(now_ms());

  if (a.has("dry-run")) {
    // Keys never leave through sluicectl's output.
    pb::UpsertFlowsRequest shown = req;
    for (auto& f : *shown.mutable_flows()) {
      for (pb::SrtpKey* k : {f.mutable_crypto()->mutable_decrypt(), f.mutable_crypto()->mutable_encrypt()}) {
        if (!k->master_key().empty()) k->set_master_key("<redacted>");
        if (!k->master_salt().empty()) k->set_master_salt("<redacted>");
      }
      if (!f.crypto().has_decrypt() || f.crypto().decrypt().suite() == 0)
        f.mutable_crypto()->clear_decrypt();
      if (!f.crypto().has_encrypt() || f.crypto().encrypt().suite() == 0)
        f.mutable_crypto()->clear_encrypt();
      if (!f.crypto().has_decrypt() && !f.crypto().has_encrypt()) f.clear_crypto();
    }
    std::printf("%s\n", to_json(shown, !o.json).c_str());
    return 0;
  }
  Client c(o);
  pb::UpsertFlowsResponse resp;
  auto ctx = c.context();
  c.check(c.stub().UpsertFlows(ctx.get(), req, &resp));
  if (o.json) {
    std::printf("%s\n", to_json(resp).c_str());
  } else {
    std::printf("created %u, updated %u, unchanged %u, stale %u; dataplane generation %llu\n",
                resp.created(), resp.updated(), resp.unchanged(), resp.stale(),
                (unsigned long long)resp.generation());
  }
  if (resp.stale())
    std::fprintf(stderr,
                 "sluicectl: warning: %u flow(s) left alone: the dataplane holds them with a "
                 "generation newer than %llu\n",
                 resp.stale(), (unsigned long long)req.generation());
  return 0;
}

// ---------------------------------------------------------------------------
// flows delete

int flows_delete(const Options& o, const Args& a) {
  if (a.positional().empty()) throw UsageError("flows delete needs at least one ADDR:PORT");
  pb::DeleteFlowsRequest req;
  for (const std::string& k : a.positional()) *req.add_keys() = parse_key("flow key", k);
  if (a.has("generation"))
    req.set_generation(parse_uint("--generation", a.value("generation"), 0, kU64Max));
  Client c(o);
  pb::DeleteFlowsResponse resp;
  auto ctx = c.context();
  c.check(c.stub().DeleteFlows(ctx.get(), req, &resp));
  if (o.json) {
    std::printf("%s\n", to_json(resp).c_str());
  } else {
    std::printf("deleted %u, not found %u, stale %u; dataplane generation %llu\n", resp.deleted(),
                resp.not_found(), resp.stale(), (unsigned long long)resp.generation());
  }
  return 0;
}

// ---------------------------------------------------------------------------
// stats

int stats(const Options& o, const Args& a) {
  no_positional(a);
  Client c(o);
  pb::Stats s;
  auto ctx = c.context();
  c.check(c.stub().GetStats(ctx.get(), pb::GetStatsRequest(), &s));
  if (o.json) {
    std::printf("%s\n", to_json(s).c_str());
    return 0;
  }
  kv("version", s.version().empty() ? "-" : s.version());
  kv("uptime", format_uptime(s.uptime().seconds()));
  kv("generation", absl::StrCat(s.generation()));
  kv("flows", s.flow_capacity()
                  ? absl::StrFormat("%d / %d (%.1f%%)", s.flows(), s.flow_capacity(),
                                    100.0 * double(s.flows()) / double(s.flow_capacity()))
                  : absl::StrCat(s.flows()));
  kv("table bytes",
     absl::StrCat(format_bytes(s.flow_table_bytes()), " (", s.flow_table_bytes(), ")"));
  kv("srtp flows", absl::StrCat(s.crypto_flows()));
  kv("srtp state bytes",
     absl::StrCat(format_bytes(s.crypto_state_bytes()), " (", s.crypto_state_bytes(), ")"));

  std::printf("\nPorts:\n");
  Table ports({"NAME", "ROLE", "MAC", "ADDRESS", "RX", "TX", "MISSED", "PUNTED", "INJECTED"},
              "llllrrrrr");
  for (const auto& p : s.ports())
    ports.add({p.name(), p.role(), p.mac(), p.address(), absl::StrCat(p.rx_packets()),
               absl::StrCat(p.tx_packets()), absl::StrCat(p.rx_missed()), absl::StrCat(p.punted()),
               absl::StrCat(p.injected())});
  ports.print(stdout);

  std::printf("\nWorkers:\n");
  Table workers({"ID", "LCORE", "RX", "TX", "RELAYED", "HANDOFF", "HAIRPIN", "SLEEPS", "DROPS"},
                "rrrrrrrrr");
  for (const auto& w : s.workers())
    workers.add({absl::StrCat(w.worker()), absl::StrCat(w.lcore()), absl::StrCat(w.rx_packets()),
                 absl::StrCat(w.tx_packets()), absl::StrCat(w.relayed()),
                 absl::StrCat(w.handed_off()), absl::StrCat(w.hairpinned()),
                 absl::StrCat(w.idle_sleeps()),
                 absl::StrCat(drop_sum(w.drops()))});
  workers.print(stdout);

  if (s.drops().empty()) {
    std::printf("\nDrops: none\n");
  } else {
    std::printf("\nDrops:\n");
    Table drops({"REASON", "PACKETS"}, "lr");
    for (const auto& d : s.drops()) drops.add({d.reason(), absl::StrCat(d.packets())});
    drops.print(stdout);
  }

  if (s.neighbors().empty()) {
    std::printf("\nNeighbors: none\n");
  } else {
    std::printf("\nNeighbors:\n");
    Table nb({"ADDRESS", "MAC", "PORT", "STATE", "AGE"}, "llllr");
    for (const auto& n : s.neighbors())
      nb.add({n.address(), n.mac(), n.port(), n.state(), seconds1(n.age())});
    nb.print(stdout);
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Control plane formatting

std::string ep(const apb::Endpoint& e) {
  pb::Endpoint d;
  d.set_address(e.address());
  d.set_port(e.port());
  return ep(d);
}

std::string transport_name(apb::Transport t) {
  switch (t) {
    case apb::TRANSPORT_UDP:
      return "udp";
    case apb::TRANSPORT_TCP:
      return "tcp";
    case apb::TRANSPORT_TLS:
      return "tls";
    case apb::TRANSPORT_UNSPECIFIED:
      return "-";
    default:
      return absl::StrCat("transport-", int(t));
  }
}

std::string call_state_name(apb::CallState s) {
  switch (s) {
    case apb::CALL_STATE_CALLING:
      return "calling";
    case apb::CALL_STATE_EARLY:
      return "early";
    case apb::CALL_STATE_CONFIRMED:
      return "confirmed";
    case apb::CALL_STATE_TERMINATING:
      return "terminating";
    case apb::CALL_STATE_UNSPECIFIED:
      return "-";
    default:
      return absl::StrCat("state-", int(s));
  }
}

std::string upstream_state_name(apb::UpstreamState s) {
  switch (s) {
    case apb::UPSTREAM_STATE_UNKNOWN:
    case apb::UPSTREAM_STATE_UNSPECIFIED:
      return "unknown";
    case apb::UPSTREAM_STATE_UP:
      return "up";
    case apb::UPSTREAM_STATE_DOWN:
      return "down";
    default:
      return absl::StrCat("state-", int(s));
  }
}

const char* yes_no(bool b) { return b ? "yes" : "no"; }

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

// The URI of a From/To header value without display name, parameters or
// the "sip:" scheme: "\"Alice\" <sip:alice@example.com>;tag=x" gives
// "alice@example.com". Other schemes (sips:, tel:) stay visible.
std::string short_uri(const std::string& header) {
  std::string uri;
  bool quoted = false, bracketed = false;
  for (size_t i = 0; i < header.size() && !bracketed; ++i) {
    char c = header[i];
    if (quoted) {
      if (c == '\\') ++i;
      else if (c == '"') quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == '<') {
      size_t end = header.find('>', i + 1);
      uri = header.substr(i + 1, end == std::string::npos ? std::string::npos : end - i - 1);
      bracketed = true;
    }
  }
  if (!bracketed) uri = header.substr(0, header.find(';'));  // addr-spec: params follow ';'
  uri = std::string(absl::StripAsciiWhitespace(uri));
  if (absl::StartsWithIgnoreCase(uri, "sip:")) uri = uri.substr(4);
  uri = uri.substr(0, uri.find_first_of(";?"));  // URI parameters and headers
  return or_dash(uri);
}

// "0 PCMU/8000" -> "PCMU".
std::string codec_name(const std::string& c) {
  size_t sp = c.find(' ');
  std::string name = sp == std::string::npos ? c : c.substr(sp + 1);
  return name.substr(0, name.find('/'));
}

std::string protection(const apb::MediaSide& s) {
  return s.srtp_suite().empty() ? "RTP" : "SRTP:" + s.srtp_suite();
}

// One stream for the MEDIA column: "audio PCMU SRTP:AES_CM_128_HMAC_SHA1_80>RTP".
std::string stream_summary(const apb::MediaStream& m) {
  std::string out = m.type().empty() ? "?" : m.type();
  if (m.disabled()) return out + " disabled";
  if (m.refused()) return out + " refused";
  if (!m.codecs().empty()) absl::StrAppend(&out, " ", codec_name(m.codecs(0)));
  absl::StrAppend(&out, " ", protection(m.outside()), ">", protection(m.inside()));
  return out;
}

std::string ms1(const google::protobuf::Duration& d) {
  return absl::StrFormat("%.1f", double(d.seconds()) * 1e3 + double(d.nanos()) / 1e6);
}

std::string utc(const google::protobuf::Timestamp& t) {
  return format_utc_ms(t.seconds(), t.nanos());
}

// ---------------------------------------------------------------------------
// calls list / get / watch

int calls_list(const Options& o, const Args& a) {
  no_positional(a);
  AdminClient c(o);
  apb::ListCallsResponse resp;
  auto ctx = c.context();
  c.check(c.stub().ListCalls(ctx.get(), apb::ListCallsRequest(), &resp));
  if (o.json) {
    std::printf("%s\n", to_json(resp).c_str());
    return 0;
  }
  if (resp.calls().empty()) {
    std::fprintf(stderr, "no calls\n");
    return 0;
  }
  std::vector<const apb::Call*> calls;
  for (const auto& call : resp.calls()) calls.push_back(&call);
  std::stable_sort(calls.begin(), calls.end(),
                   [](const apb::Call* x, const apb::Call* y) { return x->id() < y->id(); });
  Table t({"ID", "STATE", "DIR", "FROM", "TO", "DURATION", "STREAMS", "MEDIA", "HOLD"},
          "rlllllrll");
  for (const apb::Call* call : calls) {
    std::vector<std::string> media;
    for (const auto& m : call->streams()) media.push_back(stream_summary(m));
    t.add({absl::StrCat(call->id()), call_state_name(call->state()), or_dash(call->direction()),
           short_uri(call->outside().from()), short_uri(call->outside().to()),
           call->has_duration() ? format_uptime(call->duration().seconds()) : "-",
           absl::StrCat(call->streams_size()), media.empty() ? "-" : absl::StrJoin(media, ", "),
           yes_no(call->on_hold())});
  }
  t.print(stdout);
  return 0;
}

void print_leg(const char* title, const apb::Leg& l) {
  std::printf("%s:\n", title);
  kv("call-id", or_dash(l.call_id()), 2);
  kv("local tag", or_dash(l.local_tag()), 2);
  kv("remote tag", or_dash(l.remote_tag()), 2);
  kv("from", or_dash(l.from()), 2);
  kv("to", or_dash(l.to()), 2);
  kv("remote target", or_dash(l.remote_target()), 2);
  kv("transport", transport_name(l.transport()), 2);
  kv("signalling peer", ep(l.signalling_peer()), 2);
  kv("user agent", or_dash(l.user_agent()), 2);
}

void print_media_side(const char* title, const apb::MediaSide& s) {
  std::printf("    %s:\n", title);
  kv("relay", ep(s.relay()), 6);
  kv("advertised", ep(s.advertised()), 6);
  kv("peer", ep(s.peer()), 6);
  kv("profile", or_dash(s.profile()), 6);
  kv("srtp suite", s.srtp_suite().empty() ? "- (plain RTP)" : s.srtp_suite(), 6);
}

int calls_get(const Options& o, const Args& a) {
  if (a.positional().size() != 1)
    throw UsageError(a.positional().empty() ? "calls get needs one call ID"
                                            : "calls get takes exactly one call ID");
  apb::GetCallRequest req;
  req.set_id(parse_uint("call ID", a.positional()[0], 1, kU64Max));
  AdminClient c(o);
  apb::Call call;
  auto ctx = c.context();
  c.check(c.stub().GetCall(ctx.get(), req, &call));
  if (o.json) {
    std::printf("%s\n", to_json(call).c_str());
    return 0;
  }
  kv("id", absl::StrCat(call.id()));
  kv("state", call_state_name(call.state()));
  kv("direction", or_dash(call.direction()));
  kv("created", call.has_created() ? utc(call.created()) : "-");
  kv("duration", call.has_duration() ? format_uptime(call.duration().seconds()) : "- (not answered)");
  kv("on hold", yes_no(call.on_hold()));
  kv("reinvites", absl::StrCat(call.reinvites()));
  const auto& se = call.session_expires();
  kv("session expires", se.seconds() || se.nanos() ? absl::StrCat(se.seconds(), " s") : "none");
  print_leg("outside leg", call.outside());
  print_leg("inside leg", call.inside());
  if (call.streams().empty()) kv("streams", "none");
  for (const auto& m : call.streams()) {
    std::printf("stream %u:\n", m.index());
    kv("type", or_dash(m.type()), 2);
    if (m.disabled()) kv("disabled", "yes (port 0)", 2);
    if (m.refused()) kv("refused", "yes (the dataplane refused its flows)", 2);
    kv("codecs", m.codecs().empty() ? "-" : absl::StrJoin(m.codecs(), ", "), 2);
    kv("rtcp-mux", yes_no(m.rtcp_mux()), 2);
    kv("direction", or_dash(m.direction()), 2);
    print_media_side("outside", m.outside());
    print_media_side("inside", m.inside());
    kv("flows", m.flows().empty() ? "-" : absl::StrJoin(m.flows(), ", "), 2);
  }
  return 0;
}

void print_admin_event(const Options& o, const apb::AdminEvent& ev) {
  if (o.json) {
    std::printf("%s\n", to_json(ev).c_str());
    return;
  }
  std::string line = absl::StrFormat(
      "%-24s  %-13s  %-6s  %-28s  %-21s  %s", event_time(ev.has_time(), ev.time()),
      type_name(kAdminEventTypes, ev.type()), ev.call_id() ? absl::StrCat(ev.call_id()) : "-",
      or_dash(ev.aor()), or_dash(ev.address()), or_dash(ev.detail()));
  if (ev.lost_before())
    absl::StrAppend(&line, "  (", ev.lost_before(), " events lost before this one)");
  std::printf("%s\n", line.c_str());
}

int calls_watch(const Options& o, const Args& a) {
  no_positional(a);
  apb::WatchRequest req;
  for (int t : parse_types(a, kAdminEventTypes)) req.add_types(apb::EventType(t));
  uint64_t count = a.has("count") ? parse_uint("--count", a.value("count"), 1, kU64Max) : 0;

  sigset_t stop_set = block_stop_signals();  // before gRPC starts any thread
  AdminClient c(o);
  grpc::ClientContext ctx;
  SignalWaiter signals(stop_set, &ctx);  // declared after ctx: joined before ctx goes
  if (!wait_connected(c, signals)) return 0;

  auto reader = c.stub().Watch(&ctx, req);
  return follow_events(o, c, ctx, signals, *reader, count, "the control plane",
                       [&](const apb::AdminEvent& ev, uint64_t n) {
                         if (!o.json && n == 0)
                           std::printf("%-24s  %-13s  %-6s  %-28s  %-21s  %s\n", "TIME", "TYPE",
                                       "CALL", "AOR", "ADDRESS", "DETAIL");
                         print_admin_event(o, ev);
                       });
}

// ---------------------------------------------------------------------------
// registrations list

int registrations_list(const Options& o, const Args& a) {
  no_positional(a);
  apb::ListRegistrationsRequest req;
  if (a.has("aor")) {
    std::string aor = a.value("aor");
    if (!absl::StartsWithIgnoreCase(aor, "sip:") && !absl::StartsWithIgnoreCase(aor, "sips:") &&
        !absl::StartsWithIgnoreCase(aor, "tel:"))
      throw UsageError(absl::StrCat("--aor: '", aor,
                                    "' is not a sip:, sips: or tel: URI (e.g. sip:alice@example.com)"));
    req.set_aor(aor);
  }
  AdminClient c(o);
  apb::ListRegistrationsResponse resp;
  auto ctx = c.context();
  c.check(c.stub().ListRegistrations(ctx.get(), req, &resp));
  if (o.json) {
    std::printf("%s\n", to_json(resp).c_str());
    return 0;
  }
  if (resp.registrations().empty()) {
    if (req.aor().empty())
      std::fprintf(stderr, "no registrations\n");
    else
      std::fprintf(stderr, "no registrations for %s\n", req.aor().c_str());
    return 0;
  }
  std::vector<const apb::Registration*> regs;
  for (const auto& r : resp.registrations()) regs.push_back(&r);
  std::stable_sort(regs.begin(), regs.end(), [](const apb::Registration* x, const apb::Registration* y) {
    return std::tie(x->aor(), x->contact()) < std::tie(y->aor(), y->contact());
  });
  Table t({"AOR", "CONTACT", "TRANSPORT", "SOURCE", "EXPIRES", "USER-AGENT", "LISTENER"},
          "llllrll");
  for (const apb::Registration* r : regs)
    t.add({r->aor(), or_dash(r->contact()), transport_name(r->transport()), ep(r->source()),
           absl::StrCat(r->expires_in().seconds()), or_dash(r->user_agent()),
           or_dash(r->listener())});
  t.print(stdout);
  return 0;
}

// ---------------------------------------------------------------------------
// upstreams list

int upstreams_list(const Options& o, const Args& a) {
  no_positional(a);
  AdminClient c(o);
  apb::ListUpstreamsResponse resp;
  auto ctx = c.context();
  c.check(c.stub().ListUpstreams(ctx.get(), apb::ListUpstreamsRequest(), &resp));
  if (o.json) {
    std::printf("%s\n", to_json(resp).c_str());
    return 0;
  }
  if (resp.upstreams().empty()) {
    std::fprintf(stderr, "no upstreams\n");
    return 0;
  }
  Table t({"HOST", "ENDPOINT", "TRANSPORT", "PRIO", "WEIGHT", "STATE", "ACTIVE", "RTT", "FAILURES",
           "REQUESTS"},
          "lllrrllrrr");
  for (const auto& u : resp.upstreams())
    t.add({or_dash(u.host()), ep(u.endpoint()), transport_name(u.transport()),
           absl::StrCat(u.priority()), absl::StrCat(u.weight()), upstream_state_name(u.state()),
           yes_no(u.active()), u.has_last_rtt() ? ms1(u.last_rtt()) : "-",
           absl::StrCat(u.consecutive_failures()), absl::StrCat(u.requests())});
  t.print(stdout);
  return 0;
}

// ---------------------------------------------------------------------------
// blocked list / remove

int blocked_list(const Options& o, const Args& a) {
  no_positional(a);
  apb::ListBlockedRequest req;
  req.set_include_counting(a.has("all"));
  AdminClient c(o);
  apb::ListBlockedResponse resp;
  auto ctx = c.context();
  c.check(c.stub().ListBlocked(ctx.get(), req, &resp));
  if (o.json) {
    std::printf("%s\n", to_json(resp).c_str());
    return 0;
  }
  if (resp.sources().empty()) {
    std::fprintf(stderr, "%s\n",
                 req.include_counting() ? "no sources blocked or with failures counted"
                                        : "no sources blocked");
    return 0;
  }
  Table t({"ADDRESS", "FAILURES", "BLOCKED", "REMAINING", "DROPPED", "LAST-FAILURE"}, "lrlrrl");
  for (const auto& s : resp.sources())
    t.add({s.address(), absl::StrCat(s.failures()), yes_no(s.blocked()),
           s.blocked() ? seconds1(s.remaining()) : "-", absl::StrCat(s.dropped()),
           s.has_last_failure() ? utc(s.last_failure()) : "-"});
  t.print(stdout);
  return 0;
}

int blocked_remove(const Options& o, const Args& a) {
  if (a.positional().size() != 1)
    throw UsageError(a.positional().empty() ? "blocked remove needs one ADDRESS"
                                            : "blocked remove takes exactly one ADDRESS");
  // The shape only; which address families it blocks is the control plane's
  // call (its INVALID_ARGUMENT says so).
  const std::string& addr = a.positional()[0];
  unsigned char buf[16];
  if (inet_pton(AF_INET, addr.c_str(), buf) != 1 && inet_pton(AF_INET6, addr.c_str(), buf) != 1)
    throw UsageError(absl::StrCat("'", addr, "' is not an IP address"));
  apb::UnblockRequest req;
  req.set_address(addr);
  AdminClient c(o);
  apb::UnblockResponse resp;
  auto ctx = c.context();
  c.check(c.stub().Unblock(ctx.get(), req, &resp));
  if (o.json)
    std::printf("%s\n", to_json(resp).c_str());
  else if (resp.was_blocked())
    std::printf("unblocked %s\n", addr.c_str());
  else
    std::printf("%s was not blocked\n", addr.c_str());
  return 0;
}

// ---------------------------------------------------------------------------
// status

int cp_status(const Options& o, const Args& a) {
  no_positional(a);
  AdminClient c(o);
  apb::Status s;
  auto ctx = c.context();
  c.check(c.stub().GetStatus(ctx.get(), apb::GetStatusRequest(), &s));
  if (o.json) {
    std::printf("%s\n", to_json(s).c_str());
    return 0;
  }
  kv("version", or_dash(s.version()));
  kv("uptime", format_uptime(s.uptime().seconds()));
  kv("calls", absl::StrCat(s.calls()));
  kv("registrations", absl::StrCat(s.registrations()));
  kv("subscriptions", absl::StrCat(s.subscriptions()));
  kv("blocked sources", absl::StrCat(s.blocked()));
  kv("transactions", absl::StrCat(s.transactions()));
  kv("connections", absl::StrCat(s.connections()));
  kv("dataplane", s.dataplane_connected()
                      ? absl::StrCat("connected, generation ", s.dataplane_generation())
                      : absl::StrCat("not connected (generation ", s.dataplane_generation(),
                                     ")"));
  kv("flows", absl::StrCat(s.flows()));
  kv("relay ports", absl::StrCat(s.ports_in_use(), " in use, ", s.ports_free(), " free"));
  kv("state bytes", absl::StrCat(format_bytes(s.state_bytes()), " (", s.state_bytes(), ")"));
  kv("overload", absl::StrCat(s.overloaded() ? "shedding new calls" : "no", " (SIP queued ",
                              s.sip_queue_delay_ms(), " ms)"));

  Table t({"COUNTER", "VALUE"}, "lr");
  size_t zero = 0;
  for (const auto& k : s.counters()) {
    if (k.value() == 0 && !a.has("all")) {
      ++zero;
      continue;
    }
    t.add({k.name(), absl::StrCat(k.value())});
  }
  if (t.rows() == 0) {
    std::printf("\nCounters: %s\n", zero ? "all zero (--all lists them)" : "none");
  } else {
    std::printf("\nCounters:\n");
    t.print(stdout);
    if (zero) std::printf("(%zu zero counters not shown; --all lists them)\n", zero);
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Dispatch

struct Command {
  const char* noun;
  const char* verb;  // "" for a command without one
  const char* help;
  std::vector<FlagSpec> flags;
  int (*run)(const Options&, const Args&);
  bool control_plane = false;  // talks to the Admin service (--cp-socket)
};

// Nouns that take a verb.
struct Noun {
  const char* noun;
  const char* help;
  const char* verbs;  // for error messages
};
const Noun kNouns[] = {
    {"flows", kFlowsHelp, "list, get, watch, add, delete"},
    {"calls", kCallsHelp, "list, get, watch"},
    {"registrations", kRegistrationsHelp, "list"},
    {"upstreams", kUpstreamsHelp, "list"},
    {"blocked", kBlockedHelp, "list, remove"},
};

const Noun* find_noun(const std::string& word) {
  for (const Noun& n : kNouns)
    if (word == n.noun) return &n;
  return nullptr;
}

const std::vector<Command>& commands() {
  static const std::vector<Command> cmds = {
      {"flows",
       "list",
       kListHelp,
       {{"cookie", true}, {"page-size", true}, {"all", false}},
       flows_list},
      {"flows", "get", kGetHelp, {}, flows_get},
      {"flows", "watch", kWatchHelp, {{"types", true, true}, {"count", true}}, flows_watch},
      {"flows",
       "add",
       kAddHelp,
       {{"local", true},        {"egress-port", true}, {"source", true},    {"dest", true},
        {"expect", true},       {"pair", false},       {"a-local", true},   {"a-port", true},
        {"a-peer", true},       {"b-local", true},     {"b-port", true},    {"b-peer", true},
        {"with-rtcp", false},   {"file", true},        {"latch", true},     {"max-senders", true},
        {"kind", true},         {"dscp", true},        {"ttl-reset", true}, {"police-pps", true},
        {"police-burst", true}, {"timeout", true},     {"cookie", true},    {"generation", true},
        {"dry-run", false},     {"decrypt", true},     {"encrypt", true},   {"a-key", true},
        {"a-relay-key", true},  {"b-key", true},       {"b-relay-key", true}},
       flows_add},
      {"flows", "delete", kDeleteHelp, {{"generation", true}}, flows_delete},
      {"stats", "", kStatsHelp, {}, stats},
      {"calls", "list", kCallsListHelp, {}, calls_list, true},
      {"calls", "get", kCallsGetHelp, {}, calls_get, true},
      {"calls",
       "watch",
       kCallsWatchHelp,
       {{"types", true, true}, {"count", true}},
       calls_watch,
       true},
      {"registrations", "list", kRegistrationsHelp, {{"aor", true}}, registrations_list, true},
      {"upstreams", "list", kUpstreamsHelp, {}, upstreams_list, true},
      {"blocked", "list", kBlockedListHelp, {{"all", false}}, blocked_list, true},
      {"blocked", "remove", kBlockedRemoveHelp, {}, blocked_remove, true},
      {"status", "", kStatusHelp, {{"all", false}}, cp_status, true},
  };
  return cmds;
}

const std::vector<FlagSpec> kGlobalFlags = {{"socket", true}, {"cp-socket", true},
                                           {"timeout", true}, {"json", false},
                                           {"help", false},   {"version", false}};

// Finds the command named by words[0..]; sets *used to the words it took.
// Returns nullptr (and the help text to show in *help) for a bare noun.
const Command* find_command(const std::vector<std::string>& words, size_t* used,
                            const char** help) {
  *help = kMainHelp;
  if (words.empty()) return nullptr;
  if (const Noun* n = find_noun(words[0])) {
    *help = n->help;
    *used = 1;
    if (words.size() < 2 || words[1].rfind("-", 0) == 0) return nullptr;
    for (const auto& c : commands())
      if (words[0] == c.noun && words[1] == c.verb) {
        *used = 2;
        return &c;
      }
    throw UsageError(
        absl::StrCat("unknown command '", n->noun, " ", words[1], "' (", n->verbs, ")"));
  }
  for (const auto& c : commands())
    if (words[0] == c.noun && !*c.verb) {
      *used = 1;
      return &c;
    }
  throw UsageError(absl::StrCat("unknown command '", words[0], "'"));
}

std::string command_name(const Command& c) {
  return *c.verb ? absl::StrCat(c.noun, " ", c.verb) : c.noun;
}

int run(const std::vector<std::string>& argv, std::string* hint) {
  *hint = "sluicectl --help";
  // Global options before the command.
  Args pre = parse_args(argv, 1, kGlobalFlags, /*stop_at_positional=*/true);
  if (pre.has("version")) {
    std::printf("sluicectl %s\n", SLUICE_VERSION);
    return 0;
  }
  std::vector<std::string> words = pre.positional();
  if (!words.empty() && words[0] == "help") {
    std::vector<std::string> topic(words.begin() + 1, words.end());
    size_t used = 0;
    const char* help = kMainHelp;
    const Command* c = find_command(topic, &used, &help);
    if (used < topic.size())
      throw UsageError(absl::StrCat("unknown command '", absl::StrJoin(topic, " "), "'"));
    std::fputs(c ? c->help : help, stdout);
    return 0;
  }
  size_t used = 0;
  const char* help = kMainHelp;
  const Command* cmd = find_command(words, &used, &help);
  if (!cmd) {
    // No command, or a noun without its verb.
    bool asked = pre.has("help") ||
                 std::find(words.begin(), words.end(), "--help") != words.end() ||
                 std::find(words.begin(), words.end(), "-h") != words.end();
    if (asked) {
      std::fputs(help, stdout);
      return 0;
    }
    if (words.empty()) {
      std::fputs(help, stderr);
      return 2;
    }
    *hint = absl::StrCat("sluicectl ", words[0], " --help");
    throw UsageError(absl::StrCat("'", words[0], "' needs a verb: ", find_noun(words[0])->verbs));
  }
  *hint = absl::StrCat("sluicectl ", command_name(*cmd), " --help");

  // The command's options, and the global ones it does not redefine.
  std::vector<FlagSpec> specs = cmd->flags;
  for (const FlagSpec& g : kGlobalFlags) {
    bool redefined = std::any_of(specs.begin(), specs.end(),
                                 [&](const FlagSpec& s) { return s.name == g.name; });
    if (!redefined && g.name != "version") specs.push_back(g);
  }
  Args args = parse_args(words, used, specs);
  if (pre.has("help") || args.has("help")) {
    std::fputs(cmd->help, stdout);
    return 0;
  }
  bool cmd_timeout = std::any_of(cmd->flags.begin(), cmd->flags.end(),
                                 [](const FlagSpec& s) { return s.name == "timeout"; });

  Options o;
  o.json = pre.has("json") || args.has("json");
  // Each address: the flag (after or before the command), else the
  // environment, else the default. Flags are always checked; the
  // environment only for the service the command talks to.
  auto target = [&](const std::string& flag, const char* env_name, const char* dflt, bool used) {
    if (args.has(flag)) return check_target("--" + flag, args.value(flag));
    if (pre.has(flag)) return check_target("--" + flag, pre.value(flag));
    const char* env = std::getenv(env_name);
    if (used && env && *env) return check_target(env_name, env);
    return std::string(dflt);
  };
  o.socket = target("socket", "SLUICE_DATAPLANE", kDefaultSocket, !cmd->control_plane);
  o.cp_socket = target("cp-socket", "SLUICE_CONTROLPLANE", kDefaultCpSocket, cmd->control_plane);
  if (!cmd_timeout && args.has("timeout"))
    o.timeout = parse_seconds("--timeout", args.value("timeout"), 0.001, 86400);
  else if (pre.has("timeout"))
    o.timeout = parse_seconds("--timeout", pre.value("timeout"), 0.001, 86400);
  return cmd->run(o, args);
}

}  // namespace
}  // namespace sluicectl

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  std::string hint;
  int rc;
  try {
    rc = sluicectl::run(args, &hint);
  } catch (const sluicectl::UsageError& e) {
    std::fprintf(stderr, "sluicectl: %s\nTry '%s'.\n", e.what(), hint.c_str());
    return 2;
  } catch (const sluicectl::RpcError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "sluicectl: %s: %s\n", sluicectl::code_name(e.code()), e.what());
    return 1;
  }
  if (std::fflush(stdout) != 0 && errno != EPIPE) {
    std::fprintf(stderr, "sluicectl: cannot write output: %s\n", std::strerror(errno));
    return 1;
  }
  return rc;
}
