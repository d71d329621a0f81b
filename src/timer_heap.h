// One min-heap of deadlines per loop instead of a uv_timer_t per
// connection (152 B each). Each connection has at most one entry and
// knows where it is (lariat_conn::timer_slot), so a deadline that goes
// away takes its entry with it: a crowd that finished its handshakes
// leaves nothing behind. An entry may come due before the connection's
// real deadline (reading moves an idle deadline later without touching
// the heap); the loop then moves it to the real one.
#ifndef LARIAT_TIMER_HEAP_H
#define LARIAT_TIMER_HEAP_H

#include <cstddef>
#include <cstdint>
#include <vector>

struct lariat_conn;

namespace lariat::detail {

class TimerHeap {
 public:
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  struct Entry {
    uint64_t deadline;
    lariat_conn *conn;
  };
  // Gives |conn| an entry at |deadline|, or moves its entry there. Throws
  // std::bad_alloc only when adding.
  void set(lariat_conn *conn, uint64_t deadline);
  // Drops |conn|'s entry, if it has one.
  void remove(lariat_conn *conn) noexcept;
  // |conn|'s entry's deadline, or UINT64_MAX.
  uint64_t deadline_of(const lariat_conn *conn) const;
  bool empty() const { return entries_.empty(); }
  const Entry &top() const { return entries_.front(); }
  size_t size() const { return entries_.size(); }
  size_t capacity() const { return entries_.capacity(); }

 private:
  void place(size_t i, const Entry &e);
  void sift_up(size_t i);
  void sift_down(size_t i);
  std::vector<Entry> entries_;
};

}  // namespace lariat::detail

#endif
