// The libuv transport: a uv_tcp_t with try-write first, then at most one
// uv_write in flight while later bytes gather behind it. The write request
// and queues exist only while bytes wait, so an idle connection pays for
// its uv_tcp_t and two pointers (it lives in its connection's allocation;
// the handle's data is the connection).
#ifndef LARIAT_TCP_TRANSPORT_H
#define LARIAT_TCP_TRANSPORT_H

#include <uv.h>

#include <memory>
#include <string>

#include "transport.h"

struct lariat_conn;
struct lariat_server;

namespace lariat::detail {

// uv_buf_init() takes an unsigned length; uv_buf_t's own is size_t on
// Unix, so a buffer of 4 GiB or more is described whole this way.
inline uv_buf_t to_uv_buf(const void *p, size_t n) {
  uv_buf_t buf;
  buf.base = const_cast<char *>(static_cast<const char *>(p));
  buf.len = n;
  return buf;
}

class TcpTransport : public Transport {
 public:
  TcpTransport() = default;
  // Initialises the handle and accepts from |listener|; 0 or a libuv code.
  // On failure the connection is gone (no handle) or going (the handle is
  // closing, and its close ends the connection).
  int accept(uv_stream_t *listener);
  // The client side: initialises the handle and connects to |addr|;
  // lariat_conn::on_connected() or on_transport_error() follows. Returns
  // 0, or a libuv code when the handle could not be initialised (nothing
  // to close then); a connect refused at once is reported as an error
  // event like a later one.
  int connect(const sockaddr *addr);
  // Starts reading into the server's shared buffer.
  int start();
  void attach(lariat_conn *conn) override { tcp_.data = conn; }

  void write(const uint8_t *p, size_t n) override;
  void write2(const uint8_t *a, size_t an, const uint8_t *b,
              size_t bn) override;
  void shutdown() override;
  void close() override;
  size_t buffered() const override;
  int set_reading(bool on) override;
  int peer(char *buf, size_t size, int *port) const override;

 protected:
  // What the socket brought, for the layer above: the connection here,
  // the TLS record layer in TlsTransport.
  virtual void received(uint8_t *p, size_t n);
  virtual void ended();
  // The client's connect completed and reading started: in clear the
  // request can go at once; TLS starts its handshake first.
  virtual void connected();
  lariat_conn *conn() const { return static_cast<lariat_conn *>(tcp_.data); }
  bool closing() const {
    return uv_is_closing(reinterpret_cast<const uv_handle_t *>(&tcp_)) != 0;
  }

 private:
  // Bytes the kernel did not take at once: one uv_write in flight, and
  // what arrived meanwhile.
  struct WriteQueue {
    uv_write_t req;
    std::string inflight;
    std::string pending;
    bool writing = false;
    bool fin_wanted = false;  // shutdown() waits for these bytes
  };

  static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) noexcept;
  static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) noexcept;
  static void on_written(uv_write_t *req, int status) noexcept;
  static void on_shutdown(uv_shutdown_t *req, int status) noexcept;
  static void on_closed(uv_handle_t *h) noexcept;
  static void on_connect(uv_connect_t *req, int status) noexcept;
  void start_write();
  // Out of memory with bytes possibly half sent: the stream is lost.
  void fail_nomem();
  void send_fin();
  uv_stream_t *stream() { return reinterpret_cast<uv_stream_t *>(&tcp_); }

  uv_tcp_t tcp_;
  std::unique_ptr<WriteQueue> queue_;
};

}  // namespace lariat::detail

#endif
