/* Flow control and limits over loopback: a client that stops reading
 * while the server pushes (queued output stays under its cap; the policy
 * holds; drain fires), pausing reads, the connection limit, the close
 * handshake timeout and keepalive pings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "harness.h"

static th_server srv;

#define CAP (1u << 20)
#define PUSH_SIZE 65536

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Sends |rounds| "!flood" commands without reading anything. */
static void push_without_reading(wsc *c, int rounds) {
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "!flood 64 %d", PUSH_SIZE);
  for (int i = 0; i < rounds; ++i) TH_EQ(wsc_send_text(c, cmd), 0);
}

/* Waits until the server handled |rounds| flood commands. */
static void wait_rounds(int rounds) {
  for (int tries = 0; tries < 500; ++tries) {
    pthread_mutex_lock(&srv.mutex);
    int done = srv.flood_rounds;
    pthread_mutex_unlock(&srv.mutex);
    if (done >= rounds) return;
    th_sleep_ms(10);
  }
  fail_msg("the server handled too few flood rounds");
}

/* Reads until |stop_text| (or a close frame when NULL), checking every
 * binary message is intact; returns how many binary messages came and the
 * close code seen (or -1). */
static long read_pushed(wsc *c, const char *stop_text, int *close_code) {
  long binaries = 0;
  *close_code = -1;
  for (;;) {
    wsc_frame f;
    TH_EQ(wsc_recv_frame(c, &f, 5000), 1);
    if (f.opcode == WSC_OP_BINARY) {
      TH_EQ(f.len, PUSH_SIZE);
      for (size_t i = 1; i < f.len; ++i) TH_EQ(f.payload[i], f.payload[0]);
      binaries++;
    } else if (f.opcode == WSC_OP_CLOSE) {
      *close_code = f.close_code;
      wsc_frame_free(&f);
      return binaries;
    } else if (stop_text && f.opcode == WSC_OP_TEXT &&
               strcmp((const char *)f.payload, stop_text) == 0) {
      wsc_frame_free(&f);
      return binaries;
    }
    wsc_frame_free(&f);
  }
}

static void test_refuse_policy_bounds_memory_and_drains(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  srv.init.max_queued = CAP;
  srv.init.backpressure_policy = LARIAT_BACKPRESSURE_REFUSE;
  srv.init.low_water = 64 * 1024;
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  int rounds = 40; /* 40 x 4 MiB offered: far beyond what the kernel holds */
  push_without_reading(&c, rounds);
  wait_rounds(rounds);
  /* The cap held while the client read nothing, and pushes were refused
   * (each refusal reported to the handler), not dropped silently. */
  assert_true(srv.flood_max_queued <= CAP);
  assert_true(srv.flood_refusals > 0);
  /* Once the client catches up, it gets every accepted message intact and
   * the handler is told it may send again. */
  int close_code;
  long binaries = read_pushed(&c, "drained", &close_code);
  TH_EQ(close_code, -1);
  TH_EQ(binaries, srv.flood_sent);
  TH_EQ(wsc_send_text(&c, "after"), 0);
  for (;;) { /* skip status replies still in flight */
    wsc_frame f;
    TH_EQ(wsc_recv_message(&c, &f, 5000), 1);
    int done = strcmp((const char *)f.payload, "after") == 0;
    wsc_frame_free(&f);
    if (done) break;
  }
  wsc_close(&c);
  th_stop(&srv);
  assert_true(srv.drains >= 1);
  TH_EQ(srv.terminated[0].kind, LARIAT_REASON_ERROR_CLOSED);
}

static void close_policy(int policy, int code) {
  memset(&srv, 0, sizeof(srv));
  srv.init.max_queued = CAP;
  srv.init.backpressure_policy = policy;
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  push_without_reading(&c, 40);
  /* Everything queued before the cap arrives intact, then the close. */
  int close_code;
  long binaries = read_pushed(&c, NULL, &close_code);
  TH_EQ(close_code, code);
  assert_true(binaries > 0);
  assert_true(wsc_wait_eof(&c, 5000) >= 0);
  wsc_close(&c);
  TH_EQ(th_wait_terminates(&srv, 1, 5000), 0);
  th_stop(&srv);
  TH_EQ(binaries, srv.flood_sent);
  assert_true(srv.flood_max_queued <= CAP);
  TH_EQ(srv.terminates, 1);
  TH_EQ(srv.terminated[0].kind, LARIAT_REASON_ERROR_BACKPRESSURE);
}

static void test_close_policy_1008(void **st) {
  (void)st;
  close_policy(LARIAT_BACKPRESSURE_CLOSE, 1008);
}

static void test_close_policy_1013(void **st) {
  (void)st;
  close_policy(LARIAT_BACKPRESSURE_CLOSE_TRY_LATER, 1013);
}

/* A paused connection reads nothing: the peer's writes back up in TCP,
 * and everything arrives in order once reading resumes. */
static void test_pause_and_resume(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc c;
  lariat_conn_id id = th_open_with_id(&srv, &c);
  TH_EQ(wsc_send_text(&c, "!pause"), 0);
  TH_EQ(th_expect_text(&c, "paused", 2000), 0);
  /* Push 64 KiB frames without blocking until TCP refuses more. */
  size_t frame_len = 65536 + 14;
  uint8_t *frames = malloc(frame_len);
  uint8_t *payload = calloc(65536, 1);
  static const uint8_t mask[4] = {1, 2, 3, 4};
  size_t n = wsc_encode_frame(frames, frame_len, 1, 0, WSC_OP_BINARY, mask,
                              payload, 65536);
  size_t accepted = 0, off = 0;
  int frames_started = 0;
  for (int i = 0; i < 1024; ++i) {
    ssize_t w = send(c.fd, frames + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0) {
      TH_EQ(errno == EAGAIN || errno == EWOULDBLOCK, 1);
      break;
    }
    if (off == 0) frames_started++;
    accepted += (size_t)w;
    off = (off + (size_t)w) % n;
  }
  /* Paused means paused: 64 MiB did not fit into the kernel's buffers. */
  assert_true(accepted < 1024 * n);
  TH_EQ(wsc_recv_frame(&c, &(wsc_frame){0}, 200), -ETIMEDOUT);
  TH_EQ(th_post_resume(&srv, id), 0);
  if (off) TH_EQ(wsc_send_raw(&c, frames + off, n - off), 0);
  for (int i = 0; i < frames_started; ++i) {
    wsc_frame f;
    TH_EQ(wsc_recv_message(&c, &f, 5000), 1);
    TH_EQ(f.len, 65536);
    wsc_frame_free(&f);
  }
  TH_EQ(wsc_send_text(&c, "after"), 0);
  TH_EQ(th_expect_text(&c, "after", 2000), 0);
  free(frames);
  free(payload);
  wsc_close(&c);
  th_stop(&srv);
}

/* A pause stops the read it was made in: frames that came in the same read
 * as the one that paused wait, unparsed, until reading resumes, then
 * arrive in order. */
static void test_pause_holds_the_rest_of_the_read(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc c;
  lariat_conn_id id = th_open_with_id(&srv, &c);
  static const uint8_t mask[4] = {9, 8, 7, 6};
  uint8_t buf[1024];
  size_t n = wsc_encode_frame(buf, sizeof buf, 1, 0, WSC_OP_TEXT, mask,
                              "!pause", 6);
  for (int i = 0; i < 10; ++i) {
    char text[8];
    snprintf(text, sizeof text, "m%d", i);
    n += wsc_encode_frame(buf + n, sizeof buf - n, 1, 0, WSC_OP_TEXT, mask,
                          text, strlen(text));
  }
  TH_EQ(wsc_send_raw(&c, buf, n), 0);  /* one write: one read, likely */
  TH_EQ(th_expect_text(&c, "paused", 2000), 0);
  TH_EQ(wsc_recv_frame(&c, &(wsc_frame){0}, 300), -ETIMEDOUT);
  TH_EQ(th_post_resume(&srv, id), 0);
  for (int i = 0; i < 10; ++i) {
    char text[8];
    snprintf(text, sizeof text, "m%d", i);
    TH_EQ(th_expect_text(&c, text, 2000), 0);
  }
  TH_EQ(wsc_send_text(&c, "after"), 0);
  TH_EQ(th_expect_text(&c, "after", 2000), 0);
  wsc_close(&c);
  th_stop(&srv);
}

static void test_max_connections_503(void **st) {
  (void)st;
  lariat_options *opts;
  TH_EQ(lariat_options_new(&opts), 0);
  TH_EQ(lariat_options_set_max_connections(opts, 3), 0);
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, opts);
  lariat_options_del(opts);
  wsc c[4];
  for (int i = 0; i < 3; ++i) th_open(&srv, &c[i]);
  TH_EQ(wsc_connect(&c[3], "127.0.0.1", srv.port, 2000), 0);
  TH_EQ(wsc_handshake(&c[3], "/probe", NULL, NULL, 2000), 503);
  wsc_close(&c[3]);
  /* Room again once one leaves. */
  wsc_close(&c[0]);
  TH_EQ(th_wait_terminates(&srv, 1, 2000), 0);
  for (int tries = 0; tries < 50; ++tries) {
    if (lariat_server_connection_count(srv.server) < 3) break;
    th_sleep_ms(10);
  }
  th_open(&srv, &c[0]);
  for (int i = 0; i < 3; ++i) wsc_close(&c[i]);
  th_stop(&srv);
  TH_EQ(srv.init_calls, 4); /* the refused one never reached init */
}

/* The server closes and the peer never answers: the connection is dropped
 * once the close timeout passes, not kept forever. */
static void test_close_handshake_timeout(void **st) {
  (void)st;
  lariat_options *opts;
  TH_EQ(lariat_options_new(&opts), 0);
  TH_EQ(lariat_options_set_close_timeout(opts, 300), 0);
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, opts);
  lariat_options_del(opts);
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_text(&c, "!shutdown"), 0);
  double t0 = now_ms();
  TH_EQ(wsc_expect_close(&c, 1000, 2000), 0);
  /* Do not answer: the server must end the TCP connection by itself. */
  assert_true(wsc_wait_eof(&c, 3000) >= 0);
  double waited = now_ms() - t0;
  assert_true(waited >= 250 && waited < 2500);
  wsc_close(&c);
  TH_EQ(th_wait_terminates(&srv, 1, 2000), 0);
  th_stop(&srv);
  TH_EQ(srv.terminated[0].kind, LARIAT_REASON_SHUTDOWN);
}

static void test_keepalive(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  /* Generous pong timeout: a loaded CI machine must not make the live
   * peer look dead. */
  srv.init.ping_interval_ms = 200;
  srv.init.pong_timeout_ms = 1000;
  th_start(&srv, NULL, NULL);
  /* A live peer answers the pings and stays. */
  wsc live;
  th_open(&srv, &live);
  double t0 = now_ms();
  int pings = 0;
  while (now_ms() - t0 < 1500) {
    wsc_frame f;
    int rc = wsc_recv_frame(&live, &f, 100);
    if (rc == -ETIMEDOUT) continue;
    TH_EQ(rc, 1);
    TH_EQ(f.opcode, WSC_OP_PING);
    TH_EQ(wsc_send_frame(&live, 1, 0, WSC_OP_PONG, f.payload, f.len), 0);
    pings++;
    wsc_frame_free(&f);
  }
  assert_true(pings >= 3);
  TH_EQ(srv.terminates, 0);
  /* A dead peer (never answers) is closed with timeout. */
  wsc dead;
  th_open(&srv, &dead);
  wsc_frame f;
  TH_EQ(wsc_recv_frame(&dead, &f, 2000), 1);
  TH_EQ(f.opcode, WSC_OP_PING);
  wsc_frame_free(&f);
  TH_EQ(wsc_expect_close(&dead, 1000, 4000), 0);
  TH_EQ(th_wait_terminates(&srv, 1, 4000), 0);
  TH_EQ(th_terminate_at(&srv, 0).kind, LARIAT_REASON_TIMEOUT);
  wsc_close(&dead);
  wsc_close(&live);
  th_stop(&srv);
  TH_EQ(srv.terminates, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_refuse_policy_bounds_memory_and_drains),
      cmocka_unit_test(test_close_policy_1008),
      cmocka_unit_test(test_close_policy_1013),
      cmocka_unit_test(test_pause_and_resume),
      cmocka_unit_test(test_pause_holds_the_rest_of_the_read),
      cmocka_unit_test(test_max_connections_503),
      cmocka_unit_test(test_close_handshake_timeout),
      cmocka_unit_test(test_keepalive),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
