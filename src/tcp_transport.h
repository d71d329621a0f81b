// The libuv transport: a uv_tcp_t with try-write first, then at most one
// uv_write in flight while later bytes gather behind it.
#ifndef LARIAT_TCP_TRANSPORT_H
#define LARIAT_TCP_TRANSPORT_H

#include <uv.h>

#include <string>

#include "transport.h"

struct lariat_conn;
struct lariat_server;

namespace lariat::detail {

class TcpTransport final : public Transport {
 public:
  explicit TcpTransport(lariat_server *server) : server_(server) {}
  // Initialises the handle and accepts from |listener|; 0 or a libuv code.
  // On failure the handle is closed and deletes this transport itself.
  int accept(uv_stream_t *listener);
  // Starts reading into the server's shared buffer, reporting to |conn|.
  int start(lariat_conn *conn);

  void write(const uint8_t *p, size_t n) override;
  void shutdown() override;
  void close() override;
  size_t buffered() const override { return inflight_.size() + pending_.size(); }
  int peer(char *buf, size_t size, int *port) const override;

 private:
  static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
  static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
  static void on_written(uv_write_t *req, int status);
  static void on_shutdown(uv_shutdown_t *req, int status);
  static void on_closed(uv_handle_t *h);
  void start_write();

  lariat_server *server_;
  lariat_conn *conn_ = nullptr;
  uv_tcp_t tcp_;
  uv_write_t write_req_;
  uv_shutdown_t shutdown_req_;
  std::string inflight_;  // owned by the uv_write in flight
  std::string pending_;   // waiting for it to finish
  bool writing_ = false;
  bool shutdown_wanted_ = false;
  bool shutdown_sent_ = false;
  bool closing_ = false;
};

}  // namespace lariat::detail

#endif
