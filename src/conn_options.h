// Per-connection options: one table drives the struct that init fills
// (lariat_upgrade), the copy into the connection, the single-value C
// setters (upgrade.cc) and the option tests. Adding an option is one line
// here plus its header declaration (and its wrappers, which the
// header-sync tests check).
#ifndef LARIAT_CONN_OPTIONS_H
#define LARIAT_CONN_OPTIONS_H

#include <lariat/lariat.h>

#include <cstdint>

// X(name, type, default, valid) - |valid| is an expression over |v|, the
// value given to lariat_upgrade_set_<name>() (INVALID_ARGUMENT when false;
// |o| is the options being set, for checks against other fields).
#define LARIAT_CONN_OPTIONS(X)                                            \
  X(idle_timeout, uint64_t, 0, true)                                      \
  X(max_frame_size, uint64_t, 0 /* the server's */, v > 0)                \
  X(validate_utf8, int, 1, true)                                          \
  X(low_water, uint64_t, 16u << 10, v <= o.max_queued)
// Options with more than one value have hand-written setters; their
// fields live in the same struct.

namespace lariat::detail {

struct ConnOptions {
#define LARIAT__FIELD(name, type, def, valid) type name = def;
  LARIAT_CONN_OPTIONS(LARIAT__FIELD)
#undef LARIAT__FIELD
  uint64_t max_queued = 64u << 20;
  int backpressure_policy = LARIAT_BACKPRESSURE_CLOSE;
  uint64_t ping_interval = 0;
  uint64_t pong_timeout = 0;
};

}  // namespace lariat::detail

#endif
