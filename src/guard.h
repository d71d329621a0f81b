// Keeps C++ exceptions (in practice std::bad_alloc from containers) from
// crossing into C callers or libuv: every C entry point that allocates runs
// its body through guard_errors(), every libuv callback through
// guard_callback().
#ifndef LARIAT_GUARD_H
#define LARIAT_GUARD_H

#include <lariat/lariat.h>

#include <cstddef>
#include <new>

namespace lariat::detail {

template <typename Body>
int guard_errors(Body &&body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc &) {
    return LARIAT_ERR_NOMEM;
  } catch (...) {
    return LARIAT_ERR_FATAL;
  }
}

// Runs the body of a libuv callback: nothing may unwind into libuv. An
// exception (in practice std::bad_alloc) drops |conn| as a socket error
// (lariat_conn::abandon()); other connections and the server go on.
template <typename Conn, typename Body>
void guard_callback(Conn *conn, Body &&body) noexcept {
  try {
    body();
  } catch (...) {
    if (conn) conn->abandon();
  }
}

// A callback with no connection to drop (a client between attempts): what
// escapes it is dropped; the state it left is the callback's to keep sane.
template <typename Body>
void guard_callback(std::nullptr_t, Body &&body) noexcept {
  try {
    body();
  } catch (...) {
  }
}

}  // namespace lariat::detail

#endif
