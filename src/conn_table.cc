#include "conn_table.h"

#include <new>

#include "connection.h"

namespace lariat::detail {

// Ids are a counter above the loop's byte: Fibonacci hashing spreads
// consecutive counters over the whole table.
size_t ConnTable::home(lariat_conn_id id) const {
  return static_cast<size_t>(((id >> 8) * 0x9E3779B97F4A7C15ull) >> 32) &
         (capacity_ - 1);
}

lariat_conn *ConnTable::find(lariat_conn_id id) const {
  if (capacity_ == 0) return nullptr;
  for (size_t i = home(id);; i = (i + 1) & (capacity_ - 1)) {
    lariat_conn *c = slots_[i];
    if (!c) return nullptr;
    if (c != tombstone() && c->id == id) return c;
  }
}

bool ConnTable::rehash(size_t capacity) {
  lariat_conn **fresh = new (std::nothrow) lariat_conn *[capacity]();
  if (!fresh) return false;
  std::unique_ptr<lariat_conn *[]> old(slots_.release());
  size_t old_capacity = capacity_;
  slots_.reset(fresh);
  capacity_ = capacity;
  tombstones_ = 0;
  for (size_t i = 0; i < old_capacity; ++i) {
    lariat_conn *c = old[i];
    if (!live(c)) continue;
    size_t j = home(c->id);
    while (slots_[j]) j = (j + 1) & (capacity_ - 1);
    slots_[j] = c;
  }
  return true;
}

void ConnTable::insert(lariat_conn *conn) {
  // Live entries and tombstones both lengthen probes: at 3/4 of the table,
  // rebuild it - larger when the live ones need it, else the same size
  // without the tombstones. With no memory for that, a table with a free
  // slot left still takes the connection.
  if ((size_ + tombstones_ + 1) * 4 > capacity_ * 3) {
    size_t want = capacity_ ? capacity_ : 16;
    while ((size_ + 1) * 2 > want) want *= 2;
    if (!rehash(want) && size_ + tombstones_ + 1 >= capacity_)
      throw std::bad_alloc();
  }
  size_t i = home(conn->id);
  while (live(slots_[i])) i = (i + 1) & (capacity_ - 1);
  if (slots_[i] == tombstone()) --tombstones_;
  slots_[i] = conn;
  ++size_;
}

bool ConnTable::erase(lariat_conn_id id) {
  if (capacity_ == 0) return false;
  for (size_t i = home(id);; i = (i + 1) & (capacity_ - 1)) {
    lariat_conn *c = slots_[i];
    if (!c) return false;
    if (c == tombstone() || c->id != id) continue;
    // A tombstone is needed only where a probe may pass through: before
    // an empty slot it can become empty itself.
    if (!slots_[(i + 1) & (capacity_ - 1)]) {
      slots_[i] = nullptr;
    } else {
      slots_[i] = tombstone();
      ++tombstones_;
    }
    --size_;
    // Mostly empty after a crowd left: give the memory back (when the
    // smaller table cannot be had, the large one simply stays).
    if (!iterating_ && capacity_ > 64 && size_ * 8 < capacity_) rehash(capacity_ / 4);
    return true;
  }
}

}  // namespace lariat::detail
