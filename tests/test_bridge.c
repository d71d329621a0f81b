/* The Redis bridge across real processes: each test starts its own
 * redis-server on a free 127.0.0.1 port and two or three bridge_node
 * processes (tests/bridge_node.c), and stops them all. Exactly-once and
 * per-publisher order in a fleet of two and of three (with two loops per
 * process), Redis killed and restarted mid-stream, the subscriber
 * connection killed, Redis down at start (refused, and a listener that
 * never answers), 1,000 topics subscribed and released, Redis' output
 * buffer limit, and a foreign publisher writing the wire format. A node
 * exits 0 only after a clean stop (and, in the sanitizer build, without
 * a leak report). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fleet.h"
#include "harness.h"
#include "wsclient.h"

static const char *g_node_exe, *g_echo_exe;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *g_redis_host = "127.0.0.1";

static void start_node(fleet_node *n, int redis_port, const char *threads,
                       const char *timeouts) {
  char url[64];
  snprintf(url, sizeof url, "redis://%s:%d/0", g_redis_host, redis_port);
  const char *argv[] = {g_node_exe, url,          "--threads", threads,
                        "--timeouts", timeouts,   "--backoff", "50,400",
                        "--linger",  "200",       NULL};
  assert_int_equal(fleet_node_start(n, g_node_exe, argv), 0);
}

static void wait_up(fleet_node *n, int times) {
  if (!fleet_node_wait_count(n, "up 0", times, 5000) ||
      !fleet_node_wait_count(n, "up 1", times, 5000))
    fail_msg("bridge not up (%d): %s", times, n->log ? n->log : "");
}

static void ws_open(wsc *c, int port, const char *path) {
  assert_int_equal(wsc_connect(c, "127.0.0.1", port, 2000), 0);
  assert_int_equal(wsc_handshake(c, path, NULL, NULL, 2000), 101);
}

static long long numsub(int redis_port, const char *channel) {
  fleet_reply r;
  const char *argv[] = {"PUBSUB", "NUMSUB", channel};
  if (fleet_redis_cmd(redis_port, &r, 3, argv, NULL) != 0) return -1;
  return r.ints[0];
}

static void wait_numsub(int redis_port, const char *channel, long long want) {
  long long until = now_ms() + 5000, got = -1;
  while (now_ms() < until) {
    got = numsub(redis_port, channel);
    if (got == want) return;
    usleep(20000);
  }
  fail_msg("%s: %lld subscribers, not %lld", channel, got, want);
}

static long long channel_count(int redis_port, const char *pattern) {
  fleet_reply r;
  const char *argv[] = {"PUBSUB", "CHANNELS", pattern};
  if (fleet_redis_cmd(redis_port, &r, 3, argv, NULL) != 0) return -1;
  return r.count;
}

/* Reads the next text message: "P<publisher>-<seq>". */
static int next_msg(wsc *c, int *publisher, int *seq, int timeout_ms) {
  wsc_frame f;
  int rc = wsc_recv_message(c, &f, timeout_ms);
  if (rc != 1) return rc;
  int ok = sscanf((const char *)f.payload, "P%d-%d", publisher, seq) == 2;
  wsc_frame_free(&f);
  return ok ? 1 : -1;
}

static void send_msg(wsc *c, int publisher, int seq) {
  char text[32];
  snprintf(text, sizeof text, "P%d-%d", publisher, seq);
  assert_int_equal(wsc_send_text(c, text), 0);
}

/* The node's /stats line, parsed for one counter. */
static long long stat_of(int port, const char *name) {
  wsc c;
  ws_open(&c, port, "/stats");
  assert_int_equal(wsc_send_text(&c, "?"), 0);
  wsc_frame f;
  assert_int_equal(wsc_recv_message(&c, &f, 5000), 1);
  char key[40];
  snprintf(key, sizeof key, "%s ", name);
  const char *at = strstr((const char *)f.payload, key);
  long long v = at ? atoll(at + strlen(key)) : -1;
  wsc_frame_free(&f);
  wsc_close(&c);
  return v;
}

/* ------------------------------------------------------------ a fleet */

#define PER_PUBLISHER 300
#define MAX_NODES 3

static void fleet_exactly_once(int nodes, const char *threads) {
  fleet_redis redis;
  assert_int_equal(fleet_redis_start(&redis, fleet_free_port()), 0);
  fleet_node node[MAX_NODES];
  wsc sub[MAX_NODES][2], pub[MAX_NODES];
  for (int i = 0; i < nodes; ++i) start_node(&node[i], redis.port, threads, "1000,3000");
  for (int i = 0; i < nodes; ++i) {
    wait_up(&node[i], 1);
    ws_open(&sub[i][0], node[i].port, "/t/room");
    ws_open(&sub[i][1], node[i].port, "/t/room");
    ws_open(&pub[i], node[i].port, "/pub/room");
  }
  wait_numsub(redis.port, "test:room", nodes);
  /* One subscriber and one publisher connection per process, whatever
   * its loops: Redis sees two per node (and this query). */
  fleet_reply info;
  const char *info_argv[] = {"INFO", "clients"};
  assert_int_equal(fleet_redis_cmd(redis.port, &info, 2, info_argv, NULL), 0);
  const char *cc = strstr(info.text, "connected_clients:");
  assert_non_null(cc);
  TH_EQ(atoi(cc + strlen("connected_clients:")), 2 * nodes + 1);
  for (int s = 0; s < PER_PUBLISHER; ++s)
    for (int i = 0; i < nodes; ++i) send_msg(&pub[i], i, s);
  for (int i = 0; i < nodes; ++i) {
    for (int k = 0; k < 2; ++k) {
      int next[MAX_NODES] = {0};
      for (int m = 0; m < nodes * PER_PUBLISHER; ++m) {
        int p, seq;
        if (next_msg(&sub[i][k], &p, &seq, 10000) != 1)
          fail_msg("node %d sub %d: message %d of %d missing", i, k, m,
                   nodes * PER_PUBLISHER);
        assert_true(p >= 0 && p < nodes);
        if (seq != next[p])
          fail_msg("node %d sub %d: publisher %d sent %d, expected %d", i, k,
                   p, seq, next[p]);
        ++next[p];
      }
      int p, seq;  /* nothing twice */
      assert_int_not_equal(next_msg(&sub[i][k], &p, &seq, 300), 1);
    }
  }
  for (int i = 0; i < nodes; ++i) {
    TH_EQ(stat_of(node[i].port, "gaps"), 0);
    TH_EQ(stat_of(node[i].port, "received"), (nodes - 1) * PER_PUBLISHER);
    TH_EQ(stat_of(node[i].port, "own"), PER_PUBLISHER);
  }
  for (int i = 0; i < nodes; ++i) {
    wsc_close(&sub[i][0]);
    wsc_close(&sub[i][1]);
    wsc_close(&pub[i]);
    TH_EQ(fleet_node_stop(&node[i]), 0);
  }
  fleet_redis_stop(&redis, SIGTERM);
}

static void test_fleet_of_two(void **state) {
  (void)state;
  fleet_exactly_once(2, "1");
}

static void test_fleet_of_three_with_two_loops(void **state) {
  (void)state;
  fleet_exactly_once(3, "2");
}

/* The same through "localhost", resolved with uv_getaddrinfo. */
static void test_fleet_by_name(void **state) {
  (void)state;
  g_redis_host = "localhost";
  fleet_exactly_once(2, "1");
  g_redis_host = "127.0.0.1";
}

/* ------------------------------------------------------------- faults */

static void test_redis_killed_and_restarted(void **state) {
  (void)state;
  fleet_redis redis;
  int port = fleet_free_port();
  assert_int_equal(fleet_redis_start(&redis, port), 0);
  fleet_node a, b;
  start_node(&a, port, "1", "1000,1000");
  start_node(&b, port, "1", "1000,1000");
  wait_up(&a, 1);
  wait_up(&b, 1);
  wsc sa, sb, pa;
  ws_open(&sa, a.port, "/t/s");
  ws_open(&sb, b.port, "/t/s");
  ws_open(&pa, a.port, "/pub/s");
  wait_numsub(port, "test:s", 2);
  int p, seq;
  for (int s = 0; s < 50; ++s) send_msg(&pa, 0, s);
  for (int s = 0; s < 50; ++s) {
    assert_int_equal(next_msg(&sa, &p, &seq, 5000), 1);
    TH_EQ(seq, s);
    assert_int_equal(next_msg(&sb, &p, &seq, 5000), 1);
    TH_EQ(seq, s);
  }
  /* Redis dies: local delivery goes on. */
  fleet_redis_stop(&redis, SIGKILL);
  assert_true(fleet_node_wait_count(&a, "down 1", 1, 3000));
  for (int s = 50; s < 100; ++s) send_msg(&pa, 0, s);
  for (int s = 50; s < 100; ++s) {
    assert_int_equal(next_msg(&sa, &p, &seq, 5000), 1);
    TH_EQ(seq, s);
  }
  assert_true(fleet_node_wait_count(&b, "down 0", 1, 3000));
  usleep(300000);
  long long restarted = now_ms();
  assert_int_equal(fleet_redis_start(&redis, port), 0);
  wait_up(&a, 2);
  wait_up(&b, 2);
  long long back = now_ms() - restarted;
  fprintf(stderr, "bridge back %lld ms after the restart\n", back);
  assert_true(back <= 5000);
  wait_numsub(port, "test:s", 2);
  for (int s = 100; s < 150; ++s) send_msg(&pa, 0, s);
  for (int s = 100; s < 150; ++s) {
    assert_int_equal(next_msg(&sa, &p, &seq, 5000), 1);
    TH_EQ(seq, s);
  }
  /* b missed 50..99: it says so before 100 arrives. */
  for (int s = 100; s < 150; ++s) {
    assert_int_equal(next_msg(&sb, &p, &seq, 5000), 1);
    TH_EQ(seq, s);
  }
  assert_true(fleet_node_wait_count(&b, "gap s ", 1, 1000));
  assert_true(stat_of(b.port, "missed") >= 50);
  assert_true(stat_of(b.port, "faults") >= 1);
  assert_true(stat_of(b.port, "reconnects") >= 1);
  assert_true(stat_of(a.port, "failed") >= 50);
  wsc_close(&sa);
  wsc_close(&sb);
  wsc_close(&pa);
  TH_EQ(fleet_node_stop(&a), 0);
  TH_EQ(fleet_node_stop(&b), 0);
  fleet_redis_stop(&redis, SIGTERM);
}

static void test_subscriber_connection_killed(void **state) {
  (void)state;
  fleet_redis redis;
  assert_int_equal(fleet_redis_start(&redis, fleet_free_port()), 0);
  fleet_node a, b;
  start_node(&a, redis.port, "1", "1000,1000");
  start_node(&b, redis.port, "1", "1000,1000");
  wait_up(&a, 1);
  wait_up(&b, 1);
  wsc sa, sb, pa;
  ws_open(&sa, a.port, "/t/k");
  ws_open(&sb, b.port, "/t/k");
  ws_open(&pa, a.port, "/pub/k");
  wait_numsub(redis.port, "test:k", 2);
  fleet_reply r;
  const char *kill_argv[] = {"CLIENT", "KILL", "TYPE", "pubsub"};
  assert_int_equal(fleet_redis_cmd(redis.port, &r, 4, kill_argv, NULL), 0);
  TH_EQ(r.integer, 2);
  assert_true(fleet_node_wait_count(&b, "down 0", 1, 3000));
  assert_true(fleet_node_wait_count(&b, "up 0", 2, 5000));
  assert_true(fleet_node_wait_count(&a, "up 0", 2, 5000));
  wait_numsub(redis.port, "test:k", 2);
  send_msg(&pa, 0, 7);
  int p, seq;
  assert_int_equal(next_msg(&sa, &p, &seq, 5000), 1);
  TH_EQ(seq, 7);
  assert_int_equal(next_msg(&sb, &p, &seq, 5000), 1);
  TH_EQ(seq, 7);
  TH_EQ(stat_of(b.port, "reconnects"), 1);
  wsc_close(&sa);
  wsc_close(&sb);
  wsc_close(&pa);
  TH_EQ(fleet_node_stop(&a), 0);
  TH_EQ(fleet_node_stop(&b), 0);
  fleet_redis_stop(&redis, SIGTERM);
}

/* Local topics work while the bridge cannot reach Redis. */
static void local_round_trip(fleet_node *n) {
  wsc s, p;
  ws_open(&s, n->port, "/t/local");
  ws_open(&p, n->port, "/pub/local");
  send_msg(&p, 0, 1);
  int pub, seq;
  assert_int_equal(next_msg(&s, &pub, &seq, 5000), 1);
  TH_EQ(seq, 1);
  wsc_close(&s);
  wsc_close(&p);
}

static void test_redis_down_at_start(void **state) {
  (void)state;
  int port = fleet_free_port();  /* nothing listens: refused */
  long long started = now_ms();
  fleet_node n;
  start_node(&n, port, "1", "1000,1000");
  assert_true(fleet_node_wait_count(&n, "down 0 ECONNREFUSED", 1, 1500));
  assert_true(fleet_node_wait_count(&n, "down 1 ECONNREFUSED", 1, 1500));
  fprintf(stderr, "refused reported after %lld ms\n", now_ms() - started);
  local_round_trip(&n);
  TH_EQ(stat_of(n.port, "connected"), 0);
  /* Redis comes up later: the bridge joins it. */
  fleet_redis redis;
  assert_int_equal(fleet_redis_start(&redis, port), 0);
  wait_up(&n, 1);
  TH_EQ(fleet_node_stop(&n), 0);
  fleet_redis_stop(&redis, SIGTERM);
}

static void test_redis_that_never_answers(void **state) {
  (void)state;
  /* The kernel completes the TCP handshake; nobody ever reads. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 16), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  long long started = now_ms();
  fleet_node n;
  start_node(&n, ntohs(a.sin_port), "1", "1000,1000");
  assert_true(fleet_node_wait_count(&n, "down 0 ETIMEDOUT", 1, 2500));
  long long took = now_ms() - started;
  fprintf(stderr, "silent Redis reported after %lld ms\n", took);
  assert_true(took >= 900);
  local_round_trip(&n);
  TH_EQ(fleet_node_stop(&n), 0);
  close(fd);
}

/* A fake Redis: answers the handshake's PING of both connections, then
 * resets them (SO_LINGER 0). libuv reports the reset as POLLERR and stops
 * its watcher; hiredis' bundled adapter would drop that status, so the
 * bridge would never learn (hiredis #240, #450, #508). */
typedef struct resetter {
  int listener;
} resetter;

static void *reset_both(void *arg) {
  resetter *r = arg;
  int fds[2];
  for (int i = 0; i < 2; ++i) {
    fds[i] = accept(r->listener, NULL, NULL);
    if (fds[i] < 0) return NULL;
  }
  for (int i = 0; i < 2; ++i) {
    char buf[256];
    struct pollfd p = {.fd = fds[i], .events = POLLIN};
    if (poll(&p, 1, 3000) == 1 && recv(fds[i], buf, sizeof buf, 0) > 0)
      send(fds[i], "+PONG\r\n", 7, MSG_NOSIGNAL);
  }
  usleep(300000);
  for (int i = 0; i < 2; ++i) {
    struct linger l = {1, 0};
    setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fds[i]);
  }
  return NULL;
}

static void test_reset_connection_is_reported(void **state) {
  (void)state;
  resetter r;
  r.listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  assert_int_equal(bind(r.listener, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(r.listener, 16), 0);
  assert_int_equal(getsockname(r.listener, (struct sockaddr *)&a, &len), 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, reset_both, &r), 0);
  fleet_node n;
  start_node(&n, ntohs(a.sin_port), "1", "2000,2000");
  wait_up(&n, 1);
  if (!fleet_node_wait_count(&n, "down 0 ECONNRESET", 1, 3000) ||
      !fleet_node_wait_count(&n, "down 1 ECONNRESET", 1, 3000))
    fail_msg("reset not reported: %s", n.log);
  pthread_join(t, NULL);
  local_round_trip(&n);
  TH_EQ(fleet_node_stop(&n), 0);
  close(r.listener);
}

/* AUTH and SELECT from the URL; a wrong password is a fault with Redis'
 * own words, retried like any other. */
static void test_password_and_database(void **state) {
  (void)state;
  fleet_redis redis;
  assert_int_equal(fleet_redis_start(&redis, fleet_free_port()), 0);
  fleet_reply r;
  const char *pass[] = {"CONFIG", "SET", "requirepass", "s3cret"};
  assert_int_equal(fleet_redis_cmd(redis.port, &r, 4, pass, NULL), 0);
  TH_EQ(r.type, '+');
  char good[80], bad[80];
  snprintf(good, sizeof good, "redis://:s3cret@127.0.0.1:%d/3", redis.port);
  snprintf(bad, sizeof bad, "redis://:wrong@127.0.0.1:%d/3", redis.port);
  fleet_node a, b;
  const char *argv_a[] = {g_node_exe, good, "--backoff", "50,400", NULL};
  const char *argv_b[] = {g_node_exe, bad, "--backoff", "50,400", NULL};
  assert_int_equal(fleet_node_start(&a, g_node_exe, argv_a), 0);
  assert_int_equal(fleet_node_start(&b, g_node_exe, argv_b), 0);
  wait_up(&a, 1);
  if (!fleet_node_wait_count(&b, "down 0 LARIAT_ERR_REDIS", 1, 3000))
    fail_msg("wrong password not reported: %s", b.log);
  assert_true(strstr(b.log, "WRONGPASS") || strstr(b.log, "invalid"));
  TH_EQ(fleet_node_count(&b, "up "), 0);
  local_round_trip(&a);
  TH_EQ(fleet_node_stop(&a), 0);
  TH_EQ(fleet_node_stop(&b), 0);
  fleet_redis_stop(&redis, SIGTERM);
}

static void test_thousand_topics_released(void **state) {
  (void)state;
  fleet_redis redis;
  assert_int_equal(fleet_redis_start(&redis, fleet_free_port()), 0);
  fleet_node n;
  start_node(&n, redis.port, "1", "1000,3000");
  wait_up(&n, 1);
  wsc c;
  ws_open(&c, n.port, "/many/1000");
  long long until = now_ms() + 5000;
  while (channel_count(redis.port, "test:many:*") != 1000 && now_ms() < until)
    usleep(20000);
  TH_EQ(channel_count(redis.port, "test:many:*"), 1000);
  TH_EQ(stat_of(n.port, "channels"), 1000);
  wsc_close(&c);
  until = now_ms() + 5000;
  while (channel_count(redis.port, "*") != 0 && now_ms() < until) usleep(20000);
  TH_EQ(channel_count(redis.port, "*"), 0);
  TH_EQ(stat_of(n.port, "channels"), 0);
  TH_EQ(fleet_node_stop(&n), 0);
  fleet_redis_stop(&redis, SIGTERM);
}

/* A foreign program's message in the documented format. */
static int publish_wire(int redis_port, const char *channel, uint64_t origin,
                        uint64_t seq, const char *text) {
  static uint8_t msg[24 + 16384] = {1, 1};
  size_t n = strlen(text);
  for (int i = 0; i < 8; ++i) {
    msg[8 + i] = (uint8_t)(origin >> (56 - 8 * i));
    msg[16 + i] = (uint8_t)(seq >> (56 - 8 * i));
  }
  memcpy(msg + 24, text, n);
  const char *argv[] = {"PUBLISH", channel, (const char *)msg};
  size_t lens[] = {7, strlen(channel), 24 + n};
  fleet_reply r;
  return fleet_redis_cmd(redis_port, &r, 3, argv, lens);
}

static void test_output_buffer_limit_is_a_fault(void **state) {
  (void)state;
  fleet_redis redis;
  assert_int_equal(fleet_redis_start(&redis, fleet_free_port()), 0);
  fleet_reply r;
  const char *limit[] = {"CONFIG", "SET", "client-output-buffer-limit",
                         "pubsub 128kb 64kb 1"};
  assert_int_equal(fleet_redis_cmd(redis.port, &r, 4, limit, NULL), 0);
  TH_EQ(r.type, '+');
  fleet_node n;
  start_node(&n, redis.port, "1", "1000,3000");
  wait_up(&n, 1);
  wsc s, block;
  ws_open(&s, n.port, "/t/flood");
  ws_open(&block, n.port, "/block/2000");
  wait_numsub(redis.port, "test:flood", 1);
  assert_int_equal(publish_wire(redis.port, "test:flood", 77, 1, "P9-1"), 0);
  int p, seq;
  assert_int_equal(next_msg(&s, &p, &seq, 5000), 1);
  TH_EQ(seq, 1);
  /* The node's only loop sleeps while 8 MB wait for it: more than the
   * kernel buffers hold, so Redis' output buffer passes its limit. */
  assert_int_equal(wsc_send_text(&block, "zzz"), 0);
  usleep(100000);
  static char big[16384];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  memcpy(big, "P9-0 ", 5);
  for (int i = 2; i <= 500; ++i) publish_wire(redis.port, "test:flood", 77, (uint64_t)i, big);
  assert_true(fleet_node_wait_count(&n, "down 0", 1, 5000));
  assert_true(fleet_node_wait_count(&n, "up 0", 2, 5000));
  wait_numsub(redis.port, "test:flood", 1);
  assert_int_equal(publish_wire(redis.port, "test:flood", 77, 501, "P9-501"), 0);
  /* Whatever arrived before the cut, then the gap, then 1001. */
  long long until = now_ms() + 5000;
  int got_last = 0;
  while (!got_last && now_ms() < until) {
    wsc_frame f;
    if (wsc_recv_message(&s, &f, 1000) != 1) continue;
    got_last = strcmp((const char *)f.payload, "P9-501") == 0;
    wsc_frame_free(&f);
  }
  assert_true(got_last);
  assert_true(fleet_node_wait_count(&n, "gap flood ", 1, 1000));
  wsc_close(&s);
  wsc_close(&block);
  TH_EQ(fleet_node_stop(&n), 0);
  fleet_redis_stop(&redis, SIGTERM);
}

/* The example: two `lariat-echo --publish T --redis URL` share T. */
static void test_two_echo_examples_share_a_topic(void **state) {
  (void)state;
  if (!g_echo_exe) skip();
  fleet_redis redis;
  assert_int_equal(fleet_redis_start(&redis, fleet_free_port()), 0);
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/", redis.port);
  fleet_node e[2];
  wsc c[2];
  for (int i = 0; i < 2; ++i) {
    const char *argv[] = {g_echo_exe, "--port", "0", "--publish", "T", "--redis", url, NULL};
    assert_int_equal(fleet_node_start(&e[i], g_echo_exe, argv), 0);
    ws_open(&c[i], e[i].port, "/");
  }
  wait_numsub(redis.port, "lariat:T", 2);
  assert_int_equal(wsc_send_text(&c[0], "P0-1"), 0);
  assert_int_equal(wsc_send_text(&c[1], "P1-1"), 0);
  for (int i = 0; i < 2; ++i) {
    int seen[2] = {0, 0}, p, seq;
    for (int m = 0; m < 2; ++m) {
      assert_int_equal(next_msg(&c[i], &p, &seq, 5000), 1);
      seen[p]++;
    }
    TH_EQ(seen[0], 1);
    TH_EQ(seen[1], 1);
    wsc_close(&c[i]);
  }
  for (int i = 0; i < 2; ++i) TH_EQ(fleet_node_stop(&e[i]), 0);
  fleet_redis_stop(&redis, SIGTERM);
}

static int cleanup(void **state) {
  (void)state;
  g_redis_host = "127.0.0.1";
  fleet_kill_all();
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: test_bridge PATH_TO_bridge_node [PATH_TO_lariat-echo]\n");
    return 2;
  }
  g_node_exe = argv[1];
  g_echo_exe = argc > 2 ? argv[2] : NULL;
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_fleet_of_two, cleanup),
      cmocka_unit_test_teardown(test_fleet_of_three_with_two_loops, cleanup),
      cmocka_unit_test_teardown(test_fleet_by_name, cleanup),
      cmocka_unit_test_teardown(test_redis_killed_and_restarted, cleanup),
      cmocka_unit_test_teardown(test_subscriber_connection_killed, cleanup),
      cmocka_unit_test_teardown(test_redis_down_at_start, cleanup),
      cmocka_unit_test_teardown(test_redis_that_never_answers, cleanup),
      cmocka_unit_test_teardown(test_reset_connection_is_reported, cleanup),
      cmocka_unit_test_teardown(test_password_and_database, cleanup),
      cmocka_unit_test_teardown(test_thousand_topics_released, cleanup),
      cmocka_unit_test_teardown(test_output_buffer_limit_is_a_fault, cleanup),
      cmocka_unit_test_teardown(test_two_echo_examples_share_a_topic, cleanup),
  };
  if (getenv("BRIDGE_TEST")) cmocka_set_test_filter(getenv("BRIDGE_TEST"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
