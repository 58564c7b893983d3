// sluice-bench: the sizing benchmark for the dataplane.
//
//   sluice-bench dataplane --codec g711|g729|opus --flows N [--duration S]
//                [--json] [--dataplane PATH] [--testpmd PATH]
//
// One run measures, with the same in-process DPDK generator on one lcore:
//   1. sluice-dataplane with one worker lcore, N hairpin flows programmed
//      over gRPC: max relay rate (blast), then round-trip latency at half
//      that rate;
//   2. dpdk-testpmd in io forwarding mode on the same memif link (the
//      ceiling: what the generator and memif can do with a forwarder that
//      does nothing): blast, then latency at the same half rate.
// The generator is the memif server; both DUTs are memif clients of the same
// socket, one after the other (see "Why the generator is the memif server").
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <rte_eal.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/generator.h"
#include "dataplane/core/net.h"
#include "dataplane/core/srtp.h"
#include "bench/procs.h"
#include "absl/strings/str_format.h"
#include "sluice/dataplane/v1/dataplane.grpc.pb.h"

namespace pb = ::sluice::dataplane::v1;
using namespace sluice::bench;

namespace {

constexpr uint32_t kPortsPerAddress = 64512;  // media ports 1024..65535
constexpr uint32_t kMaxAddresses = 16;         // the dataplane's limit
constexpr uint32_t kBatch = 10000;
constexpr const char* kGenMac = "02:00:00:00:be:01";
constexpr const char* kGenIp = "198.18.0.200";
constexpr double kWarmS = 0.3;  // unmeasured lead-in of each phase

struct Codec {
  const char* name;
  uint32_t payload;
  uint8_t pt;
  uint32_t samples;  // RTP clock ticks per 20 ms packet
};
const Codec kCodecs[] = {{"g711", 160, 0, 160}, {"g729", 20, 18, 160}, {"opus", 80, 111, 960}};

enum class Crypto { kNone, kDecrypt, kEncrypt, kRekey };
const char* const kCryptoNames[] = {"none", "decrypt", "encrypt", "rekey"};

struct Options {
  Crypto crypto = Crypto::kNone;
  sluice::srtp::Suite suite = sluice::srtp::Suite::kAesCm128Sha1_80;
  const Codec* codec = nullptr;
  uint32_t flows = 0;
  bool loopback = false;  // every packet crosses two flows via our own address
  double duration = 3;
  bool json = false;
  std::string dataplane, testpmd = "dpdk-testpmd";
};

void usage(FILE* f) {
  std::fprintf(f,
               "usage: sluice-bench sip [--calls N] [--rate R] [--hold-ms MS] [--registrations M]\n"
               "                    [--reg-rate R] [--transport udp|tcp] [--cp-config TEXT]\n"
               "                    [--cp-cpu PCT] [--json]\n"
               "  Call setups and registrations through the lab appliance, driven by SIPp.\n"
               "usage: sluice-bench dataplane --codec g711|g729|opus --flows N\n"
               "                    [--duration SECONDS] [--json] [--dataplane PATH]\n"
               "                    [--testpmd PATH] [--crypto none|decrypt|encrypt|rekey]\n"
               "                    [--loopback]\n"
               "                    [--suite aes_cm_128_hmac_sha1_80|aes_cm_128_hmac_sha1_32|\n"
               "                             aes_256_cm_hmac_sha1_80|aead_aes_128_gcm|\n"
               "                             aead_aes_256_gcm]\n"
               "  Measures sluice-dataplane (one worker lcore) against dpdk-testpmd io\n"
               "  forwarding over memif, with the same generator, in one run.\n"
               "  --flows N        1..%u hairpin flows, round-robin\n"
               "  --duration S     seconds per measured phase (default 3)\n"
               "  --dataplane PATH default: ../dataplane/sluice-dataplane next to this binary\n"
               "  --testpmd PATH   default: dpdk-testpmd (from PATH)\n"
               "  --crypto MODE    SRTP on every flow (default none); the generator protects\n"
               "                   what it sends for decrypt and rekey; rekey uses the same\n"
               "                   suite both ways. Adds cipher_ceiling_mpps: the same\n"
               "                   cipher operations back to back on one core, no packet I/O\n"
               "  --suite SUITE    default aes_cm_128_hmac_sha1_80\n"
               "  --loopback       NAT loopback: each of the N paths is two flows, the first\n"
               "                   relaying to the second's port on our own address (a\n"
               "                   teleworker-to-teleworker call through a direct-media PBX);\n"
               "                   decrypt on the first flow, encrypt on the second\n",
               kPortsPerAddress * kMaxAddresses);
}

std::string ip_str(uint32_t ip) {
  char b[16];
  std::snprintf(b, sizeof b, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
  return b;
}

uint32_t relay_ip(uint32_t addr_index) { return (198u << 24 | 18u << 16) + 1 + addr_index; }

bool parse_mac(const std::string& s, std::array<uint8_t, 6>* out) {
  unsigned v[6];
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
    return false;
  for (int i = 0; i < 6; ++i) (*out)[size_t(i)] = uint8_t(v[i]);
  return true;
}

std::string self_dir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

// The bench's SRTP key (fixed: the cost does not depend on its value).
pb::SrtpKey bench_key(sluice::srtp::Suite s) {
  const sluice::srtp::SuiteInfo& in = sluice::srtp::info(s);
  std::string k(in.key_len, '\0'), salt(in.salt_len, '\0');
  for (size_t i = 0; i < k.size(); ++i) k[i] = char(0x30 + i);
  for (size_t i = 0; i < salt.size(); ++i) salt[i] = char(0x90 + i);
  pb::SrtpKey out;
  out.set_suite(pb::SrtpSuite(int(s)));
  out.set_master_key(k);
  out.set_master_salt(salt);
  return out;
}

// The same key, expanded as the generator (and the ceiling run) use it.
std::shared_ptr<sluice::srtp::KeySet> bench_keyset(sluice::srtp::Suite s) {
  pb::SrtpKey k = bench_key(s);
  return sluice::srtp::KeySet::create(
      s, reinterpret_cast<const uint8_t*>(k.master_key().data()), k.master_key().size(),
      reinterpret_cast<const uint8_t*>(k.master_salt().data()), k.master_salt().size(), true,
      false, 1);
}

// The cipher ceiling: the relay's own SRTP work for this mode (the engine
// the workers use, batches of 32 over up to 65536 flows' state), timed back
// to back on this core with no packet I/O. Inputs are protected beforehand,
// outside the timed part.
double cipher_ceiling(const Options& o, double seconds) {
  using namespace sluice::srtp;
  const uint32_t nflows = std::min<uint32_t>(o.flows, 65536);
  auto ks = bench_keyset(o.suite);
  CryptoConfig sender_cfg, relay_cfg;
  sender_cfg.tx = ks;
  bool protected_in = o.crypto == Crypto::kDecrypt || o.crypto == Crypto::kRekey;
  if (protected_in) relay_cfg.rx = ks;
  if (o.crypto == Crypto::kEncrypt || o.crypto == Crypto::kRekey) relay_cfg.tx = ks;
  std::unique_ptr<CryptoState[]> sst(new CryptoState[nflows]), rst(new CryptoState[nflows]);
  for (uint32_t i = 0; i < nflows; ++i) {
    sst[i].reset();
    rst[i].reset();
  }
  Engine sender, relay;
  constexpr int kN = 32;
  std::vector<std::vector<uint8_t>> bufs(kN, std::vector<uint8_t>(2048));
  std::vector<uint16_t> seq(nflows, 0);
  Op ops[kN];
  const uint32_t plen = 12 + o.codec->payload;
  uint32_t cursor = 0;
  uint64_t done = 0;
  std::chrono::nanoseconds timed{0};
  while (timed < std::chrono::duration<double>(seconds)) {
    uint32_t first = cursor;
    for (int i = 0; i < kN; ++i) {
      uint8_t* p = bufs[size_t(i)].data();
      uint32_t f = cursor;
      cursor = cursor + 1 == nflows ? 0 : cursor + 1;
      std::memset(p, 0xd5, plen);
      p[0] = 0x80;
      p[1] = o.codec->pt;
      sluice::net::store16(p + 2, seq[f]++);
      sluice::net::store32(p + 8, 0x51000000u + f);
      ops[i].p = p;
      ops[i].len = plen;
      ops[i].room = 2048;
      ops[i].st = &sst[f];
      ops[i].cfg = &sender_cfg;
    }
    if (protected_in) sender.run(ops, kN, 0);
    for (int i = 0; i < kN; ++i) {
      uint32_t f = (first + uint32_t(i)) % nflows;
      ops[i].st = &rst[f];
      ops[i].cfg = &relay_cfg;
    }
    auto t0 = std::chrono::steady_clock::now();
    relay.run(ops, kN, 0);
    timed += std::chrono::steady_clock::now() - t0;
    for (int i = 0; i < kN; ++i)
      if (ops[i].verdict != Verdict::kOk) return -1;  // a bug, not a speed
    done += kN;
  }
  return double(done) / std::chrono::duration<double>(timed).count() / 1e6;
}

// Everything that must be undone on every exit path.
struct Session {
  std::string dir;
  Child dataplane, testpmd;
  Generator gen;
  Session() {
    dataplane.name = "sluice-dataplane";
    testpmd.name = "dpdk-testpmd";
  }
  ~Session() {
    stop(&dataplane, SIGTERM, 10);
    stop(&testpmd, SIGINT, 5);
    // EAL leaves its runtime directory (config, fbarrays: about 20 MB with
    // --no-huge, in /run, i.e. memory) behind: remove ours and the
    // children's, which sit next to it (same user, same base directory).
    std::string eal_base;
    if (!gen.runtime_dir().empty())
      eal_base = std::filesystem::path(gen.runtime_dir()).parent_path().string();
    gen.cleanup();
    std::error_code ec;
    if (!eal_base.empty()) {
      for (const char* what : {"gen", "dp", "pmd"})
        std::filesystem::remove_all(eal_base + "/slbench-" + what + "-" + std::to_string(getpid()),
                                    ec);
    }
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

void die(const std::string& msg) { std::fprintf(stderr, "sluice-bench: %s\n", msg.c_str()); }

std::string dataplane_config(const std::string& dir, uint32_t naddr, uint32_t max_flows) {
  std::string c;
  c += "# written by sluice-bench\n";
  for (const char* a : {"--no-huge", "-m", "1024", "--file-prefix"}) c += "eal_args: \"" + std::string(a) + "\"\n";
  c += "eal_args: \"slbench-dp-" + std::to_string(getpid()) + "\"\n";
  c += "eal_args: \"--log-level=warning\"\neal_args: \"--no-telemetry\"\n";
  c += "lcores: 0\nlcores: 1\n";
  c += "idle_sleep_max_us: 0\n";
  c += "grpc_listen: \"unix:" + dir + "/dp.sock\"\n";
  c += "ports {\n  name: \"bench\"\n";
  c += "  device: \"net_memif0,role=client,socket=" + dir + "/memif.sock,id=0\"\n";
  c += "  address: \"" + ip_str(relay_ip(0)) + "\"\n  prefix_length: 24\n";
  for (uint32_t a = 1; a < naddr; ++a) c += "  extra_addresses: \"" + ip_str(relay_ip(a)) + "\"\n";
  c += "}\n";
  c += "static_neighbors { address: \"" + std::string(kGenIp) + "\" mac: \"" + kGenMac +
       "\" port: \"bench\" }\n";
  c += "media { port_min: 1024 port_max: 65535 max_flows: " + std::to_string(max_flows) + " }\n";
  return c;
}

bool get_stats(pb::Dataplane::Stub* stub, pb::Stats* st, int timeout_ms = 2000) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  return stub->GetStats(&ctx, pb::GetStatsRequest(), st).ok();
}

std::string drops_json(const pb::Stats& st) {
  std::string s = "{";
  for (int i = 0; i < st.drops_size(); ++i) {
    if (i) s += ",";
    s += "\"" + st.drops(i).reason() + "\":" + std::to_string(st.drops(i).packets());
  }
  return s + "}";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (argc >= 2 && std::string(argv[1]) == "sip") {
    // The SIP bench drives whole processes (the lab, SIPp): a script does
    // that better than C++; it lives with the sources.
    std::vector<char*> args;
    std::string script = std::string(SLUICE_SOURCE_DIR) + "/bench/sip_bench.sh";
    args.push_back(const_cast<char*>("bash"));
    args.push_back(script.data());
    for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
    args.push_back(nullptr);
    execv("/bin/bash", args.data());
    std::perror("sluice-bench: cannot run bench/sip_bench.sh");
    return 1;
  }
  if (argc < 2 || std::string(argv[1]) != "dataplane") {
    if (argc >= 2 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help")) {
      usage(stdout);
      return 0;
    }
    usage(stderr);
    return 2;
  }
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        die(a + " needs a value");
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--codec") {
      std::string v = val();
      for (const Codec& c : kCodecs)
        if (v == c.name) o.codec = &c;
      if (!o.codec) {
        die("unknown codec '" + v + "' (g711, g729, opus)");
        return 2;
      }
    } else if (a == "--flows") {
      std::string v = val();
      char* end = nullptr;
      unsigned long n = std::strtoul(v.c_str(), &end, 10);
      if (!end || *end || n == 0 || n > kPortsPerAddress * kMaxAddresses) {
        die("--flows must be 1.." + std::to_string(kPortsPerAddress * kMaxAddresses));
        return 2;
      }
      o.flows = uint32_t(n);
    } else if (a == "--duration") {
      std::string v = val();
      char* end = nullptr;
      o.duration = std::strtod(v.c_str(), &end);
      if (!end || *end || !(o.duration >= 0.1 && o.duration <= 600)) {
        die("--duration must be 0.1..600 seconds");
        return 2;
      }
    } else if (a == "--crypto") {
      std::string v = val();
      int m = -1;
      for (int k = 0; k < 4; ++k)
        if (v == kCryptoNames[k]) m = k;
      if (m < 0) {
        die("unknown --crypto '" + v + "' (none, decrypt, encrypt, rekey)");
        return 2;
      }
      o.crypto = Crypto(m);
    } else if (a == "--suite") {
      std::string v = val();
      if (!sluice::srtp::parse_suite(v, &o.suite) || o.suite == sluice::srtp::Suite::kNone) {
        die("unknown --suite '" + v + "'");
        return 2;
      }
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--loopback") {
      o.loopback = true;
    } else if (a == "--dataplane") {
      o.dataplane = val();
    } else if (a == "--testpmd") {
      o.testpmd = val();
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else {
      die("unknown argument '" + a + "'");
      usage(stderr);
      return 2;
    }
  }
  if (!o.codec || !o.flows) {
    usage(stderr);
    return 2;
  }
  // Flow entries in the table: two per path with --loopback.
  const uint32_t entries = o.loopback ? 2 * o.flows : o.flows;
  if (entries > kPortsPerAddress * kMaxAddresses) {
    die("--loopback takes two flows per path: --flows must be 1.." +
        std::to_string(kPortsPerAddress * kMaxAddresses / 2));
    return 2;
  }
  if (o.dataplane.empty()) o.dataplane = self_dir() + "/../dataplane/sluice-dataplane";
  if (access(o.dataplane.c_str(), X_OK) != 0) {
    die("no executable dataplane at " + o.dataplane + " (use --dataplane)");
    return 1;
  }

  install_signal_handlers();
  const pid_t pid = getpid();
  Session s;
  s.dir = "/tmp/sluice-bench-" + std::to_string(pid);
  const std::string memif_sock = s.dir + "/memif.sock";
  std::error_code ec;
  std::filesystem::remove_all(s.dir, ec);
  if (mkdir(s.dir.c_str(), 0700) != 0) {
    die("cannot create " + s.dir);
    s.dir.clear();
    return 1;
  }
  const uint32_t naddr = (entries + kPortsPerAddress - 1) / kPortsPerAddress;
  const uint32_t max_flows = std::max<uint32_t>(1024, (entries + 1023) / 1024 * 1024);
  auto interrupted = [&]() {
    die("interrupted; stopping");
    return 130;
  };
  auto progress = [&](const std::string& m) {
    if (!o.json) std::fprintf(stderr, "sluice-bench: %s\n", m.c_str());
  };

  // 1. The generator: EAL in this process (once), memif server.
  //
  // Why the generator is the memif server (and the DUTs clients): the two
  // DUTs run one after the other on the same link, and rte_eal_init runs
  // once per process, so our port must survive a peer going away and a new
  // one arriving. A DPDK memif server does exactly that: it keeps listening
  // and accepts the next client once the previous one has disconnected. A
  // memif client connects only in its dev_start and never retries; with the
  // DUT as server we would have to restart our port while the new server
  // comes up, and a client that connects after the server listens but
  // before its port is started is refused ("ID not found") - which, with
  // DPDK 22.11, crashed testpmd (PANIC in eal_intr_thread_main: epoll_ctl
  // on a closed fd), and testpmd's buffered stdout gives no reliable "port
  // started" signal to wait for. As clients, each DUT connects exactly when
  // its own port starts. Both DUTs have the same (client) role, so the
  // ceiling compares like with like.
  std::string err;
  if (!s.gen.init("slbench-gen-" + std::to_string(pid), memif_sock, kGenMac, &err) ||
      !s.gen.start(&err)) {
    die(err);
    return 1;
  }
  // Waits for the link while `child` runs.
  auto wait_link = [&](Child* child, double timeout_s) {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(int64_t(timeout_s * 1000));
    while (!g_stop && std::chrono::steady_clock::now() < deadline) {
      if (s.gen.link_up()) return true;
      if (!alive(child)) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };

  // 2. The dataplane, with its config.
  const std::string cfg_path = s.dir + "/dataplane.conf";
  {
    std::ofstream f(cfg_path);
    f << dataplane_config(s.dir, naddr, max_flows);
    if (!f) {
      die("cannot write " + cfg_path);
      return 1;
    }
  }
  s.dataplane.out_path = s.dir + "/dataplane.out";
  s.dataplane.err_path = s.dir + "/dataplane.err";
  if (!spawn(&s.dataplane, {o.dataplane, "--config", cfg_path}, false, &err)) {
    die(err);
    return 1;
  }
  progress("started " + o.dataplane + " (pid " + std::to_string(s.dataplane.pid) + ")");
  auto dp_died = [&](const std::string& when) {
    die("sluice-dataplane " + describe_exit(s.dataplane) + " " + when + "; its output:\n" +
        read_file(s.dataplane.out_path) + read_file(s.dataplane.err_path));
    return 1;
  };

  grpc::ChannelArguments chargs;
  chargs.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel("unix:" + s.dir + "/dp.sock",
                                           grpc::InsecureChannelCredentials(), chargs);
  auto stub = pb::Dataplane::NewStub(channel);
  pb::Stats st;
  {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    bool up = false;
    while (!g_stop && std::chrono::steady_clock::now() < deadline) {
      if (!alive(&s.dataplane)) return dp_died("during start-up");
      if (get_stats(stub.get(), &st, 500)) {
        up = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (g_stop) return interrupted();
    if (!up) {
      die("sluice-dataplane did not answer GetStats within 20 s; its output:\n" +
          read_file(s.dataplane.out_path) + read_file(s.dataplane.err_path));
      return 1;
    }
  }
  if (st.ports_size() < 1) {
    die("GetStats reports no ports");
    return 1;
  }
  std::array<uint8_t, 6> dp_mac{};
  if (!parse_mac(st.ports(0).mac(), &dp_mac)) {
    die("GetStats: bad port MAC '" + st.ports(0).mac() + "'");
    return 1;
  }

  // 3. The flows: flow i is keyed at (relay address i / 64512, port 1024 +
  //    i % 64512), sends from that same endpoint and latches its first
  //    sender, so replies hairpin back to the generator.
  //    --loopback: flow i (the path's first) sends from and to entry N+i on
  //    our own address; flow N+i sends from entry i to the generator (to
  //    the sender latched on flow i), so the reply looks the same.
  auto t_prog = std::chrono::steady_clock::now();
  const uint64_t generation = 1;
  auto endpoint = [](pb::Endpoint* e, uint32_t entry) {
    e->set_address(ip_str(relay_ip(entry / kPortsPerAddress)));
    e->set_port(1024 + entry % kPortsPerAddress);
  };
  const bool has_decrypt = o.crypto == Crypto::kDecrypt || o.crypto == Crypto::kRekey;
  const bool has_encrypt = o.crypto == Crypto::kEncrypt || o.crypto == Crypto::kRekey;
  for (uint32_t base = 0; base < entries && !g_stop; base += kBatch) {
    pb::UpsertFlowsRequest req;
    req.set_generation(generation);
    for (uint32_t j = base; j < std::min(entries, base + kBatch); ++j) {
      const uint32_t i = j % o.flows;         // the path
      const bool second = j >= o.flows;       // --loopback: the path's second flow
      pb::FlowSpec* f = req.add_flows();
      f->mutable_key()->set_local_address(ip_str(relay_ip(j / kPortsPerAddress)));
      f->mutable_key()->set_local_port(1024 + j % kPortsPerAddress);
      f->set_kind(pb::FLOW_KIND_RTP);
      f->set_latch(pb::LATCH_POLICY_FIRST);
      f->set_egress_port("bench");
      if (!o.loopback) {
        endpoint(f->mutable_egress_source(), j);
      } else if (!second) {
        endpoint(f->mutable_egress_source(), o.flows + i);
        endpoint(f->mutable_destination(), o.flows + i);
      } else {
        endpoint(f->mutable_egress_source(), i);
      }
      if (!o.loopback || second) {
        f->mutable_destination()->set_address(kGenIp);
        f->mutable_destination()->set_port(10000 + i % 50000);
      }
      f->set_cookie(j + 1);
      if (has_decrypt && (!o.loopback || !second))
        *f->mutable_crypto()->mutable_decrypt() = bench_key(o.suite);
      if (has_encrypt && (!o.loopback || second))
        *f->mutable_crypto()->mutable_encrypt() = bench_key(o.suite);
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    pb::UpsertFlowsResponse resp;
    grpc::Status gs = stub->UpsertFlows(&ctx, req, &resp);
    if (!gs.ok()) {
      if (!alive(&s.dataplane)) return dp_died("while programming flows");
      die("UpsertFlows: " + gs.error_message());
      return 1;
    }
    if (resp.created() + resp.unchanged() + resp.updated() != uint32_t(req.flows_size())) {
      die("UpsertFlows applied " + std::to_string(resp.created()) + " of " +
          std::to_string(req.flows_size()) + " flows (stale " + std::to_string(resp.stale()) + ")");
      return 1;
    }
  }
  if (g_stop) return interrupted();
  double prog_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_prog).count();
  if (!get_stats(stub.get(), &st) || st.flows() != entries) {
    die("after programming, GetStats reports " + std::to_string(st.flows()) + " flows, want " +
        std::to_string(entries));
    return 1;
  }
  const uint64_t table_bytes = st.flow_table_bytes();
  const uint64_t capacity = st.flow_capacity();
  progress("programmed " + std::to_string(entries) + " flows in " + std::to_string(prog_s) +
           " s; flow table " + std::to_string(table_bytes) + " bytes for " +
           std::to_string(capacity) + " slots");

  // 4. The dataplane phase.
  GenParams gp;
  parse_mac(kGenMac, &gp.src_mac);
  gp.dst_mac = dp_mac;
  gp.src_ip = ntohl(inet_addr(kGenIp));
  gp.payload_bytes = o.codec->payload;
  gp.payload_type = o.codec->pt;
  gp.samples_per_packet = o.codec->samples;
  gp.relay_hops = o.loopback ? 2 : 1;
  if (o.crypto != Crypto::kNone) {
    gp.crypto = true;
    const uint32_t tag = sluice::srtp::info(o.suite).srtp_tag;
    if (o.crypto == Crypto::kDecrypt || o.crypto == Crypto::kRekey) {
      gp.keys = bench_keyset(o.suite);
    }
    gp.reply_delta = o.crypto == Crypto::kDecrypt ? -int(tag)
                     : o.crypto == Crypto::kEncrypt ? int(tag) : 0;
  }
  for (uint32_t i = 0; i < o.flows; ++i) {
    gp.dst_ips.push_back(relay_ip(i / kPortsPerAddress));
    gp.dst_ports.push_back(uint16_t(1024 + i % kPortsPerAddress));
    gp.src_ports.push_back(uint16_t(10000 + i % 50000));
  }
  s.gen.setup(gp);
  if (!wait_link(&s.dataplane, 10)) {
    if (g_stop) return interrupted();
    if (!alive(&s.dataplane)) return dp_died("before the memif link came up");
    die("the memif link to sluice-dataplane did not come up within 10 s");
    return 1;
  }
  if (!s.gen.wait_forwarding(10, &g_stop)) {
    if (g_stop) return interrupted();
    if (!alive(&s.dataplane)) return dp_died("before forwarding");
    get_stats(stub.get(), &st);
    die("nothing came back through the dataplane within 10 s (drops: " + drops_json(st) + ")");
    return 1;
  }
  // The warm-up latches every flow (first packet) and checks every reply.
  WarmupResult dpw = s.gen.warmup(true, &g_stop);
  if (g_stop) return interrupted();
  progress("dataplane: warm-up: " + std::to_string(dpw.rx) + " of " + std::to_string(o.flows) +
           " replies, " + std::to_string(dpw.bad_csum) + " bad checksums, " +
           std::to_string(dpw.bad_addr) + " wrongly addressed");
  pb::Stats before;
  get_stats(stub.get(), &before);
  progress("dataplane: blast for " + std::to_string(o.duration) + " s");
  BlastResult dp = s.gen.blast(kWarmS, o.duration, &g_stop);
  if (g_stop) return interrupted();
  const double mpps = dp.rx_mpps();
  if (mpps <= 0) {
    if (!alive(&s.dataplane)) return dp_died("during the measurement");
    die("no packets came back through the dataplane");
    return 1;
  }
  const double half_pps = mpps * 1e6 / 2;
  progress("dataplane: " + std::to_string(mpps) + " Mpps; latency at " +
           std::to_string(half_pps / 1e6) + " Mpps");
  LatencyResult dpl = s.gen.paced(half_pps, kWarmS, o.duration, &g_stop);
  if (g_stop) return interrupted();
  pb::Stats after;
  get_stats(stub.get(), &after);
  if (!alive(&s.dataplane)) return dp_died("during the measurement");
  stop(&s.dataplane, SIGTERM, 10);
  if (s.dataplane.status != 0)
    std::fprintf(stderr, "sluice-bench: warning: sluice-dataplane %s on SIGTERM\n",
                 describe_exit(s.dataplane).c_str());

  // 5. The ceiling: testpmd io forwarding on the same memif link.
  {
    // The dataplane's disconnect takes the link down; wait for it so that
    // the next "up" is testpmd's.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (s.gen.link_up() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    s.gen.flush_rx();
  }
  s.testpmd.out_path = s.dir + "/testpmd.out";
  s.testpmd.err_path = s.dir + "/testpmd.err";
  std::vector<std::string> pmd = {o.testpmd,
                                  "-l", "0,1",
                                  "--no-huge", "-m", "1024",
                                  "--file-prefix", "slbench-pmd-" + std::to_string(pid),
                                  "--no-pci", "--log-level=warning", "--no-telemetry",
                                  "--vdev", "net_memif0,role=client,socket=" + memif_sock + ",id=0",
                                  "--",
                                  "--forward-mode=io", "--auto-start", "--port-topology=loop",
                                  "--nb-cores=1", "--rxq=1", "--txq=1",
                                  "--no-lsc-interrupt", "--disable-link-check"};
  if (!spawn(&s.testpmd, pmd, true, &err)) {
    die(err);
    return 1;
  }
  progress("started " + o.testpmd + " (pid " + std::to_string(s.testpmd.pid) + ")");
  auto pmd_died = [&](const std::string& when) {
    die("dpdk-testpmd " + describe_exit(s.testpmd) + " " + when + "; its output:\n" +
        read_file(s.testpmd.out_path) + read_file(s.testpmd.err_path));
    return 1;
  };
  if (!wait_link(&s.testpmd, 20)) {
    if (g_stop) return interrupted();
    if (!alive(&s.testpmd)) return pmd_died("before the memif link came up");
    die("the memif link to dpdk-testpmd did not come up within 20 s; its output:\n" +
        read_file(s.testpmd.out_path) + read_file(s.testpmd.err_path));
    return 1;
  }
  if (!s.gen.wait_forwarding(15, &g_stop)) {
    if (g_stop) return interrupted();
    if (!alive(&s.testpmd)) return pmd_died("before forwarding");
    die("nothing came back through testpmd within 15 s; its output:\n" +
        read_file(s.testpmd.out_path) + read_file(s.testpmd.err_path));
    return 1;
  }
  WarmupResult pmw = s.gen.warmup(false, &g_stop);
  if (g_stop) return interrupted();
  progress("testpmd: warm-up: " + std::to_string(pmw.rx) + " of " + std::to_string(o.flows) +
           " replies, " + std::to_string(pmw.bad_csum) + " bad checksums, " +
           std::to_string(pmw.bad_addr) + " changed");
  progress("testpmd: blast for " + std::to_string(o.duration) + " s");
  BlastResult pm = s.gen.blast(kWarmS, o.duration, &g_stop);
  if (g_stop) return interrupted();
  LatencyResult pml = s.gen.paced(half_pps, kWarmS, o.duration, &g_stop);
  if (g_stop) return interrupted();
  if (!alive(&s.testpmd)) return pmd_died("during the measurement");
  stop(&s.testpmd, SIGINT, 5);  // its stdin closes first: testpmd exits on EOF

  // 5. Report.
  const double ceiling = pm.rx_mpps();
  double cipher_mpps = 0;
  if (o.crypto != Crypto::kNone) {
    progress("cipher ceiling: " + std::string(kCryptoNames[int(o.crypto)]) + " " +
             sluice::srtp::info(o.suite).name + " back to back for " +
             std::to_string(o.duration) + " s");
    cipher_mpps = cipher_ceiling(o, o.duration);
    if (cipher_mpps < 0) die("the cipher ceiling run failed to verify its own packets");
  }
  std::string crypto_json =
      o.crypto == Crypto::kNone
          ? std::string("\"crypto\":\"none\",")
          : absl::StrFormat("\"crypto\":\"%s\",\"suite\":\"%s\",\"cipher_ceiling_mpps\":%.3f,"
                            "\"crypto_ratio\":%.3f,\"crypto_flows\":%llu,"
                            "\"crypto_bytes_per_flow\":%.1f,",
                            kCryptoNames[int(o.crypto)], sluice::srtp::info(o.suite).name,
                            cipher_mpps, cipher_mpps > 0 ? mpps / cipher_mpps : 0.0,
                            (unsigned long long)after.crypto_flows(),
                            after.crypto_flows() ? double(after.crypto_state_bytes()) /
                                                       double(after.crypto_flows())
                                                 : 0.0);
  const uint32_t frame = s.gen.frame_bytes();
  const double bpf = capacity ? double(table_bytes) / double(capacity) : 0;
  uint64_t relayed = 0, hairpinned = 0;
  for (auto& w : after.workers()) relayed += w.relayed(), hairpinned += w.hairpinned();
  for (auto& w : before.workers()) relayed -= w.relayed(), hairpinned -= w.hairpinned();
  crypto_json += absl::StrFormat("\"loopback\":%s,\"hairpinned\":%llu,",
                                 o.loopback ? "true" : "false", (unsigned long long)hairpinned);
  if (o.json) {
    std::printf(
        "{%s\"codec\":\"%s\",\"payload_bytes\":%u,\"frame_bytes\":%u,\"flows\":%u,"
        "\"mpps_per_core\":%.3f,\"ceiling_mpps\":%.3f,\"ratio\":%.3f,\"loss\":%.6f,"
        "\"p50_us\":%.2f,\"p99_us\":%.2f,\"ceiling_p50_us\":%.2f,\"ceiling_p99_us\":%.2f,"
        "\"bytes_per_flow\":%.1f,\"flow_table_bytes\":%llu,\"flow_capacity\":%llu,"
        "\"duration_s\":%g,"
        "\"offered_mpps\":%.3f,\"ceiling_loss\":%.6f,\"half_rate_mpps\":%.3f,"
        "\"half_rate_loss\":%.6f,\"half_rate_refused\":%llu,\"half_rate_skipped\":%llu,"
        "\"ceiling_half_rate_mpps\":%.3f,\"ceiling_half_rate_loss\":%.6f,"
        "\"ceiling_half_rate_refused\":%llu,\"ceiling_half_rate_skipped\":%llu,\"p999_us\":%.2f,"
        "\"ceiling_p999_us\":%.2f,\"latency_samples\":%zu,\"relayed\":%llu,"
        "\"dataplane_drops\":%s,\"program_s\":%.3f,"
        "\"warmup_replies\":%llu,\"warmup_bad_checksums\":%llu,\"warmup_bad_addresses\":%llu,"
        "\"ceiling_warmup_replies\":%llu,\"ceiling_warmup_bad\":%llu}\n",
        crypto_json.c_str(), o.codec->name, o.codec->payload, frame, o.flows, mpps, ceiling,
        ceiling > 0 ? mpps / ceiling : 0.0, dp.loss(), dpl.p50_us, dpl.p99_us, pml.p50_us,
        pml.p99_us, bpf, (unsigned long long)table_bytes, (unsigned long long)capacity,
        o.duration, dp.tx_mpps(), pm.loss(), dpl.achieved_pps / 1e6, dpl.loss(), (unsigned long long)dpl.tx_refused,
        (unsigned long long)dpl.skipped, pml.achieved_pps / 1e6, pml.loss(),
        (unsigned long long)pml.tx_refused, (unsigned long long)pml.skipped,
        dpl.p999_us, pml.p999_us, dpl.samples, (unsigned long long)relayed,
        drops_json(after).c_str(), prog_s, (unsigned long long)dpw.rx,
        (unsigned long long)dpw.bad_csum, (unsigned long long)dpw.bad_addr,
        (unsigned long long)pmw.rx, (unsigned long long)(pmw.bad_csum + pmw.bad_addr));
  } else {
    std::printf("sluice-bench dataplane: %s, %u B payload (%u B frames), %u %s, %g s per phase\n",
                o.codec->name, o.codec->payload, frame, o.flows,
                o.loopback ? "NAT loopback paths (two flows each)" : "flows", o.duration);
    std::printf("  dataplane, 1 worker core: %8.3f Mpps  (offered %.3f, loss %.4f%%)\n", mpps,
                dp.tx_mpps(), dp.loss() * 100);
    std::printf("  testpmd io (ceiling):     %8.3f Mpps  (loss %.4f%%)   ratio %.3f\n", ceiling,
                pm.loss() * 100, ceiling > 0 ? mpps / ceiling : 0.0);
    std::printf("  latency at %.3f Mpps:  dataplane p50 %.2f us  p99 %.2f us  p99.9 %.2f us"
                "  (loss %.4f%%)\n",
                half_pps / 1e6, dpl.p50_us, dpl.p99_us, dpl.p999_us, dpl.loss() * 100);
    std::printf("                           testpmd   p50 %.2f us  p99 %.2f us  p99.9 %.2f us"
                "  (loss %.4f%%)\n",
                pml.p50_us, pml.p99_us, pml.p999_us, pml.loss() * 100);
    std::printf("  flow table: %llu bytes for %llu slots = %.1f bytes per flow\n",
                (unsigned long long)table_bytes, (unsigned long long)capacity, bpf);
    std::printf("  dataplane drops: %s\n", drops_json(after).c_str());
    if (o.loopback)
      std::printf("  NAT loopback: %llu frames relayed to our own address and taken back in\n",
                  (unsigned long long)hairpinned);
    if (o.crypto != Crypto::kNone)
      std::printf("  srtp %s %s: cipher ceiling %.3f Mpps (same core, no I/O), ratio %.3f;"
                  " %.1f bytes of SRTP state per flow\n",
                  kCryptoNames[int(o.crypto)], sluice::srtp::info(o.suite).name, cipher_mpps,
                  cipher_mpps > 0 ? mpps / cipher_mpps : 0.0,
                  after.crypto_flows() ? double(after.crypto_state_bytes()) /
                                             double(after.crypto_flows())
                                       : 0.0);
    std::printf("  warm-up replies checked: dataplane %llu of %u (%llu bad checksums, %llu wrongly"
                " addressed); testpmd %llu (%llu altered)\n",
                (unsigned long long)dpw.rx, o.flows, (unsigned long long)dpw.bad_csum,
                (unsigned long long)dpw.bad_addr, (unsigned long long)pmw.rx,
                (unsigned long long)(pmw.bad_csum + pmw.bad_addr));
  }
  std::fflush(stdout);
  return 0;
}
