/* wss:// over loopback (issue 11): the probe server of harness.c with a
 * TLS listener beside its plain one, clients through tlstunnel (OpenSSL
 * over a real socket) and openssl s_client. Certificates are made here,
 * in memory, for each run: no key is committed. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "test_certs.h"
#include "tlstunnel.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static th_server srv;

static test_cert cert_a, cert_b, cert_c;

static lariat_tls *tls_of(const test_cert *c) {
  lariat_tls *tls;
  TH_EQ(lariat_tls_new(&tls), 0);
  TH_EQ(lariat_tls_add_cert_pem(tls, c->cert, c->cert_len, c->key, c->key_len), 0);
  return tls;
}

/* Starts the probe server with |tls| (NULL: cert_a) on one loop, or on
 * |threads| loops of its own. */
static void start(lariat_tls *tls, unsigned threads, uint64_t handshake_ms) {
  th_init_config init = srv.init;
  memset(&srv, 0, sizeof srv);
  srv.init = init;
  srv.tls = tls ? tls : tls_of(&cert_a);
  lariat_options *opts;
  TH_EQ(lariat_options_new(&opts), 0);
  if (threads > 1) {
    srv.owned_loop = 1;
    TH_EQ(lariat_options_set_threads(opts, threads), 0);
  }
  if (handshake_ms) TH_EQ(lariat_options_set_handshake_timeout(opts, handshake_ms), 0);
  TH_EQ(lariat_options_set_max_frame_size(opts, 32u << 20), 0);
  th_start(&srv, NULL, opts);
  lariat_options_del(opts);
}

static void stop(void) {
  lariat_tls *tls = srv.tls;
  th_stop(&srv);
  lariat_tls_del(tls);
  memset(&srv.init, 0, sizeof srv.init); /* the next test starts afresh */
}

/* A wsc over TLS: the tunnel's plaintext end, upgraded on /probe. */
static tlt *open_wss(wsc *c, const tlt_options *o) {
  tlt *t;
  int fd;
  char why[256];
  tlt_options def = {0};
  def.cafile = cert_a.cafile;
  if (tlt_open(&t, srv.tls_port, o ? o : &def, &fd, why, sizeof why, 5000) != 0)
    fail_msg("TLS handshake: %s", why);
  wsc_attach(c, fd);
  TH_EQ(wsc_handshake(c, "/probe", NULL, NULL, 5000), 101);
  return t;
}

static void echo_ok(wsc *c, const char *text) {
  TH_EQ(wsc_send_text(c, text), 0);
  TH_EQ(th_expect_text(c, text, 5000), 0);
}

/* ------------------------------------------------------------- tests */

static void test_wss_echo_and_plain_side_by_side(void **st) {
  (void)st;
  start(NULL, 1, 0);
  wsc c, p;
  tlt *t = open_wss(&c, NULL);
  assert_string_equal(tlt_version(t), "TLSv1.3");
  echo_ok(&c, "hello over TLS");
  TH_EQ(wsc_send_text(&c, "!tls"), 0);
  TH_EQ(th_expect_text(&c, "TLSv1.3", 5000), 0);
  uint8_t big[100000];
  for (size_t i = 0; i < sizeof big; ++i) big[i] = (uint8_t)(i * 7);
  TH_EQ(wsc_send_binary(&c, big, sizeof big), 0);
  wsc_frame f;
  TH_EQ(wsc_recv_message(&c, &f, 5000), 1);
  TH_EQ(f.len, sizeof big);
  TH_EQ(memcmp(f.payload, big, sizeof big), 0);
  wsc_frame_free(&f);
  /* The plain listener of the same server. */
  th_open(&srv, &p);
  TH_EQ(wsc_send_text(&p, "!tls"), 0);
  TH_EQ(th_expect_text(&p, "none", 5000), 0);
  wsc_close(&p);
  TH_EQ(wsc_send_close(&c, 1000, "", 0), 0);
  TH_EQ(wsc_expect_close(&c, 1000, 5000), 0);
  tlt_close(t, 1);
  wsc_close(&c);
  TH_EQ(th_wait_terminates(&srv, 2, 5000), 0);
  stop();
}

/* openssl s_client as the client: the upgrade and one masked frame. */
static void test_openssl_s_client(void **st) {
  (void)st;
  start(NULL, 1, 0);
  char out[] = "/tmp/lariat-sclient-XXXXXX";
  int fd = mkstemp(out);
  assert_true(fd >= 0);
  close(fd);
  char cmd[1024];
  /* "hello" masked with 01 02 03 04. */
  snprintf(cmd, sizeof cmd,
           "(printf 'GET /probe HTTP/1.1\\r\\nHost: localhost\\r\\n"
           "Upgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n"
           "Sec-WebSocket-Version: 13\\r\\n\\r\\n';"
           " printf '\\201\\205\\001\\002\\003\\004\\151\\147\\157\\150\\156';"
           " sleep 1) | timeout 10 openssl s_client -quiet -no_ign_eof -connect "
           "127.0.0.1:%d -servername localhost -alpn http/1.1 "
           "-CAfile %s -verify_return_error > %s 2>/dev/null",
           srv.tls_port, cert_a.cafile, out);
  TH_EQ(system(cmd), 0);
  FILE *f = fopen(out, "rb");
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  unlink(out);
  buf[n] = 0;
  assert_non_null(strstr(buf, "HTTP/1.1 101"));
  assert_non_null(strstr(buf, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
  assert_non_null(memmem(buf, n, "\x81\x05hello", 7));
  stop();
}

/* The ciphertext one byte per TCP segment, handshake included. */
static void test_one_byte_per_send(void **st) {
  (void)st;
  start(NULL, 1, 0);
  tlt_options o = {0};
  o.cafile = cert_a.cafile;
  o.send_chunk = 1;
  wsc c;
  tlt *t = open_wss(&c, &o);
  echo_ok(&c, "byte by byte");
  char text[3000];
  memset(text, 'x', sizeof text - 1);
  text[sizeof text - 1] = 0;
  echo_ok(&c, text);
  tlt_close(t, 1);
  wsc_close(&c);
  stop();
}

/* Thousands of small frames whose ciphertext leaves in 64 KiB bursts:
 * many records per read, and every echo in order. */
static void test_64k_bursts(void **st) {
  (void)st;
  start(NULL, 1, 0);
  tlt_options o = {0};
  o.cafile = cert_a.cafile;
  o.burst = 65536;
  wsc c;
  tlt *t = open_wss(&c, &o);
  enum { N = 3000 };
  char msg[64];
  for (int i = 0; i < N; ++i) {
    snprintf(msg, sizeof msg, "m%05d-0123456789abcdef0123456789abcdef", i);
    TH_EQ(wsc_send_text(&c, msg), 0);
  }
  for (int i = 0; i < N; ++i) {
    snprintf(msg, sizeof msg, "m%05d-0123456789abcdef0123456789abcdef", i);
    TH_EQ(th_expect_text(&c, msg, 5000), 0);
  }
  tlt_close(t, 1);
  wsc_close(&c);
  stop();
}

/* 16 MiB each way, while the client reads nothing for 2 s. */
static void test_16mib_with_stalled_reader(void **st) {
  (void)st;
  srv.init.max_queued = 64u << 20;
  start(NULL, 1, 0);
  wsc c;
  tlt *t = open_wss(&c, NULL);
  size_t n = 16u << 20;
  uint8_t *big = malloc(n);
  for (size_t i = 0; i < n; ++i) big[i] = (uint8_t)(i ^ (i >> 9));
  TH_EQ(wsc_send_binary(&c, big, n), 0);
  th_sleep_ms(2000);
  wsc_frame f;
  c.max_payload = 32u << 20;
  TH_EQ(wsc_recv_message(&c, &f, 20000), 1);
  TH_EQ(f.len, n);
  TH_EQ(memcmp(f.payload, big, n), 0);
  wsc_frame_free(&f);
  TH_EQ(wsc_send_text(&c, "after"), 0);
  for (;;) { /* "drained" may come first: the queue fell below low water */
    TH_EQ(wsc_recv_message(&c, &f, 5000), 1);
    int done = strcmp((const char *)f.payload, "after") == 0;
    wsc_frame_free(&f);
    if (done) break;
  }
  free(big);
  tlt_close(t, 1);
  wsc_close(&c);
  stop();
}

/* The cap and drain count ciphertext: with a client that reads nothing
 * the queued output stays under max_queued, and drain comes once the
 * client catches up. */
static void test_backpressure_counts_ciphertext(void **st) {
  (void)st;
  srv.init.max_queued = 1u << 20;
  srv.init.backpressure_policy = LARIAT_BACKPRESSURE_REFUSE;
  srv.init.low_water = 64 * 1024;
  start(NULL, 1, 0);
  wsc c;
  tlt *t = open_wss(&c, NULL);
  for (int i = 0; i < 40; ++i) TH_EQ(wsc_send_text(&c, "!flood 64 65536"), 0);
  for (int tries = 0; tries < 1000; ++tries) {
    pthread_mutex_lock(&srv.mutex);
    int done = srv.flood_rounds;
    pthread_mutex_unlock(&srv.mutex);
    if (done >= 40) break;
    th_sleep_ms(10);
  }
  TH_EQ(srv.flood_rounds, 40);
  assert_true(srv.flood_max_queued <= (1u << 20));
  assert_true(srv.flood_refusals > 0);
  long binaries = 0;
  for (;;) {
    wsc_frame f;
    TH_EQ(wsc_recv_frame(&c, &f, 5000), 1);
    int drained = f.opcode == WSC_OP_TEXT &&
                  strcmp((const char *)f.payload, "drained") == 0;
    if (f.opcode == WSC_OP_BINARY) binaries++;
    wsc_frame_free(&f);
    if (drained) break;
  }
  TH_EQ(binaries, srv.flood_sent);
  tlt_close(t, 1);
  wsc_close(&c);
  stop();
  assert_true(srv.drains >= 1);
}

/* A paused connection decrypts nothing; what arrived meanwhile comes in
 * order after the resume (kept ciphertext decrypted from the loop). */
static void test_pause_stops_decrypting(void **st) {
  (void)st;
  start(NULL, 1, 0);
  wsc c;
  tlt *t = open_wss(&c, NULL);
  TH_EQ(wsc_send_text(&c, "!id"), 0);
  wsc_frame f;
  TH_EQ(wsc_recv_message(&c, &f, 5000), 1);
  lariat_conn_id id = strtoull((const char *)f.payload, NULL, 10);
  wsc_frame_free(&f);
  TH_EQ(wsc_send_text(&c, "!pause"), 0);
  TH_EQ(th_expect_text(&c, "paused", 5000), 0);
  pthread_mutex_lock(&srv.mutex);
  int handled = srv.handle_calls;
  pthread_mutex_unlock(&srv.mutex);
  for (int i = 0; i < 50; ++i) TH_EQ(wsc_send_text(&c, "queued"), 0);
  th_sleep_ms(300);
  pthread_mutex_lock(&srv.mutex);
  TH_EQ(srv.handle_calls, handled);
  pthread_mutex_unlock(&srv.mutex);
  TH_EQ(wsc_recv_frame(&c, &(wsc_frame){0}, 100), -ETIMEDOUT);
  TH_EQ(th_post_resume(&srv, id), 0);
  for (int i = 0; i < 50; ++i) TH_EQ(th_expect_text(&c, "queued", 5000), 0);
  echo_ok(&c, "after");
  tlt_close(t, 1);
  wsc_close(&c);
  stop();
}

static void test_sni_picks_the_certificate(void **st) {
  (void)st;
  lariat_tls *tls = tls_of(&cert_a);
  TH_EQ(lariat_tls_add_cert_pem(tls, cert_b.cert, cert_b.cert_len, cert_b.key,
                                cert_b.key_len),
        0);
  start(tls, 1, 0);
  struct {
    const char *sni, *cn, *ca;
  } cases[] = {{"a.test", "a.test", cert_a.cafile},
               {"b.test", "b.test", cert_b.cafile},
               {"www.b.test", "b.test", cert_b.cafile},
               {"unknown.test", "a.test", cert_a.cafile},
               {NULL, "a.test", cert_a.cafile}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    tlt_options o = {0};
    o.sni = cases[i].sni;
    o.cafile = cases[i].ca;
    wsc c;
    tlt *t = open_wss(&c, &o);
    assert_string_equal(tlt_peer_cn(t), cases[i].cn);
    echo_ok(&c, "sni");
    tlt_close(t, 1);
    wsc_close(&c);
  }
  stop();
}

static void test_alpn(void **st) {
  (void)st;
  start(NULL, 1, 0);
  tlt_options o = {0};
  o.cafile = cert_a.cafile;
  o.alpn = (const unsigned char *)"\x02h2\x08http/1.1";
  o.alpn_len = 12;
  wsc c;
  tlt *t = open_wss(&c, &o);
  assert_string_equal(tlt_alpn(t), "http/1.1");
  echo_ok(&c, "alpn");
  tlt_close(t, 1);
  wsc_close(&c);
  /* Only h2 offered: refused with no_application_protocol. */
  uint64_t before = lariat_tls_failures(srv.tls, NULL, 0);
  o.alpn = (const unsigned char *)"\x02h2";
  o.alpn_len = 3;
  int fd;
  char why[256];
  TH_EQ(tlt_open(&t, srv.tls_port, &o, &fd, why, sizeof why, 5000), -1);
  assert_non_null(strstr(why, "no application protocol"));
  for (int i = 0; i < 200 && lariat_tls_failures(srv.tls, NULL, 0) == before; ++i)
    th_sleep_ms(10);
  char reason[128];
  TH_EQ(lariat_tls_failures(srv.tls, reason, sizeof reason), before + 1);
  assert_true(reason[0] != 0);
  stop();
}

/* Tickets resume across the server's loops, in TLS 1.3 and 1.2. */
static void resume_on(int version) {
  start(NULL, 2, 0);
  tlt_options o = {0};
  o.cafile = cert_a.cafile;
  o.max_version = version;
  wsc c;
  tlt *t = open_wss(&c, &o);
  echo_ok(&c, "first");
  TH_EQ(wsc_send_text(&c, "!resumed"), 0);
  TH_EQ(th_expect_text(&c, "full", 5000), 0);
  SSL_SESSION *session = tlt_session(t, 5000);
  assert_non_null(session);
  TH_EQ(tlt_resumed(t), 0);
  tlt_close(t, 1);
  wsc_close(&c);
  o.session = session;
  for (int i = 0; i < 8; ++i) {  /* SO_REUSEPORT spreads them over both loops */
    t = open_wss(&c, &o);
    TH_EQ(tlt_resumed(t), 1);
    echo_ok(&c, "resumed");
    TH_EQ(wsc_send_text(&c, "!resumed"), 0);  /* the server's view too */
    TH_EQ(th_expect_text(&c, "resumed", 5000), 0);
    tlt_close(t, 1);
    wsc_close(&c);
  }
  SSL_SESSION_free(session);
  stop();
}

static void test_resumption_tls13(void **st) {
  (void)st;
  resume_on(0);
}

static void test_resumption_tls12(void **st) {
  (void)st;
  resume_on(TLS1_2_VERSION);
}

static void test_renegotiation_refused(void **st) {
  (void)st;
  start(NULL, 1, 0);
  tlt_options o = {0};
  o.cafile = cert_a.cafile;
  o.max_version = TLS1_2_VERSION;
  wsc c;
  tlt *t = open_wss(&c, &o);
  echo_ok(&c, "before");
  TH_EQ(tlt_renegotiate(t, 5000), 0);
  tlt_close(t, 0);
  wsc_close(&c);
  /* The server is none the worse. */
  t = open_wss(&c, &o);
  echo_ok(&c, "after");
  tlt_close(t, 1);
  wsc_close(&c);
  stop();
}

static void test_key_update_mid_stream(void **st) {
  (void)st;
  start(NULL, 1, 0);
  wsc c;
  tlt *t = open_wss(&c, NULL);
  echo_ok(&c, "before");
  for (int round = 0; round < 3; ++round) {
    TH_EQ(tlt_key_update(t), 0);
    for (int i = 0; i < 20; ++i) echo_ok(&c, "after a key update");
  }
  tlt_close(t, 1);
  wsc_close(&c);
  stop();
}

/* The first bytes of a real ClientHello. */
static size_t client_hello(uint8_t *out, size_t cap) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL *ssl = SSL_new(ctx);
  BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, r, w);
  SSL_set_connect_state(ssl);
  SSL_do_handshake(ssl);
  int n = BIO_read(w, out, (int)cap);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return n > 0 ? (size_t)n : 0;
}

static int raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  TH_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* 1: the server closed (EOF or reset) within timeout_ms. */
static int closed_within(int fd, int timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  uint8_t buf[4096];
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    if (poll(&p, 1, 10) > 0) {
      ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return 1;
    }
  }
  return 0;
}

/* Garbage on the TLS port: closed, counted, no terminate, nothing on
 * stderr. */
static void test_garbage_closes_quietly(void **st) {
  (void)st;
  start(NULL, 1, 0);
  uint8_t hello[2048];
  size_t hello_len = client_hello(hello, sizeof hello);
  assert_true(hello_len > 100);
  uint8_t noise[4096];
  for (size_t i = 0; i < sizeof noise; ++i) noise[i] = (uint8_t)rand();
  noise[0] = 0x16; /* a handshake record... */
  noise[1] = 0x77; /* ...of no TLS version (random bytes could make a
                      valid header, and the server then waits for the
                      record's body like any TLS stack) */
  struct {
    const void *p;
    size_t n;
    int then_close;
  } inputs[] = {
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, 0},
      {noise, sizeof noise, 0},
      {noise + 1, sizeof noise - 1, 0},
      {hello, hello_len / 2, 1}, /* truncated, then the client leaves */
      {"\x15\x03\x03\x00\x02\x02\x28", 7, 0}, /* a fatal alert */
  };
  enum { NINPUTS = sizeof inputs / sizeof inputs[0] };
  uint64_t before = lariat_tls_failures(srv.tls, NULL, 0);
  /* The server's stderr goes to a file while the garbage flows; the
   * checks come after it is back. */
  char errpath[] = "/tmp/lariat-tls-stderr-XXXXXX";
  int errfd = mkstemp(errpath);
  int saved = dup(2);
  fflush(stderr);
  dup2(errfd, 2);
  int closed[NINPUTS];
  for (int i = 0; i < NINPUTS; ++i) {
    int fd = raw_connect(srv.tls_port);
    send(fd, inputs[i].p, inputs[i].n, MSG_NOSIGNAL);
    if (inputs[i].then_close) shutdown(fd, SHUT_WR);
    closed[i] = closed_within(fd, 5000);
    close(fd);
  }
  for (int i = 0; i < 300; ++i) {
    if (lariat_tls_failures(srv.tls, NULL, 0) >= before + NINPUTS) break;
    th_sleep_ms(10);
  }
  char reason[128];
  uint64_t failures = lariat_tls_failures(srv.tls, reason, sizeof reason);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  struct stat sb;
  fstat(errfd, &sb);
  close(errfd);
  unlink(errpath);
  for (int i = 0; i < NINPUTS; ++i)
    if (closed[i] != 1) fail_msg("input %d was not closed", i);
  TH_EQ(failures, before + NINPUTS);
  TH_EQ(sb.st_size, 0);
  /* Still serving. */
  wsc c;
  tlt *t = open_wss(&c, NULL);
  echo_ok(&c, "still here");
  tlt_close(t, 1);
  wsc_close(&c);
  TH_EQ(th_wait_terminates(&srv, 1, 5000), 0);
  stop();
  TH_EQ(srv.terminates, 1); /* only the real client's */
  TH_EQ(srv.init_calls, 1);
}

/* Dropping TCP without close_notify: after the WebSocket close it is a
 * normal end (remote), before it "error closed". */
static void test_ends_without_close_notify(void **st) {
  (void)st;
  start(NULL, 1, 0);
  wsc c;
  tlt *t = open_wss(&c, NULL);
  echo_ok(&c, "one");
  TH_EQ(wsc_send_close(&c, 1000, "bye", 3), 0);
  TH_EQ(wsc_expect_close(&c, 1000, 5000), 0);
  tlt_close(t, 0); /* no close_notify */
  wsc_close(&c);
  TH_EQ(th_wait_terminates(&srv, 1, 5000), 0);
  TH_EQ(th_terminate_at(&srv, 0).kind, LARIAT_REASON_REMOTE);
  t = open_wss(&c, NULL);
  echo_ok(&c, "two");
  tlt_close(t, 0);
  wsc_close(&c);
  TH_EQ(th_wait_terminates(&srv, 2, 5000), 0);
  TH_EQ(th_terminate_at(&srv, 1).kind, LARIAT_REASON_ERROR_CLOSED);
  /* close_notify before the WebSocket close is the same early end. */
  t = open_wss(&c, NULL);
  echo_ok(&c, "three");
  tlt_close(t, 1);
  wsc_close(&c);
  TH_EQ(th_wait_terminates(&srv, 3, 5000), 0);
  TH_EQ(th_terminate_at(&srv, 2).kind, LARIAT_REASON_ERROR_CLOSED);
  stop();
}

static size_t heap_in_use(void) {
  malloc_trim(0);
  return mallinfo2().uordblks;
}

/* 1,000 clients stall in the middle of their ClientHello: each is closed
 * at the handshake timeout (2 s), and the heap returns to where it was. */
static void test_stalled_handshakes_time_out(void **st) {
  (void)st;
  enum { N = 1000 };
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 2 * N + 100 && rl.rlim_max >= 2 * N + 100) {
    rl.rlim_cur = 2 * N + 100;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  start(NULL, 1, 2000);
  /* Warm up: the loop's shared TLS buffers exist before the baseline. */
  wsc c;
  tlt *t = open_wss(&c, NULL);
  echo_ok(&c, "warm");
  tlt_close(t, 1);
  wsc_close(&c);
  TH_EQ(th_wait_terminates(&srv, 1, 5000), 0);
  size_t baseline = heap_in_use();
  uint8_t hello[2048];
  size_t hello_len = client_hello(hello, sizeof hello);
  static int fds[N];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < N; ++i) {
    fds[i] = raw_connect(srv.tls_port);
    TH_EQ(send(fds[i], hello, hello_len / 3, MSG_NOSIGNAL), (ssize_t)(hello_len / 3));
  }
  for (int i = 0; i < 150 && lariat_server_connection_count(srv.server) < N; ++i)
    th_sleep_ms(10);
  /* Sanitizers may be too slow to have them all before the first go. */
  if (!SANITIZED) TH_EQ(lariat_server_connection_count(srv.server), N);
  size_t stalled = heap_in_use();
  for (int i = 0; i < N; ++i) {
    TH_EQ(closed_within(fds[i], 5000), 1);
    close(fds[i]);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  assert_true(secs >= 1.9 && secs < 30);
  for (int i = 0; i < 200 && lariat_server_connection_count(srv.server) > 0; ++i)
    th_sleep_ms(10);
  TH_EQ(lariat_server_connection_count(srv.server), 0);
  size_t after = heap_in_use();
  print_message("stalled handshakes: heap %zu -> %zu (%zu B each) -> %zu\n",
                baseline, stalled, (stalled - baseline) / N, after);
  if (!SANITIZED) assert_true(after <= baseline + 64 * 1024);
  assert_true(lariat_tls_failures(srv.tls, NULL, 0) >= N);
  stop();
}

/* A TLS 1.3 connection runs on Tls13Records once its handshake is over,
 * and hibernation frees their cipher contexts: everything still works
 * after each sleep - small and multi-record messages both ways, the
 * peer's key updates, hibernating again, the close with close_notify -
 * and TLS 1.2 (which keeps its SSL) too. */
static void hibernate_round(wsc *c, tlt *t, int version) {
  TH_EQ(wsc_send_text(c, "!hibernate"), 0);
  TH_EQ(th_expect_text(c, "hibernate", 5000), 0);
  th_sleep_ms(50); /* the server sleeps once its event is over */
  echo_ok(c, "after sleep");
  size_t n = 100000;
  uint8_t *big = malloc(n);
  for (size_t i = 0; i < n; ++i) big[i] = (uint8_t)(i * 13);
  TH_EQ(wsc_send_binary(c, big, n), 0);
  wsc_frame f;
  TH_EQ(wsc_recv_message(c, &f, 5000), 1);
  TH_EQ(f.len, n);
  TH_EQ(memcmp(f.payload, big, n), 0);
  wsc_frame_free(&f);
  free(big);
  TH_EQ(wsc_send_text(c, "!tls"), 0);
  TH_EQ(th_expect_text(c, version == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3", 5000), 0);
  if (version != TLS1_2_VERSION) {
    TH_EQ(tlt_key_update(t), 0);
    for (int i = 0; i < 5; ++i) echo_ok(c, "after a key update");
  }
}

static void sleep_and_wake(int version) {
  start(NULL, 1, 0);
  tlt_options o = {0};
  o.cafile = cert_a.cafile;
  o.max_version = version;
  wsc c;
  tlt *t = open_wss(&c, &o);
  echo_ok(&c, "awake");
  for (int round = 0; round < 3; ++round) hibernate_round(&c, t, version);
  /* The close handshake, then close_notify both ways. */
  TH_EQ(wsc_send_close(&c, 1000, "", 0), 0);
  TH_EQ(wsc_expect_close(&c, 1000, 5000), 0);
  TH_EQ(tlt_wait_end(t, 5000), 1); /* the server's close_notify or FIN */
  tlt_close(t, 1);
  wsc_close(&c);
  TH_EQ(th_wait_terminates(&srv, 1, 5000), 0);
  TH_EQ(th_terminate_at(&srv, 0).kind, LARIAT_REASON_REMOTE);
  /* One that hibernates, then leaves without close_notify early. */
  t = open_wss(&c, &o);
  TH_EQ(wsc_send_text(&c, "!hibernate"), 0);
  TH_EQ(th_expect_text(&c, "hibernate", 5000), 0);
  th_sleep_ms(50);
  tlt_close(t, 0);
  wsc_close(&c);
  TH_EQ(th_wait_terminates(&srv, 2, 5000), 0);
  TH_EQ(th_terminate_at(&srv, 1).kind, LARIAT_REASON_ERROR_CLOSED);
  stop();
}

static void test_hibernate_without_the_ssl(void **st) {
  (void)st;
  sleep_and_wake(0);
}

static void test_hibernate_tls12_keeps_its_ssl(void **st) {
  (void)st;
  sleep_and_wake(TLS1_2_VERSION);
}

/* Reloaded certificates serve new connections; open ones go on. */
static void test_certificate_reload(void **st) {
  (void)st;
  start(NULL, 1, 0);
  wsc old;
  tlt *t_old = open_wss(&old, NULL);
  assert_string_equal(tlt_peer_cn(t_old), "a.test");
  lariat_tls *renewed = tls_of(&cert_c);
  TH_EQ(lariat_tls_reload(srv.tls, renewed), 0);
  lariat_tls_del(renewed);
  tlt_options o = {0};
  o.cafile = cert_c.cafile;
  wsc c;
  tlt *t = open_wss(&c, &o);
  assert_string_equal(tlt_peer_cn(t), "c.test");
  echo_ok(&c, "new certificate");
  echo_ok(&old, "old connection");
  tlt_close(t, 1);
  wsc_close(&c);
  tlt_close(t_old, 1);
  wsc_close(&old);
  lariat_tls *empty;
  TH_EQ(lariat_tls_new(&empty), 0);
  TH_EQ(lariat_tls_reload(srv.tls, empty), LARIAT_ERR_INVALID_ARGUMENT);
  lariat_tls_del(empty);
  stop();
}

static void test_configuration_errors(void **st) {
  (void)st;
  lariat_tls *tls;
  TH_EQ(lariat_tls_new(&tls), 0);
  TH_EQ(lariat_tls_add_cert_pem(tls, "junk", 4, "junk", 4), LARIAT_ERR_TLS);
  /* A key that is not the certificate's. */
  TH_EQ(lariat_tls_add_cert_pem(tls, cert_a.cert, cert_a.cert_len, cert_b.key,
                                cert_b.key_len),
        LARIAT_ERR_TLS);
  TH_EQ(lariat_tls_add_cert_file(tls, "/nonexistent.pem", "/nonexistent.key"),
        UV_ENOENT);
  TH_EQ(lariat_tls_add_cert_file(tls, cert_a.cafile, cert_a.cafile), LARIAT_ERR_TLS);
  lariat_server *server;
  TH_EQ(lariat_server_new(&server, NULL, NULL), 0);
  TH_EQ(lariat_server_listen_tls(server, "127.0.0.1", 0, tls), LARIAT_ERR_TLS);
  TH_EQ(lariat_server_listen_tls(server, "127.0.0.1", 0, NULL),
        LARIAT_ERR_INVALID_ARGUMENT);
  TH_EQ(lariat_server_tls_port(server), LARIAT_ERR_INVALID_STATE);
  lariat_server_del(server);
  lariat_tls_del(tls);
  lariat_tls_del(NULL);
  TH_EQ(lariat_tls_failures(NULL, NULL, 0), 0);
  assert_null(lariat_conn_tls_version(NULL));
}

static int setup(void **st) {
  (void)st;
  srand((unsigned)time(NULL));
  test_cert_make(&cert_a, "a.test", "DNS:a.test,DNS:localhost,IP:127.0.0.1",
                 NULL, 0);
  test_cert_make(&cert_b, "b.test", "DNS:b.test,DNS:*.b.test", NULL, 0);
  test_cert_make(&cert_c, "c.test", "DNS:a.test,DNS:c.test,IP:127.0.0.1",
                 NULL, 0);
  return 0;
}

static int teardown(void **st) {
  (void)st;
  test_cert_free(&cert_a);
  test_cert_free(&cert_b);
  test_cert_free(&cert_c);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_configuration_errors),
      cmocka_unit_test(test_wss_echo_and_plain_side_by_side),
      cmocka_unit_test(test_openssl_s_client),
      cmocka_unit_test(test_one_byte_per_send),
      cmocka_unit_test(test_64k_bursts),
      cmocka_unit_test(test_16mib_with_stalled_reader),
      cmocka_unit_test(test_backpressure_counts_ciphertext),
      cmocka_unit_test(test_pause_stops_decrypting),
      cmocka_unit_test(test_sni_picks_the_certificate),
      cmocka_unit_test(test_alpn),
      cmocka_unit_test(test_resumption_tls13),
      cmocka_unit_test(test_resumption_tls12),
      cmocka_unit_test(test_renegotiation_refused),
      cmocka_unit_test(test_key_update_mid_stream),
      cmocka_unit_test(test_garbage_closes_quietly),
      cmocka_unit_test(test_ends_without_close_notify),
      cmocka_unit_test(test_stalled_handshakes_time_out),
      cmocka_unit_test(test_certificate_reload),
      cmocka_unit_test(test_hibernate_without_the_ssl),
      cmocka_unit_test(test_hibernate_tls12_keeps_its_ssl),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
