// Topics and defer through the C++ wrapper, over loopback: a chat room
// where a line reaches the others only, binary stays binary, unsubscribe
// and disconnect end subscriptions; server::publish from other threads in
// per-thread order; slow subscribers' drops counted; server::defer runs a
// callable on the loop and destroys it exactly once, run or refused.
#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using lariat::result;

namespace {

// The room is the path. "!leave", "!count" and "!dropped" are commands;
// any other message goes to the others and the sender hears how many.
struct room : lariat::handler<> {
  explicit room(lariat::server *&s) : srv(s) {}
  void init(lariat::request &req, upgrade_type &up) override {
    if (req.query() == "capped")
      up.max_queued(1000, LARIAT_BACKPRESSURE_REFUSE);
  }
  result websocket_init(lariat::connection &c, std::monostate &) override {
    CHECK(c.subscribe(c.path()));
    CHECK(c.subscribe(c.path()));  // again: no error, still one
    return result::ok;
  }
  result websocket_handle(lariat::connection &c, const lariat::frame &f,
                          std::monostate &) override {
    if (f.is_text() && f.data == "!leave") {
      c.send_text(c.unsubscribe(c.path()) ? "left" : "not subscribed");
    } else if (f.is_text() && f.data == "!count") {
      c.send_text(std::to_string(srv->subscribers(c.path())));
    } else if (f.is_text() && f.data == "!dropped") {
      c.send_text(std::to_string(c.dropped()));
    } else if (f.is_data()) {
      c.send_text("sent to " + std::to_string(c.publish(c.path(), f)));
    }
    return result::ok;
  }
  lariat::server *&srv;
};

struct binary_message {
  int opcode = 0;
  std::string data;
};

binary_message recv_any(t::client &c) {
  wsc_frame f;
  binary_message m;
  if (wsc_recv_message(c.get(), &f, 3000) != 1) return m;
  m.opcode = f.opcode;
  m.data.assign(reinterpret_cast<const char *>(f.payload), f.len);
  wsc_frame_free(&f);
  return m;
}

// server::subscribers(topic), asked on the loop thread through defer().
std::size_t subscribers_of(lariat::server &s, const std::string &topic) {
  auto answer = std::make_shared<std::promise<std::size_t>>();
  std::future<std::size_t> got = answer->get_future();
  CHECK(s.defer([&s, topic, answer] { answer->set_value(s.subscribers(topic)); }));
  CHECK(got.wait_for(std::chrono::seconds(3)) == std::future_status::ready);
  return got.get();
}

TEST(chat_room_reaches_the_others_only) {
  t::running_server rs;
  lariat::server *srv = &rs.server();
  rs.server().route<room>("*", srv);
  int port = rs.start();
  t::client a, b, c, d;
  CHECK_EQ(a.open(port, "/room/1"), 101);
  CHECK_EQ(b.open(port, "/room/1"), 101);
  CHECK_EQ(c.open(port, "/room/1"), 101);
  CHECK_EQ(d.open(port, "/room/2"), 101);
  c.send("!count");
  CHECK_EQ(c.recv(), "3");

  a.send("hello");
  CHECK_EQ(a.recv(), "sent to 2");
  CHECK_EQ(b.recv(), "hello");
  CHECK_EQ(c.recv(), "hello");
  const char bytes[] = {'\0', '\xff', 'x'};
  CHECK_EQ(wsc_send_frame(b.get(), 1, 0, WSC_OP_BINARY, bytes, sizeof bytes), 0);
  CHECK_EQ(b.recv(), "sent to 2");
  for (t::client *other : {&a, &c}) {
    binary_message m = recv_any(*other);
    CHECK_EQ(m.opcode, WSC_OP_BINARY);
    CHECK_EQ(m.data, std::string(bytes, sizeof bytes));
  }
  // Nothing of room 1, nor the senders' own lines: the next thing each
  // hears is its own answer.
  d.send("!count");
  CHECK_EQ(d.recv(), "1");
  a.send("!count");
  CHECK_EQ(a.recv(), "3");

  c.send("!leave");
  CHECK_EQ(c.recv(), "left");
  c.send("!leave");
  CHECK_EQ(c.recv(), "not subscribed");
  a.send("after");
  CHECK_EQ(a.recv(), "sent to 1");
  CHECK_EQ(b.recv(), "after");
  c.send("!count");
  CHECK_EQ(c.recv(), "2");

  // A disconnect ends the subscription before terminate.
  CHECK_EQ(b.close_handshake(1000), 0);
  CHECK(t::eventually([&] { return subscribers_of(rs.server(), "/room/1") == 1; }));
  CHECK_EQ(subscribers_of(rs.server(), "/room/2"), 1u);
  CHECK_EQ(subscribers_of(rs.server(), "/nobody"), 0u);
}

TEST(slow_subscriber_drops_are_counted_and_the_others_get_all) {
  t::running_server rs;
  lariat::server *srv = &rs.server();
  rs.server().route<room>("*", srv);
  int port = rs.start();
  t::client capped, other, sender;
  CHECK_EQ(capped.open(port, "/r?capped"), 101);
  CHECK_EQ(other.open(port, "/r"), 101);
  CHECK_EQ(sender.open(port, "/r"), 101);
  sender.send(std::string(2000, 'x'));  // over the capped one's cap
  CHECK_EQ(sender.recv(), "sent to 1");
  CHECK_EQ(other.recv(), std::string(2000, 'x'));
  sender.send("small");
  CHECK_EQ(sender.recv(), "sent to 2");
  CHECK_EQ(capped.recv(), "small");
  CHECK_EQ(other.recv(), "small");
  capped.send("!dropped");
  CHECK_EQ(capped.recv(), "1");
  other.send("!dropped");
  CHECK_EQ(other.recv(), "0");
}

// Two event loops: a room's members sit on both, and a line reaches every
// other member wherever it lives.
TEST(room_across_two_loops) {
  t::running_server rs(lariat::server(lariat::options().threads(2)));
  lariat::server *srv = &rs.server();
  rs.server().route<room>("*", srv);
  int port = rs.start();
  t::client members[6];
  for (t::client &m : members) CHECK_EQ(m.open(port, "/room/1"), 101);
  members[0].send("hello");
  (void)members[0].recv();  // "sent to N": the members of its own loop
  for (int i = 1; i < 6; ++i) CHECK_EQ(members[i].recv(), "hello");
}

struct listener : lariat::handler<> {
  result websocket_init(lariat::connection &c, std::monostate &) override {
    c.subscribe("ticks");
    c.send_text("ready");
    return result::ok;
  }
};

TEST(server_publish_from_threads_in_order) {
  t::running_server rs;
  rs.server().route<listener>("/");
  int port = rs.start();
  constexpr int kThreads = 3, kPerThread = 300;
  std::vector<std::unique_ptr<t::client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<t::client>());
    CHECK_EQ(clients.back()->open(port, "/"), 101);
    CHECK_EQ(clients.back()->recv(), "ready");
  }
  std::atomic<int> refused{0};
  std::vector<std::thread> publishers;
  for (int th = 0; th < kThreads; ++th)
    publishers.emplace_back([&, th] {
      for (int seq = 0; seq < kPerThread; ++seq)
        refused += !rs.server().publish_text(
            "ticks", std::to_string(th) + ":" + std::to_string(seq));
      std::string end = "end" + std::to_string(th);
      refused += !rs.server().publish_binary("ticks", end.data(), end.size());
    });
  for (auto &p : publishers) p.join();
  CHECK_EQ(refused.load(), 0);
  for (auto &c : clients) {
    int next[kThreads] = {};
    int ends = 0;
    for (int i = 0; i < kThreads * (kPerThread + 1); ++i) {
      binary_message m = recv_any(*c);
      if (m.opcode == WSC_OP_BINARY) {
        int th = m.data[3] - '0';
        CHECK_EQ(m.data, "end" + std::to_string(th));
        CHECK_EQ(next[th], kPerThread);  // after all of that thread's texts
        ++ends;
        continue;
      }
      CHECK_EQ(m.opcode, WSC_OP_TEXT);
      int th = m.data[0] - '0';
      CHECK_EQ(m.data, std::to_string(th) + ":" + std::to_string(next[th]));
      ++next[th];
    }
    CHECK_EQ(ends, kThreads);
    CHECK_EQ(c->close_handshake(1000), 0);  // so the stop need not wait
  }
  rs.stop();
  // A stopped server refuses, as post() does.
  CHECK(!rs.server().publish_text("ticks", "late"));
  lariat::frame ping = lariat::frame::ping();
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_ARGUMENT,
                     (void)rs.server().publish("ticks", ping));
}

// Counts its live copies, so "destroyed exactly once" is checkable.
struct tracked {
  static std::atomic<int> alive;
  tracked() { ++alive; }
  tracked(const tracked &) { ++alive; }
  tracked(tracked &&) noexcept { ++alive; }
  tracked &operator=(const tracked &) = delete;
  ~tracked() { --alive; }
};
std::atomic<int> tracked::alive{0};

TEST(defer_runs_on_the_loop_and_destroys_the_callable_once) {
  t::running_server rs;
  rs.server().route<listener>("/");
  int port = rs.start();
  t::client c;
  CHECK_EQ(c.open(port, "/"), 101);
  CHECK_EQ(c.recv(), "ready");

  // What the deferred callable saw; checked here, since an exception
  // leaving it would be dropped.
  struct seen {
    int owned = 0;
    std::size_t subscribers = 0;
    std::thread::id thread;
  };
  std::promise<seen> ran;
  std::future<seen> ran_future = ran.get_future();
  bool accepted = false;
  {
    // Move-only state (a unique_ptr) and a counted one, from a thread
    // that is not the loop's.
    auto owned = std::make_unique<int>(7);
    std::thread other([&] {
      accepted = rs.server().defer(
          [&, owned = std::move(owned), token = tracked()]() {
            (void)token;
            seen s;
            s.owned = *owned;
            // A loop-thread call works here.
            s.subscribers = rs.server().subscribers("ticks");
            s.thread = std::this_thread::get_id();
            rs.server().publish_text("ticks", "from defer");
            ran.set_value(s);
          });
    });
    other.join();
  }
  CHECK(accepted);
  CHECK(ran_future.wait_for(std::chrono::seconds(3)) ==
        std::future_status::ready);
  seen s = ran_future.get();
  CHECK_EQ(s.owned, 7);
  CHECK_EQ(s.subscribers, 1u);
  CHECK(s.thread != std::this_thread::get_id());
  CHECK_EQ(c.recv(), "from defer");
  CHECK(t::eventually([] { return tracked::alive == 0; }));

  // An exception leaving the callable is dropped; the loop carries on.
  CHECK(rs.server().defer([] { throw std::runtime_error("deferred"); }));
  std::promise<void> after;
  CHECK(rs.server().defer([&] { after.set_value(); }));
  CHECK(after.get_future().wait_for(std::chrono::seconds(3)) ==
        std::future_status::ready);

  // Refused once stopped: never run, and destroyed here, once.
  CHECK_EQ(c.close_handshake(1000), 0);
  rs.stop();
  bool late_ran = false;
  CHECK(!rs.server().defer([&late_ran, token = tracked()] {
    (void)token;
    late_ran = true;
  }));
  CHECK_EQ(tracked::alive.load(), 0);
  CHECK(!late_ran);
}

}  // namespace

int main(int argc, char **argv) { return t::run_all(argc, argv); }
