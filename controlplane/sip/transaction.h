// RFC 3261 section 17 transactions, client and server, INVITE and
// non-INVITE, with RFC 6026's Accepted states. The layer owns
// retransmissions and timers (A-K, M) and matching; the transaction user
// (the B2BUA) sees each request once and each response once per transaction,
// plus the 2xx retransmissions of an INVITE (it must ACK those).
//
// Two choices made here rather than in the TU:
// - An INVITE server transaction answers 100 Trying at once.
// - A 2xx to an INVITE is retransmitted over UDP until the ACK arrives (or
//   64*T1), which RFC 3261 13.3.1.4 gives to the UAS core; the layer matches
//   the ACK by Call-ID and CSeq and tells the TU if none ever comes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

#include "controlplane/sip/message.h"
#include "controlplane/sip/peer.h"
#include "controlplane/sip/timers.h"

namespace sluice::sip {

struct Timing {
  int64_t t1 = 500;
  int64_t t2 = 4000;
  int64_t t4 = 5000;
};

// A fresh RFC 3261 branch ("z9hG4bK" + random).
std::string new_branch();
// The sent-by of a Via value ("SIP/2.0/UDP host:port;..." -> "host:port").
std::string via_sent_by(std::string_view via);

class Transactions {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // A new request (not ACK, not a CANCEL that matched): answer with respond().
    virtual void on_request(uint64_t stx, const Message& req, const Peer& from) = 0;
    // An ACK for a 2xx (its own transaction-less request).
    virtual void on_ack(const Message& ack, const Peer& from) = 0;
    // A CANCEL matched INVITE server transaction `stx`; the layer has already
    // answered the CANCEL with 200. The TU must still answer the INVITE.
    virtual void on_cancel(uint64_t stx, const Message& cancel) = 0;
    // A 2xx sent on `stx` saw no ACK within 64*T1.
    virtual void on_ack_timeout(uint64_t stx) { (void)stx; }
  };
  // A client transaction's responses. A timeout or a transport error comes as
  // a synthesised 408 or 503 with `local` set.
  using ResponseFn = std::function<void(const Message& resp, bool local)>;

  Transactions(Timers* timers, Sender* sender, Handler* handler, Timing timing = {});
  ~Transactions();
  Transactions(const Transactions&) = delete;
  Transactions& operator=(const Transactions&) = delete;

  // A message from the transport.
  void receive(const Message& m, const Peer& from);

  // Sends a request in a new client transaction. The request's top Via must
  // carry a fresh branch (new_branch()). Returns the transaction id. ACK is
  // not a transaction: use send_ack() for 2xx ACKs.
  uint64_t request(const Message& req, const Peer& to, ResponseFn fn);
  void send_ack(const Message& ack, const Peer& to);
  // Cancels INVITE client transaction `ctx` (RFC 3261 9.1): CANCEL goes out
  // once a provisional response has arrived. False if there is nothing to
  // cancel (no such transaction, or it already has a final response).
  bool cancel(uint64_t ctx);
  // Drops a client transaction that has had no response at all (nothing to
  // CANCEL: RFC 3261 9.1), without calling its ResponseFn; false otherwise.
  bool abandon(uint64_t ctx);

  // Answers server transaction `stx`. Provisional responses may come
  // several times; the first final one completes it. Unknown ids are ignored.
  void respond(uint64_t stx, const Message& resp);
  // The peer a server transaction answers to.
  const Peer* peer_of(uint64_t stx) const;

  size_t size() const { return server_.size() + client_.size(); }
  struct Counters {
    uint64_t retransmissions = 0;        // sent by us
    uint64_t absorbed = 0;               // retransmitted requests absorbed
    uint64_t timeouts = 0;               // client transactions timed out
    uint64_t stray_responses = 0;        // matched nothing
    uint64_t stray_acks = 0;             // ACK for a non-2xx that matched nothing
    uint64_t transport_errors = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  struct Server;
  struct Client;
  void server_request(const Message& m, const Peer& from);
  void client_response(const Message& m, const Peer& from);
  void send_bytes(const Peer& to, const std::string& bytes);
  void end_server(uint64_t id);
  void end_client(uint64_t id);
  void arm_server_retransmit(uint64_t id, int64_t interval);
  void arm_client_retransmit(uint64_t id, int64_t interval);
  void client_final(uint64_t id, const Message& resp, bool local);
  void send_cancel(uint64_t id);

  Timers* timers_;
  Sender* sender_;
  Handler* handler_;
  Timing timing_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, Server> server_;
  std::unordered_map<std::string, uint64_t> server_key_;   // branch|sent-by|method
  std::unordered_map<std::string, uint64_t> accepted_;     // call-id|cseq -> INVITE stx
  std::unordered_map<uint64_t, Client> client_;
  std::unordered_map<std::string, uint64_t> client_key_;   // branch|method
  Counters counters_;
};

}  // namespace sluice::sip
