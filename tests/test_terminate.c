/* Every row of the terminate-reason table, over real loopback sockets:
 * the close code on the wire and the reason terminate gets, exactly once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static th_server srv;

static void expect_one_terminate(int kind) {
  TH_EQ(th_wait_terminates(&srv, 1, 5000), 0);
  th_terminate t = th_terminate_at(&srv, 0);
  if (t.kind != kind)
    fail_msg("terminate kind %s, expected %s", lariat_reason_name(t.kind),
             lariat_reason_name(kind));
}

static void stop_and_check_once(void) {
  th_stop(&srv);
  TH_EQ(srv.terminates, 1);
}

static void test_normal_plain_reply(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  srv.init.reply_status = 200;
  th_start(&srv, NULL, NULL);
  wsc c;
  wsc_response r;
  TH_EQ(wsc_connect(&c, "127.0.0.1", srv.port, 2000), 0);
  TH_EQ(wsc_request(&c, "GET /probe HTTP/1.1\r\nHost: x\r\n\r\n", &r, 2000),
        200);
  assert_string_equal(wsc_header(&r, "x-probe"), "yes");
  assert_string_equal(r.body, "plain");
  wsc_response_free(&r);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_NORMAL);
  TH_EQ(th_terminate_at(&srv, 0).had_conn, 0);
  stop_and_check_once();
}

static void test_normal_upgrade_refused_for_plain_request(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc c;
  wsc_response r;
  TH_EQ(wsc_connect(&c, "127.0.0.1", srv.port, 2000), 0);
  TH_EQ(wsc_request(&c, "GET /probe HTTP/1.1\r\nHost: x\r\n\r\n", &r, 2000),
        426);
  assert_string_equal(wsc_header(&r, "upgrade"), "websocket");
  assert_string_equal(wsc_header(&r, "connection"), "upgrade");
  wsc_response_free(&r);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_NORMAL);
  stop_and_check_once();
}

static void test_remote_without_code(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_close(&c, -1, NULL, 0), 0);
  TH_EQ(wsc_expect_close(&c, -1, 2000), 0);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_REMOTE);
  TH_EQ(th_terminate_at(&srv, 0).code, 0);
  TH_EQ(th_terminate_at(&srv, 0).had_conn, 1);
  stop_and_check_once();
}

static void test_remote_with_code_and_payload(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_close(&c, 4001, "bye now", 7), 0);
  TH_EQ(wsc_expect_close(&c, 4001, 2000), 0);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_REMOTE);
  th_terminate t = th_terminate_at(&srv, 0);
  TH_EQ(t.code, 4001);
  TH_EQ(t.len, 7);
  assert_memory_equal(t.data, "bye now", 7);
  stop_and_check_once();
}

static void test_shutdown_return(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_text(&c, "before"), 0);
  TH_EQ(wsc_send_text(&c, "!shutdown"), 0);
  TH_EQ(th_expect_text(&c, "before", 2000), 0);
  TH_EQ(wsc_expect_close(&c, 1000, 2000), 0);
  TH_EQ(wsc_send_close(&c, 1000, NULL, 0), 0);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_SHUTDOWN);
  stop_and_check_once();
}

static void test_shutdown_by_close_reply(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_text(&c, "!close 4321 see you"), 0);
  wsc_frame f;
  TH_EQ(wsc_recv_frame(&c, &f, 2000), 1);
  TH_EQ(f.opcode, WSC_OP_CLOSE);
  TH_EQ(f.close_code, 4321);
  assert_string_equal(f.close_reason, "see you");
  wsc_frame_free(&f);
  TH_EQ(wsc_send_close(&c, 4321, NULL, 0), 0);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_SHUTDOWN);
  stop_and_check_once();
}

static void test_shutdown_by_server_stop(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_text(&c, "!stop"), 0);
  TH_EQ(wsc_expect_close(&c, 1001, 2000), 0);
  TH_EQ(wsc_send_close(&c, 1001, NULL, 0), 0);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_SHUTDOWN);
  stop_and_check_once();
}

static void test_timeout(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  srv.init.idle_timeout_ms = 500;
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  /* Data received resets the countdown: keep talking past the timeout. */
  for (int i = 0; i < 4; ++i) {
    th_sleep_ms(100);
    TH_EQ(wsc_send_text(&c, "tick"), 0);
    TH_EQ(th_expect_text(&c, "tick", 2000), 0);
  }
  TH_EQ(srv.terminates, 0);
  TH_EQ(wsc_expect_close(&c, 1000, 2000), 0);
  TH_EQ(wsc_send_close(&c, 1000, NULL, 0), 0);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_TIMEOUT);
  stop_and_check_once();
}

static void test_timeout_changed_later(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL); /* infinity by default */
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_text(&c, "!idle 150"), 0);
  TH_EQ(th_expect_text(&c, "ok", 2000), 0);
  TH_EQ(wsc_expect_close(&c, 1000, 2000), 0);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_TIMEOUT);
  stop_and_check_once();
}

static void test_crash(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_text(&c, "!crash"), 0);
  TH_EQ(wsc_expect_close(&c, 1011, 2000), 0);
  TH_EQ(wsc_send_close(&c, 1011, NULL, 0), 0);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_CRASH);
  th_terminate t = th_terminate_at(&srv, 0);
  assert_string_equal(t.crash_class, "probe");
  assert_string_equal(t.crash_reason, "asked to");
  stop_and_check_once();
}

static void test_crash_in_init(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  srv.init.crash = 1;
  th_start(&srv, NULL, NULL);
  wsc c;
  TH_EQ(wsc_connect(&c, "127.0.0.1", srv.port, 2000), 0);
  TH_EQ(wsc_handshake(&c, "/probe", NULL, NULL, 2000), 500);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_CRASH);
  assert_string_equal(th_terminate_at(&srv, 0).crash_class, "probe");
  assert_string_equal(th_terminate_at(&srv, 0).crash_reason, "init asked to");
  stop_and_check_once();
}

/* Sends |bytes| on an open connection and expects close |code| and the
 * terminate reason |kind|. */
static void expect_failure(const void *bytes, size_t n, int code, int kind) {
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  TH_EQ(wsc_send_raw(&c, bytes, n), 0);
  int rc = wsc_expect_close(&c, code, 2000);
  if (rc != 0)
    fail_msg("expected close %d, got rc %d (code %d)", code, rc,
             c.last_close_code);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  expect_one_terminate(kind);
  stop_and_check_once();
}

static void send_frame_expect(int fin, int rsv, int opcode, int masked,
                              const void *payload, size_t len, int code,
                              int kind) {
  uint8_t buf[512];
  static const uint8_t mask[4] = {1, 2, 3, 4};
  size_t n = wsc_encode_frame(buf, sizeof(buf), fin, rsv, opcode,
                              masked ? mask : NULL, payload, len);
  assert_true(n <= sizeof(buf));
  expect_failure(buf, n, code, kind);
}

static void test_badencoding_text(void **st) {
  (void)st;
  static const uint8_t bad[] = {0xce, 0xba, 0xed, 0xa0, 0x80, 'x'};
  send_frame_expect(1, 0, WSC_OP_TEXT, 1, bad, sizeof(bad), 1007,
                    LARIAT_REASON_ERROR_BADENCODING);
}

static void test_badencoding_split_across_frames(void **st) {
  (void)st;
  /* F4 | 90 80 80: invalid, split over two fragments. */
  uint8_t buf[64];
  static const uint8_t mask[4] = {9, 8, 7, 6};
  static const uint8_t a[] = {'o', 'k', 0xf4}, b[] = {0x90, 0x80, 0x80};
  size_t n = wsc_encode_frame(buf, sizeof(buf), 0, 0, WSC_OP_TEXT, mask, a, 3);
  n += wsc_encode_frame(buf + n, sizeof(buf) - n, 1, 0, WSC_OP_CONT, mask, b,
                        3);
  expect_failure(buf, n, 1007, LARIAT_REASON_ERROR_BADENCODING);
}

static void test_badencoding_close_reason(void **st) {
  (void)st;
  static const uint8_t bad[] = {0x03, 0xe8, 0xff};
  send_frame_expect(1, 0, WSC_OP_CLOSE, 1, bad, sizeof(bad), 1007,
                    LARIAT_REASON_ERROR_BADENCODING);
}

static void test_badframe_rsv(void **st) {
  (void)st;
  send_frame_expect(1, WSC_RSV2, WSC_OP_TEXT, 1, "x", 1, 1002,
                    LARIAT_REASON_ERROR_BADFRAME);
}

static void test_badframe_reserved_opcode(void **st) {
  (void)st;
  send_frame_expect(1, 0, 3, 1, "x", 1, 1002, LARIAT_REASON_ERROR_BADFRAME);
}

static void test_badframe_reserved_control_opcode(void **st) {
  (void)st;
  send_frame_expect(1, 0, 0xB, 1, "", 0, 1002, LARIAT_REASON_ERROR_BADFRAME);
}

static void test_badframe_unmasked(void **st) {
  (void)st;
  send_frame_expect(1, 0, WSC_OP_TEXT, 0, "Hello", 5, 1002,
                    LARIAT_REASON_ERROR_BADFRAME);
}

static void test_badframe_continuation_without_start(void **st) {
  (void)st;
  send_frame_expect(1, 0, WSC_OP_CONT, 1, "x", 1, 1002,
                    LARIAT_REASON_ERROR_BADFRAME);
}

static void test_badframe_new_message_inside_fragmented(void **st) {
  (void)st;
  uint8_t buf[64];
  static const uint8_t mask[4] = {1, 1, 1, 1};
  size_t n = wsc_encode_frame(buf, sizeof(buf), 0, 0, WSC_OP_TEXT, mask, "a", 1);
  n += wsc_encode_frame(buf + n, sizeof(buf) - n, 1, 0, WSC_OP_TEXT, mask, "b",
                        1);
  expect_failure(buf, n, 1002, LARIAT_REASON_ERROR_BADFRAME);
}

static void test_badframe_long_ping(void **st) {
  (void)st;
  uint8_t payload[126] = {0};
  send_frame_expect(1, 0, WSC_OP_PING, 1, payload, sizeof(payload), 1002,
                    LARIAT_REASON_ERROR_BADFRAME);
}

static void test_badframe_fragmented_ping(void **st) {
  (void)st;
  send_frame_expect(0, 0, WSC_OP_PING, 1, "x", 1, 1002,
                    LARIAT_REASON_ERROR_BADFRAME);
}

static void test_badframe_close_one_byte(void **st) {
  (void)st;
  send_frame_expect(1, 0, WSC_OP_CLOSE, 1, "\x03", 1, 1002,
                    LARIAT_REASON_ERROR_BADFRAME);
}

static void test_badframe_close_codes(void **st) {
  (void)st;
  static const int bad_codes[] = {0, 999, 1004, 1005, 1006, 1015,
                                  1016, 1100, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof(bad_codes) / sizeof(bad_codes[0]); ++i) {
    uint8_t p[2] = {(uint8_t)(bad_codes[i] >> 8), (uint8_t)bad_codes[i]};
    send_frame_expect(1, 0, WSC_OP_CLOSE, 1, p, 2, 1002,
                      LARIAT_REASON_ERROR_BADFRAME);
  }
}

static void test_too_big_frame(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  srv.init.max_frame_size = 100;
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  uint8_t big[101];
  memset(big, 'a', sizeof(big));
  TH_EQ(wsc_send_binary(&c, big, 100), 0); /* at the limit: fine */
  wsc_frame f;
  TH_EQ(wsc_recv_message(&c, &f, 2000), 1);
  TH_EQ(f.len, 100);
  wsc_frame_free(&f);
  TH_EQ(wsc_send_binary(&c, big, 101), 0);
  TH_EQ(wsc_expect_close(&c, 1009, 2000), 0);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_ERROR_TOO_BIG);
  stop_and_check_once();
}

/* Cowboy's rule: the limit counts reassembled fragments too. */
static void test_too_big_across_fragments(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  srv.init.max_frame_size = 100;
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  uint8_t fifty[50];
  memset(fifty, 'b', sizeof(fifty));
  TH_EQ(wsc_send_frame(&c, 0, 0, WSC_OP_BINARY, fifty, 50), 0);
  TH_EQ(wsc_send_frame(&c, 1, 0, WSC_OP_CONT, fifty, 50), 0);
  wsc_frame f;
  TH_EQ(wsc_recv_message(&c, &f, 2000), 1);
  TH_EQ(f.len, 100);
  wsc_frame_free(&f);
  TH_EQ(wsc_send_frame(&c, 0, 0, WSC_OP_BINARY, fifty, 50), 0);
  TH_EQ(wsc_send_frame(&c, 0, 0, WSC_OP_CONT, fifty, 50), 0);
  TH_EQ(wsc_send_frame(&c, 1, 0, WSC_OP_CONT, fifty, 50), 0);
  TH_EQ(wsc_expect_close(&c, 1009, 2000), 0);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_ERROR_TOO_BIG);
  stop_and_check_once();
}

static void test_error_closed(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_ERROR_CLOSED);
  stop_and_check_once();
}

static void test_error_socket_reset(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  wsc_reset(&c);
  expect_one_terminate(LARIAT_REASON_ERROR_SOCKET);
  TH_EQ(th_terminate_at(&srv, 0).socket_error, UV_ECONNRESET);
  stop_and_check_once();
}

/* The return values of websocket_init and websocket_info act like those of
 * websocket_handle. */
static void test_websocket_init_returns_shutdown(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  srv.init.websocket_init_result = LARIAT_SHUTDOWN;
  srv.init.websocket_init_reply = 1;
  th_start(&srv, NULL, NULL);
  wsc c;
  th_open(&srv, &c);
  TH_EQ(th_expect_text(&c, "welcome", 2000), 0);
  TH_EQ(wsc_expect_close(&c, 1000, 2000), 0);
  TH_EQ(wsc_send_close(&c, 1000, NULL, 0), 0);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  expect_one_terminate(LARIAT_REASON_SHUTDOWN);
  stop_and_check_once();
}

static void test_websocket_info_returns(void **st) {
  (void)st;
  static const struct {
    int result, code, kind;
  } cases[] = {
      {LARIAT_SHUTDOWN, 1000, LARIAT_REASON_SHUTDOWN},
      {LARIAT_CRASH, 1011, LARIAT_REASON_CRASH},
      {42, 1011, LARIAT_REASON_CRASH}, /* not a lariat_result: a crash */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
    memset(&srv, 0, sizeof(srv));
    th_start(&srv, NULL, NULL);
    wsc c;
    lariat_conn_id id = th_open_with_id(&srv, &c);
    TH_EQ(th_post_result(&srv, id, LARIAT_OK), 0);
    TH_EQ(th_post_result(&srv, id, LARIAT_HIBERNATE), 0);
    TH_EQ(th_post_result(&srv, id, cases[i].result), 0);
    TH_EQ(wsc_expect_close(&c, cases[i].code, 2000), 0);
    TH_EQ(wsc_send_close(&c, cases[i].code, NULL, 0), 0);
    assert_true(wsc_wait_eof(&c, 2000) >= 0);
    wsc_close(&c);
    expect_one_terminate(cases[i].kind);
    stop_and_check_once();
    TH_EQ(srv.info_calls, 3);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_normal_plain_reply),
      cmocka_unit_test(test_normal_upgrade_refused_for_plain_request),
      cmocka_unit_test(test_remote_without_code),
      cmocka_unit_test(test_remote_with_code_and_payload),
      cmocka_unit_test(test_shutdown_return),
      cmocka_unit_test(test_shutdown_by_close_reply),
      cmocka_unit_test(test_shutdown_by_server_stop),
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_timeout_changed_later),
      cmocka_unit_test(test_crash),
      cmocka_unit_test(test_crash_in_init),
      cmocka_unit_test(test_badencoding_text),
      cmocka_unit_test(test_badencoding_split_across_frames),
      cmocka_unit_test(test_badencoding_close_reason),
      cmocka_unit_test(test_badframe_rsv),
      cmocka_unit_test(test_badframe_reserved_opcode),
      cmocka_unit_test(test_badframe_reserved_control_opcode),
      cmocka_unit_test(test_badframe_unmasked),
      cmocka_unit_test(test_badframe_continuation_without_start),
      cmocka_unit_test(test_badframe_new_message_inside_fragmented),
      cmocka_unit_test(test_badframe_long_ping),
      cmocka_unit_test(test_badframe_fragmented_ping),
      cmocka_unit_test(test_badframe_close_one_byte),
      cmocka_unit_test(test_badframe_close_codes),
      cmocka_unit_test(test_too_big_frame),
      cmocka_unit_test(test_too_big_across_fragments),
      cmocka_unit_test(test_error_closed),
      cmocka_unit_test(test_error_socket_reset),
      cmocka_unit_test(test_websocket_init_returns_shutdown),
      cmocka_unit_test(test_websocket_info_returns),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
