// The teleworker gateway: a B2BUA between phones on the Internet side
// ("outside") and the PBX on the LAN side ("inside").
//
// - REGISTER is relayed to the upstream PBX with the Contact pointing at the
//   relay (the phone's user name kept, a token added), so that a call from
//   the PBX finds the phone's NAT binding or TCP/TLS connection again.
// - Every call is two dialogs. The relay rewrites SDP on the way through
//   (relay addresses and ports, a=rtcp, fresh SDES keys per leg, AVP<->SAVP
//   per side policy), pushes the call's flows to the dataplane in one batch
//   when an answer arrives, and removes them when the call ends.
// - Failed authentications from upstream are counted per source address;
//   sources over the threshold are blocked for a while.
//
// Single-threaded: everything runs on the event loop's thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <queue>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "controlplane/admission.h"
#include "controlplane/media.h"
#include "controlplane/sdp/sdp.h"
#include "controlplane/sip/message.h"
#include "controlplane/sip/transaction.h"
#include "sluice/controlplane/v1/config.pb.h"

namespace sluice::net {
class SipTransport;
struct SrvTarget;
}

namespace sluice::controlplane::v1 {
class JournalCall;
class JournalBinding;
class JournalSubscription;
class JournalRecord;
}  // namespace sluice::controlplane::v1

namespace sluice::cp {

namespace cfg = ::sluice::controlplane::v1;
class Journal;

enum class Side : uint8_t { kOutside = 0, kInside = 1 };
inline Side other(Side s) { return s == Side::kOutside ? Side::kInside : Side::kOutside; }
const char* side_name(Side s);

// One direction of one media stream, as the dataplane needs it.
struct FlowRule {
  struct Key {
    int suite = 0;  // 0: none
    std::string key, salt;
  };
  std::string local_addr;
  uint16_t local_port = 0;
  int kind = 1;  // 1 RTP, 2 RTCP, 3 RTP+RTCP mux
  std::string expected_addr;
  uint16_t expected_port = 0;
  int latch = 2;  // dataplane LatchPolicy
  uint32_t max_senders = 4;
  std::string egress_port;
  std::string src_addr;
  uint16_t src_port = 0;
  std::string dst_addr;
  uint16_t dst_port = 0;
  uint32_t timeout_s = 60;
  uint32_t dscp = 46;
  uint32_t ttl_reset = 0;  // 0: decrement
  uint64_t cookie = 0;
  Key decrypt, encrypt;
};
using FlowKey = std::pair<std::string, uint16_t>;

// Consecutive upsert batches as the flows of one RPC. A key upserted more
// than once (a call's early-media answer, then its final one; an answer,
// then a re-INVITE's) is sent once, with its latest rule: that is what the
// batches applied in order would leave, and the dataplane refuses a request
// that names a key twice. The rules keep the order of their last occurrence.
std::vector<const FlowRule*> merge_upserts(const std::vector<const std::vector<FlowRule>*>& batches);

// A flow the dataplane reports having (for resynchronisation).
struct PresentFlow {
  FlowKey key;
  uint64_t cookie = 0;
  int state = 0;  // sluice.dataplane.v1.FlowState
};

// What became of one upsert batch: the dataplane took it, refused it for
// what it carries (a flow it rejects, more new flows than it has room
// for), or could not be reached (the resync on its return pushes the call
// again).
enum class FlowFate : uint8_t { kTaken, kRefused, kUnreached };
struct BatchFate {
  uint64_t call = 0;  // the batch's cookie
  FlowFate fate = FlowFate::kTaken;
};

class FlowSink {
 public:
  virtual ~FlowSink() = default;
  // One batch per call change (every rule with the call's id as cookie),
  // applied in order. False when it cannot be sent at all. What became of
  // each batch comes back on the loop, in the order the batches were made:
  // Gateway::flow_fates.
  virtual bool upsert(const std::vector<FlowRule>& rules) = 0;
  virtual void remove(const std::vector<FlowKey>& keys) = 0;
};

struct Binding {
  std::string aor, user, contact, token, user_agent, listener;
  sip::Peer peer;
  int64_t expires_at = 0;      // loop clock ms
  int64_t registered_at = 0;   // unix ms
};

struct SrtpSide {  // one leg's keys for one stream
  const SuiteInfo* rx = nullptr;  // the peer's key: we decrypt with it
  std::string rx_key;             // inline base64
  const SuiteInfo* tx = nullptr;  // our key toward the peer
  std::string tx_key;
  uint32_t tx_tag = 1;
  // Keys we offered (one per suite), until the answer picks one.
  std::vector<sdp::Crypto> offered;
};

struct StreamSide {
  std::string peer_addr;  // from that side's SDP
  uint16_t peer_port = 0, peer_rtcp = 0;
  uint16_t relay_port = 0;  // RTP; RTCP is +1 unless muxed
  std::string profile;
  std::vector<std::string> fmts;  // the payload types its last SDP named
  bool srtp = false;
  SrtpSide keys;
};

struct Stream {
  std::string type;
  bool disabled = false;
  // The dataplane holds this stream's flows (a batch with it was taken).
  bool in_dataplane = false;
  // The dataplane refused the change that added it: its flows are left out
  // of the call's batches until the next offer/answer asks for it again.
  bool refused = false;
  bool rtcp_mux = false;
  std::string direction = "sendrecv";
  std::vector<std::string> codecs;
  StreamSide side[2];
  // The call's flow batches carry this stream's flows: enabled, with relay
  // ports and both sides' addresses (answered), and not refused.
  bool batched() const {
    return !disabled && !refused && side[0].relay_port && side[0].peer_port && side[1].peer_port;
  }
};

// A leg restored from the journal resumes its CSeq this far above the
// journalled one, since in-dialog requests (INFO, OPTIONS, relayed NOTIFYs)
// are not journalled one by one; the leg is journalled again before it gets
// halfway there, so its next request is always above the last one sent
// (RFC 3261 12.2.1.1).
inline constexpr uint32_t kCseqMargin = 1000;

struct Leg {
  std::string call_id, local_tag, remote_tag;
  std::string local_hdr, remote_hdr;  // From/To values as we send them
  uint32_t local_cseq = 1, remote_cseq = 0;
  uint32_t journaled_cseq = 0;  // local_cseq as the journal has it
  std::string remote_target;
  std::vector<std::string> route_set;
  sip::Peer peer;
  int listener = -1;
  std::string contact;  // our Contact on this leg
  std::string user_agent;
  bool uac = false;  // we sent the dialog-creating INVITE on this leg
};

enum class CallState : uint8_t { kCalling = 1, kEarly, kConfirmed, kTerminating };

struct Call {
  uint64_t id = 0;
  CallState state = CallState::kCalling;
  bool outbound = true;  // the teleworker called
  int64_t created_unix_ms = 0, answered_ms = 0;  // answered: loop clock
  Leg leg[2];
  std::vector<Stream> streams;
  uint32_t reinvites = 0;
  bool on_hold = false;
  uint32_t session_expires_s = 0;
  // RFC 4028 imposed by the relay: the dialog-creating INVITE asked for no
  // session timer, so the relay asked the callee for timers.session_expires_s
  // with refresher=uas. If the callee agreed, its side refreshes
  // (st_refresher) and the other side never sees the timer's headers.
  bool st_imposed = false;
  Side st_refresher = Side::kInside;
  // ... unless the callee asked the relay to refresh (refresher=uac in its
  // 2xx): then the relay sends the refreshes on st_refresher's leg, UPDATEs
  // where the callee allows UPDATE, else re-INVITEs with the SDP it settled
  // with that side, unchanged (RFC 4028 7.4, RFC 3264 8).
  bool st_by_relay = false;
  bool callee_update = false;  // the callee's 2xx allowed UPDATE
  // The relay's own re-INVITE (a refresh, or refused streams turned off)
  // under way on a leg: bit 1 << side.
  uint8_t own_inv = 0;
  // The SDP the relay last settled with each side: its offer that side
  // answered, or its answer to that side's offer; and its offer under way.
  std::string sdp_sent[2], sdp_offered;
  sip::Timers::Id invite_timer = 0, session_timer = 0, refresh_timer = 0;
  // Refused streams to turn off on both legs (turn_off_refused), waiting
  // for the call's INVITE transactions; and how often a leg's 491 made it
  // try again.
  sip::Timers::Id off_timer = 0;
  uint8_t off_retries = 0;
  // The INVITE transaction pair under way (the dialog-creating one, or a
  // re-INVITE): at most one per call, as RFC 3261 14.1 allows per dialog.
  bool inv_active = false;
  bool inv_initial = true;
  Side caller = Side::kOutside;  // the side that sent it
  uint64_t caller_stx = 0, callee_ctx = 0;
  uint64_t initial_stx = 0;       // the dialog-creating INVITE's (stx_call_ key)
  sip::Message caller_invite;    // as received
  uint32_t inv_cseq_out = 0;     // its CSeq on the other leg (ACK, PRACK RAck)
  bool offer_in_invite = true;
  // An offerless INVITE whose offer went out in a reliable provisional
  // (RFC 3262 5): the answer comes in the PRACK. The offer as sent is kept,
  // since later responses to the same INVITE may only repeat it (RFC 3261
  // 13.2.1).
  std::string early_offer;
  bool early_offer_open = false;  // sent, its PRACK answer not yet here
  bool early_answered = false;    // answered in a PRACK
  std::vector<Stream> saved_streams;  // restored when a re-INVITE fails
  std::string ack_bytes;       // our ACK on the callee leg, resent on 2xx retransmissions
  sip::Peer ack_peer;
  bool waiting_ack = false;    // callee answered 2xx, caller's ACK not yet here
  // Outbound: the upstream the INVITE went to and every one tried so far.
  int upstream = -1;
  std::vector<int> tried;
  sip::Message callee_invite;  // as sent, for a failover
  sip::Timers::Id failover_timer = 0;
  bool flows_pushed = false;
  // The streams in each upsert batch still on its way (bit i: streams[i]),
  // oldest first; their fates come back in that order.
  std::deque<uint8_t> batches;
  // The dataplane took a batch of this call's (and has not lost it since:
  // a resync that finds flows missing clears it).
  bool flows_in_dataplane = false;
  // It refused one while no batch was in: the call ends once it is
  // confirmed, unless a later batch is taken first.
  bool media_refused = false;
  bool journaled = false;  // in the journal (an end record is owed)
  bool restored = false;   // adopted from the journal at start-up
  std::string end_reason;
};

// An event subscription (RFC 6665 SUBSCRIBE/NOTIFY: message-summary for
// message waiting, dialog for busy lamps, presence) relayed as two dialogs
// without media. Journalled once established, so that NOTIFYs and refreshes
// still find it after a control-plane restart; one whose phone is on a
// TCP/TLS connection is not (the connection dies with the process, and the
// phone subscribes again after its 481, RFC 6665 4.1.2.2).
struct Subscription {
  uint64_t id = 0;
  std::string event;
  Side subscriber = Side::kOutside;
  Leg leg[2];
  bool established = false;  // a 2xx to the SUBSCRIBE or a NOTIFY came back
  int64_t created_unix_ms = 0;
  int64_t expires_at = 0;    // loop clock: the last 2xx's Expires (+ grace)
  sip::Timers::Id timer = 0;
  uint64_t notifies = 0;
  bool journaled = false;  // in the journal (an end record is owed)
};

struct Block {
  std::vector<int64_t> failures;  // loop-clock ms, within the window
  int64_t blocked_until = 0;
  int64_t last_failure_unix_ms = 0;
  uint64_t dropped = 0;
};

struct UpstreamState {
  cfg::Upstream spec;     // for a DNS SRV target: its address, port, priority, weight
  std::string name;       // the SRV target's name; empty for a static upstream
  bool srv = false;
  bool withdrawn = false; // an SRV target the last answer no longer lists
  sip::Peer peer;
  int state = 1;  // admin UpstreamState: 1 unknown, 2 up, 3 down
  int64_t last_change_unix_ms = 0;
  int64_t last_rtt_ms = -1;
  uint32_t failures = 0;
  uint64_t requests = 0;
  bool probing = false;
};

struct GatewayEvent {
  int type;  // sluice.admin.v1.EventType
  uint64_t call_id = 0;
  std::string aor, address, detail;
};

// A non-INVITE request to an upstream (REGISTER, SUBSCRIBE, MESSAGE,
// PUBLISH) that moves on to the next untried upstream when the one it went
// to says nothing at all within timers.failover_ms or fails at the
// transport. `build` makes the request for a target (its Via, Contact and
// listener depend on it); `done` gets the final answer and the upstream that
// gave it.
struct UpstreamRequest {
  std::string what;  // for the log: "REGISTER sip:alice@example.com"
  std::function<sip::Message(const sip::Peer& to)> build;
  std::function<void(const sip::Message& resp, bool local, int upstream, int64_t rtt_ms)> done;
  std::vector<int> tried;
  int upstream = -1;
  uint64_t ctx = 0;
  sip::Timers::Id timer = 0;
  bool heard = false;     // the current upstream answered something
  bool finished = false;  // `done` was called
  int64_t sent_ms = 0;
};

class Gateway : public sip::Transactions::Handler {
 public:
  Gateway(const cfg::ControlplaneConfig& config, sip::Timers* timers, net::SipTransport* transport,
          FlowSink* flows);
  ~Gateway() override;

  // From the transport.
  void on_message(const sip::Message& m, const sip::Peer& from);
  void on_bad(const sip::Peer& from, sip::Error e, std::string_view raw);
  // Nothing was left queued on a listener (overload control: no standing
  // queue there in this interval).
  void on_drained(int listener) { admission_.drained(listener); }
  // From the dataplane: a flow with this cookie timed out / latched.
  void on_media_timeout(uint64_t cookie, const std::string& flow);
  // What became of flow batches, in the order they were made. A refused
  // batch of a call the dataplane holds no flows for leaves it without
  // media: it is ended with BYE on both legs (once the caller's ACK is in;
  // an early one when answered). When the dataplane holds the call's
  // earlier flows (a re-INVITE's change refused), the streams the batch
  // added are left out (Stream::refused) and the rest is pushed again, so
  // the streams it has keep going and take the change; a batch that added
  // none leaves the call with the flows there. An unreached batch is
  // counted; the resync on the dataplane's return pushes the call again.
  void flow_fates(const std::vector<BatchFate>& fates);
  void on_media_latched(uint64_t cookie, const std::string& flow, const std::string& peer);
  // The dataplane answered (at start-up, after an outage or its restart)
  // with the flows it has. Adopts those of known calls, pushes the calls
  // whose flows are missing, removes flows in our port ranges that no call
  // owns, and ends calls whose media timed out meanwhile.
  void resync(const std::vector<PresentFlow>& present);
  // Replays the journal in `dir` into calls and bindings, then keeps
  // journalling into it. False with *err when the journal cannot be used.
  bool open_journal(Journal* journal, const std::string& dir, std::string* err);
  // Every flow key the gateway owns.
  std::vector<FlowKey> owned_flows() const;

  // Read by the operator API on the loop thread.
  const std::map<uint64_t, Call>& calls() const { return calls_; }
  const std::unordered_map<std::string, Binding>& bindings() const { return bindings_; }
  const std::map<uint32_t, Block>& blocks() const { return blocks_; }
  const std::map<uint64_t, Subscription>& subscriptions() const { return subs_; }
  const std::vector<UpstreamState>& upstreams() const { return upstreams_; }
  bool unblock(uint32_t ip);
  // DNS SRV upstreams (upstream_srv): the latest answer, or a failed lookup
  // (the last good answer stays in use).
  // `via`: the SRV name that answered (from NAPTR, or tried under the domain).
  void set_srv_targets(const std::vector<net::SrvTarget>& targets, const std::string& via);
  void srv_failed(const std::string& err);
  std::map<std::string, uint64_t> counters() const;
  size_t transactions() const { return tx_.size(); }
  size_t ports_in_use() const;
  size_t ports_free() const;
  size_t state_bytes() const;
  int64_t now_ms() const { return timers_->clock()->now_ms(); }
  const cfg::ControlplaneConfig& config() const { return cfg_; }
  const Admission& admission() const { return admission_; }

  std::function<void(const GatewayEvent&)> on_event;

  // sip::Transactions::Handler
  void on_request(uint64_t stx, const sip::Message& req, const sip::Peer& from) override;
  void on_ack(const sip::Message& ack, const sip::Peer& from) override;
  void on_cancel(uint64_t stx, const sip::Message& cancel) override;
  void on_ack_timeout(uint64_t stx) override;

 private:
  Side side_of(const sip::Peer& p) const;
  void reply(uint64_t stx, const sip::Message& req, int code, const char* reason,
             const std::string& to_tag = {});
  bool blocked(const sip::Peer& from);
  bool refuse_unsupported(uint64_t stx, const sip::Message& req);
  void count_auth_failure(uint32_t ip);
  bool rate_limited(const sip::Peer& from);

  // Registrations
  void handle_register(uint64_t stx, const sip::Message& req, const sip::Peer& from);
  void expire_bindings();
  void index_binding(const Binding& b);
  void erase_binding(std::unordered_map<std::string, Binding>::iterator it);
  const Binding* find_binding(const sip::Message& req) const;

  // Shared by calls and subscriptions
  bool route_new(uint64_t stx, const sip::Message& req, Side fs, sip::Peer* target,
                 std::string* ruri, int* ui);
  void init_legs(const sip::Message& req, const sip::Peer& from, const sip::Peer& target,
                 const std::string& ruri, Leg* a, Leg* b) const;
  bool accept_cseq(uint64_t stx, const sip::Message& req, Leg& l);
  void auth_result(const sip::Message& req, int status, const sip::Peer& from);
  sip::Message new_request(Leg& l, const std::string& method);

  // Subscriptions and out-of-dialog requests (gateway_relay.cc)
  void handle_subscribe(uint64_t stx, const sip::Message& req, const sip::Peer& from);
  void handle_sub_in_dialog(uint64_t stx, const sip::Message& req, const sip::Peer& from,
                            Subscription& s, Side fs);
  void arm_sub_timer(Subscription& s, uint32_t seconds);  // and journals it
  void arm_sub_timer_ms(Subscription& s, int64_t ms);
  void end_subscription(uint64_t id, const char* reason);
  void relay_out_of_dialog(uint64_t stx, const sip::Message& req, const sip::Peer& from);

  // Calls
  void load_changed(int change);
  bool admit_call(uint64_t stx, const sip::Message& req);
  void handle_invite(uint64_t stx, const sip::Message& req, const sip::Peer& from);
  void handle_in_dialog(uint64_t stx, const sip::Message& req, const sip::Peer& from, Call& call,
                        Side from_side);
  void send_invite(Call& call, Side to, sip::Message m, const sip::Peer& target);
  void invite_response(uint64_t call_id, const sip::Message& resp, bool local);
  void relay_request(Call& call, uint64_t stx, const sip::Message& req, Side from);
  // An INVITE transaction pair starts: the (re-)INVITE `req` from `fs`.
  void begin_invite(Call& c, uint64_t stx, const sip::Message& req, Side fs, bool initial);
  sip::Message new_request(Call& call, Side side, const std::string& method) {
    return new_request(call.leg[static_cast<int>(side)], method);
  }
  // SDP: rewrites `body` coming from `from` for the other side. Returns
  // false (with *code) when the offer cannot be served (488).
  // `settle`: record the result as offered or settled (for refreshes by
  // re-INVITE); false where the result is not sent anywhere.
  bool rewrite_sdp(Call& call, Side from, bool offer, const std::string& body, std::string* out,
                   int* code, bool settle = true);
  std::vector<FlowRule> flow_rules(const Call& call) const;
  std::vector<FlowKey> flow_keys(const Call& call) const;  // every relay port of the call
  void push_flows(Call& call);
  bool ours(const FlowKey& k) const;  // our relay address and port range
  // Journal: a confirmed call as it stands or gone, a binding as it stands
  // or gone (gateway_state.cc).
  cfg::JournalRecord call_record(const Call& c) const;
  cfg::JournalRecord binding_record(const Binding& b) const;
  void journal_append(const cfg::JournalRecord& r);
  void journal_call(Call& call);
  void journal_end(const Call& call);
  void journal_binding(const Binding& b);
  void journal_unbind(const Binding& b);
  void restore_call(const cfg::JournalCall& jc);
  void restore_binding(const cfg::JournalBinding& jb);
  void journal_subscription(Subscription& s);
  void journal_sub_end(const Subscription& s);
  void restore_subscription(const cfg::JournalSubscription& js);
  void remove_flows(Call& call);
  void end_call(uint64_t id, const std::string& reason, bool bye_outside, bool bye_inside);
  void arm_session_timer(Call& call);
  void take_timer_answer(Call& call, const sip::Message& resp, Side callee);
  void send_refresh(uint64_t id);
  // The relay's own re-INVITE `m` on leg `to`, offering `sdp`; `done` gets
  // its final response once, while the call lasts, and whether the leg's
  // answer in a 2xx was taken (take_own_answer).
  void own_reinvite(Call& c, Side to, sip::Message m, const std::string& sdp,
                    std::function<void(Call&, const sip::Message&, bool)> done);
  bool take_own_answer(Call& c, Side callee, const std::string& body);
  // The callee's answer to the relay's refresh re-INVITE (`body`) names
  // other formats than `before` (its streams' fmts until then): offered to
  // the other side in a re-INVITE of the relay's own.
  void relay_codec_change(Call& c, Side callee, const std::string& body,
                          const std::vector<std::vector<std::string>>& before);
  void turn_off_refused(uint64_t id);
  // The session timer's part of a re-INVITE or UPDATE `m` relayed from
  // `from`, and of the 2xx `r` that answers one (`req` and `resp` as they
  // arrived); then re-arms the timer.
  void session_timer_request(const Call& c, Side from, sip::Message* m) const;
  void session_timer_refreshed(Call& c, Side from, const sip::Message& req,
                               const sip::Message& resp, sip::Message* r);
  std::string map_replaces(const std::string& value, Side to) const;
  std::string map_refer_to(const std::string& value, Side to) const;
  sip::Peer upstream_peer(int* index, const std::vector<int>* exclude = nullptr);
  void arm_failover(Call& call);
  void send_upstream(std::shared_ptr<UpstreamRequest> r, int upstream, const sip::Peer& to);
  bool next_upstream(const std::shared_ptr<UpstreamRequest>& r, const char* why);
  void mark_failed_over(int dead, int next, const char* why, const std::string& what);
  bool fail_over(Call& call, bool ended);
  void upstream_result(int index, bool ok, int64_t rtt_ms);
  void probe_upstreams();
  std::string our_uri(const std::string& user, int listener) const;
  std::string via(int listener, const std::string& branch) const;
  int listener_for(Side side, sip::Transport t) const;
  const cfg::MediaSide& media_side(Side s) const;
  void end_media_refused(Call& c);
  void batch_refused(Call& c, uint8_t streams);
  void emit(int type, uint64_t call_id, const std::string& aor, const std::string& address,
            const std::string& detail);

  cfg::ControlplaneConfig cfg_;
  sip::Timers* timers_;
  net::SipTransport* transport_;
  FlowSink* flows_;
  sip::Transactions tx_;
  std::unique_ptr<PortPool> ports_[2];
  std::map<uint64_t, Call> calls_;
  std::unordered_map<std::string, std::pair<uint64_t, Side>> dialogs_;  // call-id|local tag
  std::unordered_map<std::string, uint64_t> invites_;  // caller call-id|from-tag|cseq -> call
  std::unordered_map<uint64_t, uint64_t> stx_call_;    // caller INVITE stx -> call
  std::unordered_map<std::string, Binding> bindings_;  // token -> binding
  std::multimap<std::string, std::string> by_user_;    // user -> token
  // Expiry times, soonest first; a refreshed binding leaves a stale entry
  // that is skipped when it comes up (its expires_at no longer matches).
  using Expiry = std::pair<int64_t, std::string>;
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<Expiry>> expiries_;
  std::map<uint64_t, Subscription> subs_;
  std::unordered_map<std::string, std::pair<uint64_t, Side>> sub_dialogs_;  // call-id|local tag
  uint64_t next_sub_ = 1;
  std::map<uint32_t, Block> blocks_;
  std::map<uint32_t, std::pair<int64_t, uint32_t>> rate_;  // ip -> (second, count)
  Admission admission_;
  std::vector<UpstreamState> upstreams_;
  std::map<std::string, uint64_t> counters_;
  Journal* journal_ = nullptr;
  std::string srv_via_;  // the SRV name the last DNS answer came from
  uint64_t next_call_ = 1;
  uint64_t sdp_version_ = 1;
  sip::Timers::Id expiry_timer_ = 0, probe_timer_ = 0, overload_timer_ = 0;
};

}  // namespace sluice::cp
