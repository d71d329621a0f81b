// Bytes a socket's kernel buffer did not take at once. Few sockets of a
// loop have any at a time, so the loop keeps them in one table by
// transport rather than a pointer in every connection (8 B each, which
// kept an idle connection's allocation in malloc's next size class).
#ifndef LARIAT_WRITE_QUEUE_H
#define LARIAT_WRITE_QUEUE_H

#include <cstddef>
#include <string>
#include <unordered_map>

namespace lariat::detail {

struct WriteQueue {
  std::string pending;  // [off, size) still to send
  size_t off = 0;
  bool fin_wanted = false;  // shutdown() waits for these bytes
};

// Keyed by the transport that owns the queue.
using WriteQueues = std::unordered_map<const void *, WriteQueue>;

}  // namespace lariat::detail

#endif
