/* lariat-echo: every WebSocket message on every path is sent back
 * unchanged; a plain GET of / gets a page whose script connects back and
 * echoes. Conformance suites and benchmarks point at this server, so it
 * stays a faithful echo and accepts messages up to 16 MiB.
 *
 * --publish TOPIC makes it a broadcasting echo (uWebSockets' broadcast
 * examples, the contract of fan-out benchmarks): every connection
 * subscribes to TOPIC, and every text or binary message from any of them
 * is published to TOPIC with its opcode, so every connection, the sender
 * included, receives it.
 *
 * --broadcast-by-post does the same the way it was done before topics (and
 * as lariat-chat once did): every connection's id sits in a registry, and
 * a message is copied once into a reference-counted buffer and posted to
 * every registered id, whose websocket_info replies it. It exists so
 * bench/run compares the two ways like for like.
 *
 * --threads N runs the server on N event loops (lariat_options_set_threads).
 *
 * --redis URL joins the server to Redis (lariat_server_join_redis): two
 * `lariat-echo --publish T --redis redis://127.0.0.1:6379/` on two ports
 * share T, a message to either reaching the clients of both. Bridge
 * events (connections up and down, gaps) are logged on stderr.
 *
 * --tls-cert FILE --tls-key FILE serve wss:// (and the page over https)
 * on the port instead of ws://. */
#include <lariat/lariat.h>
#include <uv.h>

#include <stdatomic.h>
#include <stdint.h>
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
  int by_post; /* --broadcast-by-post */
} echo_config;

/* --broadcast-by-post: the ids of the open connections. Locked because
 * with --threads the loops register and post at the same time; a
 * disconnect is a linear search (a benchmark server, not a chat). */
static struct {
  uv_mutex_t lock;
  lariat_conn_id *ids;
  size_t count, cap;
} registry;

/* One message shared by every post of one broadcast. */
typedef struct shared_msg {
  atomic_uint refs;
  uint32_t opcode;
  size_t len;
  unsigned char data[];
} shared_msg;

static void shared_msg_unref(void *p) {
  shared_msg *m = p;
  if (atomic_fetch_sub(&m->refs, 1) == 1) free(m);
}

static int registry_add(lariat_conn_id id) {
  uv_mutex_lock(&registry.lock);
  int ok = 1;
  if (registry.count == registry.cap) {
    size_t cap = registry.cap ? registry.cap * 2 : 1024;
    lariat_conn_id *ids = realloc(registry.ids, cap * sizeof *ids);
    if (ids) registry.ids = ids, registry.cap = cap;
    else ok = 0;
  }
  if (ok) registry.ids[registry.count++] = id;
  uv_mutex_unlock(&registry.lock);
  return ok;
}

static void registry_remove(lariat_conn_id id) {
  uv_mutex_lock(&registry.lock);
  for (size_t i = 0; i < registry.count; ++i)
    if (registry.ids[i] == id) {
      registry.ids[i] = registry.ids[--registry.count];
      break;
    }
  uv_mutex_unlock(&registry.lock);
}

/* One copy, one post per member, the sender included. */
static void broadcast_by_post(lariat_server *server, const lariat_frame *f) {
  shared_msg *m = malloc(sizeof *m + f->len);
  if (!m) return;
  m->opcode = f->opcode;
  m->len = f->len;
  if (f->len) memcpy(m->data, f->data, f->len);
  /* One reference held across the loop, so a post freed at once (the
   * member has gone) cannot free the message under us. */
  atomic_init(&m->refs, 1);
  uv_mutex_lock(&registry.lock);
  for (size_t i = 0; i < registry.count; ++i) {
    atomic_fetch_add(&m->refs, 1);
    lariat_post(server, registry.ids[i], m, shared_msg_unref);
  }
  uv_mutex_unlock(&registry.lock);
  shared_msg_unref(m);
}

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
  if (cfg->by_post && !registry_add(lariat_conn_get_id(conn))) {
    lariat_conn_set_crash(conn, "lariat-echo", "out of memory");
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
  else if (cfg->by_post)
    broadcast_by_post(lariat_conn_server(conn), frame);
  else
    lariat_reply(conn, frame);
  return LARIAT_OK;
}

static int echo_info(lariat_conn *conn, void *msg, void *state) {
  (void)state;
  const shared_msg *m = msg;
  lariat_frame f = {0};
  f.opcode = m->opcode;
  f.data = m->data;
  f.len = m->len;
  lariat_reply(conn, &f);
  return LARIAT_OK;
}

static void echo_terminate(lariat_conn *conn, const lariat_reason *reason,
                           void *state) {
  (void)reason;
  (void)state;
  if (conn && ((const echo_config *)lariat_conn_handler_data(conn))->by_post)
    registry_remove(lariat_conn_get_id(conn));
}

/* The bridge's events, for whoever runs the fleet. */
static void on_bridge(lariat_server *server, const lariat_bridge_event *ev,
                      void *data) {
  (void)server;
  (void)data;
  const char *link = ev->link == LARIAT_BRIDGE_SUBSCRIBER ? "subscriber"
                                                          : "publisher";
  if (ev->kind == LARIAT_BRIDGE_UP)
    fprintf(stderr, "lariat-echo: redis %s connection up\n", link);
  else if (ev->kind == LARIAT_BRIDGE_DOWN)
    fprintf(stderr, "lariat-echo: redis %s connection down: %s (%s)\n", link,
            lariat_err_name(ev->error), ev->detail);
  else if (ev->kind == LARIAT_BRIDGE_GAP)
    fprintf(stderr, "lariat-echo: %llu messages on %.*s missed\n",
            (unsigned long long)ev->missed, (int)ev->topic_len,
            (const char *)ev->topic);
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
          "usage: %s [--host ADDR] [--port PORT] [--threads N]\n"
          "  [--publish TOPIC | --broadcast-by-post] [--compress]\n"
          "  [--tls-cert FILE --tls-key FILE]\n"
          "  --tls-cert/--tls-key: wss:// and https with this PEM chain "
          "and key\n"
          "  [--redis URL [--redis-prefix PREFIX]]\n"
          "  --threads N: N event loops (default 1; 0: one per core)\n"
          "  --publish TOPIC: every message goes to every connection\n"
          "  --broadcast-by-post: the same with one lariat_post per "
          "connection\n"
          "  --redis URL: share topics with every server on that Redis\n"
          "    (redis://[:password@]host:port/db; prefix default lariat:)\n"
          "  deflate options (with --compress): --deflate-level N (0-9)\n"
          "  --deflate-mem-level N (1-9) --server-max-window-bits N (8-15)\n"
          "  --client-max-window-bits N (8-15) --server-no-context-takeover\n"
          "  --client-no-context-takeover --compress-threshold BYTES\n",
          argv0);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 8080;
  static echo_config config = {{0, -1, -1, -1, -1, -1, -1, -1}, NULL, 0, 0};
  long threads = 1;
  const char *tls_cert = NULL, *tls_key = NULL;
  const char *redis = NULL, *redis_prefix = NULL;
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
    } else if (strcmp(a, "--redis") == 0 && has_value) {
      redis = argv[++i];
    } else if (strcmp(a, "--redis-prefix") == 0 && has_value) {
      redis_prefix = argv[++i];
    } else if (strcmp(a, "--broadcast-by-post") == 0) {
      config.by_post = 1;
    } else if (strcmp(a, "--threads") == 0 && has_value) {
      char *end;
      threads = strtol(argv[++i], &end, 10);
      if (*end || threads < 0 || threads > 255) {
        usage(argv[0]);
        return 2;
      }
    } else if (strcmp(a, "--tls-cert") == 0 && has_value) {
      tls_cert = argv[++i];
    } else if (strcmp(a, "--tls-key") == 0 && has_value) {
      tls_key = argv[++i];
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

  if ((config.topic && config.by_post) || !tls_cert != !tls_key) {
    usage(argv[0]);
    return 2;
  }
  if (config.by_post && uv_mutex_init(&registry.lock) != 0) return 1;

  lariat_options *opts;
  if (lariat_options_new(&opts) != 0 ||
      lariat_options_set_threads(opts, (unsigned)threads) != 0) {
    fprintf(stderr, "lariat-echo: bad options\n");
    return 1;
  }
  lariat_server *server;
  int rc = lariat_server_new(&server, NULL, opts);
  lariat_options_del(opts);
  if (rc != 0) {
    fprintf(stderr, "lariat_server_new: %s\n", lariat_strerror(rc));
    return 1;
  }
  static const lariat_handler handler = {.size = sizeof(lariat_handler),
                                         .init = echo_init,
                                         .websocket_init = echo_open,
                                         .websocket_handle = echo_handle,
                                         .websocket_info = echo_info,
                                         .terminate = echo_terminate};
  lariat_server_route(server, "*", &handler, &config);
  lariat_tls *tls = NULL;
  if (tls_cert) {
    rc = lariat_tls_new(&tls);
    if (rc == 0) rc = lariat_tls_add_cert_file(tls, tls_cert, tls_key);
    if (rc != 0) {
      fprintf(stderr, "%s, %s: %s\n", tls_cert, tls_key, lariat_strerror(rc));
      lariat_tls_del(tls);
      lariat_server_del(server);
      return 1;
    }
    rc = lariat_server_listen_tls(server, host, port, tls);
    lariat_tls_del(tls); /* the listener keeps its reference */
  } else {
    rc = lariat_server_listen(server, host, port);
  }
  if (rc != 0) {
    fprintf(stderr, "listen %s:%d: %s\n", host, port, lariat_strerror(rc));
    lariat_server_del(server);
    return 1;
  }
  if (redis) {
    rc = lariat_server_join_redis(server, redis, redis_prefix);
    if (rc != 0) {
      fprintf(stderr, "redis %s: %s\n", redis, lariat_strerror(rc));
      lariat_server_del(server);
      return 1;
    }
    lariat_server_on_bridge(server, on_bridge, NULL);
  }
  uv_signal_init(lariat_server_loop(server), &sigint_watcher);
  uv_signal_init(lariat_server_loop(server), &sigterm_watcher);
  sigint_watcher.data = sigterm_watcher.data = server;
  uv_signal_start(&sigint_watcher, on_signal, SIGINT);
  uv_signal_start(&sigterm_watcher, on_signal, SIGTERM);
  printf("lariat-echo listening on %s://%s:%d/ (open %s://%s:%d/ in a "
         "browser)%s%s%s%s%s%s\n",
         tls_cert ? "wss" : "ws", host, lariat_server_port(server),
         tls_cert ? "https" : "http", host, lariat_server_port(server),
         d->enabled ? ", permessage-deflate on" : "",
         config.topic ? ", publishing to " : "",
         config.topic ? config.topic : "",
         config.by_post ? ", broadcasting by post" : "",
         redis ? ", bridged through " : "", redis ? redis : "");
  fflush(stdout);
  lariat_server_run(server);
  lariat_server_del(server);
  free(registry.ids);
  return 0;
}
