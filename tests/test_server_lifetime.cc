// The server's own loop: what lariat_server_del() frees and what it must
// not (issue 9 item 5). No connections, no sockets.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <uv.h>

#include "server.h"

namespace {

// A handle the user put on lariat's own loop and did not close keeps the
// loop busy: lariat_server_del() must not free the loop under it. The
// handle is then closed on that loop (ASan reports a use after free if
// the loop was freed), and the loop closes.
void test_del_keeps_a_busy_loop(void **) {
  lariat_server *server = nullptr;
  assert_int_equal(lariat_server_new(&server, nullptr, nullptr), 0);
  uv_loop_t *loop = lariat_server_loop(server);
  uv_timer_t timer;
  assert_int_equal(uv_timer_init(loop, &timer), 0);
  lariat_server_del(server);

  uv_close(reinterpret_cast<uv_handle_t *>(&timer), nullptr);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
  delete loop;  // what lariat leaked on purpose (new uv_loop_t, server.cc)
}

// Without user handles the owned loop is closed and freed (LeakSanitizer
// checks the freeing in the ASan build).
void test_del_frees_an_idle_loop(void **) {
  lariat_server *server = nullptr;
  assert_int_equal(lariat_server_new(&server, nullptr, nullptr), 0);
  lariat_server_del(server);
}

}  // namespace

int main() {
  const CMUnitTest tests[] = {
      cmocka_unit_test(test_del_keeps_a_busy_loop),
      cmocka_unit_test(test_del_frees_an_idle_loop),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
