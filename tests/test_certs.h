/*
 * test_certs - certificates made in memory for each test run (no key is
 * committed): P-256 keys, self-signed or signed by a test CA made the
 * same way, as PEM text and as a file a client can trust.
 */
#ifndef LARIAT_TESTS_TEST_CERTS_H
#define LARIAT_TESTS_TEST_CERTS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct test_cert {
  char *cert, *key;       /* PEM, NUL-terminated */
  size_t cert_len, key_len;
  char cafile[64];        /* the certificate as a file, for clients to trust */
  char keyfile[64];       /* the key as a file, for servers in other processes */
  void *x509, *pkey;      /* to sign others with (X509 *, EVP_PKEY *) */
} test_cert;

/* A certificate for |cn| with |san| ("DNS:a.test,IP:127.0.0.1,..."),
 * signed by |issuer| (NULL: self-signed). |is_ca| makes it a CA
 * (basicConstraints CA:TRUE) that can sign others. Aborts the test on
 * failure. */
void test_cert_make(test_cert *c, const char *cn, const char *san,
                    const test_cert *issuer, int is_ca);
/* Removes its files and frees it. */
void test_cert_free(test_cert *c);

#ifdef __cplusplus
}
#endif

#endif
