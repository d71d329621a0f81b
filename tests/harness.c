#define _GNU_SOURCE
#include "harness.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

static atomic_long msgs_freed;

long th_msgs_freed(void) { return atomic_load(&msgs_freed); }

static void th_msg_free(void *p) {
  free(p);
  atomic_fetch_add(&msgs_freed, 1);
}

void th_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void run_server_loop(void *arg) { lariat_server_run(((th_running *)arg)->server); }

void th_run(th_running *r, lariat_server *server) {
  r->server = server;
  r->port = lariat_server_port(server);
  r->tls_port = r->tls ? lariat_server_tls_port(server) : 0;
  TH_EQ(uv_thread_create(&r->thread, run_server_loop, r), 0);
}

void th_join(th_running *r) {
  TH_EQ(lariat_server_stop_async(r->server), 0);
  TH_EQ(uv_thread_join(&r->thread), 0);
  lariat_server_del(r->server);
  lariat_tls_del(r->tls);
  r->tls = NULL;
}

static void reply_text(lariat_conn *conn, const char *text) {
  lariat_frame f = {LARIAT_OP_TEXT, 0, 0, (const uint8_t *)text,
                    strlen(text)};
  lariat_reply(conn, &f);
}

/* ------------------------------------------------------------ probe */

static int probe_init(lariat_req *req, lariat_upgrade *up, void *data) {
  th_server *s = data;
  lariat_upgrade_set_state(up, s); /* the default state is NULL */
  pthread_mutex_lock(&s->mutex);
  s->init_calls++;
  s->last_init_was_websocket = lariat_req_is_websocket(req);
  pthread_mutex_unlock(&s->mutex);
  if (s->init.crash) {
    lariat_upgrade_set_crash(up, "probe", "init asked to");
    return LARIAT_CRASH;
  }
  if (s->init.reply_status) {
    static const char *const headers[] = {"x-probe", "yes"};
    lariat_upgrade_reply(up, s->init.reply_status, headers, 1, "plain", 5);
    return LARIAT_OK;
  }
  if (s->init.idle_timeout_ms)
    lariat_upgrade_set_idle_timeout(up, s->init.idle_timeout_ms);
  if (s->init.max_frame_size)
    lariat_upgrade_set_max_frame_size(up, s->init.max_frame_size);
  lariat_upgrade_set_validate_utf8(up, s->init.validate_utf8);
  if (s->init.protocol) lariat_upgrade_set_protocol(up, s->init.protocol);
  if (s->init.max_queued)
    lariat_upgrade_set_max_queued(up, s->init.max_queued,
                                  s->init.backpressure_policy);
  if (s->init.low_water) lariat_upgrade_set_low_water(up, s->init.low_water);
  if (s->init.ping_interval_ms)
    lariat_upgrade_set_ping_interval(up, s->init.ping_interval_ms,
                                     s->init.pong_timeout_ms);
  if (s->init.deflate) {
    lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_ENABLE, 1);
    if (s->init.deflate_server_bits)
      lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_SERVER_MAX_WINDOW_BITS,
                                 s->init.deflate_server_bits);
    if (s->init.deflate_client_bits)
      lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_CLIENT_MAX_WINDOW_BITS,
                                 s->init.deflate_client_bits);
    lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER,
                               s->init.deflate_server_nct);
    lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_CLIENT_NO_CONTEXT_TAKEOVER,
                               s->init.deflate_client_nct);
    lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_THRESHOLD,
                               s->init.deflate_threshold);
  }
  return LARIAT_OK;
}

static int probe_websocket_init(lariat_conn *conn, void *state) {
  th_server *s = state;
  pthread_mutex_lock(&s->mutex);
  s->websocket_init_calls++;
  s->last_conn_id = lariat_conn_get_id(conn);
  pthread_mutex_unlock(&s->mutex);
  if (s->init.websocket_init_reply) reply_text(conn, "welcome");
  return s->init.websocket_init_result;
}

static int probe_command(lariat_conn *conn, th_server *s, const char *cmd,
                         size_t len) {
  char buf[160];
  if (len >= sizeof(buf)) len = sizeof(buf) - 1;
  memcpy(buf, cmd, len);
  buf[len] = 0;
  if (strcmp(buf, "!shutdown") == 0) return LARIAT_SHUTDOWN;
  if (strcmp(buf, "!crash") == 0) {
    lariat_conn_set_crash(conn, "probe", "asked to");
    return LARIAT_CRASH;
  }
  if (strcmp(buf, "!hibernate") == 0) {
    reply_text(conn, "hibernate");
    return LARIAT_HIBERNATE;
  }
  if (strncmp(buf, "!close ", 7) == 0) {
    char *text = NULL;
    long code = strtol(buf + 7, &text, 10);
    while (text && *text == ' ') ++text;
    lariat_frame f = {LARIAT_OP_CLOSE, 0, (uint16_t)code,
                      (const uint8_t *)text, text ? strlen(text) : 0};
    lariat_reply(conn, &f);
    return LARIAT_OK;
  }
  if (strncmp(buf, "!badclose ", 10) == 0) {
    lariat_frame f = {LARIAT_OP_CLOSE, 0, (uint16_t)atoi(buf + 10), NULL, 0};
    char out[32];
    snprintf(out, sizeof(out), "rc=%d", lariat_reply(conn, &f));
    reply_text(conn, out);
    return LARIAT_OK;
  }
  if (strcmp(buf, "!three") == 0) {
    reply_text(conn, "1");
    reply_text(conn, "2");
    reply_text(conn, "3");
    return LARIAT_OK;
  }
  if (strcmp(buf, "!ping") == 0 || strcmp(buf, "!pong") == 0) {
    lariat_frame f = {buf[2] == 'i' ? LARIAT_OP_PING : LARIAT_OP_PONG, 0, 0,
                      (const uint8_t *)"p", 1};
    lariat_reply(conn, &f);
    return LARIAT_OK;
  }
  if (strcmp(buf, "!bigping") == 0) {
    uint8_t big[126] = {0};
    lariat_frame f = {LARIAT_OP_PING, 0, 0, big, sizeof(big)};
    char out[32];
    snprintf(out, sizeof(out), "rc=%d", lariat_reply(conn, &f));
    reply_text(conn, out);
    return LARIAT_OK;
  }
  if (strncmp(buf, "!idle ", 6) == 0) {
    lariat_conn_set_idle_timeout(conn, strtoull(buf + 6, NULL, 10));
    reply_text(conn, "ok");
    return LARIAT_OK;
  }
  if (strcmp(buf, "!id") == 0) {
    snprintf(buf, sizeof(buf), "%llu",
             (unsigned long long)lariat_conn_get_id(conn));
    reply_text(conn, buf);
    return LARIAT_OK;
  }
  if (strcmp(buf, "!meta") == 0) {
    const char *p = lariat_conn_protocol(conn);
    snprintf(buf, sizeof(buf), "v=%d c=%d p=%s", lariat_conn_version(conn),
             lariat_conn_compressed(conn), p ? p : "-");
    reply_text(conn, buf);
    return LARIAT_OK;
  }
  if (strcmp(buf, "!tls") == 0) {
    const char *v = lariat_conn_tls_version(conn);
    reply_text(conn, v ? v : "none");
    return LARIAT_OK;
  }
  if (strcmp(buf, "!resumed") == 0) {
    reply_text(conn, lariat_conn_tls_resumed(conn) ? "resumed" : "full");
    return LARIAT_OK;
  }
  if (strncmp(buf, "!flood ", 7) == 0) {
    char *end;
    long n = strtol(buf + 7, &end, 10);
    size_t size = strtoul(end, NULL, 10);
    uint8_t *payload = calloc(size ? size : 1, 1);
    long sent = 0;
    int rc = 0;
    size_t max = 0;
    for (; sent < n; ++sent) {
      memset(payload, (int)(sent & 0xff), size);
      lariat_frame f = {LARIAT_OP_BINARY, 0, 0, payload, size};
      rc = lariat_reply(conn, &f);
      size_t queued = lariat_conn_buffered_amount(conn);
      if (queued > max) max = queued;
      if (rc != 0) break;
    }
    free(payload);
    pthread_mutex_lock(&s->mutex);
    s->flood_rounds++;
    s->flood_sent += sent;
    if (rc == LARIAT_ERR_BACKPRESSURE) s->flood_refusals++;
    if (max > s->flood_max_queued) s->flood_max_queued = max;
    pthread_mutex_unlock(&s->mutex);
    snprintf(buf, sizeof(buf), "sent=%ld rc=%d", sent, rc);
    reply_text(conn, buf);
    return LARIAT_OK;
  }
  if (strcmp(buf, "!pause") == 0) {
    reply_text(conn, "paused");
    lariat_conn_set_active(conn, 0);
    return LARIAT_OK;
  }
  if (strncmp(buf, "!plain ", 7) == 0) {
    lariat_frame f = {LARIAT_OP_TEXT, LARIAT_FRAME_NO_COMPRESS, 0,
                      (const uint8_t *)buf + 7, strlen(buf + 7)};
    lariat_reply(conn, &f);
    return LARIAT_OK;
  }
  if (strcmp(buf, "!stop") == 0) {
    lariat_server_stop(lariat_conn_server(conn));
    return LARIAT_OK;
  }
  (void)s;
  return -1; /* not a command */
}

static int probe_handle(lariat_conn *conn, const lariat_frame *frame,
                        void *state) {
  th_server *s = state;
  pthread_mutex_lock(&s->mutex);
  s->handle_calls++;
  if (frame->opcode == LARIAT_OP_PING) s->pings++;
  if (frame->opcode == LARIAT_OP_PONG) s->pongs++;
  pthread_mutex_unlock(&s->mutex);
  if (frame->opcode == LARIAT_OP_TEXT && frame->len > 0 &&
      frame->data[0] == '!') {
    int rc = probe_command(conn, s, (const char *)frame->data, frame->len);
    if (rc >= 0) return rc;
  }
  if (frame->opcode == LARIAT_OP_TEXT || frame->opcode == LARIAT_OP_BINARY)
    lariat_reply(conn, frame);
  return LARIAT_OK;
}

static int probe_info(lariat_conn *conn, void *msg, void *state) {
  th_server *s = state;
  th_msg *m = msg;
  if (m->resume) {
    lariat_conn_set_active(conn, 1);
    return LARIAT_OK;
  }
  if (m->query_hibernating) {
    char out[16];
    snprintf(out, sizeof(out), "hib=%d", lariat_conn_hibernating(conn));
    reply_text(conn, out);
    return LARIAT_OK;
  }
  pthread_mutex_lock(&s->mutex);
  s->info_calls++;
  s->infos_delivered++;
  if (m->thread >= 0 && m->thread < TH_MAX_THREADS) {
    if (m->seq <= s->last_seq[m->thread]) s->order_violations++;
    s->last_seq[m->thread] = m->seq;
  }
  pthread_mutex_unlock(&s->mutex);
  return m->result;
}

static int probe_drain(lariat_conn *conn, void *state) {
  th_server *s = state;
  pthread_mutex_lock(&s->mutex);
  s->drains++;
  pthread_mutex_unlock(&s->mutex);
  reply_text(conn, "drained");
  return LARIAT_OK;
}

static void probe_terminate(lariat_conn *conn, const lariat_reason *reason,
                            void *state) {
  th_server *s = state;
  pthread_mutex_lock(&s->mutex);
  if (s->terminates < TH_MAX_EVENTS) {
    th_terminate *t = &s->terminated[s->terminates];
    memset(t, 0, sizeof(*t));
    t->kind = reason->kind;
    t->code = reason->code;
    t->len = reason->len < sizeof(t->data) ? reason->len : sizeof(t->data) - 1;
    if (t->len) memcpy(t->data, reason->data, t->len);
    if (reason->crash_class)
      snprintf(t->crash_class, sizeof(t->crash_class), "%s",
               reason->crash_class);
    if (reason->crash_reason)
      snprintf(t->crash_reason, sizeof(t->crash_reason), "%s",
               reason->crash_reason);
    t->socket_error = reason->socket_error;
    t->had_conn = conn != NULL;
    t->conn_id = conn ? lariat_conn_get_id(conn) : 0;
  }
  s->terminates++;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mutex);
}

static const lariat_handler probe_handler = {
    .size = sizeof(lariat_handler),
    .init = probe_init,
    .websocket_init = probe_websocket_init,
    .websocket_handle = probe_handle,
    .websocket_info = probe_info,
    .terminate = probe_terminate,
    .websocket_drain = probe_drain};

/* ---------------------------------------------------------- lifetime */

static void run_loop(void *arg) {
  th_server *s = arg;
  if (s->owned_loop)
    lariat_server_run(s->server);
  else
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

void th_start(th_server *s, const char *host, lariat_options *opts) {
  th_init_config init = s->init;
  int owned_loop = s->owned_loop;
  lariat_tls *tls = s->tls;
  memset(s, 0, sizeof(*s));
  s->init = init;
  s->owned_loop = owned_loop;
  s->tls = tls;
  if (!s->init.validate_utf8) s->init.validate_utf8 = 1;
  if (s->init.validate_utf8 < 0) s->init.validate_utf8 = 0;
  pthread_mutex_init(&s->mutex, NULL);
  pthread_cond_init(&s->cond, NULL);
  if (owned_loop) {
    assert_int_equal(lariat_server_new(&s->server, NULL, opts), 0);
  } else {
    assert_int_equal(uv_loop_init(&s->loop), 0);
    assert_int_equal(lariat_server_new(&s->server, &s->loop, opts), 0);
  }
  assert_int_equal(lariat_server_route(s->server, "/probe", &probe_handler, s),
                   0);
  assert_int_equal(lariat_server_listen(s->server, host ? host : "127.0.0.1", 0),
                   0);
  s->port = lariat_server_port(s->server);
  assert_true(s->port > 0);
  if (s->tls) {
    assert_int_equal(lariat_server_listen_tls(s->server, host ? host : "127.0.0.1",
                                              0, s->tls),
                     0);
    s->tls_port = lariat_server_tls_port(s->server);
    assert_true(s->tls_port > 0);
  }
  assert_int_equal(uv_thread_create(&s->thread, run_loop, s), 0);
}

void th_stop(th_server *s) {
  /* STOPPED: a test already stopped it (e.g. with "!stop"). */
  int rc = lariat_server_stop_async(s->server);
  if (rc != LARIAT_ERR_STOPPED) TH_EQ(rc, 0);
  uv_thread_join(&s->thread);
  lariat_server_del(s->server);
  if (!s->owned_loop) TH_EQ(uv_loop_close(&s->loop), 0);
  pthread_mutex_destroy(&s->mutex);
  pthread_cond_destroy(&s->cond);
}

int th_wait_terminates(th_server *s, int n, int timeout_ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  int rc = 0;
  pthread_mutex_lock(&s->mutex);
  while (s->terminates < n && rc == 0)
    rc = pthread_cond_timedwait(&s->cond, &s->mutex, &deadline);
  int ok = s->terminates >= n;
  pthread_mutex_unlock(&s->mutex);
  return ok ? 0 : -1;
}

th_terminate th_terminate_at(th_server *s, int i) {
  pthread_mutex_lock(&s->mutex);
  th_terminate t = s->terminated[i];
  pthread_mutex_unlock(&s->mutex);
  return t;
}

void th_open(th_server *s, wsc *c) {
  TH_EQ(wsc_connect(c, "127.0.0.1", s->port, 2000), 0);
  TH_EQ(wsc_handshake(c, "/probe", NULL, NULL, 2000), 101);
}

int th_expect_text(wsc *c, const char *expected, int timeout_ms) {
  wsc_frame f;
  int rc = wsc_recv_message(c, &f, timeout_ms);
  if (rc != 1) return rc < 0 ? rc : -1;
  int ok = f.opcode == WSC_OP_TEXT && f.len == strlen(expected) &&
           memcmp(f.payload, expected, f.len) == 0;
  if (!ok)
    print_error("expected text '%s', got opcode %d '%.*s'\n", expected,
                f.opcode, (int)f.len, (const char *)f.payload);
  wsc_frame_free(&f);
  return ok ? 0 : -1;
}

int th_post(th_server *s, lariat_conn_id id, int thread, int seq,
            int query_hibernating) {
  th_msg *m = malloc(sizeof(*m));
  m->thread = thread;
  m->seq = seq;
  m->query_hibernating = query_hibernating;
  m->result = LARIAT_OK;
  m->resume = 0;
  return lariat_post(s->server, id, m, th_msg_free);
}

int th_post_resume(th_server *s, lariat_conn_id id) {
  th_msg *m = calloc(1, sizeof(*m));
  m->thread = -1;
  m->resume = 1;
  return lariat_post(s->server, id, m, th_msg_free);
}

lariat_conn_id th_open_with_id(th_server *s, wsc *c) {
  th_open(s, c);
  TH_EQ(wsc_send_text(c, "!id"), 0);
  wsc_frame f;
  TH_EQ(wsc_recv_message(c, &f, 2000), 1);
  lariat_conn_id id = strtoull((const char *)f.payload, NULL, 10);
  wsc_frame_free(&f);
  return id;
}

int th_post_result(th_server *s, lariat_conn_id id, int result) {
  th_msg *m = calloc(1, sizeof(*m));
  m->thread = -1;
  m->seq = 0;
  m->query_hibernating = 0;
  m->result = result;
  return lariat_post(s->server, id, m, th_msg_free);
}
