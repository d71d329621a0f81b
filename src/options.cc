#include "options.h"

#include <lariat/lariat.h>

#include <new>

extern "C" {

LARIAT_EXTERN int lariat_options_new(lariat_options **out) {
  if (!out) return LARIAT_ERR_INVALID_ARGUMENT;
  *out = new (std::nothrow) lariat_options();
  return *out ? 0 : LARIAT_ERR_NOMEM;
}

LARIAT_EXTERN void lariat_options_del(lariat_options *opts) { delete opts; }

LARIAT_EXTERN int lariat_options_set_max_head_size(lariat_options *opts,
                                                   size_t bytes) {
  if (!opts || bytes == 0) return LARIAT_ERR_INVALID_ARGUMENT;
  opts->max_head_size = bytes;
  return 0;
}

LARIAT_EXTERN int lariat_options_set_max_headers(lariat_options *opts,
                                                 size_t count) {
  if (!opts || count == 0) return LARIAT_ERR_INVALID_ARGUMENT;
  opts->max_headers = count;
  return 0;
}

LARIAT_EXTERN int lariat_options_set_handshake_timeout(lariat_options *opts,
                                                       uint64_t ms) {
  if (!opts || ms == 0) return LARIAT_ERR_INVALID_ARGUMENT;
  opts->handshake_timeout_ms = ms;
  return 0;
}

LARIAT_EXTERN int lariat_options_set_max_frame_size(lariat_options *opts,
                                                    uint64_t bytes) {
  if (!opts || bytes == 0) return LARIAT_ERR_INVALID_ARGUMENT;
  opts->max_frame_size = bytes;
  return 0;
}

LARIAT_EXTERN int lariat_options_set_close_timeout(lariat_options *opts,
                                                   uint64_t ms) {
  if (!opts || ms == 0) return LARIAT_ERR_INVALID_ARGUMENT;
  opts->close_timeout_ms = ms;
  return 0;
}

LARIAT_EXTERN int lariat_options_set_max_connections(lariat_options *opts,
                                                     size_t count) {
  if (!opts || count == 0) return LARIAT_ERR_INVALID_ARGUMENT;
  opts->max_connections = count;
  return 0;
}

LARIAT_EXTERN int lariat_options_set_threads(lariat_options *opts,
                                             unsigned threads) {
  if (!opts || threads > 255) return LARIAT_ERR_INVALID_ARGUMENT;
  opts->threads = threads;
  return 0;
}

LARIAT_EXTERN int lariat_options_set_bridge_timeouts(lariat_options *opts,
                                                     uint64_t connect_ms,
                                                     uint64_t command_ms) {
  if (!opts || connect_ms == 0 || command_ms == 0)
    return LARIAT_ERR_INVALID_ARGUMENT;
  opts->bridge_connect_timeout_ms = connect_ms;
  opts->bridge_command_timeout_ms = command_ms;
  return 0;
}

LARIAT_EXTERN int lariat_options_set_bridge_backoff(lariat_options *opts,
                                                    uint64_t min_ms,
                                                    uint64_t max_ms) {
  if (!opts || min_ms == 0 || max_ms < min_ms)
    return LARIAT_ERR_INVALID_ARGUMENT;
  opts->bridge_backoff_min_ms = min_ms;
  opts->bridge_backoff_max_ms = max_ms;
  return 0;
}

LARIAT_EXTERN int lariat_options_set_bridge_linger(lariat_options *opts,
                                                   uint64_t ms) {
  if (!opts) return LARIAT_ERR_INVALID_ARGUMENT;
  opts->bridge_linger_ms = ms;
  return 0;
}

LARIAT_EXTERN int lariat_options_set_ignore_sigpipe(lariat_options *opts,
                                                    int on) {
  if (!opts) return LARIAT_ERR_INVALID_ARGUMENT;
  opts->ignore_sigpipe = on != 0;
  return 0;
}

}  // extern "C"
