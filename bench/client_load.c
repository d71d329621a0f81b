/* The lariat client as a load generator: small16 (100 connections, 16
 * messages of 32 B in flight on each) against an echo server, every echo
 * checked, reporting messages per second and the client's own CPU per
 * message - the figure bench/client sets next to bench/loadgen's.
 *   usage: client_load PORT [SECONDS] [WARMUP] */
#define _GNU_SOURCE
#include <lariat/lariat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

enum { CONNS = 100, INFLIGHT = 16, SIZE = 32 };

typedef struct load_conn {
  uint64_t sent, received;
  int open;
} load_conn;

static lariat_server *server;
static load_conn conns[CONNS];
static uint64_t total, at_start, bad, opened;
static double cpu_start;
static int measuring;

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* 32 bytes naming the message's sequence number, so an echo is checked. */
static void send_next(lariat_conn *conn, load_conn *c) {
  char text[SIZE + 1];
  snprintf(text, sizeof text, "%031llu", (unsigned long long)c->sent++);
  lariat_frame f = {.opcode = LARIAT_OP_TEXT,
                    .data = (const uint8_t *)text,
                    .len = SIZE};
  lariat_reply(conn, &f);
}

static int on_open(lariat_conn *conn, void *state) {
  load_conn *c = state;
  c->open = 1;
  ++opened;
  for (int i = 0; i < INFLIGHT; ++i) send_next(conn, c);
  return LARIAT_OK;
}

static int on_echo(lariat_conn *conn, const lariat_frame *frame, void *state) {
  load_conn *c = state;
  char want[SIZE + 1];
  snprintf(want, sizeof want, "%031llu", (unsigned long long)c->received++);
  if (frame->len != SIZE || memcmp(frame->data, want, SIZE) != 0) ++bad;
  ++total;
  send_next(conn, c);
  return LARIAT_OK;
}

static void on_end(lariat_conn *conn, const lariat_reason *reason,
                   void *state) {
  (void)conn;
  load_conn *c = state;
  if (c->open && measuring) ++bad;  /* ended before the window did */
  (void)reason;
}

static double window_s;

static void on_window_end(uv_timer_t *t) {
  double cpu = cpu_seconds() - cpu_start;
  uint64_t msgs = total - at_start;
  measuring = 0;
  printf("client small16: %llu conns open, %llu echoes in %.1f s: %.0f msgs/s, "
         "client CPU %.3f s: %.0f msgs per client CPU-second, %.3f us CPU per "
         "message, %llu bad\n",
         (unsigned long long)opened, (unsigned long long)msgs, window_s,
         msgs / window_s, cpu, msgs / cpu, cpu * 1e6 / (double)msgs,
         (unsigned long long)bad);
  printf("RESULT msgs=%llu msgs_per_s=%.0f client_cpu_s=%.3f "
         "msgs_per_client_cpu_s=%.0f bad=%llu\n",
         (unsigned long long)msgs, msgs / window_s, cpu, msgs / cpu,
         (unsigned long long)bad);
  uv_close((uv_handle_t *)t, NULL);
  lariat_server_stop(server);
}

static void on_warm(uv_timer_t *t) {
  at_start = total;
  cpu_start = cpu_seconds();
  measuring = 1;
  uv_timer_start(t, on_window_end, (uint64_t)(window_s * 1000), 0);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: client_load PORT [SECONDS] [WARMUP]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  window_s = argc > 2 ? atof(argv[2]) : 5;
  double warm = argc > 3 ? atof(argv[3]) : 1;
  if (lariat_server_new(&server, NULL, NULL) != 0) return 1;
  static const lariat_handler h = {.size = sizeof(lariat_handler),
                                   .websocket_init = on_open,
                                   .websocket_handle = on_echo,
                                   .terminate = on_end};
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
  for (int i = 0; i < CONNS; ++i)
    if (lariat_connect(server, url, &h, NULL, NULL, &conns[i], NULL) != 0)
      return 1;
  uv_timer_t timer;
  uv_timer_init(lariat_server_loop(server), &timer);
  uv_timer_start(&timer, on_warm, (uint64_t)(warm * 1000), 0);
  lariat_server_run(server);
  lariat_server_del(server);
  return bad || opened < CONNS ? 1 : 0;
}
