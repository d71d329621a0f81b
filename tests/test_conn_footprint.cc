// What a connection leaves in its loop's shared tables: one id-table slot,
// at most one timer entry (none once its deadlines are gone), and a share
// of one profile (route, path, options) with every connection like it.
// The bytes themselves are measured by bench/conn_memory.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <string>
#include <vector>

#include "core_harness.h"

using core_test::CoreServer;
using core_test::upgrade_request;
using core_test::Wire;

namespace {


int init(lariat_req *req, lariat_upgrade *up, void *) {
  size_t n = 0;
  const char *path = lariat_req_path(req, &n);
  if (std::string(path, n) == "/timed")
    lariat_upgrade_set_idle_timeout(up, 30000);
  return LARIAT_OK;
}

lariat_handler make_handler() {
  lariat_handler h = {};
  h.size = sizeof h;
  h.init = init;
  return h;
}
const lariat_handler kHandler = make_handler();

Wire *upgraded(CoreServer &core, const std::string &path) {
  Wire *w = core.open();
  CoreServer::feed(w, upgrade_request(path));
  assert_int_equal(w->out.compare(0, 12, "HTTP/1.1 101"), 0);
  return w;
}

void test_connections_alike_share_one_profile(void **) {
  CoreServer core;
  assert_int_equal(core.route("/a", &kHandler, nullptr), 0);
  assert_int_equal(core.route("/rooms/*", &kHandler, nullptr), 0);
  assert_int_equal(core.route("/timed", &kHandler, nullptr), 0);
  lariat_server *s = core.server;
  std::vector<Wire *> a;
  for (int i = 0; i < 100; ++i) a.push_back(upgraded(core, "/a"));
  assert_int_equal(s->profiles.size(), 1);
  // Another path under a prefix route, and options set by init: one more
  // profile each, however many connections.
  for (int i = 0; i < 50; ++i) upgraded(core, "/rooms/7");
  for (int i = 0; i < 50; ++i) upgraded(core, "/timed");
  assert_int_equal(s->profiles.size(), 3);
  // An option changed at run time: that connection alone moves (copy on
  // write), and keeps its path.
  assert_int_equal(lariat_conn_set_idle_timeout(a[0]->conn, 5000), 0);
  assert_int_equal(s->profiles.size(), 4);
  size_t n = 0;
  const char *path = lariat_conn_path(a[0]->conn, &n);
  assert_string_equal(std::string(path, n).c_str(), "/a");
  assert_int_equal(lariat_conn_path(a[1]->conn, &n) != nullptr, 1);
  // The last connection of a profile takes it with it.
  CoreServer::eof(a[0]);
  assert_int_equal(s->profiles.size(), 3);
  for (auto &w : core.wires) CoreServer::eof(w.get());
  assert_int_equal(s->profiles.size(), 0);
  assert_true(s->conns.empty());
}

void test_handshake_deadlines_leave_with_the_handshake(void **) {
  CoreServer core;
  assert_int_equal(core.route("/a", &kHandler, nullptr), 0);
  assert_int_equal(core.route("/timed", &kHandler, nullptr), 0);
  lariat_server *s = core.server;
  std::vector<Wire *> waiting;
  for (int i = 0; i < 1000; ++i) waiting.push_back(core.open());
  assert_int_equal(s->timers.size(), 1000);  // each its handshake timeout
  for (Wire *w : waiting) CoreServer::feed(w, upgrade_request("/a"));
  // Open without an idle timeout: no deadline, no entry, and the heap's
  // memory mostly given back.
  assert_int_equal(s->timers.size(), 0);
  assert_true(s->timers.capacity() <= 64);
  // With an idle timeout: one entry each, however often it is reset.
  Wire *timed = upgraded(core, "/timed");
  assert_int_equal(s->timers.size(), 1);
  for (int i = 0; i < 100; ++i)
    assert_int_equal(lariat_conn_set_idle_timeout(timed->conn, 30000 + i), 0);
  assert_int_equal(s->timers.size(), 1);
  CoreServer::eof(timed);
  assert_int_equal(s->timers.size(), 0);
  for (Wire *w : waiting) CoreServer::eof(w);
}

void test_id_table_survives_churn(void **) {
  CoreServer core;
  assert_int_equal(core.route("/a", &kHandler, nullptr), 0);
  lariat_server *s = core.server;
  // Grow, shrink and grow again, finding every live id and none of the
  // gone ones each time.
  std::vector<Wire *> live;
  std::vector<lariat_conn_id> gone;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 3000; ++i) live.push_back(upgraded(core, "/a"));
    for (size_t i = 0; i < live.size(); i += 2) {
      gone.push_back(lariat_conn_get_id(live[i]->conn));
      CoreServer::eof(live[i]);
    }
    std::vector<Wire *> kept;
    for (size_t i = 1; i < live.size(); i += 2) kept.push_back(live[i]);
    live.swap(kept);
    assert_int_equal(s->conns.size(), live.size());
    for (Wire *w : live)
      assert_ptr_equal(s->conns.find(lariat_conn_get_id(w->conn)), w->conn);
    for (lariat_conn_id id : gone) assert_null(s->conns.find(id));
  }
  // A stop visits every connection while they erase themselves.
  lariat_server_stop(s);
  for (Wire *w : live) assert_true(w->out.find("\x88\x02\x03\xe9") != std::string::npos);
  for (Wire *w : live) CoreServer::eof(w);
  assert_true(s->conns.empty());
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_connections_alike_share_one_profile),
      cmocka_unit_test(test_handshake_deadlines_leave_with_the_handshake),
      cmocka_unit_test(test_id_table_survives_churn),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
