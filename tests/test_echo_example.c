/* The lariat-echo example as a user runs it: a page on GET /, a faithful
 * echo of text and binary messages up to 16 MiB on any path, and a clean
 * stop (close 1001, exit 0) on SIGTERM. argv[1] is the program. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wsclient.h"

extern char **environ;
static const char *program;
static pid_t child;
static int port;

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static void connect_retrying(wsc *c) {
  for (int i = 0; i < 100; ++i) {
    if (wsc_connect(c, "127.0.0.1", port, 1000) == 0) return;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
  }
  fail_msg("lariat-echo did not start listening on %d", port);
}

static int setup(void **st) {
  (void)st;
  port = free_port();
  char port_text[16];
  snprintf(port_text, sizeof(port_text), "%d", port);
  char *argv[] = {(char *)program, "--host", "127.0.0.1", "--port", port_text,
                  NULL};
  return posix_spawn(&child, program, NULL, NULL, argv, environ);
}

static void test_page_on_root(void **st) {
  (void)st;
  wsc c;
  wsc_response r;
  connect_retrying(&c);
  assert_int_equal(
      wsc_request(&c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r, 3000),
      200);
  assert_non_null(strstr(wsc_header(&r, "content-type"), "text/html"));
  assert_non_null(strstr(r.body, "new WebSocket("));
  wsc_response_free(&r);
  wsc_close(&c);
}

static void test_echo_up_to_16_mib(void **st) {
  (void)st;
  wsc c;
  connect_retrying(&c);
  c.io_timeout_ms = 30000;
  assert_int_equal(wsc_handshake(&c, "/any/path", NULL, NULL, 3000), 101);
  assert_int_equal(wsc_send_text(&c, "hello"), 0);
  wsc_frame f;
  assert_int_equal(wsc_recv_message(&c, &f, 3000), 1);
  assert_string_equal((const char *)f.payload, "hello");
  wsc_frame_free(&f);

  size_t n = 16u << 20;
  uint8_t *big = malloc(n);
  for (size_t i = 0; i < n; ++i) big[i] = (uint8_t)(i * 131 + 7);
  /* As conformance suites send it: fragmented, 1 MiB per frame. */
  size_t chunk = 1u << 20;
  for (size_t off = 0; off < n; off += chunk)
    assert_int_equal(wsc_send_frame(&c, off + chunk >= n, 0,
                                    off ? WSC_OP_CONT : WSC_OP_BINARY,
                                    big + off, chunk),
                     0);
  assert_int_equal(wsc_recv_message(&c, &f, 30000), 1);
  assert_int_equal(f.opcode, WSC_OP_BINARY);
  assert_int_equal(f.len, n);
  assert_memory_equal(f.payload, big, n);
  wsc_frame_free(&f);
  free(big);

  /* SIGTERM: the server says 1001 and exits cleanly. */
  assert_int_equal(kill(child, SIGTERM), 0);
  assert_int_equal(wsc_expect_close(&c, 1001, 5000), 0);
  assert_int_equal(wsc_send_close(&c, 1001, NULL, 0), 0);
  wsc_close(&c);
  int status = 0;
  assert_int_equal(waitpid(child, &status, 0), child);
  child = 0;
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static int teardown(void **st) {
  (void)st;
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s path/to/lariat-echo\n", argv[0]);
    return 2;
  }
  program = argv[1];
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_page_on_root),
      cmocka_unit_test(test_echo_up_to_16_mib),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
