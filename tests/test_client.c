/* The client (lariat_connect) over loopback: against a lariat server in
 * the same process, against hostile servers scripted here (each broken
 * handshake refused with its reason), reconnecting to a server that goes
 * away and comes back, and connects to a port that never answers; and
 * all of it over wss:// too, with certificates made for the run (a test
 * CA and servers' certificates it signs), each certificate that must not
 * verify refused with its reason. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <lariat/lariat.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <openssl/x509.h>

#include "harness.h"
#include "test_certs.h"
#include "wsclient.h"

/* ------------------------------------------------------- the server */

static int echo_handle(lariat_conn *conn, const lariat_frame *frame,
                       void *state) {
  (void)state;
  if (frame->len == 4 && memcmp(frame->data, "!bye", 4) == 0)
    return LARIAT_SHUTDOWN; /* the server closes (1000) */
  lariat_reply(conn, frame);
  return LARIAT_OK;
}

static int echo_init(lariat_req *req, lariat_upgrade *up, void *data) {
  (void)data;
  size_t n = 0;
  const char *q = lariat_req_query(req, &n);
  if (n == 7 && memcmp(q, "deflate", 7) == 0)
    lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_ENABLE, 1);
  /* Picks chat.v2 when offered. */
  size_t len = 0;
  for (size_t i = 0; lariat_req_protocol_at(req, i, &len); ++i)
    if (len == 7 && memcmp(lariat_req_protocol_at(req, i, &len), "chat.v2", 7) == 0)
      lariat_upgrade_set_protocol(up, "chat.v2");
  return LARIAT_OK;
}

static const lariat_handler kEcho = {.size = sizeof(lariat_handler),
                                     .init = echo_init,
                                     .websocket_handle = echo_handle};

typedef th_running running;

/* An echo server listening on |host| port |port| (0: any). */
static void start_at(running *r, const char *host, int port) {
  memset(r, 0, sizeof *r);
  lariat_server *s;
  assert_int_equal(lariat_server_new(&s, NULL, NULL), 0);
  assert_int_equal(lariat_server_route(s, "*", &kEcho, NULL), 0);
  assert_int_equal(lariat_server_listen(s, host, port), 0);
  th_run(r, s);
}

static void start_on(running *r, int port) { start_at(r, "127.0.0.1", port); }

/* An echo server with a wss:// listener on |tls_port| (0: any) serving
 * |cert|, beside its ws:// one. */
static void start_wss(running *r, const test_cert *cert, int tls_port) {
  memset(r, 0, sizeof *r);
  lariat_server *s;
  assert_int_equal(lariat_server_new(&s, NULL, NULL), 0);
  assert_int_equal(lariat_server_route(s, "*", &kEcho, NULL), 0);
  assert_int_equal(lariat_server_listen(s, "127.0.0.1", 0), 0);
  assert_int_equal(lariat_tls_new(&r->tls), 0);
  assert_int_equal(lariat_tls_add_cert_pem(r->tls, cert->cert, cert->cert_len,
                                           cert->key, cert->key_len),
                   0);
  assert_int_equal(lariat_server_listen_tls(s, "127.0.0.1", tls_port, r->tls), 0);
  th_run(r, s);
}

static void stop(running *r) { th_join(r); }

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ------------------------------------------------------- the client */

#define MAX_ENDS 64

typedef struct client_log {
  pthread_mutex_t lock;
  int inits;
  int messages;  /* echoes received */
  int to_send;   /* echoes to ask for, one after the other */
  int in_order;  /* every echo was the one expected */
  int infos;
  int info_order_ok;
  int last_info;
  int ends;
  lariat_reason ends_reason[MAX_ENDS];
  char failure[MAX_ENDS][96];
  char header[MAX_ENDS][64];
  uint64_t end_at[MAX_ENDS];
  uint64_t init_at[MAX_ENDS];
  char protocol[32];
  char tls_version[16];
  int resumed[MAX_ENDS]; /* lariat_conn_tls_resumed() at each init */
  int compressed;
  int bye; /* the first connection asks the server to close it */
  int done;  /* terminate with retrying == 0 */
} client_log;

static void log_init(client_log *l, int to_send) {
  memset(l, 0, sizeof *l);
  pthread_mutex_init(&l->lock, NULL);
  l->to_send = to_send;
  l->in_order = 1;
  l->info_order_ok = 1;
  l->last_info = -1;
}

static void send_number(lariat_conn *conn, int n) {
  char text[16];
  snprintf(text, sizeof text, "%d", n);
  lariat_frame f = {.opcode = LARIAT_OP_TEXT,
                    .data = (const uint8_t *)text,
                    .len = strlen(text)};
  lariat_reply(conn, &f);
}

static int c_init(lariat_conn *conn, void *state) {
  client_log *l = state;
  pthread_mutex_lock(&l->lock);
  if (l->inits < MAX_ENDS) l->init_at[l->inits] = now_ms();
  l->inits++;
  l->messages = 0;
  const char *p = lariat_conn_protocol(conn);
  snprintf(l->protocol, sizeof l->protocol, "%s", p ? p : "");
  l->compressed = lariat_conn_compressed(conn);
  const char *v = lariat_conn_tls_version(conn);
  snprintf(l->tls_version, sizeof l->tls_version, "%s", v ? v : "");
  if (l->inits <= MAX_ENDS) l->resumed[l->inits - 1] = lariat_conn_tls_resumed(conn);
  int go = l->to_send > 0;
  int bye = l->bye && l->inits == 1;
  pthread_mutex_unlock(&l->lock);
  if (bye) {
    lariat_frame f = {.opcode = LARIAT_OP_TEXT, .data = (const uint8_t *)"!bye", .len = 4};
    lariat_reply(conn, &f);
  }
  if (go) send_number(conn, 0);
  return LARIAT_OK;
}

static int c_handle(lariat_conn *conn, const lariat_frame *frame, void *state) {
  client_log *l = state;
  char expected[16];
  pthread_mutex_lock(&l->lock);
  snprintf(expected, sizeof expected, "%d", l->messages);
  if (frame->len != strlen(expected) ||
      memcmp(frame->data, expected, frame->len) != 0)
    l->in_order = 0;
  int next = ++l->messages;
  int more = next < l->to_send;
  pthread_mutex_unlock(&l->lock);
  if (more) {
    send_number(conn, next);
    return LARIAT_OK;
  }
  return l->to_send > 0 ? LARIAT_SHUTDOWN : LARIAT_OK;
}

static int c_info(lariat_conn *conn, void *msg, void *state) {
  (void)conn;
  client_log *l = state;
  int n = *(int *)msg;
  pthread_mutex_lock(&l->lock);
  if (n != l->last_info + 1) l->info_order_ok = 0;
  l->last_info = n;
  l->infos++;
  pthread_mutex_unlock(&l->lock);
  return LARIAT_OK;
}

static void c_terminate(lariat_conn *conn, const lariat_reason *reason,
                        void *state) {
  (void)conn;
  client_log *l = state;
  pthread_mutex_lock(&l->lock);
  if (l->ends < MAX_ENDS) {
    l->ends_reason[l->ends] = *reason;
    snprintf(l->failure[l->ends], sizeof l->failure[0], "%s",
             reason->failure ? reason->failure : "");
    size_t n = 0;
    const char *h = lariat_reason_header(reason, "x-test", &n);
    snprintf(l->header[l->ends], sizeof l->header[0], "%.*s", (int)n,
             h ? h : "");
    l->end_at[l->ends] = now_ms();
  }
  l->ends++;
  if (!reason->retrying) l->done = 1;
  pthread_mutex_unlock(&l->lock);
}

static const lariat_handler kClient = {.size = sizeof(lariat_handler),
                                       .websocket_init = c_init,
                                       .websocket_handle = c_handle,
                                       .websocket_info = c_info,
                                       .terminate = c_terminate};

static int wait_done(client_log *l, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 5) {
    pthread_mutex_lock(&l->lock);
    int done = l->done;
    pthread_mutex_unlock(&l->lock);
    if (done) return 0;
    sleep_ms(5);
  }
  return -1;
}

static int wait_inits(client_log *l, int n, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 5) {
    pthread_mutex_lock(&l->lock);
    int k = l->inits;
    pthread_mutex_unlock(&l->lock);
    if (k >= n) return 0;
    sleep_ms(5);
  }
  return -1;
}

/* --------------------------------------------------------- the tests */

static void test_echoes_with_a_lariat_server(void **unused) {
  (void)unused;
  running r;
  start_on(&r, 0);
  client_log l;
  log_init(&l, 1000);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/echo", r.port);
  lariat_conn_id id = 0;
  assert_int_equal(lariat_connect(r.server, url, &kClient, NULL, NULL, &l, &id), 0);
  assert_true(id != 0);
  assert_int_equal(wait_done(&l, 10000), 0);
  assert_int_equal(l.inits, 1);
  if (l.messages != 1000)
    fail_msg("%d echoes; ended: %s code %d failure %s", l.messages,
             lariat_reason_name(l.ends_reason[0].kind), l.ends_reason[0].code,
             l.failure[0]);
  assert_true(l.in_order);
  assert_int_equal(l.ends, 1);
  assert_int_equal(l.ends_reason[0].kind, LARIAT_REASON_SHUTDOWN);
  assert_int_equal(l.ends_reason[0].retrying, 0);
  assert_int_equal(l.ends_reason[0].attempt, 1);
  stop(&r);
}

static void test_negotiates_protocol_and_deflate(void **unused) {
  (void)unused;
  running r;
  start_on(&r, 0);
  client_log l;
  log_init(&l, 1000);
  lariat_client_options *o;
  assert_int_equal(lariat_client_options_new(&o), 0);
  assert_int_equal(lariat_client_options_add_protocol(o, "chat.v1"), 0);
  assert_int_equal(lariat_client_options_add_protocol(o, "chat.v2"), 0);
  assert_int_equal(lariat_client_options_set_deflate(o, LARIAT_DEFLATE_ENABLE, 1), 0);
  assert_int_equal(lariat_client_options_add_header(o, "X-Who", "test"), 0);
  assert_int_equal(lariat_client_options_add_header(o, "Host", "x"),
                   LARIAT_ERR_INVALID_ARGUMENT);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/echo?deflate", r.port);
  assert_int_equal(lariat_connect(r.server, url, &kClient, NULL, o, &l, NULL), 0);
  lariat_client_options_del(o);
  assert_int_equal(wait_done(&l, 10000), 0);
  assert_string_equal(l.protocol, "chat.v2");
  assert_int_equal(l.compressed, 1);
  assert_int_equal(l.messages, 1000);
  assert_true(l.in_order);
  assert_int_equal(l.ends_reason[0].kind, LARIAT_REASON_SHUTDOWN);
  stop(&r);
}

/* An IPv6 literal, and a name resolved without blocking the loop
 * (localhost: the addresses the resolver gives, tried in order within the
 * attempt until one connects). */
static void test_ipv6_and_names(void **unused) {
  (void)unused;
  running r6;
  start_at(&r6, "::1", 0);
  running r4;
  start_on(&r4, 0);
  const char *forms[] = {"ws://[::1]:%d/", "ws://localhost:%d/"};
  int ports[] = {r6.port, r4.port};
  for (int i = 0; i < 2; ++i) {
    client_log l;
    log_init(&l, 10);
    char url[64];
    snprintf(url, sizeof url, forms[i], ports[i]);
    assert_int_equal(lariat_connect(r4.server, url, &kClient, NULL, NULL, &l, NULL), 0);
    assert_int_equal(wait_done(&l, 10000), 0);
    if (l.messages != 10 || l.ends != 1)
      fail_msg("%s: %d echoes, %d ends (%s %s)", url, l.messages, l.ends,
               lariat_reason_name(l.ends_reason[0].kind), l.failure[0]);
  }
  stop(&r4);
  stop(&r6);
}

static void test_bad_urls(void **unused) {
  (void)unused;
  running r;
  start_on(&r, 0);
  const char *bad[] = {"http://127.0.0.1/", "ws://", "ws://:80/",
                       "ws://host:0/",      "ws://host:65536/", "ws://h/a b",
                       "ws://h/#frag",      "ws://[::1/",       "ws://u@h/"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i)
    assert_int_equal(lariat_connect(r.server, bad[i], &kClient, NULL, NULL,
                                    NULL, NULL),
                     LARIAT_ERR_INVALID_ARGUMENT);
  stop(&r);
}

/* A scripted server: accepts one connection, reads the request head,
 * answers with |response| (KEY in it replaced by the right accept key),
 * then sends |after| (frames) and keeps the socket until the peer ends. */
typedef struct scripted {
  int listen_fd;
  int port;
  const char *response;
  const unsigned char *after;
  size_t after_len;
  pthread_t thread;
} scripted;

static void *scripted_run(void *arg) {
  scripted *s = arg;
  int fd = accept(s->listen_fd, NULL, NULL);
  if (fd < 0) return NULL;
  char buf[4096];
  size_t got = 0;
  while (got < sizeof buf - 1) {
    ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
    if (n <= 0) break;
    got += (size_t)n;
    buf[got] = 0;
    if (strstr(buf, "\r\n\r\n")) break;
  }
  const char *k = strstr(buf, "Sec-WebSocket-Key: ");
  char key[32] = {0}, accept_key[29] = {0};
  if (k) sscanf(k + 19, "%24s", key);
  wsc_accept_key(key, accept_key);
  char out[2048];
  const char *mark = strstr(s->response, "KEY");
  if (mark)
    snprintf(out, sizeof out, "%.*s%s%s", (int)(mark - s->response),
             s->response, accept_key, mark + 3);
  else
    snprintf(out, sizeof out, "%s", s->response);
  send(fd, out, strlen(out), MSG_NOSIGNAL);
  if (s->after_len) send(fd, s->after, s->after_len, MSG_NOSIGNAL);
  /* Until the client is done with us. */
  while (recv(fd, buf, sizeof buf, 0) > 0) {
  }
  close(fd);
  return NULL;
}

static void scripted_start(scripted *s, const char *response,
                           const unsigned char *after, size_t after_len) {
  s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(s->listen_fd, 16), 0);
  socklen_t len = sizeof a;
  getsockname(s->listen_fd, (struct sockaddr *)&a, &len);
  s->port = ntohs(a.sin_port);
  s->response = response;
  s->after = after;
  s->after_len = after_len;
  pthread_create(&s->thread, NULL, scripted_run, s);
}

static void scripted_stop(scripted *s) {
  pthread_join(s->thread, NULL);
  close(s->listen_fd);
}

#define OK_HEAD                                                     \
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"      \
  "Connection: Upgrade\r\nSec-WebSocket-Accept: KEY\r\n"

typedef struct hostile_case {
  const char *name;
  const char *response;
  const unsigned char *after;
  size_t after_len;
  int kind;        /* the terminate reason */
  int http_status; /* HANDSHAKE_FAILED: the status reported */
  const char *failure_part;
} hostile_case;

static const unsigned char kMaskedText[] = {0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1,
                                            'i' ^ 2};
static const unsigned char kBadCloseCode[] = {0x88, 0x02, 0x03, 0xed}; /* 1005 */

static void test_hostile_servers_are_refused(void **unused) {
  (void)unused;
  const hostile_case cases[] = {
      {"wrong accept",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
       "Connection: Upgrade\r\nSec-WebSocket-Accept: "
       "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
       NULL, 0, LARIAT_REASON_HANDSHAKE_FAILED, 101, "Accept"},
      {"unoffered subprotocol", OK_HEAD "Sec-WebSocket-Protocol: evil\r\n\r\n",
       NULL, 0, LARIAT_REASON_HANDSHAKE_FAILED, 101, "subprotocol"},
      {"unoffered extension parameter",
       OK_HEAD "Sec-WebSocket-Extensions: permessage-deflate; x=1\r\n\r\n", NULL,
       0, LARIAT_REASON_HANDSHAKE_FAILED, 101, "extension"},
      {"200 instead of 101",
       "HTTP/1.1 200 OK\r\nX-Test: hello\r\nContent-Length: 0\r\n\r\n", NULL, 0,
       LARIAT_REASON_HANDSHAKE_FAILED, 200, "101"},
      {"no upgrade header",
       "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Accept: KEY\r\n\r\n",
       NULL, 0, LARIAT_REASON_HANDSHAKE_FAILED, 101, "Upgrade"},
      {"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", NULL, 0,
       LARIAT_REASON_HANDSHAKE_FAILED, 0, "HTTP"},
      {"masked server frame", OK_HEAD "\r\n", kMaskedText, sizeof kMaskedText,
       LARIAT_REASON_ERROR_BADFRAME, 0, ""},
      {"invalid close code", OK_HEAD "\r\n", kBadCloseCode,
       sizeof kBadCloseCode, LARIAT_REASON_ERROR_BADFRAME, 0, ""},
  };
  running r;
  start_on(&r, 0);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    const hostile_case *c = &cases[i];
    scripted s;
    scripted_start(&s, c->response, c->after, c->after_len);
    client_log l;
    log_init(&l, 0);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", s.port);
    assert_int_equal(lariat_connect(r.server, url, &kClient, NULL, NULL, &l, NULL),
                     0);
    if (wait_done(&l, 5000) != 0) fail_msg("%s: no terminate", c->name);
    if (l.ends_reason[0].kind != c->kind)
      fail_msg("%s: reason %s, not %s (%s)", c->name,
               lariat_reason_name(l.ends_reason[0].kind),
               lariat_reason_name(c->kind), l.failure[0]);
    if (c->kind == LARIAT_REASON_HANDSHAKE_FAILED) {
      if (l.inits != 0) fail_msg("%s: websocket_init was called", c->name);
      if (l.ends_reason[0].http_status != c->http_status)
        fail_msg("%s: status %d", c->name, l.ends_reason[0].http_status);
      if (!strstr(l.failure[0], c->failure_part))
        fail_msg("%s: failure \"%s\"", c->name, l.failure[0]);
    }
    if (c->http_status == 200) assert_string_equal(l.header[0], "hello");
    scripted_stop(&s);
  }
  stop(&r);
}

static int open_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  while (readdir(d)) ++n;
  closedir(d);
  return n;
}

/* |n| attempts from |r|'s loop at a listener that never accepts (its
 * backlog takes the connects), over |scheme| with |o| (its timeouts set
 * here: 2 s connect, 300 ms handshake): each ends at its handshake
 * timeout, and every descriptor comes back. */
static void attempts_time_out(running *r, const char *scheme, int n,
                              lariat_client_options *o) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 4096), 0);
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  int before = open_fds();
  client_log *logs = calloc((size_t)n, sizeof *logs);
  assert_non_null(logs);
  assert_int_equal(lariat_client_options_set_timeouts(o, 2000, 300), 0);
  char url[64];
  snprintf(url, sizeof url, "%s://127.0.0.1:%d/", scheme, ntohs(a.sin_port));
  uint64_t t0 = now_ms();
  for (int i = 0; i < n; ++i) {
    log_init(&logs[i], 0);
    assert_int_equal(lariat_connect(r->server, url, &kClient, NULL, o, &logs[i], NULL),
                     0);
  }
  for (int i = 0; i < n; ++i) {
    assert_int_equal(wait_done(&logs[i], 10000), 0);
    assert_int_equal(logs[i].ends_reason[0].kind, LARIAT_REASON_HANDSHAKE_FAILED);
    assert_string_equal(logs[i].failure[0], "handshake timeout");
    assert_true(logs[i].end_at[0] - t0 >= 300);
  }
  /* The listener's backlog still holds the server ends; the client ends
   * are all closed. */
  sleep_ms(50);
  assert_true(open_fds() <= before);
  close(fd);
  free(logs);
}

/* 1,000 ws:// attempts at a listener that never answers. */
static void test_silent_server_times_out(void **unused) {
  (void)unused;
  running r;
  start_on(&r, 0);
  lariat_client_options *o;
  assert_int_equal(lariat_client_options_new(&o), 0);
  attempts_time_out(&r, "ws", 1000, o);
  lariat_client_options_del(o);
  stop(&r);
}

/* The server goes away and comes back on the same port 2 s later: the
 * client retries with the policy's spacing, opens again (websocket_init a
 * second time), and what was posted during the outage arrives after it. */
static void test_reconnects_after_an_outage(void **unused) {
  (void)unused;
  running client_side;
  start_on(&client_side, 0); /* the client's own loop */
  running r;
  start_on(&r, 0);
  int port = r.port;
  client_log l;
  log_init(&l, 0);
  lariat_client_options *o;
  assert_int_equal(lariat_client_options_new(&o), 0);
  assert_int_equal(lariat_client_options_set_reconnect(o, 100, 800, 2.0, 0.25, 0), 0);
  assert_int_equal(lariat_client_options_set_offline_queue(o, 3), 0);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
  lariat_conn_id id;
  assert_int_equal(lariat_connect(client_side.server, url, &kClient, NULL, o,
                                  &l, &id),
                   0);
  lariat_client_options_del(o);
  assert_int_equal(wait_inits(&l, 1, 5000), 0);
  stop(&r);
  uint64_t down_at = now_ms();
  sleep_ms(300);
  /* Posted while down: 3 are kept, 2 dropped. */
  static int numbers[5] = {0, 1, 2, 3, 4};
  for (int i = 0; i < 5; ++i)
    assert_int_equal(lariat_post(client_side.server, id, &numbers[i], NULL), 0);
  sleep_ms((int)(2000 - (now_ms() - down_at)));
  start_on(&r, port);
  assert_int_equal(wait_inits(&l, 2, 5000), 0);
  sleep_ms(100);
  pthread_mutex_lock(&l.lock);
  int ends = l.ends;
  assert_true(ends >= 3); /* the drop, then refused retries */
  for (int i = 0; i < ends; ++i) assert_int_equal(l.ends_reason[i].retrying, 1);
  assert_int_equal(l.ends_reason[0].kind == LARIAT_REASON_SHUTDOWN, 0);
  /* Retry n waits min(800, 100 * 2^(n-1)) +-25%: the gaps between the
   * end of one attempt and the end of the next (a refused connect ends
   * at once). */
  for (int i = 1; i < ends && i < 5; ++i) {
    double want = 100.0;
    for (int k = 1; k < i; ++k) want *= 2;
    if (want > 800) want = 800;
    double gap = (double)(l.end_at[i] - l.end_at[i - 1]);
    if (gap < want * 0.75 - 5 || gap > want * 1.25 + 60)
      fail_msg("retry %d after %.0f ms, policy %.0f +-25%%", i, gap, want);
  }
  assert_int_equal(l.infos, 3);
  assert_true(l.info_order_ok);
  assert_int_equal(l.inits, 2);
  pthread_mutex_unlock(&l.lock);
  assert_int_equal(lariat_client_close(client_side.server, id), 0);
  assert_int_equal(wait_done(&l, 5000), 0);
  assert_int_equal(l.ends_reason[l.ends - 1].kind, LARIAT_REASON_SHUTDOWN);
  assert_int_equal(l.ends_reason[l.ends - 1].retrying, 0);
  assert_int_equal(l.ends_reason[l.ends - 1].posts_dropped, 2);
  stop(&r);
  stop(&client_side);
}

/* A stopping server ends its clients, connected or waiting to retry. */
static void test_stop_ends_clients(void **unused) {
  (void)unused;
  running r;
  start_on(&r, 0);
  client_log open_one, waiting_one;
  log_init(&open_one, 0);
  log_init(&waiting_one, 0);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", r.port);
  assert_int_equal(lariat_connect(r.server, url, &kClient, NULL, NULL, &open_one, NULL), 0);
  lariat_client_options *o;
  assert_int_equal(lariat_client_options_new(&o), 0);
  assert_int_equal(lariat_client_options_set_reconnect(o, 60000, 60000, 1, 0, 0), 0);
  /* Nothing listens on port 1: refused, then a minute's wait. */
  assert_int_equal(lariat_connect(r.server, "ws://127.0.0.1:1/", &kClient, NULL,
                                  o, &waiting_one, NULL), 0);
  lariat_client_options_del(o);
  assert_int_equal(wait_inits(&open_one, 1, 5000), 0);
  sleep_ms(200);
  stop(&r);
  assert_int_equal(open_one.done, 1);
  assert_int_equal(waiting_one.done, 1);
  assert_int_equal(open_one.ends_reason[open_one.ends - 1].kind, LARIAT_REASON_SHUTDOWN);
  assert_int_equal(waiting_one.ends_reason[waiting_one.ends - 1].kind,
                   LARIAT_REASON_SHUTDOWN);
  assert_int_equal(waiting_one.ends_reason[0].kind, LARIAT_REASON_HANDSHAKE_FAILED);
  assert_int_equal(waiting_one.ends_reason[0].socket_error, UV_ECONNREFUSED);
}

/* ------------------------------------------------------------ wss:// */

/* The run's test CA, a server certificate it signs for localhost and
 * 127.0.0.1, one it signs for only.test, a CA nobody trusts, and a
 * self-signed certificate. */
static test_cert ca, leaf, only_leaf, other_ca, self_signed;

static int make_certs(void **unused) {
  (void)unused;
  srand((unsigned)time(NULL));
  test_cert_make(&ca, "lariat test CA", NULL, NULL, 1);
  test_cert_make(&leaf, "localhost", "DNS:localhost,IP:127.0.0.1", &ca, 0);
  test_cert_make(&only_leaf, "only.test", "DNS:only.test", &ca, 0);
  test_cert_make(&other_ca, "another CA", NULL, NULL, 1);
  test_cert_make(&self_signed, "localhost", "DNS:localhost,IP:127.0.0.1", NULL, 0);
  return 0;
}

static int free_certs(void **unused) {
  (void)unused;
  test_cert_free(&ca);
  test_cert_free(&leaf);
  test_cert_free(&only_leaf);
  test_cert_free(&other_ca);
  test_cert_free(&self_signed);
  return 0;
}

static lariat_client_options *trusting(const test_cert *authority) {
  lariat_client_options *o;
  assert_int_equal(lariat_client_options_new(&o), 0);
  assert_int_equal(lariat_client_options_set_tls_ca(o, authority->cafile, NULL), 0);
  return o;
}

/* 1,000 echoes over wss:// to a lariat server of the same process, by
 * address and by name (SNI, with a subprotocol and permessage-deflate);
 * the request left only after the TLS handshake (the server read it
 * through TLS, or nothing would echo). */
static void test_wss_echoes_with_a_lariat_server(void **unused) {
  (void)unused;
  running r;
  start_wss(&r, &leaf, 0);
  const char *forms[] = {"wss://127.0.0.1:%d/echo", "wss://localhost:%d/echo?deflate"};
  for (int i = 0; i < 2; ++i) {
    client_log l;
    log_init(&l, 1000);
    lariat_client_options *o = trusting(&ca);
    if (i == 1) {
      assert_int_equal(lariat_client_options_add_protocol(o, "chat.v2"), 0);
      assert_int_equal(lariat_client_options_set_deflate(o, LARIAT_DEFLATE_ENABLE, 1), 0);
    }
    char url[64];
    snprintf(url, sizeof url, forms[i], r.tls_port);
    assert_int_equal(lariat_connect(r.server, url, &kClient, NULL, o, &l, NULL), 0);
    lariat_client_options_del(o);
    assert_int_equal(wait_done(&l, 20000), 0);
    if (l.messages != 1000)
      fail_msg("%s: %d echoes; ended: %s failure %s", url, l.messages,
               lariat_reason_name(l.ends_reason[0].kind), l.failure[0]);
    assert_true(l.in_order);
    assert_string_equal(l.tls_version, "TLSv1.3");
    assert_int_equal(l.ends_reason[0].kind, LARIAT_REASON_SHUTDOWN);
    if (i == 1) {
      assert_string_equal(l.protocol, "chat.v2");
      assert_int_equal(l.compressed, 1);
    }
  }
  assert_int_equal(lariat_tls_failures(r.tls, NULL, 0), 0);
  stop(&r);
}

typedef struct cert_case {
  const char *name;
  const test_cert *served;
  const test_cert *trusted; /* NULL: the system's CAs */
  const char *server_name;  /* NULL: the URL's host */
  int by_dir;               /* |trusted| as a hashed CA directory */
  int insecure;
  const char *failure_part; /* NULL: the connection opens */
} cert_case;

/* Every certificate that must not verify is refused, the attempt ending
 * as a failed handshake with OpenSSL's reason and websocket_init never
 * called; the server hears the client's alert. What should verify does,
 * including a name given apart from the URL, and the explicitly insecure
 * switch takes anything. */
static void test_wss_verifies_the_server(void **unused) {
  (void)unused;
  const cert_case cases[] = {
      {"the test CA", &leaf, &ca, NULL, 0, 0, NULL},
      {"the test CA in a hashed directory", &leaf, &ca, NULL, 1, 0, NULL},
      {"another CA in a hashed directory", &leaf, &other_ca, NULL, 1, 0,
       "certificate verify failed: unable to get local issuer certificate"},
      {"unknown CA (system CAs)", &leaf, NULL, NULL, 0, 0,
       "certificate verify failed: unable to get local issuer certificate"},
      {"unknown CA (another CA file)", &leaf, &other_ca, NULL, 0, 0,
       "certificate verify failed: unable to get local issuer certificate"},
      {"self-signed", &self_signed, &ca, NULL, 0, 0, "certificate verify failed"},
      {"wrong host name", &leaf, &ca, "other.test", 0, 0,
       "certificate verify failed: hostname mismatch"},
      {"no IP address in the certificate", &only_leaf, &ca, NULL, 0, 0,
       "certificate verify failed: IP address mismatch"},
      {"the name given apart from the URL", &only_leaf, &ca, "only.test", 0, 0, NULL},
      {"insecure, self-signed", &self_signed, NULL, NULL, 0, 1, NULL},
      {"insecure, wrong name", &only_leaf, NULL, "other.test", 0, 1, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    const cert_case *c = &cases[i];
    running r;
    start_wss(&r, c->served, 0);
    lariat_client_options *o;
    char dir[64] = "", link[128] = "";
    if (c->by_dir) {
      /* As `openssl rehash` lays it out: <subject hash>.0 -> the PEM. */
      snprintf(dir, sizeof dir, "/tmp/lariat-ca-dir-XXXXXX");
      assert_non_null(mkdtemp(dir));
      snprintf(link, sizeof link, "%s/%08lx.0", dir,
               X509_subject_name_hash((X509 *)c->trusted->x509));
      assert_int_equal(symlink(c->trusted->cafile, link), 0);
      assert_int_equal(lariat_client_options_new(&o), 0);
      assert_int_equal(lariat_client_options_set_tls_ca(o, NULL, dir), 0);
    } else if (c->trusted) {
      o = trusting(c->trusted);
    } else {
      assert_int_equal(lariat_client_options_new(&o), 0);
    }
    if (c->server_name)
      assert_int_equal(lariat_client_options_set_tls_server_name(o, c->server_name), 0);
    if (c->insecure)
      assert_int_equal(lariat_client_options_set_tls_insecure_no_verify(o, 1), 0);
    client_log l;
    log_init(&l, c->failure_part ? 0 : 10);
    char url[64];
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/", r.tls_port);
    assert_int_equal(lariat_connect(r.server, url, &kClient, NULL, o, &l, NULL), 0);
    lariat_client_options_del(o);
    if (wait_done(&l, 10000) != 0) fail_msg("%s: no terminate", c->name);
    if (c->by_dir) {
      unlink(link);
      rmdir(dir);
    }
    if (c->failure_part) {
      if (l.ends_reason[0].kind != LARIAT_REASON_HANDSHAKE_FAILED ||
          !strstr(l.failure[0], c->failure_part))
        fail_msg("%s: %s \"%s\"", c->name,
                 lariat_reason_name(l.ends_reason[0].kind), l.failure[0]);
      assert_int_equal(l.inits, 0);
      assert_int_equal(l.ends_reason[0].socket_error, UV_EPROTO);
      assert_int_equal(l.ends_reason[0].http_status, 0);
      /* The client's alert reaches the server (counted there). */
      for (int waited = 0; waited < 2000 && lariat_tls_failures(r.tls, NULL, 0) == 0;
           waited += 5)
        sleep_ms(5);
      if (lariat_tls_failures(r.tls, NULL, 0) != 1)
        fail_msg("%s: the server counted %llu failures", c->name,
                 (unsigned long long)lariat_tls_failures(r.tls, NULL, 0));
    } else {
      if (l.messages != 10)
        fail_msg("%s: %d echoes, %s \"%s\"", c->name, l.messages,
                 lariat_reason_name(l.ends_reason[0].kind), l.failure[0]);
      assert_int_equal(l.ends_reason[0].kind, LARIAT_REASON_SHUTDOWN);
    }
    stop(&r);
  }
}

/* wss:// to a server in clear is refused as a TLS failure (it answers the
 * ClientHello with an HTTP 400); 100 wss:// attempts at a listener that
 * never answers end at the handshake timeout, every descriptor back. */
static void test_wss_to_plain_and_silent_servers(void **unused) {
  (void)unused;
  running r;
  start_on(&r, 0);
  lariat_client_options *o = trusting(&ca);
  attempts_time_out(&r, "wss", 100, o);
  lariat_client_options_del(o);

  /* After the descriptor count: the server's end of this attempt closes
   * on its own thread. */
  client_log l;
  log_init(&l, 0);
  char url[64];
  snprintf(url, sizeof url, "wss://127.0.0.1:%d/", r.port);
  assert_int_equal(lariat_connect(r.server, url, &kClient, NULL, NULL, &l, NULL), 0);
  assert_int_equal(wait_done(&l, 10000), 0);
  assert_int_equal(l.ends_reason[0].kind, LARIAT_REASON_HANDSHAKE_FAILED);
  if (strncmp(l.failure[0], "TLS handshake failed: ", 22) != 0)
    fail_msg("failure \"%s\"", l.failure[0]);
  stop(&r);
}

/* A wss:// server that restarts: the client's next attempt does the TLS
 * handshake and the upgrade again (websocket_init a second time),
 * resuming the session of the connection before when the server still
 * has the lariat_tls that sealed its ticket (the server closed the first
 * connection), and falling back to a full handshake when it does not (a
 * new server process, new ticket keys). */
static void test_wss_reconnects(void **unused) {
  (void)unused;
  running client_side;
  start_on(&client_side, 0);
  running r;
  start_wss(&r, &leaf, 0);
  int port = r.tls_port;
  client_log l;
  log_init(&l, 0);
  l.bye = 1;
  lariat_client_options *o = trusting(&ca);
  assert_int_equal(lariat_client_options_set_reconnect(o, 50, 200, 2.0, 0, 0), 0);
  char url[64];
  snprintf(url, sizeof url, "wss://127.0.0.1:%d/", port);
  lariat_conn_id id;
  assert_int_equal(lariat_connect(client_side.server, url, &kClient, NULL, o, &l, &id), 0);
  lariat_client_options_del(o);
  assert_int_equal(wait_inits(&l, 2, 5000), 0);
  assert_int_equal(l.ends_reason[0].kind, LARIAT_REASON_REMOTE);
  assert_int_equal(l.ends_reason[0].retrying, 1);
  assert_int_equal(l.resumed[0], 0);
  assert_int_equal(l.resumed[1], 1);
  stop(&r);
  sleep_ms(300);
  start_wss(&r, &leaf, port);
  assert_int_equal(wait_inits(&l, 3, 5000), 0);
  assert_string_equal(l.tls_version, "TLSv1.3");
  assert_int_equal(l.resumed[2], 0);
  assert_int_equal(lariat_client_close(client_side.server, id), 0);
  assert_int_equal(wait_done(&l, 5000), 0);
  assert_int_equal(l.ends_reason[l.ends - 1].kind, LARIAT_REASON_SHUTDOWN);
  stop(&r);
  stop(&client_side);
}

static void test_wss_option_errors(void **unused) {
  (void)unused;
  lariat_client_options *o;
  assert_int_equal(lariat_client_options_new(&o), 0);
  assert_int_equal(lariat_client_options_set_tls_ca(o, NULL, NULL),
                   LARIAT_ERR_INVALID_ARGUMENT);
  assert_int_equal(lariat_client_options_set_tls_ca(o, "/nonexistent/ca.pem", NULL),
                   LARIAT_ERR_TLS);
  /* A file with no certificate in it (a key). */
  assert_int_equal(lariat_client_options_set_tls_ca(o, leaf.keyfile, NULL),
                   LARIAT_ERR_TLS);
  assert_int_equal(lariat_client_options_set_tls_server_name(o, "a\r\nb"),
                   LARIAT_ERR_INVALID_ARGUMENT);
  assert_int_equal(lariat_client_options_set_tls_server_name(o, NULL), 0);
  assert_int_equal(lariat_client_options_set_tls_ca(NULL, ca.cafile, NULL),
                   LARIAT_ERR_INVALID_ARGUMENT);
  assert_int_equal(lariat_client_options_set_tls_insecure_no_verify(NULL, 1),
                   LARIAT_ERR_INVALID_ARGUMENT);
  lariat_client_options_del(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_echoes_with_a_lariat_server),
      cmocka_unit_test(test_negotiates_protocol_and_deflate),
      cmocka_unit_test(test_ipv6_and_names),
      cmocka_unit_test(test_bad_urls),
      cmocka_unit_test(test_hostile_servers_are_refused),
      cmocka_unit_test(test_silent_server_times_out),
      cmocka_unit_test(test_reconnects_after_an_outage),
      cmocka_unit_test(test_stop_ends_clients),
      cmocka_unit_test(test_wss_echoes_with_a_lariat_server),
      cmocka_unit_test(test_wss_verifies_the_server),
      cmocka_unit_test(test_wss_to_plain_and_silent_servers),
      cmocka_unit_test(test_wss_reconnects),
      cmocka_unit_test(test_wss_option_errors),
  };
  return cmocka_run_group_tests(tests, make_certs, free_certs);
}
