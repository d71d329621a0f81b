/* Frames in and out over loopback: every frame type, handler return
 * values, batching of replies, pipelining, tiny segments, UTF-8, meta
 * values, subprotocols and hibernation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static th_server srv;

static void start(void) {
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
}

static void expect_frame(wsc *c, int opcode, const void *payload, size_t len) {
  wsc_frame f;
  TH_EQ(wsc_recv_frame(c, &f, 2000), 1);
  TH_EQ(f.opcode, opcode);
  TH_EQ(f.fin, 1);
  TH_EQ(f.len, len);
  if (len) assert_memory_equal(f.payload, payload, len);
  wsc_frame_free(&f);
}

static void close_cleanly(wsc *c) {
  TH_EQ(wsc_send_close(c, 1000, NULL, 0), 0);
  TH_EQ(wsc_expect_close(c, 1000, 2000), 0);
  assert_true(wsc_wait_eof(c, 2000) >= 0);
  wsc_close(c);
}

static void test_text_and_binary_echo(void **st) {
  (void)st;
  start();
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_text(&c, "Hello"), 0);
  expect_frame(&c, WSC_OP_TEXT, "Hello", 5);
  TH_EQ(wsc_send_text(&c, ""), 0);
  expect_frame(&c, WSC_OP_TEXT, "", 0);
  size_t sizes[] = {1, 125, 126, 65535, 65536, 1000000};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); ++i) {
    uint8_t *p = malloc(sizes[i]);
    for (size_t j = 0; j < sizes[i]; ++j) p[j] = (uint8_t)(j * 7 + i);
    TH_EQ(wsc_send_binary(&c, p, sizes[i]), 0);
    expect_frame(&c, WSC_OP_BINARY, p, sizes[i]);
    free(p);
  }
  close_cleanly(&c);
  th_stop(&srv);
  TH_EQ(srv.terminates, 1);
}

/* Messages over many reads: a text message's UTF-8 is checked across
 * them, fragments join, and a bad byte deep in a large frame fails with
 * 1007. */
static void test_large_messages_over_many_reads(void **st) {
  (void)st;
  start();
  wsc c;
  th_open(&srv, &c);
  size_t n = 600000;
  char *text = malloc(n + 1);
  for (size_t i = 0; i < n; i += 3) memcpy(text + i, i % 2 ? "\xc3\xa9" "a" : "abc", 3);
  text[n] = 0;
  TH_EQ(wsc_send_frame(&c, 1, 0, WSC_OP_TEXT, text, n), 0);
  expect_frame(&c, WSC_OP_TEXT, text, n);
  uint8_t *bin = malloc(n);
  for (size_t i = 0; i < n; ++i) bin[i] = (uint8_t)(i * 13 + 5);
  TH_EQ(wsc_send_frame(&c, 0, 0, WSC_OP_BINARY, bin, 250000), 0);
  TH_EQ(wsc_send_frame(&c, 1, 0, WSC_OP_CONT, bin + 250000, n - 250000), 0);
  expect_frame(&c, WSC_OP_BINARY, bin, n);
  text[n - 10] = (char)0xff;
  TH_EQ(wsc_send_frame(&c, 1, 0, WSC_OP_TEXT, text, n), 0);
  TH_EQ(wsc_expect_close(&c, 1007, 2000), 0);
  wsc_close(&c);
  free(text);
  free(bin);
  th_stop(&srv);
  TH_EQ(srv.terminates, 1);
}

static void test_fragmented_message_reassembled(void **st) {
  (void)st;
  start();
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_frame(&c, 0, 0, WSC_OP_TEXT, "Hel", 3), 0);
  /* A ping between fragments is answered at once. */
  TH_EQ(wsc_send_frame(&c, 1, 0, WSC_OP_PING, "mid", 3), 0);
  TH_EQ(wsc_send_frame(&c, 0, 0, WSC_OP_CONT, "", 0), 0);
  TH_EQ(wsc_send_frame(&c, 1, 0, WSC_OP_CONT, "lo", 2), 0);
  expect_frame(&c, WSC_OP_PONG, "mid", 3);
  expect_frame(&c, WSC_OP_TEXT, "Hello", 5);
  close_cleanly(&c);
  th_stop(&srv);
}

static void test_ping_answered_and_shown(void **st) {
  (void)st;
  start();
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_frame(&c, 1, 0, WSC_OP_PING, "Hello", 5), 0);
  expect_frame(&c, WSC_OP_PONG, "Hello", 5);
  TH_EQ(wsc_send_frame(&c, 1, 0, WSC_OP_PING, "", 0), 0);
  expect_frame(&c, WSC_OP_PONG, "", 0);
  TH_EQ(wsc_send_frame(&c, 1, 0, WSC_OP_PONG, "unsolicited", 11), 0);
  TH_EQ(wsc_send_text(&c, "sync"), 0);
  expect_frame(&c, WSC_OP_TEXT, "sync", 4);
  close_cleanly(&c);
  th_stop(&srv);
  TH_EQ(srv.pings, 2);
  TH_EQ(srv.pongs, 1);
}

static void test_frames_out_ping_pong_close(void **st) {
  (void)st;
  start();
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_text(&c, "!ping"), 0);
  expect_frame(&c, WSC_OP_PING, "p", 1);
  TH_EQ(wsc_send_text(&c, "!pong"), 0);
  expect_frame(&c, WSC_OP_PONG, "p", 1);
  TH_EQ(wsc_send_text(&c, "!bigping"), 0);
  char expected[32];
  snprintf(expected, sizeof(expected), "rc=%d", LARIAT_ERR_TOO_LARGE);
  TH_EQ(th_expect_text(&c, expected, 2000), 0);
  static const int refused[] = {0, 999, 1004, 1005, 1006, 1015, 5000};
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); ++i) {
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "!badclose %d", refused[i]);
    TH_EQ(wsc_send_text(&c, cmd), 0);
    /* 0 is "close without a code", which is valid: expect a close. */
    if (refused[i] == 0) break;
    snprintf(expected, sizeof(expected), "rc=%d", LARIAT_ERR_BAD_CLOSE_CODE);
    TH_EQ(th_expect_text(&c, expected, 2000), 0);
  }
  /* !badclose 0 sent a close without a code; a later reply is refused. */
  wsc_frame f;
  TH_EQ(wsc_recv_frame(&c, &f, 2000), 1);
  TH_EQ(f.opcode, WSC_OP_CLOSE);
  TH_EQ(f.len, 0);
  wsc_frame_free(&f);
  TH_EQ(wsc_send_close(&c, -1, NULL, 0), 0);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  th_stop(&srv);
  TH_EQ(srv.terminates, 1);
  TH_EQ(srv.terminated[0].kind, LARIAT_REASON_SHUTDOWN);
}

static void test_close_with_code_and_payload_byte_exact(void **st) {
  (void)st;
  start();
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_text(&c, "!close 1001 some text!"), 0);
  uint8_t buf[64];
  int n = wsc_read_available(&c, buf, sizeof(buf), 2000);
  static const uint8_t expected[] = {0x88, 0x0c, 0x03, 0xe9, 's', 'o', 'm',
                                     'e',  ' ',  't',  'e',  'x', 't', '!'};
  TH_EQ(n, sizeof(expected));
  assert_memory_equal(buf, expected, sizeof(expected));
  TH_EQ(wsc_send_close(&c, 1001, NULL, 0), 0);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  th_stop(&srv);
}

static void test_three_replies_one_write(void **st) {
  (void)st;
  start();
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_text(&c, "!three"), 0);
  uint8_t buf[64];
  int n = wsc_read_available(&c, buf, sizeof(buf), 2000);
  static const uint8_t expected[] = {0x81, 1, '1', 0x81, 1, '2', 0x81, 1, '3'};
  TH_EQ(n, sizeof(expected));
  assert_memory_equal(buf, expected, sizeof(expected));
  close_cleanly(&c);
  th_stop(&srv);
}

static void test_frame_pipelined_with_upgrade(void **st) {
  (void)st;
  start();
  wsc c;
  TH_EQ(wsc_connect(&c, "127.0.0.1", srv.port, 2000), 0);
  char req[512];
  uint8_t frame[32];
  static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t fn = wsc_encode_frame(frame, sizeof(frame), 1, 0, WSC_OP_TEXT, mask,
                               "Hello", 5);
  static const uint8_t rfc[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                0x7f, 0x9f, 0x4d, 0x51, 0x58};
  TH_EQ(fn, sizeof(rfc));
  assert_memory_equal(frame, rfc, sizeof(rfc));
  int n = snprintf(req, sizeof(req),
                   "GET /probe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n");
  memcpy(req + n, frame, fn);
  TH_EQ(wsc_send_raw(&c, req, (size_t)n + fn), 0);
  uint8_t buf[512];
  size_t got = 0;
  /* The 101 and the echo may come in one read or two. */
  static const char head[] =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
  static const uint8_t echo[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
  while (got < sizeof(head) - 1 + sizeof(echo)) {
    int r = wsc_read_available(&c, buf + got, sizeof(buf) - got, 2000);
    assert_true(r > 0);
    got += (size_t)r;
  }
  TH_EQ(got, sizeof(head) - 1 + sizeof(echo));
  assert_memory_equal(buf, head, sizeof(head) - 1);
  assert_memory_equal(buf + sizeof(head) - 1, echo, sizeof(echo));
  wsc_close(&c);
  th_stop(&srv);
}

static void test_message_one_byte_per_segment(void **st) {
  (void)st;
  start();
  wsc c;
  th_open(&srv, &c);
  uint8_t frame[64];
  static const uint8_t mask[4] = {1, 2, 3, 4};
  static const char text[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
  size_t n = wsc_encode_frame(frame, sizeof(frame), 1, 0, WSC_OP_TEXT, mask,
                              text, sizeof(text) - 1);
  TH_EQ(wsc_send_raw_slowly(&c, frame, n, 2), 0);
  expect_frame(&c, WSC_OP_TEXT, text, sizeof(text) - 1);
  close_cleanly(&c);
  th_stop(&srv);
}

static void test_utf8_valid_split_everywhere(void **st) {
  (void)st;
  start();
  wsc c;
  th_open(&srv, &c);
  /* 2-, 3- and 4-byte characters, split at every byte across fragments. */
  static const char text[] = "a\xc2\xa2\xe2\x82\xac\xf0\x9f\x98\x80z";
  size_t len = sizeof(text) - 1;
  for (size_t cut = 0; cut <= len; ++cut) {
    TH_EQ(wsc_send_frame(&c, 0, 0, WSC_OP_TEXT, text, cut), 0);
    TH_EQ(wsc_send_frame(&c, 1, 0, WSC_OP_CONT, text + cut, len - cut), 0);
    expect_frame(&c, WSC_OP_TEXT, text, len);
  }
  close_cleanly(&c);
  th_stop(&srv);
}

static void test_utf8_invalid_sequences(void **st) {
  (void)st;
  static const char *bad[] = {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                              "\xff", "\xe2\x82", "\xf8\x88\x80\x80\x80"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
    start();
    wsc c;
    th_open(&srv, &c);
    TH_EQ(wsc_send_frame(&c, 1, 0, WSC_OP_TEXT, bad[i], strlen(bad[i])), 0);
    TH_EQ(wsc_expect_close(&c, 1007, 2000), 0);
    wsc_close(&c);
    TH_EQ(th_wait_terminates(&srv, 1, 2000), 0);
    th_stop(&srv);
    TH_EQ(srv.terminated[0].kind, LARIAT_REASON_ERROR_BADENCODING);
  }
}

/* Fail fast: the server closes on the first fragment that cannot become
 * valid, without waiting for the message to end. */
static void test_utf8_fail_fast(void **st) {
  (void)st;
  start();
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_frame(&c, 0, 0, WSC_OP_TEXT, "ok\xf4\x90", 4), 0);
  TH_EQ(wsc_expect_close(&c, 1007, 2000), 0);
  wsc_close(&c);
  th_stop(&srv);
  TH_EQ(srv.terminated[0].kind, LARIAT_REASON_ERROR_BADENCODING);
}

static void test_utf8_validation_off(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  srv.init.validate_utf8 = -1;
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  c.check_utf8 = 0;
  TH_EQ(wsc_send_frame(&c, 1, 0, WSC_OP_TEXT, "\xff\xfe", 2), 0);
  expect_frame(&c, WSC_OP_TEXT, "\xff\xfe", 2);
  close_cleanly(&c);
  th_stop(&srv);
}

static void test_meta_and_versions(void **st) {
  (void)st;
  start();
  static const char *versions[] = {"13", "8", "7"};
  for (int i = 0; i < 3; ++i) {
    wsc c;
    char extra[64], expected[32];
    snprintf(extra, sizeof(extra), "Sec-WebSocket-Version: %s\r\n",
             versions[i]);
    TH_EQ(wsc_connect(&c, "127.0.0.1", srv.port, 2000), 0);
    TH_EQ(wsc_handshake(&c, "/probe", extra, NULL, 2000), 101);
    TH_EQ(wsc_send_text(&c, "!meta"), 0);
    snprintf(expected, sizeof(expected), "v=%s c=0 p=-", versions[i]);
    TH_EQ(th_expect_text(&c, expected, 2000), 0);
    close_cleanly(&c);
  }
  th_stop(&srv);
  TH_EQ(srv.terminates, 3);
}

static void test_subprotocol_chosen_by_init(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  srv.init.protocol = "superchat";
  th_start(&srv, NULL, NULL);
  wsc c;
  wsc_response r;
  TH_EQ(wsc_connect(&c, "127.0.0.1", srv.port, 2000), 0);
  TH_EQ(wsc_handshake(&c, "/probe",
                      "Sec-WebSocket-Protocol: chat, superchat\r\n", &r, 2000),
        101);
  assert_string_equal(wsc_header(&r, "sec-websocket-protocol"), "superchat");
  wsc_response_free(&r);
  TH_EQ(wsc_send_text(&c, "!meta"), 0);
  TH_EQ(th_expect_text(&c, "v=13 c=0 p=superchat", 2000), 0);
  close_cleanly(&c);
  /* Not offered: no protocol header in the answer. */
  TH_EQ(wsc_connect(&c, "127.0.0.1", srv.port, 2000), 0);
  TH_EQ(wsc_handshake(&c, "/probe", "Sec-WebSocket-Protocol: chat\r\n", &r,
                      2000),
        101);
  assert_null(wsc_header(&r, "sec-websocket-protocol"));
  wsc_response_free(&r);
  close_cleanly(&c);
  th_stop(&srv);
}

static void test_hibernate(void **st) {
  (void)st;
  start();
  wsc c;
  lariat_conn_id id = th_open_with_id(&srv, &c);
  TH_EQ(th_post(&srv, id, -1, 0, 1), 0);
  TH_EQ(th_expect_text(&c, "hib=0", 2000), 0);
  TH_EQ(wsc_send_text(&c, "!hibernate"), 0);
  TH_EQ(th_expect_text(&c, "hibernate", 2000), 0);
  TH_EQ(th_post(&srv, id, -1, 0, 1), 0);
  TH_EQ(th_expect_text(&c, "hib=1", 2000), 0);
  /* The next data wakes it up and is handled as usual. */
  TH_EQ(wsc_send_text(&c, "awake"), 0);
  TH_EQ(th_expect_text(&c, "awake", 2000), 0);
  TH_EQ(th_post(&srv, id, -1, 0, 1), 0);
  TH_EQ(th_expect_text(&c, "hib=0", 2000), 0);
  close_cleanly(&c);
  th_stop(&srv);
}

static void test_ipv6(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, "::1", NULL);
  wsc c;
  TH_EQ(wsc_connect(&c, "::1", srv.port, 2000), 0);
  TH_EQ(wsc_handshake(&c, "/probe", NULL, NULL, 2000), 101);
  TH_EQ(wsc_send_text(&c, "over v6"), 0);
  TH_EQ(th_expect_text(&c, "over v6", 2000), 0);
  close_cleanly(&c);
  th_stop(&srv);
}

/* lariat_server_new(NULL loop) + lariat_server_run(): the owned loop
 * serves, and run returns once the server has stopped. */
static void test_owned_loop(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  srv.owned_loop = 1;
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_text(&c, "own loop"), 0);
  TH_EQ(th_expect_text(&c, "own loop", 2000), 0);
  TH_EQ(lariat_server_stop_async(srv.server), 0); /* from this thread */
  TH_EQ(wsc_expect_close(&c, 1001, 2000), 0);
  TH_EQ(wsc_send_close(&c, 1001, NULL, 0), 0);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  uv_thread_join(&srv.thread); /* lariat_server_run returned by itself */
  lariat_server_del(srv.server);
  TH_EQ(srv.terminates, 1);
  TH_EQ(srv.terminated[0].kind, LARIAT_REASON_SHUTDOWN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_text_and_binary_echo),
      cmocka_unit_test(test_large_messages_over_many_reads),
      cmocka_unit_test(test_fragmented_message_reassembled),
      cmocka_unit_test(test_ping_answered_and_shown),
      cmocka_unit_test(test_frames_out_ping_pong_close),
      cmocka_unit_test(test_close_with_code_and_payload_byte_exact),
      cmocka_unit_test(test_three_replies_one_write),
      cmocka_unit_test(test_frame_pipelined_with_upgrade),
      cmocka_unit_test(test_message_one_byte_per_segment),
      cmocka_unit_test(test_utf8_valid_split_everywhere),
      cmocka_unit_test(test_utf8_invalid_sequences),
      cmocka_unit_test(test_utf8_fail_fast),
      cmocka_unit_test(test_utf8_validation_off),
      cmocka_unit_test(test_meta_and_versions),
      cmocka_unit_test(test_subprotocol_chosen_by_init),
      cmocka_unit_test(test_hibernate),
      cmocka_unit_test(test_ipv6),
      cmocka_unit_test(test_owned_loop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
