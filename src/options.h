// Server-wide limits and switches (lariat_options_*).
#ifndef LARIAT_OPTIONS_H
#define LARIAT_OPTIONS_H

#include <cstddef>
#include <cstdint>

struct lariat_options {
  size_t max_head_size = 8192;
  size_t max_headers = 100;
  uint64_t handshake_timeout_ms = 10000;
  uint64_t max_frame_size = 1u << 20;
  uint64_t close_timeout_ms = 5000;
  size_t max_connections = 100000;
  bool ignore_sigpipe = true;
  unsigned threads = 1;  // event loops; 0 means one per core
  // The Redis bridge (lariat_server_join_redis).
  uint64_t bridge_connect_timeout_ms = 2000;
  uint64_t bridge_command_timeout_ms = 5000;
  uint64_t bridge_backoff_min_ms = 100;
  uint64_t bridge_backoff_max_ms = 2000;
  uint64_t bridge_linger_ms = 1000;
};

#endif
