// redis://[[user]:password@]host[:port][/db]: where the bridge's Redis is.
#ifndef LARIAT_REDIS_URL_H
#define LARIAT_REDIS_URL_H

#include <string>
#include <string_view>

namespace lariat::detail {

struct RedisUrl {
  std::string host;      // a name or a numeric address, brackets removed
  int port = 6379;
  std::string user;      // Redis 6 ACL user; empty: AUTH with the password only
  std::string password;  // empty: no AUTH
  int db = 0;            // SELECTed when not 0
};

// False for anything that is not a redis:// URL of that shape. The user
// and password are percent-decoded.
bool parse_redis_url(std::string_view text, RedisUrl *out);

}  // namespace lariat::detail

#endif
