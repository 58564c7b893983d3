// sluice-controlplane: the SIP side of the Sluice gateway.
//
//   sluice-controlplane --config FILE [--check]
//
// One event-loop thread owns the SIP sockets, transactions, registrations
// and calls; gRPC threads serve the operator API and watch the dataplane.
// SIGTERM/SIGINT stop it (the dataplane keeps forwarding established calls);
// SIGHUP re-reads TLS certificates and CA bundles.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "controlplane/admin.h"
#include "controlplane/config.h"
#include "controlplane/dataplane_link.h"
#include "controlplane/gateway.h"
#include "controlplane/journal.h"
#include "controlplane/srv_watch.h"
#include "controlplane/net/loop.h"
#include "controlplane/net/transport.h"
#include "sluice_version.h"

namespace {

namespace cfgpb = ::sluice::controlplane::v1;
using namespace sluice;

sip::Transport transport_of(cfgpb::Transport t) {
  return t == cfgpb::TCP ? sip::Transport::kTcp
         : t == cfgpb::TLS ? sip::Transport::kTls
                           : sip::Transport::kUdp;
}

class Bridge : public net::SipTransport::Handler {
 public:
  cp::Gateway* gw = nullptr;
  void on_message(const sip::Message& m, const sip::Peer& from) override { gw->on_message(m, from); }
  void on_bad(const sip::Peer& from, sip::Error e, std::string_view raw) override {
    gw->on_bad(from, e, raw);
  }
  void on_drained(int listener) override { gw->on_drained(listener); }
};

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check = false;
  bool trace = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--trace-sip") {
      trace = true;
    } else if (a == "--check") {
      check = true;
    } else if (a == "--version") {
      printf("sluice-controlplane %s\n", SLUICE_VERSION);
      return 0;
    } else {
      fprintf(stderr, "usage: sluice-controlplane --config FILE [--check] [--trace-sip]\n");
      return 2;
    }
  }
  if (config_path.empty()) {
    fprintf(stderr, "usage: sluice-controlplane --config FILE [--check] [--trace-sip]\n");
    return 2;
  }
  auto cfg = cp::load_config_file(config_path);
  if (!cfg.ok()) {
    fprintf(stderr, "sluice-controlplane: %s\n", std::string(cfg.status().message()).c_str());
    return 2;
  }
  if (check) {
    printf("%s: ok\n", config_path.c_str());
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);  // before any thread starts

  net::Loop loop;
  Bridge bridge;
  net::SipTransport transport(&loop, &bridge);
  transport.set_trace(trace);
  for (const auto& l : cfg->listeners()) {
    if (l.disabled()) continue;
    net::ListenerSpec s;
    s.name = l.name();
    s.side = l.side();
    sip::parse_ip(l.address(), &s.ip);
    s.port = static_cast<uint16_t>(l.port());
    s.transport = transport_of(l.transport());
    for (const std::string& a : l.allow()) {
      net::Cidr c;
      net::parse_cidr(a, &c);
      s.allow.push_back(c);
    }
    s.advertised = l.advertised_address();
    s.tls.certificate = l.tls().certificate_file();
    s.tls.private_key = l.tls().private_key_file();
    s.tls.ca = l.tls().ca_file();
    s.tls.require_client_certificate = l.tls().require_client_certificate();
    s.tls.verify_server = l.tls().verify_server();
    s.idle_timeout_s = static_cast<int>(l.idle_timeout_s());
    s.dscp = static_cast<int>(l.dscp());
    std::string err;
    if (transport.listen(s, &err) < 0) {
      fprintf(stderr, "sluice-controlplane: %s\n", err.c_str());
      return 1;
    }
  }
  transport.check_tls_expiry();
  cp::DataplaneLink link(cfg->dataplane(), &loop);
  cp::Gateway gateway(*cfg, &loop.timers(), &transport, &link);
  bridge.gw = &gateway;
  cp::Journal journal;
  {
    std::string jerr;
    if (!gateway.open_journal(&journal, cfg->state_dir(), &jerr)) {
      fprintf(stderr, "sluice-controlplane: journal: %s\n", jerr.c_str());
      return 1;
    }
    if (!gateway.calls().empty() || !gateway.bindings().empty())
      fprintf(stderr, "sluice-controlplane: journal %s: %zu calls and %zu registrations restored\n",
              journal.path().c_str(), gateway.calls().size(), gateway.bindings().size());
  }
  cp::AdminServer admin(&loop, &gateway, &transport, &link);
  gateway.on_event = [&admin](const cp::GatewayEvent& ev) { admin.publish(ev); };
  std::string err;
  if (!admin.start(cfg->admin_listen(), &err)) {
    fprintf(stderr, "sluice-controlplane: admin API: %s\n", err.c_str());
    return 1;
  }
  link.start(&gateway);
  std::unique_ptr<cp::SrvWatch> srv;
  if (cfg->upstreams_size() == 0 && !cfg->upstream_srv().empty()) {
    srv = std::make_unique<cp::SrvWatch>(cfg->upstream_srv(), &loop);
    srv->start(&gateway);
  }

  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  loop.add(sfd, 0x001 /* EPOLLIN */, [&](uint32_t) {
    signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == sizeof si) {
      if (si.ssi_signo == SIGHUP) {
        std::string e;
        if (transport.reload_tls(&e))
          fprintf(stderr, "sluice-controlplane: TLS certificates reloaded\n");
        else
          fprintf(stderr, "sluice-controlplane: TLS reload failed, old certificates kept: %s\n",
                  e.c_str());
      } else {
        loop.stop();
      }
    }
  });
  fprintf(stderr, "sluice-controlplane %s: %d listeners, %d upstreams, admin %s, dataplane %s (%s)\n",
          SLUICE_VERSION, transport.listeners(), cfg->upstreams_size(), cfg->admin_listen().c_str(),
          cfg->dataplane().c_str(), link.connected() ? "connected" : "not answering yet");
  loop.run();
  fprintf(stderr, "sluice-controlplane: stopping; %zu calls stay on the dataplane\n",
          gateway.calls().size());
  admin.stop();
  link.stop();
  if (srv) srv->stop();
  close(sfd);
  return 0;
}
