// What a connection needs from the byte stream under it. TcpTransport is
// the libuv one; tests and fuzzers drive the connection core through a fake
// one, without sockets.
#ifndef LARIAT_TRANSPORT_H
#define LARIAT_TRANSPORT_H

#include <cstddef>
#include <cstdint>

struct lariat_conn;

namespace lariat::detail {

class Transport {
 public:
  virtual ~Transport() = default;
  // The connection that owns this transport and hears its events; called
  // by the connection's constructor.
  virtual void attach(lariat_conn *conn) = 0;
  // Sends |n| bytes, in order after earlier writes; bytes that cannot go
  // out at once are copied. Errors come back later through
  // lariat_conn::on_transport_error().
  virtual void write(const uint8_t *p, size_t n) = 0;
  // Two buffers in order, with one system call where the transport can;
  // the large frames lariat sends go out this way without being copied.
  virtual void write2(const uint8_t *a, size_t an, const uint8_t *b,
                      size_t bn) {
    write(a, an);
    write(b, bn);
  }
  // Sends FIN once every queued byte is written; reading goes on.
  virtual void shutdown() = 0;
  // Stops reading and writing; lariat_conn::on_transport_closed() follows,
  // possibly from inside this call.
  virtual void close() = 0;
  // Bytes accepted by write() and not yet handed to the kernel.
  virtual size_t buffered() const = 0;
  // Stops or restarts reading; 0 or a libuv error code.
  virtual int set_reading(bool on) = 0;
  // The peer's address as text; 0 or a libuv error code.
  virtual int peer(char *buf, size_t size, int *port) const = 0;
  // The connection hibernates: a transport with buffers of its own (TLS)
  // gives them back.
  virtual void idle() {}
  // The loop delivered the transport's own wake-up (lariat_server::
  // wake_transport): a TLS transport resumed with ciphertext it kept
  // while paused decrypts it here, outside the caller's callback.
  virtual void woken() {}
  // The TLS protocol in use ("TLSv1.3"), or nullptr on a plain transport.
  virtual const char *tls_version() const { return nullptr; }
  // Whether the TLS handshake resumed a session.
  virtual bool tls_resumed() const { return false; }
};

}  // namespace lariat::detail

#endif
