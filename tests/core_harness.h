// Drives the connection core without sockets: a fake transport that
// records what the core writes, and a server whose connections are fed
// scripted bytes (nghttp2's scripted_data_feed style). Shared by the
// I/O-free tests.
#ifndef LARIAT_TESTS_CORE_HARNESS_H
#define LARIAT_TESTS_CORE_HARNESS_H

#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "connection.h"
#include "server.h"

namespace core_test {

// What one fake socket saw.
struct Wire {
  std::string out;       // every byte written
  size_t writes = 0;     // write calls (one per flush)
  size_t buffered = 0;   // what buffered() reports: bytes "in the kernel"
  bool reading = true;   // set_reading()
  bool shut = false, closed = false;
  lariat_conn *conn = nullptr;
};

class FakeTransport final : public lariat::detail::Transport {
 public:
  explicit FakeTransport(Wire *wire) : wire_(wire) {}
  void attach(lariat_conn *c) override { wire_->conn = c; }
  void write(const uint8_t *p, size_t n) override {
    wire_->out.append(reinterpret_cast<const char *>(p), n);
    ++wire_->writes;
  }
  void shutdown() override { wire_->shut = true; }
  void close() override {
    wire_->closed = true;
    wire_->conn->on_transport_closed();  // synchronously: the core copes
  }
  size_t buffered() const override { return wire_->buffered; }
  int set_reading(bool on) override {
    wire_->reading = on;
    return 0;
  }
  int peer(char *buf, size_t size, int *port) const override {
    std::snprintf(buf, size, "scripted");
    if (port) *port = 7;
    return 0;
  }

 private:
  Wire *wire_;
};

inline std::string bytes(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) s.push_back(static_cast<char>(b));
  return s;
}

// A client frame, masked with 11 22 33 44 (payloads under 64 KiB).
inline std::string mask_frame(int first_byte, const std::string &payload) {
  const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
  std::string f;
  f.push_back(static_cast<char>(first_byte));
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(0x80 | payload.size()));
  } else {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size() & 0xff));
  }
  f.append(reinterpret_cast<const char *>(key), 4);
  for (size_t i = 0; i < payload.size(); ++i)
    f.push_back(static_cast<char>(payload[i] ^ key[i % 4]));
  return f;
}

inline std::string upgrade_request(const std::string &target = "/chat",
                                   const std::string &extra_headers = "") {
  return "GET " + target +
         " HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         "Sec-WebSocket-Version: 13\r\n" +
         extra_headers + "\r\n";
}

// A server (with a loop of its own that is never run unless a test runs
// it) whose connections sit on fake transports.
struct CoreServer {
  lariat_server *server = nullptr;
  std::deque<std::unique_ptr<Wire>> wires;

  explicit CoreServer(const lariat_options *opts = nullptr) {
    if (lariat_server_new(&server, nullptr, opts) != 0) server = nullptr;
  }
  ~CoreServer() { lariat_server_del(server); }
  int route(const char *path, const lariat_handler *h, void *data) {
    return lariat_server_route(server, path, h, data);
  }
  // A connection on loop |loop| of the server (lariat_options_set_threads).
  Wire *open(size_t loop = 0) {
    wires.push_back(std::make_unique<Wire>());
    Wire *w = wires.back().get();
    server->loops[loop]->accept<FakeTransport>(w);
    return w;
  }
  // Feeds |data| in chunks of |chunk| bytes; stops once the wire closed.
  static void feed(Wire *w, const std::string &data, size_t chunk = 1u << 20) {
    for (size_t off = 0; off < data.size() && !w->closed; off += chunk) {
      // A private copy, as libuv's read buffer: payloads unmask in place.
      std::string piece = data.substr(off, chunk);
      w->conn->on_read(reinterpret_cast<uint8_t *>(piece.data()), piece.size());
    }
  }
  static void eof(Wire *w) {
    if (!w->closed) w->conn->on_eof();
  }
};

}  // namespace core_test

#endif
