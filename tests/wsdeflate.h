/*
 * wsdeflate - the client side of permessage-deflate (RFC 7692) for the
 * blocking test client wsclient (C99 + zlib). Real zlib streams, no canned
 * bytes, so tests can talk to lariat with compression on and check what it
 * sends.
 *
 * Conventions are those of wsclient.h: 0 (or a count) on success, a
 * negative errno or WSC_E_* code on failure.
 *
 * Typical use:
 *   wsc_handshake(&c, "/", "Sec-WebSocket-Extensions: permessage-deflate; "
 *                 "client_max_window_bits\r\n", &resp, 5000);
 *   int sbits, cbits, snct, cnct;
 *   wsd_parse_response(wsc_header(&resp, "Sec-WebSocket-Extensions"),
 *                      &sbits, &cbits, &snct, &cnct);
 *   wsd_codec *d = wsd_new(cbits, cnct, sbits, snct);
 *   wsd_send_message(&c, d, WSC_OP_TEXT, "Hello", 5, 0);
 *   wsd_recv_message(&c, d, &f, 5000);
 */
#ifndef LARIAT_TESTS_WSDEFLATE_H
#define LARIAT_TESTS_WSDEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "wsclient.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One connection's pair of streams: the client's compressor and the
 * decompressor of what the server sends. Opaque. */
typedef struct wsd_codec wsd_codec;

/* Window sizes are the agreed ones, 8..15:
 *  - client_window_bits: we compress with at most this window. zlib refuses
 *    a raw 8-bit deflater, so 8 deflates with 9; that stays within an 8-bit
 *    window because zlib never emits a distance above window - 262 = 250.
 *  - server_window_bits: the window we inflate with, exactly as agreed, so
 *    a server that uses a larger one than it promised fails with -EPROTO.
 * *_no_context_takeover: 1 resets that direction's stream after each
 * message. Returns NULL for bits out of range or when out of memory. */
wsd_codec *wsd_new(int client_window_bits, int client_no_context_takeover,
                   int server_window_bits, int server_no_context_takeover);
void wsd_free(wsd_codec *d); /* NULL is fine */

/* Compresses one whole message: raw deflate, Z_SYNC_FLUSH, with the
 * trailing 00 00 ff ff removed (RFC 7692 7.2.1). An empty message gives the
 * single byte 00. *out is malloc'd (never NULL on success; free it).
 * 0 or -ENOMEM / -EIO (zlib failure). */
int wsd_compress(wsd_codec *d, const void *p, size_t n, uint8_t **out,
                 size_t *out_len);

/* Decompresses one whole compressed message (00 00 ff ff is appended here,
 * RFC 7692 7.2.2). A stream the server ended with BFINAL is restarted for
 * the next message. *out is malloc'd and NUL-terminated (not counted).
 * 0, -EPROTO for corrupt data (the stream is then unusable: reset the
 * connection), -EMSGSIZE past the limit set by wsd_set_max_output, or
 * -ENOMEM. */
int wsd_decompress(wsd_codec *d, const void *p, size_t n, uint8_t **out,
                   size_t *out_len);

/* Largest decompressed message wsd_decompress accepts (default 64 MiB, like
 * wsc.max_payload), so a deflate bomb from a broken server cannot exhaust
 * the test's memory. wsd_recv_message uses the smaller of this and
 * c->max_payload. */
void wsd_set_max_output(wsd_codec *d, size_t max_output);

/* zlib's inflate only rejects a distance beyond its window plus what the
 * current call produced, so by default a server that compresses a single
 * large message with a larger window than agreed may go unnoticed
 * (references into earlier messages are always checked). strict = 1
 * inflates one output byte per call, which makes server_window_bits a hard
 * limit (-EPROTO) at ~100 ns per byte: for tests of the server's window. */
void wsd_set_strict_window(wsd_codec *d, int strict);

/* Compresses a text/binary message and sends it with RSV1 on the first
 * frame only (RFC 7692 6.1). fragment_size 0 sends one frame; otherwise the
 * compressed bytes are split into frames of at most fragment_size bytes
 * (continuations carry RSV 0). 0 or a negative error. */
int wsd_send_message(wsc *c, wsd_codec *d, int opcode, const void *p,
                     size_t n, size_t fragment_size);

/* Like wsc_recv_message (control frames come back as they are, including
 * between fragments, and a partial message stays kept across calls and
 * timeouts), and sets c->allowed_rsv to WSC_RSV1. A message whose first
 * frame has RSV1 is decompressed: f->payload/f->len then hold the plain
 * message and f->rsv still says WSC_RSV1, so a test can assert the server
 * compressed. Text is UTF-8 checked after decompression (c->check_utf8).
 * -EPROTO also when a continuation frame has RSV1 or a corrupt stream
 * arrives. Keeps its partial-message state in d, so do not interleave
 * wsc_recv_message/wsc_recv_frame with it inside a fragmented message.
 * Returns 1 with *f filled, 0 on EOF, negative on error. */
int wsd_recv_message(wsc *c, wsd_codec *d, wsc_frame *f, int timeout_ms);

/* Parses the server's Sec-WebSocket-Extensions answer, which must be one
 * permessage-deflate extension (no comma) with each known parameter at
 * most once; values may be quoted (RFC 7692 7.1). Outputs the agreed
 * values: window bits 15 and no_context_takeover 0 when absent. Any output
 * pointer may be NULL. 0, or -EPROTO for NULL, another extension, an
 * unknown or repeated parameter, a missing or invalid value (not 8..15, a
 * leading zero) or a value on a no_context_takeover parameter. It cannot
 * know whether client_max_window_bits was offered: check that yourself. */
int wsd_parse_response(const char *header_value, int *server_window_bits,
                       int *client_window_bits, int *server_nct,
                       int *client_nct);

#ifdef __cplusplus
}
#endif

#endif
