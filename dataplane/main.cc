// sluice-dataplane: the DPDK primary process.
//
//   sluice-dataplane --config FILE        run
//   sluice-dataplane --config FILE --check validate the config and exit
#include <grpcpp/grpcpp.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "dataplane/config.h"
#include "dataplane/runtime.h"
#include "dataplane/service.h"
#include "sluice_version.h"

namespace {

sluice::Runtime* g_rt = nullptr;

void on_signal(int) {
  if (g_rt) g_rt->stop();
}

void usage() {
  std::fprintf(stderr,
               "usage: sluice-dataplane --config FILE [--check]\n"
               "  --config FILE  dataplane configuration (protobuf text format, see\n"
               "                 proto/sluice/dataplane/v1/config.proto)\n"
               "  --check        validate the configuration and exit\n");
}

// Makes the directory of a unix: listen address and removes a stale socket.
void prepare_unix_socket(const std::string& listen) {
  if (listen.rfind("unix:", 0) != 0) return;
  std::string path = listen.substr(5);
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    std::string dir = path.substr(0, slash);
    mkdir(dir.c_str(), 0750);
  }
  unlink(path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--check") {
      check = true;
    } else if (a == "--version") {
      std::printf("sluice-dataplane %s\n", SLUICE_VERSION);
      return 0;
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "sluice-dataplane: unknown argument '%s'\n", a.c_str());
      usage();
      return 2;
    }
  }
  if (config_path.empty()) {
    usage();
    return 2;
  }
  auto cfg = sluice::load_config_file(config_path);
  if (!cfg.ok()) {
    std::fprintf(stderr, "sluice-dataplane: %s\n", std::string(cfg.status().message()).c_str());
    return 2;
  }
  if (check) {
    std::printf("%s: ok (%d ports, %u max flows)\n", config_path.c_str(), cfg->ports_size(),
                cfg->media().max_flows());
    return 0;
  }

  // EAL arguments: lcores, then the devices the ports name, then the rest.
  std::vector<std::string> eal = {"sluice-dataplane"};
  // lcore i runs on CPU lcores[i]: lcore 0 is the control lcore. The same
  // CPU may be named twice (oversubscribed: tests on small machines).
  std::vector<std::string> lcores;
  for (int i = 0; i < cfg->lcores_size(); ++i)
    lcores.push_back(absl::StrCat(i, "@", cfg->lcores(i)));
  if (lcores.empty()) lcores = {"0@0", "1@1"};
  eal.push_back("--lcores");
  eal.push_back(absl::StrJoin(lcores, ","));
  eal.push_back("--main-lcore");
  eal.push_back("0");
  bool any_pci = false;
  unsigned workers = unsigned(lcores.size() - 1);
  for (const auto& p : cfg->ports()) {
    if (p.device().rfind("pci:", 0) == 0) {
      eal.push_back("-a");
      eal.push_back(p.device().substr(4));
      any_pci = true;
    } else {
      std::string dev = p.device();
      // af_packet exposes as many queues as qpairs: one TX queue per worker.
      if (dev.rfind("net_af_packet", 0) == 0 && dev.find("qpairs=") == std::string::npos)
        dev += absl::StrCat(",qpairs=", std::max(workers, p.rx_queues()));
      eal.push_back("--vdev");
      eal.push_back(dev);
    }
  }
  if (!any_pci) eal.push_back("--no-pci");
  for (const auto& a : cfg->eal_args()) eal.push_back(a);
  std::vector<char*> eal_argv;
  for (auto& s : eal) eal_argv.push_back(s.data());
  if (rte_eal_init(int(eal_argv.size()), eal_argv.data()) < 0) {
    std::fprintf(stderr, "sluice-dataplane: EAL initialisation failed: %s (arguments: %s)\n",
                 rte_strerror(rte_errno), absl::StrJoin(eal, " ").c_str());
    return 1;
  }

  std::string err;
  auto rt = sluice::Runtime::create(*cfg, &err);
  if (!rt) {
    std::fprintf(stderr, "sluice-dataplane: %s: %s\n", config_path.c_str(), err.c_str());
    rte_eal_cleanup();
    return 1;
  }
  g_rt = rt.get();
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);

  sluice::DataplaneService service(rt.get());
  prepare_unix_socket(cfg->grpc_listen());
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(cfg->grpc_listen(), grpc::InsecureServerCredentials(), &bound_port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(256 << 20);
  builder.SetMaxSendMessageSize(256 << 20);
  mode_t old = umask(0077);  // the socket carries keys: owner only
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  umask(old);
  if (!server) {
    std::fprintf(stderr, "sluice-dataplane: cannot listen on %s\n", cfg->grpc_listen().c_str());
    rt.reset();
    rte_eal_cleanup();
    return 1;
  }
  rt->start_workers();
  std::printf("sluice-dataplane %s: %d ports, %u workers, gRPC on %s\n", SLUICE_VERSION,
              cfg->ports_size(), workers, cfg->grpc_listen().c_str());
  std::fflush(stdout);

  rt->control_loop();

  // Shut the server down while still serving posted commands, so that
  // in-flight calls complete instead of hanging the shutdown.
  std::atomic<bool> down{false};
  std::thread t([&] {
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    down = true;
  });
  while (!down) {
    rt->drain_commands();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  t.join();
  rt->on_event = nullptr;
  g_rt = nullptr;
  rt.reset();
  rte_eal_cleanup();
  std::printf("sluice-dataplane: stopped\n");
  return 0;
}
