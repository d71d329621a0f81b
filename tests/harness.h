/*
 * Loopback test harness: a lariat server on a loop owned by the test and
 * run on a background thread, with a scriptable handler that records every
 * callback, so tests drive it with the blocking wsclient and then assert
 * what the handler saw (terminate reasons above all).
 *
 * The "probe" handler echoes text and binary messages, and obeys text
 * commands (a message starting with '!'):
 *   !shutdown        return LARIAT_SHUTDOWN
 *   !crash           lariat_conn_set_crash("probe", "asked to") + CRASH
 *   !hibernate       echo "hibernate", return LARIAT_HIBERNATE
 *   !close CODE TEXT reply a close frame (CODE 0: no code)
 *   !badclose CODE   reply close CODE; reply text "rc=N" with the result
 *   !three           reply three text frames "1" "2" "3" in one callback
 *   !ping / !pong    reply a ping / pong with payload "p"
 *   !idle MS         lariat_conn_set_idle_timeout(MS), reply "ok"
 *   !id              reply the connection id as decimal text
 *   !meta            reply "v=VERSION c=COMPRESSED p=PROTOCOL"
 *   !bigping         reply a 126-byte ping; reply "rc=N"
 *   !stop            lariat_server_stop()
 *   !plain TEXT      reply TEXT with LARIAT_FRAME_NO_COMPRESS
 *   !flood N SIZE    reply N binary messages of SIZE bytes, stopping at the
 *                    first refusal; records the flood_* counters below
 *                    (the status reply "sent=K rc=RC" may itself be
 *                    refused when the queue is full)
 *   !pause           reply "paused", then stop reading (set_active 0)
 *   !tls             reply lariat_conn_tls_version() ("none" if plain)
 * websocket_drain replies "drained". A th_msg with resume set resumes
 * reading.
 * Pings and pongs received are recorded and not echoed (lariat answers
 * pings itself).
 */
#ifndef LARIAT_TESTS_HARNESS_H
#define LARIAT_TESTS_HARNESS_H

#include <lariat/lariat.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "wsclient.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Assertion that prints both operands (libuv's ASSERT_EQ), for use in
 * cmocka tests: fails through cmocka's fail_msg. */
#define TH_EQ(a, b)                                                          \
  do {                                                                       \
    long long th_a_ = (long long)(a), th_b_ = (long long)(b);                \
    if (th_a_ != th_b_)                                                      \
      fail_msg("%s:%d: %s == %s failed: %lld != %lld", __FILE__, __LINE__, \
               #a, #b, th_a_, th_b_);                                        \
  } while (0)

#define TH_MAX_EVENTS 256

typedef struct th_terminate {
  int kind;
  int code;
  char data[128];
  size_t len;
  char crash_class[64];
  char crash_reason[128];
  int socket_error;
  int had_conn; /* terminate got a non-NULL conn */
  uint64_t conn_id;
} th_terminate;

/* How init treats requests (set before th_start, or between tests). */
typedef struct th_init_config {
  uint64_t idle_timeout_ms;
  uint64_t max_frame_size; /* 0: server default */
  int validate_utf8;       /* default 1 */
  const char *protocol;    /* pick this subprotocol if offered */
  int reply_status;        /* nonzero: answer a plain response */
  int crash;               /* init returns LARIAT_CRASH */
  int websocket_init_result; /* what websocket_init returns */
  int websocket_init_reply;  /* websocket_init replies text "welcome" */
  /* permessage-deflate: 0 leaves an option at lariat's default. */
  int deflate;
  int deflate_server_bits, deflate_client_bits;
  int deflate_server_nct, deflate_client_nct;
  int deflate_threshold;
  /* Flow control and keepalive; 0 leaves lariat's default. */
  uint64_t max_queued;
  int backpressure_policy;
  uint64_t low_water;
  uint64_t ping_interval_ms, pong_timeout_ms;
} th_init_config;

/* A message for lariat_post(): websocket_info checks per-thread order, or
 * (query_hibernating) replies "hib=N" with lariat_conn_hibernating(). */
typedef struct th_msg {
  int thread;
  int seq;
  int query_hibernating;
  int result; /* what websocket_info returns (LARIAT_OK unless set) */
  int resume; /* lariat_conn_set_active(conn, 1) */
} th_msg;

#define TH_MAX_THREADS 16

typedef struct th_server {
  int owned_loop; /* set before th_start: lariat owns the loop and the
                     thread runs lariat_server_run() */
  lariat_tls *tls; /* set before th_start: also listen for wss:// with it
                      (the caller keeps and deletes it) */
  int tls_port;
  uv_loop_t loop;
  lariat_server *server;
  uv_thread_t thread;
  int port;
  th_init_config init;
  lariat_options *options;

  pthread_mutex_t mutex;
  pthread_cond_t cond;
  int init_calls;
  int websocket_init_calls;
  int handle_calls;
  int info_calls;
  int pings, pongs;
  int drains;
  int flood_rounds, flood_refusals;
  long flood_sent;
  size_t flood_max_queued; /* largest lariat_conn_buffered_amount seen */
  int terminates;
  th_terminate terminated[TH_MAX_EVENTS];
  uint64_t last_conn_id;
  int last_seq[TH_MAX_THREADS];
  long infos_delivered;
  long order_violations;
  int last_init_was_websocket;
} th_server;

/* Starts a server on 127.0.0.1 (or host) port 0 routing "/probe" (and
 * "*" when catch_all) to the probe handler; opts may be NULL. */
void th_start(th_server *s, const char *host, lariat_options *opts);
/* Stops the server with lariat_server_stop_async() from this thread, joins
 * the loop thread, deletes the server and asserts uv_loop_close() == 0. */
void th_stop(th_server *s);
/* Waits until at least n terminates were recorded; 0 or -1 on timeout. */
int th_wait_terminates(th_server *s, int n, int timeout_ms);
/* Copy of terminate record i (under the lock). */
th_terminate th_terminate_at(th_server *s, int i);
/* Connects and upgrades on /probe; asserts 101. */
void th_open(th_server *s, wsc *c);
/* Reads the next message and checks it is text equal to expected. */
int th_expect_text(wsc *c, const char *expected, int timeout_ms);
void th_sleep_ms(int ms);

/* A server the test built itself (routed, listening) running
 * lariat_server_run() on a thread of its own. */
typedef struct th_running {
  lariat_server *server;
  uv_thread_t thread;
  int port;        /* its first listener's */
  lariat_tls *tls; /* deleted by th_join() when set */
  int tls_port;
} th_running;
/* Starts |server| on the thread; fills server, port and tls_port. */
void th_run(th_running *r, lariat_server *server);
/* lariat_server_stop_async() from this thread, joins, deletes. */
void th_join(th_running *r);
/* Posts a th_msg (malloc'd; freed through th_msg_free, which counts). */
int th_post(th_server *s, lariat_conn_id id, int thread, int seq,
            int query_hibernating);
/* How many th_msg were freed so far (any thread). */
long th_msgs_freed(void);
/* Posts a th_msg whose websocket_info returns |result|. */
int th_post_result(th_server *s, lariat_conn_id id, int result);
/* Posts a th_msg that resumes reading on a paused connection. */
int th_post_resume(th_server *s, lariat_conn_id id);
/* Connects, upgrades and asks "!id"; returns the connection id. */
lariat_conn_id th_open_with_id(th_server *s, wsc *c);

#ifdef __cplusplus
}
#endif

#endif
