/* lariat-cat: a command-line WebSocket client (like wscat or websocat).
 * Connects to URL, sends each line of stdin as a text message, prints each
 * message that arrives on a line of its own, and at the end of stdin
 * closes normally once every line sent has been answered, or after the
 * grace time.
 *
 *   lariat-cat [--protocol P]... [--header 'Name: value']... [--compress]
 *              [--grace MS] [--timeout MS] [--ca FILE] [--servername NAME]
 *              [--insecure] URL
 *
 * URL is ws:// or wss://; wss:// verifies the server against the system's
 * CAs, or those of --ca FILE; --servername checks (and sends in SNI)
 * another name than the URL's host; --insecure checks nothing.
 *
 * Exit status: 0 closed normally (by us, or by the server with 1000 or
 * 1001), 1 the handshake failed (status and reason on stderr), 2 the
 * server closed with another code, 3 any other end (protocol error,
 * timeout, reset), 64 bad usage. */
#include <lariat/lariat.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static lariat_server *server;
static lariat_conn_id client_id;
static int exit_status = 3;
static uint64_t grace_ms = 1000;

typedef struct cat_state {
  uint64_t sent, received;
  int stdin_done;
  uv_timer_t grace;
  int grace_started;
} cat_state;

static void close_now(lariat_conn *conn) {
  lariat_frame f = {.opcode = LARIAT_OP_CLOSE, .close_code = 1000};
  lariat_reply(conn, &f);
}

static void on_grace(uv_timer_t *t) {
  lariat_client_close(server, client_id);
  uv_close((uv_handle_t *)t, NULL);
}

/* stdin finished and everything sent was answered, or the grace time
 * will end it. */
static void maybe_close(lariat_conn *conn, cat_state *st) {
  if (!st->stdin_done) return;
  if (st->received >= st->sent) {
    close_now(conn);
  } else if (!st->grace_started) {
    st->grace_started = 1;
    uv_timer_init(lariat_server_loop(server), &st->grace);
    uv_timer_start(&st->grace, on_grace, grace_ms, 0);
  }
}

static int on_message(lariat_conn *conn, const lariat_frame *frame,
                      void *state) {
  cat_state *st = state;
  if (frame->opcode != LARIAT_OP_TEXT && frame->opcode != LARIAT_OP_BINARY)
    return LARIAT_OK;
  fwrite(frame->data, 1, frame->len, stdout);
  fputc('\n', stdout);
  fflush(stdout);
  st->received++;
  maybe_close(conn, st);
  return LARIAT_OK;
}

/* A line from the stdin thread (NULL: the end of stdin). */
static int on_line(lariat_conn *conn, void *msg, void *state) {
  cat_state *st = state;
  if (!msg) {
    st->stdin_done = 1;
    maybe_close(conn, st);
    return LARIAT_OK;
  }
  lariat_frame f = {.opcode = LARIAT_OP_TEXT,
                    .data = (const uint8_t *)msg,
                    .len = strlen(msg)};
  if (lariat_reply(conn, &f) == 0) st->sent++;
  return LARIAT_OK;
}

static void on_end(lariat_conn *conn, const lariat_reason *reason,
                   void *state) {
  (void)conn;
  cat_state *st = state;
  switch (reason->kind) {
    case LARIAT_REASON_SHUTDOWN:
      exit_status = 0;
      break;
    case LARIAT_REASON_REMOTE:
      exit_status = reason->code == 1000 || reason->code == 1001 ? 0 : 2;
      if (exit_status)
        fprintf(stderr, "lariat-cat: closed by the server: %u %.*s\n",
                reason->code, (int)reason->len, (const char *)reason->data);
      break;
    case LARIAT_REASON_HANDSHAKE_FAILED:
      exit_status = 1;
      fprintf(stderr, "lariat-cat: handshake failed: %s", reason->failure);
      if (reason->http_status) fprintf(stderr, " (HTTP %d)", reason->http_status);
      if (reason->socket_error)
        fprintf(stderr, " (%s)", lariat_strerror(reason->socket_error));
      fputc('\n', stderr);
      break;
    default:
      exit_status = 3;
      fprintf(stderr, "lariat-cat: connection ended: %s\n",
              lariat_reason_name(reason->kind));
      break;
  }
  if (st->grace_started && !uv_is_closing((uv_handle_t *)&st->grace))
    uv_close((uv_handle_t *)&st->grace, NULL);
  if (!reason->retrying) lariat_server_stop(server);
}

static void *read_stdin(void *arg) {
  (void)arg;
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, stdin)) >= 0) {
    if (n > 0 && line[n - 1] == '\n') line[--n] = 0;
    if (n > 0 && line[n - 1] == '\r') line[--n] = 0;
    char *copy = strdup(line);
    if (!copy || lariat_post(server, client_id, copy, free) != 0) break;
  }
  free(line);
  lariat_post(server, client_id, NULL, NULL);
  return NULL;
}

static void on_signal(int sig) {
  (void)sig;
  lariat_server_stop_async(server);
}

static int usage(void) {
  fprintf(stderr,
          "usage: lariat-cat [--protocol P]... [--header 'Name: value']...\n"
          "                  [--compress] [--grace MS] [--timeout MS]\n"
          "                  [--ca FILE] [--servername NAME] [--insecure] URL\n");
  return 64;
}

int main(int argc, char **argv) {
  lariat_client_options *opts;
  if (lariat_client_options_new(&opts) != 0) return 3;
  /* Everything piped in before the connection opens waits for it. */
  lariat_client_options_set_offline_queue(opts, (size_t)1 << 30);
  const char *url = NULL;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (!strcmp(a, "--protocol") && i + 1 < argc) {
      if (lariat_client_options_add_protocol(opts, argv[++i]) != 0) return usage();
    } else if (!strcmp(a, "--header") && i + 1 < argc) {
      char *h = argv[++i], *colon = strchr(h, ':');
      if (!colon) return usage();
      *colon = 0;
      const char *v = colon + 1;
      while (*v == ' ') ++v;
      if (lariat_client_options_add_header(opts, h, v) != 0) return usage();
    } else if (!strcmp(a, "--compress")) {
      lariat_client_options_set_deflate(opts, LARIAT_DEFLATE_ENABLE, 1);
    } else if (!strcmp(a, "--grace") && i + 1 < argc) {
      grace_ms = strtoull(argv[++i], NULL, 10);
    } else if (!strcmp(a, "--timeout") && i + 1 < argc) {
      uint64_t ms = strtoull(argv[++i], NULL, 10);
      if (lariat_client_options_set_timeouts(opts, ms, ms) != 0) return usage();
    } else if (!strcmp(a, "--ca") && i + 1 < argc) {
      int rc = lariat_client_options_set_tls_ca(opts, argv[++i], NULL);
      if (rc != 0) {
        fprintf(stderr, "lariat-cat: %s: %s\n", argv[i], lariat_strerror(rc));
        return 64;
      }
    } else if (!strcmp(a, "--servername") && i + 1 < argc) {
      if (lariat_client_options_set_tls_server_name(opts, argv[++i]) != 0)
        return usage();
    } else if (!strcmp(a, "--insecure")) {
      lariat_client_options_set_tls_insecure_no_verify(opts, 1);
    } else if (a[0] != '-' && !url) {
      url = a;
    } else {
      return usage();
    }
  }
  if (!url) return usage();
  if (lariat_server_new(&server, NULL, NULL) != 0) return 3;
  static cat_state st;
  static const lariat_handler handler = {.size = sizeof(lariat_handler),
                                         .websocket_handle = on_message,
                                         .websocket_info = on_line,
                                         .terminate = on_end};
  int rc = lariat_connect(server, url, &handler, NULL, opts, &st, &client_id);
  lariat_client_options_del(opts);
  if (rc != 0) {
    fprintf(stderr, "lariat-cat: %s: %s\n", url, lariat_strerror(rc));
    return rc == LARIAT_ERR_INVALID_ARGUMENT ? 64 : 3;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  pthread_t reader;
  pthread_create(&reader, NULL, read_stdin, NULL);
  pthread_detach(reader);
  lariat_server_run(server);
  /* The reader may still be blocked in getline(): exit without it. */
  fflush(stdout);
  _exit(exit_status);
}
