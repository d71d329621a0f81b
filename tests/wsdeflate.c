/* Client side of permessage-deflate for wsclient; see wsdeflate.h. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "wsdeflate.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

/* RFC 7692 7.2.1: the empty stored block that ends every sync flush. */
static const uint8_t kFlushTail[4] = {0x00, 0x00, 0xff, 0xff};

/* zlib counts in uInt: feed huge buffers in slices. */
#define MAX_SLICE ((size_t)1 << 30)

struct wsd_codec {
  z_stream deflater, inflater;
  int client_no_context_takeover, server_no_context_takeover;
  size_t max_output;
  int strict_window;
  /* wsd_recv_message assembly of a fragmented message. */
  uint8_t *msg;
  size_t msg_len;
  int msg_opcode, msg_rsv;
};

/* ---- time (mirrors wsclient.c) --------------------------------------- */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline) {
  int64_t left = deadline - now_ms();
  if (left <= 0) return 0;
  return left > INT_MAX ? INT_MAX : (int)left;
}

/* ---- codec ----------------------------------------------------------- */

wsd_codec *wsd_new(int client_window_bits, int client_no_context_takeover,
                   int server_window_bits, int server_no_context_takeover) {
  if (client_window_bits < 8 || client_window_bits > 15 ||
      server_window_bits < 8 || server_window_bits > 15)
    return NULL;
  wsd_codec *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  /* Negative window bits: raw deflate, no zlib header or checksum. */
  int deflate_bits = client_window_bits == 8 ? 9 : client_window_bits;
  if (deflateInit2(&d->deflater, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                   -deflate_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    free(d);
    return NULL;
  }
  if (inflateInit2(&d->inflater, -server_window_bits) != Z_OK) {
    deflateEnd(&d->deflater);
    free(d);
    return NULL;
  }
  d->client_no_context_takeover = client_no_context_takeover;
  d->server_no_context_takeover = server_no_context_takeover;
  d->max_output = (size_t)64 << 20;
  return d;
}

void wsd_free(wsd_codec *d) {
  if (!d) return;
  deflateEnd(&d->deflater);
  inflateEnd(&d->inflater);
  free(d->msg);
  free(d);
}

void wsd_set_max_output(wsd_codec *d, size_t max_output) {
  d->max_output = max_output;
}

void wsd_set_strict_window(wsd_codec *d, int strict) {
  d->strict_window = strict;
}

/* Doubles *buf until it has room for `need` more bytes after *len. */
static int grow(uint8_t **buf, size_t *cap, size_t len, size_t need) {
  if (*cap - len >= need) return 0;
  size_t new_cap = *cap ? *cap : 256;
  while (new_cap - len < need) {
    if (new_cap > SIZE_MAX / 2) return -ENOMEM;
    new_cap *= 2;
  }
  uint8_t *grown = realloc(*buf, new_cap);
  if (!grown) return -ENOMEM;
  *buf = grown;
  *cap = new_cap;
  return 0;
}

int wsd_compress(wsd_codec *d, const void *p, size_t n, uint8_t **out,
                 size_t *out_len) {
  z_stream *z = &d->deflater;
  const uint8_t *in = p;
  uint8_t *buf = NULL;
  size_t cap = 0, len = 0;
  int err = 0;
  *out = NULL;
  *out_len = 0;
  for (;;) {
    size_t slice = n < MAX_SLICE ? n : MAX_SLICE;
    int flush = slice == n ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    z->next_in = (Bytef *)(uintptr_t)in; /* zlib's API is not const */
    z->avail_in = (uInt)slice;
    /* Per zlib's contract a flush is done once deflate leaves output room
       with all input consumed. */
    do {
      if ((err = grow(&buf, &cap, len, slice / 2 + 64)) < 0) goto fail;
      size_t room = cap - len < MAX_SLICE ? cap - len : MAX_SLICE;
      z->next_out = buf + len;
      z->avail_out = (uInt)room;
      int r = deflate(z, flush);
      len += room - z->avail_out;
      /* Z_BUF_ERROR = nothing to do: an empty message right after a flush. */
      if (r != Z_OK && r != Z_BUF_ERROR) {
        err = -EIO;
        goto fail;
      }
    } while (z->avail_out == 0 || z->avail_in > 0);
    in += slice;
    n -= slice;
    if (flush == Z_SYNC_FLUSH) break;
  }

  if (len == 0) {
    /* zlib emits nothing for a second consecutive flush; a lone 00 plus the
       receiver's 00 00 ff ff is an empty stored block, as a fresh stream
       would send it. */
    if ((err = grow(&buf, &cap, 0, 1)) < 0) goto fail;
    buf[len++] = 0x00;
  } else if (len >= 4 && memcmp(buf + len - 4, kFlushTail, 4) == 0) {
    len -= 4;
  } else {
    err = -EIO;
    goto fail;
  }
  if (d->client_no_context_takeover && deflateReset(z) != Z_OK) {
    err = -EIO;
    goto fail;
  }
  *out = buf;
  *out_len = len;
  return 0;

fail:
  free(buf);
  return err;
}

/* Inflates `n` bytes into buf, keeping buf under `limit` + slack. Returns
 * 1 at the end of the deflate stream (BFINAL), 0 when the input is used up,
 * or a negative error. */
static int inflate_into(z_stream *z, const uint8_t *in, size_t n,
                        size_t limit, int strict_window, uint8_t **buf,
                        size_t *cap, size_t *len) {
  while (n > 0) {
    size_t slice = n < MAX_SLICE ? n : MAX_SLICE;
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)slice;
    do {
      int err = grow(buf, cap, *len, 4096);
      if (err < 0) return err;
      size_t room = *cap - *len < MAX_SLICE ? *cap - *len : MAX_SLICE;
      /* inflate checks a distance against its window plus what this call
         produced, so only one byte per call makes the window a hard limit. */
      if (strict_window) room = 1;
      z->next_out = *buf + *len;
      z->avail_out = (uInt)room;
      int r = inflate(z, Z_SYNC_FLUSH);
      *len += room - z->avail_out;
      if (*len > limit) return -EMSGSIZE;
      if (r == Z_STREAM_END) return 1;
      if (r == Z_BUF_ERROR && z->avail_in == 0) break; /* wants more input */
      if (r != Z_OK) return r == Z_MEM_ERROR ? -ENOMEM : -EPROTO;
    } while (z->avail_in > 0 || z->avail_out == 0);
    in += slice;
    n -= slice;
  }
  return 0;
}

static int decompress_limited(wsd_codec *d, const void *p, size_t n,
                              size_t limit, uint8_t **out, size_t *out_len) {
  z_stream *z = &d->inflater;
  uint8_t *buf = NULL;
  size_t cap = 0, len = 0;
  *out = NULL;
  *out_len = 0;
  int strict = d->strict_window;
  int r = inflate_into(z, p, n, limit, strict, &buf, &cap, &len);
  if (r == 0)
    r = inflate_into(z, kFlushTail, 4, limit, strict, &buf, &cap, &len);
  if (r < 0) {
    free(buf);
    return r;
  }
  /* A stream ended with BFINAL (RFC 7692 7.2.3.4) cannot carry on: what
     follows starts a new one. Bytes after the end (the tail) are ignored. */
  if ((r == 1 || d->server_no_context_takeover) && inflateReset(z) != Z_OK) {
    free(buf);
    return -EIO;
  }
  if ((r = grow(&buf, &cap, len, 1)) < 0) {
    free(buf);
    return r;
  }
  buf[len] = '\0';
  *out = buf;
  *out_len = len;
  return 0;
}

int wsd_decompress(wsd_codec *d, const void *p, size_t n, uint8_t **out,
                   size_t *out_len) {
  return decompress_limited(d, p, n, d->max_output, out, out_len);
}

/* ---- messages -------------------------------------------------------- */

int wsd_send_message(wsc *c, wsd_codec *d, int opcode, const void *p,
                     size_t n, size_t fragment_size) {
  uint8_t *z;
  size_t z_len;
  int r = wsd_compress(d, p, n, &z, &z_len);
  if (r < 0) return r;
  if (fragment_size == 0) fragment_size = z_len;
  size_t sent = 0;
  do {
    size_t part = z_len - sent < fragment_size ? z_len - sent : fragment_size;
    int first = sent == 0;
    int last = sent + part == z_len;
    /* RFC 7692 6.1: RSV1 marks the message, so only its first frame. */
    r = wsc_send_frame(c, last, first ? WSC_RSV1 : 0,
                       first ? opcode : WSC_OP_CONT, z + sent, part);
    sent += part;
  } while (r == 0 && sent < z_len);
  free(z);
  return r;
}

/* Turns a complete message into what the application sent. Takes
 * ownership of payload. */
static int finish_message(wsc *c, wsd_codec *d, int opcode, int rsv,
                          uint8_t *payload, size_t len, wsc_frame *f) {
  if (rsv & WSC_RSV1) {
    size_t limit = d->max_output < c->max_payload ? d->max_output
                                                   : c->max_payload;
    uint8_t *plain;
    size_t plain_len;
    int r = decompress_limited(d, payload, len, limit, &plain, &plain_len);
    free(payload);
    if (r < 0) return r;
    payload = plain;
    len = plain_len;
  }
  memset(f, 0, sizeof *f);
  f->fin = 1;
  f->rsv = rsv;
  f->opcode = opcode;
  f->payload = payload;
  f->len = len;
  f->close_code = -1;
  if (c->check_utf8 && opcode == WSC_OP_TEXT &&
      !wsc_utf8_valid(payload, len)) {
    wsc_frame_free(f);
    return -EPROTO;
  }
  return 1;
}

int wsd_recv_message(wsc *c, wsd_codec *d, wsc_frame *f, int timeout_ms) {
  int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  c->allowed_rsv |= WSC_RSV1;
  for (;;) {
    wsc_frame part;
    /* wsc_recv_frame checks the fragment sequence and skips the UTF-8
       check of frames with RSV bits (their payload is compressed). */
    int r = wsc_recv_frame(c, &part, remaining_ms(deadline));
    if (r <= 0 || part.opcode >= WSC_OP_CLOSE) {
      *f = part;
      return r;
    }
    if (part.opcode != WSC_OP_CONT) {
      if (part.fin)
        return finish_message(c, d, part.opcode, part.rsv, part.payload,
                              part.len, f);
      free(d->msg);
      d->msg = part.payload;
      d->msg_len = part.len;
      d->msg_opcode = part.opcode;
      d->msg_rsv = part.rsv;
      continue;
    }
    if (part.rsv & WSC_RSV1) { /* RFC 7692 6.1: first frame only */
      wsc_frame_free(&part);
      return -EPROTO;
    }
    uint8_t *grown = realloc(d->msg, d->msg_len + part.len + 1);
    if (!grown) {
      wsc_frame_free(&part);
      return -ENOMEM;
    }
    if (part.len) memcpy(grown + d->msg_len, part.payload, part.len);
    d->msg = grown;
    d->msg_len += part.len;
    d->msg[d->msg_len] = '\0';
    int last = part.fin;
    wsc_frame_free(&part);
    if (!last) continue;
    uint8_t *payload = d->msg;
    d->msg = NULL;
    return finish_message(c, d, d->msg_opcode, d->msg_rsv, payload,
                          d->msg_len, f);
  }
}

/* ---- Sec-WebSocket-Extensions ---------------------------------------- */

static int is_tchar(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static const char *skip_ows(const char *s) {
  while (*s == ' ' || *s == '\t') s++;
  return s;
}

/* RFC 7692 7.1.2: 1*DIGIT without a leading zero, 8..15. */
static int parse_window_bits(const char *v, size_t n) {
  if (n == 1 && v[0] >= '8' && v[0] <= '9') return v[0] - '0';
  if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
    return 10 + v[1] - '0';
  return -1;
}

int wsd_parse_response(const char *header_value, int *server_window_bits,
                       int *client_window_bits, int *server_nct,
                       int *client_nct) {
  static const char *const kNames[4] = {
      "server_max_window_bits", "client_max_window_bits",
      "server_no_context_takeover", "client_no_context_takeover"};
  int values[4] = {15, 15, 0, 0};
  int seen[4] = {0, 0, 0, 0};
  static const char kName[] = "permessage-deflate";
  if (!header_value) return -EPROTO;
  const char *s = skip_ows(header_value);
  if (strncmp(s, kName, sizeof kName - 1) != 0) return -EPROTO;
  s = skip_ows(s + sizeof kName - 1);
  while (*s == ';') {
    s = skip_ows(s + 1);
    const char *name = s;
    while (is_tchar(*s)) s++;
    size_t name_len = (size_t)(s - name);
    int which = -1;
    for (int i = 0; i < 4; i++)
      if (strlen(kNames[i]) == name_len && !strncmp(name, kNames[i], name_len))
        which = i;
    if (which < 0 || seen[which]) return -EPROTO;
    seen[which] = 1;
    s = skip_ows(s);
    if (*s != '=') {
      if (which < 2) return -EPROTO; /* bits need a value in a response */
      values[which] = 1;
      continue;
    }
    if (which >= 2) return -EPROTO;
    s = skip_ows(s + 1);
    /* A quoted value must unquote to the same digits (no escapes needed). */
    int quoted = *s == '"';
    if (quoted) s++;
    const char *value = s;
    while (*s >= '0' && *s <= '9') s++;
    values[which] = parse_window_bits(value, (size_t)(s - value));
    if (values[which] < 0) return -EPROTO;
    if (quoted && *s++ != '"') return -EPROTO;
    s = skip_ows(s);
  }
  if (*s != '\0') return -EPROTO;
  if (server_window_bits) *server_window_bits = values[0];
  if (client_window_bits) *client_window_bits = values[1];
  if (server_nct) *server_nct = values[2];
  if (client_nct) *client_nct = values[3];
  return 0;
}
