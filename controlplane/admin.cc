#include "controlplane/admin.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <list>
#include <mutex>

#include "controlplane/dataplane_link.h"
#include "controlplane/net/loop.h"
#include "controlplane/net/transport.h"
#include "sluice/admin/v1/admin.grpc.pb.h"
#include "sluice_version.h"

namespace sluice::cp {

namespace pb = ::sluice::admin::v1;

namespace {

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void set_ts(int64_t ms, google::protobuf::Timestamp* t) {
  t->set_seconds(ms / 1000);
  t->set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
}

void set_dur(int64_t ms, google::protobuf::Duration* d) {
  if (ms < 0) ms = 0;
  d->set_seconds(ms / 1000);
  d->set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
}

pb::Transport transport_pb(sip::Transport t) {
  switch (t) {
    case sip::Transport::kUdp: return pb::TRANSPORT_UDP;
    case sip::Transport::kTcp: return pb::TRANSPORT_TCP;
    case sip::Transport::kTls: return pb::TRANSPORT_TLS;
  }
  return pb::TRANSPORT_UNSPECIFIED;
}

void endpoint(const std::string& addr, uint32_t port, pb::Endpoint* e) {
  e->set_address(addr);
  e->set_port(port);
}

}  // namespace

class AdminService final : public pb::Admin::Service {
 public:
  AdminService(net::Loop* loop, Gateway* gw, net::SipTransport* tr, DataplaneLink* link)
      : loop_(loop), gw_(gw), tr_(tr), link_(link), started_ms_(unix_ms_now()) {}

  // Runs fn on the loop and waits.
  template <typename Fn>
  grpc::Status on_loop(Fn fn) {
    auto p = std::make_shared<std::promise<grpc::Status>>();
    auto f = p->get_future();
    loop_->post([p, fn]() mutable { p->set_value(fn()); });
    if (f.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the signalling loop did not answer");
    return f.get();
  }

  void fill_call(const Call& c, pb::Call* out) {
    out->set_id(c.id);
    out->set_state(static_cast<pb::CallState>(static_cast<int>(c.state)));
    set_ts(c.created_unix_ms, out->mutable_created());
    if (c.answered_ms) set_dur(gw_->now_ms() - c.answered_ms, out->mutable_duration());
    out->set_direction(c.outbound ? "outbound" : "inbound");
    out->set_on_hold(c.on_hold);
    out->set_reinvites(c.reinvites);
    set_dur(int64_t{c.session_expires_s} * 1000, out->mutable_session_expires());
    for (int s = 0; s < 2; ++s) {
      const Leg& l = c.leg[s];
      pb::Leg* pl = s == 0 ? out->mutable_outside() : out->mutable_inside();
      pl->set_side(side_name(static_cast<Side>(s)));
      pl->set_call_id(l.call_id);
      pl->set_local_tag(l.local_tag);
      pl->set_remote_tag(l.remote_tag);
      pl->set_from(l.uac ? l.local_hdr : l.remote_hdr);
      pl->set_to(l.uac ? l.remote_hdr : l.local_hdr);
      pl->set_remote_target(l.remote_target);
      pl->set_transport(transport_pb(l.peer.transport));
      endpoint(sip::ip_str(l.peer.ip), l.peer.port, pl->mutable_signalling_peer());
      pl->set_user_agent(l.user_agent);
    }
    const auto& cfg = gw_->config().media();
    for (size_t i = 0; i < c.streams.size(); ++i) {
      const Stream& st = c.streams[i];
      pb::MediaStream* ms = out->add_streams();
      ms->set_index(static_cast<uint32_t>(i));
      ms->set_type(st.type);
      for (const std::string& codec : st.codecs) ms->add_codecs(codec);
      ms->set_rtcp_mux(st.rtcp_mux);
      ms->set_direction(st.direction);
      ms->set_disabled(st.disabled);
      ms->set_refused(st.refused);
      for (int s = 0; s < 2; ++s) {
        const StreamSide& ss = st.side[s];
        const auto& pol = s == 0 ? cfg.outside() : cfg.inside();
        pb::MediaSide* side = s == 0 ? ms->mutable_outside() : ms->mutable_inside();
        endpoint(pol.address(), ss.relay_port, side->mutable_relay());
        endpoint(pol.advertised_address().empty() ? pol.address() : pol.advertised_address(),
                 ss.relay_port, side->mutable_advertised());
        endpoint(ss.peer_addr, ss.peer_port, side->mutable_peer());
        side->set_profile(ss.profile);
        if (ss.srtp && ss.keys.rx) side->set_srtp_suite(ss.keys.rx->name);
        if (ss.relay_port && !st.refused) {
          ms->add_flows(pol.address() + ":" + std::to_string(ss.relay_port));
          if (!st.rtcp_mux) ms->add_flows(pol.address() + ":" + std::to_string(ss.relay_port + 1));
        }
      }
    }
  }

  grpc::Status ListCalls(grpc::ServerContext*, const pb::ListCallsRequest*,
                         pb::ListCallsResponse* resp) override {
    return on_loop([this, resp] {
      for (const auto& [id, c] : gw_->calls()) fill_call(c, resp->add_calls());
      return grpc::Status::OK;
    });
  }

  grpc::Status GetCall(grpc::ServerContext*, const pb::GetCallRequest* req, pb::Call* resp) override {
    uint64_t id = req->id();
    return on_loop([this, id, resp] {
      auto it = gw_->calls().find(id);
      if (it == gw_->calls().end())
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "no call " + std::to_string(id));
      fill_call(it->second, resp);
      return grpc::Status::OK;
    });
  }

  grpc::Status ListRegistrations(grpc::ServerContext*, const pb::ListRegistrationsRequest* req,
                                 pb::ListRegistrationsResponse* resp) override {
    std::string aor = req->aor();
    return on_loop([this, aor, resp] {
      int64_t now = gw_->now_ms();
      for (const auto& [token, b] : gw_->bindings()) {
        if (!aor.empty() && b.aor != aor) continue;
        pb::Registration* r = resp->add_registrations();
        r->set_aor(b.aor);
        r->set_contact(b.contact);
        r->set_relay_contact("sltk=" + b.token);
        r->set_transport(transport_pb(b.peer.transport));
        endpoint(sip::ip_str(b.peer.ip), b.peer.port, r->mutable_source());
        r->set_connection(b.peer.conn);
        set_dur(b.expires_at - now, r->mutable_expires_in());
        r->set_user_agent(b.user_agent);
        set_ts(b.registered_at, r->mutable_registered());
        r->set_listener(b.listener);
      }
      resp->set_total(static_cast<uint64_t>(resp->registrations_size()));
      return grpc::Status::OK;
    });
  }

  grpc::Status ListBlocked(grpc::ServerContext*, const pb::ListBlockedRequest* req,
                           pb::ListBlockedResponse* resp) override {
    bool all = req->include_counting();
    return on_loop([this, all, resp] {
      int64_t now = gw_->now_ms();
      for (const auto& [ip, b] : gw_->blocks()) {
        bool blocked = b.blocked_until > now;
        if (!blocked && !all) continue;
        pb::BlockedSource* s = resp->add_sources();
        s->set_address(sip::ip_str(ip));
        s->set_failures(static_cast<uint32_t>(b.failures.size()));
        s->set_blocked(blocked);
        if (blocked) set_dur(b.blocked_until - now, s->mutable_remaining());
        set_ts(b.last_failure_unix_ms, s->mutable_last_failure());
        s->set_dropped(b.dropped);
      }
      return grpc::Status::OK;
    });
  }

  grpc::Status Unblock(grpc::ServerContext*, const pb::UnblockRequest* req,
                       pb::UnblockResponse* resp) override {
    uint32_t ip;
    if (!sip::parse_ip(req->address(), &ip))
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "address: '" + req->address() + "' is not an IPv4 address");
    return on_loop([this, ip, resp] {
      resp->set_was_blocked(gw_->unblock(ip));
      return grpc::Status::OK;
    });
  }

  grpc::Status ListUpstreams(grpc::ServerContext*, const pb::ListUpstreamsRequest*,
                             pb::ListUpstreamsResponse* resp) override {
    return on_loop([this, resp] {
      // Where a new request would go now: the best-ranked state and priority.
      int best = -1;
      auto rank = [](int st) { return st == 2 ? 0 : st == 1 ? 1 : 2; };
      const auto& ups = gw_->upstreams();
      for (size_t i = 0; i < ups.size(); ++i)
        if (ups[i].withdrawn) continue;
        else if (best < 0 || rank(ups[i].state) < rank(ups[best].state) ||
            (rank(ups[i].state) == rank(ups[best].state) &&
             ups[i].spec.priority() < ups[best].spec.priority()))
          best = static_cast<int>(i);
      for (size_t i = 0; i < ups.size(); ++i) {
        const UpstreamState& u = ups[i];
        if (u.withdrawn) continue;
        pb::Upstream* o = resp->add_upstreams();
        o->set_host(u.srv ? u.name : u.spec.host());
        endpoint(u.spec.host(), u.peer.port, o->mutable_endpoint());
        o->set_transport(transport_pb(u.peer.transport));
        o->set_priority(u.spec.priority());
        o->set_weight(u.spec.weight());
        o->set_state(static_cast<pb::UpstreamState>(u.state));
        o->set_source(u.srv ? "srv" : "static");
        if (u.last_change_unix_ms) set_ts(u.last_change_unix_ms, o->mutable_last_change());
        if (u.last_rtt_ms >= 0) set_dur(u.last_rtt_ms, o->mutable_last_rtt());
        o->set_consecutive_failures(u.failures);
        o->set_requests(u.requests);
        o->set_active(best >= 0 && rank(u.state) == rank(ups[best].state) &&
                      u.spec.priority() == ups[best].spec.priority());
      }
      return grpc::Status::OK;
    });
  }

  grpc::Status GetStatus(grpc::ServerContext*, const pb::GetStatusRequest*, pb::Status* resp) override {
    return on_loop([this, resp] {
      resp->set_version(SLUICE_VERSION);
      set_dur(unix_ms_now() - started_ms_, resp->mutable_uptime());
      resp->set_calls(gw_->calls().size());
      resp->set_registrations(gw_->bindings().size());
      resp->set_subscriptions(gw_->subscriptions().size());
      uint64_t blocked = 0;
      for (const auto& [ip, b] : gw_->blocks()) blocked += b.blocked_until > gw_->now_ms();
      resp->set_blocked(blocked);
      resp->set_transactions(gw_->transactions());
      resp->set_connections(tr_->connections());
      resp->set_dataplane_connected(link_->connected());
      resp->set_dataplane_generation(link_->generation());
      resp->set_flows(gw_->owned_flows().size());
      resp->set_ports_in_use(gw_->ports_in_use());
      resp->set_ports_free(gw_->ports_free());
      resp->set_state_bytes(gw_->state_bytes());
      resp->set_overloaded(gw_->admission().shedding());
      resp->set_sip_queue_delay_ms(static_cast<uint32_t>(gw_->admission().delay_ms()));
      std::map<std::string, uint64_t> counters = gw_->counters();
      loop_->turns().report("loop_turn", &counters);
      loop_->turns_cpu().report("loop_turn_cpu", &counters);
      link_->rpcs().report("flow_rpc", &counters);
      counters["flow_queue_max"] = link_->queue_max();
      for (const auto& [name, v] : counters) {
        pb::Counter* c = resp->add_counters();
        c->set_name(name);
        c->set_value(v);
      }
      return grpc::Status::OK;
    });
  }

  struct Watcher {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<pb::AdminEvent> q;
    uint64_t lost = 0;
    std::vector<int> types;
  };

  grpc::Status Watch(grpc::ServerContext* ctx, const pb::WatchRequest* req,
                     grpc::ServerWriter<pb::AdminEvent>* writer) override {
    auto w = std::make_shared<Watcher>();
    for (int t : req->types()) w->types.push_back(t);
    {
      std::lock_guard<std::mutex> g(mu_);
      watchers_.push_back(w);
    }
    while (!ctx->IsCancelled()) {
      pb::AdminEvent ev;
      {
        std::unique_lock<std::mutex> lk(w->mu);
        w->cv.wait_for(lk, std::chrono::milliseconds(200), [&] { return !w->q.empty(); });
        if (w->q.empty()) continue;
        ev = std::move(w->q.front());
        w->q.pop_front();
      }
      if (!writer->Write(ev)) break;
    }
    std::lock_guard<std::mutex> g(mu_);
    watchers_.remove(w);
    return grpc::Status::OK;
  }

  void publish(const GatewayEvent& e) {
    pb::AdminEvent ev;
    set_ts(unix_ms_now(), ev.mutable_time());
    ev.set_type(static_cast<pb::EventType>(e.type));
    ev.set_call_id(e.call_id);
    ev.set_aor(e.aor);
    ev.set_address(e.address);
    ev.set_detail(e.detail);
    std::lock_guard<std::mutex> g(mu_);
    for (auto& w : watchers_) {
      if (!w->types.empty() &&
          std::find(w->types.begin(), w->types.end(), e.type) == w->types.end())
        continue;
      std::lock_guard<std::mutex> wg(w->mu);
      if (w->q.size() >= 1024) {
        ++w->lost;
        continue;
      }
      pb::AdminEvent copy = ev;
      copy.set_lost_before(w->lost);
      w->lost = 0;
      w->q.push_back(std::move(copy));
      w->cv.notify_one();
    }
  }

 private:
  net::Loop* loop_;
  Gateway* gw_;
  net::SipTransport* tr_;
  DataplaneLink* link_;
  int64_t started_ms_;
  std::mutex mu_;
  std::list<std::shared_ptr<Watcher>> watchers_;
};

AdminServer::AdminServer(net::Loop* loop, Gateway* gateway, net::SipTransport* transport,
                         DataplaneLink* link)
    : service_(std::make_unique<AdminService>(loop, gateway, transport, link)) {}

AdminServer::~AdminServer() { stop(); }

bool AdminServer::start(const std::string& address, std::string* error) {
  if (address.rfind("unix:", 0) == 0) {
    std::string path = address.substr(5);
    size_t slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0) mkdir(path.substr(0, slash).c_str(), 0750);
    unlink(path.c_str());
  }
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  b.RegisterService(service_.get());
  mode_t old = umask(0077);  // operator socket: owner only
  server_ = b.BuildAndStart();
  umask(old);
  if (!server_) {
    *error = "cannot listen on " + address;
    return false;
  }
  return true;
}

void AdminServer::stop() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    server_.reset();
  }
}

void AdminServer::publish(const GatewayEvent& ev) { service_->publish(ev); }

}  // namespace sluice::cp
