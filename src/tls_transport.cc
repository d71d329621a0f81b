#include "tls_transport.h"

#include <openssl/err.h>

#include <cstring>

#include "client.h"
#include "connection.h"
#include "server.h"

namespace lariat::detail {

namespace {

// Plaintext of one read is gathered up to this before the connection
// sees it, so that the frames of several records make one event.
constexpr size_t kPlainSize = 64 * 1024;
// Plaintext is sealed this much at a time: the scratch stays bounded
// whatever the message size, and the kernel gets bytes early.
constexpr size_t kSealChunk = 256 * 1024;

TlsTransport *owner(BIO *b) { return static_cast<TlsTransport *>(BIO_get_data(b)); }

int bio_write_ex(BIO *b, const char *p, size_t n, size_t *written) {
  BIO_clear_retry_flags(b);
  try {
    owner(b)->bio_write(p, n);
  } catch (...) {
    return 0;  // out of memory: OpenSSL fails the call, we close
  }
  *written = n;
  return 1;
}

int bio_read_ex(BIO *b, char *out, size_t n, size_t *got) {
  BIO_clear_retry_flags(b);
  int rc = owner(b)->bio_read(out, n, got);
  if (rc == 0) BIO_set_retry_read(b);
  return rc;
}

long bio_ctrl(BIO *, int cmd, long, void *) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

// One method for every connection; made once, kept for the process.
BIO_METHOD *bio_method() {
  static BIO_METHOD *method = [] {
    BIO_METHOD *m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "lariat");
    if (m) {
      BIO_meth_set_write_ex(m, bio_write_ex);
      BIO_meth_set_read_ex(m, bio_read_ex);
      BIO_meth_set_ctrl(m, bio_ctrl);
      BIO_meth_set_create(m, bio_create);
    }
    return m;
  }();
  return method;
}

}  // namespace

TlsTransport::~TlsTransport() {
  SSL_free(ssl_);  // and its BIO
  if (tls_) tls_->release();
}

bool TlsTransport::attach_ssl() {
  BIO_METHOD *method = bio_method();
  BIO *bio = ssl_ && method ? BIO_new(method) : nullptr;
  if (!bio) return false;  // the destructor frees ssl_
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);
  SSL_set_app_data(ssl_, this);
  // Record buffers (34 KiB) go as soon as they are empty, so a connection
  // between two messages, or stalled mid-handshake, does not hold them;
  // read-ahead takes all of a read at once, so that happens once per read
  // rather than once per record.
  SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
  SSL_set_read_ahead(ssl_, 1);
  return true;
}

void TlsTransport::connected() {
  if (!attach_ssl()) {
    failed_ = true;
    handshake_failed("out of memory");
    conn()->on_transport_error(UV_ENOMEM);
    return;
  }
  pump();  // the ClientHello
}

bool TlsTransport::keep_session(SSL_SESSION *session) {
  ClientSession *client = conn()->client_session();
  if (!client) return false;
  client->keep_tls_session(session);
  return true;
}

void TlsTransport::handshake_failed(const char *why) {
  if (!client()) {
    tls_->record_failure(why);
    return;
  }
  std::string text = "TLS handshake failed: ";
  long verify = ssl_ && SSL_get_verify_mode(ssl_) != SSL_VERIFY_NONE
                    ? SSL_get_verify_result(ssl_)
                    : X509_V_OK;
  if (verify != X509_V_OK) {
    text += "certificate verify failed: ";
    text += X509_verify_cert_error_string(verify);
  } else {
    text += why;
  }
  conn()->fail_client_handshake(text, UV_EPROTO);
}

int TlsTransport::bio_read(char *out, size_t n, size_t *got) {
  if (in_len_ == 0) return 0;
  size_t k = n < in_len_ ? n : in_len_;
  std::memcpy(out, in_, k);
  if (scan_) scan_->in.feed(in_, k);
  in_ += k;
  in_len_ -= k;
  *got = k;
  return 1;
}

void TlsTransport::bio_write(const char *p, size_t n) {
  conn()->server()->tls_out.append(p, n);
  if (scan_) scan_->out.feed(reinterpret_cast<const uint8_t *>(p), n);
}

void TlsTransport::Scan::Stream::feed(const uint8_t *p, size_t n) {
  while (n > 0) {
    if (left > 0) {
      size_t k = n < left ? n : left;
      p += k;
      n -= k;
      left -= static_cast<uint32_t>(k);
      continue;
    }
    header[have++] = *p++;
    --n;
    if (have == 5) {
      have = 0;
      left = static_cast<uint32_t>(header[3]) << 8 | header[4];
      ++records;
      if (header[0] == 0x17) ++protected_records;
    }
  }
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void TlsTransport::keylog(const char *line) {
  if (!scan_) return;
  static const char kClient[] = "CLIENT_TRAFFIC_SECRET_0 ";
  static const char kServer[] = "SERVER_TRAFFIC_SECRET_0 ";
  uint8_t *secret;
  if (std::strncmp(line, kClient, sizeof kClient - 1) == 0)
    secret = scan_->client_secret;
  else if (std::strncmp(line, kServer, sizeof kServer - 1) == 0)
    secret = scan_->server_secret;
  else
    return;
  const char *hex = std::strchr(line + sizeof kClient - 1, ' ');
  if (!hex) return;
  ++hex;
  size_t len = std::strlen(hex);
  if (len % 2 || len / 2 > sizeof scan_->client_secret) return;
  for (size_t i = 0; i < len / 2; ++i) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return;
    secret[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  scan_->secret_len = static_cast<uint8_t>(len / 2);
  (secret == scan_->client_secret ? scan_->have_client : scan_->have_server) =
      true;
}

bool TlsTransport::make_ssl() {
  certs_ = tls_->certs();
  if (!certs_) return false;
  ssl_ = SSL_new(certs_->entries.front().ctx);
  if (!ssl_ || !attach_ssl()) return false;
  SSL_set_accept_state(ssl_);
  scan_.reset(new Scan);
  SSL_set_msg_callback(ssl_, [](int, int, int type, const void *buf,
                                size_t len, SSL *ssl, void *) {
    if (type == SSL3_RT_HANDSHAKE && len > 0 &&
        *static_cast<const uint8_t *>(buf) == SSL3_MT_KEY_UPDATE)
      static_cast<TlsTransport *>(SSL_get_app_data(ssl))->key_updated();
  });
  return true;
}

// Whether |b| holds the client's whole first record (or something that
// is no TLS handshake record at all, for OpenSSL to refuse).
static bool first_record_complete(const std::string &b) {
  if (b.empty()) return false;
  if (static_cast<uint8_t>(b[0]) != 0x16) return true;
  if (b.size() < 2) return false;
  if (b[1] != 3) return true;  // no TLS version: refused at once
  if (b.size() < 5) return false;
  size_t len = static_cast<size_t>(static_cast<uint8_t>(b[3])) << 8 |
               static_cast<uint8_t>(b[4]);
  // Longer than TLS allows: OpenSSL refuses it at once.
  return b.size() >= 5 + len || len > 16384 + 256;
}

void TlsTransport::received(uint8_t *p, size_t n) {
  if (failed_) return;
  if (!ssl_ && !records_) {
    // The SSL (9 KiB and more) waits for the whole ClientHello: a client
    // that stalls in the middle of it costs its bytes only.
    if (!stash_) stash_.reset(new std::string);
    stash_->append(reinterpret_cast<const char *>(p), n);
    if (!first_record_complete(*stash_)) return;
    if (!make_ssl()) {
      failed_ = true;
      tls_->record_failure(certs_ ? "out of memory" : "no certificate");
      conn()->on_transport_error(UV_ENOMEM);
      return;
    }
    woken();
    return;
  }
  if (stash_ && !stash_->empty()) {
    // Bytes kept from before a pause go first.
    stash_->append(reinterpret_cast<const char *>(p), n);
    woken();
    return;
  }
  in_ = p;
  in_len_ = n;
  pump();
  keep_rest();
}

void TlsTransport::woken() {
  if (closing() || failed_ || paused_ || (!ssl_ && !records_)) return;
  std::unique_ptr<std::string> kept = std::move(stash_);
  if (kept) {
    in_ = reinterpret_cast<const uint8_t *>(kept->data());
    in_len_ = kept->size();
  }
  pump();
  keep_rest();  // copies out of |kept| before it goes
}

void TlsTransport::keep_rest() {
  if (in_len_ > 0 && !closing() && !failed_) {
    if (!stash_) stash_.reset(new std::string);
    stash_->append(reinterpret_cast<const char *>(in_), in_len_);
  }
  in_ = nullptr;
  in_len_ = 0;
}

void TlsTransport::pump() {
  if (records_) {
    pump_records();
    return;
  }
  if (pumping_) return;  // a wake-up inside our own delivery
  pumping_ = true;
  struct Reset {
    bool &flag;
    ~Reset() { flag = false; }
  } reset{pumping_};
  ERR_clear_error();
  if (!established_) {
    uint64_t written_before = scan_ ? scan_->out.records : 0;
    int r = SSL_do_handshake(ssl_);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
    flush_cipher();  // the server's flight, or the alert
    if (r != 1) {
      if (e != SSL_ERROR_WANT_READ) fail("handshake failed");
      return;
    }
    established_ = true;
    resumed_ = SSL_session_reused(ssl_) == 1;
    certs_.reset();  // SNI is over
    if (client()) {
      conn()->on_channel_ready();  // the upgrade request
      if (closing() || failed_) return;
    }
    // The records this call wrote (session tickets) are the first under
    // our application keys; TLS 1.2 connections keep their SSL.
    if (scan_) scan_->app_write_start = written_before;
    if (SSL_version(ssl_) != TLS1_3_VERSION) scan_.reset();
  }
  lariat_server *server = conn()->server();
  if (!server->tls_plain) server->tls_plain.reset(new uint8_t[kPlainSize]);
  uint8_t *plain = server->tls_plain.get();
  size_t used = 0;
  while (!paused_ && !closing()) {
    size_t got = 0;
    int r = SSL_read_ex(ssl_, plain + used, kPlainSize - used, &got);
    if (r == 1) {
      used += got;
      if (used < kPlainSize) continue;
    }
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
    flush_cipher();  // what reading made OpenSSL say (key update, alert)
    if (used > 0) {
      // Everything decrypted before an error or close_notify counts.
      conn()->on_read(plain, used);
      used = 0;
      if (closing() || failed_) return;
    }
    if (r == 1) continue;
    if (e == SSL_ERROR_WANT_READ) {
      // All read and answered: a TLS 1.3 connection goes on without its
      // SSL (fewer copies per record, 15 KiB less per connection).
      leave_ssl();
      return;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
      conn()->on_eof();  // close_notify: the peer's end, as FIN is
      return;
    }
    fail("TLS error");
    return;
  }
}

void TlsTransport::fail(const char *fallback) {
  failed_ = true;
  unsigned long err = ERR_peek_last_error();
  const char *why = err ? ERR_reason_error_string(err) : nullptr;
  if (!established_) handshake_failed(why ? why : fallback);
  ERR_clear_error();
  conn()->on_transport_error(UV_EPROTO);
}

void TlsTransport::flush_cipher() {
  std::string &scratch = conn()->server()->tls_out;
  if (scratch.empty()) return;
  // Taken out first: a write error closes the connection from inside
  // write(), and the close must not find these bytes again.
  std::string out;
  out.swap(scratch);
  TcpTransport::write(reinterpret_cast<const uint8_t *>(out.data()),
                      out.size());
  if (scratch.empty() && out.capacity() <= 2 * kSealChunk) {
    out.clear();
    scratch.swap(out);  // keep the loop's buffer
  }
}

bool TlsTransport::seal(const uint8_t *p, size_t n) {
  while (n > 0 && !closing()) {
    size_t chunk = n < kSealChunk ? n : kSealChunk;
    size_t written = chunk;
    ERR_clear_error();
    if (records_) {
      if (!records_->seal(p, chunk, &conn()->server()->tls_out)) return false;
    } else if (SSL_write_ex(ssl_, p, chunk, &written) != 1) {
      return false;
    }
    p += written;
    n -= written;
    flush_cipher();
  }
  return true;
}

void TlsTransport::write(const uint8_t *p, size_t n) {
  // Before the handshake ends there is no one to talk to: what the core
  // says then (408, 503) cannot be said.
  if (closing() || n == 0 || failed_ || !established_) return;
  if (!seal(p, n)) fail("TLS write failed");
}

void TlsTransport::write2(const uint8_t *a, size_t an, const uint8_t *b,
                          size_t bn) {
  if (closing() || failed_ || !established_) return;
  // A large frame's header shares the first record with its payload.
  uint8_t first[16384];
  if (an > sizeof first) {
    write(a, an);
    write(b, bn);
    return;
  }
  size_t take = sizeof first - an < bn ? sizeof first - an : bn;
  std::memcpy(first, a, an);
  std::memcpy(first + an, b, take);
  if (!seal(first, an + take) || !seal(b + take, bn - take))
    fail("TLS write failed");
}

void TlsTransport::shutdown() {
  if (closing()) return;
  if (!established_) {
    // The core gives up on a handshake (timeout, refusal): nothing was
    // said, so nothing is waited for either.
    if ((ssl_ || stash_) && !failed_ && !client())
      tls_->record_failure("handshake not finished");
    close();
    return;
  }
  if (!failed_) {
    ERR_clear_error();
    if (records_)
      records_->close_notify(&conn()->server()->tls_out);
    else
      SSL_shutdown(ssl_);  // close_notify, then FIN
    ERR_clear_error();
    flush_cipher();
  }
  TcpTransport::shutdown();
}

void TlsTransport::ended() {
  if ((ssl_ || records_) && stash_ && !stash_->empty())
    woken();  // what came before the FIN
  if (closing()) return;
  if (!established_ && !failed_ && (ssl_ || stash_))
    handshake_failed("connection closed during the handshake");
  conn()->on_eof();
}

int TlsTransport::set_reading(bool on) {
  paused_ = !on;
  int rc = TcpTransport::set_reading(on);
  // Ciphertext kept while paused is decrypted from the loop, not from
  // inside the caller's callback.
  if (on && rc == 0 && (ssl_ || records_) &&
      ((stash_ && !stash_->empty()) || (ssl_ && SSL_has_pending(ssl_))))
    conn()->server()->wake_transport(conn()->id);
  return rc;
}

void TlsTransport::idle() {
  if (records_) {
    records_->release();  // the cipher contexts come back when needed
  } else if (ssl_ && !leave_ssl()) {
    SSL_free_buffers(ssl_);  // refused while a record is pending
  }
}

bool TlsTransport::leave_ssl() {
  Scan *sc = scan_.get();
  if (!sc || !established_ || failed_ || sc->key_updated || !sc->have_client ||
      !sc->have_server || SSL_has_pending(ssl_) ||
      (stash_ && !stash_->empty()) || !sc->in.at_boundary() ||
      !sc->out.at_boundary() || sc->in.protected_records < 1 ||
      !conn()->server()->tls_out.empty())
    return false;
  const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl_);
  if (!cipher) return false;
  std::unique_ptr<Tls13Records> records(new (std::nothrow) Tls13Records);
  // Read: the client's protected records after its Finished; write: ours
  // since the application keys.
  if (!records ||
      !records->init(static_cast<uint16_t>(SSL_CIPHER_get_id(cipher) & 0xffff),
                     sc->client_secret, sc->server_secret, sc->secret_len,
                     sc->in.protected_records - 1,
                     sc->out.records - sc->app_write_start))
    return false;
  OPENSSL_cleanse(sc, sizeof *sc);
  scan_.reset();
  SSL_free(ssl_);
  ssl_ = nullptr;
  records_ = std::move(records);
  return true;
}

void TlsTransport::pump_records() {
  lariat_server *server = conn()->server();
  std::string plain;
  plain.swap(server->tls_opened);  // the loop's buffer, ours for the call
  plain.clear();
  Tls13Records::Status status =
      records_->open(in_, in_len_, &plain, &server->tls_out);
  in_len_ = 0;  // a partial record stays in records_
  flush_cipher();  // a KeyUpdate answer
  if (!plain.empty() && !closing())
    conn()->on_read(reinterpret_cast<uint8_t *>(&plain[0]), plain.size());
  if (plain.capacity() <= 2 * kPlainSize && server->tls_opened.empty())
    server->tls_opened.swap(plain);
  if (closing() || failed_) return;
  if (status == Tls13Records::Status::kClosed) {
    conn()->on_eof();
  } else if (status == Tls13Records::Status::kError) {
    failed_ = true;
    conn()->on_transport_error(UV_EPROTO);
  }
}

const char *TlsTransport::tls_version() const {
  if (records_) return "TLSv1.3";
  return ssl_ && established_ ? SSL_get_version(ssl_) : nullptr;
}

}  // namespace lariat::detail
