/* The HTTP/1.1 upgrade over loopback: every rejection gets its status and
 * never reaches init, and slow clients are cut off by the handshake
 * timeout. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <stdlib.h>

#include "harness.h"

static th_server srv;

#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define UPGRADE "Upgrade: websocket\r\nConnection: Upgrade\r\n"

/* Sends |request| and returns the status; checks init was not called. */
static int status_of(const char *request, wsc_response *keep) {
  wsc c;
  wsc_response r;
  TH_EQ(wsc_connect(&c, "127.0.0.1", srv.port, 2000), 0);
  int status = wsc_request(&c, request, &r, 3000);
  if (keep)
    *keep = r;
  else
    wsc_response_free(&r);
  /* The server ends the connection after an error response. */
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  return status;
}

static void test_rejections(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc_response r;

  TH_EQ(status_of("GET /probe HTTP/1.1\r\nHost: x\r\n" UPGRADE KEY
                  "Sec-WebSocket-Version: 12\r\n\r\n",
                  &r),
        426);
  assert_string_equal(wsc_header(&r, "sec-websocket-version"), "13, 8, 7");
  wsc_response_free(&r);

  TH_EQ(status_of("GET /probe HTTP/1.1\r\nHost: x\r\n" UPGRADE
                  "Sec-WebSocket-Version: 13\r\n\r\n",
                  NULL),
        400); /* missing key */
  TH_EQ(status_of("GET /probe HTTP/1.1\r\nHost: x\r\n" UPGRADE
                  "Sec-WebSocket-Key: c2hvcnQ=\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n",
                  NULL),
        400); /* key of 5 bytes */
  TH_EQ(status_of("GET /probe HTTP/1.1\r\nHost: x\r\n" UPGRADE
                  "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n",
                  NULL),
        400); /* not base64 */
  TH_EQ(status_of("POST /probe HTTP/1.1\r\nHost: x\r\n" UPGRADE KEY
                  "Sec-WebSocket-Version: 13\r\n\r\n",
                  NULL),
        400); /* wrong method */
  TH_EQ(status_of("GET /probe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: keep-alive\r\n" KEY
                  "Sec-WebSocket-Version: 13\r\n\r\n",
                  NULL),
        400); /* Connection without upgrade */
  TH_EQ(status_of("GET /probe HTTP/1.1\r\nHost: x\r\n" UPGRADE
                  "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n"
                  "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n^n:ds[4U",
                  NULL),
        400); /* hixie-76 */
  TH_EQ(status_of("GET /nowhere HTTP/1.1\r\nHost: x\r\n" UPGRADE KEY
                  "Sec-WebSocket-Version: 13\r\n\r\n",
                  NULL),
        404);
  TH_EQ(status_of("GET /probe HTTP/1.1\r\nHost x\r\n\r\n", NULL), 400);
  TH_EQ(status_of("GARBAGE\r\n\r\n", NULL), 400);

  /* An oversized head: 431, never a crash. */
  size_t big = 9000;
  char *req = malloc(big + 64);
  int n = snprintf(req, 64, "GET /probe HTTP/1.1\r\nX-Big: ");
  memset(req + n, 'a', big);
  strcpy(req + n + big, "\r\n\r\n");
  TH_EQ(status_of(req, NULL), 431);
  /* Too many header lines: 431. */
  char *p = req;
  p += sprintf(p, "GET /probe HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 150; ++i) p += sprintf(p, "X-%d: 1\r\n", i);
  strcpy(p, "\r\n");
  TH_EQ(status_of(req, NULL), 431);
  free(req);

  th_stop(&srv);
  TH_EQ(srv.init_calls, 0);
  TH_EQ(srv.terminates, 0);
}

static void test_oversized_head_limit_option(void **st) {
  (void)st;
  lariat_options *opts;
  TH_EQ(lariat_options_new(&opts), 0);
  TH_EQ(lariat_options_set_max_head_size(opts, 256), 0);
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, opts);
  lariat_options_del(opts);
  char req[400];
  int n = snprintf(req, sizeof(req), "GET /probe HTTP/1.1\r\nX-Pad: ");
  memset(req + n, 'b', 300);
  strcpy(req + n + 300, "\r\n\r\n");
  TH_EQ(status_of(req, NULL), 431);
  th_stop(&srv);
}

/* A client that never finishes its request head is answered 408 and cut
 * off when the handshake timeout passes; a slow but steady one that
 * finishes in time is served. */
static void test_slow_client(void **st) {
  (void)st;
  lariat_options *opts;
  TH_EQ(lariat_options_new(&opts), 0);
  TH_EQ(lariat_options_set_handshake_timeout(opts, 300), 0);
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, opts);
  lariat_options_del(opts);

  wsc c;
  TH_EQ(wsc_connect(&c, "127.0.0.1", srv.port, 2000), 0);
  TH_EQ(wsc_send_raw(&c, "GET /probe HTTP/1.1\r\nHost:", 26), 0);
  uint8_t buf[256];
  int r = wsc_read_available(&c, buf, sizeof(buf) - 1, 3000);
  assert_true(r > 12);
  assert_memory_equal(buf, "HTTP/1.1 408", 12);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);

  TH_EQ(wsc_connect(&c, "127.0.0.1", srv.port, 2000), 0);
  static const char head[] = "GET /probe HTTP/1.1\r\nHost: x\r\n" UPGRADE KEY
                             "Sec-WebSocket-Version: 13\r\n\r\n";
  TH_EQ(wsc_send_raw_slowly(&c, head, sizeof(head) - 1, 0), 0);
  r = wsc_read_available(&c, buf, sizeof(buf) - 1, 3000);
  assert_true(r > 12);
  assert_memory_equal(buf, "HTTP/1.1 101", 12);
  wsc_close(&c);
  TH_EQ(th_wait_terminates(&srv, 1, 2000), 0);
  th_stop(&srv);
  TH_EQ(srv.init_calls, 1);
}

static void test_accept_key_vector(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc c;
  wsc_response r;
  TH_EQ(wsc_connect(&c, "127.0.0.1", srv.port, 2000), 0);
  TH_EQ(wsc_handshake(&c, "/probe",
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Connection: keep-alive, Upgrade\r\n"
                      "Upgrade: WebSocket\r\n",
                      &r, 2000),
        101);
  assert_string_equal(wsc_header(&r, "sec-websocket-accept"),
                      "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  wsc_response_free(&r);
  wsc_close(&c);
  th_stop(&srv);
  TH_EQ(srv.last_init_was_websocket, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rejections),
      cmocka_unit_test(test_oversized_head_limit_option),
      cmocka_unit_test(test_slow_client),
      cmocka_unit_test(test_accept_key_vector),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
