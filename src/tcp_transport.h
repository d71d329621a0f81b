// The socket transport: the socket driven through a uv_poll_t on libuv's
// loop, much as uSockets drives its own: recv() into the loop's shared
// buffer (again at once while a read fills it, as libuv does),
// send(MSG_NOSIGNAL | MSG_DONTWAIT) at once, writability watched only
// while bytes the kernel refused wait, so
// the epoll set changes only under backpressure. A uv_poll_t is 160 B
// where a uv_tcp_t is 248 B; the transport lives in its connection's
// allocation (the handle's data is the connection), and its queue exists
// only while bytes wait, in the loop's table (write_queue.h).
#ifndef LARIAT_TCP_TRANSPORT_H
#define LARIAT_TCP_TRANSPORT_H

#include <uv.h>


#include "transport.h"
#include "write_queue.h"

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
  TcpTransport() : reading_(false), connecting_(false), queued_(false) {}
  // Takes the socket |listener| accepted (take_accepted()) and initialises
  // the handle; 0 or a libuv code. On failure the connection is gone and
  // the socket closed.
  int accept(uv_stream_t *listener);
  // The socket libuv accepted for |listener| before its connection
  // callback, taken from it as uv_accept() would (the listener goes on
  // accepting); -1 if there is none.
  static int take_accepted(uv_stream_t *listener);
  // The client side: initialises the handle and connects to |addr|;
  // lariat_conn::on_connected() or on_transport_error() follows. Returns
  // 0, or a libuv code when the handle could not be initialised (nothing
  // to close then); a connect refused at once is reported as an error
  // event like a later one.
  int connect(const sockaddr *addr);
  // Starts reading into the server's shared buffer.
  int start();
  void attach(lariat_conn *conn) override { poll_.data = conn; }

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
  lariat_conn *conn() const { return static_cast<lariat_conn *>(poll_.data); }
  bool closing() const {
    return uv_is_closing(reinterpret_cast<const uv_handle_t *>(&poll_)) != 0;
  }

 private:
  int init(int fd);
  // The bytes waiting for the kernel, or nullptr when none wait.
  WriteQueue *queue() const;
  // The queue, made (empty) when there was none; throws std::bad_alloc.
  WriteQueue &make_queue();
  void drop_queue();
  static void on_io(uv_poll_t *h, int status, int events) noexcept;
  void on_error(int status);
  void on_writable();
  void on_readable();
  // Keeps libuv's watch in step with what is wanted; uv_poll_start()
  // re-registers the socket, so only a change calls it.
  void update_events();
  // Sends what the socket takes; returns how much, or -1 with the error
  // kept for the next writable event.
  ssize_t send_some(const void *p, size_t n);
  // Out of memory with bytes possibly half sent: the stream is lost.
  void fail_nomem();
  void send_fin();
  static void on_closed(uv_handle_t *h) noexcept;

  uv_poll_t poll_;
  int fd_ = -1;
  // A libuv code (-errno) waiting for the writable event to report it: a
  // refused connect or a failed send, reported after the call that met
  // it, as libuv reports a uv_write's failure.
  int16_t error_ = 0;
  uint8_t events_ = 0;  // what uv_poll_start() was last given
  bool reading_ : 1;
  bool connecting_ : 1;
  bool queued_ : 1;  // the loop's table holds a queue for this
};

}  // namespace lariat::detail

#endif
