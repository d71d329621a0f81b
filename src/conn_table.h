// A loop's connections by id: open addressing with linear probing over
// bare pointers (the key is the connection's own id), so a connection
// costs one 8-byte slot at a load of at most 3/4 instead of a hash node.
// Erased slots become tombstones, which keeps iteration valid while a
// visited connection erases itself (lariat_server_stop).
#ifndef LARIAT_CONN_TABLE_H
#define LARIAT_CONN_TABLE_H

#include <lariat/lariat.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace lariat::detail {

class ConnTable {
 public:
  lariat_conn *find(lariat_conn_id id) const;
  // Throws std::bad_alloc when the table must grow and cannot.
  void insert(lariat_conn *conn);
  // False when |id| is not here. Never throws.
  bool erase(lariat_conn_id id);
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Calls |f| on every connection; |f| may erase the one it is given.
  template <typename F>
  void for_each(F f) {
    ++iterating_;  // no shrinking under the loop
    for (size_t i = 0; i < capacity_; ++i)
      if (live(slots_[i])) f(slots_[i]);
    --iterating_;
  }

 private:
  static lariat_conn *tombstone() {
    return reinterpret_cast<lariat_conn *>(uintptr_t{1});
  }
  static bool live(const lariat_conn *c) { return c && c != tombstone(); }
  size_t home(lariat_conn_id id) const;
  // Rebuilds at |capacity| without tombstones; false when out of memory
  // (the table is unchanged then).
  bool rehash(size_t capacity);

  std::unique_ptr<lariat_conn *[]> slots_;
  size_t capacity_ = 0;  // a power of two, or 0
  size_t size_ = 0;
  size_t tombstones_ = 0;
  int iterating_ = 0;
};

}  // namespace lariat::detail

#endif
