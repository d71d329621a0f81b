/* A server with several event loops, over 127.0.0.1: how connections
 * spread over the loops, posts routed by id from many threads in order,
 * topics across loops, the connection limit across loops, stop from a
 * foreign thread, and a second process kept off the port. Run under
 * ThreadSanitizer by the LARIAT_TSAN build. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lariat/lariat.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "harness.h"
#include "wsclient.h"

#define POSTERS 8

/* Shared by every loop's thread: atomics only. */
static atomic_long g_delivered, g_violations, g_terminates, g_stopped;
static const char kRoom[] = "room";

typedef struct conn_state {
  int last_seq[POSTERS];  /* per posting thread; only this loop touches it */
} conn_state;

typedef struct post_msg {
  int thread, seq;
} post_msg;

static int t_init(lariat_req *req, lariat_upgrade *up, void *data) {
  (void)data;
  size_t qlen = 0;
  const char *query = lariat_req_query(req, &qlen);
  /* "?refuse": a 1 MiB cap whose overflow drops publishes (counted). */
  if (qlen == 6 && memcmp(query, "refuse", 6) == 0)
    lariat_upgrade_set_max_queued(up, 1u << 20, LARIAT_BACKPRESSURE_REFUSE);
  /* "?unlimited": a cap no test reaches. */
  if (qlen == 9 && memcmp(query, "unlimited", 9) == 0)
    lariat_upgrade_set_max_queued(up, 1ull << 40, LARIAT_BACKPRESSURE_CLOSE);
  conn_state *st = calloc(1, sizeof *st);
  for (int i = 0; i < POSTERS; ++i) st->last_seq[i] = -1;
  lariat_upgrade_set_state(up, st);
  return LARIAT_OK;
}

static void reply_text(lariat_conn *conn, const char *text) {
  lariat_frame f = {.opcode = LARIAT_OP_TEXT,
                    .data = (const uint8_t *)text,
                    .len = strlen(text)};
  lariat_reply(conn, &f);
}

static int t_handle(lariat_conn *conn, const lariat_frame *frame, void *state) {
  (void)state;
  if (frame->len == 3 && memcmp(frame->data, "!id", 3) == 0) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu",
             (unsigned long long)lariat_conn_get_id(conn));
    reply_text(conn, buf);
  } else if (frame->len == 8 && memcmp(frame->data, "!dropped", 8) == 0) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu",
             (unsigned long long)lariat_conn_dropped(conn));
    reply_text(conn, buf);
  } else if (frame->len == 4 && memcmp(frame->data, "!sub", 4) == 0) {
    assert_int_equal(lariat_subscribe(conn, kRoom, sizeof kRoom - 1), 0);
    reply_text(conn, "subscribed");
  } else if (frame->len == 6 && memcmp(frame->data, "!count", 6) == 0) {
    /* The subscribers of this connection's loop. */
    char buf[32];
    snprintf(buf, sizeof buf, "%zu",
             lariat_server_subscribers(lariat_conn_server(conn), kRoom,
                                       sizeof kRoom - 1));
    reply_text(conn, buf);
  }
  return LARIAT_OK;
}

static int t_info(lariat_conn *conn, void *msg, void *state) {
  (void)conn;
  conn_state *st = state;
  post_msg *m = msg;
  if (m->seq <= st->last_seq[m->thread]) atomic_fetch_add(&g_violations, 1);
  st->last_seq[m->thread] = m->seq;
  atomic_fetch_add(&g_delivered, 1);
  return LARIAT_OK;
}

static void t_terminate(lariat_conn *conn, const lariat_reason *reason,
                        void *state) {
  (void)conn;
  (void)reason;
  free(state);
  atomic_fetch_add(&g_terminates, 1);
}

static const lariat_handler kHandler = {.size = sizeof(lariat_handler),
                                        .init = t_init,
                                        .websocket_handle = t_handle,
                                        .websocket_info = t_info,
                                        .terminate = t_terminate};

typedef th_running running;

static void on_stopped(lariat_server *server, void *data) {
  (void)server;
  (void)data;
  atomic_fetch_add(&g_stopped, 1);
}

static void start(running *r, unsigned threads, size_t max_connections) {
  lariat_options *opts;
  assert_int_equal(lariat_options_new(&opts), 0);
  assert_int_equal(lariat_options_set_threads(opts, threads), 0);
  if (max_connections)
    assert_int_equal(lariat_options_set_max_connections(opts, max_connections), 0);
  lariat_server *s;
  assert_int_equal(lariat_server_new(&s, NULL, opts), 0);
  lariat_options_del(opts);
  assert_int_equal(lariat_server_route(s, "/t", &kHandler, NULL), 0);
  assert_int_equal(lariat_server_listen(s, "127.0.0.1", 0), 0);
  assert_int_equal(lariat_server_on_stopped(s, on_stopped, NULL), 0);
  memset(r, 0, sizeof *r);
  th_run(r, s);
  assert_true(r->port > 0);
}

static void stop(running *r) { th_join(r); }

static void reset_counters(void) {
  atomic_store(&g_delivered, 0);
  atomic_store(&g_violations, 0);
  atomic_store(&g_terminates, 0);
  atomic_store(&g_stopped, 0);
}

/* Waits (bounded) until *counter reaches n. */
static int wait_for(atomic_long *counter, long n, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 5) {
    if (atomic_load(counter) >= n) return 0;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return atomic_load(counter) >= n ? 0 : -1;
}

static lariat_conn_id open_path(wsc *c, int port, const char *path) {
  assert_int_equal(wsc_connect(c, "127.0.0.1", port, 2000), 0);
  assert_int_equal(wsc_handshake(c, path, NULL, NULL, 2000), 101);
  assert_int_equal(wsc_send_text(c, "!id"), 0);
  wsc_frame f;
  assert_int_equal(wsc_recv_message(c, &f, 5000), 1);
  lariat_conn_id id = strtoull((const char *)f.payload, NULL, 10);
  wsc_frame_free(&f);
  return id;
}

static lariat_conn_id open_with_id(wsc *c, int port) {
  return open_path(c, port, "/t");
}

static void subscribe(wsc *c) {
  assert_int_equal(wsc_send_text(c, "!sub"), 0);
  wsc_frame f;
  assert_int_equal(wsc_recv_message(c, &f, 5000), 1);
  wsc_frame_free(&f);
}

/* ---------------------------------------------------- balance, posts */

#define CONNS 2000
#define POSTS_PER_THREAD 10000

typedef struct poster {
  lariat_server *server;
  const lariat_conn_id *ids;
  int thread;
} poster;

static void free_msg(void *m) { free(m); }

static void post_all(void *arg) {
  poster *p = arg;
  for (int seq = 0; seq < POSTS_PER_THREAD; ++seq) {
    post_msg *m = malloc(sizeof *m);
    m->thread = p->thread;
    m->seq = seq;
    /* Each thread walks the connections from its own offset. */
    lariat_conn_id id = p->ids[(seq + p->thread * 97) % CONNS];
    if (lariat_post(p->server, id, m, free_msg) != 0) abort();
  }
}

static void test_two_loops_balance_and_route_posts_in_order(void **unused) {
  (void)unused;
  reset_counters();
  running r;
  start(&r, 2, 0);
  static wsc clients[CONNS];
  static lariat_conn_id ids[CONNS];
  int per_loop[2] = {0, 0};
  for (int i = 0; i < CONNS; ++i) {
    ids[i] = open_with_id(&clients[i], r.port);
    assert_true((ids[i] & 0xff) < 2);
    per_loop[ids[i] & 0xff]++;
  }
  print_message("connections per loop: %d / %d (of %d)\n", per_loop[0],
                per_loop[1], CONNS);
  /* SO_REUSEPORT hashes each connection's addresses: no loop is starved. */
  assert_true(per_loop[0] > CONNS / 4 && per_loop[1] > CONNS / 4);
  assert_int_equal(lariat_server_connection_count(r.server), CONNS);

  poster posters[POSTERS];
  uv_thread_t threads[POSTERS];
  for (int t = 0; t < POSTERS; ++t) {
    posters[t] = (poster){r.server, ids, t};
    assert_int_equal(uv_thread_create(&threads[t], post_all, &posters[t]), 0);
  }
  for (int t = 0; t < POSTERS; ++t) uv_thread_join(&threads[t]);
  assert_int_equal(wait_for(&g_delivered, (long)POSTERS * POSTS_PER_THREAD, 30000), 0);
  assert_int_equal(atomic_load(&g_violations), 0);

  /* Stop from this (foreign) thread: every client gets 1001, every
   * terminate runs, both loops' threads end. */
  assert_int_equal(lariat_server_stop_async(r.server), 0);
  for (int i = 0; i < CONNS; ++i) {
    assert_int_equal(wsc_expect_close(&clients[i], 1001, 5000), 0);
    wsc_send_close(&clients[i], 1001, NULL, 0);
  }
  assert_int_equal(uv_thread_join(&r.thread), 0);
  assert_int_equal(atomic_load(&g_terminates), CONNS);
  assert_int_equal(atomic_load(&g_stopped), 1);
  lariat_server_del(r.server);
  for (int i = 0; i < CONNS; ++i) wsc_close(&clients[i]);
}

/* ------------------------------------------------------------ topics */

#define SUBSCRIBERS 10000
#define CLIENT_PROCESSES 2 /* each holds its share of the client sockets */
#define PUBLISHES 100

/* One client process: its share of the subscribers connect and subscribe,
 * it says so on |ready|, then every one must read the PUBLISHES messages
 * in order. Exits 0, or the step that failed (no cmocka in a child). */
static void subscriber_process(int port_fd, int ready_fd, int share) {
  int port;
  if (read(port_fd, &port, sizeof port) != sizeof port) _exit(10);
  wsc *clients = calloc((size_t)share, sizeof *clients);
  if (!clients) _exit(11);
  for (int i = 0; i < share; ++i) {
    wsc_frame f;
    if (wsc_connect(&clients[i], "127.0.0.1", port, 5000) != 0) _exit(12);
    if (wsc_handshake(&clients[i], "/t", NULL, NULL, 5000) != 101) _exit(13);
    if (wsc_send_text(&clients[i], "!sub") != 0) _exit(14);
    if (wsc_recv_message(&clients[i], &f, 5000) != 1) _exit(15);
    wsc_frame_free(&f);
  }
  char one = 1;
  if (write(ready_fd, &one, 1) != 1) _exit(16);
  for (int i = 0; i < share; ++i) {
    for (int n = 0; n < PUBLISHES; ++n) {
      wsc_frame f;
      char expected[16];
      snprintf(expected, sizeof expected, "%d", n);
      if (wsc_recv_message(&clients[i], &f, 10000) != 1) _exit(17);
      int same = f.len == strlen(expected) &&
                 memcmp(f.payload, expected, f.len) == 0;
      wsc_frame_free(&f);
      if (!same) _exit(18);
    }
  }
  for (int i = 0; i < share; ++i) wsc_close(&clients[i]);
  free(clients);
  _exit(0);
}

/* 10,000 subscribers over loopback on 2 loops, 100 publishes from this
 * thread: each subscriber gets all 100, in order. The client sockets live
 * in child processes (forked before the server's threads exist), so this
 * process holds only the server's 10,000. */
static void test_publish_reaches_subscribers_on_every_loop(void **unused) {
  (void)unused;
  struct rlimit lim;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_cur < SUBSCRIBERS + 256 && lim.rlim_max >= SUBSCRIBERS + 256) {
    lim.rlim_cur = lim.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
  }
  if (lim.rlim_cur < SUBSCRIBERS + 256)
    fail_msg("this test needs %d descriptors; the limit is %llu",
             SUBSCRIBERS + 256, (unsigned long long)lim.rlim_cur);
  reset_counters();
  int port_pipe[2], ready_pipe[2];
  assert_int_equal(pipe(port_pipe), 0);
  assert_int_equal(pipe(ready_pipe), 0);
  pid_t children[CLIENT_PROCESSES];
  for (int k = 0; k < CLIENT_PROCESSES; ++k) {
    children[k] = fork();
    assert_true(children[k] >= 0);
    if (children[k] == 0)
      subscriber_process(port_pipe[0], ready_pipe[1],
                         SUBSCRIBERS / CLIENT_PROCESSES);
  }
  running r;
  start(&r, 2, 0);
  for (int k = 0; k < CLIENT_PROCESSES; ++k)
    assert_int_equal(write(port_pipe[1], &r.port, sizeof r.port),
                     (ssize_t)sizeof r.port);
  for (int k = 0; k < CLIENT_PROCESSES; ++k) {
    char one;
    assert_int_equal(read(ready_pipe[0], &one, 1), 1);
  }
  for (int n = 0; n < PUBLISHES; ++n) {
    char text[16];
    snprintf(text, sizeof text, "%d", n);
    lariat_frame f = {.opcode = LARIAT_OP_TEXT,
                      .data = (const uint8_t *)text,
                      .len = strlen(text)};
    assert_int_equal(lariat_publish(r.server, kRoom, sizeof kRoom - 1, &f), 0);
  }
  for (int k = 0; k < CLIENT_PROCESSES; ++k) {
    int status = -1;
    assert_int_equal(waitpid(children[k], &status, 0), children[k]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  assert_int_equal(wait_for(&g_terminates, SUBSCRIBERS, 20000), 0);
  stop(&r);
  close(port_pipe[0]);
  close(port_pipe[1]);
  close(ready_pipe[0]);
  close(ready_pipe[1]);
}

#define CYCLES 10000

/* 10,000 connect / subscribe / disconnect cycles over loopback on 2
 * loops: afterwards neither loop has a subscriber left (the core test
 * checks that the topic tables themselves are empty). */
static void test_subscribe_disconnect_cycles_leave_no_subscriber(void **unused) {
  (void)unused;
  reset_counters();
  running r;
  start(&r, 2, 0);
  for (int i = 0; i < CYCLES; ++i) {
    wsc c;
    open_with_id(&c, r.port);
    subscribe(&c);
    wsc_close(&c);
  }
  assert_int_equal(wait_for(&g_terminates, CYCLES, 20000), 0);
  /* One probe on each loop asks for its loop's count. */
  wsc probes[2];
  int found = 0, have[2] = {0, 0};
  for (int tries = 0; found < 2 && tries < 200; ++tries) {
    wsc c;
    lariat_conn_id id = open_with_id(&c, r.port);
    int loop = (int)(id & 0xff);
    if (have[loop]) {
      wsc_close(&c);
      continue;
    }
    have[loop] = 1;
    probes[found++] = c;
  }
  assert_int_equal(found, 2);
  for (int k = 0; k < 2; ++k) {
    wsc_frame f;
    assert_int_equal(wsc_send_text(&probes[k], "!count"), 0);
    assert_int_equal(wsc_recv_message(&probes[k], &f, 5000), 1);
    assert_int_equal(f.len, 1);
    assert_memory_equal(f.payload, "0", 1);
    wsc_frame_free(&f);
    wsc_close(&probes[k]);
  }
  stop(&r);
}

/* 4 threads x 100,000 publishes to one topic: every subscriber, on
 * either loop, gets all 400,000, each thread's in its order. */
#define PUB_THREADS 4
#define PUBS_PER_THREAD 100000

typedef struct publisher {
  lariat_server *server;
  int thread;
} publisher;

static void publish_all(void *arg) {
  publisher *p = arg;
  for (int seq = 0; seq < PUBS_PER_THREAD; ++seq) {
    char text[24];
    int n = snprintf(text, sizeof text, "%d:%d", p->thread, seq);
    lariat_frame f = {.opcode = LARIAT_OP_TEXT,
                      .data = (const uint8_t *)text,
                      .len = (size_t)n};
    if (lariat_publish(p->server, kRoom, sizeof kRoom - 1, &f) != 0) abort();
  }
}

static void test_publishers_on_threads_keep_their_order(void **unused) {
  (void)unused;
  reset_counters();
  running r;
  start(&r, 2, 0);
  enum { kSubs = 4 };
  wsc clients[kSubs];
  for (int i = 0; i < kSubs; ++i) {
    open_path(&clients[i], r.port, "/t?unlimited");
    subscribe(&clients[i]);
  }
  publisher pubs[PUB_THREADS];
  uv_thread_t threads[PUB_THREADS];
  for (int t = 0; t < PUB_THREADS; ++t) {
    pubs[t] = (publisher){r.server, t};
    assert_int_equal(uv_thread_create(&threads[t], publish_all, &pubs[t]), 0);
  }
  for (int t = 0; t < PUB_THREADS; ++t) uv_thread_join(&threads[t]);
  for (int i = 0; i < kSubs; ++i) {
    int next[PUB_THREADS] = {0};
    for (long n = 0; n < (long)PUB_THREADS * PUBS_PER_THREAD; ++n) {
      wsc_frame f;
      assert_int_equal(wsc_recv_message(&clients[i], &f, 10000), 1);
      int thread = -1, seq = -1;
      char text[24] = {0};
      memcpy(text, f.payload, f.len < 23 ? f.len : 23);
      assert_int_equal(sscanf(text, "%d:%d", &thread, &seq), 2);
      assert_true(thread >= 0 && thread < PUB_THREADS);
      assert_int_equal(seq, next[thread]);
      next[thread]++;
      wsc_frame_free(&f);
    }
    wsc_close(&clients[i]);
  }
  stop(&r);
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  if (f) fclose(f);
  return kib;
}

/* One subscriber stops reading while 50 MB is published: its deliveries
 * past its 1 MiB cap are dropped and counted, the other one gets every
 * message, and the server's memory stays bounded by the caps. */
static void test_a_stalled_subscriber_drops_and_delays_nobody(void **unused) {
  (void)unused;
  reset_counters();
  running r;
  start(&r, 2, 0);
  wsc stalled, reader;
  open_path(&stalled, r.port, "/t?refuse");
  subscribe(&stalled);
  open_path(&reader, r.port, "/t?unlimited");
  subscribe(&reader);
  static char payload[1024];
  memset(payload, 'm', sizeof payload);
  long before = rss_kib();
  enum { kMessages = 50 * 1024 };  /* 50 MiB */
  for (int n = 0; n < kMessages; ++n) {
    memcpy(payload, &n, sizeof n);
    lariat_frame f = {.opcode = LARIAT_OP_BINARY,
                      .data = (const uint8_t *)payload,
                      .len = sizeof payload};
    assert_int_equal(lariat_publish(r.server, kRoom, sizeof kRoom - 1, &f), 0);
    /* Read as we go, so only the stalled one's queue can grow. */
    if (n % 64 == 63) {
      for (int k = n - 63; k <= n; ++k) {
        wsc_frame m;
        assert_int_equal(wsc_recv_message(&reader, &m, 10000), 1);
        int got;
        memcpy(&got, m.payload, sizeof got);
        assert_int_equal(got, k);
        wsc_frame_free(&m);
      }
    }
  }
  long grown = rss_kib() - before;
  print_message("RSS growth while 50 MiB was published: %ld KiB\n", grown);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  /* Sanitizers keep freed memory in quarantine, so RSS says nothing about
   * the server there; the release build holds the bound. */
  assert_true(grown < 40 * 1024);
#endif
  /* The stalled one reads again: what it got is a prefix of the stream
   * up to its cap, the rest was dropped and counted. */
  long received = 0;
  for (;;) {
    wsc_frame m;
    int rc = wsc_recv_message(&stalled, &m, 500);
    if (rc != 1) break;
    wsc_frame_free(&m);
    received++;
  }
  assert_true(received > 0 && received < kMessages);
  assert_int_equal(wsc_send_text(&stalled, "!dropped"), 0);
  wsc_frame m;
  assert_int_equal(wsc_recv_message(&stalled, &m, 5000), 1);
  long dropped = strtol((const char *)m.payload, NULL, 10);
  wsc_frame_free(&m);
  print_message("stalled subscriber: %ld received, %ld dropped\n", received,
                dropped);
  assert_int_equal(received + dropped, kMessages);
  wsc_close(&stalled);
  wsc_close(&reader);
  stop(&r);
}

/* ------------------------------------------------- limits, the port */

static void test_connection_limit_holds_across_loops(void **unused) {
  (void)unused;
  reset_counters();
  running r;
  start(&r, 2, 10);
  static wsc clients[12];
  int upgraded = 0, refused = 0;
  for (int i = 0; i < 12; ++i) {
    assert_int_equal(wsc_connect(&clients[i], "127.0.0.1", r.port, 2000), 0);
    int status = wsc_handshake(&clients[i], "/t", NULL, NULL, 2000);
    if (status == 101) upgraded++;
    if (status == 503) refused++;
  }
  assert_int_equal(upgraded, 10);
  assert_int_equal(refused, 2);
  for (int i = 0; i < 12; ++i) wsc_close(&clients[i]);
  assert_int_equal(wait_for(&g_terminates, 10, 10000), 0);
  stop(&r);
}

static void test_a_second_server_cannot_share_the_port(void **unused) {
  (void)unused;
  reset_counters();
  running r;
  start(&r, 2, 0);
  for (unsigned threads = 1; threads <= 2; ++threads) {
    lariat_options *opts;
    lariat_server *other;
    assert_int_equal(lariat_options_new(&opts), 0);
    assert_int_equal(lariat_options_set_threads(opts, threads), 0);
    assert_int_equal(lariat_server_new(&other, NULL, opts), 0);
    lariat_options_del(opts);
    assert_int_equal(lariat_server_listen(other, "127.0.0.1", r.port),
                     UV_EADDRINUSE);
    lariat_server_del(other);
  }
  assert_int_equal(lariat_options_set_threads(NULL, 2),
                   LARIAT_ERR_INVALID_ARGUMENT);
  uv_loop_t loop;
  lariat_options *opts;
  lariat_server *embedded = NULL;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(lariat_options_new(&opts), 0);
  assert_int_equal(lariat_options_set_threads(opts, 2), 0);
  /* Several loops cannot live on one caller's loop. */
  assert_int_equal(lariat_server_new(&embedded, &loop, opts),
                   LARIAT_ERR_INVALID_ARGUMENT);
  lariat_options_del(opts);
  assert_int_equal(uv_loop_close(&loop), 0);
  stop(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_loops_balance_and_route_posts_in_order),
      cmocka_unit_test(test_publish_reaches_subscribers_on_every_loop),
      cmocka_unit_test(test_subscribe_disconnect_cycles_leave_no_subscriber),
      cmocka_unit_test(test_publishers_on_threads_keep_their_order),
      cmocka_unit_test(test_a_stalled_subscriber_drops_and_delays_nobody),
      cmocka_unit_test(test_connection_limit_holds_across_loops),
      cmocka_unit_test(test_a_second_server_cannot_share_the_port),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
