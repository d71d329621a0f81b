/*
 * tlstunnel - the TLS client side of the tests: it does a TLS handshake
 * with a server on 127.0.0.1 over a real TCP socket (OpenSSL with memory
 * BIOs), then relays plaintext between that connection and one end of a
 * socketpair on a thread of its own. The other end goes to wsc_attach(),
 * so every wsclient function (framing, handshake, one-byte sends...) runs
 * over wss:// unchanged.
 *
 * The relay shapes the ciphertext it sends (one byte per send(), or
 * bursts of N bytes), and can be asked for a TLS 1.3 key update or a TLS
 * 1.2 renegotiation mid-stream. Each direction buffers at most about
 * 1 MiB before it stops reading its source, so a test client that stops
 * reading makes the server's output back up, as a real slow reader does.
 */
#ifndef LARIAT_TESTS_TLSTUNNEL_H
#define LARIAT_TESTS_TLSTUNNEL_H

#include <openssl/ssl.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tlt_options {
  const char *sni;      /* server name to send, or NULL */
  const char *cafile;   /* verify the server against it, or NULL */
  const unsigned char *alpn; /* wire form ("\x08http/1.1"), or NULL */
  size_t alpn_len;
  SSL_SESSION *session; /* resume it (not taken), or NULL */
  int max_version;      /* TLS1_2_VERSION forces 1.2; 0: 1.3 */
  size_t send_chunk;    /* ciphertext per send(): 1 = byte by byte; 0 = as
                           produced */
  size_t burst;         /* gather this much ciphertext (or 20 ms of it)
                           into one send(); 0: none */
} tlt_options;

typedef struct tlt tlt;

/* Connects to 127.0.0.1:port, does the TLS handshake (bounded by
 * timeout_ms) and starts relaying; *app_fd is the plaintext end for
 * wsc_attach (which takes it). Returns 0, or -1 with a reason in |why|
 * (OpenSSL's, for a refused handshake); *out is NULL then. */
int tlt_open(tlt **out, int port, const tlt_options *o, int *app_fd,
             char *why, size_t why_size, int timeout_ms);
/* After the handshake (any thread). */
int tlt_resumed(tlt *t);
const char *tlt_alpn(tlt *t); /* "" when none */
const char *tlt_version(tlt *t);
/* The CN of the server certificate ("" if none). */
const char *tlt_peer_cn(tlt *t);
/* The session to resume later (SSL_SESSION_free it); waits up to
 * timeout_ms for a TLS 1.3 ticket to arrive. NULL if none came. */
SSL_SESSION *tlt_session(tlt *t, int timeout_ms);
/* Asks the relay for a key update (TLS 1.3, update_requested: the server
 * must answer with its own). Returns once it is sent, 0 or -1. */
int tlt_key_update(tlt *t);
/* Asks the relay to renegotiate (TLS 1.2) and waits up to timeout_ms:
 * 1 = renegotiated, 0 = refused (alert or closed), -1 = no answer. */
int tlt_renegotiate(tlt *t, int timeout_ms);
/* Whether the server ended the TLS connection (close_notify, FIN or an
 * error), waiting up to timeout_ms; 1 = ended. */
int tlt_wait_end(tlt *t, int timeout_ms);
/* Stops the relay, sends close_notify when |notify| (else the TCP
 * connection just closes), closes both sockets it owns and frees |t|. */
void tlt_close(tlt *t, int notify);

#ifdef __cplusplus
}
#endif

#endif
