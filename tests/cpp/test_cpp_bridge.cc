// The Redis bridge through the C++ wrapper: two servers (two origins, as
// two processes would be) on one redis-server of the test's own, sharing a
// room: join_redis(), on_bridge() events as bridge_event, bridge() stats,
// a frame marked local staying home, and a bad URL as lariat::error.
#include <atomic>
#include <csignal>
#include <mutex>
#include <string>
#include <vector>

#include "fleet.h"
#include "support.hpp"

using lariat::result;

namespace {

struct room : lariat::handler<> {
  explicit room(lariat::server *&s) : srv(s) {}
  result websocket_init(lariat::connection &c, std::monostate &) override {
    CHECK(c.subscribe("room"));
    return result::ok;
  }
  result websocket_handle(lariat::connection &, const lariat::frame &f,
                          std::monostate &) override {
    if (f.is_text() && f.data.substr(0, 6) == "local:") {
      lariat::frame home = lariat::frame::text(f.data);
      home.local = true;
      srv->publish("room", home);
    } else if (f.is_text()) {
      srv->publish_text("room", f.data);
    }
    return result::ok;
  }
  lariat::server *&srv;
};

struct events {
  std::mutex m;
  std::vector<std::string> seen;
  void add(const lariat::bridge_event &ev) {
    std::lock_guard<std::mutex> lock(m);
    using kind = lariat::bridge_event::kind_type;
    seen.push_back(ev.kind == kind::up ? "up" : ev.kind == kind::down ? "down" : "gap");
  }
  int count(const std::string &what) {
    std::lock_guard<std::mutex> lock(m);
    int n = 0;
    for (auto &s : seen) n += s == what;
    return n;
  }
};

struct redis_guard {
  fleet_redis r{};
  redis_guard() { CHECK_EQ(fleet_redis_start(&r, fleet_free_port()), 0); }
  ~redis_guard() { fleet_redis_stop(&r, SIGTERM); }
};

}  // namespace

TEST(two_servers_share_a_room) {
  redis_guard redis;
  std::string url = "redis://127.0.0.1:" + std::to_string(redis.r.port) + "/0";
  lariat::options opts;
  opts.bridge_timeouts(std::chrono::milliseconds(1000), std::chrono::milliseconds(2000))
      .bridge_backoff(std::chrono::milliseconds(50), std::chrono::milliseconds(400))
      .bridge_linger(std::chrono::milliseconds(0));
  t::running_server a(lariat::server{opts}), b(lariat::server{opts});
  lariat::server *sa = &a.server(), *sb = &b.server();
  events ea, eb;
  a.server().route<room>("/", sa);
  b.server().route<room>("/", sb);
  a.server().join_redis(url, "cpp:");
  b.server().join_redis(url, "cpp:");
  a.server().on_bridge([&ea](const lariat::bridge_event &ev) { ea.add(ev); });
  b.server().on_bridge([&eb](const lariat::bridge_event &ev) { eb.add(ev); });
  int pa = a.start(), pb = b.start();
  CHECK(t::eventually([&] { return ea.count("up") == 2 && eb.count("up") == 2; }));
  CHECK(t::eventually([&] { return a.server().bridge().connected == 1; }));
  t::client ca, cb;
  CHECK_EQ(ca.open(pa, "/"), 101);
  CHECK_EQ(cb.open(pb, "/"), 101);
  CHECK(t::eventually([&] { return b.server().bridge().channels == 1 &&
                                   a.server().bridge().channels == 1; }));
  ca.send("hello from a");
  CHECK_EQ(ca.recv(), "hello from a");  // local, directly
  CHECK_EQ(cb.recv(), "hello from a");  // through Redis
  ca.send("local:only a");
  CHECK_EQ(ca.recv(), "local:only a");
  cb.send("hello from b");
  CHECK_EQ(cb.recv(), "hello from b");  // not the local one of a before it
  CHECK_EQ(ca.recv(), "hello from b");
  lariat::bridge_stats s = a.server().bridge();
  CHECK_EQ(s.received, 1u);
  CHECK_EQ(s.own_dropped, 1u);
  CHECK(s.origin != b.server().bridge().origin);
  CHECK_EQ(ea.count("down") + eb.count("gap"), 0);
}

TEST(bad_url_and_unjoined_server) {
  lariat::server s;
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_ARGUMENT, s.join_redis("http://x"));
  CHECK_LARIAT_ERROR(LARIAT_ERR_NOT_FOUND, (void)s.bridge());
  CHECK_LARIAT_ERROR(LARIAT_ERR_NOT_FOUND, s.on_bridge([](const lariat::bridge_event &) {}));
  s.join_redis("redis://127.0.0.1:1/");
  CHECK_LARIAT_ERROR(LARIAT_ERR_EXISTS, s.join_redis("redis://127.0.0.1:1/"));
}

int main(int argc, char **argv) { return t::run_all(argc, argv); }
