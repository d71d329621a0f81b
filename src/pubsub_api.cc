// The C API of topics (publish/subscribe) and of lariat_server_defer().
#include <lariat/lariat.h>

#include <new>
#include <string_view>

#include "bridge.h"
#include "connection.h"
#include "guard.h"
#include "publication.h"

using lariat::detail::Letter;

namespace {

bool topic_ok(const void *topic, size_t len) { return topic || len == 0; }

std::string_view topic_view(const void *topic, size_t len) {
  return len ? std::string_view(static_cast<const char *>(topic), len)
             : std::string_view();
}

// Posts a copy of the publish to |loop|'s mailbox (one message per loop,
// whatever its number of subscribers).
int post_publish(lariat_server *loop, std::string_view topic,
                 const lariat_frame &frame) {
  auto *copy = new lariat::detail::PendingPublish{
      std::string(topic), static_cast<uint8_t>(frame.opcode), frame.flags,
      std::string(reinterpret_cast<const char *>(frame.data), frame.len)};
  Letter letter = {0, copy,
                   [](void *p) {
                     delete static_cast<lariat::detail::PendingPublish *>(p);
                   },
                   Letter::kPublish};
  int rc = loop->mailbox.post(letter);  // frees |copy| on failure
  return rc < 0 ? rc : 0;
}

bool publishable(const lariat_frame *frame) {
  return frame && (frame->opcode == LARIAT_OP_TEXT ||
                   frame->opcode == LARIAT_OP_BINARY) &&
         (frame->data || frame->len == 0);
}

}  // namespace

namespace lariat::detail {

// Every loop of |server| gets the publish: |here| (the caller's loop, if
// any) at once, the others through their mailbox.
int publish_to_loops(lariat_server *server, lariat_server *here,
                     std::string_view topic, const lariat_frame &frame,
                     const lariat_conn *except) {
  int queued = 0;
  for (lariat_server *loop : server->primary->loops) {
    if (loop == here) {
      if (loop->stopping) return LARIAT_ERR_STOPPED;
      queued += loop->publish_local(topic, frame, except);
    } else {
      int rc = post_publish(loop, topic, frame);
      if (rc < 0) return rc;
    }
  }
  return queued;
}

}  // namespace lariat::detail

namespace {

// The process's loops, then the other processes of the fleet through
// Redis (once, whatever the number of loops).
int publish_everywhere(lariat_server *server, lariat_server *here,
                       std::string_view topic, const lariat_frame &frame,
                       const lariat_conn *except) {
  int queued = lariat::detail::publish_to_loops(server, here, topic, frame, except);
  if (queued >= 0 && !(frame.flags & LARIAT_FRAME_LOCAL))
    lariat::detail::bridge_publish(server->primary, here, topic, frame);
  return queued;
}

}  // namespace

extern "C" {

LARIAT_EXTERN int lariat_subscribe(lariat_conn *conn, const void *topic,
                                   size_t len) {
  if (!conn || !topic_ok(topic, len)) return LARIAT_ERR_INVALID_ARGUMENT;
  if (!conn->server()->on_loop_thread()) return LARIAT_ERR_INVALID_STATE;
  return lariat::detail::guard_errors([&]() -> int {
    if (!conn->open()) return LARIAT_ERR_CLOSING;
    conn->server()->topics.subscribe(conn, conn->subscriptions(true),
                                   topic_view(topic, len));
    return 0;
  });
}

LARIAT_EXTERN int lariat_unsubscribe(lariat_conn *conn, const void *topic,
                                     size_t len) {
  if (!conn || !topic_ok(topic, len)) return LARIAT_ERR_INVALID_ARGUMENT;
  if (!conn->server()->on_loop_thread()) return LARIAT_ERR_INVALID_STATE;
  auto *subs = conn->subscriptions(false);
  if (!subs) return LARIAT_ERR_NOT_FOUND;
  return conn->server()->topics.unsubscribe(conn, subs, topic_view(topic, len))
             ? 0
             : LARIAT_ERR_NOT_FOUND;
}

LARIAT_EXTERN int lariat_publish(lariat_server *server, const void *topic,
                                 size_t len, const lariat_frame *frame) {
  if (!server || !topic_ok(topic, len) || !publishable(frame))
    return LARIAT_ERR_INVALID_ARGUMENT;
  return lariat::detail::guard_errors([&]() -> int {
    return publish_everywhere(server, server->primary->current_loop(),
                              topic_view(topic, len), *frame, nullptr);
  });
}

LARIAT_EXTERN int lariat_conn_publish(lariat_conn *conn, const void *topic,
                                      size_t len, const lariat_frame *frame) {
  if (!conn || !topic_ok(topic, len) || !publishable(frame))
    return LARIAT_ERR_INVALID_ARGUMENT;
  if (!conn->server()->on_loop_thread()) return LARIAT_ERR_INVALID_STATE;
  return lariat::detail::guard_errors([&]() -> int {
    return publish_everywhere(conn->server(), conn->server(),
                              topic_view(topic, len), *frame, conn);
  });
}

LARIAT_EXTERN size_t lariat_server_subscribers(const lariat_server *server,
                                               const void *topic, size_t len) {
  if (!server || !topic_ok(topic, len)) return 0;
  const lariat_server *here = server->primary->current_loop();
  if (!here) return 0;
  const lariat::detail::Topic *t = here->topics.find(topic_view(topic, len));
  return t ? t->subscribers.size() : 0;
}

LARIAT_EXTERN uint64_t lariat_conn_dropped(const lariat_conn *conn) {
  return conn ? conn->dropped() : 0;
}

LARIAT_EXTERN int lariat_server_defer(lariat_server *server,
                                      void (*fn)(lariat_server *, void *),
                                      void *data) {
  if (!server || !fn) return LARIAT_ERR_INVALID_ARGUMENT;
  auto *call = new (std::nothrow) lariat::detail::DeferredCall{fn, data};
  if (!call) return LARIAT_ERR_NOMEM;
  Letter letter = {0, call,
                   [](void *p) {
                     delete static_cast<lariat::detail::DeferredCall *>(p);
                   },
                   Letter::kCall};
  return server->mailbox.post(letter);  // frees |call| (uncalled) on failure
}

}  // extern "C"
