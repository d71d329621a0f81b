// wss://: TLS between the connection and its TCP socket. Ciphertext comes
// from libuv's reads and leaves through TcpTransport's write path (so
// buffered() counts the ciphertext the kernel has not taken); OpenSSL
// sees it through one BIO of our own that reads the bytes of the current
// read in place and appends what it writes to the loop's scratch, which
// goes to the socket after each SSL call. Every write() of the core (all
// frames of one event) is one SSL_write.
//
// Cheap when idle: the SSL is created on the first byte (a socket that
// never speaks costs no OpenSSL state), and idle() (hibernation) gives
// OpenSSL's record buffers back with SSL_free_buffers.
#ifndef LARIAT_TLS_TRANSPORT_H
#define LARIAT_TLS_TRANSPORT_H

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "tcp_transport.h"
#include "tls_context.h"

namespace lariat::detail {

class TlsTransport final : public TcpTransport {
 public:
  // Takes a reference to |tls| for the connection's life.
  explicit TlsTransport(lariat_tls *tls) : tls_(tls) { tls_->retain(); }
  ~TlsTransport() override;

  void write(const uint8_t *p, size_t n) override;
  void write2(const uint8_t *a, size_t an, const uint8_t *b,
              size_t bn) override;
  void shutdown() override;
  int set_reading(bool on) override;
  void idle() override;
  void woken() override;
  const char *tls_version() const override;

  lariat_tls *tls() const { return tls_; }
  // The certificates of this handshake (for SNI); null once it is done.
  const CertSet *certs() const { return certs_.get(); }

  // The BIO's two ends.
  int bio_read(char *out, size_t n, size_t *got);
  void bio_write(const char *p, size_t n);

 protected:
  void received(uint8_t *p, size_t n) override;
  void ended() override;

 private:
  bool make_ssl();
  // Handshakes and decrypts what |in_| holds until it runs out, the
  // connection pauses or the connection ends.
  void pump();
  // Sends what OpenSSL wrote (records, alerts, tickets, key updates).
  void flush_cipher();
  // Encrypts |n| plaintext bytes into the scratch (flushed by the caller).
  bool seal(const uint8_t *p, size_t n);
  // A TLS error: the reason is counted when the handshake had not ended,
  // and the connection closes as a socket error (UV_EPROTO).
  void fail(const char *fallback);
  void keep_rest();

  lariat_tls *tls_;
  std::shared_ptr<const CertSet> certs_;
  SSL *ssl_ = nullptr;
  // Ciphertext of the read being handled, not yet taken by OpenSSL.
  const uint8_t *in_ = nullptr;
  size_t in_len_ = 0;
  // Ciphertext that arrived before a pause, for after the resume.
  std::unique_ptr<std::string> stash_;
  bool established_ = false;
  bool paused_ = false;
  bool failed_ = false;
  bool pumping_ = false;
};

}  // namespace lariat::detail

#endif
