/* One lariat process of a test fleet (tests/test_bridge.c starts two or
 * three): a server on 127.0.0.1 joined to Redis, whose routes are
 *   /t/TOPIC      subscribes to TOPIC; messages it sends are published
 *                 to TOPIC with lariat_conn_publish (to the others)
 *   /pub/TOPIC    subscribes to nothing; messages are lariat_publish()ed
 *                 to TOPIC (with --threads, from any of the loops)
 *   /many/N       subscribes to N topics "many:0" .. "many:N-1"
 *   /stats        any message is answered with the bridge's counters:
 *                 "connected C published P failed F received R own O
 *                  gaps G missed M faults X reconnects Y channels N"
 *   /block/MS     any message blocks this loop for MS ms (Redis' output
 *                 buffer limit then disconnects the subscriber)
 * It prints "port N" when listening, and one line per bridge event on
 * stdout ("up LINK RECONNECTS", "down LINK ERRNAME", "gap TOPIC MISSED"),
 * and stops on SIGTERM (exit status 0 after a clean stop).
 *   bridge_node REDIS_URL [--prefix P] [--threads N] [--timeouts C,M]
 *               [--backoff MIN,MAX] [--linger MS] */
#include <lariat/lariat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lariat_server *g_server;

static void on_term(int sig) {
  (void)sig;
  lariat_server_stop_async(g_server);
}

static int starts(const char *path, size_t len, const char *prefix,
                  const char **rest, size_t *rest_len) {
  size_t n = strlen(prefix);
  if (len < n || memcmp(path, prefix, n) != 0) return 0;
  *rest = path + n;
  *rest_len = len - n;
  return 1;
}

/* The path is not NUL-terminated: a number read from it is bounded. */
static int number(const char *p, size_t len) {
  char buf[16];
  if (len >= sizeof buf) len = sizeof buf - 1;
  memcpy(buf, p, len);
  buf[len] = 0;
  return atoi(buf);
}

static int on_open(lariat_conn *conn, void *state) {
  (void)state;
  size_t len;
  const char *path = lariat_conn_path(conn, &len), *rest;
  size_t rest_len;
  if (starts(path, len, "/t/", &rest, &rest_len))
    return lariat_subscribe(conn, rest, rest_len) == 0 ? LARIAT_OK : LARIAT_CRASH;
  if (starts(path, len, "/many/", &rest, &rest_len)) {
    int n = number(rest, rest_len);
    for (int i = 0; i < n; ++i) {
      char topic[32];
      int tl = snprintf(topic, sizeof topic, "many:%d", i);
      if (lariat_subscribe(conn, topic, (size_t)tl) != 0) return LARIAT_CRASH;
    }
  }
  return LARIAT_OK;
}

static void reply_stats(lariat_conn *conn) {
  lariat_bridge_stats s;
  char text[512];
  if (lariat_server_bridge_stats(lariat_conn_server(conn), &s, sizeof s) != 0)
    memset(&s, 0, sizeof s);
  int n = snprintf(text, sizeof text,
                   "connected %d published %llu failed %llu received %llu "
                   "own %llu gaps %llu missed %llu faults %llu reconnects "
                   "%llu channels %llu",
                   s.connected, (unsigned long long)s.published,
                   (unsigned long long)s.publish_failed,
                   (unsigned long long)s.received,
                   (unsigned long long)s.own_dropped,
                   (unsigned long long)s.gaps, (unsigned long long)s.missed,
                   (unsigned long long)s.faults,
                   (unsigned long long)s.reconnects,
                   (unsigned long long)s.channels);
  lariat_frame f = {.opcode = LARIAT_OP_TEXT, .data = (const uint8_t *)text,
                    .len = (size_t)n};
  lariat_reply(conn, &f);
}

static int on_message(lariat_conn *conn, const lariat_frame *frame,
                      void *state) {
  (void)state;
  if (frame->opcode != LARIAT_OP_TEXT && frame->opcode != LARIAT_OP_BINARY)
    return LARIAT_OK;
  size_t len;
  const char *path = lariat_conn_path(conn, &len), *rest;
  size_t rest_len;
  if (starts(path, len, "/t/", &rest, &rest_len))
    lariat_conn_publish(conn, rest, rest_len, frame);
  else if (starts(path, len, "/pub/", &rest, &rest_len))
    lariat_publish(lariat_conn_server(conn), rest, rest_len, frame);
  else if (starts(path, len, "/stats", &rest, &rest_len))
    reply_stats(conn);
  else if (starts(path, len, "/block/", &rest, &rest_len))
    usleep((useconds_t)number(rest, rest_len) * 1000);
  return LARIAT_OK;
}

static void on_bridge(lariat_server *server, const lariat_bridge_event *ev,
                      void *data) {
  (void)server;
  (void)data;
  switch (ev->kind) {
    case LARIAT_BRIDGE_UP:
      printf("up %d %llu\n", ev->link, (unsigned long long)ev->reconnects);
      break;
    case LARIAT_BRIDGE_DOWN:
      printf("down %d %s %s\n", ev->link, lariat_err_name(ev->error),
             ev->detail);
      break;
    case LARIAT_BRIDGE_GAP:
      printf("gap %.*s %llu\n", (int)ev->topic_len, (const char *)ev->topic,
             (unsigned long long)ev->missed);
      break;
  }
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bridge_node REDIS_URL [options]\n");
    return 2;
  }
  const char *url = argv[1], *prefix = "test:";
  lariat_options *opts;
  if (lariat_options_new(&opts) != 0) return 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    unsigned long long a = 0, b = 0;
    sscanf(v, "%llu,%llu", &a, &b);
    if (strcmp(k, "--prefix") == 0)
      prefix = v;
    else if (strcmp(k, "--threads") == 0)
      lariat_options_set_threads(opts, (unsigned)a);
    else if (strcmp(k, "--timeouts") == 0)
      lariat_options_set_bridge_timeouts(opts, a, b);
    else if (strcmp(k, "--backoff") == 0)
      lariat_options_set_bridge_backoff(opts, a, b);
    else if (strcmp(k, "--linger") == 0)
      lariat_options_set_bridge_linger(opts, a);
  }
  int rc = lariat_server_new(&g_server, NULL, opts);
  lariat_options_del(opts);
  if (rc != 0) return 1;
  static const lariat_handler handler = {.size = sizeof(lariat_handler),
                                         .websocket_init = on_open,
                                         .websocket_handle = on_message};
  if (lariat_server_route(g_server, "*", &handler, NULL) != 0 ||
      lariat_server_listen(g_server, "127.0.0.1", 0) != 0)
    return 1;
  rc = lariat_server_join_redis(g_server, url, prefix);
  if (rc != 0) {
    fprintf(stderr, "join: %s\n", lariat_strerror(rc));
    return 1;
  }
  lariat_server_on_bridge(g_server, on_bridge, NULL);
  signal(SIGTERM, on_term);
  printf("port %d\n", lariat_server_port(g_server));
  fflush(stdout);
  lariat_server_run(g_server);
  lariat_server_del(g_server);
  return 0;
}
