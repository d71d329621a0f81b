// libFuzzer target: a whole connection through the real core
// (lariat_conn: handshake, FrameReader, reassembly, UTF-8,
// permessage-deflate, close handshake, hibernation, deadlines, keepalive,
// backpressure and pause/resume) over a fake transport, as
// tests/test_core.cc drives it.
//
// Input: 10 option bytes, then the stream.
//   o0 bits 0-1  mode: 0 raw frames, 1/3 structured frames (both after a
//                valid upgrade head the harness writes), 2 raw bytes with
//                no head (the fuzzer writes the request itself)
//      bit 2     offer permessage-deflate in the harness's head
//      bit 3     init turns UTF-8 validation off
//      bit 4     the transport closes asynchronously (as libuv's does)
//      bit 5     end with a socket error instead of EOF
//      bit 6     ticks happen (o3 says when; o5 what)
//      bit 7     websocket_init replies a greeting
//   o1           deflate config: bit 0 server_no_context_takeover, bit 1
//                client_no_context_takeover, bits 2-3 which offer, bit 4
//                threshold 16, bits 5-7 server_max_window_bits 15 - v
//   o2           bits 0-2 client_max_window_bits 15 - v, bits 3-6 zlib
//                level (6 + v) % 10, bit 7 memLevel 1 instead of 8
//                (all-zero option bytes are the library's defaults)
//   o3           bits 0-4 k: a tick after every k-th chunk (k = 0: before
//                any byte), at most 3, and one at the end; bits 5-6 how
//                far the clock moves at a tick (0, 150 ms, 6 s, 11 s),
//                bit 7 deadlines go through the server's timer
//                (on_timer) instead of conn->on_deadline()
//   o4           bit 0 keepalive (ping 50 ms, pong 50 ms), bit 1 slow
//                peer (the transport holds what it is given), bits 2-3
//                max_queued 4 KiB with policy refuse/close/try-later (0:
//                default), bit 4 refuse_busy() at once (server full),
//                bit 5 idle timeout 100 ms, bits 6-7 the n-th write fails
//                (reported later, as libuv's write callback would)
//   o5           what a tick does besides firing the deadline: bit 0
//                deliver a posted message (lariat_post), bit 1 stop() at
//                the first tick (server stopping), bit 2 no deadline, bit
//                3 a reply from outside any callback, bit 4 a 300 KiB one,
//                bits 5-6 what websocket_info returns (OK, HIBERNATE,
//                SHUTDOWN, CRASH)
//   o6..o9       chunk sizes for on_read (0: everything left), cycled;
//                multiplied by 1 + stream size / 4096
//
// Structured frames: [b0][ctl][len][payload...] per frame, where b0 is the
// frame's first byte as sent (FIN, RSV, opcode) and ctl:
//   0x01 unmasked, 0x02 non-minimal length encoding, 0x04 deflate the
//   payload with the harness's client compressor, 0x18 the payload's kind:
//   0x08 a pattern of a 16/17-bit length (then: len_lo len_hi [bit16]
//   fill), 0x10 a close payload (then: code_hi code_lo reason_len
//   reason...), else len + bytes; 0x20 with 0x04: end the compressed
//   stream (BFINAL), 0x40 17-bit pattern length, 0x80 less compressible
//   pattern.
//
// The handler echoes every message and obeys its first byte: 'h'
// hibernate, 's' shutdown, 'c' crash, 'x' reply close, 'p' reply ping,
// 't' set an idle timeout, '!' return an invalid value, 'e' try invalid
// replies, 'u' echo uncompressed, 'a' pause reading (the harness resumes
// it before the next chunk, as a host program would), 'b' also reply
// 300 KiB ("bu": uncompressed). websocket_drain replies "d",
// websocket_info "info". init obeys the query: "?crash", "?reply", "?bad".
//
// Checked after every input: the connection is gone (transport destroyed,
// server registry empty), terminate ran exactly once iff init ran, nothing
// was written after close() or after FIN, and the bytes written are one
// HTTP response followed, after a 101, by well-formed server frames whose
// data messages (inflated) are exactly the successful replies, in order.
#include <uv.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connection.h"
#include "deflate.h"
#include "frame_writer.h"
#include "fuzz_check.h"
#include "server.h"
#include "utf8.h"

namespace {

constexpr uint64_t kMaxFrame = 64 * 1024;

// One input: its options and what happened.
struct Run {
  bool validate_utf8 = true;
  bool deferred_close = false;
  bool greet = false;
  lariat::detail::DeflateConfig deflate;  // what init allows
  uint8_t flow = 0;                       // o4
  bool slow_peer = false;
  int failing_write = 0;  // 1-based index of the write that fails; 0: none

  int inits = 0, ws_inits = 0, terminates = 0;
  bool upgraded = false, compressed = false;
  int expect_deflate = -1;  // the harness's own offer: 0/1, or -1 unknown
  // Data messages the handler replied successfully: opcode, payload.
  std::vector<std::pair<uint32_t, std::string>> replies;

  std::string out;  // everything written to the transport
  bool shut = false, close_requested = false, gone = false;
  bool reading = true;
  size_t held = 0;  // bytes a slow peer has not taken yet (buffered())
  int writes = 0;
  bool error_pending = false;  // a write failed; the error comes later
  int drains = 0;
  int info_result = LARIAT_OK;
  int posted = 0, freed = 0;  // lariat_post messages: each freed once
};

Run *g_run = nullptr;

// LARIAT_FUZZ_TRACE=1 prints what each input did, for triage:
//   ./fuzz_connection -runs=1 crash-file
const bool g_trace = std::getenv("LARIAT_FUZZ_TRACE") != nullptr;

class FakeTransport final : public lariat::detail::Transport {
 public:
  explicit FakeTransport(Run *run) : run_(run) {}
  ~FakeTransport() override { run_->gone = true; }
  void attach(lariat_conn *c) override { conn_ = c; }
  void write(const uint8_t *p, size_t n) override {
    CHECK(!run_->close_requested);  // close() stops writing
    CHECK(!run_->shut);             // nothing can follow our FIN
    run_->out.append(reinterpret_cast<const char *>(p), n);
    if (run_->slow_peer) run_->held += n;
    // transport.h: errors come back *later* through on_transport_error();
    // the harness delivers it after the event, as uv_write's callback.
    if (++run_->writes == run_->failing_write) run_->error_pending = true;
  }
  void shutdown() override {
    CHECK(!run_->close_requested && !run_->shut);
    run_->shut = true;
  }
  void close() override {
    CHECK(!run_->close_requested);
    run_->close_requested = true;
    if (!conn_) {  // accept() ran out of memory: we own ourselves
      delete this;
      return;
    }
    // Synchronous like tests/test_core.cc, or later, from the harness,
    // like TcpTransport's uv_close callback.
    if (!run_->deferred_close) conn_->on_transport_closed();
  }
  size_t buffered() const override { return run_->held; }
  int set_reading(bool on) override {
    CHECK(!run_->close_requested);
    run_->reading = on;
    return 0;
  }
  int peer(char *buf, size_t size, int *port) const override {
    std::snprintf(buf, size, "fuzz");
    if (port) *port = 0;
    return 0;
  }

 private:
  Run *run_;
  lariat_conn *conn_ = nullptr;
};

// ---------------------------------------------------------------- handler

bool reply(lariat_conn *conn, uint32_t opcode, const void *p, size_t n,
           uint32_t flags = 0) {
  lariat_frame f = {};
  f.opcode = opcode;
  f.flags = flags;
  f.data = static_cast<const uint8_t *>(p);
  f.len = n;
  int rc = lariat_reply(conn, &f);
  // EXCEEDS_CAP: an echo of a message larger than the 4 KiB cap.
  CHECK(rc == 0 || rc == LARIAT_ERR_CLOSING || rc == LARIAT_ERR_BACKPRESSURE ||
        (rc == LARIAT_ERR_EXCEEDS_CAP && n + 14 > 4096));
  if (rc == 0 && (opcode == LARIAT_OP_TEXT || opcode == LARIAT_OP_BINARY))
    g_run->replies.emplace_back(
        opcode, std::string(static_cast<const char *>(p), n));
  return rc == 0;
}

int on_init(lariat_req *req, lariat_upgrade *up, void *) {
  Run &r = *g_run;
  CHECK(++r.inits == 1);
  size_t n = 0;
  std::string_view query(lariat_req_query(req, &n), n);
  // The request accessors, on whatever head the fuzzer wrote.
  size_t count = lariat_req_header_count(req);
  for (size_t i = 0; i < count; ++i) {
    const char *name, *value;
    size_t nl, vl;
    CHECK(lariat_req_header_at(req, i, &name, &nl, &value, &vl) == 0);
  }
  CHECK(lariat_req_header_at(req, count, nullptr, nullptr, nullptr,
                             nullptr) == LARIAT_ERR_INVALID_ARGUMENT);
  lariat_req_header(req, "sec-websocket-key", &n);
  char peer[16];
  CHECK(lariat_req_peer(req, peer, sizeof peer, nullptr) == 0);

  if (query == "crash") {
    lariat_upgrade_set_crash(up, "fuzz", "init crash");
    return LARIAT_CRASH;
  }
  if (query == "reply") {
    const char *headers[] = {"X-Fuzz", "1"};
    CHECK(lariat_upgrade_reply(up, 403, headers, 1, "no", 2) == 0);
    return LARIAT_OK;
  }
  if (query == "bad") return 42;

  const lariat::detail::DeflateConfig &d = r.deflate;
  CHECK(lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_ENABLE, 1) == 0);
  CHECK(lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_LEVEL, d.level) == 0);
  CHECK(lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_MEM_LEVEL,
                                   d.mem_level) == 0);
  CHECK(lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_SERVER_MAX_WINDOW_BITS,
                                   d.server_max_window_bits) == 0);
  CHECK(lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_CLIENT_MAX_WINDOW_BITS,
                                   d.client_max_window_bits) == 0);
  CHECK(lariat_upgrade_set_deflate(
            up, LARIAT_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER,
            d.server_no_context_takeover) == 0);
  CHECK(lariat_upgrade_set_deflate(
            up, LARIAT_DEFLATE_CLIENT_NO_CONTEXT_TAKEOVER,
            d.client_no_context_takeover) == 0);
  CHECK(lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_THRESHOLD,
                                   static_cast<int64_t>(d.threshold)) == 0);
  // A small limit so that length and decompression bombs are cut early.
  CHECK(lariat_upgrade_set_max_frame_size(up, kMaxFrame) == 0);
  CHECK(lariat_upgrade_set_validate_utf8(up, r.validate_utf8) == 0);
  if (r.flow & 0x01)
    CHECK(lariat_upgrade_set_ping_interval(up, 50, 50) == 0);
  if (r.flow & 0x0c) {
    static const int kPolicy[4] = {0, LARIAT_BACKPRESSURE_REFUSE,
                                   LARIAT_BACKPRESSURE_CLOSE,
                                   LARIAT_BACKPRESSURE_CLOSE_TRY_LATER};
    CHECK(lariat_upgrade_set_max_queued(up, 4096, kPolicy[(r.flow >> 2) & 3]) ==
          0);
    CHECK(lariat_upgrade_set_low_water(up, 1024) == 0);
  }
  if (r.flow & 0x20) CHECK(lariat_upgrade_set_idle_timeout(up, 100) == 0);
  if (lariat_req_protocol_count(req) > 0) {
    const char *p = lariat_req_protocol_at(req, 0, &n);
    CHECK(p != nullptr);
    // Header values hold no NUL, so the C string is the whole protocol.
    CHECK(lariat_upgrade_set_protocol(up, std::string(p, n).c_str()) == 0);
  }
  return LARIAT_OK;
}

int on_ws_init(lariat_conn *conn, void *) {
  Run &r = *g_run;
  CHECK(++r.ws_inits == 1 && r.inits == 1);
  r.upgraded = true;
  r.compressed = lariat_conn_compressed(conn) != 0;
  int v = lariat_conn_version(conn);
  CHECK(v == 7 || v == 8 || v == 13);
  if (r.greet) reply(conn, LARIAT_OP_TEXT, "hello", 5);
  return LARIAT_OK;
}

int on_handle(lariat_conn *conn, const lariat_frame *f, void *) {
  Run &r = *g_run;
  CHECK(r.upgraded && !r.close_requested && !r.shut);
  if (f->opcode == LARIAT_OP_PING || f->opcode == LARIAT_OP_PONG) {
    CHECK(f->len <= 125);
    return LARIAT_OK;
  }
  CHECK(f->opcode == LARIAT_OP_TEXT || f->opcode == LARIAT_OP_BINARY);
  CHECK(f->len <= kMaxFrame);
  if (f->opcode == LARIAT_OP_TEXT && r.validate_utf8)
    CHECK(lariat::detail::utf8_valid(f->data, f->len));
  const char cmd = f->len ? static_cast<char>(f->data[0]) : 0;
  reply(conn, f->opcode, f->data, f->len,
        cmd == 'u' ? LARIAT_FRAME_NO_COMPRESS : 0);
  switch (cmd) {
    case 'h':
      return LARIAT_HIBERNATE;
    case 's':
      return LARIAT_SHUTDOWN;
    case 'c':
      if (f->len > 1) lariat_conn_set_crash(conn, "fuzz", "asked to crash");
      return LARIAT_CRASH;
    case 'x': {
      lariat_frame close = {LARIAT_OP_CLOSE, 0, 4000,
                            reinterpret_cast<const uint8_t *>("bye"), 3};
      int rc = lariat_reply(conn, &close);
      CHECK(rc == 0 || rc == LARIAT_ERR_CLOSING);  // the echo may have closed
      CHECK(lariat_reply(conn, &close) == LARIAT_ERR_CLOSING);
      return LARIAT_OK;
    }
    case 'p': {
      lariat_frame ping = {LARIAT_OP_PING, 0, 0,
                           reinterpret_cast<const uint8_t *>("pp"), 2};
      int rc = lariat_reply(conn, &ping);
      CHECK(rc == 0 || rc == LARIAT_ERR_CLOSING ||
            rc == LARIAT_ERR_BACKPRESSURE);
      return LARIAT_OK;
    }
    case 't': {
      int rc = lariat_conn_set_idle_timeout(conn, 100);
      CHECK(rc == 0 || rc == LARIAT_ERR_CLOSING);  // the echo may have closed
      return LARIAT_OK;
    }
    case 'b': {
      // Past the 256 KiB at which reply() writes straight from the
      // caller's buffer (FrameWriter::write_to) instead of batching.
      std::string big(300 * 1024, 'B');
      reply(conn, LARIAT_OP_BINARY, big.data(), big.size(),
            f->len > 1 && f->data[1] == 'u' ? LARIAT_FRAME_NO_COMPRESS : 0);
      return LARIAT_OK;
    }
    case 'a': {
      int rc = lariat_conn_set_active(conn, 0);
      CHECK(rc == 0 || rc == LARIAT_ERR_CLOSING);
      if (rc == 0) CHECK(!r.reading);
      return LARIAT_OK;
    }
    case '!':
      return 42;
    case 'e': {
      static const uint8_t big[126] = {};
      lariat_frame bad = {LARIAT_OP_CLOSE, 0, 1005, nullptr, 0};
      CHECK(lariat_reply(conn, &bad) == LARIAT_ERR_BAD_CLOSE_CODE);
      bad = {LARIAT_OP_PING, 0, 0, big, sizeof big};
      CHECK(lariat_reply(conn, &bad) == LARIAT_ERR_TOO_LARGE);
      bad = {3, 0, 0, big, 1};
      CHECK(lariat_reply(conn, &bad) == LARIAT_ERR_INVALID_ARGUMENT);
      return LARIAT_OK;
    }
    default:
      return LARIAT_OK;
  }
}

void free_letter(void *msg) {
  ++g_run->freed;
  delete static_cast<std::string *>(msg);
}

int on_info(lariat_conn *conn, void *msg, void *) {
  Run &r = *g_run;
  CHECK(r.upgraded && !r.close_requested && !r.shut);
  CHECK(*static_cast<std::string *>(msg) == "info");
  CHECK(r.freed < r.posted);  // freed after this callback, not before
  reply(conn, LARIAT_OP_TEXT, "info", 4);
  return r.info_result;
}

int on_drain(lariat_conn *conn, void *) {
  Run &r = *g_run;
  CHECK(r.upgraded && !r.close_requested && !r.shut);
  ++r.drains;
  CHECK(lariat_conn_buffered_amount(conn) <= 1024);  // at or under low water
  reply(conn, LARIAT_OP_TEXT, "d", 1);
  return LARIAT_OK;
}

void on_terminate(lariat_conn *conn, const lariat_reason *reason, void *) {
  Run &r = *g_run;
  CHECK(++r.terminates == 1 && r.inits == 1);
  if (g_trace)
    std::fprintf(stderr, "terminate: %s code %u%s\n",
                 lariat_reason_name(reason->kind), reason->code,
                 conn ? "" : " (never upgraded)");
  CHECK((conn != nullptr) == r.upgraded);
  CHECK(reason->kind >= LARIAT_REASON_NORMAL &&
        reason->kind <= LARIAT_REASON_ERROR_BACKPRESSURE);
  if (!r.upgraded)
    CHECK(reason->kind == LARIAT_REASON_NORMAL ||
          reason->kind == LARIAT_REASON_CRASH);
  if (reason->kind == LARIAT_REASON_REMOTE) {
    CHECK(reason->code == 0 ||
          lariat::detail::peer_close_code_valid(reason->code));
    CHECK(reason->len <= 123);
    if (reason->code == 0) CHECK(reason->len == 0);
    if (r.validate_utf8)
      CHECK(lariat::detail::utf8_valid(reason->data, reason->len));
  }
  if (reason->kind == LARIAT_REASON_CRASH)
    CHECK(reason->crash_class && reason->crash_reason);
  if (conn) {
    CHECK(lariat_conn_get_id(conn) != 0);
    lariat_conn_protocol(conn);
  }
}

const lariat_handler kHandler = {sizeof(lariat_handler), on_init, on_ws_init,
                                 on_handle, on_info, on_terminate, on_drain};

// One server for the process, never run: connections are driven by hand.
lariat_server *the_server() {
  static lariat_server *server = [] {
    lariat_server *s = nullptr;
    CHECK(lariat_server_new(&s, nullptr, nullptr) == 0);
    CHECK(lariat_server_route(s, "/chat", &kHandler, nullptr) == 0);
    // Time moves only when the harness says so.
    s->manual_clock = 1000000;
    return s;
  }();
  return server;
}

// ------------------------------------------------------------ input, head

struct Reader {
  const uint8_t *p;
  size_t n;
  uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::string bytes(size_t want) {
    size_t k = want < n ? want : n;
    std::string s(reinterpret_cast<const char *>(p), k);
    p += k;
    n -= k;
    return s;
  }
};

const char *const kOffers[4] = {
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_no_context_takeover; "
    "client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=10; "
    "client_max_window_bits=9, permessage-deflate",
};

std::string upgrade_head(const char *offer) {
  std::string h =
      "GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"
      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n";
  if (offer) {
    h += "Sec-WebSocket-Extensions: ";
    h += offer;
    h += "\r\n";
  }
  return h + "\r\n";
}

// The client side of permessage-deflate, for structured frames.
class ClientDeflater {
 public:
  ~ClientDeflater() {
    if (ready_) deflateEnd(&z_);
  }
  void setup(int window_bits, bool reset_each_message) {
    bits_ = window_bits < 9 ? 9 : window_bits;  // zlib's raw minimum
    reset_ = reset_each_message;
  }
  // One frame's payload: sync-flushed, or the stream's end (BFINAL) when
  // |finish|; the 00 00 ff ff tail is dropped on a message's last frame.
  std::string compress(const std::string &in, bool fin, bool finish) {
    if (!ready_) {
      // Level 1: fast, and still matches and Huffman blocks to inflate.
      if (deflateInit2(&z_, Z_BEST_SPEED, Z_DEFLATED, -bits_, 8,
                       Z_DEFAULT_STRATEGY) != Z_OK)
        std::abort();
      ready_ = true;
    }
    std::string out;
    z_.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    int rc;
    do {
      size_t used = out.size();
      size_t room = deflateBound(&z_, in.size()) + 64;
      out.resize(used + room);
      z_.next_out = reinterpret_cast<Bytef *>(&out[used]);
      z_.avail_out = static_cast<uInt>(room);
      rc = deflate(&z_, finish ? Z_FINISH : Z_SYNC_FLUSH);
      out.resize(used + room - z_.avail_out);
    } while (finish ? rc == Z_OK : z_.avail_out == 0);
    if (fin && out.size() >= 4 &&
        std::memcmp(out.data() + out.size() - 4, "\0\0\xff\xff", 4) == 0)
      out.resize(out.size() - 4);
    if (finish || (fin && reset_)) deflateReset(&z_);
    return out;
  }

 private:
  z_stream z_ = {};
  bool ready_ = false;
  int bits_ = 15;
  bool reset_ = false;
};

// Byte loops over payloads of up to 128 KiB: kept out of the coverage
// instrumentation, whose per-comparison callbacks would make them the
// fuzzer's main cost while telling it nothing.
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))

NO_COVERAGE void mask_into(char *dst, const std::string &payload,
                           const uint8_t key[4]) {
  for (size_t i = 0; i < payload.size(); ++i)
    dst[i] = static_cast<char>(payload[i] ^ key[i & 3]);
}

NO_COVERAGE void fill_pattern(std::string *payload, uint8_t fill,
                              bool scrambled) {
  if (!scrambled) {
    std::memset(&(*payload)[0], fill, payload->size());
    return;
  }
  for (size_t i = 0; i < payload->size(); ++i)
    (*payload)[i] =
        static_cast<char>(fill ^ static_cast<uint8_t>(i * 131 + (i >> 7)));
}

// |declared| is the length in the header; the payload may be shorter (the
// server stops reading at the header of a frame over its limit).
void append_frame(std::string *s, uint8_t b0, uint8_t ctl,
                  const std::string &payload, uint64_t declared) {
  static const uint8_t kKey[4] = {0x37, 0xfa, 0x21, 0x3d};
  const bool masked = !(ctl & 0x01);
  const uint8_t m = masked ? 0x80 : 0;
  const uint64_t n = declared;
  s->push_back(static_cast<char>(b0));
  if (n < 126 && !(ctl & 0x02)) {
    s->push_back(static_cast<char>(m | n));
  } else if (n < 65536 && !(ctl & 0x02 && n >= 126)) {
    s->push_back(static_cast<char>(m | 126));
    s->push_back(static_cast<char>(n >> 8));
    s->push_back(static_cast<char>(n));
  } else {
    s->push_back(static_cast<char>(m | 127));
    for (int shift = 56; shift >= 0; shift -= 8)
      s->push_back(static_cast<char>(n >> shift));
  }
  if (!masked) {
    s->append(payload);
    return;
  }
  s->append(reinterpret_cast<const char *>(kKey), 4);
  size_t at = s->size();
  s->resize(at + payload.size());
  mask_into(&(*s)[at], payload, kKey);
}

void encode_structured(Reader &in, ClientDeflater &cd, std::string *s) {
  while (in.n > 0) {
    const uint8_t b0 = in.byte();
    const uint8_t ctl = in.byte();
    std::string payload;
    uint64_t declared = UINT64_MAX;  // the payload's own length
    if ((ctl & 0x18) == 0x08) {
      // Large frames from a few bytes: up to 128 KiB, past the 64 KiB
      // limit, and highly compressible ones for deflate bombs.
      size_t len = in.byte();
      len |= static_cast<size_t>(in.byte()) << 8;
      if (ctl & 0x40) len |= static_cast<size_t>(in.byte() & 1) << 16;
      const uint8_t fill = in.byte();
      declared = len;
      // Past the limit only the header counts; unless it is deflated
      // first (a bomb), a token payload will do.
      if (len > kMaxFrame && !(ctl & 0x04)) len = 1024;
      payload.resize(len);
      if (len) fill_pattern(&payload, fill, ctl & 0x80);
    } else if ((ctl & 0x18) == 0x10) {
      payload.push_back(static_cast<char>(in.byte()));  // code, big-endian
      payload.push_back(static_cast<char>(in.byte()));
      payload += in.bytes(in.byte());
    } else {
      payload = in.bytes(in.byte());
    }
    if (ctl & 0x04) payload = cd.compress(payload, b0 & 0x80, ctl & 0x20);
    if (declared == UINT64_MAX || ctl & 0x04) declared = payload.size();
    append_frame(s, b0, ctl, payload, declared);
  }
}

// ----------------------------------------------------------- the oracle

bool sendable_close_code(uint16_t c) {
  return c >= 1000 && c <= 4999 && c != 1004 && c != 1005 && c != 1006 &&
         c != 1015;
}

// Inflates one server message (RFC 7692 7.2.2), keeping the context.
class ClientInflater {
 public:
  ~ClientInflater() {
    if (ready_) inflateEnd(&z_);
  }
  std::string inflate_message(std::string payload) {
    if (!ready_) {
      CHECK(inflateInit2(&z_, -15) == Z_OK);
      ready_ = true;
    }
    payload.append("\0\0\xff\xff", 4);
    std::string out;
    z_.next_in = reinterpret_cast<Bytef *>(&payload[0]);
    z_.avail_in = static_cast<uInt>(payload.size());
    while (true) {
      size_t used = out.size();
      out.resize(used + 65536);
      z_.next_out = reinterpret_cast<Bytef *>(&out[used]);
      z_.avail_out = 65536;
      int rc = inflate(&z_, Z_SYNC_FLUSH);
      out.resize(used + 65536 - z_.avail_out);
      CHECK(rc == Z_OK || rc == Z_BUF_ERROR);  // never BFINAL, never corrupt
      if (z_.avail_in == 0 && z_.avail_out != 0) break;
      CHECK(out.size() <= 512 * 1024);  // no reply is larger
    }
    return out;
  }

 private:
  z_stream z_ = {};
  bool ready_ = false;
};

void check_output(const Run &r) {
  const std::string &o = r.out;
  if (o.empty()) {
    CHECK(!r.upgraded);
    return;
  }
  CHECK(o.rfind("HTTP/1.1 ", 0) == 0);
  size_t head_end = o.find("\r\n\r\n");
  CHECK(head_end != std::string::npos);
  head_end += 4;
  const std::string head = o.substr(0, head_end);
  const bool is101 = o.rfind("HTTP/1.1 101 ", 0) == 0;
  CHECK(is101 == r.upgraded);
  if (!is101) {
    // One plain response, its body exactly content-length long.
    size_t at = head.find("content-length: ");
    CHECK(at != std::string::npos);
    size_t body = std::strtoul(head.c_str() + at + 16, nullptr, 10);
    CHECK(o.size() == head_end + body);
    return;
  }
  const bool deflate =
      head.find("\r\nSec-WebSocket-Extensions: permessage-deflate") !=
      std::string::npos;
  CHECK(deflate == r.compressed);
  if (r.expect_deflate >= 0) CHECK(deflate == (r.expect_deflate == 1));

  ClientInflater inflater;
  size_t pos = head_end, next_reply = 0;
  bool closed = false;
  auto byte = [&](size_t i) { return static_cast<uint8_t>(o[i]); };
  while (pos < o.size()) {
    CHECK(!closed);  // nothing after our close frame
    CHECK(pos + 2 <= o.size());
    const uint8_t b0 = byte(pos), b1 = byte(pos + 1);
    const uint8_t op = b0 & 0x0f, rsv = b0 & 0x70;
    CHECK(b0 & 0x80);        // lariat sends whole messages
    CHECK(!(b1 & 0x80));     // servers never mask
    uint64_t len = b1 & 0x7f;
    size_t hdr = 2;
    if (len == 126) {
      CHECK(pos + 4 <= o.size());
      len = (byte(pos + 2) << 8) | byte(pos + 3);
      CHECK(len >= 126);
      hdr = 4;
    } else if (len == 127) {
      CHECK(pos + 10 <= o.size());
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | byte(pos + 2 + i);
      CHECK(len >= 65536 && len < (1ull << 63));
      hdr = 10;
    }
    CHECK(len <= o.size() - pos - hdr);
    const std::string payload = o.substr(pos + hdr, len);
    pos += hdr + len;
    switch (op) {
      case LARIAT_OP_TEXT:
      case LARIAT_OP_BINARY: {
        CHECK(rsv == 0 || (rsv == 0x40 && deflate));
        std::string message = rsv ? inflater.inflate_message(payload) : payload;
        CHECK(next_reply < r.replies.size());
        CHECK(r.replies[next_reply].first == op);
        CHECK(r.replies[next_reply].second == message);
        ++next_reply;
        break;
      }
      case LARIAT_OP_CLOSE:
        CHECK(rsv == 0 && len <= 125 && len != 1);
        if (len >= 2)
          CHECK(sendable_close_code(
              static_cast<uint16_t>((byte(pos - len) << 8) |
                                    byte(pos - len + 1))));
        closed = true;
        break;
      case LARIAT_OP_PING:
      case LARIAT_OP_PONG:
        CHECK(rsv == 0 && len <= 125);
        break;
      default:
        CHECK(false && "unknown opcode sent");
    }
  }
  CHECK(next_reply == r.replies.size());  // every reply went out
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lariat_server *server = the_server();
  Reader in{data, size};
  const uint8_t o0 = in.byte(), o1 = in.byte(), o2 = in.byte(),
                o3 = in.byte(), o4 = in.byte(), o5 = in.byte();
  size_t chunks[4];
  for (size_t &c : chunks) {
    uint8_t b = in.byte();
    c = b ? b : SIZE_MAX;
  }

  Run run;
  g_run = &run;
  const int mode = o0 & 3;
  const bool offer = o0 & 0x04;
  run.validate_utf8 = !(o0 & 0x08);
  run.deferred_close = o0 & 0x10;
  const bool end_with_error = o0 & 0x20;
  const bool ticks = o0 & 0x40;
  run.greet = o0 & 0x80;
  lariat::detail::DeflateConfig &cfg = run.deflate;
  cfg.enabled = true;
  cfg.server_no_context_takeover = o1 & 0x01;
  cfg.client_no_context_takeover = o1 & 0x02;
  const char *offer_text = offer ? kOffers[(o1 >> 2) & 3] : nullptr;
  cfg.threshold = o1 & 0x10 ? 16 : 0;
  cfg.server_max_window_bits = 15 - (o1 >> 5);
  cfg.client_max_window_bits = 15 - (o2 & 7);
  cfg.level = (6 + ((o2 >> 3) & 15)) % 10;
  cfg.mem_level = o2 & 0x80 ? 1 : 8;
  run.flow = o4;
  run.slow_peer = o4 & 0x02;
  run.failing_write = o4 >> 6;
  static const int kInfoResults[4] = {LARIAT_OK, LARIAT_HIBERNATE,
                                      LARIAT_SHUTDOWN, LARIAT_CRASH};
  run.info_result = kInfoResults[(o5 >> 5) & 3];

  std::string stream;
  if (mode == 2) {
    stream = in.bytes(in.n);
  } else {
    stream = upgrade_head(offer_text);
    lariat::detail::DeflateParams params;
    std::string response;
    run.expect_deflate =
        offer_text && lariat::detail::negotiate_deflate({offer_text}, cfg,
                                                        &params, &response);
    if (mode == 0) {
      stream += in.bytes(in.n);
    } else {
      // Compress as the server will expect: the negotiated window, and a
      // reset per message when client_no_context_takeover was agreed.
      ClientDeflater cd;
      if (run.expect_deflate)
        cd.setup(params.client_window_bits, params.client_no_context_takeover);
      encode_structured(in, cd, &stream);
    }
  }

  lariat_conn *conn = server->accept<FakeTransport>(&run);
  CHECK(conn != nullptr);
  auto usable = [&] { return !run.gone && !run.close_requested; };
  // After every event, what libuv would report next: a failed write's
  // error, then a deferred close completing.
  auto after_event = [&] {
    if (run.error_pending && usable()) {
      run.error_pending = false;
      conn->on_transport_error(UV_EPIPE);
    }
    if (!run.close_requested) return;
    if (!run.deferred_close) {
      CHECK(run.gone);  // closed from inside close(): finalized by now
      return;
    }
    CHECK(!run.gone && conn->state == lariat_conn::State::kClosed);
    conn->on_transport_closed();
    CHECK(run.gone);
  };
  static const uint64_t kClockSteps[4] = {0, 150, 6000, 11000};
  int nticks = 0;
  // What happens between reads: time passes, the host posts a message,
  // replies from outside any callback, or the server stops.
  auto tick = [&] {
    ++nticks;
    server->manual_clock += kClockSteps[(o3 >> 5) & 3];
    if (o5 & 0x01 && usable()) {
      // As lariat_server's mailbox delivers it (deliver_mail).
      ++run.posted;
      conn->deliver_info({conn->id, new std::string("info"), free_letter});
      after_event();
    }
    if (o5 & 0x08 && usable()) {
      std::string msg = o5 & 0x10 ? std::string(300 * 1024, 'H') : "host";
      reply(conn, LARIAT_OP_TEXT, msg.data(), msg.size());
      after_event();
    }
    if (o5 & 0x02 && nticks == 1 && usable()) {
      conn->stop();  // what lariat_server_stop() does to each connection
      after_event();
    }
    if (!(o5 & 0x04) && usable()) {
      if (o3 & 0x80)
        server->on_timer();  // only connections whose deadline passed
      else
        conn->on_deadline();  // as if it had
      after_event();
    }
  };
  // The peer reads some of what a slow transport holds, and the
  // transport says so, as TcpTransport's write callback does.
  auto peer_reads = [&] {
    if (!run.held || !usable()) return;
    run.held /= 4;
    conn->on_output_progress();
    after_event();
  };

  if (o4 & 0x10 && usable()) {  // over the server's connection limit
    conn->refuse_busy();
    after_event();
  }
  const size_t every = o3 & 0x1f;
  int fired = 0;
  if (ticks && every == 0) {
    tick();
    ++fired;
  }
  // Pattern frames make streams of up to a few hundred KiB from a few
  // bytes: scale the chunks so no input needs more than ~4K reads (tiny
  // chunks of a huge stream only make the fuzzer slow).
  const size_t chunk_scale = 1 + stream.size() / 4096;
  size_t off = 0, nchunk = 0;
  while (off < stream.size() && usable()) {
    peer_reads();
    if (!run.reading && usable()) {
      // The handler paused reading; a host program resumes it later. A
      // paused transport delivers nothing, so stop if that fails.
      int rc = lariat_conn_set_active(conn, 1);
      after_event();
      CHECK(rc == 0 || rc == LARIAT_ERR_CLOSING);
      if (rc != 0) break;
      CHECK(run.reading || !usable());
    }
    if (!usable()) break;
    const size_t c = chunks[nchunk % 4];
    size_t n = std::min(c == SIZE_MAX ? c : c * chunk_scale, stream.size() - off);
    // An exactly sized copy that dies after the call: ASan then sees any
    // read past the chunk or any use of it after on_read() returned.
    std::unique_ptr<uint8_t[]> chunk(new uint8_t[n]);
    std::memcpy(chunk.get(), stream.data() + off, n);
    conn->on_read(chunk.get(), n);
    chunk.reset();
    after_event();
    off += n;
    ++nchunk;
    if (ticks && every && nchunk % every == 0 && fired < 3) {
      tick();
      ++fired;
    }
  }
  if (ticks) tick();  // and once at the end

  // The end of the byte stream. A paused transport reports no EOF: the
  // connection must then end through its close timeout.
  if (usable() && !run.reading) {
    int rc = lariat_conn_set_active(conn, 1);
    after_event();
    CHECK(rc == 0 || rc == LARIAT_ERR_CLOSING);
    if (rc != 0 && usable()) {
      server->manual_clock += 6000;  // past the 5 s close timeout
      server->on_timer();
      after_event();
      CHECK(!usable());  // the close timer alone ended it
    }
  }
  if (usable()) {
    if (end_with_error)
      conn->on_transport_error(UV_ECONNRESET);
    else
      conn->on_eof();
    after_event();
  }

  // Every connection ends: after EOF (or a socket error) nothing may keep
  // it open, and terminate ran once for a request that reached init.
  CHECK(run.gone);
  CHECK(server->conns.empty());
  CHECK(run.terminates == run.inits);
  CHECK(run.ws_inits == (run.upgraded ? 1 : 0));
  CHECK(run.freed == run.posted);
  if (g_trace) {
    std::fprintf(stderr, "mode %d: %zu stream bytes in %zu chunks; %zu out, "
                 "%zu replies, %d drains%s%s\n", mode, stream.size(), nchunk,
                 run.out.size(), run.replies.size(), run.drains,
                 run.compressed ? ", deflate" : "", run.shut ? ", FIN" : "");
    size_t head_end = run.out.find("\r\n\r\n");
    std::fprintf(stderr, "  %.*s\n  frames:",
                 static_cast<int>(run.out.find("\r\n")), run.out.c_str());
    for (size_t i = head_end == std::string::npos ? run.out.size() : head_end + 4;
         i < run.out.size() && i < head_end + 4 + 48; ++i)
      std::fprintf(stderr, " %02x", static_cast<uint8_t>(run.out[i]));
    std::fprintf(stderr, "\n");
  }
  check_output(run);
  g_run = nullptr;
  return 0;
}
