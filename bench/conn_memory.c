/* Heap and RSS cost of an idle connection: N WebSocket connections on
 * 127.0.0.1, measured after each has exchanged one message (active idle)
 * and again after its handler returned LARIAT_HIBERNATE. The server runs
 * on a thread of this process; the clients, blocking sockets, in a child
 * process, so that the heap and descriptors this process holds are the
 * server's.
 *   usage: conn_memory [N] [plain|deflate|deflate-nct|tls]
 * (default 2000 plain; deflate negotiates permessage-deflate with context
 * takeover, deflate-nct without it in either direction, which lets
 * hibernate free the zlib streams; tls runs the connections over wss:// with
 * a certificate made at start). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <lariat/lariat.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

static uv_loop_t loop;
static uv_async_t stopper;
static lariat_server *server;

static int mode; /* 0 plain, 1 deflate, 2 deflate without takeover, 3 tls */

static int init(lariat_req *req, lariat_upgrade *up, void *data) {
  (void)req;
  (void)data;
  if (mode == 1 || mode == 2) lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_ENABLE, 1);
  return LARIAT_OK;
}

static int handle(lariat_conn *conn, const lariat_frame *frame, void *state) {
  (void)state;
  lariat_reply(conn, frame);
  return frame->len == 1 && frame->data[0] == 'h' ? LARIAT_HIBERNATE
                                                  : LARIAT_OK;
}

static void on_stop(uv_async_t *a) {
  lariat_server_stop(server);
  uv_close((uv_handle_t *)a, NULL);
}

static void run(void *arg) {
  (void)arg;
  uv_run(&loop, UV_RUN_DEFAULT);
}

static size_t heap_in_use(void) { return mallinfo2().uordblks; }

static size_t rss_bytes(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  if (f) fclose(f);
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* ---- the clients, in a child process ---- */

/* A client connection: a plain socket, or an SSL over one (tls mode). */
typedef struct {
  int fd;
  SSL *ssl;
} client;

static void client_send(client *c, const void *p, size_t n) {
  const char *b = p;
  while (n) {
    int w = c->ssl ? SSL_write(c->ssl, b, (int)n)
                   : (int)send(c->fd, b, n, MSG_NOSIGNAL);
    if (w <= 0) { fprintf(stderr, "conn_memory: send failed\n"); exit(1); }
    b += w;
    n -= (size_t)w;
  }
}

/* Reads until the buffer ends with |end| (the response head), or one
 * small frame: a single read of a tiny reply on loopback gets it whole. */
static void client_recv_until(client *c, const char *end) {
  char buf[1024];
  size_t got = 0;
  do {
    int cap = (int)(sizeof(buf) - 1 - got);
    int r = c->ssl ? SSL_read(c->ssl, buf + got, cap)
                   : (int)recv(c->fd, buf + got, (size_t)cap, 0);
    if (r <= 0) { fprintf(stderr, "conn_memory: read failed or connection closed\n"); exit(1); }
    got += (size_t)r;
    buf[got] = 0;
  } while (end && !strstr(buf, end));
}

/* A one-letter text message; compressed ("x" and "h" deflate to these
 * three bytes with a fresh context, valid whatever the server's context). */
static void exchange(client *c, char letter) {
  const unsigned char plain[] = {0x81, 0x81, 0, 0, 0, 0, (unsigned char)letter};
  const unsigned char packed[] = {0xc1, 0x83, 0, 0, 0, 0,
                                  letter == 'x' ? 0xaa : 0xca, 0, 0};
  if (mode == 1 || mode == 2)
    client_send(c, packed, sizeof(packed));
  else
    client_send(c, plain, sizeof(plain));
  client_recv_until(c, NULL);
}

static void step(int to, int from) {
  char b = 0;
  if (write(to, &b, 1) != 1 || read(from, &b, 1) != 1) exit(1);
}

/* The child: n clients, in step with the parent's measurements. Apart
 * from the server's process, so that the parent's heap and descriptors
 * are the server's alone. */
static void run_clients(int n, int port, const char *request, int to, int from) {
  SSL_CTX *ctx = mode == 3 ? SSL_CTX_new(TLS_client_method()) : NULL;
  client *cs = calloc((size_t)n, sizeof(client));
  if (!cs) exit(1);
  for (int i = 0; i < n; ++i) {
    client *c = &cs[i];
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
      perror("conn_memory: connect");
      exit(1);
    }
    if (ctx) {
      c->ssl = SSL_new(ctx);
      SSL_set_fd(c->ssl, c->fd);
      if (SSL_connect(c->ssl) != 1) { fprintf(stderr, "conn_memory: SSL_connect\n"); exit(1); }
    }
    client_send(c, request, strlen(request));
    client_recv_until(c, "\r\n\r\n");
    if (i == 0) {
      exchange(c, 'x');
      step(to, from); /* baseline, with one connection warm */
    }
  }
  for (int i = 1; i < n; ++i) exchange(&cs[i], 'x');
  step(to, from); /* active */
  for (int i = 0; i < n; ++i) exchange(&cs[i], 'h');
  step(to, from); /* hibernated */
  exit(0);
}

/* The parent holds N server sockets; the child N clients. */
static int raise_fd_limit(int n) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < (rlim_t)n + 64) {
    fprintf(stderr, "conn_memory: RLIMIT_NOFILE is %llu, too low for %d connections\n",
            (unsigned long long)rl.rlim_cur, n);
    return -1;
  }
  return 0;
}

/* ---- tls mode ---- */

/* A throwaway P-256 certificate in PEM. */
static void make_cert(lariat_tls *tls) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_set_version(x, 2);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, k);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_sign(x, k, EVP_sha256());
  BIO *c = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(c, x);
  PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL);
  char *cp, *kp;
  long cl = BIO_get_mem_data(c, &cp), kl = BIO_get_mem_data(kb, &kp);
  if (lariat_tls_add_cert_pem(tls, cp, (size_t)cl, kp, (size_t)kl) != 0) exit(1);
  BIO_free(c);
  BIO_free(kb);
  X509_free(x);
  EVP_PKEY_free(k);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000;
  if (n < 2) {
    fprintf(stderr, "usage: conn_memory [N >= 2] [plain|deflate|deflate-nct|tls]\n");
    return 2;
  }
  if (raise_fd_limit(n) != 0) return 1;
  const char *mode_name = argc > 2 ? argv[2] : "plain";
  mode = strcmp(mode_name, "deflate") == 0       ? 1
         : strcmp(mode_name, "deflate-nct") == 0 ? 2
         : strcmp(mode_name, "tls") == 0         ? 3
                                                 : 0;
  uv_loop_init(&loop);
  lariat_server_new(&server, &loop, NULL);
  static const lariat_handler handler = {.size = sizeof(lariat_handler),
                                         .init = init,
                                         .websocket_handle = handle};
  lariat_server_route(server, "*", &handler, NULL);
  lariat_tls *tls = NULL;
  if (mode == 3) {
    lariat_tls_new(&tls);
    make_cert(tls);
    if (lariat_server_listen_tls(server, "127.0.0.1", 0, tls) != 0) return 1;
    lariat_tls_del(tls);
  } else if (lariat_server_listen(server, "127.0.0.1", 0) != 0) {
    return 1;
  }
  int port = lariat_server_port(server);
  uv_async_init(&loop, &stopper, on_stop);
  char request[512];
  snprintf(request, sizeof(request),
           "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n%s\r\n",
           mode == 1   ? "Sec-WebSocket-Extensions: permessage-deflate\r\n"
           : mode == 2 ? "Sec-WebSocket-Extensions: permessage-deflate; "
                         "server_no_context_takeover; "
                         "client_no_context_takeover\r\n"
                       : "");
  int to_child[2], to_parent[2];
  /* Forked before the loop thread starts: the child is single-threaded. */
  if (pipe(to_child) != 0 || pipe(to_parent) != 0) return 1;
  pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) run_clients(n, port, request, to_parent[1], to_child[0]);
  uv_thread_t thread;
  uv_thread_create(&thread, run, NULL);
  /* Each step: the child is done with a phase; measure, then let it go
   * on. A child that failed closes its pipe, and the read fails. */
  char b;
  if (read(to_parent[0], &b, 1) != 1) return 1;
  size_t heap0 = heap_in_use(), rss0 = rss_bytes();
  if (write(to_child[1], &b, 1) != 1 || read(to_parent[0], &b, 1) != 1) return 1;
  size_t heap_active = heap_in_use(), rss_active = rss_bytes();
  if (write(to_child[1], &b, 1) != 1 || read(to_parent[0], &b, 1) != 1) return 1;
  size_t heap_hib = heap_in_use();
  malloc_trim(0); /* give freed pages back, so RSS shows what hibernate freed */
  size_t rss_hib = rss_bytes();
  if (write(to_child[1], &b, 1) != 1) return 1;
  int status = 0;
  waitpid(child, &status, 0);
  double per = (double)(n - 1);
  printf("connections            %d (%s)\n", n, mode_name);
  printf("heap per connection    active %.0f B   hibernated %.0f B\n",
         (double)(heap_active - heap0) / per, (double)(heap_hib - heap0) / per);
  printf("RSS per connection     active %.0f B   hibernated %.0f B "
         "(after malloc_trim)\n",
         (double)(rss_active - rss0) / per, (double)(rss_hib - rss0) / per);
  uv_async_send(&stopper);
  uv_thread_join(&thread);
  lariat_server_del(server);
  uv_loop_close(&loop);
  return 0;
}
