/* lws_echo: a minimal libwebsockets echo server (Debian's libwebsockets-dev).
 * Every message is accumulated until its final fragment, then written back
 * whole as one message of the same type; messages queue per connection and
 * go out from the writeable callback (several per callback while the socket
 * is not choked). Single-threaded, lws's default event loop, UTF-8 of text
 * messages validated (as lariat and Beast do).
 *   usage: lws_echo [--port N] [--host 127.0.0.1] [--deflate]
 * --deflate enables the permessage-deflate extension (with 64 KiB buffers,
 * see LWS_CALLBACK_ESTABLISHED). */
#include <libwebsockets.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef struct msg {
  struct msg *next;
  size_t len, cap;
  int binary;
  unsigned char buf[]; /* LWS_PRE bytes of headroom, then the payload */
} msg;

typedef struct pss {
  msg *head, *tail; /* complete messages to echo */
  msg *cur;         /* the message being received */
} pss;

static struct lws_context *context;
static volatile int interrupted;
static int g_deflate;

static msg *msg_grow(msg *m, size_t extra) {
  size_t need = (m ? m->len : 0) + extra;
  if (m && need <= m->cap) return m;
  size_t cap = m ? m->cap * 2 : 4096;
  while (cap < need) cap *= 2;
  msg *n = realloc(m, sizeof(msg) + LWS_PRE + cap);
  if (!n) return NULL;
  if (!m) n->len = 0, n->next = NULL, n->binary = 0;
  n->cap = cap;
  return n;
}

static int callback_echo(struct lws *wsi, enum lws_callback_reasons reason,
                         void *user, void *in, size_t len) {
  pss *p = user;
  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED:
    memset(p, 0, sizeof *p);
    /* 64 KiB (de)compression buffers instead of the default 1 KiB: with
     * the default, lws 4.1.6 corrupts compressed messages (zlib "invalid
     * distance too far back", wrong echoes) once messages need more than
     * one inflate pass and several connections are active. */
    if (g_deflate) {
      lws_set_extension_option(wsi, "permessage-deflate", "rx_buf_size", "16");
      lws_set_extension_option(wsi, "permessage-deflate", "tx_buf_size", "16");
    }
    break;
  case LWS_CALLBACK_RECEIVE: {
    if (!p->cur) {
      if (!(p->cur = msg_grow(NULL, len))) return -1;
      p->cur->binary = lws_frame_is_binary(wsi);
    } else if (!(p->cur = msg_grow(p->cur, len))) {
      return -1;
    }
    memcpy(p->cur->buf + LWS_PRE + p->cur->len, in, len);
    p->cur->len += len;
    if (lws_is_final_fragment(wsi)) {
      msg *m = p->cur;
      p->cur = NULL;
      if (p->tail) p->tail->next = m;
      else p->head = m;
      p->tail = m;
      lws_callback_on_writable(wsi);
    }
    break;
  }
  case LWS_CALLBACK_SERVER_WRITEABLE: {
    int first = 1;
    while (p->head) {
      if (!first && lws_send_pipe_choked(wsi)) break;
      first = 0;
      msg *m = p->head;
      int n = lws_write(wsi, m->buf + LWS_PRE, m->len,
                        m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
      if (n < (int)m->len) {
        lwsl_err("lws_write %d of %zu\n", n, m->len);
        return -1;
      }
      p->head = m->next;
      if (!p->head) p->tail = NULL;
      free(m);
    }
    if (p->head) lws_callback_on_writable(wsi);
    break;
  }
  case LWS_CALLBACK_CLOSED:
    while (p->head) {
      msg *m = p->head;
      p->head = m->next;
      free(m);
    }
    free(p->cur);
    p->cur = NULL;
    p->tail = NULL;
    break;
  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
  return 0;
}

static const struct lws_protocols protocols[] = {
    {"echo", callback_echo, sizeof(pss), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static const struct lws_extension extensions[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate,
     "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
    {NULL, NULL, NULL}};

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
  if (context) lws_cancel_service(context);
}

int main(int argc, char **argv) {
  int port = 9002, deflate = 0;
  const char *host = "127.0.0.1", *cert = NULL, *key = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
    else if (!strcmp(argv[i], "--deflate")) deflate = 1;
    else if (!strcmp(argv[i], "--tls-cert") && i + 1 < argc) cert = argv[++i];
    else if (!strcmp(argv[i], "--tls-key") && i + 1 < argc) key = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--port N] [--host ADDR] [--deflate] "
              "[--tls-cert FILE --tls-key FILE]\n", argv[0]);
      return 2;
    }
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = port;
  info.iface = host;
  info.protocols = protocols;
  info.pt_serv_buf_size = 65536;
  info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
  if (cert && key) { /* wss:// with Debian's OpenSSL build of lws */
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.ssl_cert_filepath = cert;
    info.ssl_private_key_filepath = key;
  }
  g_deflate = deflate;
  if (deflate) info.extensions = extensions;
  context = lws_create_context(&info);
  if (!context) {
    fprintf(stderr, "lws_echo: lws_create_context failed\n");
    return 1;
  }
  printf("lws_echo listening on %s:%d%s%s\n", host, port,
         deflate ? ", permessage-deflate on" : "", cert ? ", TLS" : "");
  fflush(stdout);
  int n = 0;
  while (n >= 0 && !interrupted) n = lws_service(context, 0);
  lws_context_destroy(context);
  return 0;
}
