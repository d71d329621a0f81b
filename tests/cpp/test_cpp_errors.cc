// Errors in the C++ wrapper: exceptions thrown by handlers become Cowboy
// crashes (close 1011 / HTTP 500, terminate crash with the exception's
// type name and what()), failing C calls throw lariat::error, and the
// owning handles are move-only and tear down in the right order.
#include <uv.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "support.hpp"

using namespace std::chrono_literals;
using lariat::result;

// cppzmq's tests/message.cpp checks: handles are move-only and their moves
// and swaps cannot throw.
static_assert(!std::is_copy_constructible_v<lariat::server>);
static_assert(!std::is_copy_assignable_v<lariat::server>);
static_assert(std::is_nothrow_move_constructible_v<lariat::server>);
static_assert(std::is_nothrow_move_assignable_v<lariat::server>);
static_assert(std::is_nothrow_swappable_v<lariat::server>);
static_assert(!std::is_copy_constructible_v<lariat::options>);
static_assert(!std::is_copy_assignable_v<lariat::options>);
static_assert(std::is_nothrow_move_constructible_v<lariat::options>);
static_assert(std::is_nothrow_move_assignable_v<lariat::options>);
static_assert(std::is_nothrow_swappable_v<lariat::options>);
// Views and borrowed objects cannot be made out of thin air.
static_assert(!std::is_default_constructible_v<lariat::connection>);
static_assert(!std::is_default_constructible_v<lariat::request>);
static_assert(!std::is_constructible_v<lariat::connection, lariat_conn *>);
static_assert(!std::is_copy_constructible_v<lariat::upgrade<int>>);
static_assert(std::is_base_of_v<std::runtime_error, lariat::error>);

namespace test_ns {
struct custom_error : std::logic_error {
  using std::logic_error::logic_error;
};
}  // namespace test_ns

namespace {

struct tracked {
  static std::atomic<int> ctors, dtors;
  tracked() { ++ctors; }
  tracked(const tracked &) = delete;
  tracked &operator=(const tracked &) = delete;
  ~tracked() { ++dtors; }
};
std::atomic<int> tracked::ctors{0}, tracked::dtors{0};

struct boom {};  // an info message whose delivery throws

std::string describe(const lariat::connection *c, const lariat::reason &r,
                     const void *state) {
  return "terminate " + std::string(r.name()) +
         " class=" + std::string(r.crash_class()) +
         " reason=" + std::string(r.crash_reason()) +
         " conn=" + (c ? "1" : "0") + " state=" + (state ? "1" : "0");
}

struct crash_handler : lariat::handler<tracked> {
  explicit crash_handler(t::log &l) : log(l) {}
  void init(lariat::request &req, upgrade_type &up) override {
    if (req.query() == "throw") throw std::invalid_argument("bad init");
    if (req.query() == "emplace_then_throw") {
      up.emplace_state();
      throw std::out_of_range("after emplace");
    }
    if (req.query() == "bad_status") up.reply(42);  // lariat::error
  }
  result websocket_init(lariat::connection &c, tracked &) override {
    if (c.version() == 8) throw std::domain_error("in websocket_init");
    return result::ok;
  }
  result websocket_handle(lariat::connection &c, const lariat::frame &f,
                          tracked &) override {
    if (f.data == "!throw") throw std::runtime_error("boom");
    if (f.data == "!custom") throw test_ns::custom_error("custom");
    if (f.data == "!int") throw 42;
    if (f.data == "!lariat") c.close(1005);  // not allowed on the wire
    if (f.data == "!caught") {
      try {
        c.close(1005);
      } catch (const lariat::error &e) {
        c.send_text("num=" + std::to_string(e.num()) + " " + e.name() + " " +
                    e.what());
      }
      try {
        c.ping(std::string(126, 'p'));
      } catch (const lariat::error &e) {
        c.send_text(e.name());
      }
      return result::ok;
    }
    if (f.data == "!id") c.send_text(std::to_string(c.id()));
    return result::ok;
  }
  result websocket_info(lariat::connection &, lariat::message &m,
                        tracked &) override {
    if (m.is<boom>()) throw std::length_error("in websocket_info");
    return result::ok;
  }
  void terminate(lariat::connection *c, const lariat::reason &r,
                 tracked *s) override {
    log.add(describe(c, r, s));
  }
  t::log &log;
};

TEST(exceptions_in_callbacks_become_crash_reasons) {
  tracked::ctors = 0;
  tracked::dtors = 0;
  t::log log;
  int expected_states = 0;
  {
    t::running_server rs;
    rs.server().route<crash_handler>("/c", log);
    int port = rs.start();
    struct crash_case {
      const char *command, *terminate;
    };
    const crash_case cases[] = {
        {"!throw",
         "terminate crash class=std::runtime_error reason=boom conn=1 "
         "state=1"},
        {"!custom",
         "terminate crash class=test_ns::custom_error reason=custom conn=1 "
         "state=1"},
        {"!int",
         "terminate crash class=int reason=unknown exception conn=1 state=1"},
        {"!lariat",
         "terminate crash class=lariat::error reason=close code not allowed "
         "on the wire conn=1 state=1"},
    };
    for (const auto &cc : cases) {
      log.clear();
      t::client c;
      CHECK_EQ(c.open(port, "/c"), 101);
      ++expected_states;
      c.send(cc.command);
      CHECK_EQ(c.expect_close(1011), 1011);
      CHECK(log.wait("terminate"));
      CHECK_EQ(log.find("terminate"), std::string(cc.terminate));
    }

    {  // websocket_init
      log.clear();
      t::client c;
      CHECK_EQ(c.open(port, "/c", "Sec-WebSocket-Version: 8\r\n"), 101);
      ++expected_states;
      CHECK_EQ(c.expect_close(1011), 1011);
      CHECK(log.wait("terminate"));
      CHECK_EQ(log.find("terminate"),
               "terminate crash class=std::domain_error reason=in "
               "websocket_init conn=1 state=1");
    }
    {  // websocket_info
      log.clear();
      t::client c;
      CHECK_EQ(c.open(port, "/c"), 101);
      ++expected_states;
      c.send("!id");
      lariat::conn_id id = std::stoull(c.recv());
      CHECK(rs.server().post(id, boom{}));
      CHECK_EQ(c.expect_close(1011), 1011);
      CHECK(log.wait("terminate"));
      CHECK_EQ(log.find("terminate"),
               "terminate crash class=std::length_error reason=in "
               "websocket_info conn=1 state=1");
    }
    {  // lariat::error caught by the handler: the connection lives on
      log.clear();
      t::client c;
      CHECK_EQ(c.open(port, "/c"), 101);
      ++expected_states;
      c.send("!caught");
      CHECK_EQ(c.recv(),
               "num=-504 LARIAT_ERR_BAD_CLOSE_CODE close code not allowed on "
               "the wire");
      CHECK_EQ(c.recv(), "LARIAT_ERR_TOO_LARGE");
      CHECK_EQ(c.expect_close(1000, 200), -ETIMEDOUT);  // still open
      c.close();
      CHECK(log.wait("terminate"));
    }

    // init: HTTP 500, no connection; a state emplaced before the throw is
    // still handed to terminate and destroyed once.
    struct init_case {
      const char *path, *terminate;
      int states;
    };
    const init_case init_cases[] = {
        {"/c?throw",
         "terminate crash class=std::invalid_argument reason=bad init "
         "conn=0 state=0",
         0},
        {"/c?emplace_then_throw",
         "terminate crash class=std::out_of_range reason=after emplace "
         "conn=0 state=1",
         1},
        {"/c?bad_status",
         "terminate crash class=lariat::error reason=invalid argument "
         "conn=0 state=0",
         0},
    };
    for (const auto &ic : init_cases) {
      log.clear();
      t::client c;
      CHECK_EQ(c.open(port, ic.path), 500);
      c.close();
      expected_states += ic.states;
      CHECK(log.wait("terminate"));
      CHECK_EQ(log.find("terminate"), std::string(ic.terminate));
    }
  }
  CHECK_EQ(tracked::ctors.load(), expected_states);
  CHECK_EQ(tracked::dtors.load(), expected_states);
}

// init accepts without emplace_state() and State has no default
// constructor: a crash, not a connection without a state.
struct no_default {
  explicit no_default(int) {}
};
struct no_default_handler : lariat::handler<no_default> {
  explicit no_default_handler(t::log &l) : log(l) {}
  void init(lariat::request &req, upgrade_type &up) override {
    if (req.query() == "ok") up.emplace_state(1);
  }
  void terminate(lariat::connection *c, const lariat::reason &r,
                 no_default *s) override {
    log.add(describe(c, r, s));
  }
  t::log &log;
};

TEST(state_without_default_constructor_must_be_emplaced) {
  t::log log;
  t::running_server rs;
  rs.server().route<no_default_handler>("/n", log);
  int port = rs.start();
  {
    t::client c;
    CHECK_EQ(c.open(port, "/n"), 500);
    c.close();
    CHECK(log.wait("terminate"));
    CHECK_EQ(log.find("terminate"),
             "terminate crash class=std::logic_error reason=init accepted "
             "the upgrade without emplace_state() and the state type has no "
             "default constructor conn=0 state=0");
  }
  log.clear();
  t::client c;
  CHECK_EQ(c.open(port, "/n?ok"), 101);
}

// An exception from terminate is dropped (the connection is over), and
// the state is still destroyed.
struct throwing_terminate : lariat::handler<tracked> {
  void terminate(lariat::connection *, const lariat::reason &,
                 tracked *) override {
    throw std::runtime_error("from terminate");
  }
};

TEST(exception_in_terminate_is_contained) {
  tracked::ctors = 0;
  tracked::dtors = 0;
  t::running_server rs;
  rs.server().route<throwing_terminate>("/t");
  int port = rs.start();
  for (int i = 0; i < 3; ++i) {
    t::client c;
    CHECK_EQ(c.open(port, "/t"), 101);
    CHECK_EQ(c.close_handshake(1000), 0);
  }
  CHECK(t::eventually([] { return tracked::dtors == 3; }));
  CHECK_EQ(tracked::ctors.load(), 3);
}

// ------------------------------------------------ lariat::error

TEST(lariat_error_from_c_calls) {
  lariat::error e(LARIAT_ERR_CLOSING);
  CHECK_EQ(e.num(), LARIAT_ERR_CLOSING);
  CHECK_EQ(std::string(e.what()),
           "connection is closing; no more frames are sent");
  CHECK_EQ(std::string(e.name()), "LARIAT_ERR_CLOSING");
  CHECK(!e.fatal());
  CHECK(lariat::error(LARIAT_ERR_FATAL - 1).fatal());

  lariat::server s;
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_ARGUMENT,
                     s.listen("not-an-address", 0));
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_ARGUMENT, s.listen("127.0.0.1", 70000));
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_STATE, (void)s.port());  // no listener
  s.listen("127.0.0.1", 0);
  lariat::server other;
  CHECK_LARIAT_ERROR(UV_EADDRINUSE, other.listen("127.0.0.1", s.port()));

  s.route("/x", lariat::handler_fns<>{});
  CHECK_LARIAT_ERROR(LARIAT_ERR_EXISTS, s.route("/x", lariat::handler_fns<>{}));
  CHECK_LARIAT_ERROR(
      LARIAT_ERR_INVALID_ARGUMENT,
      s.route(std::string("/y"), std::unique_ptr<lariat::handler<>>()));

  lariat::options o;
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_ARGUMENT, o.max_head_size(0));
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_ARGUMENT, o.handshake_timeout(0ms));
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_ARGUMENT, o.close_timeout(-1ms));
  o.max_headers(10).max_frame_size(1024).close_timeout(100ms);

  // Moved-from handles refuse to work rather than pass NULL to C.
  lariat::options moved_to(std::move(o));
  CHECK(moved_to);
  CHECK(!o);
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_STATE, o.max_headers(1));
  lariat::server s2(std::move(s));
  CHECK(!s);
  CHECK(s.handle() == nullptr);
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_STATE, s.listen("127.0.0.1", 0));
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_STATE, (void)s.post(1, 1));
  CHECK(s2.port() > 0);
  s2.close();
  s2.close();  // idempotent
  CHECK(!s2);
}

// ------------------------------------------------------ moves

struct echo : lariat::handler<> {
  result websocket_handle(lariat::connection &c, const lariat::frame &f,
                          std::monostate &) override {
    c.reply(f);
    return result::ok;
  }
};

TEST(moved_server_keeps_its_routes) {
  lariat::server a;
  echo &h = a.route<echo>("/e");
  a.listen("127.0.0.1", 0);
  int port = a.port();
  lariat_server *raw = a.handle();
  lariat::server b(std::move(a));
  lariat::server c;
  swap(b, c);  // handler objects stay put: lariat holds their address
  CHECK(c.handle() == raw);
  CHECK(!a);
  t::running_server rs(std::move(c));
  rs.start();  // a second listener on another port
  CHECK_EQ(rs.server().port(), port);
  t::client cl;
  CHECK_EQ(cl.open(port, "/e"), 101);
  cl.send("still here");
  CHECK_EQ(cl.recv(), "still here");
  (void)h;
}

// The C server dies first (its terminates still call the handler), then
// the handler objects: on close(), on destruction and on move-assignment.
struct order_handler : lariat::handler<> {
  explicit order_handler(t::log &l) : log(l) {}
  ~order_handler() override { log.add("handler destroyed"); }
  result websocket_handle(lariat::connection &c, const lariat::frame &,
                          std::monostate &) override {
    // Leave run() with the connection still open.
    uv_stop(lariat_server_loop(c.server_handle()));
    return result::ok;
  }
  void terminate(lariat::connection *c, const lariat::reason &r,
                 std::monostate *) override {
    log.add(std::string("terminate ") + r.name() + (c ? " conn" : ""));
  }
  t::log &log;
};

enum class teardown { close, destroy, move_assign };

void check_teardown(teardown how) {
  t::log log;
  auto s =
      std::make_unique<lariat::server>(lariat::options().close_timeout(100ms));
  s->route<order_handler>("/o", log);
  s->listen("127.0.0.1", 0);
  int port = s->port();
  std::thread loop([&] { s->run(); });
  t::client c;
  CHECK_EQ(c.open(port, "/o"), 101);
  c.send("stop the loop");
  loop.join();
  CHECK(log.lines().empty());
  switch (how) {
    case teardown::close:
      s->close();
      break;
    case teardown::destroy:
      s.reset();
      break;
    case teardown::move_assign:
      *s = lariat::server();
      break;
  }
  CHECK_EQ(log.lines(), (std::vector<std::string>{"terminate shutdown conn",
                                                  "handler destroyed"}));
}

TEST(teardown_order_close) { check_teardown(teardown::close); }
TEST(teardown_order_destructor) { check_teardown(teardown::destroy); }
TEST(teardown_order_move_assignment) { check_teardown(teardown::move_assign); }

}  // namespace

int main(int argc, char **argv) { return t::run_all(argc, argv); }
