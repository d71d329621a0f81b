/* Self-test of the test client's permessage-deflate codec: RFC 7692 7.2.3
 * byte vectors, round trips at every window size, and the message layer
 * over a socketpair. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wsclient.h"
#include "wsdeflate.h"

static const uint8_t kHelloFresh[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
static const uint8_t kHelloAgain[] = {0xf2, 0x00, 0x11, 0x00, 0x00};

static void expect_bytes(const uint8_t *got, size_t got_len,
                         const uint8_t *want, size_t want_len) {
  assert_int_equal(got_len, want_len);
  assert_memory_equal(got, want, want_len);
}

static void compress_expect(wsd_codec *d, const void *p, size_t n,
                            const uint8_t *want, size_t want_len) {
  uint8_t *out;
  size_t out_len;
  assert_int_equal(wsd_compress(d, p, n, &out, &out_len), 0);
  expect_bytes(out, out_len, want, want_len);
  free(out);
}

static void decompress_expect(wsd_codec *d, const uint8_t *p, size_t n,
                              const char *want) {
  uint8_t *out;
  size_t out_len;
  assert_int_equal(wsd_decompress(d, p, n, &out, &out_len), 0);
  expect_bytes(out, out_len, (const uint8_t *)want, strlen(want));
  assert_int_equal(out[out_len], '\0');
  free(out);
}

/* RFC 7692 7.2.3.1 and 7.2.3.2. */
static void test_rfc_compress(void **state) {
  (void)state;
  wsd_codec *takeover = wsd_new(15, 0, 15, 0);
  assert_non_null(takeover);
  compress_expect(takeover, "Hello", 5, kHelloFresh, sizeof kHelloFresh);
  compress_expect(takeover, "Hello", 5, kHelloAgain, sizeof kHelloAgain);
  wsd_free(takeover);

  wsd_codec *reset = wsd_new(15, 1, 15, 0);
  assert_non_null(reset);
  compress_expect(reset, "Hello", 5, kHelloFresh, sizeof kHelloFresh);
  compress_expect(reset, "Hello", 5, kHelloFresh, sizeof kHelloFresh);
  wsd_free(reset);
}

static void test_rfc_decompress(void **state) {
  (void)state;
  wsd_codec *d = wsd_new(15, 0, 15, 0);
  assert_non_null(d);
  decompress_expect(d, kHelloFresh, sizeof kHelloFresh, "Hello");
  decompress_expect(d, kHelloAgain, sizeof kHelloAgain, "Hello");
  /* 7.2.3.3: a stored block. */
  static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48,
                                   0x65, 0x6c, 0x6c, 0x6f, 0x00};
  decompress_expect(d, stored, sizeof stored, "Hello");
  /* 7.2.3.5: two blocks in one message. */
  static const uint8_t two_blocks[] = {0xf2, 0x48, 0x05, 0x00, 0x00,
                                       0x00, 0xff, 0xff, 0xca, 0xc9,
                                       0xc9, 0x07, 0x00};
  decompress_expect(d, two_blocks, sizeof two_blocks, "Hello");
  /* 7.2.3.4: BFINAL ends the stream; the next message starts a new one. */
  static const uint8_t final[] = {0xf3, 0x48, 0xcd, 0xc9,
                                  0xc9, 0x07, 0x00, 0x00};
  decompress_expect(d, final, sizeof final, "Hello");
  decompress_expect(d, kHelloFresh, sizeof kHelloFresh, "Hello");
  wsd_free(d);

  /* Without takeover the back reference of kHelloAgain points nowhere. */
  wsd_codec *reset = wsd_new(15, 0, 15, 1);
  assert_non_null(reset);
  decompress_expect(reset, kHelloFresh, sizeof kHelloFresh, "Hello");
  uint8_t *out = NULL;
  size_t out_len;
  assert_int_equal(wsd_decompress(reset, kHelloAgain, sizeof kHelloAgain,
                                  &out, &out_len),
                   -EPROTO);
  assert_null(out);
  wsd_free(reset);
}

static void test_empty_message(void **state) {
  (void)state;
  static const uint8_t zero[] = {0x00};
  for (int nct = 0; nct <= 1; nct++) {
    wsd_codec *d = wsd_new(15, nct, 15, nct);
    assert_non_null(d);
    compress_expect(d, "", 0, zero, 1);
    /* zlib refuses a second flush in a row; the codec still sends 00. */
    compress_expect(d, "", 0, zero, 1);
    uint8_t *out;
    size_t out_len;
    assert_int_equal(wsd_compress(d, "Hello", 5, &out, &out_len), 0);
    free(out);
    compress_expect(d, "", 0, zero, 1);
    decompress_expect(d, zero, 1, "");
    decompress_expect(d, kHelloFresh, sizeof kHelloFresh, "Hello");
    decompress_expect(d, zero, 1, "");
    decompress_expect(d, zero, 1, "");
    wsd_free(d);
  }
}

static void test_bad_arguments(void **state) {
  (void)state;
  assert_null(wsd_new(7, 0, 15, 0));
  assert_null(wsd_new(16, 0, 15, 0));
  assert_null(wsd_new(15, 0, 7, 0));
  assert_null(wsd_new(15, 0, 16, 0));
  wsd_free(NULL);
  wsd_codec *d = wsd_new(15, 0, 15, 0);
  static const uint8_t corrupt[] = {0xff, 0xff, 0xff};
  uint8_t *out = NULL;
  size_t out_len;
  assert_int_equal(wsd_decompress(d, corrupt, sizeof corrupt, &out, &out_len),
                   -EPROTO);
  assert_null(out);
  wsd_free(d);
}

/* Deterministic data: 0 = random bytes (incompressible), 1 = words, so
 * there are matches at every distance the window allows. */
static uint8_t *make_data(size_t n, int text, uint64_t seed) {
  static const char *const kWords[] = {
      "permessage", "deflate", "window", "lariat", "frame", "the", "a",
      "compression", "context", "takeover", "\xc3\xa9t\xc3\xa9", "\xe2\x82\xac"};
  uint8_t *p = malloc(n + 1);
  assert_non_null(p);
  uint64_t x = seed * 2654435761u + 1;
  size_t i = 0;
  while (i < n) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if (!text) {
      p[i++] = (uint8_t)x;
      continue;
    }
    const char *w = kWords[x % (sizeof kWords / sizeof kWords[0])];
    size_t len = strlen(w);
    if (len > n - i - 1 || i + 1 >= n) {
      p[i++] = ' ';
      continue;
    }
    memcpy(p + i, w, len);
    i += len;
    p[i++] = ' ';
  }
  return p;
}

static void round_trip(wsd_codec *sender, wsd_codec *receiver,
                       const uint8_t *data, size_t n) {
  uint8_t *z, *plain;
  size_t z_len, plain_len;
  assert_int_equal(wsd_compress(sender, data, n, &z, &z_len), 0);
  assert_true(z_len >= 1);
  int r = wsd_decompress(receiver, z, z_len, &plain, &plain_len);
  free(z);
  assert_int_equal(r, 0);
  assert_int_equal(plain_len, n);
  if (n) assert_memory_equal(plain, data, n);
  free(plain);
}

/* The receiver inflates with exactly the agreed window, so this also shows
 * the sender stays within it (8 bits deflating with zlib's 9). */
static void test_round_trips(void **state) {
  (void)state;
  static const size_t kSizes[] = {0, 1, 2, 5, 255, 256, 257, 1000, 65535,
                                  65536, 100000, (size_t)1 << 20};
  for (int bits = 8; bits <= 15; bits++) {
    for (int nct = 0; nct <= 1; nct++) {
      for (int text = 0; text <= 1; text++) {
        wsd_codec *sender = wsd_new(bits, nct, 15, 0);
        wsd_codec *receiver = wsd_new(15, 0, bits, nct);
        assert_non_null(sender);
        assert_non_null(receiver);
        wsd_set_strict_window(receiver, 1);
        for (size_t i = 0; i < sizeof kSizes / sizeof kSizes[0]; i++) {
          uint8_t *data = make_data(kSizes[i], text, i + 1);
          round_trip(sender, receiver, data, kSizes[i]);
          /* The same again: with takeover it refers to the first copy. */
          round_trip(sender, receiver, data, kSizes[i]);
          free(data);
        }
        wsd_free(sender);
        wsd_free(receiver);
      }
    }
  }
}

/* A sender with a larger window than agreed is caught. */
static void test_window_enforced(void **state) {
  (void)state;
  uint8_t data[600];
  uint8_t *random = make_data(300, 0, 42);
  memcpy(data, random, 300);
  memcpy(data + 300, random, 300); /* a match 300 bytes back */
  free(random);
  wsd_codec *sender = wsd_new(15, 0, 15, 0);
  wsd_codec *narrow = wsd_new(15, 0, 8, 0);
  uint8_t *z, *out = NULL;
  size_t z_len, out_len;
  assert_int_equal(wsd_compress(sender, data, sizeof data, &z, &z_len), 0);
  assert_true(z_len < 450);
  /* Within one message only the strict mode sees it. */
  assert_int_equal(wsd_decompress(narrow, z, z_len, &out, &out_len), 0);
  free(out);
  out = NULL;
  wsd_set_strict_window(narrow, 1);
  assert_int_equal(wsd_decompress(narrow, z, z_len, &out, &out_len), -EPROTO);
  assert_null(out);
  free(z);

  /* Across messages plain inflate checks it too. */
  wsd_codec *wide_again = wsd_new(15, 0, 15, 0);
  wsd_codec *narrow_again = wsd_new(15, 0, 8, 0);
  round_trip(wide_again, narrow_again, data, 300);
  assert_int_equal(wsd_compress(wide_again, data + 300, 300, &z, &z_len), 0);
  assert_int_equal(wsd_decompress(narrow_again, z, z_len, &out, &out_len),
                   -EPROTO);
  free(z);
  wsd_free(wide_again);
  wsd_free(narrow_again);
  wsd_free(sender);
  wsd_free(narrow);
}

static void test_max_output(void **state) {
  (void)state;
  size_t n = (size_t)10 << 20;
  uint8_t *zeros = calloc(1, n);
  assert_non_null(zeros);
  wsd_codec *sender = wsd_new(15, 0, 15, 0);
  wsd_codec *receiver = wsd_new(15, 0, 15, 0);
  uint8_t *z, *out = NULL;
  size_t z_len, out_len;
  assert_int_equal(wsd_compress(sender, zeros, n, &z, &z_len), 0);
  assert_true(z_len < 20000);
  wsd_set_max_output(receiver, (size_t)1 << 20);
  assert_int_equal(wsd_decompress(receiver, z, z_len, &out, &out_len),
                   -EMSGSIZE);
  assert_null(out);
  free(z);
  free(zeros);
  wsd_free(sender);
  wsd_free(receiver);
}

typedef struct {
  const char *header;
  int ok, server_bits, client_bits, server_nct, client_nct;
} parse_case;

static void test_parse_response(void **state) {
  (void)state;
  static const parse_case kCases[] = {
      {"permessage-deflate", 1, 15, 15, 0, 0},
      {"permessage-deflate; server_no_context_takeover", 1, 15, 15, 1, 0},
      {"permessage-deflate;client_no_context_takeover", 1, 15, 15, 0, 1},
      {"permessage-deflate; server_max_window_bits=8", 1, 8, 15, 0, 0},
      {"permessage-deflate; client_max_window_bits=9", 1, 15, 9, 0, 0},
      {"permessage-deflate; server_max_window_bits=\"10\"", 1, 10, 15, 0, 0},
      {"permessage-deflate ; client_max_window_bits = 12 ;"
       " server_max_window_bits=11; client_no_context_takeover;"
       " server_no_context_takeover",
       1, 11, 12, 1, 1},
      {NULL, 0, 0, 0, 0, 0},
      {"", 0, 0, 0, 0, 0},
      {"x-webkit-deflate-frame", 0, 0, 0, 0, 0},
      {"permessage-deflatex", 0, 0, 0, 0, 0},
      {"permessage-deflate, permessage-deflate", 0, 0, 0, 0, 0},
      {"permessage-deflate; foo", 0, 0, 0, 0, 0},
      {"permessage-deflate;", 0, 0, 0, 0, 0},
      {"permessage-deflate; server_no_context_takeover;"
       " server_no_context_takeover",
       0, 0, 0, 0, 0},
      {"permessage-deflate; server_no_context_takeover=1", 0, 0, 0, 0, 0},
      {"permessage-deflate; server_max_window_bits", 0, 0, 0, 0, 0},
      {"permessage-deflate; client_max_window_bits", 0, 0, 0, 0, 0},
      {"permessage-deflate; server_max_window_bits=", 0, 0, 0, 0, 0},
      {"permessage-deflate; server_max_window_bits=7", 0, 0, 0, 0, 0},
      {"permessage-deflate; server_max_window_bits=16", 0, 0, 0, 0, 0},
      {"permessage-deflate; server_max_window_bits=08", 0, 0, 0, 0, 0},
      {"permessage-deflate; server_max_window_bits=abc", 0, 0, 0, 0, 0},
      {"permessage-deflate; server_max_window_bits=\"10", 0, 0, 0, 0, 0},
      {"permessage-deflate; server_max_window_bits=10\"", 0, 0, 0, 0, 0},
  };
  for (size_t i = 0; i < sizeof kCases / sizeof kCases[0]; i++) {
    const parse_case *k = &kCases[i];
    int sb = -1, cb = -1, sn = -1, cn = -1;
    int r = wsd_parse_response(k->header, &sb, &cb, &sn, &cn);
    if (!k->ok) {
      if (r != -EPROTO) fail_msg("accepted: %s", k->header);
      continue;
    }
    if (r != 0) fail_msg("rejected: %s", k->header);
    assert_int_equal(sb, k->server_bits);
    assert_int_equal(cb, k->client_bits);
    assert_int_equal(sn, k->server_nct);
    assert_int_equal(cn, k->client_nct);
  }
  assert_int_equal(wsd_parse_response("permessage-deflate", NULL, NULL, NULL,
                                      NULL),
                   0);
}

/* ---- message layer over a socketpair ------------------------------------ */

typedef struct {
  wsc client;
  int server_fd;
  wsd_codec *client_codec; /* the one under test */
  wsd_codec *server_codec; /* mirror: compresses what the server sends */
} pair;

static void pair_open(pair *p, int bits, int nct) {
  int fds[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  wsc_attach(&p->client, fds[0]);
  p->server_fd = fds[1];
  p->client_codec = wsd_new(bits, nct, bits, nct);
  p->server_codec = wsd_new(bits, nct, bits, nct);
  assert_non_null(p->client_codec);
  assert_non_null(p->server_codec);
}

static void pair_close(pair *p) {
  wsc_close(&p->client);
  close(p->server_fd);
  wsd_free(p->client_codec);
  wsd_free(p->server_codec);
}

/* Writes one unmasked server frame. */
static void server_frame(pair *p, int fin, int rsv, int opcode,
                         const void *payload, size_t n) {
  size_t size = wsc_encode_frame(NULL, 0, fin, rsv, opcode, NULL, payload, n);
  uint8_t *buf = malloc(size);
  assert_non_null(buf);
  wsc_encode_frame(buf, size, fin, rsv, opcode, NULL, payload, n);
  assert_int_equal(write(p->server_fd, buf, size), (ssize_t)size);
  free(buf);
}

/* Compresses as the server would; caller frees. */
static uint8_t *server_compress(pair *p, const char *s, size_t *len) {
  uint8_t *z;
  assert_int_equal(wsd_compress(p->server_codec, s, strlen(s), &z, len), 0);
  return z;
}

static void expect_message(pair *p, int opcode, int rsv, const char *text) {
  wsc_frame f;
  assert_int_equal(wsd_recv_message(&p->client, p->client_codec, &f, 2000), 1);
  assert_int_equal(f.opcode, opcode);
  assert_int_equal(f.rsv, rsv);
  assert_int_equal(f.fin, 1);
  assert_int_equal(f.len, strlen(text));
  assert_string_equal((const char *)f.payload, text);
  wsc_frame_free(&f);
}

static void test_recv_message(void **state) {
  (void)state;
  pair p;
  pair_open(&p, 15, 0);
  size_t len;
  uint8_t *z = server_compress(&p, "Hello", &len);
  server_frame(&p, 1, WSC_RSV1, WSC_OP_TEXT, z, len);
  free(z);
  expect_message(&p, WSC_OP_TEXT, WSC_RSV1, "Hello");

  /* Fragmented one byte per frame, a ping in the middle; the context taken
     over from the first message. */
  z = server_compress(&p, "Hello \xc3\xa9t\xc3\xa9", &len);
  for (size_t i = 0; i < len; i++) {
    server_frame(&p, i + 1 == len, i == 0 ? WSC_RSV1 : 0,
                 i == 0 ? WSC_OP_TEXT : WSC_OP_CONT, z + i, 1);
    if (i == 1) server_frame(&p, 1, 0, WSC_OP_PING, "p", 1);
  }
  free(z);
  expect_message(&p, WSC_OP_PING, 0, "p");
  expect_message(&p, WSC_OP_TEXT, WSC_RSV1, "Hello \xc3\xa9t\xc3\xa9");

  /* Uncompressed messages pass through, whole and fragmented. */
  server_frame(&p, 1, 0, WSC_OP_TEXT, "plain", 5);
  expect_message(&p, WSC_OP_TEXT, 0, "plain");
  server_frame(&p, 0, 0, WSC_OP_BINARY, "ab", 2);
  server_frame(&p, 1, 0, WSC_OP_CONT, "c", 1);
  expect_message(&p, WSC_OP_BINARY, 0, "abc");

  /* Invalid UTF-8 is only visible after inflating. */
  z = server_compress(&p, "bad \xc3\x28", &len);
  server_frame(&p, 1, WSC_RSV1, WSC_OP_TEXT, z, len);
  free(z);
  wsc_frame f;
  assert_int_equal(wsd_recv_message(&p.client, p.client_codec, &f, 2000),
                   -EPROTO);
  pair_close(&p);

  /* RSV1 on a continuation frame. */
  pair_open(&p, 15, 0);
  z = server_compress(&p, "Hello", &len);
  server_frame(&p, 0, WSC_RSV1, WSC_OP_TEXT, z, 2);
  server_frame(&p, 1, WSC_RSV1, WSC_OP_CONT, z + 2, len - 2);
  free(z);
  assert_int_equal(wsd_recv_message(&p.client, p.client_codec, &f, 2000),
                   -EPROTO);
  pair_close(&p);

  /* A timeout inside a fragmented message keeps what arrived. */
  pair_open(&p, 9, 1);
  z = server_compress(&p, "Hello", &len);
  server_frame(&p, 0, WSC_RSV1, WSC_OP_BINARY, z, 3);
  assert_int_equal(wsd_recv_message(&p.client, p.client_codec, &f, 50),
                   -ETIMEDOUT);
  server_frame(&p, 1, 0, WSC_OP_CONT, z + 3, len - 3);
  free(z);
  expect_message(&p, WSC_OP_BINARY, WSC_RSV1, "Hello");
  pair_close(&p);
}

/* Reads one masked client frame from the raw socket and unmasks it. */
static void read_client_frame(int fd, wsc_frame *f) {
  uint8_t head[14];
  assert_int_equal(read(fd, head, 2), 2);
  f->fin = head[0] >> 7;
  f->rsv = (head[0] >> 4) & 7;
  f->opcode = head[0] & 0x0f;
  assert_true(head[1] & 0x80);
  size_t len = head[1] & 0x7f, extra = len == 126 ? 2 : len == 127 ? 8 : 0;
  assert_int_equal(read(fd, head + 2, extra + 4), (ssize_t)(extra + 4));
  if (extra) {
    len = 0;
    for (size_t i = 0; i < extra; i++) len = len << 8 | head[2 + i];
  }
  const uint8_t *mask = head + 2 + extra;
  f->payload = malloc(len + 1);
  assert_non_null(f->payload);
  size_t got = 0;
  while (got < len) {
    ssize_t r = read(fd, f->payload + got, len - got);
    assert_true(r > 0);
    got += (size_t)r;
  }
  for (size_t i = 0; i < len; i++) f->payload[i] ^= mask[i % 4];
  f->payload[len] = '\0';
  f->len = len;
}

static void test_send_message(void **state) {
  (void)state;
  for (size_t fragment = 0; fragment <= 3; fragment += 3) {
    pair p;
    pair_open(&p, 10, 0);
    const char *kMessages[] = {"Hello", "Hello", "", "Hello, Hello, Hello!"};
    for (size_t m = 0; m < 4; m++) {
      const char *s = kMessages[m];
      assert_int_equal(wsd_send_message(&p.client, p.client_codec,
                                        WSC_OP_TEXT, s, strlen(s), fragment),
                       0);
      uint8_t *joined = NULL;
      size_t joined_len = 0;
      for (int first = 1;; first = 0) {
        wsc_frame f;
        read_client_frame(p.server_fd, &f);
        assert_int_equal(f.rsv, first ? WSC_RSV1 : 0);
        assert_int_equal(f.opcode, first ? WSC_OP_TEXT : WSC_OP_CONT);
        if (fragment) assert_true(f.len <= fragment);
        joined = realloc(joined, joined_len + f.len + 1);
        assert_non_null(joined);
        memcpy(joined + joined_len, f.payload, f.len);
        joined_len += f.len;
        int fin = f.fin;
        free(f.payload);
        if (fin) break;
      }
      /* The mirror inflates with the server side's view of the stream. */
      decompress_expect(p.server_codec, joined, joined_len, s);
      free(joined);
    }
    pair_close(&p);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc_compress),
      cmocka_unit_test(test_rfc_decompress),
      cmocka_unit_test(test_empty_message),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_round_trips),
      cmocka_unit_test(test_window_enforced),
      cmocka_unit_test(test_max_output),
      cmocka_unit_test(test_parse_response),
      cmocka_unit_test(test_recv_message),
      cmocka_unit_test(test_send_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
