// The Redis bridge: a process's topics shared with every other process
// joined to the same Redis (and channel prefix). It runs on the primary
// loop with one subscriber and one publisher connection (RedisLink); the
// other loops reach it through the primary's mailbox (lariat_server_defer).
// A topic's first subscriber on any loop subscribes its channel, the last
// one leaving unsubscribes it after a linger; a publish goes to Redis once
// with this process's origin and the topic's next sequence number, and
// what comes back with that origin is dropped. Received sequence numbers
// are checked per origin and channel: a jump is a gap, reported.
#ifndef LARIAT_BRIDGE_H
#define LARIAT_BRIDGE_H

#include <lariat/lariat.h>
#include <uv.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "redis_link.h"
#include "redis_url.h"

struct lariat_server;
struct lariat_conn;

namespace lariat::detail {

struct BridgeSettings {
  RedisTimeouts timeouts;
  uint64_t linger_ms = 1000;
  size_t max_unanswered = 100000;  // PUBLISHes in flight before dropping
};

class Bridge : public RedisLink::Owner {
 public:
  Bridge(lariat_server *primary, const RedisUrl &url, std::string prefix,
         const BridgeSettings &settings, uint64_t origin);
  ~Bridge() override;

  // Primary loop thread only.
  void start();
  void publish(std::string_view topic, uint8_t opcode, uint32_t flags,
               const uint8_t *data, size_t len);
  void ref(std::string_view topic);    // a loop's first subscriber
  void unref(std::string_view topic);  // a loop's last one left
  void stop();  // tears down; the primary's handle count follows
  bool stopping() const { return stopping_; }
  void set_handler(void (*fn)(lariat_server *, const lariat_bridge_event *,
                              void *),
                   void *data) {
    handler_ = fn;
    handler_data_ = data;
  }

  // Any thread.
  void read_stats(lariat_bridge_stats *out) const;

  // RedisLink::Owner
  void link_ready(RedisLink *link) override;
  void link_down(RedisLink *link, int error, const char *detail) override;
  void link_released(RedisLink *link) override;
  void read_begin() override;
  void read_end() override;

  // hiredis callbacks
  void on_sub_reply(redisAsyncContext *ac, redisReply *reply);
  void on_pub_reply(redisAsyncContext *ac, redisReply *reply);
  void on_linger_timer();

 private:
  enum SubState : uint8_t { kNone, kSubscribing, kSubscribed, kUnsubscribing };
  struct Channel {
    int refs = 0;            // loops with subscribers
    bool lingering = false;  // refs fell to 0 less than linger_ms ago
    uint64_t idle_since = 0;
    SubState state = kNone;
    std::unordered_map<uint64_t, uint64_t> last_seq;  // by origin
  };
  void reconcile(const std::string &name);
  void on_message(std::string_view channel, const uint8_t *p, size_t n);
  void emit(int kind, int link, int error, const char *detail,
            std::string_view topic, uint64_t origin, uint64_t missed,
            uint64_t seq);
  void arm_linger();
  void lost_in_flight();
  int link_index(RedisLink *link) const { return link == sub_.get() ? 0 : 1; }

  lariat_server *primary_;
  std::string prefix_;
  BridgeSettings settings_;
  uint64_t origin_;
  std::unique_ptr<RedisLink> sub_, pub_;
  uv_timer_t linger_;
  int handles_ = 0;  // the linger timer and the two links
  bool stopping_ = false;
  bool down_reported_[2] = {false, false};
  bool had_fault_[2] = {false, false};
  std::unordered_map<std::string, Channel> channels_;
  std::unordered_map<std::string, uint64_t> out_seq_;  // by topic
  size_t in_flight_ = 0;  // PUBLISHes unanswered
  void (*handler_)(lariat_server *, const lariat_bridge_event *, void *) = nullptr;
  void *handler_data_ = nullptr;

  std::atomic<uint64_t> published_{0}, publish_failed_{0}, received_{0},
      own_dropped_{0}, malformed_{0}, gaps_{0}, missed_{0}, faults_{0},
      reconnects_{0}, channels_subscribed_{0};
  std::atomic<int> connected_{0}, last_error_{0};
};

// Hooks of the server and the topics (bridge_api.cc).
void bridge_stop(lariat_server *loop);  // once the first loop stops
void bridge_free(lariat_server *loop);  // when it is deleted
// Sends a local publish to Redis; from any thread (|here|: the caller's
// loop or nullptr).
void bridge_publish(lariat_server *primary, lariat_server *here,
                    std::string_view topic, const lariat_frame &frame);
// Every loop's subscribers of |topic| get |frame| (pubsub_api.cc); what the
// bridge received goes out this way, not to Redis again.
int publish_to_loops(lariat_server *server, lariat_server *here,
                     std::string_view topic, const lariat_frame &frame,
                     const lariat_conn *except);

}  // namespace lariat::detail

#endif
