/* The README's echo programs in C, C++ and Python, run as a user runs
 * them (with a port argument) and talked to over loopback.
 *   test_readme_examples C_PROGRAM CPP_PROGRAM [PYTHON SCRIPT] */
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
static char **programs[3];
static int program_count;

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

static void echo_through(char **argv_prefix) {
  int port = free_port();
  char port_text[16];
  snprintf(port_text, sizeof(port_text), "%d", port);
  char *argv[4] = {0};
  int n = 0;
  while (argv_prefix[n]) {
    argv[n] = argv_prefix[n];
    n++;
  }
  argv[n] = port_text;
  pid_t child;
  assert_int_equal(posix_spawn(&child, argv[0], NULL, NULL, argv, environ), 0);
  wsc c;
  int connected = 0;
  for (int i = 0; i < 200 && !connected; ++i) {
    if (wsc_connect(&c, "127.0.0.1", port, 1000) == 0) {
      connected = 1;
    } else {
      struct timespec ts = {0, 50 * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  if (!connected) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    fail_msg("%s never listened on %d", argv[0], port);
  }
  assert_int_equal(wsc_handshake(&c, "/", NULL, NULL, 5000), 101);
  assert_int_equal(wsc_send_text(&c, "hello from the README"), 0);
  wsc_frame f;
  assert_int_equal(wsc_recv_message(&c, &f, 5000), 1);
  assert_int_equal(f.opcode, WSC_OP_TEXT);
  assert_string_equal((const char *)f.payload, "hello from the README");
  wsc_frame_free(&f);
  static const uint8_t bytes[] = {0, 1, 2, 0xff};
  assert_int_equal(wsc_send_binary(&c, bytes, sizeof(bytes)), 0);
  assert_int_equal(wsc_recv_message(&c, &f, 5000), 1);
  assert_int_equal(f.opcode, WSC_OP_BINARY);
  assert_int_equal(f.len, sizeof(bytes));
  assert_memory_equal(f.payload, bytes, sizeof(bytes));
  wsc_frame_free(&f);
  wsc_close(&c);
  kill(child, SIGKILL); /* the README programs run until killed */
  waitpid(child, NULL, 0);
}

static void test_c(void **st) {
  (void)st;
  echo_through(programs[0]);
}

static void test_cpp(void **st) {
  (void)st;
  echo_through(programs[1]);
}

static void test_python(void **st) {
  (void)st;
  echo_through(programs[2]);
}

int main(int argc, char **argv) {
  static char *c_argv[2], *cpp_argv[2], *py_argv[3];
  if (argc != 3 && argc != 5) {
    fprintf(stderr, "usage: %s C_PROGRAM CPP_PROGRAM [PYTHON SCRIPT]\n",
            argv[0]);
    return 2;
  }
  c_argv[0] = argv[1];
  cpp_argv[0] = argv[2];
  programs[0] = c_argv;
  programs[1] = cpp_argv;
  program_count = 2;
  if (argc == 5) {
    py_argv[0] = argv[3];
    py_argv[1] = argv[4];
    programs[2] = py_argv;
    program_count = 3;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_c),
      cmocka_unit_test(test_cpp),
      cmocka_unit_test(test_python),
  };
  /* Without the Python binding (sanitizer builds), its case is left out
   * of the list rather than run as a stub. */
  return _cmocka_run_group_tests("readme", tests, (size_t)program_count, NULL,
                                 NULL);
}
