// The request and upgrade handles a handler's init sees.
#ifndef LARIAT_UPGRADE_H
#define LARIAT_UPGRADE_H

#include <lariat/lariat.h>

#include <string>
#include <utility>
#include <vector>

#include "deflate.h"
#include "handshake.h"
#include "transport.h"

struct lariat_req {
  const lariat::detail::Request *request;
  const lariat::detail::Transport *transport;
};

struct lariat_upgrade {
  const lariat::detail::Request *request;
  void *state;
  uint64_t idle_timeout_ms;
  uint64_t max_frame_size;
  bool validate_utf8 = true;
  std::string protocol;
  bool has_reply = false;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string crash_class, crash_reason;
  lariat::detail::DeflateConfig deflate;
  uint64_t max_queued = 64u << 20;
  int backpressure_policy = LARIAT_BACKPRESSURE_CLOSE;
  uint64_t low_water = 16u << 10;
  uint64_t ping_interval_ms = 0;
  uint64_t pong_timeout_ms = 0;
};

#endif
