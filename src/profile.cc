#include "profile.h"

#include <functional>

namespace lariat::detail {

bool operator==(const ConnOptions &a, const ConnOptions &b) {
#define LARIAT__SAME(name, type, def, valid) &&a.name == b.name
  return true LARIAT_CONN_OPTIONS(LARIAT__SAME) && a.max_queued == b.max_queued &&
         a.low_water == b.low_water &&
         a.backpressure_policy == b.backpressure_policy &&
         a.ping_interval == b.ping_interval && a.pong_timeout == b.pong_timeout;
#undef LARIAT__SAME
}

namespace {

size_t mix(size_t h, uint64_t v) {
  return (h ^ std::hash<uint64_t>()(v)) * 0x100000001b3ull;
}

size_t hash_of(const Route *route, std::string_view path,
               const ConnOptions &o) {
  size_t h = std::hash<std::string_view>()(path);
  h = mix(h, reinterpret_cast<uintptr_t>(route));
#define LARIAT__MIX(name, type, def, valid) h = mix(h, static_cast<uint64_t>(o.name));
  LARIAT_CONN_OPTIONS(LARIAT__MIX)
#undef LARIAT__MIX
  h = mix(h, o.max_queued);
  h = mix(h, o.low_water);
  h = mix(h, static_cast<uint64_t>(o.backpressure_policy));
  h = mix(h, o.ping_interval);
  return mix(h, o.pong_timeout);
}

}  // namespace

Profile *ProfileTable::acquire(const Route *route, std::string_view path,
                               const ConnOptions &opts) {
  size_t h = hash_of(route, path, opts);
  auto range = profiles_.equal_range(h);
  for (auto it = range.first; it != range.second; ++it) {
    Profile *p = it->second.get();
    if (p->route == route && p->path == path && p->opts == opts) {
      ++p->refs;
      return p;
    }
  }
  std::unique_ptr<Profile> fresh(new Profile(loop_));
  fresh->route = route;
  fresh->path.assign(path.data(), path.size());
  fresh->opts = opts;
  fresh->hash = h;
  fresh->refs = 1;
  Profile *p = fresh.get();
  profiles_.emplace(h, std::move(fresh));
  return p;
}

void ProfileTable::release(Profile *p) noexcept {
  if (--p->refs > 0) return;
  auto range = profiles_.equal_range(p->hash);
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second.get() == p) {
      profiles_.erase(it);
      return;
    }
  }
}

}  // namespace lariat::detail
