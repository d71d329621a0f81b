#include "timer_heap.h"

#include <algorithm>

namespace lariat::detail {

namespace {
// std::*_heap build a max-heap; invert the order for a min-heap.
bool later(const TimerHeap::Entry &a, const TimerHeap::Entry &b) {
  return a.deadline > b.deadline;
}
}  // namespace

void TimerHeap::push(uint64_t deadline, uint64_t id) {
  entries_.push_back({deadline, id});
  std::push_heap(entries_.begin(), entries_.end(), later);
}

void TimerHeap::pop() {
  std::pop_heap(entries_.begin(), entries_.end(), later);
  entries_.pop_back();
}

}  // namespace lariat::detail
