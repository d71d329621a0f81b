// The C API over lariat_conn.
#include <lariat/lariat.h>

#include "guard.h"

#include "connection.h"

extern "C" {

LARIAT_EXTERN int lariat_reply(lariat_conn *conn, const lariat_frame *frame) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!conn) return LARIAT_ERR_INVALID_ARGUMENT;
    return conn->reply(frame);
  });
}

LARIAT_EXTERN int lariat_conn_set_crash(lariat_conn *conn,
                                        const char *crash_class,
                                        const char *crash_reason) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!conn) return LARIAT_ERR_INVALID_ARGUMENT;
    conn->details().crash_class = crash_class ? crash_class : "";
    conn->details().crash_reason = crash_reason ? crash_reason : "";
    return 0;
  });
}

LARIAT_EXTERN lariat_conn_id lariat_conn_get_id(const lariat_conn *conn) {
  return conn ? conn->id : 0;
}

LARIAT_EXTERN void *lariat_conn_get_data(const lariat_conn *conn) {
  return conn ? conn->user_state : nullptr;
}

LARIAT_EXTERN void lariat_conn_set_data(lariat_conn *conn, void *state) {
  if (conn) conn->user_state = state;
}

LARIAT_EXTERN lariat_server *lariat_conn_server(const lariat_conn *conn) {
  return conn ? conn->server : nullptr;
}

LARIAT_EXTERN int lariat_conn_version(const lariat_conn *conn) {
  return conn ? conn->version : 0;
}

LARIAT_EXTERN int lariat_conn_compressed(const lariat_conn *conn) {
  return conn && conn->deflate;
}

LARIAT_EXTERN const char *lariat_conn_protocol(const lariat_conn *conn) {
  const lariat_conn::Details *d = conn ? conn->details_if_any() : nullptr;
  return d && !d->protocol.empty() ? d->protocol.c_str() : nullptr;
}

LARIAT_EXTERN int lariat_conn_set_idle_timeout(lariat_conn *conn,
                                               uint64_t ms) {
  if (!conn) return LARIAT_ERR_INVALID_ARGUMENT;
  return conn->set_idle_timeout(ms);
}

LARIAT_EXTERN size_t lariat_conn_buffered_amount(const lariat_conn *conn) {
  return conn ? conn->buffered_amount() : 0;
}

LARIAT_EXTERN int lariat_conn_set_active(lariat_conn *conn, int active) {
  if (!conn) return LARIAT_ERR_INVALID_ARGUMENT;
  return conn->set_active(active != 0);
}

LARIAT_EXTERN int lariat_conn_hibernating(const lariat_conn *conn) {
  return conn && conn->hibernating;
}

}  // extern "C"
