/* lariat-echo: every WebSocket message on every path is sent back
 * unchanged; a plain GET of / gets a page whose script connects back and
 * echoes. Conformance suites and benchmarks point at this server, so it
 * stays a faithful echo and accepts messages up to 16 MiB.
 *
 * --publish TOPIC makes it a broadcasting echo (uWebSockets' broadcast
 * examples, the contract of fan-out benchmarks): every connection
 * subscribes to TOPIC, and every text or binary message from any of them
 * is published to TOPIC with its opcode, so every connection, the sender
 * included, receives it. */
#include <lariat/lariat.h>
#include <uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char kPage[] =
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>lariat "
    "echo</title></head>\n<body>\n<h1>lariat echo</h1>\n"
    "<input id=\"msg\" value=\"hello\"> <button id=\"send\">send</button>\n"
    "<pre id=\"log\"></pre>\n<script>\n"
    "const log = (t) => { document.getElementById('log').textContent += t + "
    "'\\n'; };\n"
    "const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : "
    "'ws://') + location.host + '/echo');\n"
    "ws.onopen = () => { log('open'); ws.send('hello from the browser'); };\n"
    "ws.onmessage = (e) => log('echo: ' + e.data);\n"
    "ws.onclose = (e) => log('closed ' + e.code);\n"
    "document.getElementById('send').onclick = () => "
    "ws.send(document.getElementById('msg').value);\n"
    "</script>\n</body></html>\n";

/* --compress and the deflate knobs; -1 leaves lariat's default. */
typedef struct deflate_flags {
  int enabled, level, mem_level, server_bits, client_bits;
  int server_no_takeover, client_no_takeover, threshold;
} deflate_flags;

/* What every connection of the route shares (its handler_data). */
typedef struct echo_config {
  deflate_flags deflate;
  const char *topic; /* --publish; NULL: a plain echo */
  size_t topic_len;
} echo_config;

static void set_if(lariat_upgrade *up, int option, int value) {
  if (value >= 0) lariat_upgrade_set_deflate(up, option, value);
}

static int echo_init(lariat_req *req, lariat_upgrade *up, void *data) {
  const deflate_flags *d = &((const echo_config *)data)->deflate;
  if (!lariat_req_is_websocket(req)) {
    size_t len;
    const char *path = lariat_req_path(req, &len);
    if (len == 1 && path[0] == '/') {
      static const char *const headers[] = {"content-type",
                                            "text/html; charset=utf-8"};
      return lariat_upgrade_reply(up, 200, headers, 1, kPage,
                                  sizeof(kPage) - 1) == 0
                 ? LARIAT_OK
                 : LARIAT_CRASH;
    }
    lariat_upgrade_reply(up, 404, NULL, 0, "not found\n", 10);
    return LARIAT_OK;
  }
  lariat_upgrade_set_max_frame_size(up, 16u << 20);
  if (d->enabled) {
    lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_ENABLE, 1);
    set_if(up, LARIAT_DEFLATE_LEVEL, d->level);
    set_if(up, LARIAT_DEFLATE_MEM_LEVEL, d->mem_level);
    set_if(up, LARIAT_DEFLATE_SERVER_MAX_WINDOW_BITS, d->server_bits);
    set_if(up, LARIAT_DEFLATE_CLIENT_MAX_WINDOW_BITS, d->client_bits);
    set_if(up, LARIAT_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER, d->server_no_takeover);
    set_if(up, LARIAT_DEFLATE_CLIENT_NO_CONTEXT_TAKEOVER, d->client_no_takeover);
    set_if(up, LARIAT_DEFLATE_THRESHOLD, d->threshold);
  }
  return LARIAT_OK;
}

static int echo_open(lariat_conn *conn, void *state) {
  (void)state;
  const echo_config *cfg = lariat_conn_handler_data(conn);
  if (cfg->topic && lariat_subscribe(conn, cfg->topic, cfg->topic_len) != 0) {
    lariat_conn_set_crash(conn, "lariat-echo", "cannot subscribe");
    return LARIAT_CRASH;
  }
  return LARIAT_OK;
}

static int echo_handle(lariat_conn *conn, const lariat_frame *frame,
                       void *state) {
  (void)state;
  if (frame->opcode != LARIAT_OP_TEXT && frame->opcode != LARIAT_OP_BINARY)
    return LARIAT_OK;
  const echo_config *cfg = lariat_conn_handler_data(conn);
  if (cfg->topic)  /* to everyone, the sender included */
    lariat_publish(lariat_conn_server(conn), cfg->topic, cfg->topic_len, frame);
  else
    lariat_reply(conn, frame);
  return LARIAT_OK;
}

static uv_signal_t sigint_watcher, sigterm_watcher;

/* SIGINT or SIGTERM: stop the server (close 1001 to every client) and let
 * the loop run dry. */
static void on_signal(uv_signal_t *sig, int signum) {
  (void)signum;
  lariat_server_stop((lariat_server *)sig->data);
  uv_close((uv_handle_t *)&sigint_watcher, NULL);
  uv_close((uv_handle_t *)&sigterm_watcher, NULL);
}

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s [--host ADDR] [--port PORT] [--publish TOPIC] "
          "[--compress]\n"
          "  --publish TOPIC: every message goes to every connection\n"
          "  deflate options (with --compress): --deflate-level N (0-9)\n"
          "  --deflate-mem-level N (1-9) --server-max-window-bits N (8-15)\n"
          "  --client-max-window-bits N (8-15) --server-no-context-takeover\n"
          "  --client-no-context-takeover --compress-threshold BYTES\n",
          argv0);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 8080;
  static echo_config config = {{0, -1, -1, -1, -1, -1, -1, -1}, NULL, 0};
  deflate_flags *const d = &config.deflate;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    int has_value = i + 1 < argc;
    if (strcmp(a, "--host") == 0 && has_value) {
      host = argv[++i];
    } else if (strcmp(a, "--port") == 0 && has_value) {
      port = atoi(argv[++i]);
    } else if (strcmp(a, "--publish") == 0 && has_value) {
      config.topic = argv[++i];
      config.topic_len = strlen(config.topic);
    } else if (strcmp(a, "--compress") == 0) {
      d->enabled = 1;
    } else if (strcmp(a, "--deflate-level") == 0 && has_value) {
      d->level = atoi(argv[++i]);
    } else if (strcmp(a, "--deflate-mem-level") == 0 && has_value) {
      d->mem_level = atoi(argv[++i]);
    } else if (strcmp(a, "--server-max-window-bits") == 0 && has_value) {
      d->server_bits = atoi(argv[++i]);
    } else if (strcmp(a, "--client-max-window-bits") == 0 && has_value) {
      d->client_bits = atoi(argv[++i]);
    } else if (strcmp(a, "--server-no-context-takeover") == 0) {
      d->server_no_takeover = 1;
    } else if (strcmp(a, "--client-no-context-takeover") == 0) {
      d->client_no_takeover = 1;
    } else if (strcmp(a, "--compress-threshold") == 0 && has_value) {
      d->threshold = atoi(argv[++i]);
    } else {
      usage(argv[0]);
      return 2;
    }
  }

  lariat_server *server;
  int rc = lariat_server_new(&server, NULL, NULL);
  if (rc != 0) {
    fprintf(stderr, "lariat_server_new: %s\n", lariat_strerror(rc));
    return 1;
  }
  static const lariat_handler handler = {.size = sizeof(lariat_handler),
                                         .init = echo_init,
                                         .websocket_init = echo_open,
                                         .websocket_handle = echo_handle};
  lariat_server_route(server, "*", &handler, &config);
  rc = lariat_server_listen(server, host, port);
  if (rc != 0) {
    fprintf(stderr, "listen %s:%d: %s\n", host, port, lariat_strerror(rc));
    lariat_server_del(server);
    return 1;
  }
  uv_signal_init(lariat_server_loop(server), &sigint_watcher);
  uv_signal_init(lariat_server_loop(server), &sigterm_watcher);
  sigint_watcher.data = sigterm_watcher.data = server;
  uv_signal_start(&sigint_watcher, on_signal, SIGINT);
  uv_signal_start(&sigterm_watcher, on_signal, SIGTERM);
  printf("lariat-echo listening on ws://%s:%d/ (open http://%s:%d/ in a "
         "browser)%s%s%s\n",
         host, lariat_server_port(server), host, lariat_server_port(server),
         d->enabled ? ", permessage-deflate on" : "",
         config.topic ? ", publishing to " : "",
         config.topic ? config.topic : "");
  fflush(stdout);
  lariat_server_run(server);
  lariat_server_del(server);
  return 0;
}
