// Failing allocations (nghttp2's failmalloc, curl's torture): each scripted
// scenario is run once to count its allocations, then again for every N
// with allocation N failing. Every run must end without a crash or a leak
// (LeakSanitizer in the ASan build) and with terminate called exactly once
// for a connection that reached init. The hook is this binary's global
// operator new, which zlib also allocates through (src/deflate.cc).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <arpa/inet.h>
#include <execinfo.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <zlib.h>

#include <cerrno>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "connection.h"
#include "core_harness.h"
#include "deflate.h"
#include "guard.h"
#include "server.h"
#include "test_certs.h"

// ------------------------------------------------------------------ hook

namespace {

bool g_armed = false;   // count (and maybe fail) allocations
long g_count = 0;       // allocations seen while armed
long g_fail_at = 0;     // 0: none fails; else the g_fail_at-th fails
bool g_failed = false;  // the chosen allocation was reached
bool g_fail_all = false;  // every armed allocation fails

// Where the failed allocation was, for the report of a run that went
// wrong.
void *g_fail_stack[32];
int g_fail_depth = 0;

void *counted_alloc(size_t n) noexcept {
  if (g_armed && (++g_count == g_fail_at || g_fail_all)) {
    g_failed = true;
    if (!g_fail_all) g_fail_depth = backtrace(g_fail_stack, 32);
    return nullptr;
  }
  return std::malloc(n ? n : 1);
}

// The test's own bookkeeping must neither fail nor be counted.
class Unarmed {
 public:
  Unarmed() : was_(g_armed) { g_armed = false; }
  ~Unarmed() { g_armed = was_; }

 private:
  bool was_;
};

}  // namespace

// These operators are the allocator, so free() matches their malloc().
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void *operator new(size_t n) {
  void *p = counted_alloc(n);
  if (!p) throw std::bad_alloc();
  return p;
}
void *operator new[](size_t n) {
  void *p = counted_alloc(n);
  if (!p) throw std::bad_alloc();
  return p;
}
void *operator new(size_t n, const std::nothrow_t &) noexcept {
  return counted_alloc(n);
}
void *operator new[](size_t n, const std::nothrow_t &) noexcept {
  return counted_alloc(n);
}
void operator delete(void *p) noexcept { std::free(p); }
void operator delete[](void *p) noexcept { std::free(p); }
void operator delete(void *p, size_t) noexcept { std::free(p); }
void operator delete[](void *p, size_t) noexcept { std::free(p); }
void operator delete(void *p, const std::nothrow_t &) noexcept { std::free(p); }
void operator delete[](void *p, const std::nothrow_t &) noexcept {
  std::free(p);
}

namespace {

// ------------------------------------------------------------- the core

struct Counts {
  int inits = 0;
  int terminates = 0;
  int handled = 0;
};

// Bytes out go to |out|; close() reports to the connection at once, as
// the core must cope with.
class FakeTransport final : public lariat::detail::Transport {
 public:
  FakeTransport(std::string *out, bool *closed) : out_(out), closed_(closed) {}
  void write(const uint8_t *p, size_t n) override {
    Unarmed u;
    out_->append(reinterpret_cast<const char *>(p), n);
  }
  void shutdown() override {}
  void close() override {
    *closed_ = true;
    conn_->on_transport_closed();
  }
  size_t buffered() const override { return 0; }
  int set_reading(bool) override { return 0; }
  void attach(lariat_conn *c) override { conn_ = c; }
  int peer(char *buf, size_t size, int *port) const override {
    std::snprintf(buf, size, "scripted");
    if (port) *port = 0;
    return 0;
  }

 private:
  lariat_conn *conn_ = nullptr;
  std::string *out_;
  bool *closed_;
};

enum class Init { kAccept, kDeflate, kReject };

struct Scenario {
  const char *name;
  Init init;
  std::vector<std::string> input;  // each fed by one on_read
};

Counts *g_counts = nullptr;
Init g_init = Init::kAccept;

const uint8_t kLarge[300 * 1024] = {0};  // past the direct-write threshold

int fm_init(lariat_req *, lariat_upgrade *up, void *) {
  ++g_counts->inits;
  // Results are ignored on purpose: whatever fails, the run must end well.
  if (g_init == Init::kDeflate)
    lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_ENABLE, 1);
  if (g_init == Init::kReject) {
    static const char *const headers[] = {"X-Why", "scripted"};
    lariat_upgrade_reply(up, 403, headers, 1, "no", 2);
  }
  return LARIAT_OK;
}

int fm_handle(lariat_conn *conn, const lariat_frame *frame, void *) {
  ++g_counts->handled;
  if (frame->opcode != LARIAT_OP_TEXT && frame->opcode != LARIAT_OP_BINARY)
    return LARIAT_OK;
  std::string_view text(reinterpret_cast<const char *>(frame->data),
                        frame->len);
  if (text == "many") {
    lariat_frame f = {};
    f.opcode = LARIAT_OP_TEXT;
    f.data = frame->data;
    f.len = frame->len;
    for (int i = 0; i < 40; i++) lariat_reply(conn, &f);
    f.opcode = LARIAT_OP_BINARY;
    f.data = kLarge;
    f.len = sizeof kLarge;
    lariat_reply(conn, &f);
    return LARIAT_OK;
  }
  // An echo refused (no memory) is one a peer waiting for it never gets:
  // the connection closes rather than leave it waiting.
  if (lariat_reply(conn, frame) != 0) return LARIAT_SHUTDOWN;
  return text == "hibernate" ? LARIAT_HIBERNATE : LARIAT_OK;
}

void fm_terminate(lariat_conn *, const lariat_reason *, void *) {
  ++g_counts->terminates;
}

lariat_handler make_handler() {
  lariat_handler h = {};
  h.size = sizeof(h);
  h.init = fm_init;
  h.websocket_handle = fm_handle;
  h.terminate = fm_terminate;
  return h;
}
const lariat_handler kHandler = make_handler();

// One run: server, connection, the scripted input, end of input, server
// gone. Everything in it is armed but the test's own bookkeeping.
struct Outcome {
  Counts counts;
  std::string out;
};

Outcome run(const Scenario &sc, long fail_at) {
  Outcome o;
  bool closed = false;
  g_counts = &o.counts;
  g_init = sc.init;
  g_count = 0;
  g_fail_at = fail_at;
  g_failed = false;
  g_armed = true;
  lariat_server *server = nullptr;
  if (lariat_server_new(&server, nullptr, nullptr) == 0) {
    if (lariat_server_route(server, "/chat", &kHandler, nullptr) == 0) {
      // Failing, accept() frees the connection and its transport (one
      // allocation), or closes it.
      lariat_conn *conn = server->accept<FakeTransport>(&o.out, &closed);
      if (conn) {
        for (const std::string &chunk : sc.input) {
          if (closed) break;
          std::vector<uint8_t> bytes;
          {
            Unarmed u;
            bytes.assign(chunk.begin(), chunk.end());  // unmasked in place
          }
          // As TcpTransport's read callback does.
          lariat::detail::guard_callback(
              conn, [&] { conn->on_read(bytes.data(), bytes.size()); });
        }
        if (!closed)
          lariat::detail::guard_callback(conn, [&] { conn->on_eof(); });
        assert_true(closed);
      }
      // Gone, not waiting for a finalize that never comes (which would
      // also make lariat_server_del() wait forever).
      if (!server->conns.empty())
        fail_msg("%s, allocation %ld failing: the connection outlived its "
                 "transport", sc.name, fail_at);
    }
    lariat_server_del(server);
  }
  g_armed = false;
  return o;
}

// ------------------------------------------------------------- scripts

const char kRequest[] =
    "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n";

std::string request(const char *extra = "") {
  return std::string(kRequest) + extra + "\r\n";
}


using core_test::bytes;
using core_test::mask_frame;

// A client's compressed message (RFC 7692 7.2.1): raw deflate, sync flush,
// tail removed.
std::string client_deflate(const std::string &s) {
  z_stream z = {};
  assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY),
                   Z_OK);
  std::string out(s.size() + 64, '\0');
  z.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(s.data()));
  z.avail_in = static_cast<uInt>(s.size());
  z.next_out = reinterpret_cast<Bytef *>(&out[0]);
  z.avail_out = static_cast<uInt>(out.size());
  assert_int_equal(deflate(&z, Z_SYNC_FLUSH), Z_OK);
  out.resize(out.size() - z.avail_out - 4);
  deflateEnd(&z);
  return out;
}

std::vector<Scenario> scenarios() {
  std::string text(2000, 'x');
  for (size_t i = 0; i < text.size(); i += 7) text[i] = 'y';
  return {
      {"echo, ping, close", Init::kAccept,
       {request(), mask_frame(0x81, "Hello"), mask_frame(0x89, "ping!"),
        mask_frame(0x88, bytes({0x03, 0xe8}) + "done")}},
      {"fragmented message", Init::kAccept,
       {request() + mask_frame(0x01, "Hel"), mask_frame(0x89, "p"),
        mask_frame(0x00, "lo, "), mask_frame(0x80, std::string(300, 'z')),
        mask_frame(0x88, "")}},
      {"permessage-deflate echo", Init::kDeflate,
       {request("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
        mask_frame(0xc1, client_deflate(text)),
        mask_frame(0xc1, client_deflate("Hello")),
        mask_frame(0x88, bytes({0x03, 0xe8}))}},
      {"init rejects", Init::kReject, {request()}},
      {"many replies", Init::kAccept,
       {request(), mask_frame(0x81, "many"), mask_frame(0x81, "many")}},
      {"hibernate, wake", Init::kAccept,
       {request(), mask_frame(0x81, "hibernate"), mask_frame(0x81, "awake"),
        mask_frame(0x81, "hibernate"), mask_frame(0x89, "p"),
        mask_frame(0x88, "")}},
  };
}

// ---------------------------------------------------------------- tests

void check_every_failure(const Scenario &sc) {
  Outcome clean = run(sc, 0);
  long total = g_count;
  // The scenario itself works: one connection from init to terminate.
  assert_int_equal(clean.counts.inits, 1);
  assert_int_equal(clean.counts.terminates, 1);
  assert_true(total > 10);
  for (long n = 1; n <= total; n++) {
    Outcome o = run(sc, n);
    if (!g_failed) fail_msg("%s: allocation %ld never came", sc.name, n);
    if (o.counts.inits > 1 || o.counts.terminates != o.counts.inits)
      fail_msg("%s, allocation %ld failing: %d init, %d terminate", sc.name,
               n, o.counts.inits, o.counts.terminates);
  }
  std::printf("  %s: %ld allocations, each failed once\n", sc.name, total);
}

void test_every_allocation_fails_once(void **) {
  for (const Scenario &sc : scenarios()) check_every_failure(sc);
}

// The script's output without a failure: the scenarios do what they say.
void test_scenarios_behave(void **) {
  std::vector<Scenario> all = scenarios();
  Outcome echo = run(all[0], 0);
  assert_true(echo.out.find(bytes({0x81, 0x05}) + "Hello") !=
              std::string::npos);
  assert_true(echo.out.find(bytes({0x8a, 0x05}) + "ping!") !=
              std::string::npos);
  Outcome frag = run(all[1], 0);
  assert_true(frag.out.find("Hello, zzz") != std::string::npos);
  Outcome deflated = run(all[2], 0);
  assert_true(deflated.out.find("permessage-deflate") != std::string::npos);
  assert_int_equal(deflated.counts.handled, 2);
  Outcome rejected = run(all[3], 0);
  assert_int_equal(rejected.out.compare(0, 12, "HTTP/1.1 403"), 0);
  Outcome many = run(all[4], 0);
  assert_true(many.out.size() > 2 * sizeof kLarge);
  Outcome hib = run(all[5], 0);
  assert_true(hib.out.find("awake") != std::string::npos);
}

// A compress that fails half way must not leave its input in the
// compressor's window: the next message would refer back to bytes the
// peer never received (issue 9 item 5).
void test_failed_compress_does_not_poison_the_next(void **) {
  std::string noise(8192, '\0');
  uint32_t x = 12345;
  for (char &c : noise) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  const auto *p = reinterpret_cast<const uint8_t *>(noise.data());
  bool failed_midway = false;
  for (long n = 1; n < 40; n++) {
    lariat::detail::DeflateConfig cfg;
    cfg.enabled = true;
    lariat::detail::DeflateCodec codec(cfg, lariat::detail::DeflateParams());
    std::string first, packed;
    assert_int_equal(codec.compress(p, 100, &first),
                     lariat::detail::DeflateCodec::Status::kOk);
    // Incompressible input outgrows the first output room: the second
    // resize, after zlib consumed the input, is among those that fail.
    g_count = 0;
    g_fail_at = n;
    g_failed = false;
    g_armed = true;
    auto st = codec.compress(p, noise.size(), &packed);
    g_armed = false;
    if (st == lariat::detail::DeflateCodec::Status::kOk) break;
    failed_midway = true;
    // The peer saw only the first message; the same bytes again must
    // inflate with that history alone.
    assert_int_equal(codec.compress(p, noise.size(), &packed),
                     lariat::detail::DeflateCodec::Status::kOk);
    z_stream z = {};
    assert_int_equal(inflateInit2(&z, -15), Z_OK);
    std::string plain(noise.size() + 100, '\0');
    for (const std::string *msg : {&first, &packed}) {
      std::string in = *msg + std::string("\0\0\xff\xff", 4);
      z.next_in = reinterpret_cast<Bytef *>(&in[0]);
      z.avail_in = static_cast<uInt>(in.size());
      z.next_out = reinterpret_cast<Bytef *>(&plain[0]);
      z.avail_out = static_cast<uInt>(plain.size());
      int rc = inflate(&z, Z_SYNC_FLUSH);
      if (rc != Z_OK) fail_msg("allocation %ld failing: inflate %d", n, rc);
      size_t got = plain.size() - z.avail_out;
      size_t want = msg == &first ? 100 : noise.size();
      assert_int_equal(got, want);
      assert_int_equal(std::memcmp(plain.data(), noise.data(), want), 0);
    }
    inflateEnd(&z);
  }
  assert_true(failed_midway);
}


// ------------------------------------------------------------- loopback

int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Completes in the kernel's backlog, before the server accepts.
  assert_int_equal(connect(fd, reinterpret_cast<sockaddr *>(&addr),
                           sizeof addr),
                   0);
  return fd;
}

// The server closed |fd| (EOF or reset); false while it is still open.
bool ended_by_server(int fd) {
  char byte;
  ssize_t r = recv(fd, &byte, 1, MSG_DONTWAIT);
  return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

// With no memory for a connection, on_connection (src/server.cc) turns
// the client away, and the listener keeps accepting: libuv stops watching
// a listener whose pending socket is never accepted. Two clients wait at
// once, so the second also finds the spare handle busy. A listener gone
// deaf shows as a loop that never ends them (the ctest timeout).
void test_listener_survives_failed_accepts(void **) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  lariat_server *server = nullptr;
  assert_int_equal(lariat_server_new(&server, &loop, nullptr), 0);
  assert_int_equal(lariat_server_route(server, "/chat", &kHandler, nullptr),
                   0);
  assert_int_equal(lariat_server_listen(server, "127.0.0.1", 0), 0);
  int port = lariat_server_port(server);
  Counts counts;
  g_counts = &counts;
  g_init = Init::kAccept;

  int a = connect_to(port), b = connect_to(port);
  g_fail_all = true;
  g_armed = true;
  while (!ended_by_server(a) || !ended_by_server(b))
    uv_run(&loop, UV_RUN_ONCE);
  g_armed = false;
  g_fail_all = false;
  close(a);
  close(b);
  assert_int_equal(counts.inits, 0);

  // Memory is back: the next client is served.
  int c = connect_to(port);
  std::string req = request();
  assert_int_equal(send(c, req.data(), req.size(), 0),
                   static_cast<ssize_t>(req.size()));
  std::string got;
  while (got.find("\r\n\r\n") == std::string::npos) {
    uv_run(&loop, UV_RUN_ONCE);
    char buf[512];
    ssize_t r;
    while ((r = recv(c, buf, sizeof buf, MSG_DONTWAIT)) > 0) got.append(buf, r);
    assert_true(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
  }
  assert_int_equal(got.compare(0, 12, "HTTP/1.1 101"), 0);
  close(c);
  while (counts.terminates == 0) uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(counts.inits, 1);
  assert_int_equal(counts.terminates, 1);

  lariat_server_del(server);
  assert_int_equal(uv_loop_close(&loop), 0);
}

// ------------------------------------------------------------ the client

struct ClientRun {
  int opens = 0;
  int ends = 0;       // client terminates
  int last_ends = 0;  // ... with retrying == 0
  int connect_rc = 0;
  bool hung = false;  // still going when the loop ran out of events
};
ClientRun *g_client = nullptr;

int fc_init(lariat_conn *conn, void *) {
  ++g_client->opens;
  lariat_frame f = {};
  f.opcode = LARIAT_OP_TEXT;
  f.data = reinterpret_cast<const uint8_t *>("hello, server");
  f.len = 13;
  // Refused (no memory for the compressor, say), the echo it waits for
  // would never come: it closes instead.
  return lariat_reply(conn, &f) == 0 ? LARIAT_OK : LARIAT_SHUTDOWN;
}

int fc_handle(lariat_conn *, const lariat_frame *, void *) {
  return LARIAT_SHUTDOWN;  // the echo came back: close 1000
}

void fc_terminate(lariat_conn *, const lariat_reason *r, void *) {
  ++g_client->ends;
  if (!r->retrying) ++g_client->last_ends;
}

lariat_handler make_client_handler() {
  lariat_handler h = {};
  h.size = sizeof(h);
  h.websocket_init = fc_init;
  h.websocket_handle = fc_handle;
  h.terminate = fc_terminate;
  return h;
}
const lariat_handler kClientHandler = make_client_handler();

// One client run on one loop with the server it connects to: connect
// (deflate offered), upgrade, one echo, close; every allocation from
// lariat_connect() on is armed.
// |cert|: over wss:// with that certificate (the client trusting it).
void run_client(long fail_at, Counts *server_counts, ClientRun *client,
                const test_cert *cert) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  lariat_server *server = nullptr;
  assert_int_equal(lariat_server_new(&server, &loop, nullptr), 0);
  assert_int_equal(lariat_server_route(server, "/chat", &kHandler, nullptr),
                   0);
  char url[64];
  lariat_client_options *opts = nullptr;
  assert_int_equal(lariat_client_options_new(&opts), 0);
  if (cert) {
    lariat_tls *tls = nullptr;
    assert_int_equal(lariat_tls_new(&tls), 0);
    assert_int_equal(lariat_tls_add_cert_pem(tls, cert->cert, cert->cert_len,
                                             cert->key, cert->key_len),
                     0);
    assert_int_equal(lariat_server_listen_tls(server, "127.0.0.1", 0, tls), 0);
    lariat_tls_del(tls);
    std::snprintf(url, sizeof url, "wss://127.0.0.1:%d/chat",
                  lariat_server_tls_port(server));
    assert_int_equal(lariat_client_options_set_tls_ca(opts, cert->cafile,
                                                      nullptr),
                     0);
  } else {
    assert_int_equal(lariat_server_listen(server, "127.0.0.1", 0), 0);
    std::snprintf(url, sizeof url, "ws://127.0.0.1:%d/chat",
                  lariat_server_port(server));
  }
  assert_int_equal(
      lariat_client_options_set_deflate(opts, LARIAT_DEFLATE_ENABLE, 1), 0);
  assert_int_equal(lariat_client_options_set_timeouts(opts, 2000, 2000), 0);
  g_counts = server_counts;
  g_client = client;
  g_init = Init::kDeflate;
  g_count = 0;
  g_fail_at = fail_at;
  g_failed = false;
  g_armed = true;
  client->connect_rc =
      lariat_connect(server, url, &kClientHandler, nullptr, opts, nullptr,
                     nullptr);
  // Wakes the loop so that a run where nothing is left to happen (a
  // client that would never end) is seen, not waited for.
  g_armed = false;
  uv_timer_t watchdog;
  uv_timer_init(&loop, &watchdog);
  uv_timer_start(&watchdog, [](uv_timer_t *) {}, 50, 50);
  g_armed = true;
  uint64_t deadline = uv_now(&loop) + 5000;
  while (client->connect_rc == 0 && client->last_ends == 0 &&
         uv_now(&loop) < deadline)
    uv_run(&loop, UV_RUN_ONCE);
  g_armed = false;
  uv_close(reinterpret_cast<uv_handle_t *>(&watchdog), nullptr);
  client->hung = client->connect_rc == 0 && client->last_ends == 0;
  if (client->hung) {
    std::fprintf(stderr, "allocation %ld failing: the client never ended; "
                         "the allocation that failed:\n", fail_at);
    backtrace_symbols_fd(g_fail_stack, g_fail_depth, 2);
  }
  lariat_client_options_del(opts);
  lariat_server_del(server);
  assert_int_equal(uv_loop_close(&loop), 0);
}

// Every allocation of a client's whole life failing in turn: lariat_connect
// refuses (and nothing follows), or the client's terminate runs exactly
// once, with retrying 0, whatever failed - in the client, in the server
// it talks to, or in the codec they agreed on - and nothing leaks.
void check_client_failures(const char *name, const test_cert *cert) {
  Counts clean_server;
  ClientRun clean;
  run_client(0, &clean_server, &clean, cert);
  long total = g_count;
  assert_int_equal(clean.connect_rc, 0);
  assert_int_equal(clean.opens, 1);
  assert_int_equal(clean.ends, 1);
  assert_int_equal(clean.last_ends, 1);
  assert_int_equal(clean_server.inits, 1);
  assert_int_equal(clean_server.handled, 1);  // the text
  assert_true(total > 10);
  for (long n = 1; n <= total; n++) {
    Counts server_counts;
    ClientRun client;
    run_client(n, &server_counts, &client, cert);
    if (!g_failed) fail_msg("%s: allocation %ld never came", name, n);
    if (client.connect_rc != 0) {
      if (client.ends != 0)
        fail_msg("%s, allocation %ld failing: refused with %d, yet %d "
                 "terminate", name, n, client.connect_rc, client.ends);
      continue;
    }
    if (client.hung) fail_msg("%s, allocation %ld failing: hung", name, n);
    if (client.ends != 1 || client.last_ends != 1 || client.opens > 1)
      fail_msg("%s, allocation %ld failing: %d websocket_init, %d "
               "terminate (%d final)", name, n, client.opens, client.ends,
               client.last_ends);
    if (server_counts.terminates != server_counts.inits)
      fail_msg("%s, allocation %ld failing: the server had %d init, %d "
               "terminate", name, n, server_counts.inits,
               server_counts.terminates);
  }
  std::printf("  %s: %ld allocations, each failed once\n", name, total);
}

void test_client_every_allocation_fails_once(void **) {
  check_client_failures("client over ws://", nullptr);
  test_cert cert;
  test_cert_make(&cert, "localhost", "IP:127.0.0.1", nullptr, 0);
  check_client_failures("client over wss://", &cert);
  test_cert_free(&cert);
}

}  // namespace

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scenarios_behave),
      cmocka_unit_test(test_every_allocation_fails_once),
      cmocka_unit_test(test_failed_compress_does_not_poison_the_next),
      cmocka_unit_test(test_listener_survives_failed_accepts),
      cmocka_unit_test(test_client_every_allocation_fails_once),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
