/* The lariat-echo example as a user runs it: a page on GET /, a faithful
 * echo of text and binary messages up to 16 MiB on any path, and a clean
 * stop (close 1001, exit 0) on SIGTERM; with --publish TOPIC, every
 * message reaches every connection, the sender included, and the same
 * with --broadcast-by-post; --threads 2 echoes on two loops. argv[1] is
 * the program. */
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

static void connect_retrying_to(wsc *c, int to_port) {
  for (int i = 0; i < 100; ++i) {
    if (wsc_connect(c, "127.0.0.1", to_port, 1000) == 0) return;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
  }
  fail_msg("lariat-echo did not start listening on %d", to_port);
}

static void connect_retrying(wsc *c) { connect_retrying_to(c, port); }

/* Starts lariat-echo on a free port with |extra| arguments (NULL: none). */
static int spawn_echo(const char *extra, const char *extra_value, int *port_out,
                      pid_t *pid_out) {
  *port_out = free_port();
  char port_text[16];
  snprintf(port_text, sizeof(port_text), "%d", *port_out);
  char *argv[] = {(char *)program, "--host", "127.0.0.1", "--port", port_text,
                  (char *)extra, (char *)extra_value, NULL};
  return posix_spawn(pid_out, program, NULL, NULL, argv, environ);
}

static int setup(void **st) {
  (void)st;
  return spawn_echo(NULL, NULL, &port, &child);
}

/* SIGTERM: every client gets 1001, and the server exits 0. */
static void stop_echo(pid_t *pid, wsc *clients, int n) {
  assert_int_equal(kill(*pid, SIGTERM), 0);
  for (int i = 0; i < n; ++i) {
    assert_int_equal(wsc_expect_close(&clients[i], 1001, 5000), 0);
    assert_int_equal(wsc_send_close(&clients[i], 1001, NULL, 0), 0);
    wsc_close(&clients[i]);
  }
  int status = 0;
  assert_int_equal(waitpid(*pid, &status, 0), *pid);
  *pid = 0;
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
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
  stop_echo(&child, &c, 1);
}

static pid_t publish_child;

/* Every message reaches every connection of a broadcasting lariat-echo
 * started with |flag| |value|. */
static void check_broadcast(const char *flag, const char *value) {
  int publish_port = 0;
  assert_int_equal(spawn_echo(flag, value, &publish_port, &publish_child), 0);
  enum { kClients = 3 };
  wsc c[kClients];
  /* Subscribed once the 101 has come: websocket_init runs before the
   * server reads anything more. */
  for (int i = 0; i < kClients; ++i) {
    connect_retrying_to(&c[i], publish_port);
    assert_int_equal(wsc_handshake(&c[i], "/any", NULL, NULL, 3000), 101);
  }
  /* Each client speaks in turn, text then binary: all three hear each
   * message once, with its opcode, in the order sent. */
  for (int from = 0; from < kClients; ++from) {
    char text[32];
    snprintf(text, sizeof(text), "from %d", from);
    uint8_t bytes[3] = {0x00, 0xff, (uint8_t)from};
    assert_int_equal(wsc_send_text(&c[from], text), 0);
    assert_int_equal(wsc_send_binary(&c[from], bytes, sizeof(bytes)), 0);
    for (int to = 0; to < kClients; ++to) {
      wsc_frame f;
      assert_int_equal(wsc_recv_message(&c[to], &f, 3000), 1);
      assert_int_equal(f.opcode, WSC_OP_TEXT);
      assert_int_equal(f.len, strlen(text));
      assert_memory_equal(f.payload, text, f.len);
      wsc_frame_free(&f);
      assert_int_equal(wsc_recv_message(&c[to], &f, 3000), 1);
      assert_int_equal(f.opcode, WSC_OP_BINARY);
      assert_int_equal(f.len, sizeof(bytes));
      assert_memory_equal(f.payload, bytes, sizeof(bytes));
      wsc_frame_free(&f);
    }
  }
  stop_echo(&publish_child, c, kClients);
}

static void test_publish_reaches_every_connection(void **st) {
  (void)st;
  check_broadcast("--publish", "room");
}

/* The pre-topics way bench/run compares against: the same contract. */
static void test_broadcast_by_post_reaches_every_connection(void **st) {
  (void)st;
  check_broadcast("--broadcast-by-post", NULL);
}

/* --threads 2: connections spread over two loops (which loop is the
 * kernel's choice, so not asserted) and each still gets its own echoes. */
static void test_threads_echo(void **st) {
  (void)st;
  int threads_port = 0;
  assert_int_equal(spawn_echo("--threads", "2", &threads_port, &publish_child),
                   0);
  enum { kClients = 8 };
  wsc c[kClients];
  for (int i = 0; i < kClients; ++i) {
    connect_retrying_to(&c[i], threads_port);
    assert_int_equal(wsc_handshake(&c[i], "/", NULL, NULL, 3000), 101);
  }
  for (int round = 0; round < 10; ++round)
    for (int i = 0; i < kClients; ++i) {
      char text[32];
      snprintf(text, sizeof(text), "client %d round %d", i, round);
      assert_int_equal(wsc_send_text(&c[i], text), 0);
      wsc_frame f;
      assert_int_equal(wsc_recv_message(&c[i], &f, 3000), 1);
      assert_int_equal(f.len, strlen(text));
      assert_memory_equal(f.payload, text, f.len);
      wsc_frame_free(&f);
    }
  stop_echo(&publish_child, c, kClients);
}

static int teardown(void **st) {
  (void)st;
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  if (publish_child > 0) {
    kill(publish_child, SIGKILL);
    waitpid(publish_child, NULL, 0);
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
      cmocka_unit_test(test_publish_reaches_every_connection),
      cmocka_unit_test(test_broadcast_by_post_reaches_every_connection),
      cmocka_unit_test(test_threads_echo),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
