// lariat_tls: certificates, SNI, ALPN, session tickets and reload.
#include "tls_context.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

#include "guard.h"
#include "tls_transport.h"

using lariat::detail::CertSet;
using lariat::detail::TlsTransport;

namespace lariat::detail {

CertSet::~CertSet() {
  for (Entry &e : entries) SSL_CTX_free(e.ctx);
}

SSL_CTX *CertSet::select(const char *name) const {
  if (name) {
    // X509_check_host knows subjectAltName, CN fallback and wildcard
    // rules; an exact name wins over a wildcard that also matches.
    for (const Entry &e : entries)
      if (X509_check_host(e.leaf, name, 0, X509_CHECK_FLAG_NO_WILDCARDS,
                          nullptr) == 1)
        return e.ctx;
    for (const Entry &e : entries)
      if (X509_check_host(e.leaf, name, 0, 0, nullptr) == 1) return e.ctx;
  }
  return entries.front().ctx;
}

}  // namespace lariat::detail

namespace {

TlsTransport *transport_of(SSL *ssl) {
  return static_cast<TlsTransport *>(SSL_get_app_data(ssl));
}

int on_servername(SSL *ssl, int *, void *) {
  TlsTransport *t = transport_of(ssl);
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!t || !t->certs()) return SSL_TLSEXT_ERR_OK;
  SSL_CTX *ctx = t->certs()->select(name);
  if (ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

// http/1.1 is what the upgrade speaks; a client that offers only other
// protocols (h2 needs RFC 8441, not served yet) gets the fatal
// no_application_protocol alert RFC 7301 asks for.
int on_alpn(SSL *, const unsigned char **out, unsigned char *outlen,
            const unsigned char *in, unsigned int inlen, void *) {
  static const unsigned char ours[] = "\x08http/1.1";
  unsigned char *selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, ours, sizeof ours - 1, in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// Tickets are sealed with the keys of the lariat_tls the listener was
// given, whichever certificate set or loop the handshake runs on: that
// is what makes resumption work across loops and reloads.
int on_ticket_key(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                  EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int enc) {
  TlsTransport *t = transport_of(ssl);
  if (!t) return -1;
  const unsigned char *keys = t->tls()->ticket_keys;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(
          OSSL_MAC_PARAM_KEY, const_cast<unsigned char *>(keys + 16), 32),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                       const_cast<char *>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  if (enc) {
    std::memcpy(key_name, keys, 16);
    if (RAND_bytes(iv, 16) != 1) return -1;
    if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, keys + 48,
                           iv) != 1)
      return -1;
  } else {
    if (std::memcmp(key_name, keys, 16) != 0) return 0;  // full handshake
    if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, keys + 48,
                           iv) != 1)
      return -1;
  }
  return EVP_MAC_CTX_set_params(mac, params) == 1 ? 1 : -1;
}

// Whole file into |out|; 0 or a libuv-style negative errno.
int read_file(const char *path, std::string *out) {
  FILE *f = std::fopen(path, "rb");
  if (!f) return -errno;
  char buf[16384];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  int rc = std::ferror(f) ? -EIO : 0;
  std::fclose(f);
  return rc;
}

struct BioFree {
  void operator()(BIO *b) const { BIO_free(b); }
};

}  // namespace

void lariat_tls::release() {
  if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

int lariat_tls::make_ctx(const char *chain, size_t chain_len, const char *key,
                         size_t key_len, SSL_CTX **out) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return LARIAT_ERR_NOMEM;
  bool ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1;
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
  // Forward-secret AEADs only, AES-128-GCM first: as safe as AES-256 here
  // and a tenth cheaper on large messages (Mozilla's "intermediate").
  ok = ok &&
       SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:"
                                     "TLS_AES_256_GCM_SHA384:"
                                     "TLS_CHACHA20_POLY1305_SHA256") == 1 &&
       SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:"
                                    "ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:"
                                    "ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:"
                                    "ECDHE-RSA-CHACHA20-POLY1305") == 1;
  // Stateless tickets only: no session cache to lock across loops or to
  // grow with clients.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
  SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, nullptr);
  // The traffic secrets, for a connection that leaves its SSL once its
  // handshake is over (TlsTransport::leave_ssl).
  SSL_CTX_set_keylog_callback(ctx, [](const SSL *ssl, const char *line) {
    if (auto *t = transport_of(const_cast<SSL *>(ssl))) t->keylog(line);
  });
  std::unique_ptr<BIO, BioFree> cbio(
      BIO_new_mem_buf(chain, static_cast<int>(chain_len)));
  std::unique_ptr<BIO, BioFree> kbio(
      BIO_new_mem_buf(key, static_cast<int>(key_len)));
  X509 *leaf = cbio ? PEM_read_bio_X509_AUX(cbio.get(), nullptr, nullptr,
                                            nullptr)
                    : nullptr;
  ok = ok && leaf && SSL_CTX_use_certificate(ctx, leaf) == 1;
  X509_free(leaf);  // the context holds its own reference
  while (ok) {
    X509 *extra = PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr);
    if (!extra) break;
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      ok = false;
    }
  }
  EVP_PKEY *pkey = ok && kbio ? PEM_read_bio_PrivateKey(kbio.get(), nullptr,
                                                        nullptr, nullptr)
                              : nullptr;
  ok = ok && pkey && SSL_CTX_use_PrivateKey(ctx, pkey) == 1 &&
       SSL_CTX_check_private_key(ctx) == 1;
  EVP_PKEY_free(pkey);
  ERR_clear_error();  // the chain's end reads as an error; nothing to keep
  if (!ok) {
    SSL_CTX_free(ctx);
    return LARIAT_ERR_TLS;
  }
  *out = ctx;
  return 0;
}

void lariat_tls::record_failure(const char *reason) {
  failures_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mutex);
  try {
    last_failure = reason;
  } catch (...) {
    // Out of memory: the count still says it happened.
  }
}

uint64_t lariat_tls::failures(char *buf, size_t size) const {
  std::lock_guard<std::mutex> lock(mutex);
  if (buf && size) {
    size_t n = last_failure.size() < size - 1 ? last_failure.size() : size - 1;
    std::memcpy(buf, last_failure.data(), n);
    buf[n] = '\0';
  }
  return failures_.load(std::memory_order_relaxed);
}

extern "C" {

LARIAT_EXTERN int lariat_tls_new(lariat_tls **out) {
  if (!out) return LARIAT_ERR_INVALID_ARGUMENT;
  *out = nullptr;
  auto *tls = new (std::nothrow) lariat_tls;
  if (!tls) return LARIAT_ERR_NOMEM;
  if (RAND_bytes(tls->ticket_keys, sizeof tls->ticket_keys) != 1) {
    delete tls;
    ERR_clear_error();
    return LARIAT_ERR_TLS;
  }
  *out = tls;
  return 0;
}

LARIAT_EXTERN void lariat_tls_del(lariat_tls *tls) {
  if (tls) tls->release();
}

LARIAT_EXTERN int lariat_tls_add_cert_pem(lariat_tls *tls, const char *chain,
                                          size_t chain_len, const char *key,
                                          size_t key_len) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!tls || !chain || !key || chain_len == 0 || key_len == 0 ||
        chain_len > INT32_MAX || key_len > INT32_MAX)
      return LARIAT_ERR_INVALID_ARGUMENT;
    SSL_CTX *ctx = nullptr;
    int rc = tls->make_ctx(chain, chain_len, key, key_len, &ctx);
    if (rc != 0) return rc;
    auto next = std::make_shared<CertSet>();
    std::shared_ptr<const CertSet> now = tls->certs();
    try {
      if (now) {
        for (const CertSet::Entry &e : now->entries) {
          SSL_CTX_up_ref(e.ctx);
          next->entries.push_back(e);
        }
      }
      next->entries.push_back({ctx, SSL_CTX_get0_certificate(ctx)});
    } catch (...) {
      SSL_CTX_free(ctx);
      throw;
    }
    tls->publish(std::move(next));
    return 0;
  });
}

LARIAT_EXTERN int lariat_tls_add_cert_file(lariat_tls *tls,
                                           const char *chain_file,
                                           const char *key_file) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!tls || !chain_file || !key_file) return LARIAT_ERR_INVALID_ARGUMENT;
    std::string chain, key;
    int rc = read_file(chain_file, &chain);
    if (rc == 0) rc = read_file(key_file, &key);
    if (rc != 0) return rc;
    if (chain.empty() || key.empty()) return LARIAT_ERR_TLS;
    rc = lariat_tls_add_cert_pem(tls, chain.data(), chain.size(), key.data(),
                                 key.size());
    OPENSSL_cleanse(key.data(), key.size());
    return rc;
  });
}

LARIAT_EXTERN int lariat_tls_reload(lariat_tls *tls, const lariat_tls *from) {
  if (!tls || !from) return LARIAT_ERR_INVALID_ARGUMENT;
  std::shared_ptr<const CertSet> next = from->certs();
  if (!next) return LARIAT_ERR_INVALID_ARGUMENT;
  tls->publish(std::move(next));
  return 0;
}

LARIAT_EXTERN uint64_t lariat_tls_failures(const lariat_tls *tls, char *reason,
                                           size_t size) {
  if (!tls) return 0;
  return tls->failures(reason, size);
}

}  // extern "C"
