// The request and upgrade handles a handler's init sees.
#ifndef LARIAT_UPGRADE_H
#define LARIAT_UPGRADE_H

#include <lariat/lariat.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "conn_options.h"
#include "deflate.h"
#include "handshake.h"
#include "transport.h"

struct lariat_req {
  const lariat::detail::Request *request;
  const lariat::detail::Transport *transport;
};

// Built on the heap before init and owning the request head its Request
// points into, so that a deferred decision (LARIAT_DEFER) can carry it to
// another thread and back without touching the connection.
struct lariat_upgrade {
  std::unique_ptr<std::string> head;
  lariat::detail::Request request;
  lariat_server *server = nullptr;
  lariat_conn_id conn_id = 0;
  // Set by the loop before init runs; init returning LARIAT_DEFER hands
  // the object over (lariat_upgrade_resume).
  bool deferrable = false;
  int resume_result = LARIAT_OK;

  void *state = nullptr;
  lariat::detail::ConnOptions opts;
  std::string protocol;
  bool has_reply = false;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // plain reply
  std::vector<std::pair<std::string, std::string>> extra_101;
  std::string body;
  std::string crash_class, crash_reason;
  lariat::detail::DeflateConfig deflate;
};

#endif
