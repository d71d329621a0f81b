/* Self-test of the WebSocket test client: RFC 6455 byte vectors and a
 * loopback round trip against a scripted server thread. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wsclient.h"

static const uint8_t rfc_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

static void pause_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int64_t clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- scripted server ------------------------------------------------- */

/* The scenario runs on the server thread, where cmocka asserts must not
 * be used (they longjmp); it records a failure text instead, which the
 * main thread asserts on after the join. */
typedef struct test_server {
  int listen_fd;
  int port;
  pthread_t thread;
  void (*scenario)(struct test_server *s, int fd);
  char failure[256];
  char request[4096]; /* the last request head read by read_head() */
} test_server;

static void fail_server(test_server *s, const char *what) {
  if (!s->failure[0]) snprintf(s->failure, sizeof s->failure, "%s", what);
}

static void write_all(int fd, const void *p, size_t n) {
  const uint8_t *bytes = p;
  while (n > 0) {
    ssize_t w = send(fd, bytes, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    bytes += w;
    n -= (size_t)w;
  }
}

/* Reads byte by byte so nothing after the head is swallowed. */
static int read_head(test_server *s, int fd) {
  size_t n = 0;
  while (n + 1 < sizeof s->request) {
    if (recv(fd, s->request + n, 1, 0) != 1) break;
    n++;
    s->request[n] = '\0';
    if (n >= 4 && memcmp(s->request + n - 4, "\r\n\r\n", 4) == 0) return 0;
  }
  fail_server(s, "no complete request head");
  return -1;
}

/* Answers the upgrade in one write together with `trailing` bytes, so the
 * client must keep what follows the head buffered. */
static void accept_upgrade(test_server *s, int fd, const char *accept_override,
                           const void *trailing, size_t trailing_len) {
  if (read_head(s, fd) != 0) return;
  const char *key = strstr(s->request, "Sec-WebSocket-Key: ");
  char key_value[64] = "", accept[29];
  if (key) sscanf(key + 19, "%63[^\r]", key_value);
  wsc_accept_key(key_value, accept);
  char head[512];
  int len = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     accept_override ? accept_override : accept);
  uint8_t *out = malloc((size_t)len + trailing_len);
  memcpy(out, head, (size_t)len);
  if (trailing_len) memcpy(out + len, trailing, trailing_len);
  write_all(fd, out, (size_t)len + trailing_len);
  free(out);
}

static size_t server_frame(uint8_t *out, size_t cap, int fin, int opcode,
                           const void *payload, size_t len) {
  return wsc_encode_frame(out, cap, fin, 0, opcode, NULL, payload, len);
}

static void *server_main(void *arg) {
  test_server *s = arg;
  int fd = accept(s->listen_fd, NULL, NULL);
  if (fd < 0) {
    fail_server(s, "accept failed");
    return NULL;
  }
  s->scenario(s, fd);
  close(fd);
  return NULL;
}

static void server_start(test_server *s,
                         void (*scenario)(test_server *s, int fd)) {
  memset(s, 0, sizeof *s);
  s->scenario = scenario;
  s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s->listen_fd >= 0);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr), 0);
  assert_int_equal(listen(s->listen_fd, 4), 0);
  socklen_t size = sizeof addr;
  getsockname(s->listen_fd, (struct sockaddr *)&addr, &size);
  s->port = ntohs(addr.sin_port);
  assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_join(test_server *s) {
  pthread_join(s->thread, NULL);
  close(s->listen_fd);
  if (s->failure[0]) fail_msg("server: %s", s->failure);
}

static void connect_to(wsc *c, test_server *s) {
  int r = wsc_connect(c, "127.0.0.1", s->port, 2000);
  if (r != 0) fail_msg("connect: %s", wsc_strerror(r));
}

/* ---- pure encoding / decoding ---------------------------------------- */

static void test_encode_rfc_vectors(void **state) {
  (void)state;
  uint8_t out[70000];

  static const uint8_t masked_hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                         0x7f, 0x9f, 0x4d, 0x51, 0x58};
  assert_int_equal(wsc_encode_frame(out, sizeof out, 1, 0, WSC_OP_TEXT,
                                    rfc_mask, "Hello", 5),
                   sizeof masked_hello);
  assert_memory_equal(out, masked_hello, sizeof masked_hello);

  static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  assert_int_equal(
      wsc_encode_frame(out, sizeof out, 1, 0, WSC_OP_TEXT, NULL, "Hello", 5), 7);
  assert_memory_equal(out, hello, sizeof hello);

  static const uint8_t hel[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
  static const uint8_t lo[] = {0x80, 0x02, 0x6c, 0x6f};
  wsc_encode_frame(out, sizeof out, 0, 0, WSC_OP_TEXT, NULL, "Hel", 3);
  assert_memory_equal(out, hel, sizeof hel);
  wsc_encode_frame(out, sizeof out, 1, 0, WSC_OP_CONT, NULL, "lo", 2);
  assert_memory_equal(out, lo, sizeof lo);

  static const uint8_t masked_pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                        0x7f, 0x9f, 0x4d, 0x51, 0x58};
  wsc_encode_frame(out, sizeof out, 1, 0, WSC_OP_PONG, rfc_mask, "Hello", 5);
  assert_memory_equal(out, masked_pong, sizeof masked_pong);

  uint8_t *payload = calloc(1, 65536);
  static const uint8_t header256[] = {0x82, 0x7E, 0x01, 0x00};
  assert_int_equal(wsc_encode_frame(out, sizeof out, 1, 0, WSC_OP_BINARY, NULL,
                                    payload, 256),
                   4 + 256);
  assert_memory_equal(out, header256, sizeof header256);

  static const uint8_t header64k[] = {0x82, 0x7F, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x01, 0x00, 0x00};
  assert_int_equal(wsc_encode_frame(out, sizeof out, 1, 0, WSC_OP_BINARY, NULL,
                                    payload, 65536),
                   10 + 65536);
  assert_memory_equal(out, header64k, sizeof header64k);

  /* Too small a buffer: size reported, nothing written. */
  out[0] = 0xEE;
  assert_int_equal(wsc_encode_frame(out, 3, 1, 0, WSC_OP_TEXT, NULL, "Hello", 5), 7);
  assert_int_equal(out[0], 0xEE);
  assert_int_equal(wsc_encode_frame(NULL, 0, 1, 0, WSC_OP_TEXT, rfc_mask, "", 0), 6);

  /* RSV and arbitrary opcodes are encoded as asked. */
  wsc_encode_frame(out, sizeof out, 1, WSC_RSV1 | WSC_RSV3, 0xB, NULL, "", 0);
  assert_int_equal(out[0], 0x80 | 0x50 | 0x0B);
  free(payload);
}

static void test_accept_key_rfc_vector(void **state) {
  (void)state;
  char accept[29];
  wsc_accept_key("dGhlIHNhbXBsZSBub25jZQ==", accept);
  assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_utf8(void **state) {
  (void)state;
  assert_true(wsc_utf8_valid((const uint8_t *)"h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
  assert_false(wsc_utf8_valid((const uint8_t *)"\xc0\xaf", 2));         /* overlong */
  assert_false(wsc_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
  assert_false(wsc_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  assert_false(wsc_utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* truncated */
  assert_false(wsc_utf8_valid((const uint8_t *)"\xff", 1));
}

static long decode_bytes(const uint8_t *p, size_t n) {
  wsc_frame f;
  long r = wsc_decode_frame(p, n, &f);
  if (r > 0) wsc_frame_free(&f);
  return r;
}

static void test_decode_checks(void **state) {
  (void)state;
  static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  wsc_frame f;
  assert_int_equal(wsc_decode_frame(hello, sizeof hello, &f), 7);
  assert_int_equal(f.opcode, WSC_OP_TEXT);
  assert_string_equal((const char *)f.payload, "Hello");
  wsc_frame_free(&f);
  for (size_t n = 0; n < sizeof hello; n++) assert_int_equal(decode_bytes(hello, n), 0);

  static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
  static const uint8_t rsv1[] = {0xC1, 0x00};
  static const uint8_t opcode3[] = {0x83, 0x00};
  static const uint8_t long_ping[] = {0x89, 0x7E, 0x00, 0x7E};
  static const uint8_t fragmented_ping[] = {0x09, 0x00};
  static const uint8_t non_minimal16[] = {0x82, 0x7E, 0x00, 0x05};
  static const uint8_t non_minimal64[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  static const uint8_t huge64[] = {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0};
  static const uint8_t close_one_byte[] = {0x88, 0x01, 0x03};
  static const uint8_t close_1005[] = {0x88, 0x02, 0x03, 0xED};
  static const uint8_t close_bad_reason[] = {0x88, 0x03, 0x03, 0xE8, 0xFF};
  static const uint8_t bad_text[] = {0x81, 0x02, 0xC0, 0xAF};
  assert_int_equal(decode_bytes(masked, sizeof masked), -EPROTO);
  assert_int_equal(decode_bytes(masked, 2), -EPROTO); /* before the payload */
  assert_int_equal(decode_bytes(rsv1, sizeof rsv1), -EPROTO);
  assert_int_equal(decode_bytes(opcode3, sizeof opcode3), -EPROTO);
  assert_int_equal(decode_bytes(long_ping, sizeof long_ping), -EPROTO);
  assert_int_equal(decode_bytes(fragmented_ping, sizeof fragmented_ping), -EPROTO);
  assert_int_equal(decode_bytes(non_minimal16, sizeof non_minimal16), -EPROTO);
  assert_int_equal(decode_bytes(non_minimal64, sizeof non_minimal64), -EPROTO);
  assert_int_equal(decode_bytes(huge64, sizeof huge64), -EPROTO);
  assert_int_equal(decode_bytes(close_one_byte, sizeof close_one_byte), -EPROTO);
  assert_int_equal(decode_bytes(close_1005, sizeof close_1005), -EPROTO);
  assert_int_equal(decode_bytes(close_bad_reason, sizeof close_bad_reason), -EPROTO);
  assert_int_equal(decode_bytes(bad_text, sizeof bad_text), -EPROTO);

  static const uint8_t close_1000_bye[] = {0x88, 0x05, 0x03, 0xE8, 'b', 'y', 'e'};
  assert_int_equal(wsc_decode_frame(close_1000_bye, sizeof close_1000_bye, &f), 7);
  assert_int_equal(f.close_code, 1000);
  assert_int_equal(f.close_reason_len, 3);
  assert_string_equal(f.close_reason, "bye");
  wsc_frame_free(&f);
}

/* Sending goes through the forced mask: socketpair, no server needed. */
static void test_send_uses_forced_mask(void **state) {
  (void)state;
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  wsc c;
  wsc_attach(&c, sv[0]);
  wsc_set_next_mask(&c, rfc_mask);
  assert_int_equal(wsc_send_text(&c, "Hello"), 0);
  static const uint8_t masked_hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                         0x7f, 0x9f, 0x4d, 0x51, 0x58};
  uint8_t got[32];
  assert_int_equal(recv(sv[1], got, sizeof got, 0), sizeof masked_hello);
  assert_memory_equal(got, masked_hello, sizeof masked_hello);

  /* The forced mask is one-shot; then the PRNG, deterministic per seed. */
  uint8_t a[4], b[4];
  wsc_seed(&c, 42);
  wsc_next_mask(&c, a);
  wsc_seed(&c, 42);
  wsc_next_mask(&c, b);
  assert_memory_equal(a, b, 4);
  assert_memory_not_equal(a, rfc_mask, 4);

  assert_int_equal(wsc_send_close(&c, 1000, "ok", 2), 0);
  assert_int_equal(recv(sv[1], got, sizeof got, 0), 2 + 4 + 4);
  assert_int_equal(got[0], 0x88);
  assert_int_equal(got[1], 0x84);
  assert_int_equal(got[6] ^ got[2], 0x03);
  assert_int_equal(got[7] ^ got[3], 0xE8);
  assert_int_equal(wsc_send_close(&c, -1, NULL, 0), 0);
  assert_int_equal(recv(sv[1], got, sizeof got, 0), 6);
  assert_int_equal(got[1], 0x80);
  wsc_close(&c);
  wsc_close(&c); /* idempotent */
  close(sv[1]);
}

/* ---- loopback round trips -------------------------------------------- */

#define BIG_LEN 70000

static void frames_scenario(test_server *s, int fd) {
  uint8_t buf[BIG_LEN + 64];
  /* "hi" rides in the same segment as the 101. */
  size_t n = server_frame(buf, sizeof buf, 1, WSC_OP_TEXT, "hi", 2);
  accept_upgrade(s, fd, NULL, buf, n);
  if (!strstr(s->request, "GET /chat HTTP/1.1\r\n") ||
      !strstr(s->request, "Upgrade: websocket\r\n") ||
      !strstr(s->request, "Connection: Upgrade\r\n") ||
      !strstr(s->request, "Sec-WebSocket-Version: 13\r\n") ||
      !strstr(s->request, "X-Test: 1\r\n"))
    fail_server(s, "request lacks a required header");

  /* A 300-byte frame delivered in pieces, splitting the length field. */
  uint8_t payload[300];
  for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)i;
  n = server_frame(buf, sizeof buf, 1, WSC_OP_BINARY, payload, sizeof payload);
  size_t cuts[] = {0, 1, 3, 150, n};
  for (int i = 0; i < 4; i++) {
    write_all(fd, buf + cuts[i], cuts[i + 1] - cuts[i]);
    pause_ms(15);
  }

  uint8_t *big = malloc(BIG_LEN);
  for (size_t i = 0; i < BIG_LEN; i++) big[i] = (uint8_t)(i * 7);
  n = server_frame(buf, sizeof buf, 1, WSC_OP_BINARY, big, BIG_LEN);
  write_all(fd, buf, n);
  free(big);

  /* "frag" + ping + "ment", then close 1000 "bye", then a masked frame. */
  n = server_frame(buf, sizeof buf, 0, WSC_OP_TEXT, "frag", 4);
  n += server_frame(buf + n, sizeof buf - n, 1, WSC_OP_PING, "p", 1);
  n += server_frame(buf + n, sizeof buf - n, 1, WSC_OP_CONT, "ment", 4);
  n += server_frame(buf + n, sizeof buf - n, 1, WSC_OP_CLOSE, "\x03\xe8" "bye", 5);
  n += wsc_encode_frame(buf + n, sizeof buf - n, 1, 0, WSC_OP_TEXT, rfc_mask,
                        "Hello", 5);
  write_all(fd, buf, n);
  pause_ms(200); /* let the client read before the FIN */
}

static void test_loopback_frames(void **state) {
  (void)state;
  test_server s;
  server_start(&s, frames_scenario);
  wsc c;
  connect_to(&c, &s);
  wsc_response resp;
  assert_int_equal(wsc_handshake(&c, "/chat", "X-Test: 1\r\n", &resp, 2000), 101);
  assert_string_equal(wsc_header(&resp, "upgrade"), "websocket");
  assert_non_null(strstr(resp.head, "101 Switching Protocols"));
  wsc_response_free(&resp);

  wsc_frame f;
  assert_int_equal(wsc_recv_frame(&c, &f, 2000), 1);
  assert_int_equal(f.opcode, WSC_OP_TEXT);
  assert_int_equal(f.fin, 1);
  assert_string_equal((const char *)f.payload, "hi");
  wsc_frame_free(&f);

  assert_int_equal(wsc_recv_frame(&c, &f, 2000), 1);
  assert_int_equal(f.opcode, WSC_OP_BINARY);
  assert_int_equal(f.len, 300);
  for (size_t i = 0; i < 300; i++) assert_int_equal(f.payload[i], (uint8_t)i);
  wsc_frame_free(&f);

  assert_int_equal(wsc_recv_frame(&c, &f, 2000), 1);
  assert_int_equal(f.len, BIG_LEN);
  for (size_t i = 0; i < BIG_LEN; i++)
    if (f.payload[i] != (uint8_t)(i * 7)) fail_msg("big frame byte %zu", i);
  wsc_frame_free(&f);

  /* The ping between fragments is returned, then the joined message. */
  assert_int_equal(wsc_recv_message(&c, &f, 2000), 1);
  assert_int_equal(f.opcode, WSC_OP_PING);
  assert_string_equal((const char *)f.payload, "p");
  wsc_frame_free(&f);
  assert_int_equal(wsc_recv_message(&c, &f, 2000), 1);
  assert_int_equal(f.opcode, WSC_OP_TEXT);
  assert_int_equal(f.fin, 1);
  assert_int_equal(f.len, 8);
  assert_string_equal((const char *)f.payload, "fragment");
  wsc_frame_free(&f);

  assert_int_equal(wsc_recv_frame(&c, &f, 2000), 1);
  assert_int_equal(f.opcode, WSC_OP_CLOSE);
  assert_int_equal(f.close_code, 1000);
  assert_string_equal(f.close_reason, "bye");
  wsc_frame_free(&f);

  assert_int_equal(wsc_recv_frame(&c, &f, 2000), -EPROTO);
  assert_null(f.payload);
  wsc_close(&c);
  server_join(&s);
}

static void close_1001_scenario(test_server *s, int fd) {
  accept_upgrade(s, fd, NULL, NULL, 0);
  pause_ms(300);
  uint8_t buf[64];
  size_t n = server_frame(buf, sizeof buf, 1, WSC_OP_TEXT, "x", 1);
  n += server_frame(buf + n, sizeof buf - n, 1, WSC_OP_CLOSE, "\x03\xe9", 2);
  write_all(fd, buf, n);
  /* Wait for the client's close and FIN, then check the close frame. */
  size_t got = 0;
  ssize_t r;
  while (got < sizeof buf && (r = recv(fd, buf + got, sizeof buf - got, 0)) > 0)
    got += (size_t)r;
  if (got != 6 || buf[0] != 0x88 || buf[1] != 0x80)
    fail_server(s, "expected one masked empty close frame then FIN");
}

static void test_timeout_expect_close_and_eof(void **state) {
  (void)state;
  test_server s;
  server_start(&s, close_1001_scenario);
  wsc c;
  connect_to(&c, &s);
  assert_int_equal(wsc_handshake(&c, "/", NULL, NULL, 2000), 101);

  wsc_frame f;
  int64_t start = clock_ms();
  assert_int_equal(wsc_recv_frame(&c, &f, 60), -ETIMEDOUT);
  int64_t waited = clock_ms() - start;
  assert_true(waited >= 55 && waited < 250);
  assert_int_equal(wsc_recv_frame(&c, &f, 0), -ETIMEDOUT);

  assert_int_equal(wsc_expect_close(&c, 1000, 2000), WSC_E_CLOSE_CODE);
  assert_int_equal(c.last_close_code, 1001);
  assert_int_equal(wsc_send_close(&c, -1, NULL, 0), 0);
  assert_int_equal(wsc_shutdown_write(&c), 0);
  assert_int_equal(wsc_wait_eof(&c, 2000), 0);
  wsc_close(&c);
  server_join(&s);
}

static void empty_close_scenario(test_server *s, int fd) {
  uint8_t buf[16];
  size_t n = server_frame(buf, sizeof buf, 1, WSC_OP_CLOSE, NULL, 0);
  accept_upgrade(s, fd, NULL, buf, n);
  char drain[64];
  while (recv(fd, drain, sizeof drain, 0) > 0) {
  }
}

static void test_expect_empty_close_and_wait_eof_timeout(void **state) {
  (void)state;
  test_server s;
  server_start(&s, empty_close_scenario);
  wsc c;
  connect_to(&c, &s);
  assert_int_equal(wsc_handshake(&c, "/", NULL, NULL, 2000), 101);
  assert_int_equal(wsc_expect_close(&c, -1, 2000), 0);
  /* The server keeps the TCP connection until we close. */
  assert_int_equal(wsc_wait_eof(&c, 50), -ETIMEDOUT);
  wsc_close(&c);
  server_join(&s);
}

static void rejection_scenario(test_server *s, int fd) {
  if (read_head(s, fd) != 0) return;
  if (strncmp(s->request, "GET /nope HTTP/1.1\r\n", 20) != 0)
    fail_server(s, "raw request altered");
  static const char reply[] =
      "HTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\n"
      "sec-websocket-version:  13 \r\n\r\nnope!";
  write_all(fd, reply, sizeof reply - 1);
}

static void test_request_rejection(void **state) {
  (void)state;
  test_server s;
  server_start(&s, rejection_scenario);
  wsc c;
  connect_to(&c, &s);
  wsc_response resp;
  assert_int_equal(wsc_request(&c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &resp, 2000),
                   400);
  assert_int_equal(resp.status, 400);
  assert_string_equal(wsc_header(&resp, "Sec-WebSocket-Version"), "13");
  assert_string_equal(wsc_header(&resp, "content-length"), "5");
  assert_null(wsc_header(&resp, "Upgrade"));
  assert_int_equal(resp.body_len, 5);
  assert_string_equal(resp.body, "nope!");
  wsc_response_free(&resp);
  assert_true(wsc_wait_eof(&c, 2000) >= 0);
  wsc_close(&c);
  server_join(&s);
}

static void bad_accept_scenario(test_server *s, int fd) {
  accept_upgrade(s, fd, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", NULL, 0);
  if (!strstr(s->request, "Sec-WebSocket-Version: 8\r\n") ||
      strstr(s->request, "Sec-WebSocket-Version: 13"))
    fail_server(s, "version override not honoured");
  pause_ms(50);
}

static void test_handshake_rejects_bad_accept(void **state) {
  (void)state;
  test_server s;
  server_start(&s, bad_accept_scenario);
  wsc c;
  connect_to(&c, &s);
  wsc_response resp;
  assert_int_equal(wsc_handshake(&c, "/", "Sec-WebSocket-Version: 8\r\n", &resp, 2000),
                   WSC_E_BAD_HANDSHAKE);
  assert_int_equal(resp.status, 101);
  wsc_response_free(&resp);
  wsc_close(&c);
  server_join(&s);
}

static void pipelined_scenario(test_server *s, int fd) {
  accept_upgrade(s, fd, NULL, NULL, 0);
  pause_ms(50);
  uint8_t buf[64];
  size_t n = 0;
  n += server_frame(buf + n, sizeof buf - n, 1, WSC_OP_TEXT, "one", 3);
  n += server_frame(buf + n, sizeof buf - n, 1, WSC_OP_TEXT, "two", 3);
  n += server_frame(buf + n, sizeof buf - n, 1, WSC_OP_TEXT, "three", 5);
  write_all(fd, buf, n);

  /* Echo check: the client sends its frame one byte at a time. */
  uint8_t got[64];
  size_t total = 0;
  ssize_t r;
  while (total < 11 && (r = recv(fd, got + total, sizeof got - total, 0)) > 0)
    total += (size_t)r;
  static const uint8_t masked_hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                         0x7f, 0x9f, 0x4d, 0x51, 0x58};
  if (total != 11 || memcmp(got, masked_hello, 11) != 0)
    fail_server(s, "slow frame arrived wrong");
  /* After the client's RST the next read must fail. */
  r = recv(fd, got, sizeof got, 0);
  if (!(r < 0 && errno == ECONNRESET)) fail_server(s, "expected RST");
}

static void test_read_available_slow_send_and_reset(void **state) {
  (void)state;
  test_server s;
  server_start(&s, pipelined_scenario);
  wsc c;
  connect_to(&c, &s);
  assert_int_equal(wsc_handshake(&c, "/", NULL, NULL, 2000), 101);

  uint8_t buf[256];
  int n = wsc_read_available(&c, buf, sizeof buf, 2000);
  assert_int_equal(n, 5 + 5 + 7);
  static const char *expected[] = {"one", "two", "three"};
  long offset = 0;
  for (int i = 0; i < 3; i++) {
    wsc_frame f;
    long used = wsc_decode_frame(buf + offset, (size_t)n - (size_t)offset, &f);
    assert_true(used > 0);
    assert_string_equal((const char *)f.payload, expected[i]);
    wsc_frame_free(&f);
    offset += used;
  }
  assert_int_equal(offset, n);

  uint8_t frame[32];
  size_t len = wsc_encode_frame(frame, sizeof frame, 1, 0, WSC_OP_TEXT, rfc_mask,
                                "Hello", 5);
  assert_int_equal(wsc_send_raw_slowly(&c, frame, len, 2), 0);
  pause_ms(50); /* the server must have read it all before the RST */
  wsc_reset(&c);
  assert_int_equal(c.fd, -1);
  server_join(&s);
}

static void test_connect_refused(void **state) {
  (void)state;
  /* Grab a free port, then close it so nothing listens there. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (struct sockaddr *)&addr, sizeof addr);
  socklen_t size = sizeof addr;
  getsockname(fd, (struct sockaddr *)&addr, &size);
  close(fd);
  wsc c;
  assert_int_equal(wsc_connect(&c, "127.0.0.1", ntohs(addr.sin_port), 1000),
                   -ECONNREFUSED);
  assert_int_equal(c.fd, -1);
  wsc_close(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_encode_rfc_vectors),
      cmocka_unit_test(test_accept_key_rfc_vector),
      cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_decode_checks),
      cmocka_unit_test(test_send_uses_forced_mask),
      cmocka_unit_test(test_loopback_frames),
      cmocka_unit_test(test_timeout_expect_close_and_eof),
      cmocka_unit_test(test_expect_empty_close_and_wait_eof_timeout),
      cmocka_unit_test(test_request_rejection),
      cmocka_unit_test(test_handshake_rejects_bad_accept),
      cmocka_unit_test(test_read_available_slow_send_and_reset),
      cmocka_unit_test(test_connect_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
