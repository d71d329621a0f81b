/*
 * soak_server: the server half of the load/soak/shutdown test (issue #6),
 * a small program on lariat's public API only.
 *
 *   soak_server [--host 127.0.0.1] [--port 0] [--close-timeout MS]
 *               [--handshake-timeout MS] [--slots N] [--report FILE]
 *               [--max-seconds S] [--shutdown-margin MS]
 *               [--heap-slack BYTES] [--heap-slack-per-conn BYTES]
 *               [--hibernate 0|1] [--ping-ms MS]
 *
 * Prints "PORT n" once it listens. Every route ("*") is an echo handler
 * that, per connection, checks init/terminate happen exactly once, that
 * terminate's reason is the one the connection's role (soak.h) calls for,
 * that the tagged messages arrive in order, and that every message handled
 * is echoed. The control connection's "stop", SIGTERM or SIGINT call
 * lariat_server_stop(). It samples connection count, heap in use and RSS
 * every 50 ms, and after the loop has ended checks that the heap is back
 * near its baseline (before the first connection) and, after
 * lariat_server_del(), back at what it was before lariat_server_new().
 *
 * Heap in use: mallinfo2().uordblks + hblkhd (glibc; mmapped blocks are
 * counted in hblkhd, not uordblks); under AddressSanitizer
 * __sanitizer_get_current_allocated_bytes(), as ASan replaces malloc.
 *
 * Output: a human-readable report, then one last line
 *   SOAK_SERVER_RESULT ok=0|1 key=value...
 * Exit status 0 when every invariant held, 1 otherwise, 2 usage, 3 hang
 * (the shutdown watchdog fired), 4 setup failure.
 *
 * --report FILE writes one line per slot of the persistent roles (echo,
 * idle, deaf, noread, race): "slot role received replied kind" (run.sh matches
 * it against the client's own count of echoes).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <lariat/lariat.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "soak.h"

#if defined(__SANITIZE_ADDRESS__)
#define SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOAK_ASAN 1
#endif
#endif
#ifdef SOAK_ASAN
/* From the sanitizer runtime (sanitizer/allocator_interface.h, which GCC
 * does not install). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#define MAGIC_LIVE 0x51a7c0deu
#define MAGIC_DEAD 0xdeadbeefu
#define NKINDS 11
#define MAX_FAIL_LOG 40

/* ------------------------------------------------------------------ */
/* Options and counters                                                */

static struct {
  const char *host;
  int port;
  uint64_t close_timeout_ms;
  uint64_t handshake_timeout_ms;
  uint32_t slots;
  const char *report;
  uint64_t max_seconds;
  uint64_t shutdown_margin_ms;
  int64_t heap_slack;          /* allowed growth after the run, fixed part */
  int64_t heap_slack_per_conn; /* ... and per connection at peak */
  int hibernate; /* websocket_handle returns LARIAT_HIBERNATE */
  uint64_t ping_ms; /* keepalive interval (not for noread), 0: off */
} opt = {"127.0.0.1", 0, 5000, 10000, 65536, NULL, 900, 2000,
         512 * 1024, 256, 0, 0};

/* Per connection: handed to every callback as the state pointer. */
typedef struct cstate {
  /* A freed block's first 16 bytes hold malloc's free-list links; keep
   * the magic past them so a second terminate still sees MAGIC_DEAD. */
  uint64_t pad[3];
  uint32_t magic;
  int role;
  uint32_t slot, gen;
  uint64_t serial;
  int upgraded;
  lariat_conn_id id;
  uint32_t next_seq;
  uint64_t received, replied;
} cstate;

static struct {
  uint64_t inits, inits_ws, inits_plain, terminates;
  uint64_t ws_inits, ws_open, ws_open_peak, ws_open_at_stop;
  uint64_t by_kind[NKINDS + 1];
  uint64_t by_role_kind[SOAK_NROLES][NKINDS + 1];
  uint64_t socket_errors[8]; /* ECONNRESET, EPIPE, ETIMEDOUT, other */
  uint64_t received, echoed, echo_bytes, pings, pongs;
  uint64_t term_after_stop;
  uint64_t ws_term_after_stop_max_ms[SOAK_NROLES];
  uint64_t ws_term_after_stop_min_ms[SOAK_NROLES];
  uint64_t failures;
} c;

static lariat_server *server;
static uv_loop_t *loop;
static uv_timer_t sampler;
static uv_signal_t sig_term, sig_int;
static uint64_t t_start_ns, t_stop_ns;
static const char *stop_cause = "none";
static int stopping;
static size_t conns_peak, conns_at_stop;
static uint8_t *seen;     /* per serial: 1 init, 2 terminated */
static uint64_t seen_cap; /* serials past it are not tracked */
static uint8_t *slot_role;
static uint64_t *slot_received, *slot_replied;
static uint8_t *slot_kind;
static uint8_t *slot_have;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
  if (c.failures++ < MAX_FAIL_LOG) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "soak_server: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
  }
}

static uint64_t ms_since(uint64_t t_ns) {
  return (uv_hrtime() - t_ns) / 1000000u;
}

/* ------------------------------------------------------------------ */
/* Memory                                                              */

static uint64_t heap_in_use(void) {
#ifdef SOAK_ASAN
  return (uint64_t)__sanitizer_get_current_allocated_bytes();
#else
  struct mallinfo2 mi = mallinfo2();
  return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#endif
}

static uint64_t heap_uordblks(void) {
#ifdef SOAK_ASAN
  return (uint64_t)__sanitizer_get_current_allocated_bytes();
#else
  return (uint64_t)mallinfo2().uordblks;
#endif
}

static uint64_t rss_kb(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (!f) return 0;
  if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
  fclose(f);
  return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE) / 1024u;
}

static uint64_t heap_peak, rss_peak;
static uint64_t heap_idle, heap_idle_conns; /* at the last "stats" */
static uint64_t last_tick_ns, stall_max_ms, stall_stop_max_ms, stop_call_ms;

static void sample(void) {
  size_t n = lariat_server_connection_count(server);
  if (n > conns_peak) conns_peak = n;
  uint64_t h = heap_in_use(), r = rss_kb();
  if (h > heap_peak) heap_peak = h;
  if (r > rss_peak) rss_peak = r;
}

/* ------------------------------------------------------------------ */
/* Stopping                                                            */

static void do_stop(const char *cause) {
  if (stopping) return;
  stopping = 1;
  stop_cause = cause;
  t_stop_ns = uv_hrtime();
  conns_at_stop = lariat_server_connection_count(server);
  c.ws_open_at_stop = c.ws_open;
  sample();
  int rc = lariat_server_stop(server);
  stop_call_ms = ms_since(t_stop_ns);
  if (rc != 0) fail("lariat_server_stop: %s", lariat_err_name(rc));
  fprintf(stdout, "stop (%s): %zu connections open, %" PRIu64 " WebSocket\n",
          cause, conns_at_stop, c.ws_open_at_stop);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  do_stop(signum == SIGTERM ? "sigterm" : "sigint");
}

static void on_sample(uv_timer_t *t) {
  (void)t;
  /* The timer runs every 50 ms: a longer gap is the loop stalling. */
  uint64_t now_ns = uv_hrtime();
  if (last_tick_ns) {
    uint64_t gap = (now_ns - last_tick_ns) / 1000000u;
    if (gap > stall_max_ms) stall_max_ms = gap;
    if (stopping && gap > stall_stop_max_ms) stall_stop_max_ms = gap;
  }
  last_tick_ns = now_ns;
  sample();
  if (!stopping && ms_since(t_start_ns) > opt.max_seconds * 1000u) {
    fail("no stop after %" PRIu64 " s: stopping by itself", opt.max_seconds);
    do_stop("max-seconds");
  }
  if (stopping) {
    /* The loop should end within the close timeout; far past it, it hangs:
     * say what is left and give up. */
    uint64_t waited = ms_since(t_stop_ns);
    if (waited > opt.close_timeout_ms + 30000u) {
      fprintf(stderr,
              "soak_server: HANG: %" PRIu64 " ms after stop, %zu connections "
              "still open (%" PRIu64 " WebSocket not terminated)\n",
              waited, lariat_server_connection_count(server), c.ws_open);
      printf("SOAK_SERVER_RESULT ok=0 hang=1 open=%zu ws_open=%" PRIu64 "\n",
             lariat_server_connection_count(server), c.ws_open);
      fflush(stdout);
      _exit(3);
    }
  }
}

/* ------------------------------------------------------------------ */
/* The handler                                                         */

/* Finds |key|=value in the query |q| (|n| bytes); 0 when absent. */
static const char *query_get(const char *q, size_t n, const char *key,
                             size_t *len) {
  size_t klen = strlen(key);
  size_t i = 0;
  while (i < n) {
    size_t end = i;
    while (end < n && q[end] != '&') ++end;
    if (end - i > klen && memcmp(q + i, key, klen) == 0 && q[i + klen] == '=') {
      *len = end - i - klen - 1;
      return q + i + klen + 1;
    }
    i = end + 1;
  }
  return NULL;
}

static uint32_t parse_u32(const char *s, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n && s[i] >= '0' && s[i] <= '9'; ++i)
    v = v * 10 + (uint32_t)(s[i] - '0');
  return v;
}

static int h_init(lariat_req *req, lariat_upgrade *up, void *data) {
  (void)data;
  cstate *st = calloc(1, sizeof *st);
  if (!st) {
    fail("out of memory in init");
    return LARIAT_CRASH; /* terminate still runs: with the route's data */
  }
  st->magic = MAGIC_LIVE;
  st->serial = ++c.inits;
  if (st->serial < seen_cap) seen[st->serial] = 1;
  size_t plen = 0, qlen = 0;
  const char *path = lariat_req_path(req, &plen);
  const char *q = lariat_req_query(req, &qlen);
  st->role = -1;
  if (plen == 8 && memcmp(path, "/control", 8) == 0) {
    st->role = SOAK_CTL;
  } else {
    size_t n = 0;
    const char *v = query_get(q, qlen, "r", &n);
    if (v) st->role = soak_role_from_name(v, n);
    if ((v = query_get(q, qlen, "s", &n))) st->slot = parse_u32(v, n);
    if ((v = query_get(q, qlen, "g", &n))) st->gen = parse_u32(v, n);
  }
  if (st->role < 0) fail("init: request without a known role");
  if (lariat_req_is_websocket(req)) {
    ++c.inits_ws;
    if (st->role == SOAK_PLAIN) fail("init: role plain sent an upgrade");
  } else {
    ++c.inits_plain;
    if (st->role != SOAK_PLAIN)
      fail("init: role %s (slot %u) is not a WebSocket upgrade",
           st->role >= 0 ? soak_role_names[st->role] : "?", st->slot);
  }
  lariat_upgrade_set_state(up, st);
  /* Keepalive on every connection that answers pings (noread never reads:
   * it would rightly be timed out). */
  if (opt.ping_ms && st->role != SOAK_NOREAD) {
    int rc = lariat_upgrade_set_ping_interval(up, opt.ping_ms, 5000);
    if (rc != 0) fail("set_ping_interval: %s", lariat_err_name(rc));
  }
  return LARIAT_OK; /* a plain request is then answered 426 */
}

static cstate *checked(lariat_conn *conn, void *state, const char *where) {
  cstate *st = state;
  if (!st || st->magic != MAGIC_LIVE) {
    fail("%s: state %p is not a live connection's (magic %#x)", where, state,
         st ? st->magic : 0);
    return NULL;
  }
  if (conn && lariat_conn_get_data(conn) != state)
    fail("%s: lariat_conn_get_data() != state", where);
  if (conn && st->upgraded && lariat_conn_get_id(conn) != st->id)
    fail("%s: connection id changed", where);
  return st;
}

static int h_ws_init(lariat_conn *conn, void *state) {
  cstate *st = checked(conn, state, "websocket_init");
  if (!st) return LARIAT_CRASH;
  if (st->upgraded) fail("websocket_init twice");
  st->upgraded = 1;
  st->id = lariat_conn_get_id(conn);
  ++c.ws_inits;
  if (++c.ws_open > c.ws_open_peak) c.ws_open_peak = c.ws_open;
  if (stopping) fail("websocket_init after stop");
  return LARIAT_OK;
}

static void control_command(lariat_conn *conn, const lariat_frame *f) {
  char buf[160];
  if (f->len == 4 && memcmp(f->data, "stop", 4) == 0) {
    do_stop("control");
    return;
  }
  if (f->len == 5 && memcmp(f->data, "stats", 5) == 0) {
    /* The client asks while every connection is idle (before the stop):
     * what the connections hold at rest. */
    heap_idle = heap_in_use();
    heap_idle_conns = lariat_server_connection_count(server);
    int n = snprintf(buf, sizeof buf, "open=%zu ws=%" PRIu64,
                     lariat_server_connection_count(server), c.ws_open);
    lariat_frame r = {LARIAT_OP_TEXT, 0, 0, (const uint8_t *)buf, (size_t)n};
    int rc = lariat_reply(conn, &r);
    if (rc != 0) fail("control reply: %s", lariat_err_name(rc));
    return;
  }
  fail("unknown control command (%zu bytes)", f->len);
}

static int h_handle(lariat_conn *conn, const lariat_frame *f, void *state) {
  cstate *st = checked(conn, state, "websocket_handle");
  if (!st) return LARIAT_CRASH;
  if (f->opcode == LARIAT_OP_PING) {
    ++c.pings;
    return LARIAT_OK; /* lariat answered it */
  }
  if (f->opcode == LARIAT_OP_PONG) {
    ++c.pongs;
    return LARIAT_OK;
  }
  if (f->opcode != LARIAT_OP_TEXT && f->opcode != LARIAT_OP_BINARY) {
    fail("websocket_handle: opcode %u", f->opcode);
    return LARIAT_OK;
  }
  if (stopping)
    fail("websocket_handle: a %s message on slot %u (role %s) after "
         "lariat_server_stop()",
         f->opcode == LARIAT_OP_TEXT ? "text" : "binary", st->slot,
         soak_role_names[st->role]);
  if (st->role == SOAK_CTL) {
    control_command(conn, f);
    return LARIAT_OK;
  }
  ++st->received;
  ++c.received;
  uint32_t seq;
  if (soak_get_tag(f->data, f->len, &seq) != 0) {
    fail("slot %u (role %s): message of %zu bytes without a tag", st->slot,
         soak_role_names[st->role], f->len);
  } else if (seq != st->next_seq) {
    fail("slot %u (role %s): message %u arrived when %u was due", st->slot,
         soak_role_names[st->role], seq, st->next_seq);
    st->next_seq = seq + 1;
  } else {
    ++st->next_seq;
  }
  lariat_frame echo = {f->opcode, 0, 0, f->data, f->len};
  int rc = lariat_reply(conn, &echo);
  if (rc != 0) {
    fail("slot %u (role %s): lariat_reply: %s", st->slot,
         soak_role_names[st->role], lariat_err_name(rc));
  } else {
    ++st->replied;
    ++c.echoed;
    c.echo_bytes += f->len;
  }
  return opt.hibernate ? LARIAT_HIBERNATE : LARIAT_OK;
}

/* Whether |r| is how a connection of |role| must end. */
static int reason_ok(const cstate *st, const lariat_reason *r) {
  switch (st->role) {
    case SOAK_ECHO:
    case SOAK_IDLE:
    case SOAK_CTL:
    case SOAK_DEAF:
    case SOAK_NOREAD:
      return r->kind == LARIAT_REASON_SHUTDOWN;
    case SOAK_RST:
      return r->kind == LARIAT_REASON_ERROR_SOCKET ||
             r->kind == LARIAT_REASON_ERROR_CLOSED;
    case SOAK_FIN:
    case SOAK_HALF:
      /* A client that closes with unread bytes in its receive buffer (an
       * echo or keepalive ping that just arrived) makes its kernel send
       * RST instead of FIN: ECONNRESET is the same ending, seen earlier. */
      return r->kind == LARIAT_REASON_ERROR_CLOSED ||
             (r->kind == LARIAT_REASON_ERROR_SOCKET &&
              r->socket_error == UV_ECONNRESET);
    case SOAK_JUNK:
      return r->kind == LARIAT_REASON_ERROR_BADFRAME;
    case SOAK_UTF8:
      return r->kind == LARIAT_REASON_ERROR_BADENCODING;
    case SOAK_BIG:
      return r->kind == LARIAT_REASON_ERROR_TOO_BIG;
    case SOAK_BYE:
      return r->kind == LARIAT_REASON_REMOTE && r->code == 1000 &&
             r->len == 3 && memcmp(r->data, "bye", 3) == 0;
    case SOAK_RACE:
      return r->kind == LARIAT_REASON_SHUTDOWN ||
             (r->kind == LARIAT_REASON_REMOTE && r->code == 1000 &&
              r->len == 3 && memcmp(r->data, "bye", 3) == 0);
    case SOAK_PLAIN:
      return r->kind == LARIAT_REASON_NORMAL;
    default:
      return 0;
  }
}

static void h_terminate(lariat_conn *conn, const lariat_reason *r,
                        void *state) {
  cstate *st = state;
  ++c.terminates;
  if (!st || st->magic != MAGIC_LIVE) {
    fail("terminate: state %p is not a live connection's (magic %#x): "
         "terminate twice?",
         state, st ? st->magic : 0);
    return;
  }
  st->magic = MAGIC_DEAD;
  if (st->serial < seen_cap) {
    if (seen[st->serial] != 1)
      fail("terminate: serial %" PRIu64 " seen state %d", st->serial,
           seen[st->serial]);
    seen[st->serial] = 2;
  }
  int kind = r->kind >= 0 && r->kind < NKINDS ? r->kind : NKINDS;
  ++c.by_kind[kind];
  const char *rname = st->role >= 0 ? soak_role_names[st->role] : "?";
  if (st->role >= 0) ++c.by_role_kind[st->role][kind];
  if (kind == LARIAT_REASON_ERROR_SOCKET) {
    int e = r->socket_error;
    ++c.socket_errors[e == UV_ECONNRESET ? 0
                      : e == UV_EPIPE    ? 1
                      : e == UV_ETIMEDOUT ? 2
                                          : 3];
  }
  if (st->upgraded) {
    if (!conn)
      fail("terminate: slot %u (role %s) was upgraded but conn is NULL",
           st->slot, rname);
    else if (lariat_conn_get_id(conn) != st->id)
      fail("terminate: slot %u: connection id changed", st->slot);
    --c.ws_open;
  } else if (conn) {
    fail("terminate: slot %u (role %s) never upgraded but conn is not NULL",
         st->slot, rname);
  }
  if (!reason_ok(st, r))
    fail("terminate: slot %u gen %u (role %s, %s): reason %s code %u "
         "socket_error %s",
         st->slot, st->gen, rname, st->upgraded ? "upgraded" : "not upgraded",
         lariat_reason_name(r->kind), r->code,
         r->socket_error ? lariat_err_name(r->socket_error) : "0");
  if (st->received != st->replied)
    fail("terminate: slot %u (role %s): %" PRIu64 " messages handled, %" PRIu64
         " echoed",
         st->slot, rname, st->received, st->replied);
  if (stopping && st->upgraded && st->role >= 0) {
    ++c.term_after_stop;
    uint64_t ms = ms_since(t_stop_ns);
    if (ms > c.ws_term_after_stop_max_ms[st->role])
      c.ws_term_after_stop_max_ms[st->role] = ms;
    if (ms < c.ws_term_after_stop_min_ms[st->role])
      c.ws_term_after_stop_min_ms[st->role] = ms;
  }
  if ((st->role == SOAK_ECHO || st->role == SOAK_IDLE ||
       st->role == SOAK_DEAF || st->role == SOAK_NOREAD ||
       st->role == SOAK_RACE) &&
      st->slot < opt.slots) {
    if (slot_have[st->slot])
      fail("terminate: slot %u (role %s) ended twice", st->slot, rname);
    slot_have[st->slot] = 1;
    slot_role[st->slot] = (uint8_t)st->role;
    slot_received[st->slot] = st->received;
    slot_replied[st->slot] = st->replied;
    slot_kind[st->slot] = (uint8_t)kind;
  }
  free(st);
}

/* ------------------------------------------------------------------ */
/* Main                                                                */

static void usage(void) {
  fprintf(stderr,
          "usage: soak_server [--host 127.0.0.1|::1] [--port N] "
          "[--close-timeout MS]\n"
          "         [--handshake-timeout MS] [--slots N] [--report FILE]\n"
          "         [--max-seconds S] [--shutdown-margin MS]\n"
          "         [--heap-slack BYTES] [--heap-slack-per-conn BYTES]\n"
          "         [--hibernate 0|1] [--ping-ms MS]\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc % 2 == 0) usage(); /* options all take a value */
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i];
    const char *v = argv[i + 1];
    if (!strcmp(a, "--host"))
      opt.host = v;
    else if (!strcmp(a, "--port"))
      opt.port = atoi(v);
    else if (!strcmp(a, "--close-timeout"))
      opt.close_timeout_ms = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--handshake-timeout"))
      opt.handshake_timeout_ms = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--slots"))
      opt.slots = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--report"))
      opt.report = v;
    else if (!strcmp(a, "--max-seconds"))
      opt.max_seconds = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--shutdown-margin"))
      opt.shutdown_margin_ms = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--heap-slack"))
      opt.heap_slack = strtoll(v, NULL, 10);
    else if (!strcmp(a, "--heap-slack-per-conn"))
      opt.heap_slack_per_conn = strtoll(v, NULL, 10);
    else if (!strcmp(a, "--hibernate"))
      opt.hibernate = atoi(v);
    else if (!strcmp(a, "--ping-ms"))
      opt.ping_ms = strtoull(v, NULL, 10);
    else
      usage();
  }
  if (strcmp(opt.host, "127.0.0.1") != 0 && strcmp(opt.host, "::1") != 0) {
    fprintf(stderr, "soak_server: loopback only (127.0.0.1 or ::1)\n");
    return 2;
  }

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);

  /* Everything the test itself keeps is allocated before the baselines. */
  seen_cap = 1u << 22;
  seen = calloc(seen_cap, 1);
  slot_role = calloc(opt.slots, 1);
  slot_kind = calloc(opt.slots, 1);
  slot_have = calloc(opt.slots, 1);
  slot_received = calloc(opt.slots, sizeof *slot_received);
  slot_replied = calloc(opt.slots, sizeof *slot_replied);
  if (!seen || !slot_role || !slot_kind || !slot_have || !slot_received ||
      !slot_replied) {
    fprintf(stderr, "soak_server: out of memory\n");
    return 4;
  }
  for (int i = 0; i < SOAK_NROLES; ++i)
    c.ws_term_after_stop_min_ms[i] = UINT64_MAX;
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("soak_server: lariat %s, fd limit %llu%s\n",
         lariat_version(0)->version_str, (unsigned long long)rl.rlim_cur,
#ifdef SOAK_ASAN
         ", AddressSanitizer (heap = ASan's allocated bytes)"
#else
         ""
#endif
  );

  malloc_trim(0);
  uint64_t heap_pre = heap_in_use(), rss_pre = rss_kb();

  lariat_options *o = NULL;
  int rc = lariat_options_new(&o);
  if (rc == 0) rc = lariat_options_set_close_timeout(o, opt.close_timeout_ms);
  if (rc == 0)
    rc = lariat_options_set_handshake_timeout(o, opt.handshake_timeout_ms);
  if (rc == 0) rc = lariat_server_new(&server, NULL, o);
  lariat_options_del(o);
  lariat_handler h;
  memset(&h, 0, sizeof h);
  h.size = sizeof h;
  h.init = h_init;
  h.websocket_init = h_ws_init;
  h.websocket_handle = h_handle;
  h.terminate = h_terminate;
  if (rc == 0) rc = lariat_server_route(server, "*", &h, NULL);
  if (rc == 0) rc = lariat_server_listen(server, opt.host, opt.port);
  if (rc != 0) {
    fprintf(stderr, "soak_server: setup: %s\n", lariat_strerror(rc));
    return 4;
  }
  loop = lariat_server_loop(server);
  /* Unreferenced: they never keep the loop alive, so lariat_server_run()
   * returns once lariat's own handles are gone. */
  uv_timer_init(loop, &sampler);
  uv_timer_start(&sampler, on_sample, 50, 50);
  uv_unref((uv_handle_t *)&sampler);
  uv_signal_init(loop, &sig_term);
  uv_signal_start(&sig_term, on_signal, SIGTERM);
  uv_unref((uv_handle_t *)&sig_term);
  uv_signal_init(loop, &sig_int);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  uv_unref((uv_handle_t *)&sig_int);

  uint64_t heap_base = heap_in_use(), rss_base = rss_kb();
  heap_peak = heap_base;
  rss_peak = rss_base;
  t_start_ns = uv_hrtime();
  printf("PORT %d\n", lariat_server_port(server));
  fflush(stdout);

  lariat_server_run(server);
  uint64_t t_end_ns = uv_hrtime();
  uint64_t shutdown_ms = stopping ? (t_end_ns - t_stop_ns) / 1000000u : 0;
  size_t conns_end = lariat_server_connection_count(server);

  /* All connections ended; the server object still exists. */
  malloc_trim(0);
  uint64_t heap_end = heap_in_use(), rss_end = rss_kb();
  uint64_t heap_end_uord = heap_uordblks();

  uv_close((uv_handle_t *)&sampler, NULL);
  uv_close((uv_handle_t *)&sig_term, NULL);
  uv_close((uv_handle_t *)&sig_int, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  lariat_server_del(server);
  malloc_trim(0);
  uint64_t heap_del = heap_in_use(), rss_del = rss_kb();

  /* ---------------------------------------------------------- checks */
  if (!stopping) fail("the loop ended without a stop");
  if (conns_end != 0) fail("%zu connections left after the loop", conns_end);
  if (c.inits != c.terminates)
    fail("%" PRIu64 " inits but %" PRIu64 " terminates", c.inits,
         c.terminates);
  if (c.ws_open != 0)
    fail("%" PRIu64 " WebSocket connections never terminated", c.ws_open);
  uint64_t missing = 0;
  for (uint64_t i = 1; i <= c.inits && i < seen_cap; ++i)
    if (seen[i] != 2) ++missing;
  if (missing) fail("%" PRIu64 " connections without a terminate", missing);
  if (c.term_after_stop != c.ws_open_at_stop)
    fail("%" PRIu64 " WebSocket connections were open at stop but %" PRIu64
         " terminated after it",
         c.ws_open_at_stop, c.term_after_stop);
  if (shutdown_ms > opt.close_timeout_ms + opt.shutdown_margin_ms)
    fail("shutdown took %" PRIu64 " ms, over the close timeout %" PRIu64
         " + %" PRIu64 " ms",
         shutdown_ms, opt.close_timeout_ms, opt.shutdown_margin_ms);
  /* Deaf peers never answer: lariat must wait the close timeout for them,
   * no less (a 100 ms tolerance for the timer heap's granularity). */
  if (c.by_role_kind[SOAK_DEAF][LARIAT_REASON_SHUTDOWN] &&
      c.ws_term_after_stop_min_ms[SOAK_DEAF] + 100 < opt.close_timeout_ms)
    fail("a deaf connection ended %" PRIu64 " ms after stop, before the "
         "close timeout (%" PRIu64 " ms)",
         c.ws_term_after_stop_min_ms[SOAK_DEAF], opt.close_timeout_ms);
  /* glibc's tcache keeps up to 7 freed chunks per size class, and
   * mallinfo2 counts them as in use: exact only with it off (run.sh sets
   * GLIBC_TUNABLES=glibc.malloc.tcache_count=0), otherwise allow for it. */
  const char *tun = getenv("GLIBC_TUNABLES");
  int exact = tun && strstr(tun, "glibc.malloc.tcache_count=0") != NULL;
#ifdef SOAK_ASAN
  exact = 1;
#endif
  /* What lariat keeps once every connection has gone is the capacity of
   * its containers (connection map buckets, timer heap, up to 64 spare
   * frame contexts): measured ~128 B per connection at the peak, the same
   * however long the run and however many connections came and went. */
  int64_t grown = (int64_t)heap_end - (int64_t)heap_base;
  int64_t allowed = opt.heap_slack + opt.heap_slack_per_conn * (int64_t)conns_peak;
  if (!exact) allowed += 512 * 1024;
  if (grown > allowed)
    fail("heap after every connection ended is %" PRId64 " bytes over its "
         "baseline (allowed %" PRId64 ")",
         grown, allowed);
  int64_t left = (int64_t)heap_del - (int64_t)heap_pre;
  if (left > (exact ? 16 * 1024 : 512 * 1024))
    fail("heap after lariat_server_del() is %" PRId64 " bytes over what it "
         "was before lariat_server_new()",
         left);

  /* ---------------------------------------------------------- report */
  if (opt.report) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", opt.report);
    FILE *f = fopen(tmp, "w");
    if (!f) {
      fail("cannot write %s: %s", tmp, strerror(errno));
    } else {
      for (uint32_t s = 0; s < opt.slots; ++s)
        if (slot_have[s])
          fprintf(f, "%u %s %" PRIu64 " %" PRIu64 " %s\n", s,
                  soak_role_names[slot_role[s]], slot_received[s],
                  slot_replied[s], lariat_reason_name(slot_kind[s]));
      if (fclose(f) != 0 || rename(tmp, opt.report) != 0)
        fail("cannot write %s", opt.report);
    }
  }

  printf("terminates by role and reason (after %s stop):\n", stop_cause);
  for (int r = 0; r < SOAK_NROLES; ++r) {
    int any = 0;
    for (int k = 0; k <= NKINDS; ++k)
      if (c.by_role_kind[r][k]) {
        if (!any) printf("  %-8s", soak_role_names[r]);
        any = 1;
        printf(" %s=%" PRIu64, k < NKINDS ? lariat_reason_name(k) : "?",
               c.by_role_kind[r][k]);
      }
    if (any) {
      if (c.ws_term_after_stop_max_ms[r])
        printf("  (after stop: %" PRIu64 "..%" PRIu64 " ms)",
               c.ws_term_after_stop_min_ms[r], c.ws_term_after_stop_max_ms[r]);
      printf("\n");
    }
  }
  printf("socket errors: ECONNRESET=%" PRIu64 " EPIPE=%" PRIu64
         " ETIMEDOUT=%" PRIu64 " other=%" PRIu64 "\n",
         c.socket_errors[0], c.socket_errors[1], c.socket_errors[2],
         c.socket_errors[3]);
  printf("heap: before server %" PRIu64 " B, baseline %" PRIu64 " B, peak %" PRIu64
         " B, after all connections ended %" PRIu64 " B (uordblks %" PRIu64
         "), after lariat_server_del %" PRIu64 " B\n",
         heap_pre, heap_base, heap_peak, heap_end, heap_end_uord, heap_del);
  if (heap_idle_conns)
    printf("heap at rest before the stop: %" PRIu64 " B with %" PRIu64
           " connections open (%" PRIu64 " B per connection over the "
           "baseline)\n",
           heap_idle, heap_idle_conns,
           (heap_idle - heap_base) / heap_idle_conns);
  printf("loop: longest gap between 50 ms samples %" PRIu64 " ms (%" PRIu64
         " ms after the stop); lariat_server_stop() took %" PRIu64 " ms\n",
         stall_max_ms, stall_stop_max_ms, stop_call_ms);
  printf("rss: before %" PRIu64 " KiB, baseline %" PRIu64 " KiB, peak %" PRIu64
         " KiB, end %" PRIu64 " KiB, after del %" PRIu64 " KiB\n",
         rss_pre, rss_base, rss_peak, rss_end, rss_del);

  static const char *const keys[NKINDS + 1] = {
      "normal",   "remote",      "shutdown",  "timeout",
      "crash",    "badencoding", "badframe",  "too_big",
      "closed",   "socket",      "backpressure", "unknown"};
  char kinds[512];
  size_t off = 0;
  for (int k = 0; k <= NKINDS; ++k)
    off += (size_t)snprintf(kinds + off, sizeof kinds - off,
                            " term_%s=%" PRIu64, keys[k], c.by_kind[k]);
  printf("SOAK_SERVER_RESULT ok=%d failures=%" PRIu64 " stop=%s inits=%" PRIu64
         " inits_plain=%" PRIu64 " terminates=%" PRIu64 " ws_inits=%" PRIu64
         " ws_open_peak=%" PRIu64 " conns_peak=%zu conns_at_stop=%zu"
         " ws_open_at_stop=%" PRIu64 " received=%" PRIu64 " echoed=%" PRIu64
         " echo_bytes=%" PRIu64 " pings=%" PRIu64 "%s"
         " heap_pre=%" PRIu64 " heap_base=%" PRIu64 " heap_peak=%" PRIu64
         " heap_end=%" PRIu64 " heap_del=%" PRIu64 " heap_idle=%" PRIu64
         " stall_max_ms=%" PRIu64 " stall_stop_max_ms=%" PRIu64
         " stop_call_ms=%" PRIu64 " rss_base_kb=%" PRIu64
         " rss_peak_kb=%" PRIu64 " rss_end_kb=%" PRIu64 " rss_del_kb=%" PRIu64
         " shutdown_ms=%" PRIu64 " close_timeout_ms=%" PRIu64 "\n",
         c.failures == 0, c.failures, stop_cause, c.inits, c.inits_plain,
         c.terminates, c.ws_inits, c.ws_open_peak, conns_peak, conns_at_stop,
         c.ws_open_at_stop, c.received, c.echoed, c.echo_bytes, c.pings, kinds,
         heap_pre, heap_base, heap_peak, heap_end, heap_del, heap_idle,
         stall_max_ms, stall_stop_max_ms, stop_call_ms, rss_base, rss_peak,
         rss_end, rss_del, shutdown_ms, opt.close_timeout_ms);
  free(seen);
  free(slot_role);
  free(slot_kind);
  free(slot_have);
  free(slot_received);
  free(slot_replied);
  return c.failures == 0 ? 0 : 1;
}
