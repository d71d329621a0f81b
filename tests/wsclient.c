/* Blocking WebSocket test client; see wsclient.h for the contract. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "wsclient.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SEED 0x9E3779B97F4A7C15ull
#define MAX_HEAD 65536
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- time ------------------------------------------------------------ */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_after(int timeout_ms) {
  return now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
}

static int remaining_ms(int64_t deadline) {
  int64_t left = deadline - now_ms();
  if (left <= 0) return 0;
  return left > INT_MAX ? INT_MAX : (int)left;
}

/* 1 when fd is ready for events, -ETIMEDOUT at the deadline, else -errno.
 * Polls once even when the deadline has passed, so timeout 0 still sees
 * what is already there. */
static int wait_fd(int fd, short events, int64_t deadline) {
  if (fd < 0) return -EBADF;
  for (;;) {
    struct pollfd pfd = {fd, events, 0};
    int r = poll(&pfd, 1, remaining_ms(deadline));
    if (r > 0) return 1;
    if (r == 0) return -ETIMEDOUT;
    if (errno != EINTR) return -errno;
  }
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- setup / teardown ------------------------------------------------ */

static void init_client(wsc *c, int fd) {
  memset(c, 0, sizeof *c);
  c->fd = fd;
  c->io_timeout_ms = 5000;
  c->max_payload = (size_t)64 << 20;
  c->check_utf8 = 1;
  c->rng = DEFAULT_SEED;
  c->last_close_code = -1;
  strcpy(c->host_header, "localhost");
}

/* Non-blocking so that no send or recv can outlive its deadline. */
static void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Fails harmlessly on non-TCP sockets (socketpair). */
static void set_nodelay(int fd, int on) {
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

int wsc_connect(wsc *c, const char *host, int port, int timeout_ms) {
  init_client(c, -1);
  int64_t deadline = deadline_after(timeout_ms);
  char service[16];
  snprintf(service, sizeof service, "%d", port);
  struct addrinfo hints, *list = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  if (getaddrinfo(host, service, &hints, &list) != 0) return WSC_E_RESOLVE;

  int err = -ECONNREFUSED;
  for (struct addrinfo *ai = list; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) {
      err = -errno;
      continue;
    }
    set_nonblocking(fd);
    err = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        err = -errno;
      } else if ((err = wait_fd(fd, POLLOUT, deadline)) == 1) {
        int so_error = 0;
        socklen_t size = sizeof so_error;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &size);
        err = -so_error;
      }
    }
    if (err != 0) {
      close(fd);
      continue;
    }
    set_nodelay(fd, 1);
    c->fd = fd;
    snprintf(c->host_header, sizeof c->host_header,
             strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    break;
  }
  freeaddrinfo(list);
  return err;
}

void wsc_attach(wsc *c, int fd) {
  init_client(c, fd);
  set_nonblocking(fd);
}

static void release_buffers(wsc *c) {
  free(c->rbuf);
  free(c->msg_buf);
  c->rbuf = NULL;
  c->msg_buf = NULL;
  c->rlen = c->rcap = c->msg_len = 0;
  c->msg_active = 0;
  c->server_fragmenting = 0;
}

void wsc_close(wsc *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  release_buffers(c);
}

void wsc_reset(wsc *c) {
  if (c->fd >= 0) {
    struct linger abortive = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
  }
  wsc_close(c);
}

int wsc_shutdown_write(wsc *c) {
  return shutdown(c->fd, SHUT_WR) == 0 ? 0 : -errno;
}

/* ---- PRNG ------------------------------------------------------------ */

static uint64_t next_random(wsc *c) {
  uint64_t x = c->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return c->rng = x;
}

void wsc_seed(wsc *c, uint64_t seed) { c->rng = seed ? seed : DEFAULT_SEED; }

void wsc_set_next_mask(wsc *c, const uint8_t mask[4]) {
  memcpy(c->forced_mask, mask, 4);
  c->forced_mask_pending = 1;
}

void wsc_next_mask(wsc *c, uint8_t mask[4]) {
  if (c->forced_mask_pending) {
    memcpy(mask, c->forced_mask, 4);
    c->forced_mask_pending = 0;
    return;
  }
  uint64_t r = next_random(c);
  for (int i = 0; i < 4; i++) mask[i] = (uint8_t)(r >> (8 * i));
}

/* ---- raw I/O --------------------------------------------------------- */

int wsc_send_raw(wsc *c, const void *p, size_t n) {
  const uint8_t *bytes = p;
  int64_t deadline = deadline_after(c->io_timeout_ms);
  while (n > 0) {
    /* MSG_NOSIGNAL: a server that already hung up must give -EPIPE, not
       kill the test binary. */
    ssize_t sent = send(c->fd, bytes, n, MSG_NOSIGNAL);
    if (sent > 0) {
      bytes += sent;
      n -= (size_t)sent;
    } else if (sent < 0 && errno == EINTR) {
      continue;
    } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int r = wait_fd(c->fd, POLLOUT, deadline);
      if (r < 0) return r;
    } else {
      return sent < 0 ? -errno : -EIO;
    }
  }
  return 0;
}

int wsc_send_raw_slowly(wsc *c, const void *p, size_t n, int delay_ms) {
  const uint8_t *bytes = p;
  int previous = 0;
  socklen_t size = sizeof previous;
  int had_option =
      getsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &previous, &size) == 0;
  set_nodelay(c->fd, 1); /* else Nagle would merge the bytes again */
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++) {
    if (i > 0 && delay_ms > 0) sleep_ms(delay_ms);
    r = wsc_send_raw(c, bytes + i, 1);
  }
  if (had_option) set_nodelay(c->fd, previous);
  return r;
}

static int reserve(wsc *c, size_t total) {
  if (total <= c->rcap) return 0;
  size_t cap = c->rcap ? c->rcap : 4096;
  while (cap < total) cap *= 2;
  uint8_t *grown = realloc(c->rbuf, cap);
  if (!grown) return -ENOMEM;
  c->rbuf = grown;
  c->rcap = cap;
  return 0;
}

static void consume(wsc *c, size_t n) {
  if (n == 0) return; /* rbuf may still be NULL */
  memmove(c->rbuf, c->rbuf + n, c->rlen - n);
  c->rlen -= n;
}

/* Appends one recv() to rbuf, waiting until the deadline for data.
 * 1 = got bytes, 0 = EOF, negative = timeout or error. */
static int fill(wsc *c, int64_t deadline) {
  if (c->fd < 0) return -EBADF;
  for (;;) {
    int r = reserve(c, c->rlen + 16384);
    if (r) return r;
    ssize_t got = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    if (got > 0) {
      c->rlen += (size_t)got;
      return 1;
    }
    if (got == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
    r = wait_fd(c->fd, POLLIN, deadline);
    if (r < 0) return r;
  }
}

int wsc_read_available(wsc *c, uint8_t *buf, size_t cap, int timeout_ms) {
  if (cap > INT_MAX) cap = INT_MAX;
  if (c->rlen > 0) {
    size_t n = c->rlen < cap ? c->rlen : cap;
    memcpy(buf, c->rbuf, n);
    consume(c, n);
    return (int)n;
  }
  int64_t deadline = deadline_after(timeout_ms);
  for (;;) {
    int r = wait_fd(c->fd, POLLIN, deadline);
    if (r < 0) return r;
    ssize_t got = recv(c->fd, buf, cap, 0);
    if (got >= 0) return (int)got;
    if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
      return -errno;
  }
}

int wsc_wait_eof(wsc *c, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  uint8_t scratch[16384];
  c->rlen = 0;
  if (c->fd < 0) return -EBADF;
  for (;;) {
    ssize_t got = recv(c->fd, scratch, sizeof scratch, 0);
    if (got == 0) return 0;
    if (got > 0) {
      /* A server that keeps streaming must not hold us past the deadline. */
      if (now_ms() >= deadline) return -ETIMEDOUT;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) return 1;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
    int r = wait_fd(c->fd, POLLIN, deadline);
    if (r < 0) return r;
  }
}

/* ---- SHA-1, base64, UTF-8 -------------------------------------------- */

static uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const uint8_t *msg, size_t len, uint8_t digest[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476,
                   0xC3D2E1F0};
  /* Room for the 0x80 marker and the 64-bit bit length. */
  size_t padded = (len + 9 + 63) / 64 * 64;
  for (size_t block = 0; block < padded; block += 64) {
    uint32_t w[80];
    for (size_t i = 0; i < 64; i++) {
      size_t pos = block + i;
      uint8_t byte = pos < len ? msg[pos] : pos == len ? 0x80 : 0;
      if (pos >= padded - 8)
        byte = (uint8_t)(((uint64_t)len * 8) >> (8 * (padded - 1 - pos)));
      w[i / 4] = (i % 4 ? w[i / 4] << 8 : 0) | byte;
    }
    for (int i = 16; i < 80; i++)
      w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5A827999;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d;
        k = 0xCA62C1D6;
      }
      uint32_t t = rotl(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = rotl(b, 30);
      b = a;
      a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
  for (int i = 0; i < 20; i++) digest[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* out needs 4 * ceil(n / 3) + 1 bytes. */
static void base64(const uint8_t *in, size_t n, char *out) {
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    *out++ = alphabet[(v >> 18) & 63];
    *out++ = alphabet[(v >> 12) & 63];
    *out++ = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
    *out++ = i + 2 < n ? alphabet[v & 63] : '=';
  }
  *out = '\0';
}

void wsc_accept_key(const char *key, char out[29]) {
  size_t key_len = strlen(key), guid_len = strlen(WS_GUID);
  uint8_t *joined = malloc(key_len + guid_len);
  uint8_t digest[20];
  if (!joined) {
    out[0] = '\0';
    return;
  }
  memcpy(joined, key, key_len);
  memcpy(joined + key_len, WS_GUID, guid_len);
  sha1(joined, key_len + guid_len, digest);
  free(joined);
  base64(digest, sizeof digest, out);
}

int wsc_utf8_valid(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t lead = p[i];
    size_t more;
    uint32_t cp, min;
    if (lead < 0x80) {
      i++;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      more = 1, cp = lead & 0x1F, min = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      more = 2, cp = lead & 0x0F, min = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      more = 3, cp = lead & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (n - i <= more) return 0;
    for (size_t k = 1; k <= more; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += more + 1;
  }
  return 1;
}

const char *wsc_strerror(int err) {
  switch (err) {
    case WSC_E_RESOLVE: return "WSC_E_RESOLVE: host did not resolve";
    case WSC_E_BAD_HTTP: return "WSC_E_BAD_HTTP: malformed response head";
    case WSC_E_BAD_HANDSHAKE: return "WSC_E_BAD_HANDSHAKE: invalid 101 response";
    case WSC_E_TRUNCATED: return "WSC_E_TRUNCATED: EOF inside a frame/response";
    case WSC_E_EOF: return "WSC_E_EOF: connection ended first";
    case WSC_E_CLOSE_CODE: return "WSC_E_CLOSE_CODE: unexpected close code";
    default: return err < 0 ? strerror(-err) : "no error";
  }
}

/* ---- frames out ------------------------------------------------------ */

size_t wsc_encode_frame(uint8_t *out, size_t cap, int fin, int rsv,
                        int opcode, const uint8_t *mask, const void *payload,
                        size_t len) {
  size_t extended = len < 126 ? 0 : len <= 0xFFFF ? 2 : 8;
  size_t total = 2 + extended + (mask ? 4 : 0) + len;
  if (!out || total > cap) return total;

  uint8_t *p = out;
  uint8_t mask_bit = mask ? 0x80 : 0;
  *p++ = (uint8_t)((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0F));
  if (extended == 0) {
    *p++ = (uint8_t)(mask_bit | len);
  } else if (extended == 2) {
    *p++ = mask_bit | 126;
    *p++ = (uint8_t)(len >> 8);
    *p++ = (uint8_t)len;
  } else {
    *p++ = mask_bit | 127;
    for (int shift = 56; shift >= 0; shift -= 8)
      *p++ = (uint8_t)((uint64_t)len >> shift);
  }
  if (mask) {
    memcpy(p, mask, 4);
    p += 4;
  }
  const uint8_t *src = payload;
  for (size_t i = 0; i < len; i++) p[i] = mask ? src[i] ^ mask[i & 3] : src[i];
  return total;
}

int wsc_send_frame_ex(wsc *c, int fin, int rsv, int opcode, int masked,
                      const void *payload, size_t len) {
  uint8_t mask[4];
  if (masked) wsc_next_mask(c, mask);
  const uint8_t *use_mask = masked ? mask : NULL;
  size_t total =
      wsc_encode_frame(NULL, 0, fin, rsv, opcode, use_mask, payload, len);
  uint8_t *frame = malloc(total);
  if (!frame) return -ENOMEM;
  wsc_encode_frame(frame, total, fin, rsv, opcode, use_mask, payload, len);
  int r = wsc_send_raw(c, frame, total); /* one write: one frame */
  free(frame);
  return r;
}

int wsc_send_frame(wsc *c, int fin, int rsv, int opcode, const void *payload,
                   size_t len) {
  return wsc_send_frame_ex(c, fin, rsv, opcode, 1, payload, len);
}

int wsc_send_close(wsc *c, int code, const char *reason, size_t reason_len) {
  if (code < 0) return wsc_send_frame(c, 1, 0, WSC_OP_CLOSE, NULL, 0);
  uint8_t *payload = malloc(2 + reason_len);
  if (!payload) return -ENOMEM;
  payload[0] = (uint8_t)(code >> 8);
  payload[1] = (uint8_t)code;
  if (reason_len) memcpy(payload + 2, reason, reason_len);
  int r = wsc_send_frame(c, 1, 0, WSC_OP_CLOSE, payload, 2 + reason_len);
  free(payload);
  return r;
}

int wsc_send_text(wsc *c, const char *s) {
  return wsc_send_frame(c, 1, 0, WSC_OP_TEXT, s, strlen(s));
}

int wsc_send_binary(wsc *c, const void *p, size_t n) {
  return wsc_send_frame(c, 1, 0, WSC_OP_BINARY, p, n);
}

/* ---- frames in ------------------------------------------------------- */

typedef struct frame_header {
  int fin, rsv, opcode;
  size_t header_len;
  uint64_t len;
} frame_header;

/* Parses a server frame header and checks everything the header alone
 * can violate, so a bad frame is reported before its payload arrives.
 * Returns the header size, 0 if incomplete, or -EPROTO. */
static long parse_header(const uint8_t *p, size_t n, int allowed_rsv,
                         frame_header *h) {
  if (n < 2) return 0;
  h->fin = p[0] >> 7;
  h->rsv = (p[0] >> 4) & 7;
  h->opcode = p[0] & 0x0F;
  int is_control = h->opcode >= 8;
  uint64_t len7 = p[1] & 0x7F;
  if (p[1] & 0x80) return -EPROTO; /* RFC 6455 5.1: servers never mask */
  if (h->rsv & ~allowed_rsv) return -EPROTO;
  if (is_control && h->rsv) return -EPROTO; /* no extension touches them */
  if (!(h->opcode <= WSC_OP_BINARY ||
        (h->opcode >= WSC_OP_CLOSE && h->opcode <= WSC_OP_PONG)))
    return -EPROTO;
  if (is_control && (!h->fin || len7 > 125)) return -EPROTO;

  if (len7 < 126) {
    h->header_len = 2;
    h->len = len7;
  } else if (len7 == 126) {
    if (n < 4) return 0;
    h->header_len = 4;
    h->len = (uint64_t)p[2] << 8 | p[3];
    if (h->len < 126) return -EPROTO; /* 5.2: minimal encoding only */
  } else {
    if (n < 10) return 0;
    h->header_len = 10;
    h->len = 0;
    for (int i = 2; i < 10; i++) h->len = h->len << 8 | p[i];
    if (h->len >> 63 || h->len <= 0xFFFF) return -EPROTO;
  }
  return (long)h->header_len;
}

static int close_code_valid(int code) {
  return (code >= 1000 && code <= 1014 && code != 1004 && code != 1005 &&
          code != 1006) ||
         (code >= 3000 && code <= 4999);
}

/* Copies a complete payload into *f and checks its content. */
static int build_frame(const uint8_t *payload, const frame_header *h,
                       int check_utf8, wsc_frame *f) {
  size_t len = (size_t)h->len;
  uint8_t *copy = malloc(len + 1);
  if (!copy) return -ENOMEM;
  if (len) memcpy(copy, payload, len);
  copy[len] = '\0';

  memset(f, 0, sizeof *f);
  f->fin = h->fin;
  f->rsv = h->rsv;
  f->opcode = h->opcode;
  f->payload = copy;
  f->len = len;
  f->close_code = -1;

  /* With RSV bits set an extension transformed the payload (deflate), so
     only plain whole text frames can be checked here. */
  int whole_text = h->opcode == WSC_OP_TEXT && h->fin && h->rsv == 0;
  if (check_utf8 && whole_text && !wsc_utf8_valid(copy, len)) goto violation;
  if (h->opcode == WSC_OP_CLOSE && len > 0) {
    int code = copy[0] << 8 | copy[1];
    if (len == 1 || !close_code_valid(code)) goto violation;
    if (check_utf8 && !wsc_utf8_valid(copy + 2, len - 2)) goto violation;
    f->close_code = code;
    f->close_reason = (const char *)copy + 2;
    f->close_reason_len = len - 2;
  }
  return 0;

violation:
  wsc_frame_free(f);
  return -EPROTO;
}

long wsc_decode_frame(const uint8_t *p, size_t n, wsc_frame *f) {
  frame_header h;
  long header_len = parse_header(p, n, 0, &h);
  if (header_len <= 0) return header_len;
  if (h.len > n - (size_t)header_len) return 0;
  int r = build_frame(p + header_len, &h, 1, f);
  return r < 0 ? r : header_len + (long)h.len;
}

/* Fragment rules of RFC 6455 5.4, tracked across wsc_recv_frame calls. */
static int check_fragment_sequence(wsc *c, const frame_header *h) {
  if (h->opcode == WSC_OP_CONT) {
    if (!c->server_fragmenting) return -EPROTO;
    if (h->fin) c->server_fragmenting = 0;
  } else if (h->opcode < WSC_OP_CLOSE) {
    if (c->server_fragmenting) return -EPROTO;
    if (!h->fin) c->server_fragmenting = 1;
  }
  return 0;
}

int wsc_recv_frame(wsc *c, wsc_frame *f, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  memset(f, 0, sizeof *f);
  f->close_code = -1;
  for (;;) {
    frame_header h;
    long header_len = parse_header(c->rbuf, c->rlen, c->allowed_rsv, &h);
    if (header_len < 0) return (int)header_len;
    if (header_len > 0) {
      if (h.len > c->max_payload) return -EMSGSIZE;
      size_t total = (size_t)header_len + (size_t)h.len;
      int r;
      if (c->rlen >= total) {
        if ((r = check_fragment_sequence(c, &h)) < 0) return r;
        if ((r = build_frame(c->rbuf + header_len, &h, c->check_utf8, f)) < 0)
          return r;
        consume(c, total);
        return 1;
      }
      if ((r = reserve(c, total)) < 0) return r;
    }
    int r = fill(c, deadline);
    if (r == 0) return c->rlen == 0 ? 0 : WSC_E_TRUNCATED;
    if (r < 0) return r;
  }
}

int wsc_recv_message(wsc *c, wsc_frame *f, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  for (;;) {
    wsc_frame part;
    int r = wsc_recv_frame(c, &part, remaining_ms(deadline));
    if (r <= 0 || part.opcode >= WSC_OP_CLOSE ||
        (part.opcode != WSC_OP_CONT && part.fin)) {
      *f = part;
      return r;
    }
    if (part.opcode != WSC_OP_CONT) { /* first fragment */
      free(c->msg_buf);
      c->msg_buf = part.payload;
      c->msg_len = part.len;
      c->msg_opcode = part.opcode;
      c->msg_rsv = part.rsv;
      c->msg_active = 1;
      continue;
    }
    uint8_t *grown = realloc(c->msg_buf, c->msg_len + part.len + 1);
    if (!grown) {
      wsc_frame_free(&part);
      return -ENOMEM;
    }
    memcpy(grown + c->msg_len, part.payload, part.len);
    c->msg_buf = grown;
    c->msg_len += part.len;
    grown[c->msg_len] = '\0';
    int last = part.fin;
    wsc_frame_free(&part);
    if (!last) continue;

    memset(f, 0, sizeof *f);
    f->fin = 1;
    f->rsv = c->msg_rsv;
    f->opcode = c->msg_opcode;
    f->payload = c->msg_buf;
    f->len = c->msg_len;
    f->close_code = -1;
    c->msg_buf = NULL;
    c->msg_len = 0;
    c->msg_active = 0;
    if (c->check_utf8 && f->opcode == WSC_OP_TEXT && f->rsv == 0 &&
        !wsc_utf8_valid(f->payload, f->len)) {
      wsc_frame_free(f);
      return -EPROTO;
    }
    return 1;
  }
}

void wsc_frame_free(wsc_frame *f) {
  free(f->payload);
  memset(f, 0, sizeof *f);
  f->close_code = -1;
}

int wsc_expect_close(wsc *c, int expected_code, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  for (;;) {
    wsc_frame f;
    int r = wsc_recv_frame(c, &f, remaining_ms(deadline));
    if (r == 0) return WSC_E_EOF;
    if (r < 0) return r;
    int is_close = f.opcode == WSC_OP_CLOSE;
    int code = f.close_code;
    wsc_frame_free(&f);
    if (is_close) {
      c->last_close_code = code;
      return code == expected_code ? 0 : WSC_E_CLOSE_CODE;
    }
  }
}

/* ---- HTTP ------------------------------------------------------------ */

/* Offset just past the first CRLFCRLF, or 0. */
static size_t head_end(const uint8_t *p, size_t n) {
  for (size_t i = 3; i < n; i++)
    if (p[i - 3] == '\r' && p[i - 2] == '\n' && p[i - 1] == '\r' && p[i] == '\n')
      return i + 1;
  return 0;
}

static char *copy_text(const void *p, size_t n) {
  char *s = malloc(n + 1);
  if (!s) return NULL;
  if (n) memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

/* Fills resp from a complete head; returns the status or WSC_E_BAD_HTTP. */
static int parse_head(wsc_response *resp, const uint8_t *text, size_t len) {
  resp->head = copy_text(text, len);
  resp->head_len = len;
  resp->header_storage = copy_text(text, len);
  if (!resp->head || !resp->header_storage) return -ENOMEM;

  char *s = resp->header_storage;
  if (strncmp(s, "HTTP/1.1 ", 9) != 0) return WSC_E_BAD_HTTP;
  for (int i = 9; i < 12; i++)
    if (s[i] < '0' || s[i] > '9') return WSC_E_BAD_HTTP;
  if (s[12] != ' ' && s[12] != '\r') return WSC_E_BAD_HTTP;
  int status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');

  /* The head ends in CRLFCRLF, so every line has its CRLF and the empty
     line stops the loop. */
  char *line = strstr(s, "\r\n") + 2;
  while (*line != '\r') {
    char *eol = strstr(line, "\r\n");
    *eol = '\0';
    if (*line == ' ' || *line == '\t') return WSC_E_BAD_HTTP; /* obs-fold */
    char *colon = strchr(line, ':');
    if (!colon || colon == line) return WSC_E_BAD_HTTP;
    if (resp->header_count == WSC_MAX_HEADERS) return WSC_E_BAD_HTTP;
    *colon = '\0';
    char *value = colon + 1, *value_end = eol;
    while (*value == ' ' || *value == '\t') value++;
    while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
      value_end--;
    *value_end = '\0';
    resp->headers[resp->header_count].name = line;
    resp->headers[resp->header_count].value = value;
    resp->header_count++;
    line = eol + 2;
  }
  resp->status = status;
  return status;
}

static int read_response_head(wsc *c, wsc_response *resp, int64_t deadline) {
  for (;;) {
    size_t end = head_end(c->rbuf, c->rlen);
    if (end) {
      int r = parse_head(resp, c->rbuf, end);
      consume(c, end);
      return r;
    }
    if (c->rlen > MAX_HEAD) return WSC_E_BAD_HTTP;
    int r = fill(c, deadline);
    if (r <= 0) {
      /* Keep the partial head so a failing test can print it. */
      if (c->rlen && !resp->head) {
        resp->head = copy_text(c->rbuf, c->rlen);
        resp->head_len = c->rlen;
      }
      if (r == 0) return c->rlen ? WSC_E_TRUNCATED : WSC_E_EOF;
      return r;
    }
  }
}

const char *wsc_header(const wsc_response *resp, const char *name) {
  for (size_t i = 0; i < resp->header_count; i++)
    if (strcasecmp(resp->headers[i].name, name) == 0)
      return resp->headers[i].value;
  return NULL;
}

void wsc_response_free(wsc_response *resp) {
  free(resp->head);
  free(resp->body);
  free(resp->header_storage);
  memset(resp, 0, sizeof *resp);
}

/* Value of header `name` in a "Name: v\r\n..." block (pointer just past the
 * colon), or NULL. */
static const char *find_header_line(const char *headers, const char *name) {
  size_t name_len = strlen(name);
  for (const char *line = headers; line && *line;) {
    if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':')
      return line + name_len + 1;
    line = strchr(line, '\n');
    if (line) line++;
  }
  return NULL;
}

/* 1 if the comma-separated list contains token (case-insensitive). */
static int has_token(const char *list, const char *token) {
  size_t token_len = strlen(token);
  const char *p = list;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    const char *start = p;
    while (*p && *p != ',') p++;
    const char *end = p;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t')) end--;
    if ((size_t)(end - start) == token_len &&
        strncasecmp(start, token, token_len) == 0)
      return 1;
  }
  return 0;
}

/* RFC 6455 4.1: the checks a client must make before treating a 101 as an
 * open connection. */
static int upgrade_response_valid(const wsc_response *resp,
                                  const char *request_headers,
                                  const char *key) {
  const char *upgrade = wsc_header(resp, "Upgrade");
  const char *connection = wsc_header(resp, "Connection");
  const char *accept = wsc_header(resp, "Sec-WebSocket-Accept");
  char expected[29];
  wsc_accept_key(key, expected);
  if (!upgrade || strcasecmp(upgrade, "websocket") != 0) return 0;
  if (!connection || !has_token(connection, "upgrade")) return 0;
  if (!accept || strcmp(accept, expected) != 0) return 0;
  /* Nothing may be selected that was not offered. */
  if (wsc_header(resp, "Sec-WebSocket-Extensions") &&
      !find_header_line(request_headers, "Sec-WebSocket-Extensions"))
    return 0;
  if (wsc_header(resp, "Sec-WebSocket-Protocol") &&
      !find_header_line(request_headers, "Sec-WebSocket-Protocol"))
    return 0;
  return 1;
}

int wsc_handshake(wsc *c, const char *path, const char *extra_headers,
                  wsc_response *resp, int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  wsc_response scratch;
  if (!resp) resp = &scratch;
  memset(resp, 0, sizeof *resp);
  const char *extra = extra_headers ? extra_headers : "";

  uint8_t nonce[16];
  for (int i = 0; i < 16; i += 8) {
    uint64_t r = next_random(c);
    for (int k = 0; k < 8; k++) nonce[i + k] = (uint8_t)(r >> (8 * k));
  }
  base64(nonce, sizeof nonce, c->key);

  /* A key from extra_headers replaces ours; the accept must match it. */
  char *key = NULL;
  const char *own_key = find_header_line(extra, "Sec-WebSocket-Key");
  if (own_key) {
    while (*own_key == ' ' || *own_key == '\t') own_key++;
    size_t n = strcspn(own_key, "\r\n");
    while (n > 0 && (own_key[n - 1] == ' ' || own_key[n - 1] == '\t')) n--;
    key = copy_text(own_key, n);
  } else {
    key = copy_text(c->key, strlen(c->key));
  }

  size_t cap = strlen(path) + strlen(extra) + strlen(c->host_header) + 256;
  char *request = malloc(cap);
  if (!key || !request) {
    free(key);
    free(request);
    return -ENOMEM;
  }
  size_t len = (size_t)snprintf(request, cap, "GET %s HTTP/1.1\r\n", path);
  if (!find_header_line(extra, "Host"))
    len += (size_t)snprintf(request + len, cap - len, "Host: %s\r\n",
                            c->host_header);
  if (!find_header_line(extra, "Upgrade"))
    len += (size_t)snprintf(request + len, cap - len, "Upgrade: websocket\r\n");
  if (!find_header_line(extra, "Connection"))
    len += (size_t)snprintf(request + len, cap - len, "Connection: Upgrade\r\n");
  if (!own_key)
    len += (size_t)snprintf(request + len, cap - len,
                            "Sec-WebSocket-Key: %s\r\n", c->key);
  if (!find_header_line(extra, "Sec-WebSocket-Version"))
    len += (size_t)snprintf(request + len, cap - len,
                            "Sec-WebSocket-Version: 13\r\n");
  len += (size_t)snprintf(request + len, cap - len, "%s\r\n", extra);

  int status = wsc_send_raw(c, request, len);
  free(request);
  if (status == 0) status = read_response_head(c, resp, deadline);
  if (status == 101 && !upgrade_response_valid(resp, extra, key))
    status = WSC_E_BAD_HANDSHAKE;
  free(key);
  if (resp == &scratch) wsc_response_free(&scratch);
  return status;
}

int wsc_request(wsc *c, const char *raw_request, wsc_response *resp,
                int timeout_ms) {
  int64_t deadline = deadline_after(timeout_ms);
  memset(resp, 0, sizeof *resp);
  int status = wsc_send_raw(c, raw_request, strlen(raw_request));
  if (status == 0) status = read_response_head(c, resp, deadline);
  if (status < 0 || status / 100 == 1 || status == 204 || status == 304)
    return status;

  const char *content_length = wsc_header(resp, "Content-Length");
  int r = 1;
  size_t body_len;
  if (content_length) {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(content_length, &end, 10);
    if (*content_length < '0' || *content_length > '9' || *end || errno)
      return WSC_E_BAD_HTTP;
    if (n > c->max_payload) return -EMSGSIZE;
    body_len = (size_t)n;
    while (c->rlen < body_len && (r = fill(c, deadline)) > 0) {
    }
    if (r == 0) r = WSC_E_TRUNCATED;
    if (c->rlen < body_len) body_len = c->rlen;
  } else {
    while ((r = fill(c, deadline)) > 0) { /* body runs until EOF */
    }
    body_len = c->rlen;
  }
  resp->body = copy_text(c->rbuf, body_len);
  resp->body_len = body_len;
  consume(c, body_len);
  if (!resp->body) return -ENOMEM;
  return r < 0 ? r : status;
}
