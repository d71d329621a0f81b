/* permessage-deflate over loopback with a client that really compresses
 * (zlib, tests/wsdeflate.c): negotiation, round trips at every window size
 * with and without context takeover, thresholds and the per-frame opt-out,
 * and every way a compressed message can be bad. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "harness.h"
#include "wsdeflate.h"

static th_server srv;

/* Opens a connection offering |offer|; fills the codec from the answer.
 * Returns the negotiated extension header (static copy) or NULL. */
static const char *open_compressed(wsc *c, const char *offer, wsd_codec **d) {
  static char agreed[256];
  char extra[512];
  snprintf(extra, sizeof(extra), "Sec-WebSocket-Extensions: %s\r\n", offer);
  wsc_response r;
  TH_EQ(wsc_connect(c, "127.0.0.1", srv.port, 2000), 0);
  TH_EQ(wsc_handshake(c, "/probe", extra, &r, 2000), 101);
  const char *ext = wsc_header(&r, "sec-websocket-extensions");
  const char *result = NULL;
  *d = NULL;
  if (ext) {
    snprintf(agreed, sizeof(agreed), "%s", ext);
    int sb, cb, snct, cnct;
    TH_EQ(wsd_parse_response(ext, &sb, &cb, &snct, &cnct), 0);
    *d = wsd_new(cb, cnct, sb, snct);
    assert_non_null(*d);
    result = agreed;
  }
  wsc_response_free(&r);
  return result;
}

static void fill(uint8_t *p, size_t n, int text, unsigned seed) {
  /* Compressible but not trivial: words from a small vocabulary. */
  static const char *words[] = {"lariat ", "cowboy ", "deflate ", "{\"id\":",
                                "42, ",    "\"ok\" ",  "window ",  "\xc3\xa9t\xc3\xa9 "};
  size_t i = 0;
  while (i < n) {
    seed = seed * 1103515245u + 12345u;
    const char *w = words[(seed >> 16) % (text ? 8 : 7)];
    size_t len = strlen(w);
    if (!text) {
      p[i++] = (uint8_t)(seed >> 8);
      continue;
    }
    if (i + len > n) {
      p[i++] = 'x';
      continue;
    }
    memcpy(p + i, w, len);
    i += len;
  }
}

static void round_trip(wsc *c, wsd_codec *d, int opcode, size_t n,
                       size_t fragment, int expect_rsv1) {
  uint8_t *msg = malloc(n ? n : 1);
  fill(msg, n, opcode == WSC_OP_TEXT, (unsigned)n);
  TH_EQ(wsd_send_message(c, d, opcode, msg, n, fragment), 0);
  wsc_frame f;
  TH_EQ(wsd_recv_message(c, d, &f, 5000), 1);
  TH_EQ(f.opcode, opcode);
  TH_EQ(f.len, n);
  if (n) assert_memory_equal(f.payload, msg, n);
  TH_EQ((f.rsv & WSC_RSV1) != 0, expect_rsv1);
  wsc_frame_free(&f);
  free(msg);
}

static void close_cleanly(wsc *c) {
  TH_EQ(wsc_send_close(c, 1000, NULL, 0), 0);
  TH_EQ(wsc_expect_close(c, 1000, 2000), 0);
  assert_true(wsc_wait_eof(c, 2000) >= 0);
  wsc_close(c);
}

/* Every window size, with and without context takeover each way, text and
 * binary from 0 bytes to 1 MiB, whole and fragmented. */
static void test_round_trips(void **st) {
  (void)st;
  static const size_t sizes[] = {0, 1, 125, 5000, 70000, 1u << 20};
  for (int bits = 8; bits <= 15; ++bits) {
    for (int nct = 0; nct < 4; ++nct) {
      memset(&srv, 0, sizeof(srv));
      srv.init.deflate = 1;
      srv.init.deflate_server_nct = nct & 1;
      srv.init.deflate_client_nct = (nct >> 1) & 1;
      srv.init.max_frame_size = 2u << 20;
      th_start(&srv, NULL, NULL);
      wsc c;
      wsd_codec *d;
      char offer[128];
      snprintf(offer, sizeof(offer),
               "permessage-deflate; server_max_window_bits=%d; "
               "client_max_window_bits=%d",
               bits, bits);
      const char *agreed = open_compressed(&c, offer, &d);
      assert_non_null(agreed);
      assert_non_null(d);
      TH_EQ(wsc_send_text(&c, "!meta"), 0); /* sent uncompressed: allowed */
      wsc_frame f;
      TH_EQ(wsd_recv_message(&c, d, &f, 2000), 1);
      assert_string_equal((const char *)f.payload, "v=13 c=1 p=-");
      wsc_frame_free(&f);
      for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); ++i) {
        /* 1 MiB at the extremes and one size between keeps it quick. */
        if (sizes[i] > 100000 && bits != 8 && bits != 11 && bits != 15)
          continue;
        round_trip(&c, d, WSC_OP_TEXT, sizes[i], 0, 1);
        round_trip(&c, d, WSC_OP_BINARY, sizes[i], 0, 1);
        /* Tiny fragments, but not 100,000 of them. */
        round_trip(&c, d, WSC_OP_TEXT, sizes[i], sizes[i] > 100000 ? 65536 : 7,
                   1);
        round_trip(&c, d, WSC_OP_BINARY, sizes[i], 4096, 1);
      }
      close_cleanly(&c);
      wsd_free(d);
      th_stop(&srv);
      TH_EQ(srv.terminates, 1);
    }
  }
}

static void test_threshold_and_no_compress_flag(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  srv.init.deflate = 1;
  srv.init.deflate_threshold = 100;
  th_start(&srv, NULL, NULL);
  wsc c;
  wsd_codec *d;
  assert_non_null(open_compressed(&c, "permessage-deflate", &d));
  round_trip(&c, d, WSC_OP_TEXT, 99, 0, 0);   /* under the threshold */
  round_trip(&c, d, WSC_OP_TEXT, 100, 0, 1);  /* at it: compressed */
  TH_EQ(wsd_send_message(&c, d, WSC_OP_TEXT, "!plain raw bytes please", 23,
                         0),
        0);
  wsc_frame f;
  TH_EQ(wsd_recv_message(&c, d, &f, 2000), 1);
  assert_string_equal((const char *)f.payload, "raw bytes please");
  TH_EQ(f.rsv, 0);
  wsc_frame_free(&f);
  close_cleanly(&c);
  wsd_free(d);
  th_stop(&srv);
}

static void test_declined_offers_continue_uncompressed(void **st) {
  (void)st;
  static const char *offers[] = {
      "permessage-deflate; server_max_window_bits=7",
      "permessage-deflate; server_max_window_bits",
      "permessage-deflate; client_no_context_takeover; "
      "client_no_context_takeover",
      "permessage-deflate; mystery=1",
      "permessage-deflate; server_max_window_bits=\"1",
      "x-webkit-deflate-frame",
  };
  memset(&srv, 0, sizeof(srv));
  srv.init.deflate = 1;
  th_start(&srv, NULL, NULL);
  for (size_t i = 0; i < sizeof(offers) / sizeof(offers[0]); ++i) {
    wsc c;
    wsd_codec *d;
    assert_null(open_compressed(&c, offers[i], &d));
    TH_EQ(wsc_send_text(&c, "!meta"), 0);
    TH_EQ(th_expect_text(&c, "v=13 c=0 p=-", 2000), 0);
    close_cleanly(&c);
  }
  /* A bad offer followed by a good one: the good one is taken. */
  wsc c;
  wsd_codec *d;
  const char *agreed = open_compressed(
      &c, "permessage-deflate; bogus, permessage-deflate; "
          "client_max_window_bits",
      &d);
  assert_string_equal(agreed, "permessage-deflate");
  close_cleanly(&c);
  wsd_free(d);
  th_stop(&srv);
}

static void test_disabled_declines(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  th_start(&srv, NULL, NULL); /* compression off by default */
  wsc c;
  wsd_codec *d;
  assert_null(open_compressed(&c, "permessage-deflate", &d));
  /* RSV1 without negotiation is a protocol error. */
  TH_EQ(wsc_send_frame(&c, 1, WSC_RSV1, WSC_OP_TEXT, "\xf2\x48", 2), 0);
  TH_EQ(wsc_expect_close(&c, 1002, 2000), 0);
  wsc_close(&c);
  th_stop(&srv);
  TH_EQ(srv.terminated[0].kind, LARIAT_REASON_ERROR_BADFRAME);
}

/* Sends raw frames on a compressed connection; expects |code| and |kind|. */
static void expect_failure(const void *frames, size_t n, int code, int kind,
                           uint64_t max_frame_size) {
  memset(&srv, 0, sizeof(srv));
  srv.init.deflate = 1;
  srv.init.max_frame_size = max_frame_size;
  th_start(&srv, NULL, NULL);
  wsc c;
  wsd_codec *d;
  assert_non_null(open_compressed(&c, "permessage-deflate", &d));
  c.io_timeout_ms = 20000;
  TH_EQ(wsc_send_raw(&c, frames, n), 0);
  int rc = wsc_expect_close(&c, code, 5000);
  if (rc != 0) fail_msg("rc %d, close code %d", rc, c.last_close_code);
  wsc_close(&c);
  wsd_free(d);
  TH_EQ(th_wait_terminates(&srv, 1, 5000), 0);
  th_stop(&srv);
  TH_EQ(srv.terminates, 1);
  if (srv.terminated[0].kind != kind)
    fail_msg("terminate %s", lariat_reason_name(srv.terminated[0].kind));
}

static const uint8_t kMask[4] = {0xa1, 0xb2, 0xc3, 0xd4};

/* 64 MiB of zeros compress to about 64 KiB: the server must stop at its
 * 1 MiB limit with 1009, not inflate the rest. */
static void test_decompression_bomb(void **st) {
  (void)st;
  size_t plain = 64u << 20;
  uint8_t *zeros = calloc(plain, 1);
  wsd_codec *d = wsd_new(15, 0, 15, 0);
  uint8_t *packed;
  size_t packed_len;
  TH_EQ(wsd_compress(d, zeros, plain, &packed, &packed_len), 0);
  free(zeros);
  assert_true(packed_len < plain / 500);
  size_t cap = packed_len + 16;
  uint8_t *frame = malloc(cap);
  size_t n = wsc_encode_frame(frame, cap, 1, WSC_RSV1, WSC_OP_BINARY, kMask,
                              packed, packed_len);
  expect_failure(frame, n, 1009, LARIAT_REASON_ERROR_TOO_BIG, 1u << 20);
  free(frame);
  free(packed);
  wsd_free(d);
}

static void test_corrupt_stream(void **st) {
  (void)st;
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x00};
  uint8_t frame[64];
  size_t n = wsc_encode_frame(frame, sizeof(frame), 1, WSC_RSV1, WSC_OP_TEXT,
                              kMask, junk, sizeof(junk));
  expect_failure(frame, n, 1002, LARIAT_REASON_ERROR_BADFRAME, 0);
}

static void test_rsv1_on_control_frame(void **st) {
  (void)st;
  uint8_t frame[64];
  size_t n = wsc_encode_frame(frame, sizeof(frame), 1, WSC_RSV1, WSC_OP_PING,
                              kMask, "x", 1);
  expect_failure(frame, n, 1002, LARIAT_REASON_ERROR_BADFRAME, 0);
}

static void test_rsv1_on_continuation(void **st) {
  (void)st;
  wsd_codec *d = wsd_new(15, 0, 15, 0);
  uint8_t *packed;
  size_t packed_len;
  TH_EQ(wsd_compress(d, "Hello", 5, &packed, &packed_len), 0);
  uint8_t frame[64];
  size_t n = wsc_encode_frame(frame, sizeof(frame), 0, WSC_RSV1, WSC_OP_TEXT,
                              kMask, packed, 2);
  n += wsc_encode_frame(frame + n, sizeof(frame) - n, 1, WSC_RSV1,
                        WSC_OP_CONT, kMask, packed + 2, packed_len - 2);
  expect_failure(frame, n, 1002, LARIAT_REASON_ERROR_BADFRAME, 0);
  free(packed);
  wsd_free(d);
}

static void test_invalid_utf8_after_inflate(void **st) {
  (void)st;
  wsd_codec *d = wsd_new(15, 0, 15, 0);
  uint8_t *packed;
  size_t packed_len;
  TH_EQ(wsd_compress(d, "ok \xed\xa0\x80 no", 9, &packed, &packed_len), 0);
  uint8_t frame[64];
  size_t n = wsc_encode_frame(frame, sizeof(frame), 1, WSC_RSV1, WSC_OP_TEXT,
                              kMask, packed, packed_len);
  expect_failure(frame, n, 1007, LARIAT_REASON_ERROR_BADENCODING, 0);
  free(packed);
  wsd_free(d);
}

/* Cowboy's rule with compression: the limit counts the inflated size; with
 * a limit of 100, a message inflating to 100 passes and one inflating to
 * 150 fails, though both are far smaller on the wire. */
static void test_limit_counts_inflated_size(void **st) {
  (void)st;
  memset(&srv, 0, sizeof(srv));
  srv.init.deflate = 1;
  srv.init.max_frame_size = 100;
  th_start(&srv, NULL, NULL);
  wsc c;
  wsd_codec *d;
  assert_non_null(open_compressed(&c, "permessage-deflate", &d));
  uint8_t hundred[150];
  memset(hundred, 'q', sizeof(hundred));
  /* Text compresses well, so only the inflated size can cross the limit. */
  round_trip(&c, d, WSC_OP_TEXT, 100, 0, 1);
  TH_EQ(wsd_send_message(&c, d, WSC_OP_BINARY, hundred, 150, 0), 0);
  TH_EQ(wsc_expect_close(&c, 1009, 2000), 0);
  wsc_close(&c);
  wsd_free(d);
  th_stop(&srv);
  TH_EQ(srv.terminated[0].kind, LARIAT_REASON_ERROR_TOO_BIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trips),
      cmocka_unit_test(test_threshold_and_no_compress_flag),
      cmocka_unit_test(test_declined_offers_continue_uncompressed),
      cmocka_unit_test(test_disabled_declines),
      cmocka_unit_test(test_decompression_bomb),
      cmocka_unit_test(test_corrupt_stream),
      cmocka_unit_test(test_rsv1_on_control_frame),
      cmocka_unit_test(test_rsv1_on_continuation),
      cmocka_unit_test(test_invalid_utf8_after_inflate),
      cmocka_unit_test(test_limit_counts_inflated_size),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
