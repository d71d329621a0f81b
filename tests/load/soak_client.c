/*
 * soak_client: the load driver of the load/soak/shutdown test (issue #6).
 * One thread, epoll (level-triggered), non-blocking sockets, libc only.
 *
 *   soak_client --port N [--host 127.0.0.1] [--conns 10000] [--seconds 60]
 *     [--echo-frac 0.3] [--deaf-frac 0.01] [--noread-frac 0.005]
 *     [--race-frac 0.01]
 *     [--churn-frac 0.05] [--stuck N] [--window 2] [--interval-ms 500]
 *     [--max-size 400000] [--burst 3] [--close-timeout MS]
 *     [--handshake-timeout MS] [--stop ctl|sigterm] [--server-pid PID]
 *     [--seed N] [--report FILE] [--parallel 256] [--margin-ms 4000]
 *     [--fixed-size BYTES]
 *
 * Slot 0 is the control connection (/control). The other slots get a role
 * (soak.h) for the whole run - echo, idle, deaf, noread, race - or are "churn"
 * slots that misbehave one way, end, and come back with another way
 * (rst, fin, half, junk, utf8, big, bye, plain, badkey, rawjunk, slow,
 * mute, hsrst) until the traffic phase ends; --stuck slots open a slow or
 * mute handshake just before the stop, so some handshakes are still
 * unfinished when the server stops.
 *
 * Phases:
 *  1. connect: every slot connects (at most --parallel handshakes at a time);
 *     echo slots start their traffic as soon as they are open;
 *  2. traffic (--seconds): echo slots send tagged messages (text with
 *     multi-byte UTF-8, or binary; 10 B .. --max-size (400000: replies over 256 KiB take lariat's zero-copy path); a fifth fragmented
 *     into 2..5 frames, some empty, with pings between fragments), at most
 *     --window unanswered; each echo is checked byte for byte and in order,
 *     each pong against its ping; churn slots misbehave;
 *  3. drain: no new messages; every echo and pong must arrive, every churn
 *     connection must end as its role says (close code, HTTP status...);
 *  4. barrier: "stats" on the control connection until the server's count
 *     of connections (and of WebSocket connections not yet terminated)
 *     equals ours: lariat holds no connection we have closed;
 *  5. stop: every echo slot writes a burst of 1..--burst messages and,
 *     without waiting for an echo, the control connection sends "stop"
 *     (or the server gets SIGTERM);
 *  6. shutdown: what must happen, per connection:
 *     - echo/idle/ctl: the echoes that arrive are exactly the messages sent,
 *       in order, from the first one on (a prefix: the server handled and
 *       echoed them before the stop; the rest arrived after it and are
 *       read past, never delivered - run.sh checks with the server's report
 *       that every message it echoed arrived); then a close frame with code
 *       1001 and nothing after it; we answer it and the server then ends
 *       the TCP connection (FIN);
 *     - deaf: close 1001 arrives, we never answer; the server must end the
 *       TCP connection after its close timeout (not before, not much later);
 *     - noread: never read until close timeout + 0.5 s; then whatever is
 *       there must be a prefix of its echoes, maybe close 1001, then EOF;
 *     - stuck handshakes: dropped (EOF or RST), or 408 if their handshake
 *       timeout came first;
 *     every socket must have been ended by the server within
 *     close timeout + --margin-ms of the stop.
 *
 * Output: a summary, then one last line "SOAK_CLIENT_RESULT ok=0|1 ...".
 * Exit status: 0 ok, 1 an invariant broke, 2 usage, 3 setup failure.
 * --report FILE writes "slot role sent echoed" for the persistent roles.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "soak.h"
#include "wsclient.h"

#define MAX_FAIL_LOG 60
#define OP_CONT 0
#define OP_TEXT 1
#define OP_BIN 2
#define OP_CLOSE 8
#define OP_PING 9
#define OP_PONG 10
#define NOREAD_MSGS 64
#define NOREAD_SIZE 16384
#define READ_CHUNK (64 * 1024)
#define MAX_SERVER_MSG (4u << 20)

/* ------------------------------------------------------------------ */
/* Options                                                             */

static struct {
  const char *host;
  int port;
  uint32_t conns;
  double seconds;
  double echo_frac, deaf_frac, noread_frac, race_frac, churn_frac;
  uint32_t stuck;
  uint32_t window;
  uint32_t interval_ms;
  uint32_t max_size;
  uint32_t burst;
  uint32_t close_timeout_ms;
  uint32_t handshake_timeout_ms;
  int stop_sigterm;
  pid_t server_pid;
  uint64_t seed;
  const char *report;
  uint32_t parallel;
  uint32_t margin_ms;
  uint32_t fixed_size; /* nonzero: every echo message has this size */
} opt = {"127.0.0.1", 0, 10000, 60, 0.3, 0.01, 0.005, 0.01, 0.05, 20, 2, 500,
         400000, 3, 5000, 10000, 0, 0, 1, NULL, 256, 4000, 0};

/* ------------------------------------------------------------------ */
/* Utilities                                                           */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) { /* xorshift64* */
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545f4914f6cdd1dull;
}
static uint32_t rnd(uint32_t n) { return n ? (uint32_t)(rng() % n) : 0; }

static uint64_t mix64(uint64_t x) { /* splitmix64's finaliser */
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

typedef struct buf {
  uint8_t *p;
  size_t off, len, cap; /* live bytes are p[off, len) */
} buf;

static void buf_reserve(buf *b, size_t extra) {
  if (b->off && b->off == b->len) b->off = b->len = 0;
  if (b->len + extra <= b->cap) return;
  if (b->off) { /* compact first */
    memmove(b->p, b->p + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    if (b->len + extra <= b->cap) return;
  }
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra) cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  if (!p) {
    fprintf(stderr, "soak_client: out of memory\n");
    exit(3);
  }
  b->p = p;
  b->cap = cap;
}
static void buf_put(buf *b, const void *p, size_t n) {
  buf_reserve(b, n);
  memcpy(b->p + b->len, p, n);
  b->len += n;
}
static size_t buf_size(const buf *b) { return b->len - b->off; }
static void buf_free(buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}
/* Gives memory back when a buffer empties, so idle connections are cheap. */
static void buf_trim(buf *b) {
  if (buf_size(b) == 0) {
    if (b->cap > 16 * 1024) buf_free(b);
    b->off = b->len = 0;
  }
}

/* base64 of the random key nonce (the accept is wsc_accept_key()). */
static void base64(const uint8_t *in, size_t n, char *out) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = 0;
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

enum cstate {
  C_FREE,       /* no socket */
  C_CONNECTING, /* connect() in progress */
  C_HANDSHAKE,  /* request (being) sent, waiting for the response head */
  C_HTTP_DONE,  /* non-101 response read; waiting for EOF */
  C_OPEN,       /* WebSocket open */
  C_CLOSED_WS,  /* close frame received (and answered): waiting for EOF */
  C_WAIT_EOF,   /* we ended our side (shutdown / close sent): waiting */
};

enum end_how { END_EOF, END_RST, END_LOCAL, END_ERROR, END_GIVEUP };
static const char *const end_names[] = {"eof", "rst", "local", "error",
                                        "giveup"};

typedef struct conn {
  int fd;
  uint8_t state;
  uint8_t role;
  uint8_t churn;   /* slot changes role after each connection */
  uint8_t stuck;   /* slot opens a stuck handshake just before the stop */
  uint8_t reading; /* EPOLLIN wanted */
  uint32_t ev;     /* events registered with epoll */
  uint8_t acted;   /* the role's misbehaviour is done */
  uint8_t upgraded;
  uint8_t close_rcvd, close_sent;
  uint8_t in_msg, msg_op;
  uint8_t failed; /* a failure was already counted for this connection */
  uint8_t wr_shut; /* we sent FIN (shutdown SHUT_WR): never write again */
  uint16_t close_code; /* received; 1005 when none */
  uint16_t http_status;
  uint32_t slot, gen;
  uint32_t sent, echoed;         /* data messages (seq) */
  uint32_t pings, pongs;         /* ours, and their answers */
  uint32_t pre_msgs;             /* churn: messages before misbehaving */
  uint32_t burst_from;           /* seq of the first burst message */
  uint32_t hs_off;               /* slow role: request bytes sent */
  uint32_t sent_at_stop;         /* messages written before the stop */
  int64_t t_start, t_next, t_deadline, t_respawn, t_act;
  char key[25];
  buf in, out, msg;
} conn;

static conn *conns;
static int ep = -1;
static struct sockaddr_storage server_addr;
static socklen_t server_addr_len;

enum phase { PH_CONNECT, PH_TRAFFIC, PH_DRAIN, PH_BARRIER, PH_SHUTDOWN, PH_DONE };
static const char *const phase_names[] = {"connect", "traffic", "drain",
                                          "barrier", "shutdown", "done"};
static int phase = PH_CONNECT;
static int64_t t_begin, t_traffic, t_quiet, t_drained, t_stop, t_last_end;
static int64_t t_stats_sent;
static int stats_waiting;
static size_t barrier_server_open, barrier_server_ws;
static int barrier_ok;

static struct {
  uint64_t failures;
  uint64_t connects, connect_errors, upgraded;
  uint64_t open_sockets, open_ws, open_ws_peak, open_sockets_peak;
  uint64_t handshaking; /* connecting or handshake, not slow/mute */
  uint64_t msgs_sent, bytes_sent, echoes, echo_bytes, fragmented_sent;
  uint64_t pings_sent, pongs, server_pings;
  uint64_t lost, corrupt;
  uint64_t unechoed_at_stop, echoed_after_stop_req, sent_after_stop_req;
  uint64_t role_started[SOAK_NROLES], role_ok[SOAK_NROLES];
  uint64_t role_failed[SOAK_NROLES];
  uint64_t end_how[5];
  uint64_t http_status[6]; /* 101 400 408 426 431 other */
  uint64_t close_codes_1001, close_codes_other;
  uint64_t stuck_408, stuck_dropped;
  uint64_t race_codes[2]; /* race: close 1001 (the stop won), 1000 */
  int64_t close_1001_max_ms, eof_after_stop_max_ms, good_end_max_ms;
  int64_t deaf_end_min_ms, deaf_end_max_ms;
  uint64_t ws_open_at_stop;
} st = {.deaf_end_min_ms = INT64_MAX};

static void fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_msg(const char *fmt, ...) {
  if (st.failures++ < MAX_FAIL_LOG) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "soak_client: FAIL [%s %.1fs]: ", phase_names[phase],
            (now_ms() - t_begin) / 1000.0);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
  }
}

/* A failure of connection |c|: counted once per connection (the first
 * message is printed). */
static void cfail(conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void cfail(conn *c, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (c->failed) return;
  c->failed = 1;
  ++st.role_failed[c->role];
  fail_msg("slot %u gen %u (%s, state %d): %s", c->slot, c->gen,
           soak_role_names[c->role], c->state, msg);
}

static int is_ws_role(int role) { return role <= SOAK_BYE; }

/* ------------------------------------------------------------------ */
/* Messages                                                            */

/* The message |seq| of a connection: opcode, length and fragments, all
 * derived from the seed, the slot, its generation and |seq|, so an echo is
 * checked without keeping what was sent. */
typedef struct spec {
  int op;
  size_t len;
  int nfrag;
  uint64_t h;
} spec;

static spec msg_spec(const conn *c, uint32_t seq) {
  spec s;
  uint64_t h = mix64(opt.seed * 0x100000001b3ull ^ (uint64_t)c->slot << 40 ^
                     (uint64_t)c->gen << 32 ^ seq);
  uint64_t h2 = mix64(h + 1);
  s.h = h;
  if (c->role == SOAK_NOREAD) {
    s.op = OP_BIN;
    s.len = NOREAD_SIZE;
    s.nfrag = 1;
    return s;
  }
  s.op = (h & 1) ? OP_TEXT : OP_BIN;
  uint32_t r = (uint32_t)((h >> 8) % 1000);
  int small = seq >= c->burst_from; /* the stop's burst: at most 16 KiB */
  if (r < 600)
    s.len = 10 + h2 % 118;
  else if (r < 900)
    s.len = 128 + h2 % (4096 - 128);
  else if (r < 980 || small)
    s.len = 4096 + h2 % (small ? 12288 : 61440);
  else
    s.len = 65536 + h2 % (opt.max_size > 65536 ? opt.max_size - 65536 : 1);
  if (opt.fixed_size) s.len = opt.fixed_size;
  if (s.len > opt.max_size) s.len = opt.max_size;
  s.nfrag = (h >> 20) % 10 < 2 ? 2 + (int)((h >> 24) % 4) : 1;
  return s;
}

/* Text payloads mix ASCII with 2-, 3- and 4-byte UTF-8, edge code points
 * included (U+D7FF, U+FFFD, U+10FFFF); fragments may split a character. */
static const char *const utf8_chars[] = {
    "\xc2\xa0", "\xc3\xa9", "\xce\xbb", "\xdf\xbf",          /* 2 bytes */
    "\xe2\x82\xac", "\xe4\xb8\xad", "\xed\x9f\xbf", "\xef\xbf\xbd", /* 3 */
    "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",                 /* 4 bytes */
};

static void gen_payload(uint32_t seq, const spec *s, uint8_t *out) {
  soak_put_tag(out, seq);
  uint64_t x = s->h | 1;
  size_t i = SOAK_TAG_LEN;
  if (s->op == OP_BIN) {
    while (i < s->len) {
      x ^= x >> 12;
      x ^= x << 25;
      x ^= x >> 27;
      uint64_t v = x * 0x2545f4914f6cdd1dull;
      for (int k = 0; k < 8 && i < s->len; ++k, v >>= 8) out[i++] = (uint8_t)v;
    }
    return;
  }
  while (i < s->len) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    uint64_t v = x * 0x2545f4914f6cdd1dull;
    unsigned k = (unsigned)(v >> 58); /* 0..63 */
    if (k >= 54) {
      const char *ch = utf8_chars[k - 54];
      size_t n = strlen(ch);
      if (i + n <= s->len) {
        memcpy(out + i, ch, n);
        i += n;
        continue;
      }
    }
    out[i++] = (uint8_t)(0x20 + (v >> 8) % 95);
  }
}

static uint8_t *scratch_send, *scratch_check;

/* ------------------------------------------------------------------ */
/* Sockets                                                             */

static void conn_end(conn *c, int how, int err);

static void update_events(conn *c) {
  if (c->fd < 0) return;
  uint32_t want = 0;
  if (c->reading) want |= EPOLLIN;
  if (c->state == C_CONNECTING || buf_size(&c->out)) want |= EPOLLOUT;
  if (want == c->ev) return;
  struct epoll_event e = {.events = want, .data.u32 = c->slot};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) != 0) {
    fprintf(stderr, "soak_client: epoll_ctl: %s\n", strerror(errno));
    exit(3);
  }
  c->ev = want;
}

/* Writes what the kernel takes; 0, or -1 when the connection ended. */
static int flush_out(conn *c) {
  if (c->wr_shut) { /* nothing may follow our FIN */
    c->out.off = c->out.len = 0;
    buf_trim(&c->out);
    update_events(c);
    return 0;
  }
  while (buf_size(&c->out)) {
    ssize_t n = send(c->fd, c->out.p + c->out.off, buf_size(&c->out),
                     MSG_NOSIGNAL);
    if (n > 0) {
      c->out.off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    conn_end(c, errno == ECONNRESET || errno == EPIPE ? END_RST : END_ERROR,
             errno);
    return -1;
  }
  buf_trim(&c->out);
  update_events(c);
  return 0;
}

static void put_frame(conn *c, int fin, int op, const uint8_t *p, size_t n) {
  uint8_t hdr[14];
  size_t h = 0;
  hdr[h++] = (uint8_t)((fin ? 0x80 : 0) | op);
  if (n < 126) {
    hdr[h++] = (uint8_t)(0x80 | n);
  } else if (n < 65536) {
    hdr[h++] = 0x80 | 126;
    hdr[h++] = (uint8_t)(n >> 8);
    hdr[h++] = (uint8_t)n;
  } else {
    hdr[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; --i) hdr[h++] = (uint8_t)((uint64_t)n >> (8 * i));
  }
  uint32_t m = (uint32_t)rng();
  uint8_t mask[4];
  memcpy(mask, &m, 4);
  memcpy(hdr + h, mask, 4);
  h += 4;
  buf_put(&c->out, hdr, h);
  buf_reserve(&c->out, n);
  uint8_t *dst = c->out.p + c->out.len;
  for (size_t i = 0; i < n; ++i) dst[i] = p[i] ^ mask[i & 3];
  c->out.len += n;
}

static void send_ping(conn *c) {
  char p[16];
  int n = snprintf(p, sizeof p, "p%u", c->pings++);
  put_frame(c, 1, OP_PING, (const uint8_t *)p, (size_t)n);
  ++st.pings_sent;
}

/* Queues message c->sent (fragmented as its spec says, maybe with a ping
 * between fragments) and writes. 0, or -1 when the connection ended. */
static int send_message(conn *c) {
  uint32_t seq = c->sent++;
  spec s = msg_spec(c, seq);
  gen_payload(seq, &s, scratch_send);
  if (s.nfrag == 1) {
    put_frame(c, 1, s.op, scratch_send, s.len);
  } else {
    size_t cuts[6];
    uint64_t x = mix64(s.h ^ 0xf00d);
    cuts[0] = 0;
    for (int i = 1; i < s.nfrag; ++i) {
      x = mix64(x);
      cuts[i] = x % (s.len + 1); /* equal cuts give empty fragments */
    }
    for (int i = 1; i < s.nfrag; ++i) /* sort */
      for (int j = i; j > 1 && cuts[j] < cuts[j - 1]; --j) {
        size_t t = cuts[j];
        cuts[j] = cuts[j - 1];
        cuts[j - 1] = t;
      }
    cuts[s.nfrag] = s.len;
    int ping_at = (s.h >> 40) % 3 == 0 ? 1 + (int)((s.h >> 44) % (s.nfrag - 1)) : 0;
    for (int i = 0; i < s.nfrag; ++i) {
      if (i && i == ping_at) send_ping(c);
      put_frame(c, i == s.nfrag - 1, i == 0 ? s.op : OP_CONT,
                scratch_send + cuts[i], cuts[i + 1] - cuts[i]);
    }
    ++st.fragmented_sent;
  }
  if ((s.h >> 50) % 32 == 0) send_ping(c);
  ++st.msgs_sent;
  st.bytes_sent += s.len;
  return flush_out(c);
}

static void send_close(conn *c, uint16_t code, const char *reason) {
  uint8_t p[125];
  size_t n = 0;
  if (code != 1005) {
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    n = 2;
    if (reason) {
      memcpy(p + 2, reason, strlen(reason));
      n += strlen(reason);
    }
  }
  put_frame(c, 1, OP_CLOSE, p, n);
  c->close_sent = 1;
}

static void make_request(conn *c, buf *out) {
  char req[512];
  int n;
  if (c->role == SOAK_PLAIN) {
    n = snprintf(req, sizeof req,
                 "GET /soak?r=plain&s=%u&g=%u HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                 c->slot, c->gen, opt.host, opt.port);
  } else {
    uint8_t nonce[16];
    for (int i = 0; i < 16; ++i) nonce[i] = (uint8_t)rng();
    base64(nonce, 16, c->key);
    const char *key = c->role == SOAK_BADKEY ? "not+a+valid+key=" : c->key;
    if (c->role == SOAK_CTL)
      n = snprintf(req, sizeof req, "GET /control HTTP/1.1\r\n");
    else
      n = snprintf(req, sizeof req, "GET /soak?r=%s&s=%u&g=%u HTTP/1.1\r\n",
                   soak_role_names[c->role], c->slot, c->gen);
    n += snprintf(req + n, sizeof req - (size_t)n,
                  "Host: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                  opt.host, opt.port, key);
  }
  buf_put(out, req, (size_t)n);
}

static int handshaking_role(int role) {
  return role == SOAK_SLOW || role == SOAK_MUTE || role == SOAK_HSRST;
}

static void conn_start(conn *c, int64_t now) {
  c->fd = socket(server_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    fail_msg("socket: %s", strerror(errno));
    c->t_respawn = now + 1000;
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (c->role == SOAK_NOREAD) {
    /* A small window: the server's echoes soon pile up in its own queue. */
    int small = 8192;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  }
  c->state = C_CONNECTING;
  c->reading = 1;
  c->ev = 0;
  c->t_start = now;
  c->t_deadline = now + 15000;
  c->t_next = c->t_act = c->t_respawn = 0;
  c->acted = c->upgraded = c->close_rcvd = c->close_sent = c->in_msg = 0;
  c->wr_shut = 0;
  c->failed = 0;
  c->close_code = c->http_status = 0;
  c->sent = c->echoed = c->pings = c->pongs = c->hs_off = 0;
  c->burst_from = UINT32_MAX;
  c->sent_at_stop = 0;
  c->pre_msgs = c->churn && is_ws_role(c->role) ? rnd(4) : 0;
  ++st.connects;
  ++st.open_sockets;
  if (st.open_sockets > st.open_sockets_peak) st.open_sockets_peak = st.open_sockets;
  ++st.role_started[c->role];
  if (!handshaking_role(c->role)) ++st.handshaking;
  struct epoll_event e = {.events = EPOLLOUT | EPOLLIN, .data.u32 = c->slot};
  c->ev = e.events;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e) != 0) {
    fprintf(stderr, "soak_client: epoll_ctl add: %s\n", strerror(errno));
    exit(3);
  }
  if (connect(c->fd, (struct sockaddr *)&server_addr, server_addr_len) != 0 &&
      errno != EINPROGRESS) {
    ++st.connect_errors;
    cfail(c, "connect: %s", strerror(errno));
    conn_end(c, END_ERROR, errno);
  }
}

/* The socket connected: send what the role sends first. */
static void on_connected(conn *c, int64_t now) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) {
    ++st.connect_errors;
    cfail(c, "connect: %s", strerror(err));
    conn_end(c, END_ERROR, err);
    return;
  }
  c->state = C_HANDSHAKE;
  switch (c->role) {
    case SOAK_RAWJUNK: {
      uint8_t junk[2048];
      size_t n = 64 + rnd(sizeof junk - 64);
      for (size_t i = 0; i < n; ++i) junk[i] = (uint8_t)rng();
      if (rnd(2)) junk[0] = 0x16; /* a TLS record, say */
      buf_put(&c->out, junk, n);
      c->t_deadline = now + 5000;
      break;
    }
    case SOAK_MUTE:
      c->t_deadline = now + opt.handshake_timeout_ms + 5000;
      break;
    case SOAK_SLOW:
      c->t_next = now;
      c->t_deadline = now + opt.handshake_timeout_ms + 5000;
      break;
    case SOAK_HSRST: {
      buf req = {0};
      make_request(c, &req);
      buf_put(&c->out, req.p, buf_size(&req) / 2);
      buf_free(&req);
      c->t_next = now + 20 + rnd(300);
      break;
    }
    default:
      make_request(c, &c->out);
      break;
  }
  flush_out(c);
}

/* ------------------------------------------------------------------ */
/* Ending connections and what each role expects                       */

static void check_end(conn *c, int how, int err, int64_t now) {
  int after_stop = t_stop && now >= t_stop;
  int ok = 0;
  char why[256] = "";
  int64_t since_stop = after_stop ? now - t_stop : -1;
  switch (c->role) {
    case SOAK_ECHO:
    case SOAK_IDLE:
    case SOAK_CTL:
      if (!c->upgraded)
        snprintf(why, sizeof why, "never upgraded (ended by %s %s)",
                 end_names[how], strerror(err));
      else if (!after_stop)
        snprintf(why, sizeof why, "ended by %s before the stop (%s)",
                 end_names[how], err ? strerror(err) : "-");
      else if (!c->close_rcvd)
        snprintf(why, sizeof why, "ended by %s without a close frame",
                 end_names[how]);
      else if (c->close_code != 1001)
        snprintf(why, sizeof why, "close code %u, want 1001", c->close_code);
      else if (how != END_EOF)
        snprintf(why, sizeof why,
                 "ended by %s (%s) after the close handshake, want FIN",
                 end_names[how], err ? strerror(err) : "-");
      else if (c->echoed < c->burst_from && c->burst_from != UINT32_MAX) {
        snprintf(why, sizeof why, "%u messages sent before the stop's burst "
                 "but only %u echoed", c->burst_from, c->echoed);
        st.lost += c->burst_from - c->echoed;
      } else
        ok = 1;
      if (after_stop && since_stop > st.good_end_max_ms)
        st.good_end_max_ms = since_stop;
      if (c->role == SOAK_ECHO && c->upgraded) st.unechoed_at_stop += c->sent - c->echoed;
      break;
    case SOAK_DEAF:
      if (!after_stop)
        snprintf(why, sizeof why, "ended by %s before the stop", end_names[how]);
      else if (!c->close_rcvd || c->close_code != 1001)
        snprintf(why, sizeof why, "close frame %s code %u, want 1001",
                 c->close_rcvd ? "with" : "missing", c->close_code);
      else if (how != END_EOF && how != END_RST)
        snprintf(why, sizeof why, "ended by %s", end_names[how]);
      else if (since_stop + 100 < (int64_t)opt.close_timeout_ms ||
               since_stop > (int64_t)(opt.close_timeout_ms + opt.margin_ms))
        snprintf(why, sizeof why,
                 "the server ended it %" PRId64 " ms after the stop; its "
                 "close timeout is %u ms", since_stop, opt.close_timeout_ms);
      else
        ok = 1;
      if (after_stop && (how == END_EOF || how == END_RST)) {
        if (since_stop < st.deaf_end_min_ms) st.deaf_end_min_ms = since_stop;
        if (since_stop > st.deaf_end_max_ms) st.deaf_end_max_ms = since_stop;
      }
      break;
    case SOAK_NOREAD:
      if (!after_stop)
        snprintf(why, sizeof why, "ended by %s before the stop", end_names[how]);
      else if (c->close_rcvd && c->close_code != 1001)
        snprintf(why, sizeof why, "close code %u, want 1001", c->close_code);
      else if (how != END_EOF && how != END_RST)
        snprintf(why, sizeof why, "ended by %s", end_names[how]);
      else
        ok = 1;
      break;
    case SOAK_RACE:
      if (!after_stop || !c->close_sent)
        snprintf(why, sizeof why, "ended by %s before the stop", end_names[how]);
      else if (!c->close_rcvd ||
               (c->close_code != 1000 && c->close_code != 1001))
        snprintf(why, sizeof why, "close %s %u, want 1000 or 1001",
                 c->close_rcvd ? "code" : "frame missing",
                 c->close_rcvd ? c->close_code : 0);
      else if (how != END_EOF)
        snprintf(why, sizeof why, "ended by %s after the closes, want FIN",
                 end_names[how]);
      else
        ok = 1;
      if (c->close_rcvd) ++st.race_codes[c->close_code == 1000];
      break;
    case SOAK_RST:
    case SOAK_FIN:
    case SOAK_HSRST:
      if (how != END_LOCAL)
        snprintf(why, sizeof why, "ended by %s before it misbehaved",
                 end_names[how]);
      else
        ok = 1;
      break;
    case SOAK_HALF:
      if (!c->acted)
        snprintf(why, sizeof why, "ended by %s before it misbehaved",
                 end_names[how]);
      else if (how != END_EOF || c->close_rcvd)
        snprintf(why, sizeof why, "after our FIN: %s (%s)%s, want a plain FIN",
                 end_names[how], err ? strerror(err) : "-",
                 c->close_rcvd ? " after a close frame" : "");
      else
        ok = 1;
      break;
    case SOAK_JUNK:
    case SOAK_UTF8:
    case SOAK_BIG:
    case SOAK_BYE: {
      uint16_t want = c->role == SOAK_JUNK   ? 1002
                      : c->role == SOAK_UTF8 ? 1007
                      : c->role == SOAK_BIG  ? 1009
                                             : 1000;
      if (!c->acted)
        snprintf(why, sizeof why, "ended by %s before it misbehaved",
                 end_names[how]);
      else if (!c->close_rcvd || c->close_code != want)
        snprintf(why, sizeof why, "close %s %u, want %u",
                 c->close_rcvd ? "code" : "frame missing, ended by",
                 c->close_rcvd ? c->close_code : (unsigned)how, want);
      else if (how != END_EOF)
        snprintf(why, sizeof why, "ended by %s (%s) after close %u, want FIN",
                 end_names[how], err ? strerror(err) : "-", want);
      else
        ok = 1;
      break;
    }
    case SOAK_PLAIN:
    case SOAK_BADKEY:
    case SOAK_RAWJUNK: {
      int want = c->role == SOAK_PLAIN ? 426 : 400;
      int got = c->http_status;
      if (!(got == want ||
            (c->role == SOAK_RAWJUNK && (got == 408 || got == 431))))
        snprintf(why, sizeof why, "HTTP status %d, want %d (ended by %s)", got,
                 want, end_names[how]);
      else if (how != END_EOF)
        snprintf(why, sizeof why, "ended by %s after the response, want FIN",
                 end_names[how]);
      else
        ok = 1;
      break;
    }
    case SOAK_SLOW:
    case SOAK_MUTE:
      if (c->http_status == 408 && how == END_EOF) {
        ok = 1;
        if (c->stuck) ++st.stuck_408;
      } else if (after_stop && c->http_status == 0 &&
                 (how == END_EOF || how == END_RST)) {
        ok = 1; /* dropped by the stop */
        if (c->stuck) ++st.stuck_dropped;
      } else {
        snprintf(why, sizeof why, "HTTP status %d, ended by %s (%s)",
                 c->http_status, end_names[how], err ? strerror(err) : "-");
      }
      break;
  }
  if (ok && !c->failed)
    ++st.role_ok[c->role];
  else if (!ok)
    cfail(c, "%s", why);
}

static void conn_end(conn *c, int how, int err) {
  if (c->state == C_FREE) return;
  int64_t now = now_ms();
  if (c->state == C_CONNECTING || (c->state == C_HANDSHAKE && !c->upgraded))
    if (!handshaking_role(c->role)) --st.handshaking;
  check_end(c, how, err, now);
  ++st.end_how[how];
  if (t_stop && (how == END_EOF || how == END_RST)) {
    if (now - t_stop > st.eof_after_stop_max_ms) st.eof_after_stop_max_ms = now - t_stop;
    t_last_end = now;
  }
  if (c->fd >= 0) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
  }
  --st.open_sockets;
  if (c->upgraded) --st.open_ws;
  buf_free(&c->in);
  buf_free(&c->out);
  buf_free(&c->msg);
  c->state = C_FREE;
  c->t_deadline = 0;
  if (c->churn && phase <= PH_TRAFFIC) c->t_respawn = now + 200 + rnd(1300);
}

/* Ends the connection ourselves: RST (SO_LINGER 0) or FIN. */
static void local_close(conn *c, int rst) {
  if (rst) {
    struct linger l = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  conn_end(c, END_LOCAL, 0);
}

/* ------------------------------------------------------------------ */
/* Misbehaving                                                         */

/* Queues a frame that stops in the middle: a whole first fragment and half
 * of the next, or half of a single frame. */
static void put_partial_frame(conn *c) {
  uint8_t body[4096];
  size_t n = 200 + rnd(sizeof body - 200);
  for (size_t i = 0; i < n; ++i) body[i] = (uint8_t)('a' + rnd(26));
  if (rnd(2)) {
    put_frame(c, 0, OP_TEXT, body, n / 3);
    put_frame(c, 1, OP_CONT, body, n);
  } else {
    put_frame(c, 1, OP_BIN, body, n);
  }
  c->out.len -= n / 2; /* the frame's second half never leaves */
}

static void act(conn *c, int64_t now) {
  c->acted = 1;
  c->t_act = now;
  c->t_deadline = now + 5000;
  switch (c->role) {
    case SOAK_RST:
    case SOAK_FIN:
      put_partial_frame(c);
      if (flush_out(c) != 0) return;
      local_close(c, c->role == SOAK_RST);
      return;
    case SOAK_HALF:
      put_partial_frame(c);
      if (flush_out(c) != 0) return;
      shutdown(c->fd, SHUT_WR);
      c->wr_shut = 1;
      c->state = C_WAIT_EOF;
      return;
    case SOAK_JUNK: {
      uint8_t junk[512];
      size_t n = 32 + rnd(sizeof junk - 32);
      for (size_t i = 0; i < n; ++i) junk[i] = (uint8_t)rng();
      junk[0] |= 0x40; /* RSV1 without permessage-deflate: 1002 */
      buf_put(&c->out, junk, n);
      break;
    }
    case SOAK_UTF8: {
      static const char *const bad[] = {"\xc0\xaf", "\xed\xa0\x80",
                                        "\xf5\x80\x80\x80", "\xff",
                                        "\xe2\x82", "\xf4\x90\x80\x80"};
      uint8_t p[64];
      size_t n = 0;
      const char *b = bad[rnd(6)];
      memcpy(p, "valid so far ", 13);
      n = 13;
      memcpy(p + n, b, strlen(b));
      n += strlen(b);
      if (rnd(2)) { /* split across two fragments */
        put_frame(c, 0, OP_TEXT, p, 10);
        put_frame(c, 1, OP_CONT, p + 10, n - 10);
      } else {
        put_frame(c, 1, OP_TEXT, p, n);
      }
      break;
    }
    case SOAK_BIG: {
      if (rnd(3) == 0) {
        /* Two fragments, each under 1 MiB, together over it. */
        size_t first = 700000;
        uint8_t *p = calloc(1, first);
        put_frame(c, 0, OP_BIN, p, first);
        free(p);
        uint8_t hdr[14] = {0x80 | OP_CONT, 0x80 | 127};
        uint64_t len = 400000;
        for (int i = 0; i < 8; ++i) hdr[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        buf_put(&c->out, hdr, 14);
        buf_put(&c->out, "xxxxxxxxxxxxxxxx", 16);
      } else {
        uint8_t hdr[14] = {0x80 | OP_BIN, 0x80 | 127};
        uint64_t len = (1u << 20) + 1 + rnd(1u << 20);
        for (int i = 0; i < 8; ++i) hdr[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        buf_put(&c->out, hdr, 14);
        buf_put(&c->out, "xxxxxxxxxxxxxxxx", 16);
      }
      break;
    }
    case SOAK_BYE:
      send_close(c, 1000, "bye");
      c->state = C_WAIT_EOF;
      break;
    case SOAK_HSRST:
      local_close(c, 1);
      return;
    default:
      break;
  }
  flush_out(c);
}

/* ------------------------------------------------------------------ */
/* Input                                                               */

static void on_message(conn *c, int op, const uint8_t *p, size_t n) {
  if (c->role == SOAK_CTL) {
    char txt[128];
    size_t m = n < sizeof txt - 1 ? n : sizeof txt - 1;
    memcpy(txt, p, m);
    txt[m] = 0;
    if (sscanf(txt, "open=%zu ws=%zu", &barrier_server_open,
               &barrier_server_ws) != 2)
      cfail(c, "control reply \"%s\"", txt);
    stats_waiting = 0;
    return;
  }
  if (c->role == SOAK_IDLE || c->role == SOAK_DEAF) {
    cfail(c, "a message of %zu bytes on a connection that sent none", n);
    ++st.corrupt;
    return;
  }
  uint32_t seq = c->echoed;
  if (seq >= c->sent) {
    cfail(c, "a message of %zu bytes beyond the %u sent", n, c->sent);
    ++st.corrupt;
    return;
  }
  spec s = msg_spec(c, seq);
  uint32_t tag = UINT32_MAX;
  soak_get_tag(p, n, &tag);
  if (op != s.op || n != s.len) {
    cfail(c, "echo %u: opcode %d length %zu (tag %d), want opcode %d length %zu",
          seq, op, n, (int)tag, s.op, s.len);
    ++st.corrupt;
  } else {
    gen_payload(seq, &s, scratch_check);
    if (memcmp(p, scratch_check, n) != 0) {
      size_t i = 0;
      while (p[i] == scratch_check[i]) ++i;
      cfail(c, "echo %u (%zu bytes, tag %d) differs from byte %zu on", seq, n,
            (int)tag, i);
      ++st.corrupt;
    }
  }
  ++c->echoed;
  ++st.echoes;
  st.echo_bytes += n;
  if (t_stop) ++st.echoed_after_stop_req;
}

static void on_close_frame(conn *c, const uint8_t *p, size_t n) {
  int64_t now = now_ms();
  c->close_rcvd = 1;
  c->close_code = n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005;
  if (n == 1) cfail(c, "a close frame with a 1-byte payload");
  if (t_stop && c->close_code == 1001) {
    ++st.close_codes_1001;
    /* How soon the stop reached the connections that read. */
    if (c->role != SOAK_NOREAD && now - t_stop > st.close_1001_max_ms)
      st.close_1001_max_ms = now - t_stop;
  } else {
    ++st.close_codes_other;
  }
  if (c->role != SOAK_DEAF && !c->close_sent) send_close(c, c->close_code, NULL);
  if (c->state == C_OPEN) c->state = C_CLOSED_WS;
  if (t_stop) c->t_deadline = t_stop + opt.close_timeout_ms + opt.margin_ms;
  else c->t_deadline = now + 5000;
  flush_out(c);
}

/* One frame from the server. */
static void on_frame(conn *c, int fin, int op, const uint8_t *p, size_t n) {
  if (c->close_rcvd) {
    cfail(c, "a frame (opcode %d, %zu bytes) after the close frame", op, n);
    ++st.corrupt;
    return;
  }
  if (op & 8) {
    if (!fin || n > 125) {
      cfail(c, "a control frame that is fragmented or over 125 bytes");
      return;
    }
    if (op == OP_CLOSE) {
      on_close_frame(c, p, n);
    } else if (op == OP_PING) {
      ++st.server_pings;
      if (!c->close_sent && !c->wr_shut) put_frame(c, 1, OP_PONG, p, n);
      flush_out(c);
    } else if (op == OP_PONG) {
      char want[16];
      int m = snprintf(want, sizeof want, "p%u", c->pongs);
      if ((size_t)m != n || memcmp(p, want, n) != 0)
        cfail(c, "pong %u has the wrong payload (%zu bytes)", c->pongs, n);
      if (c->pongs >= c->pings) cfail(c, "a pong without a ping");
      ++c->pongs;
      ++st.pongs;
    } else {
      cfail(c, "control opcode %d", op);
    }
    return;
  }
  if (op == OP_TEXT || op == OP_BIN) {
    if (c->in_msg) {
      cfail(c, "a new message inside a fragmented one");
      return;
    }
    if (fin) {
      on_message(c, op, p, n);
      return;
    }
    c->in_msg = 1;
    c->msg_op = (uint8_t)op;
    buf_put(&c->msg, p, n);
    return;
  }
  if (op == OP_CONT) {
    if (!c->in_msg) {
      cfail(c, "a continuation frame outside a message");
      return;
    }
    buf_put(&c->msg, p, n);
    if (buf_size(&c->msg) > MAX_SERVER_MSG) {
      cfail(c, "a message over %u bytes", MAX_SERVER_MSG);
      return;
    }
    if (fin) {
      c->in_msg = 0;
      on_message(c, c->msg_op, c->msg.p + c->msg.off, buf_size(&c->msg));
      c->msg.off = c->msg.len = 0;
      buf_trim(&c->msg);
    }
    return;
  }
  cfail(c, "opcode %d", op);
}

static void parse_frames(conn *c) {
  while (c->state != C_FREE) {
    uint8_t *p = c->in.p + c->in.off;
    size_t n = buf_size(&c->in);
    if (n < 2) break;
    int fin = p[0] & 0x80, rsv = p[0] & 0x70, op = p[0] & 0x0f;
    int masked = p[1] & 0x80;
    uint64_t len = p[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
      if (n < 4) break;
      len = (uint64_t)p[2] << 8 | p[3];
      h = 4;
    } else if (len == 127) {
      if (n < 10) break;
      len = 0;
      for (int i = 0; i < 8; ++i) len = len << 8 | p[2 + i];
      h = 10;
    }
    if (rsv || masked || len > MAX_SERVER_MSG) {
      cfail(c, "a bad frame from the server (byte0 %#x, masked %d, length %" PRIu64 ")",
            p[0], masked != 0, len);
      ++st.corrupt;
      conn_end(c, END_ERROR, 0);
      return;
    }
    if (n < h + len) {
      buf_reserve(&c->in, h + len - n);
      break;
    }
    c->in.off += h + (size_t)len;
    on_frame(c, fin, op, p + h, (size_t)len);
  }
  if (c->state != C_FREE) buf_trim(&c->in);
}

static int ci_prefix(const char *s, const char *end, const char *pfx) {
  size_t n = strlen(pfx);
  return (size_t)(end - s) >= n && strncasecmp(s, pfx, n) == 0;
}

/* The response head is in c->in (up to and with CRLFCRLF, |head| bytes). */
static void on_response(conn *c, size_t head, int64_t now) {
  const char *s = (const char *)c->in.p + c->in.off;
  const char *end = s + head;
  int status = 0;
  if (head < 12 || memcmp(s, "HTTP/1.1 ", 9) != 0 ||
      sscanf(s + 9, "%3d", &status) != 1) {
    cfail(c, "a malformed response head");
    conn_end(c, END_ERROR, 0);
    return;
  }
  c->http_status = (uint16_t)status;
  int idx = status == 101 ? 0 : status == 400 ? 1 : status == 408 ? 2
          : status == 426 ? 3 : status == 431 ? 4 : 5;
  ++st.http_status[idx];
  if (!handshaking_role(c->role)) --st.handshaking;
  c->state = C_HTTP_DONE; /* no longer counted as handshaking */
  if (status == 408 && now - c->t_start + 100 < (int64_t)opt.handshake_timeout_ms)
    cfail(c, "408 after %" PRId64 " ms; the handshake timeout is %u ms",
          now - c->t_start, opt.handshake_timeout_ms);
  if (status != 101) {
    c->in.off = c->in.len; /* the body does not matter */
    c->t_deadline = now + 5000;
    if (is_ws_role(c->role)) cfail(c, "HTTP %d instead of 101", status);
    return;
  }
  if (!is_ws_role(c->role)) {
    cfail(c, "101 for a request that must fail");
    conn_end(c, END_ERROR, 0);
    return;
  }
  /* Sec-WebSocket-Accept must be base64(SHA-1(key + GUID)). */
  char want[29];
  wsc_accept_key(c->key, want);
  int accepted = 0;
  for (const char *line = s; line < end;) {
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol) break;
    if (ci_prefix(line, eol, "Sec-WebSocket-Accept:")) {
      const char *v = line + 21;
      while (*v == ' ') ++v;
      accepted = (size_t)(eol - v) >= 28 && memcmp(v, want, 28) == 0;
    }
    line = eol + 1;
  }
  if (!accepted) {
    cfail(c, "101 without the right Sec-WebSocket-Accept");
    conn_end(c, END_ERROR, 0);
    return;
  }
  c->in.off += head;
  c->state = C_OPEN;
  c->upgraded = 1;
  c->t_deadline = 0;
  ++st.upgraded;
  if (++st.open_ws > st.open_ws_peak) st.open_ws_peak = st.open_ws;
  if (c->role == SOAK_NOREAD) {
    c->reading = 0; /* never again, until the server's close timeout */
    c->t_next = now;
  } else if (c->role == SOAK_ECHO) {
    c->t_next = now + rnd(opt.interval_ms);
  } else if (c->churn) {
    int64_t left = t_quiet ? t_quiet - now : (int64_t)(opt.seconds * 1000);
    c->t_next = now + rnd(left > 2000 ? 2000 : left > 0 ? (uint32_t)left : 1);
    c->t_deadline = now + (int64_t)(opt.seconds * 1000) + 20000;
  }
  update_events(c);
  parse_frames(c);
}

static void on_readable(conn *c, int64_t now) {
  for (int round = 0; round < 8 && c->state != C_FREE && c->reading; ++round) {
    buf_reserve(&c->in, READ_CHUNK);
    ssize_t n = recv(c->fd, c->in.p + c->in.len, READ_CHUNK, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0) {
      conn_end(c, errno == ECONNRESET ? END_RST : END_ERROR, errno);
      return;
    }
    if (n == 0) {
      conn_end(c, END_EOF, 0);
      return;
    }
    c->in.len += (size_t)n;
    if (c->state == C_HANDSHAKE) {
      const uint8_t *s = c->in.p + c->in.off;
      size_t len = buf_size(&c->in);
      const uint8_t *e = memmem(s, len, "\r\n\r\n", 4);
      if (e) {
        on_response(c, (size_t)(e - s) + 4, now);
      } else if (len > 16384) {
        cfail(c, "a response head over 16 KiB");
        conn_end(c, END_ERROR, 0);
        return;
      }
    } else if (c->state == C_HTTP_DONE) {
      c->in.off = c->in.len;
    } else if (c->state != C_FREE) {
      parse_frames(c);
    }
  }
  if (c->state != C_FREE) buf_trim(&c->in);
}

/* ------------------------------------------------------------------ */
/* Timers                                                              */

static int persistent_role(void) {
  double u = (double)rnd(1000000) / 1e6;
  if ((u -= opt.echo_frac) < 0) return SOAK_ECHO;
  if ((u -= opt.deaf_frac) < 0) return SOAK_DEAF;
  if ((u -= opt.noread_frac) < 0) return SOAK_NOREAD;
  if ((u -= opt.race_frac) < 0) return SOAK_RACE;
  if ((u -= opt.churn_frac) < 0) return -1;
  return SOAK_IDLE;
}

static int churn_role(void) {
  static const struct { int role, weight; } w[] = {
      {SOAK_RST, 12},    {SOAK_FIN, 10},    {SOAK_HALF, 10}, {SOAK_JUNK, 10},
      {SOAK_UTF8, 8},    {SOAK_BIG, 6},     {SOAK_BYE, 12},  {SOAK_PLAIN, 8},
      {SOAK_BADKEY, 6},  {SOAK_RAWJUNK, 8}, {SOAK_SLOW, 4},  {SOAK_MUTE, 2},
      {SOAK_HSRST, 4}};
  int total = 0;
  for (size_t i = 0; i < sizeof w / sizeof w[0]; ++i) total += w[i].weight;
  int r = (int)rnd((uint32_t)total);
  for (size_t i = 0; i < sizeof w / sizeof w[0]; ++i)
    if ((r -= w[i].weight) < 0) return w[i].role;
  return SOAK_RST;
}

static void conn_tick(conn *c, int64_t now) {
  if (c->state == C_FREE) return;
  if (c->t_deadline && now > c->t_deadline) {
    cfail(c, "no progress in time (state %d, %u/%u echoed, acted %d)",
          c->state, c->echoed, c->sent, c->acted);
    conn_end(c, END_GIVEUP, 0);
    return;
  }
  switch (c->role) {
    case SOAK_ECHO:
      if (c->state == C_OPEN && phase <= PH_TRAFFIC && now >= c->t_next &&
          c->sent - c->echoed < opt.window) {
        if (send_message(c) != 0) return;
        c->t_next = now + rnd(2 * opt.interval_ms + 1);
      }
      break;
    case SOAK_NOREAD:
      if (c->state == C_OPEN && c->sent < NOREAD_MSGS && now >= c->t_next &&
          phase <= PH_TRAFFIC) {
        if (send_message(c) != 0) return;
        c->t_next = now + 50;
      }
      break;
    case SOAK_SLOW:
      if (c->state == C_HANDSHAKE && now >= c->t_next) {
        buf req = {0};
        make_request(c, &req);
        /* Never the last CRLF: the head stays unfinished. */
        if (c->hs_off + 2 < buf_size(&req)) {
          buf_put(&c->out, req.p + c->hs_off, 1);
          ++c->hs_off;
          flush_out(c);
        }
        buf_free(&req);
        c->t_next = now + 200 + rnd(300);
      }
      break;
    case SOAK_HSRST:
      if (c->state == C_HANDSHAKE && c->t_next && now >= c->t_next) act(c, now);
      break;
    default:
      if (c->churn && c->state == C_OPEN && !c->acted &&
          (now >= c->t_next || phase >= PH_DRAIN)) {
        if (c->sent < c->pre_msgs) {
          if (c->echoed == c->sent) send_message(c);
        } else if (c->echoed == c->sent && c->pongs == c->pings) {
          act(c, now);
        }
      }
      break;
  }
}

/* ------------------------------------------------------------------ */
/* Main                                                                */

static void usage(void) {
  fprintf(stderr,
          "usage: soak_client --port N [--host 127.0.0.1|::1] [--conns N]\n"
          "  [--seconds S] [--echo-frac F] [--deaf-frac F] [--noread-frac F]\n"
          "  [--race-frac F]\n"
          "  [--churn-frac F] [--stuck N] [--window N] [--interval-ms MS]\n"
          "  [--max-size BYTES] [--burst N] [--close-timeout MS]\n"
          "  [--handshake-timeout MS] [--stop ctl|sigterm] [--server-pid PID]\n"
          "  [--seed N] [--report FILE] [--parallel N] [--margin-ms MS]\n"
          "  [--fixed-size BYTES]\n");
  exit(2);
}

/* Race connections close at the moment of the stop: the odd slots just
 * before it is asked for, the even ones just after. */
static void race_close(int odd) {
  for (uint32_t i = 1; i < opt.conns; ++i) {
    conn *c = &conns[i];
    if (c->role != SOAK_RACE || c->state != C_OPEN || (int)(i & 1) != odd)
      continue;
    send_close(c, 1000, "bye");
    c->state = C_WAIT_EOF;
    flush_out(c);
  }
}

static void send_stats(int64_t now) {
  conn *ctl = &conns[0];
  if (ctl->state != C_OPEN) return;
  put_frame(ctl, 1, OP_TEXT, (const uint8_t *)"stats", 5);
  stats_waiting = 1;
  t_stats_sent = now;
  flush_out(ctl);
}

int main(int argc, char **argv) {
  const char *stop = "ctl";
  if (argc % 2 == 0) usage(); /* options all take a value */
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i];
    const char *v = argv[i + 1];
    if (!strcmp(a, "--host")) opt.host = v;
    else if (!strcmp(a, "--port")) opt.port = atoi(v);
    else if (!strcmp(a, "--conns")) opt.conns = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--seconds")) opt.seconds = atof(v);
    else if (!strcmp(a, "--echo-frac")) opt.echo_frac = atof(v);
    else if (!strcmp(a, "--deaf-frac")) opt.deaf_frac = atof(v);
    else if (!strcmp(a, "--noread-frac")) opt.noread_frac = atof(v);
    else if (!strcmp(a, "--race-frac")) opt.race_frac = atof(v);
    else if (!strcmp(a, "--churn-frac")) opt.churn_frac = atof(v);
    else if (!strcmp(a, "--stuck")) opt.stuck = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--window")) opt.window = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--interval-ms")) opt.interval_ms = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--max-size")) opt.max_size = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--burst")) opt.burst = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--close-timeout")) opt.close_timeout_ms = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--handshake-timeout")) opt.handshake_timeout_ms = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--stop")) stop = v;
    else if (!strcmp(a, "--server-pid")) opt.server_pid = (pid_t)atoi(v);
    else if (!strcmp(a, "--seed")) opt.seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--report")) opt.report = v;
    else if (!strcmp(a, "--parallel")) opt.parallel = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--margin-ms")) opt.margin_ms = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--fixed-size")) opt.fixed_size = (uint32_t)strtoul(v, NULL, 10);
    else usage();
  }
  if (!strcmp(stop, "sigterm"))
    opt.stop_sigterm = 1;
  else if (strcmp(stop, "ctl") != 0)
    usage();
  if (opt.fixed_size && opt.fixed_size < SOAK_TAG_LEN) usage();
  if (opt.fixed_size > opt.max_size) opt.max_size = opt.fixed_size;
  if (opt.port <= 0 || opt.conns < 2 || opt.window < 1 || opt.max_size < 64 ||
      opt.parallel < 1 || (opt.stop_sigterm && opt.server_pid <= 0))
    usage();

  memset(&server_addr, 0, sizeof server_addr);
  if (!strcmp(opt.host, "127.0.0.1")) {
    struct sockaddr_in *a = (struct sockaddr_in *)&server_addr;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)opt.port);
    inet_pton(AF_INET, opt.host, &a->sin_addr);
    server_addr_len = sizeof *a;
  } else if (!strcmp(opt.host, "::1")) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&server_addr;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)opt.port);
    inet_pton(AF_INET6, opt.host, &a->sin6_addr);
    server_addr_len = sizeof *a;
  } else {
    fprintf(stderr, "soak_client: loopback only (127.0.0.1 or ::1)\n");
    return 2;
  }

  signal(SIGPIPE, SIG_IGN);
  uint32_t nslots = opt.conns + opt.stuck;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < nslots + 64) {
    fprintf(stderr, "soak_client: %u connections need %u descriptors; the "
            "limit is %llu\n", nslots, nslots + 64,
            (unsigned long long)rl.rlim_cur);
    return 3;
  }
  rng_state ^= mix64(opt.seed);
  conns = calloc(nslots, sizeof *conns);
  scratch_send = malloc(opt.max_size + 64);
  scratch_check = malloc(opt.max_size + 64);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (!conns || !scratch_send || !scratch_check || ep < 0) {
    fprintf(stderr, "soak_client: setup failed\n");
    return 3;
  }
  uint32_t nrole[SOAK_NROLES] = {0}, nchurn = 0;
  for (uint32_t i = 0; i < nslots; ++i) {
    conn *c = &conns[i];
    c->fd = -1;
    c->slot = i;
    c->burst_from = UINT32_MAX;
    if (i == 0) {
      c->role = SOAK_CTL;
    } else if (i >= opt.conns) {
      c->stuck = 1;
      c->role = rnd(3) ? SOAK_SLOW : SOAK_MUTE;
    } else {
      int r = persistent_role();
      if (r < 0) {
        c->churn = 1;
        c->role = (uint8_t)churn_role();
        ++nchurn;
      } else {
        c->role = (uint8_t)r;
      }
    }
    if (!c->churn && !c->stuck) ++nrole[c->role];
  }
  printf("soak_client: %u connections to %s:%d for %.0f s: %u echo, %u idle, "
         "%u deaf, %u noread, %u race, %u churn, %u stuck handshakes, control; "
         "stop by %s; server close timeout %u ms\n",
         opt.conns, opt.host, opt.port, opt.seconds, nrole[SOAK_ECHO],
         nrole[SOAK_IDLE], nrole[SOAK_DEAF], nrole[SOAK_NOREAD],
         nrole[SOAK_RACE], nchurn,
         opt.stuck, opt.stop_sigterm ? "SIGTERM" : "control message",
         opt.close_timeout_ms);
  fflush(stdout);

  t_begin = now_ms();
  int64_t hard_deadline = t_begin + 120000 + (int64_t)(opt.seconds * 1000) +
                          60000 + opt.close_timeout_ms;
  uint32_t next_slot = 0;
  int64_t last_tick = 0, last_progress = t_begin, t_barrier = 0;
  int noread_resumed = 0;
  struct epoll_event evs[1024];

  while (phase != PH_DONE) {
    int n = epoll_wait(ep, evs, 1024, 5);
    if (n < 0 && errno != EINTR) {
      perror("epoll_wait");
      return 3;
    }
    int64_t now = now_ms();
    for (int i = 0; i < n; ++i) {
      conn *c = &conns[evs[i].data.u32];
      if (c->state == C_FREE) continue;
      if (c->state == C_CONNECTING) {
        if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c, now);
        continue;
      }
      if ((evs[i].events & EPOLLOUT) && flush_out(c) != 0) continue;
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (!c->reading && (evs[i].events & (EPOLLERR | EPOLLHUP))) {
          /* A socket we do not read (noread) was reset or hung up: read it
           * (level-triggered epoll reports these whatever we asked for). */
          c->reading = 1;
          update_events(c);
        }
        if (c->reading) on_readable(c, now);
      }
    }
    if (now - last_tick < 10) continue;
    last_tick = now;

    /* Connections: the initial ones, respawns of churn slots. */
    if (phase <= PH_TRAFFIC) {
      while (next_slot < opt.conns && st.handshaking < opt.parallel) {
        conn_start(&conns[next_slot], now);
        ++next_slot;
      }
      for (uint32_t i = 1; i < opt.conns && st.handshaking < opt.parallel; ++i) {
        conn *c = &conns[i];
        if (c->churn && c->state == C_FREE && c->t_respawn && now >= c->t_respawn) {
          ++c->gen;
          c->role = (uint8_t)churn_role();
          conn_start(c, now);
        }
      }
    }
    for (uint32_t i = 0; i < nslots; ++i) conn_tick(&conns[i], now);

    if (now - last_progress >= 5000) {
      last_progress = now;
      printf("  [%5.1fs] %-8s sockets %" PRIu64 ", WebSocket %" PRIu64
             ", echoes %" PRIu64 "/%" PRIu64 ", failures %" PRIu64 "\n",
             (now - t_begin) / 1000.0, phase_names[phase], st.open_sockets,
             st.open_ws, st.echoes, st.msgs_sent, st.failures);
      fflush(stdout);
    }
    if (now > hard_deadline) {
      fail_msg("the run is past its hard deadline: giving up");
      for (uint32_t i = 0; i < nslots; ++i)
        if (conns[i].state != C_FREE) conn_end(&conns[i], END_GIVEUP, 0);
      phase = PH_DONE;
      break;
    }

    switch (phase) {
      case PH_CONNECT: {
        if (next_slot < opt.conns) break;
        int pending = 0;
        for (uint32_t i = 0; i < opt.conns; ++i) {
          conn *c = &conns[i];
          if (!c->churn && (c->state == C_CONNECTING || c->state == C_HANDSHAKE))
            ++pending;
        }
        if (pending) break;
        if (conns[0].state != C_OPEN) {
          fail_msg("the control connection is not open");
          phase = PH_DONE;
          break;
        }
        phase = PH_TRAFFIC;
        t_traffic = now;
        t_quiet = now + (int64_t)(opt.seconds * 1000);
        printf("  [%5.1fs] all %u connections opened in %.1f s; %" PRIu64
               " WebSocket connections open\n",
               (now - t_begin) / 1000.0, opt.conns, (now - t_begin) / 1000.0,
               st.open_ws);
        break;
      }
      case PH_TRAFFIC:
        if (now < t_quiet) break;
        phase = PH_DRAIN;
        for (uint32_t i = opt.conns; i < nslots; ++i) conn_start(&conns[i], now);
        t_drained = now + 20000; /* deadline of the drain */
        break;
      case PH_DRAIN: {
        int busy = 0;
        for (uint32_t i = 1; i < opt.conns; ++i) {
          conn *c = &conns[i];
          if (c->role == SOAK_ECHO && c->state == C_OPEN &&
              (c->sent != c->echoed || c->pings != c->pongs))
            ++busy;
          if (c->churn && c->state != C_FREE && c->role != SOAK_SLOW &&
              c->role != SOAK_MUTE)
            ++busy;
        }
        if (busy && now < t_drained) break;
        if (busy) {
          fail_msg("drain: %d connections still have unanswered messages or "
                   "have not ended after 20 s", busy);
          for (uint32_t i = 1; i < opt.conns; ++i) {
            conn *c = &conns[i];
            if (c->role == SOAK_ECHO && c->state == C_OPEN)
              st.lost += c->sent - c->echoed;
          }
        }
        printf("  [%5.1fs] drained: %" PRIu64 " messages sent, %" PRIu64
               " echoed\n",
               (now - t_begin) / 1000.0, st.msgs_sent, st.echoes);
        phase = PH_BARRIER;
        t_barrier = now;
        send_stats(now);
        break;
      }
      case PH_BARRIER:
        if (stats_waiting && now - t_stats_sent < 5000) break;
        if (!stats_waiting && barrier_server_open == st.open_sockets &&
            barrier_server_ws == st.open_ws) {
          barrier_ok = 1;
        } else if (now - t_barrier < 10000) {
          if (!stats_waiting && now - t_stats_sent >= 100) send_stats(now);
          break;
        } else {
          fail_msg("barrier: the server counts %zu connections (%zu WebSocket "
                   "not terminated), the client %" PRIu64 " (%" PRIu64
                   " WebSocket) after 10 s",
                   barrier_server_open, barrier_server_ws, st.open_sockets,
                   st.open_ws);
        }
        printf("  [%5.1fs] barrier: server and client agree on %zu "
               "connections, %zu WebSocket\n",
               (now - t_begin) / 1000.0, barrier_server_open,
               barrier_server_ws);
        /* The stop under load: a burst on every echo connection, then at
         * once the stop request. */
        for (uint32_t i = 1; i < opt.conns; ++i) {
          conn *c = &conns[i];
          if (c->role != SOAK_ECHO || c->state != C_OPEN) continue;
          c->burst_from = c->sent;
          uint32_t b = 1 + rnd(opt.burst);
          for (uint32_t k = 0; k < b && c->state == C_OPEN; ++k)
            if (send_message(c) != 0) break;
        }
        race_close(0);
        if (opt.stop_sigterm) {
          if (kill(opt.server_pid, SIGTERM) != 0)
            fail_msg("kill(%d, SIGTERM): %s", (int)opt.server_pid,
                     strerror(errno));
        } else {
          put_frame(&conns[0], 1, OP_TEXT, (const uint8_t *)"stop", 4);
          flush_out(&conns[0]);
        }
        t_stop = now_ms();
        st.ws_open_at_stop = st.open_ws;
        race_close(1);
        /* And more on half the echo connections right after the request:
         * these race with the stop; whatever the server reads after it is
         * read past, never echoed. */
        for (uint32_t i = 1; i < opt.conns; ++i) {
          conn *c = &conns[i];
          if (c->role != SOAK_ECHO || c->state != C_OPEN || rnd(2)) continue;
          uint32_t b = 1 + rnd(2);
          for (uint32_t k = 0; k < b && c->state == C_OPEN; ++k) {
            if (send_message(c) != 0) break;
            ++st.sent_after_stop_req;
          }
        }
        for (uint32_t i = 0; i < nslots; ++i) {
          conn *c = &conns[i];
          if (c->state == C_FREE) continue;
          c->sent_at_stop = c->sent;
          c->t_deadline = t_stop + opt.close_timeout_ms + opt.margin_ms +
                          (c->role == SOAK_NOREAD ? 2000 : 0);
        }
        printf("  [%5.1fs] stop requested with %" PRIu64 " sockets open, %" PRIu64
               " WebSocket\n",
               (t_stop - t_begin) / 1000.0, st.open_sockets, st.open_ws);
        fflush(stdout);
        phase = PH_SHUTDOWN;
        break;
      case PH_SHUTDOWN:
        if (!noread_resumed && now >= t_stop + opt.close_timeout_ms + 500) {
          noread_resumed = 1;
          for (uint32_t i = 0; i < nslots; ++i) {
            conn *c = &conns[i];
            if (c->role == SOAK_NOREAD && c->state != C_FREE) {
              c->reading = 1;
              update_events(c);
            }
          }
        }
        if (st.open_sockets == 0) phase = PH_DONE;
        break;
    }
  }

  /* ---------------------------------------------------------- summary */
  int64_t shutdown_ms = t_stop && t_last_end ? t_last_end - t_stop : -1;
  if (opt.report) {
    FILE *f = fopen(opt.report, "w");
    if (!f) {
      fail_msg("cannot write %s: %s", opt.report, strerror(errno));
    } else {
      for (uint32_t i = 0; i < opt.conns; ++i) {
        conn *c = &conns[i];
        if (c->churn || c->stuck || c->role == SOAK_CTL) continue;
        fprintf(f, "%u %s %u %u\n", c->slot, soak_role_names[c->role], c->sent,
                c->echoed);
      }
      fclose(f);
    }
  }
  printf("per role: started / ended as expected / failed\n");
  for (int r = 0; r < SOAK_NROLES; ++r)
    if (st.role_started[r])
      printf("  %-8s %7" PRIu64 " %7" PRIu64 " %5" PRIu64 "\n",
             soak_role_names[r], st.role_started[r], st.role_ok[r],
             st.role_failed[r]);
  printf("HTTP responses: 101=%" PRIu64 " 400=%" PRIu64 " 408=%" PRIu64
         " 426=%" PRIu64 " 431=%" PRIu64 " other=%" PRIu64 "\n",
         st.http_status[0], st.http_status[1], st.http_status[2],
         st.http_status[3], st.http_status[4], st.http_status[5]);
  printf("ends: eof=%" PRIu64 " rst=%" PRIu64 " local=%" PRIu64 " error=%" PRIu64
         " giveup=%" PRIu64 "\n",
         st.end_how[0], st.end_how[1], st.end_how[2], st.end_how[3],
         st.end_how[4]);
  printf("stuck handshakes at the stop: %" PRIu64 " dropped, %" PRIu64
         " answered 408 first\n", st.stuck_dropped, st.stuck_408);
  if (st.race_codes[0] + st.race_codes[1])
    printf("simultaneous closes at the stop: the server's 1001 came first on "
           "%" PRIu64 ", our 1000 on %" PRIu64 "\n",
           st.race_codes[0], st.race_codes[1]);
  if (st.deaf_end_max_ms)
    printf("deaf connections ended by the server %" PRId64 "..%" PRId64
           " ms after the stop (close timeout %u ms)\n",
           st.deaf_end_min_ms, st.deaf_end_max_ms, opt.close_timeout_ms);
  int ok = st.failures == 0 && st.lost == 0 && st.corrupt == 0 && barrier_ok;
  printf("SOAK_CLIENT_RESULT ok=%d failures=%" PRIu64 " conns=%u held_peak=%" PRIu64
         " sockets_peak=%" PRIu64 " connects=%" PRIu64 " upgraded=%" PRIu64
         " ws_open_at_stop=%" PRIu64 " msgs_sent=%" PRIu64 " echoed=%" PRIu64
         " echo_bytes=%" PRIu64 " fragmented=%" PRIu64 " pings=%" PRIu64
         " pongs=%" PRIu64 " server_pings=%" PRIu64 " lost=%" PRIu64
         " corrupt=%" PRIu64
         " unechoed_at_stop=%" PRIu64 " sent_after_stop_request=%" PRIu64
         " echoed_after_stop_request=%" PRIu64
         " close1001=%" PRIu64 " close1001_max_ms=%" PRId64
         " good_end_max_ms=%" PRId64
         " shutdown_ms=%" PRId64 " barrier=%d stop=%s run_s=%.1f\n",
         ok, st.failures, opt.conns, st.open_ws_peak, st.open_sockets_peak,
         st.connects, st.upgraded, st.ws_open_at_stop, st.msgs_sent, st.echoes,
         st.echo_bytes, st.fragmented_sent, st.pings_sent, st.pongs,
         st.server_pings, st.lost,
         st.corrupt, st.unechoed_at_stop, st.sent_after_stop_req,
         st.echoed_after_stop_req,
         st.close_codes_1001, st.close_1001_max_ms, st.good_end_max_ms,
         shutdown_ms, barrier_ok,
         opt.stop_sigterm ? "sigterm" : "ctl", (now_ms() - t_begin) / 1000.0);
  return ok ? 0 : 1;
}
