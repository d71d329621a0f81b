/* websocket_info from any thread: 8 threads post 10,000 messages each,
 * alternating between a live connection and connections that have ended
 * (or never existed). Every message is delivered in per-thread order or
 * freed, and none leaks (the free count matches the post count). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define THREADS 8
#define PER_THREAD 10000

static th_server srv;
static lariat_conn_id live_id, ended_id;

typedef struct poster {
  int index;
  int rejected;
} poster;

static void post_all(void *arg) {
  poster *p = arg;
  for (int seq = 1; seq <= PER_THREAD; ++seq) {
    lariat_conn_id target;
    switch (seq % 3) {
      case 0: target = ended_id; break;
      case 1: target = live_id; break;
      default: target = 999999999; break; /* never existed */
    }
    if (th_post(&srv, target, p->index, seq, 0) != 0) p->rejected++;
  }
}

static void test_post_from_threads(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  long freed_before = th_msgs_freed();
  wsc live, ended;
  live_id = th_open_with_id(&srv, &live);
  ended_id = th_open_with_id(&srv, &ended);
  assert_true(live_id != ended_id);
  wsc_close(&ended);
  TH_EQ(th_wait_terminates(&srv, 1, 2000), 0);

  uv_thread_t threads[THREADS];
  poster posters[THREADS];
  for (int i = 0; i < THREADS; ++i) {
    posters[i].index = i;
    posters[i].rejected = 0;
    TH_EQ(uv_thread_create(&threads[i], post_all, &posters[i]), 0);
  }
  for (int i = 0; i < THREADS; ++i) {
    uv_thread_join(&threads[i]);
    TH_EQ(posters[i].rejected, 0);
  }
  long to_live = 0;
  for (int seq = 1; seq <= PER_THREAD; ++seq) to_live += seq % 3 == 1;
  to_live *= THREADS;

  /* The live connection still answers, and every posted message is
   * accounted for once the loop has drained the mailbox. */
  for (int tries = 0; tries < 200 && th_msgs_freed() - freed_before <
                                         (long)THREADS * PER_THREAD;
       ++tries)
    th_sleep_ms(10);
  TH_EQ(wsc_send_text(&live, "still here"), 0);
  TH_EQ(th_expect_text(&live, "still here", 2000), 0);
  TH_EQ(th_msgs_freed() - freed_before, (long)THREADS * PER_THREAD);
  pthread_mutex_lock(&srv.mutex);
  TH_EQ(srv.infos_delivered, to_live);
  TH_EQ(srv.order_violations, 0);
  pthread_mutex_unlock(&srv.mutex);
  wsc_close(&live);
  th_stop(&srv);
  TH_EQ(srv.terminates, 2);
}

/* Messages still queued when the server stops, and messages posted after
 * it stopped, are freed; lariat_post says so with LARIAT_ERR_STOPPED. */
static void test_post_around_stop(void **st) {
  (void)st;
  lariat_options *opts;
  TH_EQ(lariat_options_new(&opts), 0);
  /* The client never answers the 1001: the stop waits this long for it. */
  TH_EQ(lariat_options_set_close_timeout(opts, 300), 0);
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, opts);
  lariat_options_del(opts);
  long freed_before = th_msgs_freed();
  wsc c;
  live_id = th_open_with_id(&srv, &c);
  for (int i = 1; i <= 1000; ++i) TH_EQ(th_post(&srv, live_id, 0, i, 0), 0);
  TH_EQ(lariat_server_stop_async(srv.server), 0);
  uv_thread_join(&srv.thread);
  TH_EQ(th_post(&srv, live_id, 0, 1001, 0), LARIAT_ERR_STOPPED);
  lariat_server_del(srv.server);
  TH_EQ(uv_loop_close(&srv.loop), 0);
  TH_EQ(th_msgs_freed() - freed_before, 1001);
  TH_EQ(srv.terminates, 1);
  wsc_close(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_post_from_threads),
      cmocka_unit_test(test_post_around_stop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
