// The C API over lariat_conn. No exception leaves an entry point: a C++
// exception (out of memory) becomes LARIAT_ERR_NOMEM here, and a call from
// a thread other than the loop's is refused before it touches anything.
#include <lariat/lariat.h>

#include "connection.h"
#include "guard.h"

namespace {

template <typename Body>
int loop_thread_call(const lariat_conn *conn, Body body) noexcept {
  if (!conn) return LARIAT_ERR_INVALID_ARGUMENT;
  if (!conn->server()->on_loop_thread()) return LARIAT_ERR_INVALID_STATE;
  return lariat::detail::guard_errors(body);
}

bool usable(const lariat_conn *conn) {
  return conn && conn->server()->on_loop_thread();
}

}  // namespace

extern "C" {

LARIAT_EXTERN int lariat_reply(lariat_conn *conn,
                               const lariat_frame *frame) {
  return loop_thread_call(conn, [&] { return conn->reply(frame); });
}

LARIAT_EXTERN int lariat_conn_set_crash(lariat_conn *conn,
                                        const char *crash_class,
                                        const char *crash_reason) {
  return loop_thread_call(conn, [&] {
    conn->details().crash_class = crash_class ? crash_class : "";
    conn->details().crash_reason = crash_reason ? crash_reason : "";
    return 0;
  });
}

LARIAT_EXTERN lariat_conn_id lariat_conn_get_id(const lariat_conn *conn) {
  return conn ? conn->id : 0;
}

LARIAT_EXTERN void *lariat_conn_get_data(const lariat_conn *conn) {
  return usable(conn) ? conn->user_state : nullptr;
}

LARIAT_EXTERN void lariat_conn_set_data(lariat_conn *conn, void *state) {
  if (usable(conn)) conn->user_state = state;
}

LARIAT_EXTERN lariat_server *lariat_conn_server(const lariat_conn *conn) {
  return conn ? conn->server()->primary : nullptr;
}

LARIAT_EXTERN int lariat_conn_version(const lariat_conn *conn) {
  return conn ? conn->version : 0;
}

LARIAT_EXTERN int lariat_conn_compressed(const lariat_conn *conn) {
  return conn && conn->deflating();
}

LARIAT_EXTERN const char *lariat_conn_tls_version(const lariat_conn *conn) {
  return conn ? conn->transport()->tls_version() : nullptr;
}

LARIAT_EXTERN int lariat_conn_tls_resumed(const lariat_conn *conn) {
  return conn && conn->transport()->tls_resumed() ? 1 : 0;
}

LARIAT_EXTERN const char *lariat_conn_protocol(const lariat_conn *conn) {
  const lariat_conn::Details *d = conn ? conn->details_if_any() : nullptr;
  return d && !d->protocol.empty() ? d->protocol.c_str() : nullptr;
}

LARIAT_EXTERN int lariat_conn_set_idle_timeout(lariat_conn *conn,
                                               uint64_t ms) {
  return loop_thread_call(conn, [&] { return conn->set_idle_timeout(ms); });
}

LARIAT_EXTERN size_t lariat_conn_buffered_amount(const lariat_conn *conn) {
  return usable(conn) ? conn->buffered_amount() : 0;
}

LARIAT_EXTERN int lariat_conn_set_active(lariat_conn *conn, int active) {
  return loop_thread_call(conn, [&] { return conn->set_active(active != 0); });
}

LARIAT_EXTERN int lariat_conn_hibernating(const lariat_conn *conn) {
  return conn && conn->hibernating;
}

LARIAT_EXTERN int lariat_conn_set_max_frame_size(lariat_conn *conn,
                                                 uint64_t bytes) {
  return loop_thread_call(conn,
                          [&] { return conn->set_max_frame_size(bytes); });
}

LARIAT_EXTERN int lariat_conn_peer(const lariat_conn *conn, char *buf,
                                   size_t size, int *port) {
  if (!buf || size == 0) return LARIAT_ERR_INVALID_ARGUMENT;
  return loop_thread_call(conn, [&] { return conn->peer(buf, size, port); });
}

LARIAT_EXTERN const char *lariat_conn_path(const lariat_conn *conn,
                                           size_t *len) {
  if (!conn) return nullptr;
  std::string_view path = conn->path();
  if (len) *len = path.size();
  return path.data() ? path.data() : "";
}

LARIAT_EXTERN void *lariat_conn_handler_data(const lariat_conn *conn) {
  return conn ? conn->handler_data() : nullptr;
}

}  // extern "C"
