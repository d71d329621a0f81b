#include "timer_heap.h"

#include "connection.h"

namespace lariat::detail {

void TimerHeap::place(size_t i, const Entry &e) {
  entries_[i] = e;
  e.conn->timer_slot = static_cast<uint32_t>(i);
}

void TimerHeap::sift_up(size_t i) {
  Entry e = entries_[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (entries_[parent].deadline <= e.deadline) break;
    place(i, entries_[parent]);
    i = parent;
  }
  place(i, e);
}

void TimerHeap::sift_down(size_t i) {
  Entry e = entries_[i];
  size_t n = entries_.size();
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && entries_[child + 1].deadline < entries_[child].deadline)
      ++child;
    if (e.deadline <= entries_[child].deadline) break;
    place(i, entries_[child]);
    i = child;
  }
  place(i, e);
}

void TimerHeap::set(lariat_conn *conn, uint64_t deadline) {
  uint32_t slot = conn->timer_slot;
  if (slot == kNoSlot) {
    entries_.push_back({deadline, conn});
    sift_up(entries_.size() - 1);
    return;
  }
  uint64_t old = entries_[slot].deadline;
  entries_[slot].deadline = deadline;
  if (deadline < old)
    sift_up(slot);
  else
    sift_down(slot);
}

uint64_t TimerHeap::deadline_of(const lariat_conn *conn) const {
  return conn->timer_slot == kNoSlot ? UINT64_MAX
                                     : entries_[conn->timer_slot].deadline;
}

void TimerHeap::remove(lariat_conn *conn) noexcept {
  uint32_t slot = conn->timer_slot;
  if (slot == kNoSlot) return;
  conn->timer_slot = kNoSlot;
  Entry last = entries_.back();
  entries_.pop_back();
  if (slot < entries_.size()) {
    entries_[slot] = last;
    last.conn->timer_slot = slot;
    sift_up(slot);
    sift_down(last.conn->timer_slot);
  }
  // Far below its peak: give the memory back (or keep it when a smaller
  // copy cannot be had).
  if (entries_.capacity() > 64 && entries_.size() * 4 < entries_.capacity()) {
    try {
      std::vector<Entry>(entries_).swap(entries_);
    } catch (...) {
    }
  }
}

}  // namespace lariat::detail
