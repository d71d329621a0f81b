// The C API of the Redis bridge, and the hooks through which the server,
// the topic registries and publishers reach it.
#include <lariat/lariat.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "bridge.h"
#include "guard.h"
#include "publication.h"
#include "server.h"

using lariat::detail::Bridge;

namespace {

struct TopicChange {
  std::string topic;
  bool added;
};

Bridge *bridge_of(const lariat_server *server) {
  return server ? server->primary->bridge.load(std::memory_order_acquire)
                : nullptr;
}

// On the primary's thread, in order with everything else the loop posted.
void apply_topic_change(lariat_server *primary, void *data) {
  auto *change = static_cast<TopicChange *>(data);
  Bridge *b = bridge_of(primary);
  try {
    if (b && change->added)
      b->ref(change->topic);
    else if (b)
      b->unref(change->topic);
  } catch (...) {
  }
  delete change;
}

// TopicRegistry::on_change of every loop.
void topic_changed(void *data, std::string_view topic, bool added) noexcept {
  auto *loop = static_cast<lariat_server *>(data);
  lariat_server *primary = loop->primary;
  try {
    if (loop == primary) {
      Bridge *b = bridge_of(primary);
      if (b && added)
        b->ref(topic);
      else if (b)
        b->unref(topic);
      return;
    }
    auto *change = new TopicChange{std::string(topic), added};
    if (lariat_server_defer(primary, apply_topic_change, change) != 0)
      delete change;
  } catch (...) {
    // Out of memory: this topic's channel follows it no more.
  }
}

void send_letter(lariat_server *primary, void *data) {
  auto *p = static_cast<lariat::detail::PendingPublish *>(data);
  Bridge *b = bridge_of(primary);
  try {
    if (b)
      b->publish(p->topic, p->opcode, p->flags,
                 reinterpret_cast<const uint8_t *>(p->payload.data()),
                 p->payload.size());
  } catch (...) {
  }
  delete p;
}

uint64_t new_origin() {
  uint64_t origin = 0;
  if (uv_random(nullptr, nullptr, &origin, sizeof origin, 0, nullptr) != 0)
    origin = uv_hrtime() ^ (static_cast<uint64_t>(getpid()) << 40);
  return origin ? origin : 1;  // 0 means an anonymous publisher
}

}  // namespace

namespace lariat::detail {

// Every loop stops and is deleted through these; the bridge is the first
// loop's, so only that one's own calls touch it.
void bridge_stop(lariat_server *loop) {
  if (loop != loop->primary) return;
  if (Bridge *b = bridge_of(loop)) b->stop();
}

void bridge_free(lariat_server *loop) {
  if (loop != loop->primary) return;
  delete loop->bridge.exchange(nullptr);
}

void bridge_publish(lariat_server *primary, lariat_server *here,
                    std::string_view topic, const lariat_frame &frame) {
  Bridge *b = bridge_of(primary);
  if (!b) return;
  if (here == primary) {
    b->publish(topic, static_cast<uint8_t>(frame.opcode), frame.flags,
               frame.data, frame.len);
    return;
  }
  auto *copy = new PendingPublish{
      std::string(topic), static_cast<uint8_t>(frame.opcode), frame.flags,
      std::string(reinterpret_cast<const char *>(frame.data), frame.len)};
  if (lariat_server_defer(primary, send_letter, copy) != 0) delete copy;
}

}  // namespace lariat::detail

extern "C" {

LARIAT_EXTERN int lariat_server_join_redis(lariat_server *server,
                                           const char *url,
                                           const char *prefix) {
  if (!server || !url) return LARIAT_ERR_INVALID_ARGUMENT;
  lariat_server *primary = server->primary;
  if (!primary->on_loop_thread() || (primary->multi() && primary->started.load()))
    return LARIAT_ERR_INVALID_STATE;
  return lariat::detail::guard_errors([&]() -> int {
    lariat::detail::RedisUrl parsed;
    if (!lariat::detail::parse_redis_url(url, &parsed))
      return LARIAT_ERR_INVALID_ARGUMENT;
    if (primary->stopping) return LARIAT_ERR_STOPPED;
    if (bridge_of(primary)) return LARIAT_ERR_EXISTS;
    lariat::detail::BridgeSettings settings;
    const lariat_options &o = primary->options;
    settings.timeouts.connect_ms = o.bridge_connect_timeout_ms;
    settings.timeouts.command_ms = o.bridge_command_timeout_ms;
    settings.timeouts.backoff_min_ms = o.bridge_backoff_min_ms;
    settings.timeouts.backoff_max_ms = o.bridge_backoff_max_ms;
    settings.linger_ms = o.bridge_linger_ms;
    auto *b = new Bridge(primary, parsed, prefix ? prefix : "lariat:",
                         settings, new_origin());
    ++primary->open_handles;  // the bridge closes as one handle
    primary->bridge.store(b, std::memory_order_release);
    // Topics that already have subscribers (one loop: this thread's).
    for (lariat_server *l : primary->loops) {
      l->topics.on_change_data = l;
      l->topics.on_change = topic_changed;
      l->topics.for_each_name([&](std::string_view name) { b->ref(name); });
    }
    b->start();
    return 0;
  });
}

LARIAT_EXTERN int lariat_server_on_bridge(
    lariat_server *server,
    void (*on_bridge)(lariat_server *server, const lariat_bridge_event *event,
                      void *data),
    void *data) {
  if (!server) return LARIAT_ERR_INVALID_ARGUMENT;
  if (!server->primary->on_loop_thread()) return LARIAT_ERR_INVALID_STATE;
  Bridge *b = bridge_of(server);
  if (!b) return LARIAT_ERR_NOT_FOUND;
  b->set_handler(on_bridge, data);
  return 0;
}

LARIAT_EXTERN int lariat_server_bridge_stats(const lariat_server *server,
                                             lariat_bridge_stats *out,
                                             size_t size) {
  if (!server || !out) return LARIAT_ERR_INVALID_ARGUMENT;
  Bridge *b = bridge_of(server);
  if (!b) return LARIAT_ERR_NOT_FOUND;
  lariat_bridge_stats stats;
  b->read_stats(&stats);
  std::memset(out, 0, size);
  std::memcpy(out, &stats, size < sizeof stats ? size : sizeof stats);
  return 0;
}

}  // extern "C"
