// Typed info messages: server::post(id, T{...}) delivers a T to
// websocket_info in per-thread order and destroys every T exactly once,
// whether it was delivered, sent to a connection that ended, or caught by
// the server stopping or being deleted. A message of another type is
// recognised as such, not misread.
#include <uv.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace std::chrono_literals;
using lariat::result;

namespace {

struct tick {
  static std::atomic<long> alive, made;
  int thread, seq;
  tick(int t, int s) : thread(t), seq(s) { ++alive, ++made; }
  tick(const tick &o) : thread(o.thread), seq(o.seq) { ++alive, ++made; }
  tick(tick &&o) noexcept : thread(o.thread), seq(o.seq) { ++alive, ++made; }
  tick &operator=(const tick &) = delete;
  ~tick() { --alive; }
};
std::atomic<long> tick::alive{0}, tick::made{0};

struct report {};  // asks for "delivered=N violations=V"

constexpr int kThreads = 4;

struct post_state {
  int last[kThreads] = {};
  long delivered = 0;
  long violations = 0;
};

struct post_handler : lariat::handler<post_state> {
  post_handler(t::log &l, std::atomic<long> &d) : log(l), delivered(d) {}
  result websocket_handle(lariat::connection &c, const lariat::frame &f,
                          post_state &) override {
    std::string_view text = f.data;
    if (text == "!id") c.send_text(std::to_string(c.id()));
    if (text == "!uvstop") uv_stop(lariat_server_loop(c.server_handle()));
    if (text.substr(0, 6) == "!tell ") {
      // "!tell ID TEXT": what the chat example does for each room member.
      std::string rest(text.substr(6));
      std::size_t space = rest.find(' ');
      lariat::conn_id to = std::stoull(rest.substr(0, space));
      bool ok = lariat::post(c.server_handle(), to, rest.substr(space + 1));
      c.send_text(ok ? "told" : "not told");
    }
    return result::ok;
  }
  result websocket_info(lariat::connection &c, lariat::message &m,
                        post_state &s) override {
    if (tick *t = m.get<tick>()) {
      ++delivered;
      ++s.delivered;
      if (t->seq != s.last[t->thread] + 1) ++s.violations;
      s.last[t->thread] = t->seq;
    } else if (m.is<report>()) {
      c.send_text("delivered=" + std::to_string(s.delivered) +
                  " violations=" + std::to_string(s.violations));
    } else if (const std::string *str = m.get<const std::string>()) {
      c.send_text("string " + *str +
                  " as tick=" + (m.get<tick>() ? "tick" : "null"));
    } else {
      c.send_text(std::string("unexpected ") + m.type().name());
    }
    return result::ok;
  }
  void terminate(lariat::connection *, const lariat::reason &r,
                 post_state *s) override {
    log.add(std::string("terminate ") + r.name() +
            " delivered=" + std::to_string(s ? s->delivered : -1));
  }
  t::log &log;
  std::atomic<long> &delivered;
};

lariat::conn_id open_and_get_id(t::client &c, int port) {
  CHECK_EQ(c.open(port, "/p"), 101);
  c.send("!id");
  return std::stoull(c.recv());
}

TEST(typed_posts_in_order_and_destroyed_once) {
  t::log log;
  std::atomic<long> delivered{0};
  {
    t::running_server rs;
    rs.server().route<post_handler>("/p", log, delivered);
    int port = rs.start();
    t::client c;
    lariat::conn_id id = open_and_get_id(c, port);

    constexpr int kPerThread = 2000;
    std::vector<std::thread> posters;
    std::atomic<int> refused{0};
    for (int th = 0; th < kThreads; ++th)
      posters.emplace_back([&, th] {
        for (int seq = 1; seq <= kPerThread; ++seq) {
          // Alternate rvalues and lvalues: both are taken by value.
          if (seq % 2) {
            refused += !rs.server().post(id, tick{th, seq});
          } else {
            tick lv{th, seq};
            refused += !rs.server().post(id, lv);
          }
        }
      });
    for (auto &p : posters) p.join();
    CHECK_EQ(refused.load(), 0);
    CHECK(t::eventually([&] { return delivered == kThreads * kPerThread; }));
    CHECK(rs.server().post(id, report{}));
    CHECK_EQ(c.recv(), "delivered=8000 violations=0");
  }
  CHECK_EQ(tick::alive.load(), 0);
  CHECK(tick::made.load() >= 8000);
}

TEST(message_of_another_type_is_handled_sanely) {
  t::log log;
  std::atomic<long> delivered{0};
  t::running_server rs;
  rs.server().route<post_handler>("/p", log, delivered);
  int port = rs.start();
  t::client c;
  lariat::conn_id id = open_and_get_id(c, port);
  CHECK(rs.server().post(id, std::string("hello")));
  CHECK_EQ(c.recv(), "string hello as tick=null");
  CHECK(rs.server().post(id, 3.5));
  CHECK_EQ(c.recv(), std::string("unexpected ") + typeid(double).name());
  // The connection is unharmed.
  c.send("!id");
  CHECK_EQ(c.recv(), std::to_string(id));
  CHECK_EQ(delivered.load(), 0);
}

TEST(posts_to_ended_connections_are_destroyed_undelivered) {
  t::log log;
  std::atomic<long> delivered{0};
  t::running_server rs;
  rs.server().route<post_handler>("/p", log, delivered);
  int port = rs.start();
  t::client live, gone;
  lariat::conn_id live_id = open_and_get_id(live, port);
  lariat::conn_id gone_id = open_and_get_id(gone, port);
  CHECK(live_id != gone_id);
  gone.close();
  CHECK(log.wait("terminate"));
  for (int i = 1; i <= 500; ++i) {
    CHECK(rs.server().post(gone_id, tick{0, i}));
    CHECK(rs.server().post(gone_id + 1000000, tick{1, i}));  // never existed
  }
  // Delivered after everything above (same posting thread).
  CHECK(rs.server().post(live_id, report{}));
  CHECK_EQ(live.recv(), "delivered=0 violations=0");
  CHECK(t::eventually([] { return tick::alive == 0; }));
  CHECK_EQ(delivered.load(), 0);
}

TEST(posts_at_server_stop) {
  t::log log;
  std::atomic<long> delivered{0};
  long refused = 0;
  {
    t::running_server rs(
        lariat::server(lariat::options().close_timeout(300ms)));
    rs.server().route<post_handler>("/p", log, delivered);
    int port = rs.start();
    t::client c;
    lariat::conn_id id = open_and_get_id(c, port);
    for (int i = 1; i <= 100; ++i) CHECK(rs.server().post(id, tick{0, i}));
    CHECK(rs.server().stop_async());
    // Posted after the stop: freed, whether post() saw the stop or not.
    for (int i = 101; i <= 200; ++i)
      refused += !rs.server().post(id, tick{0, i});
    CHECK_EQ(c.expect_close(1001), 1001);
    rs.join();
    CHECK(!rs.server().stop_async());  // already stopped
    CHECK(!rs.server().post(id, tick{0, 201}));
    CHECK_EQ(log.find("terminate"), "terminate shutdown delivered=100");
  }
  std::printf("  (%ld of 100 late posts refused at once)\n", refused);
  CHECK_EQ(delivered.load(), 100);
  CHECK_EQ(tick::alive.load(), 0);
}

TEST(posts_queued_when_the_server_is_deleted) {
  t::log log;
  std::atomic<long> delivered{0};
  lariat::server s(lariat::options().close_timeout(100ms));
  s.route<post_handler>("/p", log, delivered);
  s.listen("127.0.0.1", 0);
  std::thread loop([&] { s.run(); });
  t::client c;
  lariat::conn_id id = open_and_get_id(c, s.port());
  c.send("!uvstop");  // run() returns with the connection open
  loop.join();
  for (int i = 1; i <= 50; ++i) CHECK(s.post(id, tick{0, i}));
  CHECK_EQ(tick::alive.load(), 50);  // queued, not delivered yet
  s.close();
  CHECK_EQ(tick::alive.load(), 0);
  CHECK(delivered.load() <= 50);
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_STATE, (void)s.post(id, tick{0, 51}));
  CHECK_EQ(tick::alive.load(), 0);
  CHECK_EQ(log.count("terminate"), 1u);
}

TEST(handler_posts_to_another_connection) {
  t::log log;
  std::atomic<long> delivered{0};
  t::running_server rs;
  rs.server().route<post_handler>("/p", log, delivered);
  int port = rs.start();
  t::client a, b;
  open_and_get_id(a, port);
  lariat::conn_id b_id = open_and_get_id(b, port);
  a.send("!tell " + std::to_string(b_id) + " psst");
  CHECK_EQ(a.recv(), "told");
  CHECK_EQ(b.recv(), "string psst as tick=null");
}

}  // namespace

int main(int argc, char **argv) { return t::run_all(argc, argv); }
