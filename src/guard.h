// Keeps C++ exceptions (in practice std::bad_alloc from containers) from
// crossing into C callers or libuv: every C entry point that allocates runs
// its body through guard_errors().
#ifndef LARIAT_GUARD_H
#define LARIAT_GUARD_H

#include <lariat/lariat.h>

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

}  // namespace lariat::detail

#endif
