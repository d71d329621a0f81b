#include "client_tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <mutex>
#include <new>

#include "tls_transport.h"

namespace lariat::detail {

ClientTls::~ClientTls() { SSL_CTX_free(ctx_); }

SSL_CTX *ClientTls::new_ctx() {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return nullptr;
  // What the server side accepts: TLS 1.2 and later, no renegotiation;
  // ALPN says the upgrade is HTTP/1.1 (a server that picks anything else
  // fails the handshake).
  static const unsigned char kAlpn[] = "\x08http/1.1";
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn - 1) != 0) {
    SSL_CTX_free(ctx);
    return nullptr;
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // Each client keeps the latest session its server issued, for its next
  // attempt (OpenSSL's own cache would be shared by every client).
  SSL_CTX_set_session_cache_mode(
      ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, [](SSL *ssl, SSL_SESSION *session) {
    auto *t = static_cast<TlsTransport *>(SSL_get_app_data(ssl));
    return t && t->keep_session(session) ? 1 : 0;
  });
  return ctx;
}

std::shared_ptr<const ClientTls> ClientTls::system_default() {
  static std::mutex mutex;
  static std::shared_ptr<const ClientTls> made;
  std::lock_guard<std::mutex> lock(mutex);
  if (made) return made;
  SSL_CTX *ctx = new_ctx();
  if (!ctx) return nullptr;
  // No system CAs at all is not an error here: every handshake then
  // fails verification, with a reason that says so.
  SSL_CTX_set_default_verify_paths(ctx);
  ERR_clear_error();
  made.reset(new (std::nothrow) ClientTls(ctx));
  if (!made) SSL_CTX_free(ctx);
  return made;
}

std::shared_ptr<const ClientTls> ClientTls::from_files(const char *ca_file,
                                                       const char *ca_dir) {
  SSL_CTX *ctx = new_ctx();
  if (!ctx) return nullptr;
  bool ok = SSL_CTX_load_verify_locations(ctx, ca_file, ca_dir) == 1;
  // A directory is searched lazily, so only a file can be found empty
  // now; with a directory alone, a bad one shows at the first handshake.
  if (ok && ca_file && !ca_dir) {
    STACK_OF(X509_OBJECT) *objs =
        X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
    ok = objs && sk_X509_OBJECT_num(objs) > 0;
  }
  ERR_clear_error();
  if (!ok) {
    SSL_CTX_free(ctx);
    return nullptr;
  }
  std::shared_ptr<const ClientTls> tls(new (std::nothrow) ClientTls(ctx));
  if (!tls) SSL_CTX_free(ctx);
  return tls;
}

SSL *ClientTls::new_ssl(const std::string &name, bool verify) const {
  SSL *ssl = SSL_new(ctx_);
  if (!ssl) return nullptr;
  unsigned char addr[16];
  bool is_ip = inet_pton(AF_INET, name.c_str(), addr) == 1 ||
               inet_pton(AF_INET6, name.c_str(), addr) == 1;
  bool ok = true;
  if (!is_ip)
    ok = SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
  if (ok && verify) {
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    // RFC 6125: the name must match a subjectAltName; no partial
    // wildcards ("f*.example.com").
    X509_VERIFY_PARAM_set_hostflags(param,
                                    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1
               : X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0) == 1;
  }
  if (!verify) SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
  if (!ok) {
    SSL_free(ssl);
    ERR_clear_error();
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  return ssl;
}

}  // namespace lariat::detail
