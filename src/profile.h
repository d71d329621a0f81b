// What connections of one loop have in common and rarely change: the
// route, the request path and the options init set. Connections with the
// same three share one reference-counted Profile, so a connection keeps a
// single pointer for them; changing an option at run time moves it to
// another profile (copy on write).
#ifndef LARIAT_PROFILE_H
#define LARIAT_PROFILE_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "conn_options.h"

struct lariat_server;

namespace lariat::detail {

struct Route;

struct Profile {
  explicit Profile(lariat_server *loop) : server(loop) {}
  // The loop whose table holds it: a connection finds its loop here
  // rather than in a pointer of its own (8 B of every connection).
  lariat_server *server;
  const Route *route = nullptr;  // nullptr until the request is routed
  std::string path;
  ConnOptions opts;
  size_t hash = 0;
  uint32_t refs = 0;
};

bool operator==(const ConnOptions &a, const ConnOptions &b);

// One per loop; loop thread only.
class ProfileTable {
 public:
  explicit ProfileTable(lariat_server *loop) : loop_(loop) {}
  // The shared profile for these values, with a reference taken. Throws
  // std::bad_alloc.
  Profile *acquire(const Route *route, std::string_view path,
                   const ConnOptions &opts);
  // Drops a reference taken by acquire(); never throws.
  void release(Profile *p) noexcept;
  size_t size() const { return profiles_.size(); }

 private:
  lariat_server *loop_;
  std::unordered_multimap<size_t, std::unique_ptr<Profile>> profiles_;
};

}  // namespace lariat::detail

#endif
