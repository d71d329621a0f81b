// The C API over the request and upgrade handles that init sees.
#include "upgrade.h"

#include <cstring>

#include "guard.h"
#include "http_syntax.h"
#include "server.h"

using lariat::detail::Header;

namespace {

const char *view(std::string_view v, size_t *len) {
  if (len) *len = v.size();
  return v.data();
}

const char *no_request(size_t *len) {
  if (len) *len = 0;
  return nullptr;
}

// Headers the 101 gets from lariat itself; a handler's copy would
// contradict them.
bool lariat_writes(std::string_view name) {
  using lariat::detail::iequals;
  return iequals(name, "upgrade") || iequals(name, "connection") ||
         iequals(name, "content-length") ||
         (name.size() >= 14 && iequals(name.substr(0, 14), "sec-websocket-"));
}

}  // namespace

extern "C" {

LARIAT_EXTERN const char *lariat_req_method(const lariat_req *req,
                                            size_t *len) {
  return req ? view(req->request->method, len) : no_request(len);
}

LARIAT_EXTERN const char *lariat_req_path(const lariat_req *req, size_t *len) {
  return req ? view(req->request->path, len) : no_request(len);
}

LARIAT_EXTERN const char *lariat_req_query(const lariat_req *req,
                                           size_t *len) {
  return req ? view(req->request->query, len) : no_request(len);
}

LARIAT_EXTERN const char *lariat_req_header(const lariat_req *req,
                                            const char *name, size_t *len) {
  if (!req || !name) return nullptr;
  const Header *h = req->request->find(name);
  return h ? view(h->value, len) : nullptr;
}

LARIAT_EXTERN size_t lariat_req_header_count(const lariat_req *req) {
  return req ? req->request->headers.size() : 0;
}

LARIAT_EXTERN int lariat_req_header_at(const lariat_req *req, size_t index,
                                       const char **name, size_t *name_len,
                                       const char **value, size_t *value_len) {
  if (!req || index >= req->request->headers.size())
    return LARIAT_ERR_INVALID_ARGUMENT;
  const Header &h = req->request->headers[index];
  if (name) *name = view(h.name, name_len);
  if (value) *value = view(h.value, value_len);
  return 0;
}

LARIAT_EXTERN int lariat_req_is_websocket(const lariat_req *req) {
  return req && req->request->is_websocket;
}

LARIAT_EXTERN int lariat_req_peer(const lariat_req *req, char *buf,
                                  size_t size, int *port) {
  if (!req || !buf || size == 0) return LARIAT_ERR_INVALID_ARGUMENT;
  return req->transport->peer(buf, size, port);
}

LARIAT_EXTERN size_t lariat_req_protocol_count(const lariat_req *req) {
  return req ? req->request->protocols.size() : 0;
}

LARIAT_EXTERN const char *lariat_req_protocol_at(const lariat_req *req,
                                                 size_t index, size_t *len) {
  if (!req || index >= req->request->protocols.size()) return nullptr;
  return view(req->request->protocols[index], len);
}

LARIAT_EXTERN int lariat_upgrade_set_state(lariat_upgrade *up, void *state) {
  if (!up) return LARIAT_ERR_INVALID_ARGUMENT;
  up->state = state;
  return 0;
}

// lariat_upgrade_set_<name>() for every single-value option of the table.
#define LARIAT__SETTER(name, type, def, valid)                           \
  LARIAT_EXTERN int lariat_upgrade_set_##name(lariat_upgrade *up, type v) { \
    if (!up) return LARIAT_ERR_INVALID_ARGUMENT;                          \
    const lariat::detail::ConnOptions &o = up->opts;                      \
    (void)o;                                                              \
    if (!(valid)) return LARIAT_ERR_INVALID_ARGUMENT;                     \
    up->opts.name = v;                                                    \
    return 0;                                                             \
  }
LARIAT_CONN_OPTIONS(LARIAT__SETTER)
#undef LARIAT__SETTER

LARIAT_EXTERN int lariat_upgrade_set_protocol(lariat_upgrade *up,
                                              const char *protocol) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!up || !protocol) return LARIAT_ERR_INVALID_ARGUMENT;
    for (std::string_view offered : up->request.protocols) {
      if (offered == protocol) {
        up->protocol = protocol;
        return 0;
      }
    }
    return LARIAT_ERR_INVALID_ARGUMENT;
  });
}

LARIAT_EXTERN int lariat_upgrade_set_deflate(lariat_upgrade *up, int option,
                                             int64_t value) {
  if (!up) return LARIAT_ERR_INVALID_ARGUMENT;
  return lariat::detail::set_deflate_option(&up->deflate, option, value);
}

LARIAT_EXTERN int lariat_upgrade_set_max_queued(lariat_upgrade *up,
                                                uint64_t bytes, int policy) {
  // A cap under the low-water mark would refuse before drain could ever
  // be due.
  if (!up || bytes == 0 || (up->low_water_set && bytes < up->opts.low_water) ||
      policy < LARIAT_BACKPRESSURE_REFUSE ||
      policy > LARIAT_BACKPRESSURE_CLOSE_TRY_LATER)
    return LARIAT_ERR_INVALID_ARGUMENT;
  up->opts.max_queued = bytes;
  up->opts.backpressure_policy = policy;
  if (!up->low_water_set && up->opts.low_water > bytes / 2)
    up->opts.low_water = bytes / 2;
  return 0;
}

LARIAT_EXTERN int lariat_upgrade_set_low_water(lariat_upgrade *up,
                                               uint64_t bytes) {
  if (!up || bytes > up->opts.max_queued) return LARIAT_ERR_INVALID_ARGUMENT;
  up->opts.low_water = bytes;
  up->low_water_set = true;
  return 0;
}

LARIAT_EXTERN int lariat_upgrade_set_ping_interval(lariat_upgrade *up,
                                                   uint64_t interval_ms,
                                                   uint64_t pong_timeout_ms) {
  if (!up || (interval_ms && !pong_timeout_ms))
    return LARIAT_ERR_INVALID_ARGUMENT;
  up->opts.ping_interval = interval_ms;
  up->opts.pong_timeout = pong_timeout_ms;
  return 0;
}

LARIAT_EXTERN int lariat_upgrade_set_crash(lariat_upgrade *up,
                                           const char *crash_class,
                                           const char *crash_reason) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!up) return LARIAT_ERR_INVALID_ARGUMENT;
    up->crash_class = crash_class ? crash_class : "";
    up->crash_reason = crash_reason ? crash_reason : "";
    return 0;
  });
}

LARIAT_EXTERN int lariat_upgrade_reply(lariat_upgrade *up, int status,
                                       const char *const *headers,
                                       size_t nheaders, const void *body,
                                       size_t body_len) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!up || status < 100 || status > 599 || (nheaders && !headers) ||
        (body_len && !body))
      return LARIAT_ERR_INVALID_ARGUMENT;
    std::vector<std::pair<std::string, std::string>> pairs;
    for (size_t i = 0; i < nheaders; ++i) {
      const char *name = headers[2 * i], *value = headers[2 * i + 1];
      if (!name || !value || !*name || lariat::detail::has_crlf(name) ||
          lariat::detail::has_crlf(value) || std::strchr(name, ':'))
        return LARIAT_ERR_INVALID_ARGUMENT;
      pairs.emplace_back(name, value);
    }
    // Everything that can fail first: a reply out of memory is no reply.
    std::string copy(static_cast<const char *>(body), body_len);
    up->headers = std::move(pairs);
    up->body = std::move(copy);
    up->status = status;
    up->has_reply = true;
    return 0;
  });
}

LARIAT_EXTERN int lariat_upgrade_add_header(lariat_upgrade *up,
                                            const char *name,
                                            const char *value) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!up || !name || !value || !lariat::detail::is_token(name) ||
        lariat::detail::has_crlf(value) || lariat_writes(name))
      return LARIAT_ERR_INVALID_ARGUMENT;
    up->extra_101.emplace_back(name, value);
    return 0;
  });
}

LARIAT_EXTERN int lariat_upgrade_resume(lariat_upgrade *up, int result) {
  if (!up || !up->deferrable ||
      (result != LARIAT_OK && result != LARIAT_CRASH))
    return LARIAT_ERR_INVALID_ARGUMENT;
  up->resume_result = result;
  lariat::detail::Letter letter = {
      up->conn_id, up,
      [](void *p) { delete static_cast<lariat_upgrade *>(p); },
      lariat::detail::Letter::kResume};
  // A stopped server's mailbox frees |up| at once: its connection has
  // already ended (a stopping server waits for pending decisions).
  up->server->mailbox.post(letter);
  return 0;
}

}  // extern "C"
