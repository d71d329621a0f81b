// One min-heap of deadlines per server instead of a uv_timer_t per
// connection (152 B each). Entries are hints: when one comes due the owner
// re-checks the connection's real deadline and pushes it again if it moved
// later, so resetting an idle timeout on every read costs nothing here.
#ifndef LARIAT_TIMER_HEAP_H
#define LARIAT_TIMER_HEAP_H

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lariat::detail {

class TimerHeap {
 public:
  struct Entry {
    uint64_t deadline;
    uint64_t id;
  };
  void push(uint64_t deadline, uint64_t id);
  bool empty() const { return entries_.empty(); }
  const Entry &top() const { return entries_.front(); }
  void pop();
  void clear() { entries_.clear(); }
  size_t size() const { return entries_.size(); }

 private:
  std::vector<Entry> entries_;
};

}  // namespace lariat::detail

#endif
