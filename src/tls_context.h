// A TLS configuration (lariat_tls): certificates chosen by SNI, ALPN,
// TLS >= 1.2 without renegotiation, and stateless session tickets whose
// keys belong to the lariat_tls, so every loop of every server that
// listens with it (and every certificate set it is reloaded with) resumes
// the others' sessions. Shared by loops on several threads: the current
// certificate set is swapped under a lock, and a connection keeps the set
// it started its handshake with.
#ifndef LARIAT_TLS_CONTEXT_H
#define LARIAT_TLS_CONTEXT_H

#include <lariat/lariat.h>
#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace lariat::detail {

// Immutable once published: one SSL_CTX per certificate, the first being
// the default (and the context every SSL is created from, so its ticket
// keys and options are what a handshake uses whatever SNI picks).
class CertSet {
 public:
  ~CertSet();
  struct Entry {
    SSL_CTX *ctx;
    X509 *leaf;  // borrowed from ctx: the names SNI matches against
  };
  std::vector<Entry> entries;
  // The certificate for |name| (exact names first, then wildcards), or
  // the default.
  SSL_CTX *select(const char *name) const;
};

}  // namespace lariat::detail

struct lariat_tls {
  // One reference for the user, one per listener and per connection.
  std::atomic<int> refs{1};
  void retain() { refs.fetch_add(1, std::memory_order_relaxed); }
  void release();
  // Session ticket keys (name, HMAC and AES keys), random per lariat_tls.
  unsigned char ticket_keys[80];

  std::shared_ptr<const lariat::detail::CertSet> certs() const {
    std::lock_guard<std::mutex> lock(mutex);
    return certs_;
  }
  // Builds an SSL_CTX for one certificate chain and key (PEM in memory);
  // 0 or LARIAT_ERR_TLS.
  int make_ctx(const char *chain, size_t chain_len, const char *key,
               size_t key_len, SSL_CTX **out);
  // Publishes |next| for the handshakes that start from now on.
  void publish(std::shared_ptr<const lariat::detail::CertSet> next) {
    std::lock_guard<std::mutex> lock(mutex);
    certs_ = std::move(next);
  }
  // A handshake failed: counted, and its reason kept for
  // lariat_tls_failures().
  void record_failure(const char *reason);
  uint64_t failures(char *buf, size_t size) const;

  mutable std::mutex mutex;
  std::shared_ptr<const lariat::detail::CertSet> certs_;
  std::atomic<uint64_t> failures_{0};
  std::string last_failure;  // under |mutex|
};

#endif
