/*
 * What soak_server and soak_client agree on (tests/load, issue #6).
 *
 * Every WebSocket connection of the client asks for
 *     GET /soak?r=ROLE&s=SLOT&g=GEN
 * so the server knows what the connection will do and which terminate
 * reason it must end with; the control connection asks for /control and
 * sends the text commands "stats" (answered "open=N ws=M": the server's
 * connection count and WebSocket connections not yet terminated) and
 * "stop" (lariat_server_stop()).
 *
 * Every data message of the client starts with a 10-byte ASCII tag
 * "#xxxxxxxx:" (its sequence number on the connection, 8 lowercase hex
 * digits, from 0), then the payload; the server checks that the tags of a
 * connection arrive 0, 1, 2... and echoes the message unchanged (same
 * opcode, same bytes).
 */
#ifndef LARIAT_TESTS_LOAD_SOAK_H
#define LARIAT_TESTS_LOAD_SOAK_H

#include <stdint.h>
#include <string.h>

#define SOAK_TAG_LEN 10

/* Roles. The comment says what the client does and how the server's
 * terminate must see the connection end. */
#define SOAK_ROLES(XX)                                                        \
  /* behaves: echo traffic, answers the stop's close: SHUTDOWN */             \
  XX(ECHO, "echo")                                                            \
  /* behaves, never sends a message: SHUTDOWN */                              \
  XX(IDLE, "idle")                                                            \
  /* the control connection (/control): SHUTDOWN */                           \
  XX(CTL, "ctl")                                                              \
  /* reads, never answers the stop's close nor closes: SHUTDOWN after the     \
   * close timeout */                                                         \
  XX(DEAF, "deaf")                                                            \
  /* sends messages, then never reads again: SHUTDOWN after the timeout */    \
  XX(NOREAD, "noread")                                                        \
  /* sends close 1000 "bye" right after the stop was asked for: the server   \
   * sees either first, so REMOTE 1000 or SHUTDOWN */                        \
  XX(RACE, "race")                                                            \
  /* RST (SO_LINGER 0) in the middle of a frame: ERROR_SOCKET or CLOSED */    \
  XX(RST, "rst")                                                              \
  /* close() (FIN) in the middle of a frame: ERROR_CLOSED */                  \
  XX(FIN, "fin")                                                              \
  /* shutdown(SHUT_WR) in the middle of a frame, keeps reading: CLOSED */     \
  XX(HALF, "half")                                                            \
  /* random bytes after the upgrade (RSV bits set): close 1002, BADFRAME */   \
  XX(JUNK, "junk")                                                            \
  /* a text message that is not UTF-8: close 1007, BADENCODING */             \
  XX(UTF8, "utf8")                                                            \
  /* a frame header over the 1 MiB limit: close 1009, TOO_BIG */              \
  XX(BIG, "big")                                                              \
  /* a clean close 1000 "bye": REMOTE 1000 */                                 \
  XX(BYE, "bye")                                                              \
  /* a plain GET without Upgrade: 426, init sees it, terminate NORMAL with    \
   * conn NULL */                                                             \
  XX(PLAIN, "plain")                                                          \
  /* the rest never reach init (no terminate): */                             \
  /* an upgrade with a malformed key: 400 */                                  \
  XX(BADKEY, "badkey")                                                        \
  /* random bytes instead of an HTTP request: 400 */                          \
  XX(RAWJUNK, "rawjunk")                                                      \
  /* the request head a byte at a time, never finished: 408 or dropped */     \
  XX(SLOW, "slow")                                                            \
  /* connects, sends nothing: 408 or dropped */                               \
  XX(MUTE, "mute")                                                            \
  /* half a request head, then RST */                                         \
  XX(HSRST, "hsrst")

enum soak_role {
#define SOAK_ROLE_ENUM(name, str) SOAK_##name,
  SOAK_ROLES(SOAK_ROLE_ENUM)
#undef SOAK_ROLE_ENUM
  SOAK_NROLES
};

static const char *const soak_role_names[SOAK_NROLES] = {
#define SOAK_ROLE_NAME(name, str) str,
    SOAK_ROLES(SOAK_ROLE_NAME)
#undef SOAK_ROLE_NAME
};

static inline int soak_role_from_name(const char *s, size_t n) {
  for (int i = 0; i < SOAK_NROLES; ++i)
    if (strlen(soak_role_names[i]) == n && memcmp(soak_role_names[i], s, n) == 0)
      return i;
  return -1;
}

/* Writes the tag of |seq| into |out| (SOAK_TAG_LEN bytes, no NUL). */
static inline void soak_put_tag(uint8_t *out, uint32_t seq) {
  static const char hex[] = "0123456789abcdef";
  out[0] = '#';
  for (int i = 0; i < 8; ++i) out[1 + i] = (uint8_t)hex[(seq >> (28 - 4 * i)) & 15];
  out[9] = ':';
}

/* Reads a tag; returns 0 and sets |*seq|, or -1 when there is none. */
static inline int soak_get_tag(const uint8_t *p, size_t n, uint32_t *seq) {
  if (n < SOAK_TAG_LEN || p[0] != '#' || p[9] != ':') return -1;
  uint32_t v = 0;
  for (int i = 1; i <= 8; ++i) {
    uint8_t c = p[i];
    if (c >= '0' && c <= '9')
      v = v << 4 | (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v = v << 4 | (uint32_t)(c - 'a' + 10);
    else
      return -1;
  }
  *seq = v;
  return 0;
}

#endif
