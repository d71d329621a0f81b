/*
 * wsclient - a blocking WebSocket test client for loopback integration
 * tests (plain C99 + POSIX sockets, no other dependencies).
 *
 * It speaks strict RFC 6455 as a client, and can also be told to break the
 * protocol on purpose (raw bytes, unmasked frames, RSV bits, bad lengths,
 * one byte at a time, RST, half-close).
 *
 * Conventions:
 *  - Functions return 0 (or a count / status) on success and a negative
 *    value on failure: a negated errno (-ETIMEDOUT, -EPROTO, -ECONNRESET,
 *    -EMSGSIZE, ...) or one of the WSC_E_* codes below. wsc_strerror()
 *    names either kind.
 *  - Every function that waits takes timeout_ms: a deadline for the whole
 *    call, measured from its start; 0 means "only what is already there".
 *    Sends have no parameter but are bounded by wsc.io_timeout_ms. Nothing
 *    blocks forever.
 *  - Incoming frames are checked as a client must check a server's frames:
 *    unmasked, RSV bits only if allowed (wsc.allowed_rsv), known opcode,
 *    control frames final and <= 125 bytes, minimal length encoding, valid
 *    close code and UTF-8 close reason, UTF-8 text (wsc.check_utf8), sane
 *    fragment sequence. A violation returns -EPROTO; the connection's read
 *    state is then undefined, so only wsc_close()/wsc_reset() it.
 *  - After a timeout, partially received data stays buffered; the next
 *    call continues where the previous one stopped.
 */
#ifndef LARIAT_TESTS_WSCLIENT_H
#define LARIAT_TESTS_WSCLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Errors that have no errno equivalent. Far below any -errno value. */
enum {
  WSC_E_RESOLVE = -10001,       /* host name did not resolve */
  WSC_E_BAD_HTTP = -10002,      /* malformed or oversized response head */
  WSC_E_BAD_HANDSHAKE = -10003, /* 101 without valid Upgrade/Connection/
                                   Sec-WebSocket-Accept */
  WSC_E_TRUNCATED = -10004,     /* EOF inside a frame or a response */
  WSC_E_EOF = -10005,           /* EOF before the expected close frame or
                                   before any response byte */
  WSC_E_CLOSE_CODE = -10006     /* close frame carried another code */
};

enum {
  WSC_OP_CONT = 0x0,
  WSC_OP_TEXT = 0x1,
  WSC_OP_BINARY = 0x2,
  WSC_OP_CLOSE = 0x8,
  WSC_OP_PING = 0x9,
  WSC_OP_PONG = 0xA
};

/* RSV bits as the 3-bit value (byte0 >> 4) & 7 of the frame header. */
enum { WSC_RSV1 = 4, WSC_RSV2 = 2, WSC_RSV3 = 1 };

typedef struct wsc_frame {
  int fin;
  int rsv;    /* (byte0 >> 4) & 7 */
  int opcode;
  uint8_t *payload; /* malloc'd, always NUL-terminated (not counted in len)
                       so text can be compared with strcmp; never NULL after
                       a successful receive */
  size_t len;
  /* Close frames only (otherwise close_code is -1, reason NULL/0). */
  int close_code;           /* -1 when the close frame had no payload */
  const char *close_reason; /* points into payload, NUL-terminated */
  size_t close_reason_len;
} wsc_frame;

#define WSC_MAX_HEADERS 64

typedef struct wsc_header_field {
  const char *name;
  const char *value; /* optional whitespace trimmed */
} wsc_header_field;

typedef struct wsc_response {
  int status;
  char *head;      /* raw response head incl. final CRLFCRLF, NUL-terminated */
  size_t head_len;
  char *body;      /* wsc_request() only; NUL-terminated; NULL if none */
  size_t body_len;
  size_t header_count;
  wsc_header_field headers[WSC_MAX_HEADERS];
  char *header_storage; /* backing store of headers[] */
} wsc_response;

typedef struct wsc {
  int fd; /* -1 when closed */

  /* Tunables: set after wsc_connect()/wsc_attach(), which reset them. */
  int io_timeout_ms;  /* bound on each send call; default 5000 */
  size_t max_payload; /* larger incoming frames give -EMSGSIZE; 64 MiB */
  int allowed_rsv;    /* RSV bits the server may set, e.g. WSC_RSV1 after
                         negotiating permessage-deflate; default 0 */
  int check_utf8;     /* validate incoming text; default 1 */

  /* Bytes received but not consumed yet (e.g. frames that arrived in the
     same segment as the 101 response). */
  uint8_t *rbuf;
  size_t rlen, rcap;

  uint64_t rng; /* xorshift64 state: keys and masks are deterministic */
  int forced_mask_pending;
  uint8_t forced_mask[4];

  int server_fragmenting; /* inside a fragmented data message (recv_frame) */
  uint8_t *msg_buf;       /* wsc_recv_message() assembly across calls */
  size_t msg_len;
  int msg_opcode, msg_rsv, msg_active;

  char host_header[80]; /* "127.0.0.1:port", "[::1]:port"; "localhost" after
                           wsc_attach */
  char key[25];        /* Sec-WebSocket-Key sent by the last wsc_handshake */
  int last_close_code; /* code of the last close frame wsc_expect_close saw
                          (-1 none); lets a failing test print it */
} wsc;

/* ---- connection ---------------------------------------------------- */

/* Initializes *c (no prior state needed) and connects over TCP to host
 * ("127.0.0.1", "::1", "localhost") within timeout_ms. TCP_NODELAY is on so
 * each send leaves at once. 0 or negative error; on error c->fd is -1. */
int wsc_connect(wsc *c, const char *host, int port, int timeout_ms);
/* Initializes *c around an already connected stream socket (socketpair in
 * self-tests) and takes ownership of fd. */
void wsc_attach(wsc *c, int fd);
/* Closes (FIN) and frees buffers. Safe on a closed wsc and to call twice. */
void wsc_close(wsc *c);
/* SO_LINGER 0 then close: the peer sees RST. Frees like wsc_close. */
void wsc_reset(wsc *c);
/* Half-close: FIN to the server, reading still works. */
int wsc_shutdown_write(wsc *c);

/* Reseeds the mask/key PRNG (0 selects the default seed). */
void wsc_seed(wsc *c, uint64_t seed);
/* Forces the mask of the next masked frame (one shot). */
void wsc_set_next_mask(wsc *c, const uint8_t mask[4]);
/* Consumes the mask the next masked frame would use (forced or PRNG). */
void wsc_next_mask(wsc *c, uint8_t mask[4]);

/* ---- raw bytes ----------------------------------------------------- */

/* Sends all n bytes. 0 or negative error (-ETIMEDOUT after io_timeout_ms,
 * -EPIPE/-ECONNRESET once the server is gone; never raises SIGPIPE). */
int wsc_send_raw(wsc *c, const void *p, size_t n);
/* One byte per write with TCP_NODELAY, sleeping delay_ms between bytes, to
 * make the server parse from many tiny segments. */
int wsc_send_raw_slowly(wsc *c, const void *p, size_t n, int delay_ms);

/* ---- HTTP ---------------------------------------------------------- */

/* Sends a valid upgrade request for path, with these defaults:
 *   Host: <c->host_header>, Upgrade: websocket, Connection: Upgrade,
 *   Sec-WebSocket-Key: <16 PRNG bytes, base64>, Sec-WebSocket-Version: 13
 * extra_headers ("Name: v\r\n..." or NULL) are appended; a default whose
 * name appears there (case-insensitive, at a line start) is left out, so a
 * test can replace e.g. the version or the key (the accept is then checked
 * against the key given there).
 * Reads the response head (bytes after it stay buffered for frame reads).
 * Returns the HTTP status (101, 400, ...) or a negative error. A 101 is
 * returned only if Upgrade, Connection and Sec-WebSocket-Accept are right
 * and no Sec-WebSocket-Extensions/-Protocol came back unless the request
 * offered one; otherwise WSC_E_BAD_HANDSHAKE (resp still filled in).
 * resp may be NULL; else it is overwritten (free a previous one first) and
 * must be released with wsc_response_free(). */
int wsc_handshake(wsc *c, const char *path, const char *extra_headers,
                  wsc_response *resp, int timeout_ms);

/* Sends raw_request as is, reads the response head and its body: exactly
 * Content-Length bytes if present; none for 1xx/204/304; otherwise until
 * EOF (chunked is not decoded). Returns the status or a negative error
 * (on -ETIMEDOUT while reading a body until EOF, resp holds what came).
 * resp is required; release it with wsc_response_free(). */
int wsc_request(wsc *c, const char *raw_request, wsc_response *resp,
                int timeout_ms);

/* Value of the first header called name (case-insensitive) or NULL. The
 * string is owned by resp: valid until wsc_response_free(resp), never
 * freed by the caller. */
const char *wsc_header(const wsc_response *resp, const char *name);
void wsc_response_free(wsc_response *resp);

/* ---- frames out ---------------------------------------------------- */

/* Writes one frame into out and returns its total size. When that is more
 * than cap nothing is written, so encode(NULL, 0, ...) sizes a buffer.
 * Encodes anything asked for (rsv 0-7, any opcode 0-15, control frames of
 * any length) with the minimal length form. mask NULL = unmasked. */
size_t wsc_encode_frame(uint8_t *out, size_t cap, int fin, int rsv,
                        int opcode, const uint8_t *mask, const void *payload,
                        size_t len);

/* Masked (as a client must), one write per frame. */
int wsc_send_frame(wsc *c, int fin, int rsv, int opcode, const void *payload,
                   size_t len);
int wsc_send_frame_ex(wsc *c, int fin, int rsv, int opcode, int masked,
                      const void *payload, size_t len);
/* code -1 sends an empty close payload (reason ignored); any other value is
 * put on the wire as is, valid or not (1005, 999, 5000 ...). */
int wsc_send_close(wsc *c, int code, const char *reason, size_t reason_len);
int wsc_send_text(wsc *c, const char *s);
int wsc_send_binary(wsc *c, const void *p, size_t n);

/* ---- frames in ----------------------------------------------------- */

/* Next frame as is (fragments not joined). 1 = frame in *f (free with
 * wsc_frame_free), 0 = clean EOF at a frame boundary, negative: -ETIMEDOUT,
 * -EPROTO, -EMSGSIZE, WSC_E_TRUNCATED, -ECONNRESET, ...
 * Text is UTF-8 checked here only when the frame is a whole message
 * (fin=1, opcode text); fragmented text is checked by wsc_recv_message. */
int wsc_recv_frame(wsc *c, wsc_frame *f, int timeout_ms);

/* Next data message with its fragments joined (f->opcode is text/binary,
 * f->fin 1), same return values as wsc_recv_frame. Nothing is skipped: a
 * control frame that arrives first - even between two fragments - is
 * returned as it is; fragments already received stay kept in c and the
 * next call continues assembling (likewise after a timeout). */
int wsc_recv_message(wsc *c, wsc_frame *f, int timeout_ms);

void wsc_frame_free(wsc_frame *f);

/* Reads frames, discarding data and ping/pong, until a close frame. Does
 * not answer it (send wsc_send_close yourself). 0 when its code equals
 * expected_code (-1 = expect an empty close payload), WSC_E_CLOSE_CODE when
 * it differs (the code seen is in c->last_close_code), WSC_E_EOF when the
 * connection ended first, else the receive error. */
int wsc_expect_close(wsc *c, int expected_code, int timeout_ms);

/* Discards everything until the server ends the TCP connection: 0 on FIN,
 * 1 on RST (a server that closes with unread input makes the kernel send
 * RST, so tests asserting "the server closed" should accept >= 0),
 * -ETIMEDOUT if it is still open at the deadline. */
int wsc_wait_eof(wsc *c, int timeout_ms);

/* Raw read: if bytes are buffered, returns them (at most cap) without
 * touching the socket; else waits until readable and returns what a single
 * recv() gave. Count > 0, 0 on EOF, negative on timeout/error. For tests
 * like "three replies made in one callback arrive in one read". */
int wsc_read_available(wsc *c, uint8_t *buf, size_t cap, int timeout_ms);

/* Decodes one server frame from memory with the checks of wsc_recv_frame
 * (no RSV allowed, UTF-8 checked, no fragment-sequence state). Returns the
 * bytes it used (> 0) with *f filled, 0 if p holds no complete frame yet,
 * or -EPROTO. Pairs with wsc_read_available(). */
long wsc_decode_frame(const uint8_t *p, size_t n, wsc_frame *f);

/* ---- helpers ------------------------------------------------------- */

/* base64(SHA-1(key + RFC 6455 GUID)), NUL-terminated (28 chars). */
void wsc_accept_key(const char *key, char out[29]);
/* 1 if p[0..n) is valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
int wsc_utf8_valid(const uint8_t *p, size_t n);
/* Name of a WSC_E_* code or strerror(-err). */
const char *wsc_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
