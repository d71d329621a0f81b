/* lariat-echo: every WebSocket message on every path is sent back
 * unchanged; a plain GET of / gets a page whose script connects back and
 * echoes. Conformance suites and benchmarks point at this server, so it
 * stays a faithful echo and accepts messages up to 16 MiB. */
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

static void set_if(lariat_upgrade *up, int option, int value) {
  if (value >= 0) lariat_upgrade_set_deflate(up, option, value);
}

static int echo_init(lariat_req *req, lariat_upgrade *up, void *data) {
  const deflate_flags *d = data;
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

static int echo_handle(lariat_conn *conn, const lariat_frame *frame,
                       void *state) {
  (void)state;
  if (frame->opcode == LARIAT_OP_TEXT || frame->opcode == LARIAT_OP_BINARY)
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
          "usage: %s [--host ADDR] [--port PORT] [--compress]\n"
          "  deflate options (with --compress): --deflate-level N (0-9)\n"
          "  --deflate-mem-level N (1-9) --server-max-window-bits N (8-15)\n"
          "  --client-max-window-bits N (8-15) --server-no-context-takeover\n"
          "  --client-no-context-takeover --compress-threshold BYTES\n",
          argv0);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 8080;
  static deflate_flags deflate = {0, -1, -1, -1, -1, -1, -1, -1};
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    int has_value = i + 1 < argc;
    if (strcmp(a, "--host") == 0 && has_value) {
      host = argv[++i];
    } else if (strcmp(a, "--port") == 0 && has_value) {
      port = atoi(argv[++i]);
    } else if (strcmp(a, "--compress") == 0) {
      deflate.enabled = 1;
    } else if (strcmp(a, "--deflate-level") == 0 && has_value) {
      deflate.level = atoi(argv[++i]);
    } else if (strcmp(a, "--deflate-mem-level") == 0 && has_value) {
      deflate.mem_level = atoi(argv[++i]);
    } else if (strcmp(a, "--server-max-window-bits") == 0 && has_value) {
      deflate.server_bits = atoi(argv[++i]);
    } else if (strcmp(a, "--client-max-window-bits") == 0 && has_value) {
      deflate.client_bits = atoi(argv[++i]);
    } else if (strcmp(a, "--server-no-context-takeover") == 0) {
      deflate.server_no_takeover = 1;
    } else if (strcmp(a, "--client-no-context-takeover") == 0) {
      deflate.client_no_takeover = 1;
    } else if (strcmp(a, "--compress-threshold") == 0 && has_value) {
      deflate.threshold = atoi(argv[++i]);
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
                                         .websocket_handle = echo_handle};
  lariat_server_route(server, "*", &handler, &deflate);
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
         "browser)%s\n",
         host, lariat_server_port(server), host, lariat_server_port(server),
         deflate.enabled ? ", permessage-deflate on" : "");
  fflush(stdout);
  lariat_server_run(server);
  lariat_server_del(server);
  return 0;
}
