/* Heap and RSS cost of an idle connection: N WebSocket connections on
 * 127.0.0.1, measured after each has exchanged one message (active idle)
 * and again after its handler returned LARIAT_HIBERNATE. The server runs
 * on a thread of this process; the clients are plain blocking sockets, so
 * the heap the process holds is the server's.
 *   usage: conn_memory [N] [plain|deflate|deflate-nct|tls]
 * (default 2000 plain; deflate negotiates permessage-deflate with context
 * takeover, deflate-nct without it in either direction, which lets
 * hibernate free the zlib streams; tls runs the connections over wss:// with
 * a certificate made at start, and the OpenSSL clients in a child process,
 * so that their heap is not counted). */
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

static void send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w <= 0) { perror("send"); exit(1); }
    c += w;
    n -= (size_t)w;
  }
}

/* Reads until the buffer ends with |end| (the response head), or one
 * small frame: a single recv of a tiny reply on loopback gets it whole. */
static void recv_until(int fd, const char *end) {
  char buf[1024];
  size_t got = 0;
  do {
    ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
    if (r <= 0) { perror("recv"); exit(1); }
    got += (size_t)r;
    buf[got] = 0;
  } while (end && !strstr(buf, end));
}

/* A one-letter text message; compressed ("x" and "h" deflate to these
 * three bytes with a fresh context, valid whatever the server's context). */
static void exchange(int fd, char c) {
  const unsigned char plain[] = {0x81, 0x81, 0, 0, 0, 0, (unsigned char)c};
  const unsigned char packed[] = {0xc1, 0x83, 0, 0, 0, 0,
                                  c == 'x' ? 0xaa : 0xca, 0, 0};
  if (mode == 1 || mode == 2)
    send_all(fd, packed, sizeof(packed));
  else
    send_all(fd, plain, sizeof(plain));
  recv_until(fd, NULL);
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

static void ssl_send(SSL *s, const void *p, size_t n) {
  if (SSL_write(s, p, (int)n) != (int)n) { fprintf(stderr, "SSL_write\n"); exit(1); }
}

static void ssl_recv_until(SSL *s, const char *end) {
  char buf[1024];
  size_t got = 0;
  do {
    int r = SSL_read(s, buf + got, (int)(sizeof(buf) - 1 - got));
    if (r <= 0) { fprintf(stderr, "SSL_read\n"); exit(1); }
    got += (size_t)r;
    buf[got] = 0;
  } while (end && !strstr(buf, end));
}

static void ssl_exchange(SSL *s, char c) {
  const unsigned char plain[] = {0x81, 0x81, 0, 0, 0, 0, (unsigned char)c};
  ssl_send(s, plain, sizeof(plain));
  ssl_recv_until(s, NULL);
}

static void step(int to, int from) {
  char b = 0;
  if (write(to, &b, 1) != 1 || read(from, &b, 1) != 1) exit(1);
}

/* The child: n wss clients, in step with the parent's measurements. */
static void tls_clients(int n, int port, const char *request, int to, int from) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL **ssl = calloc((size_t)n, sizeof(SSL *));
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) { perror("connect"); exit(1); }
    ssl[i] = SSL_new(ctx);
    SSL_set_fd(ssl[i], fd);
    if (SSL_connect(ssl[i]) != 1) { fprintf(stderr, "SSL_connect\n"); exit(1); }
    ssl_send(ssl[i], request, strlen(request));
    ssl_recv_until(ssl[i], "\r\n\r\n");
    if (i == 0) {
      ssl_exchange(ssl[0], 'x');
      step(to, from); /* baseline */
    }
  }
  for (int i = 1; i < n; ++i) ssl_exchange(ssl[i], 'x');
  step(to, from); /* active */
  for (int i = 0; i < n; ++i) ssl_exchange(ssl[i], 'h');
  step(to, from); /* hibernated */
  exit(0);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000;
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
  int to_child[2], to_parent[2];
  pid_t child = -1;
  if (mode == 3) {
    /* Forked before the loop thread starts: the child is single-threaded. */
    if (pipe(to_child) != 0 || pipe(to_parent) != 0) return 1;
    child = fork();
    if (child == 0) {
      const char *req =
          "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          "Sec-WebSocket-Version: 13\r\n\r\n";
      tls_clients(n, port, req, to_parent[1], to_child[0]);
    }
  }
  uv_thread_t thread;
  uv_thread_create(&thread, run, NULL);
  if (mode == 3) {
    char b;
    /* Each step: the child is done with a phase; measure, then let it go
     * on. */
    if (read(to_parent[0], &b, 1) != 1) return 1;
    size_t heap0 = heap_in_use(), rss0 = rss_bytes();
    if (write(to_child[1], &b, 1) != 1 || read(to_parent[0], &b, 1) != 1) return 1;
    size_t heap_active = heap_in_use(), rss_active = rss_bytes();
    if (write(to_child[1], &b, 1) != 1 || read(to_parent[0], &b, 1) != 1) return 1;
    size_t heap_hib = heap_in_use();
    malloc_trim(0);
    size_t rss_hib = rss_bytes();
    if (write(to_child[1], &b, 1) != 1) return 1;
    waitpid(child, NULL, 0);
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

  int *fds = calloc((size_t)n, sizeof(int));
  char request[512];
  snprintf(request, sizeof(request),
           "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n%s\r\n",
           mode == 0   ? ""
           : mode == 1 ? "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                       : "Sec-WebSocket-Extensions: permessage-deflate; "
                         "server_no_context_takeover; "
                         "client_no_context_takeover\r\n");
  /* Warm up allocator arenas with one connection before the baseline. */
  size_t heap0 = 0, rss0 = 0;
  for (int i = 0; i < n; ++i) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fds[i], (struct sockaddr *)&a, sizeof(a)) != 0) {
      perror("connect");
      return 1;
    }
    send_all(fds[i], request, strlen(request));
    recv_until(fds[i], "\r\n\r\n");
    if (i == 0) {
      exchange(fds[0], 'x');
      heap0 = heap_in_use();
      rss0 = rss_bytes();
    }
  }
  for (int i = 1; i < n; ++i) exchange(fds[i], 'x');
  size_t heap_active = heap_in_use(), rss_active = rss_bytes();
  for (int i = 0; i < n; ++i) exchange(fds[i], 'h');
  size_t heap_hib = heap_in_use();
  malloc_trim(0); /* give freed pages back, so RSS shows what hibernate freed */
  size_t rss_hib = rss_bytes();

  double per = (double)(n - 1);
  printf("connections            %d (%s)\n", n, mode_name);
  printf("heap per connection    active %.0f B   hibernated %.0f B\n",
         (double)(heap_active - heap0) / per, (double)(heap_hib - heap0) / per);
  printf("RSS per connection     active %.0f B   hibernated %.0f B "
         "(after malloc_trim)\n",
         (double)(rss_active - rss0) / per, (double)(rss_hib - rss0) / per);

  for (int i = 0; i < n; ++i) close(fds[i]);
  uv_async_send(&stopper);
  uv_thread_join(&thread);
  lariat_server_del(server);
  uv_loop_close(&loop);
  free(fds);
  return 0;
}
