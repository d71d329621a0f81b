#include "test_certs.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "test_certs: %s failed\n", what);
    exit(1);
  }
}

static char *bio_text(BIO *b, size_t *len) {
  char *p;
  long n = BIO_get_mem_data(b, &p);
  char *copy = malloc((size_t)n + 1);
  check(copy != NULL, "malloc");
  memcpy(copy, p, (size_t)n);
  copy[n] = 0;
  *len = (size_t)n;
  return copy;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
  check(ext != NULL, "X509V3_EXT_conf_nid");
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
}

static void to_file(char *path, size_t size, const char *pattern,
                    const char *text, size_t len) {
  snprintf(path, size, "%s", pattern);
  int fd = mkstemp(path);
  check(fd >= 0, "mkstemp");
  check(write(fd, text, len) == (ssize_t)len, "write");
  close(fd);
}

void test_cert_make(test_cert *c, const char *cn, const char *san,
                    const test_cert *issuer, int is_ca) {
  memset(c, 0, sizeof *c);
  EVP_PKEY *k = EVP_EC_gen("P-256");
  check(k != NULL, "EVP_EC_gen");
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(rand() & 0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, k);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)cn, -1, -1, 0);
  X509 *signer = issuer ? (X509 *)issuer->x509 : x;
  EVP_PKEY *signer_key = issuer ? (EVP_PKEY *)issuer->pkey : k;
  X509_set_issuer_name(x, X509_get_subject_name(signer));
  if (san) add_ext(x, signer, NID_subject_alt_name, san);
  if (is_ca) {
    add_ext(x, signer, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  }
  add_ext(x, signer, NID_subject_key_identifier, "hash");
  check(X509_sign(x, signer_key, EVP_sha256()) > 0, "X509_sign");
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  c->cert = bio_text(b, &c->cert_len);
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  c->key = bio_text(b, &c->key_len);
  BIO_free(b);
  c->x509 = x;
  c->pkey = k;
  to_file(c->cafile, sizeof c->cafile, "/tmp/lariat-tls-ca-XXXXXX", c->cert,
          c->cert_len);
  to_file(c->keyfile, sizeof c->keyfile, "/tmp/lariat-tls-key-XXXXXX", c->key,
          c->key_len);
}

void test_cert_free(test_cert *c) {
  if (c->cafile[0]) unlink(c->cafile);
  if (c->keyfile[0]) unlink(c->keyfile);
  free(c->cert);
  free(c->key);
  X509_free((X509 *)c->x509);
  EVP_PKEY_free((EVP_PKEY *)c->pkey);
  memset(c, 0, sizeof *c);
}
