// The handler contract the issue-9 review found broken, each driven through
// the connection core without sockets (core_harness.h): drain, stop inside
// init, deferred init, state ownership, limits, close codes, batching,
// threads, routes and the request helpers.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <csignal>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core_harness.h"
#include "upgrade.h"

using core_test::bytes;
using core_test::CoreServer;
using core_test::mask_frame;
using core_test::upgrade_request;
using core_test::Wire;

namespace {

const char kAccept[] = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";

// What a test's handler does, and what it saw. One per test, global so
// that terminate (whose conn may be NULL) finds it too.
struct Probe {
  std::function<int(lariat_req *, lariat_upgrade *, void *)> init;
  std::function<int(lariat_conn *, const lariat_frame *)> handle;
  std::function<int(lariat_conn *)> drain;
  int websocket_inits = 0;
  std::vector<std::string> messages;
  std::vector<int> terminates;
  std::vector<void *> terminate_states;
  std::vector<bool> terminate_had_conn;
  std::string terminate_path;
};
Probe *g_probe;

int t_init(lariat_req *req, lariat_upgrade *up, void *data) {
  return g_probe->init ? g_probe->init(req, up, data) : LARIAT_OK;
}
int t_websocket_init(lariat_conn *, void *) {
  ++g_probe->websocket_inits;
  return LARIAT_OK;
}
int t_handle(lariat_conn *conn, const lariat_frame *frame, void *) {
  g_probe->messages.emplace_back(reinterpret_cast<const char *>(frame->data),
                                 frame->len);
  return g_probe->handle ? g_probe->handle(conn, frame) : LARIAT_OK;
}
int t_drain(lariat_conn *conn, void *) {
  return g_probe->drain ? g_probe->drain(conn) : LARIAT_OK;
}
void t_terminate(lariat_conn *conn, const lariat_reason *reason, void *state) {
  g_probe->terminates.push_back(reason->kind);
  g_probe->terminate_states.push_back(state);
  g_probe->terminate_had_conn.push_back(conn != nullptr);
  if (conn) {
    size_t n = 0;
    const char *p = lariat_conn_path(conn, &n);
    g_probe->terminate_path.assign(p, n);
  }
}

lariat_handler probe_handler() {
  lariat_handler h = {};
  h.size = sizeof h;
  h.init = t_init;
  h.websocket_init = t_websocket_init;
  h.websocket_handle = t_handle;
  h.websocket_drain = t_drain;
  h.terminate = t_terminate;
  return h;
}
const lariat_handler kProbe = probe_handler();

// A server with the probe on /chat, and one open WebSocket connection.
struct Fixture {
  Probe probe;
  CoreServer core;
  int route_data = 0;
  Wire *w = nullptr;
  explicit Fixture(const lariat_options *opts = nullptr) : core(opts) {
    g_probe = &probe;
    assert_int_equal(core.route("/chat", &kProbe, &route_data), 0);
  }
  Wire *open(const std::string &request = upgrade_request()) {
    w = core.open();
    CoreServer::feed(w, request);
    return w;
  }
};

// |s| must outlive the frame (lariat_reply copies it).
lariat_frame text_frame(const std::string &s) {
  lariat_frame f = {};
  f.opcode = LARIAT_OP_TEXT;
  f.data = reinterpret_cast<const uint8_t *>(s.data());
  f.len = s.size();
  return f;
}

// ------------------------------------------------------------ item 1

void test_drain_is_edge_triggered_and_never_reentered(void **) {
  Fixture f;
  f.probe.init = [](lariat_req *, lariat_upgrade *up, void *) {
    assert_int_equal(lariat_upgrade_set_low_water(up, 100), 0);
    assert_int_equal(
        lariat_upgrade_set_max_queued(up, 99, LARIAT_BACKPRESSURE_REFUSE),
        LARIAT_ERR_INVALID_ARGUMENT);  // under the low-water mark just set
    assert_int_equal(
        lariat_upgrade_set_max_queued(up, 1000, LARIAT_BACKPRESSURE_REFUSE), 0);
    assert_int_equal(lariat_upgrade_set_low_water(up, 2000),
                     LARIAT_ERR_INVALID_ARGUMENT);  // over the cap
    return LARIAT_OK;
  };
  int drains = 0, drain_rc = 0;
  std::string big(2000, 'x'), medium(940, 'm');
  // A drain that re-sends a frame which does not fit right now: before the
  // fix, end_event() called drain again from inside itself, forever.
  f.probe.drain = [&](lariat_conn *c) {
    ++drains;
    lariat_frame fr = text_frame(medium);
    drain_rc = lariat_reply(c, &fr);
    return LARIAT_OK;
  };
  f.probe.handle = [&](lariat_conn *c, const lariat_frame *) {
    lariat_frame never = text_frame(big);
    // A frame over the cap even for an empty queue has its own error.
    assert_int_equal(lariat_reply(c, &never), LARIAT_ERR_EXCEEDS_CAP);
    lariat_frame fr = text_frame(medium);
    assert_int_equal(lariat_reply(c, &fr), LARIAT_ERR_BACKPRESSURE);
    return LARIAT_OK;
  };
  Wire *w = f.open();
  w->buffered = 500;  // the kernel still holds 500 bytes
  CoreServer::feed(w, mask_frame(0x81, "go"));
  assert_int_equal(drains, 0);  // still above the low-water mark
  w->buffered = 50;             // the kernel took most of it
  w->conn->on_output_progress();
  assert_int_equal(drains, 1);
  assert_int_equal(drain_rc, LARIAT_ERR_BACKPRESSURE);  // 50 + 954 > 1000
  w->conn->on_output_progress();  // one call per fall, not a loop
  assert_int_equal(drains, 2);
  w->buffered = 0;
  w->conn->on_output_progress();
  assert_int_equal(drains, 3);
  assert_int_equal(drain_rc, 0);  // fits now
  assert_true(w->out.find(medium) != std::string::npos);
  CoreServer::eof(w);
}

// ------------------------------------------------------------ item 2

lariat_server *g_server;

void test_stop_inside_init_upgrades_nothing(void **) {
  Fixture f;
  g_server = f.core.server;
  f.probe.init = [](lariat_req *, lariat_upgrade *, void *) {
    assert_int_equal(lariat_server_stop(g_server), 0);
    return LARIAT_OK;
  };
  Wire *w = f.open(upgrade_request() + mask_frame(0x81, "pipelined"));
  assert_true(w->closed);
  assert_true(w->out.find("101") == std::string::npos);
  assert_int_equal(f.probe.websocket_inits, 0);
  assert_true(f.probe.messages.empty());
  assert_int_equal(f.probe.terminates.size(), 1);
  assert_int_equal(f.probe.terminates[0], LARIAT_REASON_SHUTDOWN);
}

// ------------------------------------------------------------ item 7

void test_reserved_close_codes_are_refused_on_send(void **) {
  Fixture f;
  Wire *w = f.open();
  lariat_frame close = {};
  close.opcode = LARIAT_OP_CLOSE;
  for (int code : {1016, 2000, 2999, 1015, 1005})
    assert_int_equal((close.close_code = static_cast<uint16_t>(code),
                      lariat_reply(w->conn, &close)),
                     LARIAT_ERR_BAD_CLOSE_CODE);
  close.close_code = 3000;
  assert_int_equal(lariat_reply(w->conn, &close), 0);
  assert_true(w->out.find(bytes({0x88, 0x02, 0x0b, 0xb8})) != std::string::npos);
  CoreServer::eof(w);
}

void test_plain_reply_sends_one_content_length(void **) {
  Fixture f;
  f.probe.init = [](lariat_req *, lariat_upgrade *up, void *) {
    const char *headers[] = {"Content-Length", "99", "x-a", "b"};
    assert_int_equal(lariat_upgrade_reply(up, 403, headers, 2, "no", 2), 0);
    return LARIAT_OK;
  };
  Wire *w = f.open();
  std::string lower;
  for (char c : w->out) lower.push_back(static_cast<char>(std::tolower(c)));
  size_t first = lower.find("content-length");
  assert_true(first != std::string::npos);
  assert_true(lower.find("content-length", first + 1) == std::string::npos);
  assert_true(lower.find("content-length: 2\r\n") != std::string::npos);
  assert_true(w->out.find("x-a: b\r\n") != std::string::npos);
}

void test_head_sent_byte_by_byte_and_garbage_fails_at_once(void **) {
  Fixture f;
  std::string request =
      upgrade_request("/chat", "X-Long: " + std::string(6000, 'v') + "\r\n");
  Wire *w = f.core.open();
  CoreServer::feed(w, request, 1);
  assert_true(w->out.find(kAccept) != std::string::npos);
  CoreServer::eof(w);
  // A control byte in a header value is refused when it arrives, not at
  // the end of the head.
  Wire *bad = f.core.open();
  CoreServer::feed(bad, "GET /chat HTTP/1.1\r\nHost: a\x01", 1);
  assert_true(bad->out.rfind("HTTP/1.1 400", 0) == 0);
}

void test_request_accessors_take_null(void **) {
  size_t n = 99;
  assert_null(lariat_req_method(nullptr, &n));
  assert_int_equal(n, 0);
  assert_null(lariat_req_path(nullptr, nullptr));
  assert_null(lariat_req_query(nullptr, &n));
  assert_null(lariat_req_header(nullptr, "host", &n));
  assert_int_equal(lariat_req_header_count(nullptr), 0);
  char buf[8];
  assert_int_equal(lariat_req_query_param(nullptr, "a", buf, sizeof buf, &n),
                   LARIAT_ERR_INVALID_ARGUMENT);
  assert_int_equal(lariat_req_cookie(nullptr, "a", buf, sizeof buf, &n),
                   LARIAT_ERR_INVALID_ARGUMENT);
  assert_null(lariat_conn_path(nullptr, &n));
}

void test_timer_heap_stays_bounded(void **) {
  Fixture f;
  Wire *w = f.open();
  for (int i = 0; i < 20000; ++i)
    assert_int_equal(lariat_conn_set_idle_timeout(w->conn, 100000 - i), 0);
  // One entry per connection at most, however often its deadline moves.
  assert_true(f.core.server->timers.size() <= f.core.server->conns.size());
  CoreServer::eof(w);
}

void test_stop_resumes_a_paused_reader(void **) {
  Fixture f;
  Wire *w = f.open();
  assert_int_equal(lariat_conn_set_active(w->conn, 0), 0);
  assert_false(w->reading);
  assert_int_equal(lariat_server_stop(f.core.server), 0);
  assert_true(w->reading);  // so the peer's close can be read
  CoreServer::feed(w, mask_frame(0x88, bytes({0x03, 0xe9})));
  CoreServer::eof(w);
  assert_int_equal(f.probe.terminates[0], LARIAT_REASON_SHUTDOWN);
}

// ------------------------------------------------------------ item 8, 17

void test_terminate_state_is_only_what_init_set(void **) {
  Fixture f;
  f.probe.init = [](lariat_req *, lariat_upgrade *up, void *) {
    lariat_upgrade_reply(up, 401, nullptr, 0, nullptr, 0);
    return LARIAT_OK;
  };
  CoreServer::eof(f.open());
  assert_int_equal(f.probe.terminates.size(), 1);
  assert_null(f.probe.terminate_states[0]);  // never the route's data
  assert_false(f.probe.terminate_had_conn[0]);

  static int mine;
  f.probe.init = [](lariat_req *, lariat_upgrade *up, void *) {
    lariat_upgrade_set_state(up, &mine);
    return LARIAT_OK;
  };
  Wire *w = f.open(upgrade_request("/chat?room=1"));
  assert_ptr_equal(lariat_conn_get_data(w->conn), &mine);
  assert_ptr_equal(lariat_conn_handler_data(w->conn), &f.route_data);
  char peer[32];
  int port = 0;
  assert_int_equal(lariat_conn_peer(w->conn, peer, sizeof peer, &port), 0);
  assert_string_equal(peer, "scripted");
  CoreServer::eof(w);
  assert_ptr_equal(f.probe.terminate_states[1], &mine);
  assert_string_equal(f.probe.terminate_path.c_str(), "/chat");
}

// ------------------------------------------------------------ item 16, 20

void test_max_frame_size_after_init_and_1009_reason(void **) {
  Fixture f;
  f.probe.handle = [](lariat_conn *c, const lariat_frame *) {
    assert_int_equal(lariat_conn_set_max_frame_size(c, 0),
                     LARIAT_ERR_INVALID_ARGUMENT);
    assert_int_equal(lariat_conn_set_max_frame_size(c, 4), 0);
    return LARIAT_OK;
  };
  Wire *w = f.open();
  CoreServer::feed(w, mask_frame(0x81, "12345") + mask_frame(0x81, "12345"));
  assert_int_equal(f.probe.messages.size(), 1);  // the second is over 4
  std::string reason = "message over the 4-byte limit";
  std::string close = bytes({0x88, static_cast<int>(2 + reason.size()), 0x03,
                             0xf1}) + reason;
  assert_true(w->out.find(close) != std::string::npos);
  CoreServer::eof(w);
  assert_int_equal(f.probe.terminates[0], LARIAT_REASON_ERROR_TOO_BIG);
}

// ------------------------------------------------------------ item 18

lariat_upgrade *g_deferred;

void test_deferred_init_accepted_from_another_thread(void **) {
  Fixture f;
  static int state_from_worker;
  f.probe.init = [](lariat_req *, lariat_upgrade *up, void *) {
    g_deferred = up;
    return LARIAT_DEFER;
  };
  Wire *w = f.open(upgrade_request() + mask_frame(0x81, "early"));
  assert_true(w->out.empty());  // nothing decided yet
  CoreServer::feed(w, mask_frame(0x81, "later"));
  std::thread worker([] {
    assert_int_equal(lariat_upgrade_set_idle_timeout(g_deferred, 5000), 0);
    assert_int_equal(lariat_upgrade_add_header(g_deferred, "Set-Cookie", "s=1"), 0);
    lariat_upgrade_set_state(g_deferred, &state_from_worker);
    assert_int_equal(lariat_upgrade_resume(g_deferred, LARIAT_OK), 0);
  });
  worker.join();
  f.core.server->deliver_mail();  // what the mailbox's wake-up does
  assert_true(w->out.find(kAccept) != std::string::npos);
  assert_true(w->out.find("Set-Cookie: s=1\r\n") != std::string::npos);
  assert_int_equal(f.probe.websocket_inits, 1);
  assert_int_equal(f.probe.messages.size(), 2);  // pipelined and later
  assert_string_equal(f.probe.messages[0].c_str(), "early");
  assert_ptr_equal(lariat_conn_get_data(w->conn), &state_from_worker);
  CoreServer::eof(w);
  assert_int_equal(f.probe.terminates.size(), 1);
}

void test_deferred_init_that_times_out_terminates_once_at_resume(void **) {
  Fixture f;
  static int final_state;
  f.probe.init = [](lariat_req *, lariat_upgrade *up, void *) {
    g_deferred = up;
    return LARIAT_DEFER;
  };
  f.core.server->manual_clock = 1000;
  Wire *w = f.open();
  f.core.server->manual_clock = 1000 + 10000;  // the handshake timeout
  w->conn->on_deadline();
  assert_true(w->out.rfind("HTTP/1.1 408", 0) == 0);
  CoreServer::eof(w);
  assert_true(w->closed);
  assert_true(f.probe.terminates.empty());  // waits for the decision
  lariat_upgrade_set_state(g_deferred, &final_state);
  assert_int_equal(lariat_upgrade_resume(g_deferred, LARIAT_OK), 0);
  f.core.server->deliver_mail();
  assert_int_equal(f.probe.terminates.size(), 1);
  assert_int_equal(f.probe.terminates[0], LARIAT_REASON_TIMEOUT);
  assert_ptr_equal(f.probe.terminate_states[0], &final_state);
  assert_int_equal(f.probe.websocket_inits, 0);
  assert_int_equal(lariat_upgrade_resume(nullptr, LARIAT_OK),
                   LARIAT_ERR_INVALID_ARGUMENT);
}

void test_deferred_init_answered_with_a_plain_response(void **) {
  Fixture f;
  f.probe.init = [](lariat_req *, lariat_upgrade *up, void *) {
    g_deferred = up;
    return LARIAT_DEFER;
  };
  Wire *w = f.open();
  assert_int_equal(lariat_upgrade_resume(g_deferred, LARIAT_SHUTDOWN),
                   LARIAT_ERR_INVALID_ARGUMENT);  // not an init result
  assert_int_equal(lariat_upgrade_reply(g_deferred, 403, nullptr, 0, "no", 2), 0);
  assert_int_equal(lariat_upgrade_resume(g_deferred, LARIAT_OK), 0);
  f.core.server->deliver_mail();
  assert_true(w->out.rfind("HTTP/1.1 403 Forbidden", 0) == 0);
  CoreServer::eof(w);
  assert_int_equal(f.probe.terminates[0], LARIAT_REASON_NORMAL);
}

// ------------------------------------------------------------ item 19

void test_query_cookie_routes_and_101_headers(void **) {
  Fixture f;
  static int rooms_data;
  assert_int_equal(f.core.route("/rooms/*", &kProbe, &rooms_data), 0);
  assert_int_equal(f.core.route("/rooms/*", &kProbe, &rooms_data),
                   LARIAT_ERR_EXISTS);
  std::vector<std::string> seen;
  f.probe.init = [&](lariat_req *req, lariat_upgrade *up, void *data) {
    char buf[64];
    size_t n = 0;
    assert_ptr_equal(data, &rooms_data);
    assert_int_equal(lariat_req_query_param(req, "name", buf, sizeof buf, &n), 0);
    seen.emplace_back(buf, n);
    assert_int_equal(lariat_req_query_param(req, "flag", buf, sizeof buf, &n), 0);
    seen.emplace_back(buf, n);
    assert_int_equal(lariat_req_query_param(req, "nope", buf, sizeof buf, &n),
                     LARIAT_ERR_NOT_FOUND);
    assert_int_equal(lariat_req_query_param(req, "name", buf, 3, &n),
                     LARIAT_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 7);
    assert_int_equal(lariat_req_query_param(req, "bad", buf, sizeof buf, &n),
                     LARIAT_ERR_INVALID_ARGUMENT);
    assert_int_equal(lariat_req_cookie(req, "sid", buf, sizeof buf, &n), 0);
    seen.emplace_back(buf, n);
    assert_int_equal(lariat_req_cookie(req, "theme", buf, sizeof buf, &n), 0);
    seen.emplace_back(buf, n);
    assert_int_equal(lariat_req_cookie(req, "none", buf, sizeof buf, &n),
                     LARIAT_ERR_NOT_FOUND);
    assert_int_equal(lariat_upgrade_add_header(up, "Upgrade", "x"),
                     LARIAT_ERR_INVALID_ARGUMENT);
    assert_int_equal(lariat_upgrade_add_header(up, "Sec-WebSocket-Accept", "x"),
                     LARIAT_ERR_INVALID_ARGUMENT);
    assert_int_equal(lariat_upgrade_add_header(up, "X-A", "1\r\nX-B: 2"),
                     LARIAT_ERR_INVALID_ARGUMENT);
    assert_int_equal(lariat_upgrade_add_header(up, "Set-Cookie", "a=1"), 0);
    assert_int_equal(lariat_upgrade_add_header(up, "Set-Cookie", "b=2"), 0);
    return LARIAT_OK;
  };
  Wire *w = f.open(upgrade_request(
      "/rooms/42?name=J%C3%B6rg+K&flag&bad=%zz",
      "Cookie: theme=dark; sid=\"a%20b\"\r\nCookie: sid=second\r\n"));
  assert_int_equal(seen.size(), 4);
  assert_string_equal(seen[0].c_str(), "J\xc3\xb6rg K");
  assert_string_equal(seen[1].c_str(), "");
  assert_string_equal(seen[2].c_str(), "a b");
  assert_string_equal(seen[3].c_str(), "dark");
  assert_true(w->out.find("Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n") !=
              std::string::npos);
  CoreServer::eof(w);
  // The exact route still wins over any prefix; unknown paths get 404.
  f.probe.init = nullptr;
  Wire *exact = f.open();
  assert_true(exact->out.find(kAccept) != std::string::npos);
  Wire *none = f.open(upgrade_request("/roomsX"));
  assert_true(none->out.rfind("HTTP/1.1 404", 0) == 0);
  CoreServer::eof(exact);
}

// ------------------------------------------------------------ item 22

lariat_conn *g_other;

void test_replies_to_other_connections_leave_batched(void **) {
  Fixture f;
  Wire *a = f.open();
  Wire *b = f.open();
  g_other = b->conn;
  CoreServer::feed(b, mask_frame(0x81, "hibernate"));
  f.probe.handle = [](lariat_conn *c, const lariat_frame *) {
    if (c == g_other) return LARIAT_HIBERNATE;
    static const std::string s1 = "one", s2 = "two";
    lariat_frame one = text_frame(s1), two = text_frame(s2);
    assert_int_equal(lariat_reply(g_other, &one), 0);
    assert_int_equal(lariat_reply(g_other, &two), 0);
    return LARIAT_OK;
  };
  CoreServer::feed(b, mask_frame(0x81, "sleep"));
  assert_true(lariat_conn_hibernating(b->conn));
  size_t before = b->writes;
  CoreServer::feed(a, mask_frame(0x81, "broadcast"));
  assert_int_equal(b->writes, before + 1);  // both frames, one write
  assert_true(b->out.find(bytes({0x81, 0x03}) + "one" + bytes({0x81, 0x03}) +
                          "two") != std::string::npos);
  assert_true(lariat_conn_hibernating(b->conn));  // and back to sleep
  CoreServer::eof(a);
  CoreServer::eof(b);
}

// ------------------------------------------------------------ item 6, 14

void test_wrong_thread_calls_are_refused(void **) {
  Fixture f;
  Wire *w = f.open();
  int rc_reply = 0, rc_active = 0, rc_idle = 0, rc_stop = 0;
  std::thread other([&] {
    static const std::string text = "from elsewhere";
    lariat_frame fr = text_frame(text);
    rc_reply = lariat_reply(w->conn, &fr);
    rc_active = lariat_conn_set_active(w->conn, 0);
    rc_idle = lariat_conn_set_idle_timeout(w->conn, 10);
    rc_stop = lariat_server_stop(f.core.server);
  });
  other.join();
  assert_int_equal(rc_reply, LARIAT_ERR_INVALID_STATE);
  assert_int_equal(rc_active, LARIAT_ERR_INVALID_STATE);
  assert_int_equal(rc_idle, LARIAT_ERR_INVALID_STATE);
  assert_int_equal(rc_stop, LARIAT_ERR_INVALID_STATE);
  assert_non_null(std::strstr(lariat_strerror(LARIAT_ERR_INVALID_STATE),
                              "lariat_post()"));
  assert_true(w->out.find("from elsewhere") == std::string::npos);
  assert_true(w->reading);
  CoreServer::eof(w);
}

void test_connection_ids_are_unique_in_the_process(void **) {
  Fixture f;
  CoreServer second;
  assert_int_equal(second.route("/chat", &kProbe, nullptr), 0);
  Wire *a = f.open();
  Wire *b = second.open();
  CoreServer::feed(b, upgrade_request());
  assert_true(lariat_conn_get_id(a->conn) != lariat_conn_get_id(b->conn));
  CoreServer::eof(a);
  CoreServer::eof(b);
}

// ------------------------------------------------------------ item 13, 23

lariat_server *g_signalled;
int g_stopped_calls;

void on_sigusr1(int) { lariat_server_stop_async(g_signalled); }

void test_stop_from_a_signal_handler_and_on_stopped(void **) {
  Fixture f;
  Wire *w = f.open();
  g_signalled = f.core.server;
  g_stopped_calls = 0;
  assert_int_equal(
      lariat_server_on_stopped(
          f.core.server, [](lariat_server *, void *data) {
            ++*static_cast<int *>(data);
          },
          &g_stopped_calls),
      0);
  struct sigaction sa = {}, old = {};
  sa.sa_handler = on_sigusr1;
  sigaction(SIGUSR1, &sa, &old);
  raise(SIGUSR1);
  // One turn of the loop runs the stop: close 1001 goes out.
  uv_run(f.core.server->loop, UV_RUN_NOWAIT);
  sigaction(SIGUSR1, &old, nullptr);
  assert_true(w->out.find(bytes({0x88, 0x02, 0x03, 0xe9})) != std::string::npos);
  assert_int_equal(lariat_server_stop_async(f.core.server), LARIAT_ERR_STOPPED);
  CoreServer::feed(w, mask_frame(0x88, bytes({0x03, 0xe9})));
  CoreServer::eof(w);
  lariat_server_run(f.core.server);  // returns once lariat's handles closed
  assert_int_equal(g_stopped_calls, 1);
  assert_int_equal(f.probe.terminates[0], LARIAT_REASON_SHUTDOWN);
}

void test_listen_accepts_localhost_and_brackets(void **) {
  CoreServer s;
  assert_int_equal(lariat_server_listen(s.server, "localhost", 0), 0);
  assert_true(lariat_server_port(s.server) > 0);
  int rc = lariat_server_listen(s.server, "[::1]", 0);
  assert_true(rc == 0 || rc == UV_EADDRNOTAVAIL || rc == UV_EAFNOSUPPORT);
  assert_int_equal(lariat_server_listen(s.server, "[::1", 0),
                   LARIAT_ERR_INVALID_ARGUMENT);
  assert_int_equal(lariat_server_listen(s.server, "example.com", 0),
                   LARIAT_ERR_INVALID_ARGUMENT);
}

// ------------------------------------------------------------ item 24

// Every single-value option of the table has a setter that stores what it
// is given, and a connection copies the whole set at the upgrade.
void test_every_table_option_has_a_working_setter(void **) {
  int checked = 0;
#define CHECK_OPTION(name, type, def, valid)                          \
  {                                                                   \
    lariat_upgrade up;                                                \
    assert_true(up.opts.name == static_cast<type>(def));              \
    assert_int_equal(lariat_upgrade_set_##name(&up, static_cast<type>(1)), 0); \
    assert_true(up.opts.name == static_cast<type>(1));                \
    assert_int_equal(lariat_upgrade_set_##name(nullptr, static_cast<type>(1)), \
                     LARIAT_ERR_INVALID_ARGUMENT);                    \
    ++checked;                                                        \
  }
  LARIAT_CONN_OPTIONS(CHECK_OPTION)
#undef CHECK_OPTION
  assert_true(checked >= 3);
  {
    // A small cap takes the default low-water mark down with it, in
    // whatever order the setters run.
    lariat_upgrade up;
    assert_int_equal(
        lariat_upgrade_set_max_queued(&up, 4096, LARIAT_BACKPRESSURE_REFUSE), 0);
    assert_int_equal(up.opts.low_water, 2048);
  }

  Fixture f;
  f.probe.init = [](lariat_req *, lariat_upgrade *up, void *) {
    lariat_upgrade_set_idle_timeout(up, 1234);
    lariat_upgrade_set_low_water(up, 77);
    lariat_upgrade_set_max_queued(up, 5000, LARIAT_BACKPRESSURE_REFUSE);
    return LARIAT_OK;
  };
  f.core.server->manual_clock = 500;
  Wire *w = f.open();
  assert_int_equal(w->conn->deadline(), 500 + 1234);  // copied whole
  std::string big(4990, 'b');
  lariat_frame fr = text_frame(big);
  assert_int_equal(lariat_reply(w->conn, &fr), LARIAT_ERR_EXCEEDS_CAP);
  CoreServer::eof(w);
}

}  // namespace

int main() {
  const CMUnitTest tests[] = {
      cmocka_unit_test(test_drain_is_edge_triggered_and_never_reentered),
      cmocka_unit_test(test_stop_inside_init_upgrades_nothing),
      cmocka_unit_test(test_reserved_close_codes_are_refused_on_send),
      cmocka_unit_test(test_plain_reply_sends_one_content_length),
      cmocka_unit_test(test_head_sent_byte_by_byte_and_garbage_fails_at_once),
      cmocka_unit_test(test_request_accessors_take_null),
      cmocka_unit_test(test_timer_heap_stays_bounded),
      cmocka_unit_test(test_stop_resumes_a_paused_reader),
      cmocka_unit_test(test_terminate_state_is_only_what_init_set),
      cmocka_unit_test(test_max_frame_size_after_init_and_1009_reason),
      cmocka_unit_test(test_deferred_init_accepted_from_another_thread),
      cmocka_unit_test(test_deferred_init_that_times_out_terminates_once_at_resume),
      cmocka_unit_test(test_deferred_init_answered_with_a_plain_response),
      cmocka_unit_test(test_query_cookie_routes_and_101_headers),
      cmocka_unit_test(test_replies_to_other_connections_leave_batched),
      cmocka_unit_test(test_wrong_thread_calls_are_refused),
      cmocka_unit_test(test_connection_ids_are_unique_in_the_process),
      cmocka_unit_test(test_stop_from_a_signal_handler_and_on_stopped),
      cmocka_unit_test(test_listen_accepts_localhost_and_brackets),
      cmocka_unit_test(test_every_table_option_has_a_working_setter),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
