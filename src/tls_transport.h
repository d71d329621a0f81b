// wss://: TLS between the connection and its TCP socket. Ciphertext comes
// from libuv's reads and leaves through TcpTransport's write path (so
// buffered() counts the ciphertext the kernel has not taken); OpenSSL
// sees it through one BIO of our own that reads the bytes of the current
// read in place and appends what it writes to the loop's scratch, which
// goes to the socket after each SSL call. Every write() of the core (all
// frames of one event) is one SSL_write.
//
// Cheap when idle: the SSL is created once the ClientHello is in (a
// socket that never speaks costs no OpenSSL state), and a TLS 1.3
// connection leaves it as soon as the handshake is over and everything
// read is answered (or, failing that, when it hibernates): its traffic
// secrets (from the keylog callback) and the record counts of both
// directions (counted here, in the BIO) go to a Tls13Records, which
// protects its records from then on with two cipher contexts (freed too
// while it hibernates). TLS 1.2 keeps its SSL, whose record buffers go
// whenever they empty.
//
// The client side (wss:// from lariat_connect) is the same transport
// with an SSL in the connect state, made by the session (ClientTls):
// the handshake starts when the socket connects, the upgrade request
// goes once it is over, and a failure (a certificate that does not
// verify, say) becomes the attempt's HANDSHAKE_FAILED reason. A client
// keeps its SSL for the connection's life.
#ifndef LARIAT_TLS_TRANSPORT_H
#define LARIAT_TLS_TRANSPORT_H

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "tcp_transport.h"
#include "tls_context.h"
#include "tls_records.h"

namespace lariat::detail {

class TlsTransport final : public TcpTransport {
 public:
  // Takes a reference to |tls| for the connection's life.
  explicit TlsTransport(lariat_tls *tls) : tls_(tls) { tls_->retain(); }
  // The client side: takes |ssl| (in the connect state, or null when it
  // could not be made: the connect then fails the attempt).
  explicit TlsTransport(SSL *ssl) : tls_(nullptr), ssl_(ssl) {}
  ~TlsTransport() override;

  void write(const uint8_t *p, size_t n) override;
  void write2(const uint8_t *a, size_t an, const uint8_t *b,
              size_t bn) override;
  void shutdown() override;
  int set_reading(bool on) override;
  void idle() override;
  void woken() override;
  const char *tls_version() const override;
  bool tls_resumed() const override { return resumed_; }

  lariat_tls *tls() const { return tls_; }
  // The certificates of this handshake (for SNI); null once it is done.
  const CertSet *certs() const { return certs_.get(); }

  // The BIO's two ends.
  int bio_read(char *out, size_t n, size_t *got);
  void bio_write(const char *p, size_t n);
  // OpenSSL's keylog line for this connection (the traffic secrets).
  void keylog(const char *line);
  // The client side: a session the server issued (a ticket), for the
  // client's next attempt to resume. Takes |session| when it returns true.
  bool keep_session(SSL_SESSION *session);
  // A KeyUpdate went by: the secrets kept are not the keys in use.
  void key_updated() {
    if (scan_) scan_->key_updated = true;
  }

 protected:
  void received(uint8_t *p, size_t n) override;
  void ended() override;
  void connected() override;

 private:
  bool client() const { return tls_ == nullptr; }
  // The handshake did not finish: counted on the server's lariat_tls, or
  // the client attempt's reason.
  void handshake_failed(const char *why);
  bool make_ssl();
  // Connects |ssl_| to the socket through our BIO (both sides); false when
  // out of memory.
  bool attach_ssl();
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
  // Hands the connection from the SSL to a Tls13Records when it can.
  bool leave_ssl();
  // pump() once the SSL is gone.
  void pump_records();

  // What it takes to leave the SSL behind, gathered while it works.
  struct Scan {
    // Record boundaries of one direction of the stream OpenSSL sees.
    struct Stream {
      uint8_t header[5];
      uint8_t have = 0;
      uint32_t left = 0;
      uint64_t records = 0, protected_records = 0;  // all, outer type 23
      void feed(const uint8_t *p, size_t n);
      bool at_boundary() const { return have == 0 && left == 0; }
    };
    Stream in, out;
    uint64_t app_write_start = 0;  // out.records when our app keys began
    uint8_t client_secret[48], server_secret[48];
    uint8_t secret_len = 0;
    bool have_client = false, have_server = false, key_updated = false;
  };

  lariat_tls *tls_;
  std::shared_ptr<const CertSet> certs_;
  SSL *ssl_ = nullptr;
  std::unique_ptr<Scan> scan_;             // while the SSL runs (TLS 1.3)
  std::unique_ptr<Tls13Records> records_;  // once it is gone
  // Ciphertext of the read being handled, not yet taken by OpenSSL.
  const uint8_t *in_ = nullptr;
  size_t in_len_ = 0;
  // Ciphertext that arrived before a pause, for after the resume.
  std::unique_ptr<std::string> stash_;
  bool established_ = false;
  bool resumed_ = false;
  bool paused_ = false;
  bool failed_ = false;
  bool pumping_ = false;
};

}  // namespace lariat::detail

#endif
