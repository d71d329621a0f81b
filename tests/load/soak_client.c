/*
 * soak_client: the load driver of the load/soak/shutdown test (issue #6).
 * One thread, epoll (level-triggered), non-blocking sockets, libc only.
 *
 *   soak_client --port N [--host 127.0.0.1] [--conns 10000] [--seconds 60]
 *     [--echo-frac 0.3] [--deaf-frac 0.01] [--noread-frac 0.005]
 *     [--churn-frac 0.05] [--stuck N] [--window 2] [--interval-ms 500]
 *     [--max-size 200000] [--burst 3] [--close-timeout MS]
 *     [--handshake-timeout MS] [--stop ctl|sigterm] [--server-pid PID]
 *     [--seed N] [--report FILE] [--parallel 256] [--margin-ms 4000]
 *
 * Slot 0 is the control connection (/control). The other slots get a role
 * (soak.h) for the whole run - echo, idle, deaf, noread - or are "churn"
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
 *     multi-byte UTF-8, or binary; 10 B .. --max-size; a fifth fragmented
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
  double echo_frac, deaf_frac, noread_frac, churn_frac;
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
} opt = {"127.0.0.1", 0, 10000, 60, 0.3, 0.01, 0.005, 0.05, 20, 2, 500,
         200000, 3, 5000, 10000, 0, 0, 1, NULL, 256, 4000};

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

/* SHA-1 (FIPS 180-1), for Sec-WebSocket-Accept. */
static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  size_t total = ((len + 8) / 64 + 1) * 64;
  uint8_t block[64];
  for (size_t off = 0; off < total; off += 64) {
    for (size_t i = 0; i < 64; ++i) {
      size_t j = off + i;
      if (j < len)
        block[i] = msg[j];
      else if (j == len)
        block[i] = 0x80;
      else if (j >= total - 8)
        block[i] = (uint8_t)((uint64_t)len * 8 >> (8 * (total - 1 - j)));
      else
        block[i] = 0;
    }
    uint32_t w[80];
    for (int i = 0; i < 16; ++i)
      w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
             (uint32_t)block[4 * i + 2] << 8 | block[4 * i + 3];
    for (int i = 16; i < 80; ++i) {
      uint32_t x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
      w[i] = x << 1 | x >> 31;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
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
      uint32_t t = (a << 5 | a >> 27) + f + e + k + w[i];
      e = d;
      d = c;
      c = b << 30 | b >> 2;
      b = a;
      a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
  for (int i = 0; i < 5; ++i) {
    out[4 * i] = (uint8_t)(h[i] >> 24);
    out[4 * i + 1] = (uint8_t)(h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(h[i] >> 8);
    out[4 * i + 3] = (uint8_t)h[i];
  }
}

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
  uint64_t pings_sent, pongs;
  uint64_t lost, corrupt;
  uint64_t unechoed_at_stop, echoed_after_stop_req;
  uint64_t role_started[SOAK_NROLES], role_ok[SOAK_NROLES];
  uint64_t role_failed[SOAK_NROLES];
  uint64_t end_how[5];
  uint64_t http_status[6]; /* 101 400 408 426 431 other */
  uint64_t close_codes_1001, close_codes_other;
  uint64_t stuck_408, stuck_dropped;
  int64_t close_1001_max_ms, eof_after_stop_max_ms;
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

static int is_persistent_ws(int role) {
  return role == SOAK_ECHO || role == SOAK_IDLE || role == SOAK_CTL ||
         role == SOAK_DEAF || role == SOAK_NOREAD;
}
static int is_ws_role(int role) { return role <= SOAK_BYE; }

