#define _GNU_SOURCE
#include "tlstunnel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIGH_WATER (1u << 20)

typedef struct buf {
  unsigned char *p;
  size_t len, cap;
} buf;

static int buf_add(buf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + n) cap *= 2;
    unsigned char *q = realloc(b->p, cap);
    if (!q) return -1;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

static void buf_take(buf *b, size_t n) {
  memmove(b->p, b->p + n, b->len - n);
  b->len -= n;
}

struct tlt {
  tlt_options o;
  int tcp, app; /* app: our end of the socketpair */
  SSL_CTX *ctx;
  SSL *ssl;
  BIO *rbio, *wbio;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  /* Under mu. */
  int stop, handshake_done, failed, ended;
  int want_key_update, key_update_sent;
  int want_reneg, reneg_state; /* 0 none, 1 asked, 2 done, 3 refused */
  char why[256];
  char alpn[32], version[16], peer_cn[128];
  /* Relay thread only. */
  buf to_app, out;
  int tcp_eof, app_eof, app_shut;
  int64_t burst_since;
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_nonblocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void note_error(tlt *t, const char *fallback) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  snprintf(t->why, sizeof t->why, "%s", r ? r : fallback);
  ERR_clear_error();
}

/* Moves what OpenSSL wrote into |out|. */
static void drain_wbio(tlt *t) {
  unsigned char tmp[16384];
  int n;
  while ((n = BIO_read(t->wbio, tmp, sizeof tmp)) > 0) buf_add(&t->out, tmp, (size_t)n);
}

static void after_handshake(tlt *t) {
  const unsigned char *a = NULL;
  unsigned int alen = 0;
  SSL_get0_alpn_selected(t->ssl, &a, &alen);
  if (alen >= sizeof t->alpn) alen = sizeof t->alpn - 1;
  memcpy(t->alpn, a ? (const char *)a : "", alen);
  t->alpn[alen] = 0;
  snprintf(t->version, sizeof t->version, "%s", SSL_get_version(t->ssl));
  X509 *peer = SSL_get1_peer_certificate(t->ssl);
  if (peer) {
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
                              t->peer_cn, sizeof t->peer_cn);
    X509_free(peer);
  }
  t->handshake_done = 1;
  pthread_cond_broadcast(&t->cond);
}

/* Handshake, commands and decryption; under mu. 0 = go on, -1 = ended. */
static int step_ssl(tlt *t) {
  if (!t->handshake_done) {
    int r = SSL_do_handshake(t->ssl);
    drain_wbio(t);
    if (r == 1) {
      after_handshake(t);
    } else {
      int e = SSL_get_error(t->ssl, r);
      if (e != SSL_ERROR_WANT_READ) {
        note_error(t, "handshake failed");
        t->failed = 1;
        pthread_cond_broadcast(&t->cond);
        return -1;
      }
      if (t->tcp_eof) {
        snprintf(t->why, sizeof t->why, "server closed during handshake");
        t->failed = 1;
        pthread_cond_broadcast(&t->cond);
        return -1;
      }
      return 0;
    }
  }
  if (t->want_key_update) {
    t->want_key_update = 0;
    if (SSL_key_update(t->ssl, SSL_KEY_UPDATE_REQUESTED) == 1) {
      SSL_do_handshake(t->ssl); /* sends it now */
      t->key_update_sent = 1;
    } else {
      t->key_update_sent = -1;
    }
    ERR_clear_error();
    drain_wbio(t);
    pthread_cond_broadcast(&t->cond);
  }
  if (t->want_reneg) {
    t->want_reneg = 0;
    t->reneg_state = SSL_renegotiate(t->ssl) == 1 ? 1 : 3;
    SSL_do_handshake(t->ssl);
    ERR_clear_error();
    drain_wbio(t);
    pthread_cond_broadcast(&t->cond);
  }
  for (;;) {
    unsigned char tmp[16384];
    size_t got = 0;
    int r = SSL_read_ex(t->ssl, tmp, sizeof tmp, &got);
    drain_wbio(t);
    if (r == 1) {
      buf_add(&t->to_app, tmp, got);
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    if (t->reneg_state == 1 && !SSL_renegotiate_pending(t->ssl)) {
      t->reneg_state = 2;
      pthread_cond_broadcast(&t->cond);
    }
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_ZERO_RETURN)
      snprintf(t->why, sizeof t->why, "close_notify");
    else
      note_error(t, "TLS error");
    if (t->reneg_state == 1) t->reneg_state = 3;
    t->ended = 1;
    pthread_cond_broadcast(&t->cond);
    return -1;
  }
  if (t->tcp_eof) {
    if (t->reneg_state == 1) t->reneg_state = 3;
    t->ended = 1;
    pthread_cond_broadcast(&t->cond);
    return -1;
  }
  return 0;
}

static int send_ready(tlt *t) {
  if (t->out.len == 0) return 0;
  if (!t->o.burst || t->out.len >= t->o.burst) return 1;
  return now_ms() - t->burst_since >= 20;
}

static void *relay(void *arg) {
  tlt *t = arg;
  unsigned char tmp[65536];
  int done = 0;
  while (!done) {
    pthread_mutex_lock(&t->mu);
    if (t->stop) {
      pthread_mutex_unlock(&t->mu);
      break;
    }
    int rc = step_ssl(t);
    pthread_mutex_unlock(&t->mu);
    if (rc < 0) done = 1;
    if (done && !t->handshake_done) break;
    if (t->out.len && !t->burst_since) t->burst_since = now_ms();
    struct pollfd p[2] = {{t->tcp, 0, 0}, {t->app, 0, 0}};
    if (!done && !t->tcp_eof && t->to_app.len < HIGH_WATER) p[0].events |= POLLIN;
    if (send_ready(t)) p[0].events |= POLLOUT;
    if (t->handshake_done && !done && !t->app_eof && t->out.len < HIGH_WATER)
      p[1].events |= POLLIN;
    if (t->to_app.len) p[1].events |= POLLOUT;
    if (done && !t->to_app.len) {
      if (!t->app_shut) shutdown(t->app, SHUT_WR); /* EOF for the client */
      t->app_shut = 1;
      break;
    }
    if (poll(p, 2, 10) < 0 && errno != EINTR) break;
    if (p[0].revents & POLLOUT) {
      size_t chunk = t->o.send_chunk ? t->o.send_chunk : t->out.len;
      while (t->out.len) {
        size_t n = chunk < t->out.len ? chunk : t->out.len;
        ssize_t s = send(t->tcp, t->out.p, n, MSG_NOSIGNAL);
        if (s <= 0) break;
        buf_take(&t->out, (size_t)s);
        if (t->o.send_chunk == 1) break; /* one byte per poll round */
      }
      t->burst_since = 0;
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = recv(t->tcp, tmp, sizeof tmp, 0);
      if (n > 0)
        BIO_write(t->rbio, tmp, (int)n);
      else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        t->tcp_eof = 1;
    }
    if (p[1].revents & POLLOUT) {
      ssize_t s = send(t->app, t->to_app.p, t->to_app.len, MSG_NOSIGNAL);
      if (s > 0) buf_take(&t->to_app, (size_t)s);
    }
    if (p[1].revents & (POLLIN | POLLHUP)) {
      ssize_t n = recv(t->app, tmp, sizeof tmp, 0);
      if (n > 0) {
        pthread_mutex_lock(&t->mu);
        size_t written = 0;
        if (SSL_write_ex(t->ssl, tmp, (size_t)n, &written) != 1)
          ERR_clear_error();
        drain_wbio(t);
        pthread_mutex_unlock(&t->mu);
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        t->app_eof = 1;
      }
    }
  }
  /* What is left to say (a close_notify after stop) goes now. */
  return NULL;
}

int tlt_open(tlt **out, int port, const tlt_options *o, int *app_fd,
             char *why, size_t why_size, int timeout_ms) {
  *out = NULL;
  tlt *t = calloc(1, sizeof *t);
  if (!t) return -1;
  if (o) t->o = *o;
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cond, NULL);
  int sp[2];
  t->ctx = SSL_CTX_new(TLS_client_method());
  t->tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (!t->ctx || t->tcp < 0 ||
      connect(t->tcp, (struct sockaddr *)&a, sizeof a) != 0 ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
    snprintf(why, why_size, "connect: %s", strerror(errno));
    if (t->tcp >= 0) close(t->tcp);
    SSL_CTX_free(t->ctx);
    free(t);
    return -1;
  }
  int one = 1;
  setsockopt(t->tcp, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  set_nonblocking(t->tcp);
  t->app = sp[0];
  set_nonblocking(t->app);
  *app_fd = sp[1];
  if (t->o.max_version) SSL_CTX_set_max_proto_version(t->ctx, t->o.max_version);
  if (t->o.cafile) {
    SSL_CTX_load_verify_locations(t->ctx, t->o.cafile, NULL);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
  }
  t->ssl = SSL_new(t->ctx);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  SSL_set_connect_state(t->ssl);
  if (t->o.sni) SSL_set_tlsext_host_name(t->ssl, t->o.sni);
  if (t->o.alpn) SSL_set_alpn_protos(t->ssl, t->o.alpn, (unsigned)t->o.alpn_len);
  if (t->o.session) SSL_set_session(t->ssl, t->o.session);
  pthread_create(&t->thread, NULL, relay, t);
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&t->mu);
  while (!t->handshake_done && !t->failed)
    if (pthread_cond_timedwait(&t->cond, &t->mu, &dl) != 0) break;
  int ok = t->handshake_done;
  if (!ok) snprintf(why, why_size, "%s", t->failed ? t->why : "timeout");
  pthread_mutex_unlock(&t->mu);
  if (!ok) {
    close(sp[1]);
    tlt_close(t, 0);
    return -1;
  }
  *out = t;
  return 0;
}

int tlt_resumed(tlt *t) {
  pthread_mutex_lock(&t->mu);
  int r = SSL_session_reused(t->ssl);
  pthread_mutex_unlock(&t->mu);
  return r;
}

const char *tlt_alpn(tlt *t) { return t->alpn; }
const char *tlt_version(tlt *t) { return t->version; }
const char *tlt_peer_cn(tlt *t) { return t->peer_cn; }

static int wait_until(tlt *t, int timeout_ms, int (*cond)(tlt *)) {
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    pthread_mutex_lock(&t->mu);
    int r = cond(t);
    pthread_mutex_unlock(&t->mu);
    if (r) return 1;
    if (now_ms() >= deadline) return 0;
    usleep(2000);
  }
}

static int has_ticket(tlt *t) {
  SSL_SESSION *s = SSL_get0_session(t->ssl);
  return s && SSL_SESSION_is_resumable(s);
}

SSL_SESSION *tlt_session(tlt *t, int timeout_ms) {
  if (!wait_until(t, timeout_ms, has_ticket)) return NULL;
  pthread_mutex_lock(&t->mu);
  SSL_SESSION *s = SSL_get1_session(t->ssl);
  pthread_mutex_unlock(&t->mu);
  return s;
}

static int key_update_done(tlt *t) { return t->key_update_sent != 0; }

int tlt_key_update(tlt *t) {
  pthread_mutex_lock(&t->mu);
  t->key_update_sent = 0;
  t->want_key_update = 1;
  pthread_mutex_unlock(&t->mu);
  if (!wait_until(t, 5000, key_update_done)) return -1;
  return t->key_update_sent == 1 ? 0 : -1;
}

static int reneg_over(tlt *t) { return t->reneg_state >= 2; }

int tlt_renegotiate(tlt *t, int timeout_ms) {
  pthread_mutex_lock(&t->mu);
  t->want_reneg = 1;
  pthread_mutex_unlock(&t->mu);
  if (!wait_until(t, timeout_ms, reneg_over)) return -1;
  return t->reneg_state == 2 ? 1 : 0;
}

static int is_ended(tlt *t) { return t->ended || t->failed; }

int tlt_wait_end(tlt *t, int timeout_ms) { return wait_until(t, timeout_ms, is_ended); }

void tlt_close(tlt *t, int notify) {
  pthread_mutex_lock(&t->mu);
  t->stop = 1;
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->thread, NULL);
  if (notify && t->handshake_done && !t->ended) {
    if (SSL_shutdown(t->ssl) >= 0) {
      drain_wbio(t);
      set_nonblocking(t->tcp);
      if (t->out.len) send(t->tcp, t->out.p, t->out.len, MSG_NOSIGNAL);
    }
    ERR_clear_error();
  }
  close(t->tcp);
  close(t->app);
  SSL_free(t->ssl);
  SSL_CTX_free(t->ctx);
  free(t->to_app.p);
  free(t->out.p);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cond);
  free(t);
}
