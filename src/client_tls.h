// wss:// for clients: the trust a client verifies servers against (the
// system's CAs, or a CA file or directory of the user's), kept in one
// SSL_CTX that every attempt of every client given the same options
// shares, so CA bundles are parsed once rather than per connect.
#ifndef LARIAT_CLIENT_TLS_H
#define LARIAT_CLIENT_TLS_H

#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace lariat::detail {

class ClientTls {
 public:
  ~ClientTls();
  // The system's CAs (OpenSSL's default paths), made once per process;
  // null when OpenSSL could not make the context (out of memory).
  static std::shared_ptr<const ClientTls> system_default();
  // Trusts only the CAs of |ca_file| and/or |ca_dir| (one may be null);
  // null when neither gives a certificate (missing, unreadable, not PEM).
  static std::shared_ptr<const ClientTls> from_files(const char *ca_file,
                                                     const char *ca_dir);

  // A client SSL for |name| (a host name or an IP literal): SNI for a
  // name (RFC 6066 forbids it for addresses), and the certificate
  // checked against the name or address unless |verify| is false.
  // Null when out of memory.
  SSL *new_ssl(const std::string &name, bool verify) const;

 private:
  explicit ClientTls(SSL_CTX *ctx) : ctx_(ctx) {}
  static SSL_CTX *new_ctx();
  SSL_CTX *ctx_;
};

}  // namespace lariat::detail

#endif
