// The C++ wrapper of the API issue 9 added, over real loopback sockets:
// deferred init decided on another thread, extra 101 headers, query and
// cookie helpers, per-connection max_frame_size, peer and path after init,
// on_stopped, max_connections and the deflate strategy.
#include <string>
#include <thread>

#include "support.hpp"

using lariat::result;

namespace {

std::string header_of(const wsc_response &r, const char *name) {
  const char *v = wsc_header(&r, name);
  return v ? v : "<none>";
}

// init defers; a thread decides by the query: accept with a state,
// reply 403, or drop the deferred_upgrade without a decision.
TEST(deferred_upgrade_decided_on_another_thread) {
  t::log log;
  std::vector<std::thread> deciders;
  lariat::handler_fns<std::string> fns;
  fns.init = [&](lariat::request &req, lariat::upgrade<std::string> &up) {
    std::string query(req.query());  // the request ends with init
    auto d = up.defer();
    CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_STATE, up.idle_timeout({}));
    deciders.emplace_back([query, d = std::move(d)]() mutable {
      if (query == "ok") {
        d.resume([&](lariat::upgrade<std::string> &u) {
          u.add_header("X-Decided", "elsewhere");
          u.emplace_state("state from " + query);
        });
      } else if (query == "no") {
        d.reply(403, {}, "not you");
      }  // "drop": the destructor decides (500)
    });
  };
  fns.websocket_init = [](lariat::connection &c, std::string &s) {
    c.send_text(s);
    return result::ok;
  };
  fns.terminate = [&log](lariat::connection *c, const lariat::reason &r,
                         std::string *s) {
    log.add("terminate " + std::string(r.name()) + " conn=" + (c ? "1" : "0") +
            " state=" + (s ? *s : "null") + " " +
            std::string(r.crash_reason()));
  };
  t::running_server rs;
  rs.server().route("/d", std::move(fns));
  int port = rs.start();
  {
    t::client c;
    wsc_response resp{};
    CHECK_EQ(c.open(port, "/d?ok", nullptr, &resp), 101);
    std::string decided = header_of(resp, "X-Decided");
    wsc_response_free(&resp);
    CHECK_EQ(decided, "elsewhere");
    CHECK_EQ(c.recv(), "state from ok");
    CHECK_EQ(c.close_handshake(1000), 0);
    CHECK(log.wait("terminate"));
    CHECK_EQ(log.find("terminate"),
             "terminate remote conn=1 state=state from ok ");
    log.clear();
  }
  {
    t::client c;
    CHECK_EQ(c.open(port, "/d?no"), 403);
    c.close();  // lariat ends a plain HTTP answer once the client has gone
    CHECK(log.wait("terminate"));
    CHECK_EQ(log.find("terminate"), "terminate normal conn=0 state=null ");
    log.clear();
  }
  {
    t::client c;
    CHECK_EQ(c.open(port, "/d?drop"), 500);
    c.close();
    CHECK(log.wait("terminate"));
    CHECK_EQ(log.find("terminate"),
             "terminate crash conn=0 state=null destroyed without a decision");
  }
  rs.stop();
  for (auto &th : deciders) th.join();
}

struct request_helpers : lariat::handler<std::string> {
  void init(lariat::request &req, upgrade_type &up) override {
    auto show = [](const std::optional<std::string> &v) {
      return v ? "[" + *v + "]" : std::string("none");
    };
    std::string text = "q=" + show(req.query_param("q")) +
                       " long=" + std::to_string(
                           req.query_param("long").value_or("").size()) +
                       " missing=" + show(req.query_param("x")) +
                       " sid=" + show(req.cookie("sid"));
    try {
      (void)req.query_param("bad");
    } catch (const lariat::error &e) {
      text += std::string(" bad=") + e.name();
    }
    up.emplace_state(text);
    up.add_header("Set-Cookie", "seen=1");
    CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_ARGUMENT,
                       up.add_header("Upgrade", "h2c"));
  }
  result websocket_init(lariat::connection &c, std::string &s) override {
    c.send_text(s);
    return result::ok;
  }
  result websocket_handle(lariat::connection &c, const lariat::frame &f,
                          std::string &) override {
    if (f.data == "where") {
      auto peer = c.peer();
      c.send_text(std::string(c.path()) + " " + peer.address + " " +
                  (peer.port > 0 ? "port" : "noport"));
    } else if (f.data == "shrink") {
      CHECK(c.set_max_frame_size(4));
      c.send_text("shrunk");
    }
    return result::ok;
  }
};

TEST(request_helpers_headers_and_connection_accessors) {
  t::running_server rs;
  rs.server().route<request_helpers>("/h");
  int port = rs.start();
  t::client c;
  wsc_response resp{};
  std::string path = "/h?q=a%20b+c&bad=%zz&long=" + std::string(300, 'L');
  CHECK_EQ(c.open(port, path.c_str(), "Cookie: a=1; sid=\"x%2Fy\"\r\n", &resp),
           101);
  std::string cookie = header_of(resp, "Set-Cookie");
  wsc_response_free(&resp);
  CHECK_EQ(cookie, "seen=1");
  CHECK_EQ(c.recv(), "q=[a b c] long=300 missing=none sid=[x/y] "
                     "bad=LARIAT_ERR_INVALID_ARGUMENT");
  c.send("where");
  CHECK_EQ(c.recv(), "/h 127.0.0.1 port");
  c.send("shrink");
  CHECK_EQ(c.recv(), "shrunk");
  c.send("12345");  // over the new limit of 4
  CHECK_EQ(c.expect_close(1009), 1009);
}

TEST(on_stopped_runs_once_every_terminate_ran) {
  t::log log;
  lariat::handler_fns<> fns;
  fns.terminate = [&log](lariat::connection *, const lariat::reason &,
                         std::monostate *) { log.add("terminate"); };
  t::running_server rs;
  rs.server().route("/", std::move(fns));
  rs.server().on_stopped([&log] {
    log.add("stopped after " + std::to_string(log.count("terminate")));
  });
  int port = rs.start();
  t::client c;
  CHECK_EQ(c.open(port, "/"), 101);
  CHECK(rs.server().stop_async());
  CHECK_EQ(c.expect_close(1001), 1001);
  rs.join();
  CHECK_EQ(log.count("stopped"), std::size_t(1));
  CHECK_EQ(log.find("stopped"), "stopped after 1");
}

TEST(max_connections_option) {
  lariat::options opts;
  opts.max_connections(1);
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_ARGUMENT, opts.max_connections(0));
  t::running_server rs{lariat::server(opts)};
  rs.server().route("/", lariat::handler_fns<>{});
  int port = rs.start();
  t::client first;
  CHECK_EQ(first.open(port, "/"), 101);
  t::client second;
  CHECK_EQ(second.open(port, "/"), 503);
}

TEST(deflate_strategy_option) {
  lariat::handler_fns<> fns;
  fns.init = [](lariat::request &, lariat::upgrade<std::monostate> &up) {
    CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_ARGUMENT,
                       up.deflate(lariat::deflate_option::strategy, 5));
    up.compress(true).deflate(lariat::deflate_option::strategy, 2);
  };
  fns.websocket_init = [](lariat::connection &c, std::monostate &) {
    lariat::frame f = lariat::frame::text(c.compressed() ? "deflate" : "plain");
    f.compress = false;  // this raw client reads uncompressed frames
    c.reply(f);
    return result::ok;
  };
  t::running_server rs;
  rs.server().route("/", std::move(fns));
  int port = rs.start();
  t::client c;
  CHECK_EQ(c.open(port, "/", "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
           101);
  CHECK_EQ(c.recv(), "deflate");
}

}  // namespace

int main(int argc, char **argv) { return t::run_all(argc, argv); }
