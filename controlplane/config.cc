#include "controlplane/config.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/text_config.h"
#include "controlplane/media.h"
#include "controlplane/net/transport.h"

namespace sluice::cp {

namespace cfg = ::sluice::controlplane::v1;

namespace {

absl::Status bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

bool is_ip(const std::string& s) {
  uint32_t ip;
  return sip::parse_ip(s, &ip);
}

}  // namespace

absl::StatusOr<cfg::ControlplaneConfig> parse_config(const std::string& text,
                                                     const std::string& origin) {
  return parse_text_config<cfg::ControlplaneConfig>(text, origin, validate_config);
}

absl::StatusOr<cfg::ControlplaneConfig> load_config_file(const std::string& path) {
  auto text = read_config_file(path);
  if (!text.ok()) return text.status();
  return parse_config(*text, path);
}

absl::Status validate_config(cfg::ControlplaneConfig& c) {
  if (c.listeners_size() == 0) return bad("listeners", "at least one listener is required");
  std::set<std::string> names, sockets;
  bool outside = false, inside = false;
  for (int i = 0; i < c.listeners_size(); ++i) {
    auto& l = *c.mutable_listeners(i);
    std::string f = absl::StrCat("listeners[", i, "]");
    if (l.name().empty()) l.set_name(absl::StrCat(l.side(), "-", i));
    if (!names.insert(l.name()).second) return bad(f + ".name", "duplicate '" + l.name() + "'");
    if (l.side() != "outside" && l.side() != "inside")
      return bad(f + ".side", "'" + l.side() + "' is not 'outside' or 'inside'");
    if (!is_ip(l.address())) return bad(f + ".address", "'" + l.address() + "' is not an IPv4 address");
    if (!l.advertised_address().empty() && !is_ip(l.advertised_address()))
      return bad(f + ".advertised_address", "not an IPv4 address");
    if (l.transport() == cfg::TRANSPORT_UNSPECIFIED) l.set_transport(cfg::UDP);
    if (l.port() == 0) l.set_port(l.transport() == cfg::TLS ? 5061 : 5060);
    if (l.port() > 65535) return bad(f + ".port", "over 65535");
    if (!sockets.insert(absl::StrCat(l.address(), ":", l.port(), "/", l.transport() == cfg::UDP ? "udp" : "tcp")).second)
      return bad(f, "the same address, port and protocol twice");
    for (int k = 0; k < l.allow_size(); ++k) {
      net::Cidr cidr;
      if (!net::parse_cidr(l.allow(k), &cidr))
        return bad(absl::StrCat(f, ".allow[", k, "]"), "'" + l.allow(k) + "' is not a network (a.b.c.d/n)");
    }
    if (l.transport() == cfg::TLS && l.tls().certificate_file().empty())
      return bad(f + ".tls.certificate_file", "required for a TLS listener");
    if (l.tls().require_client_certificate() && l.tls().ca_file().empty())
      return bad(f + ".tls.ca_file", "mutual TLS needs a CA bundle");
    if (l.idle_timeout_s() == 0) l.set_idle_timeout_s(90);
    if (!l.has_dscp()) l.set_dscp(24);
    if (l.dscp() > 63) return bad(f + ".dscp", "must be 0..63");
    if (l.disabled()) continue;
    (l.side() == "outside" ? outside : inside) = true;
  }
  if (!outside) return bad("listeners", "no enabled listener on the outside");
  if (!inside) return bad("listeners", "no enabled listener on the inside");
  if (c.upstreams_size() == 0 && c.upstream_srv().empty())
    return bad("upstreams", "at least one upstream (or upstream_srv) is required");
  for (int i = 0; i < c.upstreams_size(); ++i) {
    auto& u = *c.mutable_upstreams(i);
    std::string f = absl::StrCat("upstreams[", i, "]");
    if (!is_ip(u.host())) return bad(f + ".host", "'" + u.host() + "' is not an IPv4 address");
    if (u.transport() == cfg::TRANSPORT_UNSPECIFIED) u.set_transport(cfg::UDP);
    if (u.port() == 0) u.set_port(u.transport() == cfg::TLS ? 5061 : 5060);
    if (u.port() > 65535) return bad(f + ".port", "over 65535");
    bool have = false;
    for (const auto& l : c.listeners())
      if (l.side() == "inside" && !l.disabled() && l.transport() == u.transport()) have = true;
    if (!have) return bad(f + ".transport", "no enabled inside listener with this transport");
  }
  auto& m = *c.mutable_media();
  if (m.port_min() == 0) m.set_port_min(20000);
  if (m.port_max() == 0) m.set_port_max(31000);
  if (m.port_min() % 2) return bad("media.port_min", "must be even (RTP even, RTCP odd)");
  if (m.port_min() < 1024 || m.port_max() > 65535 || m.port_max() <= m.port_min())
    return bad("media.port_min", "the range must be within 1024-65535 and not empty");
  if (m.inactivity_timeout_s() == 0) m.set_inactivity_timeout_s(60);
  if (m.latch().empty()) m.set_latch("allow-n");
  if (m.latch() != "first" && m.latch() != "allow-n" && m.latch() != "strict")
    return bad("media.latch", "'" + m.latch() + "' is not first, allow-n or strict");
  if (m.max_senders() == 0) m.set_max_senders(4);
  if (m.max_senders() > 10) return bad("media.max_senders", "at most 10");
  if (!m.has_audio_dscp()) m.set_audio_dscp(46);
  if (!m.has_video_dscp()) m.set_video_dscp(34);
  if (m.audio_dscp() > 63) return bad("media.audio_dscp", "must be 0..63");
  if (m.video_dscp() > 63) return bad("media.video_dscp", "must be 0..63");
  if (m.ttl_reset() > 255) return bad("media.ttl_reset", "must be 0 (decrement) or 1..255");
  for (int s = 0; s < 2; ++s) {
    auto& side = s == 0 ? *m.mutable_outside() : *m.mutable_inside();
    std::string f = s == 0 ? "media.outside" : "media.inside";
    if (!is_ip(side.address())) return bad(f + ".address", "'" + side.address() + "' is not an IPv4 address");
    if (!side.advertised_address().empty() && !is_ip(side.advertised_address()))
      return bad(f + ".advertised_address", "not an IPv4 address");
    if (side.dataplane_port().empty()) side.set_dataplane_port(s == 0 ? "outside" : "inside");
    if (side.srtp() == cfg::SRTP_POLICY_UNSPECIFIED) side.set_srtp(s == 0 ? cfg::OPTIONAL : cfg::OFF);
    if (side.suites_size() == 0) {
      side.add_suites("AES_CM_128_HMAC_SHA1_80");
      side.add_suites("AEAD_AES_128_GCM");
    }
    for (int k = 0; k < side.suites_size(); ++k)
      if (!suite_by_name(side.suites(k)))
        return bad(absl::StrCat(f, ".suites[", k, "]"), "unknown suite '" + side.suites(k) + "'");
  }
  auto& t = *c.mutable_timers();
  if (t.t1_ms() == 0) t.set_t1_ms(500);
  if (t.t2_ms() == 0) t.set_t2_ms(4000);
  if (t.t4_ms() == 0) t.set_t4_ms(5000);
  if (t.invite_timeout_s() == 0) t.set_invite_timeout_s(180);
  if (t.invite_timeout_s() > 300) return bad("timers.invite_timeout_s", "at most 300");
  if (t.session_expires_s() == 0) t.set_session_expires_s(14400);
  if (t.min_se_s() == 0) t.set_min_se_s(90);
  if (t.failover_ms() == 0) t.set_failover_ms(2000);
  if (t.failover_ms() >= 64 * t.t1_ms()) return bad("timers.failover_ms", "must be below 64*t1_ms");
  auto& r = *c.mutable_registrations();
  if (r.max_expires_s() == 0) r.set_max_expires_s(3600);
  if (r.max_bindings() == 0) r.set_max_bindings(200000);
  if (r.mobile_idle_timeout_s() == 0) r.set_mobile_idle_timeout_s(1200);
  auto& s = *c.mutable_security();
  if (s.auth_failures() == 0) s.set_auth_failures(10);
  if (s.auth_window_s() == 0) s.set_auth_window_s(60);
  if (s.block_s() == 0) s.set_block_s(600);
  auto& o = *c.mutable_overload();
  if (!o.has_queue_delay_ms()) o.set_queue_delay_ms(100);
  if (o.queue_delay_ms() > 10000) return bad("overload.queue_delay_ms", "at most 10000");
  if (o.retry_after_s() > 86400) return bad("overload.retry_after_s", "at most 86400");
  auto& mon = *c.mutable_monitor();
  if (mon.options_interval_s() == 0) mon.set_options_interval_s(30);
  if (mon.failures_down() == 0) mon.set_failures_down(2);
  if (c.dataplane().empty()) c.set_dataplane("unix:/run/sluice/dataplane.sock");
  if (c.admin_listen().empty()) c.set_admin_listen("unix:/run/sluice/controlplane.sock");
  if (c.state_dir().empty()) c.set_state_dir("/var/lib/sluice");
  return absl::OkStatus();
}

}  // namespace sluice::cp
