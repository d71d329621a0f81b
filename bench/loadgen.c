/* loadgen: a WebSocket (or raw TCP) load generator that verifies every echo.
 *
 * Single-threaded, epoll (edge-triggered), non-blocking sockets; needs only
 * libc and zlib (for permessage-deflate). Client frames are masked with a
 * fresh random mask per frame. Every echoed message is checked byte for byte
 * and in order against what was sent; any mismatch, unexpected close or
 * message still missing after the drain makes the exit status non-zero.
 * Only loopback addresses (127.0.0.0/8, ::1) are accepted as targets.
 *
 *   loadgen --pattern P [--host H] [--port N] [--seconds S] [--warmup W]
 *           [--server-pid PID] [--conns N] [--inflight N] [--size BYTES]
 *           [--rate MSGS_PER_S] [--path /p] [--raw] [--json]
 *           [--hibernate-msg TEXT] [--bcast-wrap 'PREFIX%sSUFFIX']
 *           [--publishers N] [--tls]
 *
 * --tls speaks wss:// (OpenSSL, memory BIOs, no certificate check: the
 * servers use throwaway certificates); every connection does a full
 * handshake.
 *
 * Patterns: small1 small16 k16 m1 cpu32 cpu16k cpu1m handshakes idle json-deflate
 *           broadcast fanout (see usage()).
 *
 * Exit status: 0 ok, 1 verification failure (mismatch, lost message,
 * unexpected close, stall), 2 usage, 3 could not connect or upgrade.
 *
 * Output: a human-readable report and a last line
 *   RESULT pattern=... status=ok msgs_per_s=... (key=value, "-" for n/a)
 * or, with --json, one JSON object instead. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <zlib.h>

#define MAX_FRAME (64u << 20) /* largest frame/message we accept */
#define MAX_PENDING 128       /* connections being set up at once */
#define MAX_INFLIGHT 4096

/* ------------------------------------------------------------------ */
/* Small utilities                                                     */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state;
static uint64_t rng(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1DULL;
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fprintf(stderr, "loadgen: out of memory (%zu bytes)\n", n);
    exit(1);
  }
  return q;
}

/* SHA-1 (for Sec-WebSocket-Accept) and base64. */
typedef struct {
  uint32_t h[5];
  uint64_t len;
  uint8_t buf[64];
  size_t n;
} sha1_ctx;

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
static void sha1_block(sha1_ctx *c, const uint8_t *p) {
  uint32_t w[80], a = c->h[0], b = c->h[1], d = c->h[3], e = c->h[4],
               cc = c->h[2];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 80; i++)
    w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) f = (b & cc) | (~b & d), k = 0x5A827999;
    else if (i < 40) f = b ^ cc ^ d, k = 0x6ED9EBA1;
    else if (i < 60) f = (b & cc) | (b & d) | (cc & d), k = 0x8F1BBCDC;
    else f = b ^ cc ^ d, k = 0xCA62C1D6;
    uint32_t t = ROL(a, 5) + f + e + k + w[i];
    e = d, d = cc, cc = ROL(b, 30), b = a, a = t;
  }
  c->h[0] += a, c->h[1] += b, c->h[2] += cc, c->h[3] += d, c->h[4] += e;
}
static void sha1_init(sha1_ctx *c) {
  static const uint32_t h0[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE,
                                 0x10325476, 0xC3D2E1F0};
  memcpy(c->h, h0, sizeof h0);
  c->len = 0, c->n = 0;
}
static void sha1_update(sha1_ctx *c, const void *data, size_t len) {
  const uint8_t *p = data;
  c->len += len;
  while (len--) {
    c->buf[c->n++] = *p++;
    if (c->n == 64) sha1_block(c, c->buf), c->n = 0;
  }
}
static void sha1_final(sha1_ctx *c, uint8_t out[20]) {
  uint64_t bits = c->len * 8;
  uint8_t pad = 0x80;
  sha1_update(c, &pad, 1);
  pad = 0;
  while (c->n != 56) sha1_update(c, &pad, 1);
  for (int i = 7; i >= 0; i--) {
    uint8_t b = (uint8_t)(bits >> (8 * i));
    sha1_update(c, &b, 1);
  }
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(c->h[i] >> (24 - 8 * j));
}
static void base64(const uint8_t *in, size_t n, char *out) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0, o = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = t[v >> 18], out[o++] = t[(v >> 12) & 63];
    out[o++] = t[(v >> 6) & 63], out[o++] = t[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = t[v >> 18], out[o++] = t[(v >> 12) & 63];
    out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  out[o] = 0;
}

/* Latency histogram: exact below 64 ns-units, then 32 sub-buckets per
 * power of two (about 3% resolution). Values are nanoseconds. */
#define HIST_BUCKETS (64 + 40 * 32)
typedef struct {
  uint64_t b[HIST_BUCKETS];
  uint64_t n;
  uint64_t max;
} hist_t;
static void hist_add(hist_t *h, uint64_t v) {
  unsigned idx;
  if (v < 64) {
    idx = (unsigned)v;
  } else {
    int e = 63 - __builtin_clzll(v); /* >= 6 */
    int shift = e - 5;
    idx = 64 + (unsigned)(e - 6) * 32 + (unsigned)((v >> shift) & 31);
    if (idx >= HIST_BUCKETS) idx = HIST_BUCKETS - 1;
  }
  h->b[idx]++;
  h->n++;
  if (v > h->max) h->max = v;
}
static double hist_pct(const hist_t *h, double pct) { /* microseconds */
  if (!h->n) return NAN;
  uint64_t want = (uint64_t)ceil(pct / 100.0 * (double)h->n), acc = 0;
  if (want < 1) want = 1;
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    acc += h->b[i];
    if (acc >= want) {
      double lo, width;
      if (i < 64) {
        lo = i, width = 1;
      } else {
        unsigned e = (i - 64) / 32 + 6, m = (i - 64) % 32;
        int shift = (int)e - 5;
        lo = (double)((uint64_t)(32 + m) << shift), width = (double)(1ull << shift);
      }
      double v = lo + width / 2;
      if (v > (double)h->max) v = (double)h->max;
      return v / 1000.0;
    }
  }
  return (double)h->max / 1000.0;
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

enum { P_SMALL1, P_SMALL16, P_K16, P_M1, P_CPU32, P_HANDSHAKES, P_IDLE,
       P_JSON_DEFLATE, P_BROADCAST, P_FANOUT };
enum { K_TEXT, K_BIN, K_JSON, K_HIB };

static const struct pattern_def {
  const char *name;
  int pattern, conns, inflight, kind, deflate;
  size_t size;
  double rate;
} kPatterns[] = {
    {"small1", P_SMALL1, 100, 1, K_TEXT, 0, 32, 0},
    {"small16", P_SMALL16, 100, 16, K_TEXT, 0, 32, 0},
    {"k16", P_K16, 10, 4, K_BIN, 0, 16384, 0},
    {"m1", P_M1, 4, 1, K_BIN, 0, 1u << 20, 0},
    {"cpu32", P_CPU32, 100, 16 /* cap, paced */, K_TEXT, 0, 32, 20000},
    /* The same fixed-rate CPU measure for the k16 and m1 messages. */
    {"cpu16k", P_CPU32, 10, 4, K_BIN, 0, 16384, 5000},
    {"cpu1m", P_CPU32, 4, 1, K_BIN, 0, 1u << 20, 100},
    {"handshakes", P_HANDSHAKES, 50, 0, K_TEXT, 0, 0, 0},
    {"idle", P_IDLE, 10000, 1, K_TEXT, 0, 32, 0},
    {"json-deflate", P_JSON_DEFLATE, 10, 4, K_JSON, 1, 0, 0},
    {"broadcast", P_BROADCAST, 1000, 1, K_TEXT, 0, 64, 0},
    {"fanout", P_FANOUT, 1000, 1, K_TEXT, 0, 64, 0},
};

static struct {
  const struct pattern_def *pat;
  const char *host;
  int port;
  double seconds, warmup, rate;
  int server_pid;
  /* --server-pid A,B: every process of the server counts (a fleet). */
  int server_pids[8], nserver_pids;
  /* --port2: odd connections go there (two processes of a fleet). */
  int port2;
  struct sockaddr_storage addr2;
  int conns, inflight, kind, deflate, raw, json, tls;
  size_t size;
  const char *path;
  const char *hib_msg;
  const char *bcast_wrap;
  int publishers; /* fanout */
  struct sockaddr_storage addr;
  socklen_t addrlen;
} C;

/* ------------------------------------------------------------------ */
/* Payloads: generated from (connection, sequence number), so an echo is
 * verified without keeping a copy of what was sent. A message is a short
 * header (seq + connection, so reordering is caught) and a body taken from
 * a pool at an offset depending on seq. */

#define NDOCS 256
static uint8_t *ascii_pool, *bin_pool;
static size_t pool_extra = 65536;
static char *docs[NDOCS];
static size_t doclen[NDOCS];

typedef struct {
  uint8_t hdr[64];
  size_t hlen;
  const uint8_t *body;
  size_t blen;
} msgspec_t;

static void make_msg(int idx, uint64_t seq, msgspec_t *m) {
  char tmp[64];
  size_t h;
  switch (C.kind) {
  case K_TEXT:
    snprintf(tmp, sizeof tmp, "%016" PRIx64 "%08x", seq, (unsigned)idx);
    h = C.size < 24 ? C.size : 24;
    memcpy(m->hdr, tmp, h);
    m->hlen = h;
    m->body = ascii_pool + (seq * 131 + (uint64_t)idx * 7) % pool_extra;
    m->blen = C.size - h;
    break;
  case K_BIN:
    memcpy(tmp, &seq, 8);
    memcpy(tmp + 8, &idx, 4);
    h = C.size < 12 ? C.size : 12;
    memcpy(m->hdr, tmp, h);
    m->hlen = h;
    m->body = bin_pool + (seq * 4099 + (uint64_t)idx * 31) % pool_extra;
    m->blen = C.size - h;
    break;
  case K_JSON: {
    unsigned k = (unsigned)((seq * 31 + (uint64_t)idx) % NDOCS);
    m->hlen = (size_t)snprintf((char *)m->hdr, sizeof m->hdr,
                               "{\"seq\":\"%016" PRIx64 "\",\"conn\":\"%08x\",",
                               seq, (unsigned)idx);
    m->body = (const uint8_t *)docs[k];
    m->blen = doclen[k];
    break;
  }
  default: /* K_HIB */
    m->hlen = 0;
    m->body = (const uint8_t *)C.hib_msg;
    m->blen = strlen(C.hib_msg);
  }
}

static const char *const kWords[] = {
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
    "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey",
    "xray", "yankee", "zulu", "widget", "gadget", "sprocket", "gizmo"};
#define NWORDS (sizeof kWords / sizeof kWords[0])

static void make_pools(void) {
  size_t max = C.size + pool_extra;
  ascii_pool = xrealloc(NULL, max);
  bin_pool = xrealloc(NULL, max);
  for (size_t i = 0; i < max; i++) {
    uint64_t r = rng();
    ascii_pool[i] = (uint8_t)(' ' + r % 95);
    bin_pool[i] = (uint8_t)(r >> 32);
  }
  if (C.kind != K_JSON) return;
  /* JSON-like documents of 1-4 KiB in total with the header, varied
   * enough that deflate sees realistic (not degenerate) redundancy. */
  char *buf = xrealloc(NULL, 8192);
  for (int d = 0; d < NDOCS; d++) {
    size_t target = 1024 + rng() % (4096 - 1024) - 36, n = 0;
    n += (size_t)snprintf(buf + n, 8192 - n,
                          "\"type\":\"order\",\"user\":{\"id\":%u,\"name\":\"%s_%s\","
                          "\"email\":\"%s.%s%u@example.com\"},\"items\":[",
                          (unsigned)(rng() % 1000000), kWords[rng() % NWORDS],
                          kWords[rng() % NWORDS], kWords[rng() % NWORDS],
                          kWords[rng() % NWORDS], (unsigned)(rng() % 100));
    int first = 1;
    for (;;) {
      char item[256];
      int len = snprintf(item, sizeof item,
                         "%s{\"sku\":\"SKU-%05u\",\"name\":\"%s %s\",\"qty\":%u,"
                         "\"price\":%u.%02u,\"tags\":[\"%s\",\"%s\"],"
                         "\"in_stock\":%s}",
                         first ? "" : ",", (unsigned)(rng() % 100000),
                         kWords[rng() % NWORDS], kWords[rng() % NWORDS],
                         (unsigned)(1 + rng() % 20), (unsigned)(rng() % 500),
                         (unsigned)(rng() % 100), kWords[rng() % NWORDS],
                         kWords[rng() % NWORDS], rng() % 2 ? "true" : "false");
      if (n + (size_t)len + 64 > target) break;
      memcpy(buf + n, item, (size_t)len);
      n += (size_t)len;
      first = 0;
    }
    n += (size_t)snprintf(buf + n, 8192 - n, "],\"total\":%u.%02u,\"note\":\"%s\"}",
                          (unsigned)(rng() % 10000), (unsigned)(rng() % 100),
                          kWords[rng() % NWORDS]);
    docs[d] = xrealloc(NULL, n + 1);
    memcpy(docs[d], buf, n + 1);
    doclen[d] = n;
  }
  free(buf);
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

enum { S_FREE, S_CONNECTING, S_UPGRADING, S_OPEN, S_CLOSING, S_WAIT_EOF,
       S_DONE };

typedef struct {
  uint64_t seq, t;
  uint32_t mask, len;
} inflight_t;

typedef struct conn {
  int fd, idx, state;
  uint32_t gen;
  uint8_t *rbuf;
  size_t rlen, rcap;
  uint8_t *wbuf;
  size_t woff, wlen, wcap;
  int dirty;
  inflight_t *q;
  unsigned qhead, qcount, qcap;
  uint64_t next_seq;
  /* fragmented message being assembled */
  uint8_t *mbuf;
  size_t mlen, mcap;
  int mop, mrsv1, in_frag;
  /* permessage-deflate */
  z_stream *zd, *zi;
  int deflate_on, client_no_takeover;
  char key[32];
  uint64_t t_start; /* handshakes: cycle start */
  int idle_done;    /* idle: exchanged its message */
  uint64_t bseq;    /* broadcast: next expected seq */
  uint64_t *fseq;   /* fanout: next expected seq from each publisher */
  unsigned fo_inflight; /* fanout publisher: own copies not yet back */
  /* --tls: the session, and ciphertext the kernel has not taken yet */
  SSL *ssl;
  int tls_up;
  uint8_t *cbuf;
  size_t coff, clen, ccap;
} conn_t;

static SSL_CTX *tls_ctx;

static conn_t *conns;
static int nconns;
static int epfd;
static conn_t **dirty;
static int ndirty;

enum { PH_SETUP, PH_SETTLE, PH_RUN, PH_DRAIN, PH_CLOSE, PH_DONE };
static struct {
  int phase;
  uint64_t now, t_start, t_begin, phase_deadline;
  uint64_t win_start, win_end;
  int win_open;
  double cpu0, cpu1;
  long rss0, rss1, anon0, anon1; /* RSS, and its anonymous part */
  int started, opened, pending, idle_ready, closed, to_close;
  uint64_t sent_total; /* cpu32 pacing */
  int rr;
  uint64_t win_msgs, win_bytes, total_msgs, lagged;
  hist_t hist, hist2;
  int close_timeouts, fail;
  uint64_t setup_ns;
  /* broadcast */
  uint64_t bc_next;
  int bc_outstanding;
  uint64_t bc_fanouts;
  uint64_t last_other; /* broadcast: last message without our token */
} G;

#define BC_RING 1024
static struct {
  uint64_t seq, t, maxlat;
  int remaining, used;
} bc[BC_RING];

/* fanout: per publisher, a ring of its messages not yet delivered to every
 * connection. A full ring holds the publisher back, which bounds what the
 * server queues when the load generator reads slower than it publishes. */
#define FO_RING 1024
typedef struct {
  uint64_t next_seq, sent, stalls;
  int remaining[FO_RING];
} fo_pub_t;
static fo_pub_t *fo;
static uint64_t fo_undelivered; /* deliveries still owed, all publishers */

static void print_result(const char *status);

static void fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "loadgen: FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  print_result(code == 1 ? "verify_fail" : "error");
  exit(code);
}

static double one_proc_cpu_seconds(int pid);

/* The server's CPU: the sum over --server-pid's processes. */
static double proc_cpu_seconds(int pid) {
  if (C.nserver_pids <= 1) return one_proc_cpu_seconds(pid);
  double sum = 0;
  for (int i = 0; i < C.nserver_pids; i++) sum += one_proc_cpu_seconds(C.server_pids[i]);
  return sum;
}

static double one_proc_cpu_seconds(int pid) {
  if (pid <= 0) return NAN;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return NAN;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return NAN;
  unsigned long long ut = 0, st = 0;
  /* fields 3..13 then utime (14) and stime (15); they cover all threads */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
             &ut, &st) != 2)
    return NAN;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_bytes(int pid) {
  if (pid <= 0) return -1;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/statm", pid);
  FILE *f = fopen(path, "r");
  long size = 0, res = -1;
  if (!f) return -1;
  if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
  fclose(f);
  return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

/* RssAnon: the heap and other private memory, without the code pages of
 * the server's binary and libraries that its first connections touch. */
static long proc_anon_bytes(int pid) {
  if (pid <= 0) return -1;
  char path[64], line[128];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  long kb = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "RssAnon: %ld kB", &kb) == 1) break;
  fclose(f);
  return kb < 0 ? -1 : kb * 1024;
}

static void mark_dirty(conn_t *c) {
  if (!c->dirty) {
    c->dirty = 1;
    dirty[ndirty++] = c;
  }
}

static void wreserve(conn_t *c, size_t extra) {
  if (c->woff && c->woff == c->wlen) c->woff = c->wlen = 0;
  if (c->wlen + extra <= c->wcap) return;
  if (c->woff) {
    memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
    c->wlen -= c->woff;
    c->woff = 0;
    if (c->wlen + extra <= c->wcap) return;
  }
  size_t cap = c->wcap ? c->wcap : 1024;
  while (cap < c->wlen + extra) cap *= 2;
  c->wbuf = xrealloc(c->wbuf, cap);
  c->wcap = cap;
}

static void wappend(conn_t *c, const void *p, size_t n) {
  wreserve(c, n);
  memcpy(c->wbuf + c->wlen, p, n);
  c->wlen += n;
  mark_dirty(c);
}

/* dst = src ^ mask, where pos is the payload offset of src[0]. */
static void mask_copy(uint8_t *dst, const uint8_t *src, size_t n,
                      const uint8_t m[4], size_t pos) {
  uint8_t mk[8];
  for (int i = 0; i < 8; i++) mk[i] = m[(pos + (size_t)i) & 3];
  uint64_t m64;
  memcpy(&m64, mk, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, src + i, 8);
    v ^= m64;
    memcpy(dst + i, &v, 8);
  }
  for (; i < n; i++) dst[i] = src[i] ^ mk[i & 7];
}

/* Queues one masked frame made of up to two segments; returns the mask. */
static uint32_t send_frame(conn_t *c, int opcode, int rsv1, const uint8_t *p1,
                           size_t n1, const uint8_t *p2, size_t n2) {
  size_t len = n1 + n2;
  uint8_t hdr[14];
  size_t h = 0;
  hdr[h++] = (uint8_t)(0x80 | (rsv1 ? 0x40 : 0) | opcode);
  if (len < 126) {
    hdr[h++] = (uint8_t)(0x80 | len);
  } else if (len < 65536) {
    hdr[h++] = 0x80 | 126;
    hdr[h++] = (uint8_t)(len >> 8), hdr[h++] = (uint8_t)len;
  } else {
    hdr[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
  }
  uint32_t mask = (uint32_t)rng();
  memcpy(hdr + h, &mask, 4);
  h += 4;
  wreserve(c, h + len);
  memcpy(c->wbuf + c->wlen, hdr, h);
  uint8_t *dst = c->wbuf + c->wlen + h;
  mask_copy(dst, p1, n1, hdr + h - 4, 0);
  mask_copy(dst + n1, p2, n2, hdr + h - 4, n1);
  c->wlen += h + len;
  mark_dirty(c);
  return mask;
}

static uint8_t *zscratch;
static size_t zscratch_cap;
static void zreserve(size_t n) {
  if (n > zscratch_cap) {
    zscratch = xrealloc(zscratch, n);
    zscratch_cap = n;
  }
}

static void q_push(conn_t *c, uint64_t seq, uint32_t mask, uint32_t len) {
  if (c->qcount == c->qcap) {
    unsigned cap = c->qcap ? c->qcap * 2 : 4;
    inflight_t *q = xrealloc(NULL, cap * sizeof *q);
    for (unsigned i = 0; i < c->qcount; i++) q[i] = c->q[(c->qhead + i) % c->qcap];
    free(c->q);
    c->q = q, c->qcap = cap, c->qhead = 0;
  }
  inflight_t *e = &c->q[(c->qhead + c->qcount++) % c->qcap];
  e->seq = seq, e->t = G.now, e->mask = mask, e->len = len;
}

/* Sends the connection's next verified message. */
static void send_next(conn_t *c) {
  msgspec_t m;
  uint64_t seq = c->next_seq++;
  make_msg(c->idx, seq, &m);
  int op = C.kind == K_BIN ? 2 : 1;
  uint32_t mask;
  if (c->deflate_on) {
    z_stream *z = c->zd;
    size_t bound = deflateBound(z, (uLong)(m.hlen + m.blen)) + 64;
    zreserve(bound);
    z->next_out = zscratch;
    z->avail_out = (uInt)bound;
    z->next_in = m.hdr;
    z->avail_in = (uInt)m.hlen;
    if (deflate(z, Z_NO_FLUSH) != Z_OK) fail(3, "deflate failed");
    z->next_in = (Bytef *)m.body;
    z->avail_in = (uInt)m.blen;
    if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_in)
      fail(3, "deflate failed");
    size_t out = bound - z->avail_out;
    if (out < 4 || memcmp(zscratch + out - 4, "\0\0\xff\xff", 4))
      fail(3, "deflate: no sync-flush tail");
    out -= 4;
    if (c->client_no_takeover) deflateReset(z);
    mask = send_frame(c, op, 1, zscratch, out, NULL, 0);
  } else {
    mask = send_frame(c, op, 0, m.hdr, m.hlen, m.body, m.blen);
  }
  q_push(c, seq, mask, (uint32_t)(m.hlen + m.blen));
  G.sent_total++;
}

static void send_close(conn_t *c) {
  static const uint8_t code[2] = {0x03, 0xe8};
  send_frame(c, 8, 0, code, 2, NULL, 0);
}

static void conn_release(conn_t *c) {
  if (c->fd >= 0) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  c->fd = -1;
  c->gen++;
  if (c->ssl) SSL_free(c->ssl);
  c->ssl = NULL;
  c->tls_up = 0;
  c->coff = c->clen = 0;
  c->rlen = c->woff = c->wlen = 0;
  c->qhead = c->qcount = 0;
  c->in_frag = 0;
  c->mlen = 0;
  if (c->zd) deflateEnd(c->zd), free(c->zd), c->zd = NULL;
  if (c->zi) inflateEnd(c->zi), free(c->zi), c->zi = NULL;
  c->deflate_on = 0;
}

static void conn_start(conn_t *c) {
  int fd = socket(C.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(3, "socket: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  c->state = S_CONNECTING;
  c->t_start = G.now;
  struct epoll_event ev;
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = (uint64_t)(unsigned)c->idx << 32 | c->gen;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    fail(3, "epoll_ctl: %s", strerror(errno));
  const struct sockaddr_storage *to = C.port2 && (c->idx & 1) ? &C.addr2 : &C.addr;
  if (connect(fd, (const struct sockaddr *)to, C.addrlen) < 0 &&
      errno != EINPROGRESS)
    fail(3, "connect %s:%d: %s", C.host, C.port, strerror(errno));
  if (C.tls) {
    c->ssl = SSL_new(tls_ctx);
    if (!c->ssl) fail(3, "SSL_new");
    SSL_set_bio(c->ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(c->ssl);
  }
  G.started++;
  G.pending++;
}

/* --tls: what OpenSSL wrote, to the socket. */
static void tls_send(conn_t *c) {
  BIO *w = SSL_get_wbio(c->ssl);
  size_t pending;
  while ((pending = BIO_ctrl_pending(w)) > 0) {
    if (c->clen + pending > c->ccap) {
      size_t cap = c->ccap ? c->ccap : 65536;
      while (cap < c->clen + pending) cap *= 2;
      c->cbuf = xrealloc(c->cbuf, cap);
      c->ccap = cap;
    }
    int n = BIO_read(w, c->cbuf + c->clen, (int)pending);
    if (n <= 0) break;
    c->clen += (size_t)n;
  }
  while (c->coff < c->clen) {
    ssize_t n = send(c->fd, c->cbuf + c->coff, c->clen - c->coff, MSG_NOSIGNAL);
    if (n > 0) {
      c->coff += (size_t)n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EINTR) continue;
    fail(1, "conn %d: write: %s", c->idx, strerror(errno));
  }
  c->coff = c->clen = 0;
}

static void on_open(conn_t *c);

static void on_connected(conn_t *c) {
  if (C.raw) {
    c->state = S_OPEN;
    on_open(c);
    return;
  }
  uint8_t rnd[16];
  for (int i = 0; i < 16; i += 8) {
    uint64_t r = rng();
    memcpy(rnd + i, &r, 8);
  }
  base64(rnd, 16, c->key);
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n%s\r\n",
                   C.path, C.host, C.port, c->key,
                   C.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                               "client_max_window_bits\r\n"
                             : "");
  wappend(c, req, (size_t)n);
  c->state = S_UPGRADING;
}

/* Finds header |name| in the response head; returns its value (trimmed). */
static int find_header(const char *head, const char *name, char *out,
                       size_t outsz) {
  size_t nl = strlen(name);
  const char *p = strstr(head, "\r\n");
  while (p && p[2] != '\r') {
    p += 2;
    const char *eol = strstr(p, "\r\n");
    if (!eol) break;
    if ((size_t)(eol - p) > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
      const char *v = p + nl + 1;
      while (*v == ' ' || *v == '\t') v++;
      size_t vl = (size_t)(eol - v);
      while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
      if (vl >= outsz) vl = outsz - 1;
      memcpy(out, v, vl);
      out[vl] = 0;
      return 1;
    }
    p = eol;
  }
  return 0;
}

/* Returns bytes consumed (0 = need more). */
static size_t parse_upgrade(conn_t *c) {
  uint8_t *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
  if (!end) {
    if (c->rlen > 16384) fail(3, "conn %d: response head too large", c->idx);
    return 0;
  }
  size_t hl = (size_t)(end - c->rbuf) + 4;
  char *head = xrealloc(NULL, hl + 1);
  memcpy(head, c->rbuf, hl);
  head[hl] = 0;
  if (strncmp(head, "HTTP/1.1 101", 12)) {
    char *eol = strstr(head, "\r\n");
    if (eol) *eol = 0;
    fail(3, "conn %d: upgrade refused: %s", c->idx, head);
  }
  char accept[128], want[64], ext[512];
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  sha1_ctx s;
  uint8_t dig[20];
  sha1_init(&s);
  sha1_update(&s, c->key, strlen(c->key));
  sha1_update(&s, guid, sizeof guid - 1);
  sha1_final(&s, dig);
  base64(dig, 20, want);
  if (!find_header(head, "Sec-WebSocket-Accept", accept, sizeof accept) ||
      strcmp(accept, want))
    fail(3, "conn %d: bad Sec-WebSocket-Accept", c->idx);
  if (C.deflate) {
    if (!find_header(head, "Sec-WebSocket-Extensions", ext, sizeof ext) ||
        !strstr(ext, "permessage-deflate"))
      fail(3, "conn %d: server did not accept permessage-deflate", c->idx);
    int bits = 15;
    char *cb = strstr(ext, "client_max_window_bits");
    if (cb && cb[22] == '=') bits = atoi(cb + 23 + (cb[23] == '"'));
    if (bits < 9) bits = 9; /* zlib's raw deflate cannot do 8 */
    c->client_no_takeover = strstr(ext, "client_no_context_takeover") != NULL;
    c->zd = xrealloc(NULL, sizeof(z_stream));
    c->zi = xrealloc(NULL, sizeof(z_stream));
    memset(c->zd, 0, sizeof(z_stream));
    memset(c->zi, 0, sizeof(z_stream));
    if (deflateInit2(c->zd, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -bits, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK ||
        inflateInit2(c->zi, -15) != Z_OK)
      fail(3, "zlib init failed");
    c->deflate_on = 1;
  } else if (find_header(head, "Sec-WebSocket-Extensions", ext, sizeof ext)) {
    fail(3, "conn %d: server agreed an extension not offered: %s", c->idx, ext);
  }
  free(head);
  c->state = S_OPEN;
  on_open(c);
  return hl;
}

static int pattern_echoes(void) {
  return C.pat->pattern != P_HANDSHAKES && C.pat->pattern != P_BROADCAST &&
         C.pat->pattern != P_FANOUT;
}

static void maybe_launch(void);
static void begin_close(void);

static int in_window(void) { return G.win_open; }

static void record(uint64_t lat, size_t bytes) {
  G.total_msgs++;
  if (in_window()) {
    G.win_msgs++;
    G.win_bytes += bytes;
    hist_add(&G.hist, lat);
  }
}

static void on_open(conn_t *c) {
  G.opened++;
  switch (C.pat->pattern) {
  case P_HANDSHAKES:
    send_close(c);
    c->state = S_CLOSING;
    return;
  case P_IDLE:
    send_next(c); /* the one message (or the hibernate text) */
    return;
  case P_BROADCAST:
  case P_FANOUT:
    G.pending--;
    maybe_launch();
    return;
  default:
    G.pending--;
    maybe_launch();
    if (G.phase == PH_RUN && C.pat->pattern != P_CPU32)
      for (int i = 0; i < C.inflight; i++) send_next(c);
  }
}

static void bc_send(void);

/* fanout message: "lgfo" pub(8 hex) seq(16 hex) send-time ns(16 hex), then
 * filler from the pool chosen by (pub, seq); text, since the echo
 * contract keeps the opcode and any subscriber may check UTF-8. */
#define FO_HDR 44
static void fo_make(int pub, uint64_t seq, uint64_t t, uint8_t *out) {
  char tmp[FO_HDR + 1];
  snprintf(tmp, sizeof tmp, "lgfo%08x%016" PRIx64 "%016" PRIx64, (unsigned)pub,
           seq, t);
  memcpy(out, tmp, FO_HDR);
  if (C.size > FO_HDR)
    memcpy(out + FO_HDR, ascii_pool + (seq * 131 + (uint64_t)pub * 7) % pool_extra,
           C.size - FO_HDR);
}

static void fo_pump(int pub) {
  conn_t *c = &conns[pub];
  fo_pub_t *f = &fo[pub];
  while (G.phase == PH_RUN && c->fo_inflight < (unsigned)C.inflight) {
    if (f->remaining[f->next_seq % FO_RING]) {
      f->stalls++;
      return;
    }
    uint8_t msg[65536];
    uint64_t seq = f->next_seq++;
    fo_make(pub, seq, G.now, msg);
    send_frame(c, 1, 0, msg, C.size, NULL, 0);
    f->remaining[seq % FO_RING] = nconns;
    f->sent++;
    fo_undelivered += (uint64_t)nconns;
    c->fo_inflight++;
  }
}

static uint64_t hex_field(const uint8_t *p, int n, int *ok) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) {
    int d = p[i] >= '0' && p[i] <= '9' ? p[i] - '0'
            : p[i] >= 'a' && p[i] <= 'f' ? p[i] - 'a' + 10 : -1;
    if (d < 0) *ok = 0;
    v = v << 4 | (uint64_t)(d < 0 ? 0 : d);
  }
  return v;
}

/* Every delivery is checked byte for byte and in per-publisher order. */
static void on_fanout_msg(conn_t *c, int op, const uint8_t *p, size_t n) {
  int ok = op == 1 && n == C.size && n >= FO_HDR && !memcmp(p, "lgfo", 4);
  uint64_t pub = ok ? hex_field(p + 4, 8, &ok) : 0;
  uint64_t seq = ok ? hex_field(p + 12, 16, &ok) : 0;
  uint64_t t = ok ? hex_field(p + 28, 16, &ok) : 0;
  if (!ok || pub >= (uint64_t)C.publishers)
    fail(1, "conn %d: not a fanout message (%zu bytes, opcode %d)", c->idx, n, op);
  if (seq != c->fseq[pub])
    fail(1, "conn %d: publisher %d seq %" PRIu64 ", expected %" PRIu64 " (%s)",
         c->idx, (int)pub, seq, c->fseq[pub],
         seq > c->fseq[pub] ? "lost" : "duplicate/reordered");
  uint8_t want[65536];
  fo_make((int)pub, seq, t, want);
  if (memcmp(p, want, n))
    fail(1, "conn %d: publisher %d seq %" PRIu64 ": payload differs", c->idx,
         (int)pub, seq);
  c->fseq[pub]++;
  record(G.now - t, n);
  fo_undelivered--;
  fo_pub_t *f = &fo[pub];
  int done = --f->remaining[seq % FO_RING] == 0;
  if ((uint64_t)c->idx == pub) conns[pub].fo_inflight--;
  if ((uint64_t)c->idx == pub || done) fo_pump((int)pub);
}

static void verify_echo(conn_t *c, int op, const uint8_t *p, size_t n) {
  if (!c->qcount)
    fail(1, "conn %d: unexpected message (%zu bytes, opcode %d), none in flight",
         c->idx, n, op);
  inflight_t *e = &c->q[c->qhead];
  int want_op = C.kind == K_BIN ? 2 : 1;
  if (op != want_op)
    fail(1, "conn %d seq %" PRIu64 ": opcode %d, expected %d", c->idx, e->seq,
         op, want_op);
  msgspec_t m;
  make_msg(c->idx, e->seq, &m);
  if (n != m.hlen + m.blen)
    fail(1, "conn %d seq %" PRIu64 ": echo has %zu bytes, expected %zu",
         c->idx, e->seq, n, m.hlen + m.blen);
  if (memcmp(p, m.hdr, m.hlen) || memcmp(p + m.hlen, m.body, m.blen)) {
    size_t off = 0;
    while (off < m.hlen && p[off] == m.hdr[off]) off++;
    if (off == m.hlen)
      while (off < n && p[off] == m.body[off - m.hlen]) off++;
    fail(1, "conn %d seq %" PRIu64 ": echo differs at byte %zu of %zu%s",
         c->idx, e->seq, off, n,
         off < m.hlen ? " (header: reordered or foreign message)" : "");
  }
  uint64_t lat = G.now - e->t;
  c->qhead = (c->qhead + 1) % c->qcap;
  c->qcount--;
  record(lat, n);
  if (C.pat->pattern == P_IDLE) {
    c->idle_done = 1;
    G.idle_ready++;
    G.pending--;
    /* The baseline is taken once the first connection is set up, so that
     * what any server pays once (code pages first touched, arenas, loop
     * buffers) is not counted per connection. */
    if (G.idle_ready == 1) {
      G.rss0 = proc_rss_bytes(C.server_pid);
      G.anon0 = proc_anon_bytes(C.server_pid);
    }
    maybe_launch();
    return;
  }
  if (G.phase == PH_RUN && C.pat->pattern != P_CPU32) send_next(c);
}

static void on_broadcast_msg(conn_t *c, int op, const uint8_t *p, size_t n) {
  (void)op;
  const uint8_t *t = memmem(p, n, "lgbc:", 5);
  if (!t) { /* not ours (join notices etc.) */
    G.last_other = G.now;
    return;
  }
  uint64_t seq = 0;
  const uint8_t *q = t + 5, *end = p + n;
  while (q < end && *q >= '0' && *q <= '9') seq = seq * 10 + (uint64_t)(*q++ - '0');
  if (q == t + 5 || q >= end || *q != ':')
    fail(1, "conn %d: malformed broadcast token", c->idx);
  if (c->idx == 0) return; /* the sender's own copy, if the server sends it */
  if (seq != c->bseq)
    fail(1, "conn %d: broadcast seq %" PRIu64 ", expected %" PRIu64 " (%s)",
         c->idx, seq, c->bseq, seq > c->bseq ? "lost" : "duplicate/reordered");
  c->bseq++;
  unsigned slot = (unsigned)(seq % BC_RING);
  if (!bc[slot].used || bc[slot].seq != seq)
    fail(1, "conn %d: broadcast seq %" PRIu64 " was not outstanding", c->idx, seq);
  uint64_t lat = G.now - bc[slot].t;
  if (lat > bc[slot].maxlat) bc[slot].maxlat = lat;
  record(lat, n);
  if (--bc[slot].remaining == 0) {
    bc[slot].used = 0;
    G.bc_outstanding--;
    if (in_window()) {
      hist_add(&G.hist2, bc[slot].maxlat);
      G.bc_fanouts++;
    }
    if (G.phase == PH_RUN) bc_send();
  }
}

static void bc_send(void) {
  conn_t *s = &conns[0];
  uint64_t seq = G.bc_next++;
  unsigned slot = (unsigned)(seq % BC_RING);
  if (bc[slot].used) fail(1, "broadcast ring overflow");
  char tok[64], msg[65536];
  int tl = snprintf(tok, sizeof tok, "lgbc:%" PRIu64 ":", seq);
  size_t pad = C.size > (size_t)tl ? C.size - (size_t)tl : 0;
  if (pad > 60000) pad = 60000;
  char body[65536];
  memcpy(body, tok, (size_t)tl);
  memset(body + tl, 'x', pad);
  body[tl + pad] = 0;
  int n = snprintf(msg, sizeof msg, C.bcast_wrap, body);
  if (n < 0 || (size_t)n >= sizeof msg) fail(2, "--bcast-wrap too long");
  send_frame(s, 1, 0, (const uint8_t *)msg, (size_t)n, NULL, 0);
  bc[slot].seq = seq, bc[slot].t = G.now, bc[slot].maxlat = 0;
  bc[slot].remaining = nconns - 1, bc[slot].used = 1;
  G.bc_outstanding++;
}

static void inflate_msg(conn_t *c, const uint8_t *p, size_t n, uint8_t **out,
                        size_t *outn) {
  static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
  z_stream *z = c->zi;
  size_t have = 0;
  if (zscratch_cap < 4 * n + 4096) zreserve(4 * n + 4096);
  for (int part = 0; part < 2; part++) {
    z->next_in = (Bytef *)(part ? tail : p);
    z->avail_in = (uInt)(part ? 4 : n);
    while (z->avail_in) {
      if (zscratch_cap - have < 4096) zreserve(zscratch_cap * 2);
      z->next_out = zscratch + have;
      z->avail_out = (uInt)(zscratch_cap - have);
      int rc = inflate(z, Z_SYNC_FLUSH);
      have = zscratch_cap - z->avail_out;
      if (rc == Z_STREAM_END) { /* a final block: the next message starts anew */
        inflateReset(z);
        continue;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR)
        fail(1, "conn %d: inflate error %d", c->idx, rc);
      if (have > MAX_FRAME) fail(1, "conn %d: inflated message too large", c->idx);
      if (rc == Z_BUF_ERROR && z->avail_out) break;
    }
  }
  *out = zscratch;
  *outn = have;
}

static void deliver(conn_t *c, int op, int rsv1, const uint8_t *p, size_t n) {
  if (rsv1) {
    uint8_t *q;
    size_t qn;
    inflate_msg(c, p, n, &q, &qn);
    p = q, n = qn;
  }
  if (C.pat->pattern == P_BROADCAST) on_broadcast_msg(c, op, p, n);
  else if (C.pat->pattern == P_FANOUT) on_fanout_msg(c, op, p, n);
  else if (pattern_echoes()) verify_echo(c, op, p, n);
  else fail(1, "conn %d: unexpected data message", c->idx);
}

static void conn_finished(conn_t *c);

/* Handles one complete frame; returns 0 if the connection went away. */
static int on_frame(conn_t *c, int fin, int rsv, int op, int masked,
                    uint32_t mask, uint8_t *p, size_t n) {
  if (C.raw) {
    /* Raw TCP: the bytes must be exactly the frame we sent. */
    if (!c->qcount)
      fail(1, "conn %d: unexpected bytes echoed (none in flight)", c->idx);
    inflight_t *e = &c->q[c->qhead];
    int want_op = C.kind == K_BIN ? 2 : 1;
    if (!fin || rsv || op != want_op || !masked || mask != e->mask || n != e->len)
      fail(1, "conn %d seq %" PRIu64 ": echoed frame header differs", c->idx,
           e->seq);
    uint8_t m[4];
    memcpy(m, &mask, 4);
    mask_copy(p, p, n, m, 0);
    verify_echo(c, op, p, n);
    return 1;
  }
  if (masked) fail(1, "conn %d: server sent a masked frame", c->idx);
  if (op >= 8) {
    if (!fin || n > 125) fail(1, "conn %d: bad control frame", c->idx);
    if (rsv) fail(1, "conn %d: RSV bits on a control frame", c->idx);
    if (op == 9) {
      send_frame(c, 10, 0, p, n, NULL, 0);
    } else if (op == 8) {
      if (c->state == S_CLOSING) {
        if (n >= 2 && ((p[0] << 8) | p[1]) != 1000)
          fprintf(stderr, "loadgen: conn %d: close answered with code %d\n",
                  c->idx, (p[0] << 8) | p[1]);
        c->state = S_WAIT_EOF;
      } else {
        fail(1, "conn %d: server closed the connection (code %d%s%.*s)",
             c->idx, n >= 2 ? (p[0] << 8) | p[1] : 1005, n > 2 ? ": " : "",
             n > 2 ? (int)(n - 2) : 0, (const char *)p + 2);
      }
    } else if (op != 10) {
      fail(1, "conn %d: unknown control opcode %d", c->idx, op);
    }
    return 1;
  }
  if ((rsv & 3) || ((rsv & 4) && (!c->deflate_on || op == 0)))
    fail(1, "conn %d: unexpected RSV bits 0x%x", c->idx, rsv);
  if (c->state != S_OPEN && c->state != S_CLOSING)
    fail(1, "conn %d: data frame in state %d", c->idx, c->state);
  if (op == 0) {
    if (!c->in_frag) fail(1, "conn %d: continuation without a start", c->idx);
    if (c->mlen + n > MAX_FRAME) fail(1, "conn %d: message too large", c->idx);
    if (c->mlen + n > c->mcap) {
      c->mcap = (c->mlen + n) * 2;
      c->mbuf = xrealloc(c->mbuf, c->mcap);
    }
    memcpy(c->mbuf + c->mlen, p, n);
    c->mlen += n;
    if (fin) {
      c->in_frag = 0;
      deliver(c, c->mop, c->mrsv1, c->mbuf, c->mlen);
    }
    return 1;
  }
  if (op != 1 && op != 2) fail(1, "conn %d: unknown opcode %d", c->idx, op);
  if (c->in_frag) fail(1, "conn %d: new message inside a fragmented one", c->idx);
  if (fin) {
    deliver(c, op, rsv & 4, p, n);
  } else {
    c->in_frag = 1, c->mop = op, c->mrsv1 = rsv & 4;
    if (n > c->mcap) c->mcap = n * 2, c->mbuf = xrealloc(c->mbuf, c->mcap);
    memcpy(c->mbuf, p, n);
    c->mlen = n;
  }
  return 1;
}

static void parse_frames(conn_t *c) {
  size_t pos = 0;
  if (c->state == S_UPGRADING) {
    pos = parse_upgrade(c);
    if (!pos) return;
  }
  for (;;) {
    size_t avail = c->rlen - pos;
    if (avail < 2) break;
    uint8_t *b = c->rbuf + pos;
    int fin = b[0] >> 7, rsv = (b[0] >> 4) & 7, op = b[0] & 15;
    int masked = b[1] >> 7;
    uint64_t len = b[1] & 127;
    size_t h = 2;
    if (len == 126) h = 4;
    else if (len == 127) h = 10;
    if (masked) h += 4;
    if (avail < h) break;
    if (len == 126) {
      len = (uint64_t)b[2] << 8 | b[3];
    } else if (len == 127) {
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | b[2 + i];
    }
    if (len > MAX_FRAME) fail(1, "conn %d: frame of %" PRIu64 " bytes", c->idx, len);
    if (avail < h + len) {
      if (c->rcap < h + len) { /* make room for the whole frame */
        memmove(c->rbuf, b, avail);
        c->rlen = avail;
        pos = 0;
        c->rcap = h + len;
        c->rbuf = xrealloc(c->rbuf, c->rcap);
      }
      break;
    }
    uint32_t mask = 0;
    if (masked) memcpy(&mask, b + h - 4, 4);
    uint32_t gen = c->gen;
    on_frame(c, fin, rsv, op, masked, mask, b + h, (size_t)len);
    if (c->gen != gen) return;
    pos += h + (size_t)len;
  }
  if (pos) {
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
  }
}

static void conn_finished(conn_t *c) {
  int was_cycle = C.pat->pattern == P_HANDSHAKES && G.phase <= PH_DRAIN;
  uint64_t lat = G.now - c->t_start;
  conn_release(c);
  c->state = S_DONE;
  G.closed++;
  if (was_cycle) {
    G.pending--;
    record(lat, 0);
    if (G.phase == PH_RUN) conn_start(c);
  }
}

static void on_eof(conn_t *c) {
  if (c->state == S_WAIT_EOF || c->state == S_CLOSING) {
    if (c->state == S_CLOSING && !C.raw && C.pat->pattern == P_HANDSHAKES)
      fail(1, "conn %d: TCP closed before the close frame", c->idx);
    conn_finished(c);
    return;
  }
  fail(1, "conn %d: server closed TCP unexpectedly (state %d, %u in flight)",
       c->idx, c->state, c->qcount);
}

/* Reads until EAGAIN, or until a short read (the socket is drained then;
 * with edge-triggered epoll any later data raises a new event) unless the
 * event also reported the peer's FIN. */
static void on_connected(conn_t *c);

/* --tls: ciphertext from the socket into the session, plaintext into rbuf
 * for the frame parser. */
static void tls_read(conn_t *c) {
  uint8_t raw[65536];
  int eof = 0;
  for (;;) {
    ssize_t n = read(c->fd, raw, sizeof raw);
    if (n > 0) {
      BIO_write(SSL_get_rbio(c->ssl), raw, (int)n);
      continue;
    }
    if (n == 0) {
      eof = 1;
      break;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno == EINTR) continue;
    fail(1, "conn %d: read: %s", c->idx, strerror(errno));
  }
  if (!c->tls_up) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      tls_send(c);
      if (e != SSL_ERROR_WANT_READ)
        fail(3, "conn %d: TLS handshake: %s", c->idx,
             ERR_reason_error_string(ERR_peek_last_error()));
      if (eof) on_eof(c);
      return;
    }
    c->tls_up = 1;
    on_connected(c); /* the upgrade request */
    mark_dirty(c);
  }
  for (;;) {
    if (c->rcap - c->rlen < 16384) {
      size_t cap = c->rcap ? c->rcap * 2 : 32768;
      c->rbuf = xrealloc(c->rbuf, cap);
      c->rcap = cap;
    }
    size_t got = 0;
    int r = SSL_read_ex(c->ssl, c->rbuf + c->rlen, c->rcap - c->rlen, &got);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      ERR_clear_error();
      if (e == SSL_ERROR_WANT_READ) break;
      if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify ends it, as FIN */
        eof = 1;
        break;
      }
      fail(1, "conn %d: TLS error %d", c->idx, e);
    }
    G.now = now_ns();
    c->rlen += got;
    uint32_t gen = c->gen;
    parse_frames(c);
    if (c->gen != gen) return;
  }
  tls_send(c); /* key updates, alerts */
  if (eof) on_eof(c);
}

static void handle_read(conn_t *c, int to_eagain) {
  if (C.tls) {
    (void)to_eagain;
    tls_read(c);
    return;
  }
  for (;;) {
    if (c->rcap - c->rlen < 4096) {
      size_t cap = c->rcap ? c->rcap * 2 : 8192;
      c->rbuf = xrealloc(c->rbuf, cap);
      c->rcap = cap;
    }
    size_t room = c->rcap - c->rlen;
    ssize_t n = read(c->fd, c->rbuf + c->rlen, room);
    if (n > 0) {
      G.now = now_ns();
      c->rlen += (size_t)n;
      uint32_t gen = c->gen;
      parse_frames(c);
      if (c->gen != gen || ((size_t)n < room && !to_eagain)) return;
      continue;
    }
    if (n == 0) {
      on_eof(c);
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    if (errno == EINTR) continue;
    fail(1, "conn %d: read: %s", c->idx, strerror(errno));
  }
}

static void handle_write(conn_t *c) {
  if (C.tls) {
    /* The plaintext of this round as one SSL_write, like the servers'. */
    if (c->tls_up && c->woff < c->wlen) {
      size_t done = 0;
      if (SSL_write_ex(c->ssl, c->wbuf + c->woff, c->wlen - c->woff, &done) != 1)
        fail(1, "conn %d: SSL_write failed", c->idx);
      c->woff = c->wlen = 0;
    }
    tls_send(c);
    return;
  }
  while (c->woff < c->wlen) {
    ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
    if (n > 0) {
      c->woff += (size_t)n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EINTR) continue;
    fail(1, "conn %d: write: %s", c->idx, strerror(errno));
  }
  c->woff = c->wlen = 0;
}

static void flush_dirty(void) {
  for (int i = 0; i < ndirty; i++) {
    conn_t *c = dirty[i];
    c->dirty = 0;
    if (c->fd >= 0 && c->state != S_CONNECTING) handle_write(c);
  }
  ndirty = 0;
}

static void handle_event(conn_t *c, uint32_t ev) {
  if (c->state == S_CONNECTING) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) fail(3, "connect %s:%d: %s", C.host, C.port, strerror(err));
    if (!(ev & (EPOLLOUT | EPOLLIN))) return;
    if (C.tls) {
      c->state = S_UPGRADING;
      SSL_do_handshake(c->ssl); /* the ClientHello */
      tls_send(c);
      return;
    }
    on_connected(c); /* the request goes out in flush_dirty() */
  }
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    uint32_t gen = c->gen;
    handle_read(c, ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
    if (c->gen != gen || c->fd < 0) return;
  }
  if ((ev & EPOLLOUT) && (c->woff < c->wlen || c->coff < c->clen)) handle_write(c);
}

/* Opens connections up to the total, at most MAX_PENDING being set up. */
static void maybe_launch(void) {
  /* idle: the first connection alone until the baseline (verify_echo). */
  if (C.pat->pattern == P_IDLE && G.idle_ready == 0 && G.started > 0) return;
  while (G.started < nconns && G.pending < MAX_PENDING)
    conn_start(&conns[G.started]);
}

static int all_drained(void) {
  if (C.pat->pattern == P_BROADCAST) return G.bc_outstanding == 0;
  if (C.pat->pattern == P_FANOUT) return fo_undelivered == 0;
  if (C.pat->pattern == P_HANDSHAKES) return G.pending == 0;
  for (int i = 0; i < nconns; i++)
    if (conns[i].qcount) return 0;
  return 1;
}

static void begin_close(void) {
  G.phase = PH_CLOSE;
  G.phase_deadline = G.now + 10000000000ull;
  G.to_close = 0;
  G.closed = 0;
  for (int i = 0; i < nconns; i++) {
    conn_t *c = &conns[i];
    if (c->fd < 0) continue;
    G.to_close++;
    if (C.raw) {
      shutdown(c->fd, SHUT_WR);
      c->state = S_WAIT_EOF;
    } else {
      send_close(c);
      c->state = S_CLOSING;
    }
  }
}

static void start_run(void) {
  G.phase = PH_RUN;
  G.t_begin = G.now;
  G.setup_ns = G.now - G.t_start;
  switch (C.pat->pattern) {
  case P_HANDSHAKES:
    for (int i = 0; i < nconns; i++) conn_start(&conns[i]);
    break;
  case P_BROADCAST:
    for (int i = 0; i < C.inflight; i++) bc_send();
    break;
  case P_FANOUT:
    for (int i = 0; i < C.publishers; i++) fo_pump(i);
    break;
  case P_CPU32:
    break;
  default:
    for (int i = 0; i < nconns; i++)
      for (int k = 0; k < C.inflight; k++) send_next(&conns[i]);
  }
}

static void pace(void) {
  double due = C.rate * (double)(G.now - G.t_begin) / 1e9;
  int tried = 0;
  while ((double)G.sent_total < due) {
    conn_t *c = &conns[G.rr];
    G.rr = (G.rr + 1) % nconns;
    if (c->qcount < (unsigned)C.inflight) {
      send_next(c);
      tried = 0;
    } else if (++tried >= nconns) {
      break; /* every connection at its cap: the server is behind */
    }
  }
  if (tried >= nconns) G.lagged++;
}

static void tick(void) {
  switch (G.phase) {
  case PH_SETUP:
    if (C.pat->pattern == P_HANDSHAKES) {
      start_run();
    } else if (C.pat->pattern == P_IDLE) {
      if (G.idle_ready == nconns) {
        G.setup_ns = G.now - G.t_start;
        G.phase = PH_SETTLE;
        G.phase_deadline = G.now + 500000000ull;
      }
    } else if (G.opened == nconns) {
      if (C.pat->pattern == P_BROADCAST) {
        G.phase = PH_SETTLE;
        G.phase_deadline = G.now + 300000000ull;
      } else {
        start_run();
      }
    }
    if (G.phase == PH_SETUP && G.now > G.phase_deadline)
      fail(3, "setup timed out: %d of %d connections ready", 
           C.pat->pattern == P_IDLE ? G.idle_ready : G.opened, nconns);
    break;
  case PH_SETTLE:
    if (G.now < G.phase_deadline) break;
    /* broadcast: also wait for the room's join notices to stop */
    if (C.pat->pattern == P_BROADCAST && G.now < G.last_other + 300000000ull) {
      if (G.now - G.t_start > (uint64_t)(60 + nconns / 100) * 1000000000ull)
        fail(3, "setup timed out: the server keeps sending other messages");
      break;
    }
    if (C.pat->pattern == P_IDLE) {
      G.rss1 = proc_rss_bytes(C.server_pid);
      G.anon1 = proc_anon_bytes(C.server_pid);
      G.cpu1 = proc_cpu_seconds(C.server_pid);
      begin_close();
    } else {
      start_run();
    }
    break;
  case PH_RUN:
    if (!G.win_open && !G.win_end && G.now >= G.t_begin + (uint64_t)(C.warmup * 1e9)) {
      G.win_open = 1;
      G.win_start = G.now;
      G.cpu0 = proc_cpu_seconds(C.server_pid);
    }
    if (G.win_open && G.now >= G.win_start + (uint64_t)(C.seconds * 1e9)) {
      G.win_open = 0;
      G.win_end = G.now;
      G.cpu1 = proc_cpu_seconds(C.server_pid);
      G.phase = PH_DRAIN;
      G.phase_deadline = G.now + 15000000000ull;
      break;
    }
    if (C.pat->pattern == P_CPU32) pace();
    break;
  case PH_DRAIN:
    if (all_drained()) {
      if (C.pat->pattern == P_FANOUT)
        for (int i = 0; i < nconns; i++)
          for (int k = 0; k < C.publishers; k++)
            if (conns[i].fseq[k] != fo[k].next_seq)
              fail(1, "conn %d: %" PRIu64 " of %" PRIu64 " messages of publisher %d",
                   i, conns[i].fseq[k], fo[k].next_seq, k);
      if (C.pat->pattern == P_HANDSHAKES) G.phase = PH_DONE;
      else begin_close();
    } else if (G.now > G.phase_deadline) {
      uint64_t missing = 0;
      int conns_missing = 0;
      if (C.pat->pattern == P_BROADCAST) {
        for (int i = 0; i < BC_RING; i++)
          if (bc[i].used) missing += (uint64_t)bc[i].remaining, conns_missing++;
        fail(1, "lost: %" PRIu64 " deliveries of %d messages never arrived",
             missing, conns_missing);
      }
      if (C.pat->pattern == P_FANOUT)
        fail(1, "lost: %" PRIu64 " fanout deliveries never arrived (waited 15 s)",
             fo_undelivered);
      if (C.pat->pattern == P_HANDSHAKES)
        fail(1, "stalled: %d handshake cycles did not finish", G.pending);
      for (int i = 0; i < nconns; i++)
        if (conns[i].qcount) missing += conns[i].qcount, conns_missing++;
      fail(1, "lost: %" PRIu64 " messages on %d connections never echoed "
           "(waited 15 s)", missing, conns_missing);
    }
    break;
  case PH_CLOSE:
    if (G.closed >= G.to_close) {
      G.phase = PH_DONE;
    } else if (G.now > G.phase_deadline) {
      G.close_timeouts = G.to_close - G.closed;
      fprintf(stderr, "loadgen: warning: %d connections did not finish the "
              "close handshake in 10 s\n", G.close_timeouts);
      for (int i = 0; i < nconns; i++)
        if (conns[i].fd >= 0) conn_release(&conns[i]);
      G.phase = PH_DONE;
    }
    break;
  }
}

/* ------------------------------------------------------------------ */
/* Report                                                              */

static void fmt(char *buf, size_t n, double v, int prec) {
  if (isnan(v) || isinf(v)) snprintf(buf, n, "-");
  else snprintf(buf, n, "%.*f", prec, v);
}

static void print_result(const char *status) {
  double win = G.win_end > G.win_start ? (double)(G.win_end - G.win_start) / 1e9
                                      : NAN;
  int idle = C.pat->pattern == P_IDLE;
  double msgs = (double)G.win_msgs;
  double cpu = G.cpu1 - G.cpu0;
  double mps = NAN, mbps = NAN, per_cpu = NAN, us_per = NAN, bpc = NAN,
         abpc = NAN;
  if (idle) {
    double setup = (double)G.setup_ns / 1e9;
    if (setup > 0) mps = (double)G.total_msgs / setup;
    /* over the connections opened after the baseline */
    if (G.rss0 >= 0 && G.rss1 >= 0 && nconns > 1)
      bpc = (double)(G.rss1 - G.rss0) / (nconns - 1);
    if (G.anon0 >= 0 && G.anon1 >= 0 && nconns > 1)
      abpc = (double)(G.anon1 - G.anon0) / (nconns - 1);
    msgs = (double)G.total_msgs;
    win = setup;
    if (G.rss1 == 0 && G.rss0 == 0) bpc = abpc = NAN;
  } else if (win > 0) {
    mps = msgs / win;
    if (C.pat->pattern != P_HANDSHAKES) mbps = (double)G.win_bytes / win / 1e6;
  }
  if (cpu > 0 && msgs > 0) per_cpu = msgs / cpu, us_per = cpu * 1e6 / msgs;
  double p50 = hist_pct(&G.hist, 50), p99 = hist_pct(&G.hist, 99);
  char s_mps[32], s_mb[32], s_p50[32], s_p99[32], s_cpu[32], s_pc[32], s_us[32],
      s_bpc[32], s_abpc[32], s_win[32], s_f50[32], s_f99[32];
  fmt(s_mps, 32, mps, 1);
  fmt(s_mb, 32, mbps, 3);
  fmt(s_p50, 32, p50, 1);
  fmt(s_p99, 32, p99, 1);
  fmt(s_cpu, 32, C.server_pid > 0 ? cpu : NAN, 3);
  fmt(s_pc, 32, per_cpu, 1);
  fmt(s_us, 32, us_per, 3);
  fmt(s_bpc, 32, bpc, 0);
  fmt(s_abpc, 32, abpc, 0);
  fmt(s_win, 32, win, 3);
  fmt(s_f50, 32, hist_pct(&G.hist2, 50), 1);
  fmt(s_f99, 32, hist_pct(&G.hist2, 99), 1);
  const char *mode = C.raw ? "raw" : "ws";
  if (C.json) {
#define J(s) (strcmp(s, "-") ? s : "null")
    printf("{\"pattern\":\"%s\",\"mode\":\"%s\",\"status\":\"%s\",\"conns\":%d,"
           "\"inflight\":%d,\"size\":%zu,\"window_s\":%s,\"msgs\":%.0f,"
           "\"msgs_per_s\":%s,\"mb_per_s\":%s,\"p50_us\":%s,\"p99_us\":%s,"
           "\"server_cpu_s\":%s,\"msgs_per_cpu_s\":%s,\"cpu_us_per_msg\":%s,"
           "\"bytes_per_conn\":%s,\"fanout_p50_us\":%s,\"fanout_p99_us\":%s,"
           "\"close_timeouts\":%d,\"anon_bytes_per_conn\":%s}\n",
           C.pat->name, mode, status, nconns, C.inflight, C.size, J(s_win), msgs,
           J(s_mps), J(s_mb), J(s_p50), J(s_p99), J(s_cpu), J(s_pc), J(s_us),
           J(s_bpc), J(s_f50), J(s_f99), G.close_timeouts, J(s_abpc));
#undef J
  } else {
    if (!strcmp(status, "ok")) {
      printf("pattern %s (%s): %d conns, %d in flight, %zu-byte messages%s\n",
             C.pat->name, mode, nconns, C.inflight, C.size,
             C.kind == K_JSON ? " (JSON 1-4 KiB, permessage-deflate)" : "");
      if (idle) {
        printf("  set up %d connections in %s s; server RSS after the first "
               "%ld -> %ld bytes: %s bytes per further connection (%s of "
               "them anonymous)\n",
               nconns, s_win, G.rss0, G.rss1, s_bpc, s_abpc);
      } else {
        printf("  window %s s: %.0f %s, %s/s, %s MB/s payload\n", s_win, msgs,
               C.pat->pattern == P_HANDSHAKES ? "handshakes"
               : C.pat->pattern == P_BROADCAST || C.pat->pattern == P_FANOUT
                   ? "deliveries" : "messages",
               s_mps, s_mb);
        printf("  latency p50 %s us, p99 %s us\n", s_p50, s_p99);
        if (C.pat->pattern == P_FANOUT) {
          uint64_t sent = 0, stalls = 0;
          for (int k = 0; k < C.publishers; k++) sent += fo[k].sent, stalls += fo[k].stalls;
          printf("  %d publishers at depth %d: %" PRIu64 " messages published, "
                 "every delivery verified%s\n", C.publishers, C.inflight, sent,
                 stalls ? " (publishers waited on a full ring)" : "");
        }
        if (C.pat->pattern == P_BROADCAST)
          printf("  fan-out (last receiver) p50 %s us, p99 %s us; %" PRIu64
                 " messages fully delivered\n", s_f50, s_f99, G.bc_fanouts);
      }
      printf("  server CPU %s s: %s per CPU-second, %s us CPU per message\n",
             s_cpu, s_pc, s_us);
      if (C.server_pid > 0 && cpu == 0 && msgs > 1000)
        printf("  warning: server CPU time did not move: is %d the server's "
               "pid (not a shell or taskset wrapper)?\n", C.server_pid);
      if (C.pat->pattern == P_CPU32 && G.lagged)
        printf("  note: pacing fell behind %" PRIu64 " times (server slower "
               "than %.0f msgs/s)\n", G.lagged, C.rate);
      if (G.close_timeouts)
        printf("  warning: %d close handshakes timed out\n", G.close_timeouts);
    }
    printf("RESULT pattern=%s mode=%s status=%s conns=%d inflight=%d size=%zu "
           "window_s=%s msgs=%.0f msgs_per_s=%s mb_per_s=%s p50_us=%s "
           "p99_us=%s server_cpu_s=%s msgs_per_cpu_s=%s cpu_us_per_msg=%s "
           "bytes_per_conn=%s fanout_p50_us=%s fanout_p99_us=%s "
           "close_timeouts=%d anon_bytes_per_conn=%s\n",
           C.pat->name, mode, status, nconns, C.inflight, C.size, s_win, msgs,
           s_mps, s_mb, s_p50, s_p99, s_cpu, s_pc, s_us, s_bpc, s_f50, s_f99,
           G.close_timeouts, s_abpc);
  }
  fflush(stdout);
}

/* ------------------------------------------------------------------ */

static void usage(void) {
  fprintf(stderr,
"usage: loadgen --pattern P [options]\n"
"patterns (defaults: conns, in flight, size):\n"
"  small1        32 B text, 100 conns, 1 in flight\n"
"  small16       32 B text, 100 conns, 16 in flight (pipelined)\n"
"  k16           16 KiB binary, 10 conns, 4 in flight\n"
"  m1            1 MiB binary, 4 conns, 1 in flight\n"
"  cpu32         32 B text paced at --rate 20000 msgs/s over 100 conns\n"
"                (at most --inflight 16 outstanding per conn)\n"
"  cpu16k        16 KiB binary paced at 5000 msgs/s over 10 conns (4 in flight)\n"
"  cpu1m         1 MiB binary paced at 100 msgs/s over 4 conns (1 in flight)\n"
"  handshakes    connect, upgrade, close handshake, repeat; --conns 50 at once\n"
"  idle          open --conns 10000, exchange one message each, report the\n"
"                server's RSS growth per connection after the first\n"
"                (needs --server-pid)\n"
"  json-deflate  1-4 KiB JSON text with permessage-deflate, 10 conns, 4 in flight\n"
"  broadcast     --conns 1000 members of a room at --path (default\n"
"                /ws?room=lgbench<pid>); conn 0 sends, the server must\n"
"                deliver every message to every other member\n"
"  fanout        --conns 1000 connections to a broadcasting echo (lariat-echo\n"
"                --publish T); the first --publishers 1 of them send 64 B text\n"
"                with --inflight 1 of their own copies outstanding; every\n"
"                connection must get every message, in order per publisher;\n"
"                latency is publish to each delivery (send time in the payload)\n"
"options:\n"
"  --host H            127.0.0.1 (loopback only: 127.0.0.0/8, ::1, localhost)\n"
"  --port N            8080\n"
"  --seconds S         measured window, default 5\n"
"  --warmup W          seconds before the window, default 1\n"
"  --server-pid PID    server CPU (utime+stime, all threads) and RSS from /proc;\n"
"                      PID,PID,... sums the CPU of several processes\n"
"  --port2 N           odd-numbered connections go to port N (a second server\n"
"                      process of a fleet, e.g. lariat-echo --redis)\n"
"  --conns N --inflight N --size BYTES --rate MSGS_PER_S   override the pattern\n"
"  --path P            request path, default /\n"
"  --raw               no WebSocket: send the frame bytes, expect them back\n"
"  --hibernate-msg T   idle: the one message each connection exchanges is T\n"
"  --bcast-wrap F      broadcast: message text is F with %%s replaced by the token\n"
"  --publishers N      fanout: how many of the connections publish (default 1)\n"
"  --json              print one JSON object instead of the report\n");
  exit(2);
}

static int parse_host(const char *host) {
  struct sockaddr_in *a4 = (struct sockaddr_in *)&C.addr;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&C.addr;
  memset(&C.addr, 0, sizeof C.addr);
  if (!strcmp(host, "localhost")) host = "127.0.0.1";
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127) return -1;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)C.port);
    C.addrlen = sizeof *a4;
    return 0;
  }
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) return -1;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)C.port);
    C.addrlen = sizeof *a6;
    return 0;
  }
  return -1;
}

int main(int argc, char **argv) {
  const char *pattern = NULL;
  long conns_arg = -1, inflight = -1, size = -1;
  double rate = -1;
  C.host = "127.0.0.1";
  C.port = 8080;
  C.seconds = 5;
  C.warmup = 1;
  C.path = NULL;
  C.bcast_wrap = "%s";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && ++i)
    if (ARG("--pattern")) pattern = v;
    else if (ARG("--host")) C.host = v;
    else if (ARG("--port")) C.port = atoi(v);
    else if (ARG("--seconds")) C.seconds = atof(v);
    else if (ARG("--warmup")) C.warmup = atof(v);
    else if (ARG("--server-pid")) {
      for (const char *q = v; *q && C.nserver_pids < 8; q = strchr(q, ',') ? strchr(q, ',') + 1 : "")
        C.server_pids[C.nserver_pids++] = atoi(q);
      C.server_pid = C.server_pids[0];
    }
    else if (ARG("--port2")) C.port2 = atoi(v);
    else if (ARG("--conns")) conns_arg = atol(v);
    else if (ARG("--inflight")) inflight = atol(v);
    else if (ARG("--size")) size = atol(v);
    else if (ARG("--rate")) rate = atof(v);
    else if (ARG("--path")) C.path = v;
    else if (ARG("--hibernate-msg")) C.hib_msg = v;
    else if (ARG("--bcast-wrap")) C.bcast_wrap = v;
    else if (ARG("--publishers")) C.publishers = atoi(v);
    else if (!strcmp(a, "--raw")) C.raw = 1;
    else if (!strcmp(a, "--tls")) C.tls = 1;
    else if (!strcmp(a, "--json")) C.json = 1;
    else usage();
#undef ARG
  }
  if (!pattern) usage();
  for (size_t i = 0; i < sizeof kPatterns / sizeof kPatterns[0]; i++)
    if (!strcmp(pattern, kPatterns[i].name)) C.pat = &kPatterns[i];
  if (!C.pat) {
    fprintf(stderr, "loadgen: unknown pattern %s\n", pattern);
    usage();
  }
  if (C.tls) {
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx) fail(2, "SSL_CTX_new");
    SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
  }
  nconns = conns_arg > 0 ? (int)conns_arg : C.pat->conns;
  C.inflight = inflight > 0 ? (int)inflight : C.pat->inflight;
  C.size = size >= 0 ? (size_t)size : C.pat->size;
  C.rate = rate > 0 ? rate : C.pat->rate;
  C.kind = C.pat->kind;
  C.deflate = C.pat->deflate;
  if (C.pat->pattern == P_IDLE && C.hib_msg) C.kind = K_HIB;
  if (C.hib_msg && C.pat->pattern != P_IDLE) {
    fprintf(stderr, "loadgen: --hibernate-msg is for the idle pattern\n");
    return 2;
  }
  if (C.kind == K_JSON) C.size = 0;
  if (C.kind == K_HIB) C.size = strlen(C.hib_msg);
  if (C.size > MAX_FRAME || C.inflight > MAX_INFLIGHT || nconns > 1000000 ||
      C.seconds <= 0 || C.warmup < 0 || C.port <= 0 || C.port > 65535) {
    fprintf(stderr, "loadgen: bad numbers\n");
    return 2;
  }
  if (C.raw && (C.deflate || C.pat->pattern == P_HANDSHAKES ||
                C.pat->pattern == P_BROADCAST || C.pat->pattern == P_FANOUT ||
                C.hib_msg)) {
    fprintf(stderr, "loadgen: --raw cannot do pattern %s%s\n", C.pat->name,
            C.hib_msg ? " with --hibernate-msg" : "");
    return 2;
  }
  if (C.pat->pattern == P_BROADCAST) {
    if (nconns < 2) {
      fprintf(stderr, "loadgen: broadcast needs --conns >= 2\n");
      return 2;
    }
    if (C.inflight > BC_RING / 2) C.inflight = BC_RING / 2;
    const char *pc = strstr(C.bcast_wrap, "%s");
    if (!pc || strchr(C.bcast_wrap, '%') != pc || strchr(pc + 1, '%')) {
      fprintf(stderr, "loadgen: --bcast-wrap needs exactly one %%s\n");
      return 2;
    }
    if (!C.path) {
      static char path[64];
      snprintf(path, sizeof path, "/ws?room=lgbench%d", (int)getpid());
      C.path = path;
    }
  }
  if (C.pat->pattern == P_FANOUT) {
    if (C.publishers <= 0) C.publishers = 1;
    if (C.publishers > nconns || C.size < FO_HDR || C.size > 65536 ||
        C.inflight > FO_RING) {
      fprintf(stderr, "loadgen: fanout needs --publishers <= --conns, "
              "%d <= --size <= 65536, --inflight <= %d\n", FO_HDR, FO_RING);
      return 2;
    }
  } else if (C.publishers) {
    fprintf(stderr, "loadgen: --publishers is for the fanout pattern\n");
    return 2;
  }
  if (!C.path) C.path = "/";
  if (parse_host(C.host) < 0) {
    fprintf(stderr, "loadgen: %s is not a loopback address\n", C.host);
    return 2;
  }
  if (C.port2) {  /* the same host, the other port */
    C.addr2 = C.addr;
    if (C.addr.ss_family == AF_INET6)
      ((struct sockaddr_in6 *)&C.addr2)->sin6_port = htons((uint16_t)C.port2);
    else
      ((struct sockaddr_in *)&C.addr2)->sin_port = htons((uint16_t)C.port2);
  }

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconns + 16) {
    fprintf(stderr, "loadgen: RLIMIT_NOFILE %llu is too low for %d connections\n",
            (unsigned long long)rl.rlim_cur, nconns);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state ||
      !rng_state)
    rng_state = now_ns() | 1;
  make_pools();

  epfd = epoll_create1(EPOLL_CLOEXEC);
  conns = calloc((size_t)nconns, sizeof *conns);
  dirty = calloc((size_t)nconns, sizeof *dirty);
  if (!conns || !dirty || epfd < 0) return 3;
  for (int i = 0; i < nconns; i++) conns[i].fd = -1, conns[i].idx = i;
  if (C.pat->pattern == P_FANOUT) {
    fo = calloc((size_t)C.publishers, sizeof *fo);
    for (int i = 0; i < nconns; i++)
      conns[i].fseq = calloc((size_t)C.publishers, sizeof(uint64_t));
  }

  G.now = G.t_start = now_ns();
  G.phase = PH_SETUP;
  G.phase_deadline = G.now + (uint64_t)(30 + nconns / 500) * 1000000000ull;
  if (C.pat->pattern == P_IDLE) {
    G.rss0 = G.anon0 = -1; /* taken after the first connection */
    G.cpu0 = proc_cpu_seconds(C.server_pid);
  }
  if (C.pat->pattern != P_HANDSHAKES) maybe_launch();

  struct epoll_event evs[512];
  while (G.phase != PH_DONE) {
    int timeout = G.phase == PH_RUN ? 1 : 5;
    int n = epoll_wait(epfd, evs, 512, timeout);
    if (n < 0 && errno != EINTR) fail(3, "epoll_wait: %s", strerror(errno));
    G.now = now_ns();
    for (int i = 0; i < n; i++) {
      unsigned idx = (unsigned)(evs[i].data.u64 >> 32);
      uint32_t gen = (uint32_t)evs[i].data.u64;
      conn_t *c = &conns[idx];
      if (c->gen != gen || c->fd < 0) continue; /* stale */
      handle_event(c, evs[i].events);
      /* fanout: a publisher's next message leaves now, not after the other
       * 511 events, so its send time (in the payload) is when it was sent */
      if (C.pat->pattern == P_FANOUT) flush_dirty();
    }
    flush_dirty();
    tick();
    flush_dirty();
  }
  print_result("ok");
  return 0;
}
