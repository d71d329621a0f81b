// The C API of clients: options, lariat_connect(), lariat_client_close()
// and the response headers of a failed handshake.
#include <lariat/lariat.h>

#include <atomic>
#include <cstring>
#include <new>

#include "client.h"
#include "connection.h"
#include "guard.h"
#include "http_syntax.h"

using lariat::detail::ClientSession;
using lariat::detail::Letter;

namespace {

bool is_token(const char *s) { return s && lariat::detail::is_token(s); }

// Headers the request is made of: a handler may not replace them.
bool reserved_header(const char *name) {
  using lariat::detail::iequals;
  std::string_view n(name);
  return iequals(n, "host") || iequals(n, "upgrade") ||
         iequals(n, "connection") || iequals(n, "content-length") ||
         iequals(n, "transfer-encoding") ||
         (n.size() >= 14 && iequals(n.substr(0, 14), "sec-websocket-"));
}

std::atomic<unsigned> next_loop{0};

}  // namespace

extern "C" {

LARIAT_EXTERN int lariat_client_options_new(lariat_client_options **out) {
  if (!out) return LARIAT_ERR_INVALID_ARGUMENT;
  *out = new (std::nothrow) lariat_client_options();
  return *out ? 0 : LARIAT_ERR_NOMEM;
}

LARIAT_EXTERN void lariat_client_options_del(lariat_client_options *opts) {
  delete opts;
}

LARIAT_EXTERN int lariat_client_options_add_header(lariat_client_options *opts,
                                                   const char *name,
                                                   const char *value) {
  if (!opts || !is_token(name) || !value || lariat::detail::has_crlf(value) ||
      reserved_header(name))
    return LARIAT_ERR_INVALID_ARGUMENT;
  return lariat::detail::guard_errors([&] {
    opts->headers.emplace_back(name, value);
    return 0;
  });
}

LARIAT_EXTERN int lariat_client_options_add_protocol(
    lariat_client_options *opts, const char *protocol) {
  if (!opts || !is_token(protocol)) return LARIAT_ERR_INVALID_ARGUMENT;
  return lariat::detail::guard_errors([&] {
    opts->protocols.emplace_back(protocol);
    return 0;
  });
}

LARIAT_EXTERN int lariat_client_options_set_deflate(lariat_client_options *opts,
                                                    int knob, int value) {
  if (!opts) return LARIAT_ERR_INVALID_ARGUMENT;
  return lariat::detail::set_deflate_option(&opts->deflate, knob, value);
}

LARIAT_EXTERN int lariat_client_options_set_max_frame_size(
    lariat_client_options *opts, uint64_t bytes) {
  if (!opts || bytes == 0) return LARIAT_ERR_INVALID_ARGUMENT;
  opts->max_frame_size = bytes;
  return 0;
}

LARIAT_EXTERN int lariat_client_options_set_timeouts(
    lariat_client_options *opts, uint64_t connect_ms, uint64_t handshake_ms) {
  if (!opts || connect_ms == 0 || handshake_ms == 0)
    return LARIAT_ERR_INVALID_ARGUMENT;
  opts->connect_ms = connect_ms;
  opts->handshake_ms = handshake_ms;
  return 0;
}

LARIAT_EXTERN int lariat_client_options_set_reconnect(
    lariat_client_options *opts, uint64_t base_ms, uint64_t max_ms,
    double multiplier, double jitter, unsigned max_attempts) {
  if (!opts || base_ms == 0 || max_ms < base_ms || !(multiplier >= 1) ||
      !(jitter >= 0 && jitter <= 1))
    return LARIAT_ERR_INVALID_ARGUMENT;
  opts->reconnect = true;
  opts->base_ms = base_ms;
  opts->max_ms = max_ms;
  opts->multiplier = multiplier;
  opts->jitter = jitter;
  opts->max_attempts = max_attempts;
  return 0;
}

LARIAT_EXTERN int lariat_client_options_set_offline_queue(
    lariat_client_options *opts, size_t max_messages) {
  if (!opts) return LARIAT_ERR_INVALID_ARGUMENT;
  opts->offline_max = max_messages;
  return 0;
}

LARIAT_EXTERN int lariat_client_options_set_tls_ca(lariat_client_options *opts,
                                                   const char *ca_file,
                                                   const char *ca_dir) {
  if (!opts || (!ca_file && !ca_dir)) return LARIAT_ERR_INVALID_ARGUMENT;
  return lariat::detail::guard_errors([&] {
    auto trust = lariat::detail::ClientTls::from_files(ca_file, ca_dir);
    if (!trust) return static_cast<int>(LARIAT_ERR_TLS);
    opts->tls_trust = std::move(trust);
    return 0;
  });
}

LARIAT_EXTERN int lariat_client_options_set_tls_server_name(
    lariat_client_options *opts, const char *name) {
  if (!opts || (name && lariat::detail::has_crlf(name)))
    return LARIAT_ERR_INVALID_ARGUMENT;
  return lariat::detail::guard_errors([&] {
    opts->tls_server_name = name ? name : "";
    return 0;
  });
}

LARIAT_EXTERN int lariat_client_options_set_tls_insecure_no_verify(
    lariat_client_options *opts, int insecure) {
  if (!opts) return LARIAT_ERR_INVALID_ARGUMENT;
  opts->tls_verify = insecure == 0;
  return 0;
}

LARIAT_EXTERN int lariat_connect(lariat_server *server, const char *url,
                                 const lariat_handler *handler,
                                 void *handler_data,
                                 const lariat_client_options *opts,
                                 void *state, lariat_conn_id *id) {
  return lariat::detail::guard_errors([&]() -> int {
    if (id) *id = 0;
    lariat::detail::Url parsed;
    if (!server || !url || !handler || handler->size == 0 ||
        !lariat::detail::parse_ws_url(url, &parsed))
      return LARIAT_ERR_INVALID_ARGUMENT;
    lariat_client_options options = opts ? *opts : lariat_client_options();
    if (parsed.tls && !options.tls_trust) {
      options.tls_trust = lariat::detail::ClientTls::system_default();
      if (!options.tls_trust) return static_cast<int>(LARIAT_ERR_NOMEM);
    }
    lariat_handler h = {};
    std::memcpy(&h, handler,
                handler->size < sizeof h ? handler->size : sizeof h);
    lariat_server *primary = server->primary;
    // The calling loop when there is one, else the loops in turn.
    lariat_server *loop = primary->current_loop();
    if (!loop)
      loop = primary->loops[next_loop.fetch_add(1, std::memory_order_relaxed) %
                            primary->loops.size()];
    lariat_conn_id cid = loop->new_conn_id();
    auto *session = new ClientSession(
        loop, cid, std::move(parsed), std::move(options), h, handler_data,
        state);
    Letter letter = {cid, session,
                     [](void *s) { static_cast<ClientSession *>(s)->abandon(); },
                     Letter::kConnect};
    // Refused, the session was never the loop's: no callback runs, and
    // the caller keeps its state (terminate runs only once accepted).
    int rc = loop->mailbox.try_post(letter);
    if (rc != 0) {
      delete session;
      return rc;
    }
    if (id) *id = cid;
    return 0;
  });
}

LARIAT_EXTERN int lariat_client_close(lariat_server *server, lariat_conn_id id) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!server || id == 0) return LARIAT_ERR_INVALID_ARGUMENT;
    lariat_server *loop = server->loop_of(id);
    if (!loop) return 0;
    Letter letter = {id, nullptr, nullptr, Letter::kClientClose};
    return loop->mailbox.post(letter);
  });
}

LARIAT_EXTERN const char *lariat_reason_header(const lariat_reason *reason,
                                               const char *name, size_t *len) {
  if (len) *len = 0;
  if (!reason || !name || !reason->response_) return nullptr;
  const auto *resp =
      static_cast<const lariat::detail::Request *>(reason->response_);
  const lariat::detail::Header *h = resp->find(name);
  if (!h) return nullptr;
  if (len) *len = h->value.size();
  return h->value.data();
}

}  // extern "C"
