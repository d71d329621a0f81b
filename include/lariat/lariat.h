/** @file
 * lariat - a WebSocket server library with Cowboy's cowboy_websocket
 * handler model, behind a stable C ABI.
 *
 * Threading: lariat is not thread-safe except where stated otherwise.
 * Everything runs on the server's loop thread; the only functions that may
 * be called from any thread say "any thread" in their comment
 * (lariat_post() first of all). A loop-thread function called from
 * another thread does nothing and returns LARIAT_ERR_INVALID_STATE (or
 * NULL / 0 where it returns no code); it costs one comparison of thread
 * ids.
 *
 * Errors: functions return 0 (or a non-negative value) on success and a
 * negative error code on failure (enum lariat_error, or a libuv code that
 * lariat_strerror() and lariat_err_name() also understand). When a function
 * which takes a callback returns an error, the callback will never be
 * called.
 *
 * Ownership vocabulary used next to every function:
 *  - borrowed for the call: valid only until the callback returns;
 *  - copied: lariat copies the bytes before the function returns;
 *  - handed over with a free function: lariat calls the free function
 *    exactly once when it no longer needs the pointer.
 *
 * SIGPIPE: a peer that resets the connection while lariat writes would
 * raise SIGPIPE. lariat_server_new() sets SIGPIPE to SIG_IGN when (and only
 * when) its disposition is still SIG_DFL, unless
 * lariat_options_set_ignore_sigpipe(opts, 0) was called; a host program that
 * installs its own SIGPIPE handler keeps it.
 */
#ifndef LARIAT_H
#define LARIAT_H

#include <stddef.h>
#include <stdint.h>

#include <lariat/lariat_version.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks the exported functions: visibility("default") (dllexport and
 * dllimport on Windows), empty under LARIAT_STATICLIB. */
#if defined(LARIAT_STATICLIB)
#define LARIAT_EXTERN
#elif defined(_WIN32) || defined(__CYGWIN__)
#ifdef BUILDING_LARIAT
#define LARIAT_EXTERN __declspec(dllexport)
#else
#define LARIAT_EXTERN __declspec(dllimport)
#endif
#else
#define LARIAT_EXTERN __attribute__((visibility("default")))
#endif

/* libuv's loop; lariat only ever takes it by pointer. */
struct uv_loop_s;

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/**
 * The error band [-599, -500] is lariat's own; it is disjoint from libuv's
 * codes (-errno, -3000..-3014, -4095..-4022, -9919...). Codes below
 * LARIAT_ERR_FATAL mean the object is no longer usable. Removed codes keep
 * their slot.
 */
#define LARIAT_ERRNO_MAP(XX)                                                  \
  XX(INVALID_ARGUMENT, -501, "invalid argument")                              \
  XX(NOMEM, -502, "out of memory")                                            \
  XX(INVALID_STATE, -503,                                                     \
     "function not allowed in this state or on this thread (from other "      \
     "threads, use lariat_post())")                                           \
  XX(BAD_CLOSE_CODE, -504, "close code not allowed on the wire")              \
  XX(CLOSING, -505, "connection is closing; no more frames are sent")         \
  XX(NOT_FOUND, -506, "no such connection or route")                          \
  XX(STOPPED, -507, "server is stopping or stopped")                          \
  XX(EXISTS, -508, "route already exists")                                    \
  XX(TOO_LARGE, -509, "payload too large for this frame type")                \
  XX(VERSION, -510, "library older than the version asked for")             \
  XX(BACKPRESSURE, -511, "too much output queued for this connection")     \
  XX(EXCEEDS_CAP, -512,                                                       \
     "frame larger than the connection's queued-output cap; it can never "    \
     "be sent")                                                               \
  XX(BUFFER_TOO_SMALL, -513, "buffer too small for the value")                \
  XX(UNSUPPORTED, -514, "not supported by this build of lariat")              \
  XX(REDIS, -515,                                                             \
     "Redis refused the bridge (an error reply or a failed connection; see "  \
     "the event's detail)")                                                   \
  XX(TLS, -516, "TLS configuration refused (certificate or key unusable)")    \
  XX(FATAL, -550, "fatal error")

/** lariat's error codes, LARIAT_ERR_<name> for each entry of
 * LARIAT_ERRNO_MAP, with the value and text it lists there. */
typedef enum lariat_error {
/* Each entry starts with its comma, so the list ends without one (C89). */
#define LARIAT__ERR_ENUM(name, val, str) , LARIAT_ERR_##name = (val)
  LARIAT__ERR_BAND_ = -500 LARIAT_ERRNO_MAP(LARIAT__ERR_ENUM)
#undef LARIAT__ERR_ENUM
} lariat_error;

/**
 * @function
 *
 * Returns a human readable text for |error_code|: one of enum lariat_error,
 * or any libuv error code. Never NULL. The string is static; thread: any
 * thread.
 */
LARIAT_EXTERN const char *lariat_strerror(int error_code);

/**
 * @function
 *
 * Returns the name of |error_code| ("LARIAT_ERR_CLOSING", or libuv's name
 * such as "ECONNRESET"). Never NULL. The string is static; thread: any
 * thread.
 */
LARIAT_EXTERN const char *lariat_err_name(int error_code);

/**
 * @function
 *
 * Returns nonzero if |error_code| is fatal (below LARIAT_ERR_FATAL).
 * Thread: any thread.
 */
LARIAT_EXTERN int lariat_is_fatal(int error_code);

/* ------------------------------------------------------------------ */
/* Version                                                             */
/* ------------------------------------------------------------------ */

/** What lariat_version() returns: the running library's version. */
typedef struct lariat_info {
  /** Age of this struct; fields are only ever appended. 1 today. */
  int age;
  /** LARIAT_VERSION_NUM of the library that runs. */
  int version_num;
  /** LARIAT_VERSION of the library that runs. */
  const char *version_str;
  /** ABI (SONAME) major version. */
  int abi_version;
} lariat_info;

/**
 * @function
 *
 * Returns the version of the running library, or NULL if it is older than
 * |least_version| (a LARIAT_VERSION_NUM value; 0 accepts any). The struct is
 * static; thread: any thread.
 */
LARIAT_EXTERN const lariat_info *lariat_version(int least_version);

/* ------------------------------------------------------------------ */
/* Frames                                                              */
/* ------------------------------------------------------------------ */

/** WebSocket opcodes (RFC 6455 5.2) of lariat_frame.opcode. */
typedef enum lariat_opcode {
  LARIAT_OP_TEXT = 1,   /**< a text message (UTF-8) */
  LARIAT_OP_BINARY = 2, /**< a binary message */
  LARIAT_OP_CLOSE = 8,  /**< a close frame, with close_code */
  LARIAT_OP_PING = 9,   /**< a ping (lariat answers it with a pong) */
  LARIAT_OP_PONG = 10   /**< a pong */
} lariat_opcode;

/** lariat_reply(): send this message uncompressed even when
 * permessage-deflate was negotiated (Cowboy's {deflate, false}). */
#define LARIAT_FRAME_NO_COMPRESS 0x1u
/** lariat_publish(), lariat_conn_publish(): reach this process's
 * subscribers only, not the other processes of a Redis bridge (a notice
 * about the bridge itself, say). Without a bridge it changes nothing. */
#define LARIAT_FRAME_LOCAL 0x2u

/**
 * A whole message (text or binary) or a control frame. The same struct is
 * handed to websocket_handle (data borrowed for the call) and filled by the
 * handler for lariat_reply() (data copied).
 */
typedef struct lariat_frame {
  uint32_t opcode;     /**< lariat_opcode */
  uint32_t flags;      /**< LARIAT_FRAME_* bits */
  uint16_t close_code; /**< LARIAT_OP_CLOSE only: 0 = close without a code */
  const uint8_t *data; /**< payload (for CLOSE: the reason, without the code) */
  size_t len;          /**< bytes at |data| */
} lariat_frame;

/* ------------------------------------------------------------------ */
/* Terminate reasons                                                   */
/* ------------------------------------------------------------------ */

/** lariat_reason.kind: how a connection ended (DESIGN.md's table). */
typedef enum lariat_reason_kind {
  /** init answered with a plain HTTP response; no WebSocket. */
  LARIAT_REASON_NORMAL = 0,
  /** The peer sent a close frame; |code| is 0 when it carried no code. */
  LARIAT_REASON_REMOTE = 1,
  /** The handler shut down (LARIAT_SHUTDOWN, a close reply) or the server
   * is stopping. */
  LARIAT_REASON_SHUTDOWN = 2,
  /** Nothing received for the idle timeout. */
  LARIAT_REASON_TIMEOUT = 3,
  /** A callback returned LARIAT_CRASH; see crash_class/crash_reason. */
  LARIAT_REASON_CRASH = 4,
  /** Invalid UTF-8 in a text message or a close reason (close 1007). */
  LARIAT_REASON_ERROR_BADENCODING = 5,
  /** A protocol error (close 1002). */
  LARIAT_REASON_ERROR_BADFRAME = 6,
  /** A frame or message over the size limit (close 1009). */
  LARIAT_REASON_ERROR_TOO_BIG = 7,
  /** TCP ended without a close frame. */
  LARIAT_REASON_ERROR_CLOSED = 8,
  /** Any other socket error; see socket_error. */
  LARIAT_REASON_ERROR_SOCKET = 9,
  /** Output queued past the connection's cap under a closing policy
   * (lariat_upgrade_set_max_queued); close 1008 or 1013. */
  LARIAT_REASON_ERROR_BACKPRESSURE = 10,
  /** A client's connection attempt failed before it was open: the server
   * did not answer 101 as RFC 6455 4.1 requires (|http_status| is its
   * status, 0 when the answer was not HTTP or was a valid status with a
   * wrong upgrade; lariat_reason_header() reads its headers), or the name
   * did not resolve or the TCP connect failed (|socket_error|), or the
   * connect or handshake timeout passed. websocket_init was not called. */
  LARIAT_REASON_HANDSHAKE_FAILED = 11
} lariat_reason_kind;

/**
 * Why a connection ended, handed to terminate. Filled by lariat and
 * borrowed for the call; fields are only ever appended, so never allocate
 * or copy one by value across library versions.
 */
typedef struct lariat_reason {
  int kind;              /**< lariat_reason_kind */
  uint16_t code;         /**< REMOTE: the peer's close code, 0 if none */
  const uint8_t *data;   /**< REMOTE: the peer's close reason (UTF-8) */
  size_t len;            /**< REMOTE: bytes at |data| */
  const char *crash_class;  /**< CRASH: as given to lariat_conn_set_crash */
  const char *crash_reason; /**< CRASH */
  int socket_error;         /**< ERROR_SOCKET, HANDSHAKE_FAILED: libuv code */
  /* Clients (lariat_connect) only, 0 on the server side: */
  int http_status;  /**< HANDSHAKE_FAILED: the server's status, or 0 */
  int retrying;     /**< nonzero: another attempt follows, with the same
                       state - keep it; 0: this is the end of the client */
  unsigned attempt; /**< 1 for the first connection attempt, then 2... */
  /** websocket_info messages posted while disconnected and dropped (over
   * the offline queue), since the client started. */
  uint64_t posts_dropped;
  const char *failure; /**< HANDSHAKE_FAILED: what was wrong, in English */
  const void *response_; /**< internal: see lariat_reason_header() */
} lariat_reason;

/**
 * @function
 *
 * Inside terminate with LARIAT_REASON_HANDSHAKE_FAILED: the value of the
 * server's response header |name| (any case; the first one), its length
 * in |*len|; NULL when there is none (or no response). Borrowed for the
 * terminate call. Thread: loop thread.
 */
LARIAT_EXTERN const char *lariat_reason_header(const lariat_reason *reason,
                                               const char *name, size_t *len);

/**
 * @function
 *
 * Returns the name of a lariat_reason_kind ("remote", "error badframe"...),
 * never NULL. Static string; thread: any thread.
 */
LARIAT_EXTERN const char *lariat_reason_name(int kind);

/* ------------------------------------------------------------------ */
/* Handlers                                                            */
/* ------------------------------------------------------------------ */

/** A server: listeners, routes, its loops and every connection on them
 * (lariat_server_new(), lariat_server_del()). */
typedef struct lariat_server lariat_server;
/**
 * A WebSocket connection. A lariat_conn pointer is valid on the loop
 * thread from websocket_init until terminate returns, and only there: it
 * may be kept in handler state between callbacks (for lariat_reply() from
 * a timer on the same loop, say), but never used after terminate, and
 * never from another thread (use its lariat_conn_id with lariat_post()).
 * The C++ wrapper's connection and the Python Connection follow the same
 * rule.
 */
typedef struct lariat_conn lariat_conn;
/** The HTTP request seen by init (lariat_req_*()); borrowed for the
 * init call. */
typedef struct lariat_req lariat_req;
/** init's answer: the options of the accepted connection, or a plain HTTP
 * response (lariat_upgrade_*()); borrowed for the init call unless init
 * returns LARIAT_DEFER. */
typedef struct lariat_upgrade lariat_upgrade;
/** A connection's id: unique in the process, never reused during a
 * server's life, and the only handle valid on any thread (lariat_post()). */
typedef uint64_t lariat_conn_id;

/** What a handler callback returns. Any other value is treated as a crash
 * (close 1011, or 500 from init; terminate gets LARIAT_REASON_CRASH with
 * class "lariat"). */
typedef enum lariat_result {
  /** Go on. */
  LARIAT_OK = 0,
  /** Give back every buffer the connection can until its next activity. */
  LARIAT_HIBERNATE = 1,
  /** Close with 1000, complete the close handshake, terminate shutdown. */
  LARIAT_SHUTDOWN = 2,
  /** Close with 1011, terminate crash; see lariat_conn_set_crash(). */
  LARIAT_CRASH = 3,
  /** init only: the decision is deferred; see lariat_upgrade_resume(). */
  LARIAT_DEFER = 4
} lariat_result;

/**
 * The Cowboy-style handler. Every callback is optional (NULL). The table
 * is copied at lariat_server_route(): lariat copies min(size, sizeof) bytes
 * and zero-fills the rest, so set |size| to sizeof(lariat_handler). Fields
 * are only ever appended.
 *
 * Callbacks run on the loop thread. Inside a callback, do not call
 * lariat_server_del(); lariat_server_stop() is allowed.
 */
typedef struct lariat_handler {
  size_t size; /**< sizeof(lariat_handler) as the caller was built */
  /**
   * Called for every request on this route that is a valid HTTP request:
   * a WebSocket upgrade (lariat_req_is_websocket() != 0) or a plain request.
   * An upgrade attempt that is itself invalid (a bad key, a missing or
   * unsupported version, no Connection: upgrade) is answered 400 or 426
   * without calling init.
   * Return LARIAT_OK to accept the upgrade with the options set on |up|,
   * unless lariat_upgrade_reply() was called, in which case that response is
   * sent and terminate gets LARIAT_REASON_NORMAL. Accepting a request that is
   * not a WebSocket upgrade answers 426. Returning LARIAT_CRASH answers 500
   * and terminate gets LARIAT_REASON_CRASH. Returning LARIAT_DEFER leaves
   * the decision to a later lariat_upgrade_resume() from any thread (a
   * database lookup, say). |req| is borrowed for the call; |up| too, unless
   * init returns LARIAT_DEFER. |handler_data| is the pointer given to
   * lariat_server_route(). Any other return value is a crash (500).
   */
  int (*init)(lariat_req *req, lariat_upgrade *up, void *handler_data);
  /** After the 101 response is written. May reply. Returns lariat_result. */
  int (*websocket_init)(lariat_conn *conn, void *state);
  /** A text or binary message (reassembled), a ping (already answered with a
   * pong) or a pong. |frame| is borrowed for the call. */
  int (*websocket_handle)(lariat_conn *conn, const lariat_frame *frame,
                          void *state);
  /** A message posted with lariat_post(). |msg| is handed over: lariat calls
   * its free function right after this callback returns. */
  int (*websocket_info)(lariat_conn *conn, void *msg, void *state);
  /** Called exactly once for every request that reached init, last. |conn|
   * is NULL when the request was never upgraded. |reason| is borrowed for
   * the call. |state| is what init set with lariat_upgrade_set_state() (or
   * a later lariat_conn_set_data()), NULL if it set none: never the route's
   * handler_data, so terminate may free its state unconditionally. After
   * it returns, |state| is never used again.
   *
   * Which reason a dead peer produces: a peer that closes TCP without a
   * close frame gives LARIAT_REASON_ERROR_CLOSED; one that resets it gives
   * LARIAT_REASON_ERROR_SOCKET with UV_ECONNRESET (or ERROR_CLOSED, when
   * the reset arrives after lariat already read the end of the stream).
   * An idle timeout (LARIAT_REASON_TIMEOUT) calls terminate after the close
   * handshake completes or the close timeout passes. */
  void (*terminate)(lariat_conn *conn, const lariat_reason *reason,
                    void *state);
  /** Output queued for the peer, having risen above the low-water mark
   * (lariat_upgrade_set_low_water), fell back to it: the handler may send
   * again (uWebSockets' drain). May reply. Returns lariat_result. */
  int (*websocket_drain)(lariat_conn *conn, void *state);
} lariat_handler;

/* ------------------------------------------------------------------ */
/* The request, during init                                            */
/* ------------------------------------------------------------------ */

/* Every string below is borrowed for the init call and is not
 * NUL-terminated unless stated; lengths go through |*len| (may be NULL).
 * A NULL |req| returns NULL (or 0, or LARIAT_ERR_INVALID_ARGUMENT). */

/** @function Returns the method ("GET"). */
LARIAT_EXTERN const char *lariat_req_method(const lariat_req *req, size_t *len);
/** @function Returns the path without the query ("/chat"). */
LARIAT_EXTERN const char *lariat_req_path(const lariat_req *req, size_t *len);
/** @function Returns the query without '?', empty if none. */
LARIAT_EXTERN const char *lariat_req_query(const lariat_req *req, size_t *len);
/**
 * @function
 *
 * Returns the value of the first header named |name| (case-insensitive), or
 * NULL if there is none.
 */
LARIAT_EXTERN const char *lariat_req_header(const lariat_req *req,
                                            const char *name, size_t *len);
/** @function Returns the number of header lines. */
LARIAT_EXTERN size_t lariat_req_header_count(const lariat_req *req);
/**
 * @function
 *
 * Gets header |index| (< lariat_req_header_count()). Returns 0 if it
 * succeeds, or LARIAT_ERR_INVALID_ARGUMENT.
 */
LARIAT_EXTERN int lariat_req_header_at(const lariat_req *req, size_t index,
                                       const char **name, size_t *name_len,
                                       const char **value, size_t *value_len);
/**
 * @function
 *
 * Returns nonzero if the request is a valid WebSocket upgrade (method,
 * Upgrade, Connection, key and version all valid).
 */
LARIAT_EXTERN int lariat_req_is_websocket(const lariat_req *req);
/**
 * @function
 *
 * Writes the peer's address as text ("127.0.0.1", "::1") into |buf| of
 * |size| bytes (NUL-terminated) and its port into |*port| (may be NULL).
 * On a listener on "::", IPv4 peers read "::ffff:127.0.0.1".
 * Returns 0 if it succeeds, or a negative libuv error code.
 */
LARIAT_EXTERN int lariat_req_peer(const lariat_req *req, char *buf,
                                  size_t size, int *port);
/** @function Returns the number of subprotocols offered in
 * Sec-WebSocket-Protocol. */
LARIAT_EXTERN size_t lariat_req_protocol_count(const lariat_req *req);
/** @function Returns offered subprotocol |index|, or NULL past the end. */
LARIAT_EXTERN const char *lariat_req_protocol_at(const lariat_req *req,
                                                 size_t index, size_t *len);

/**
 * @function
 *
 * Finds the query parameter |name| (exact match after percent-decoding,
 * '+' read as a space; the first one when repeated) and writes its
 * percent-decoded value to |buf| of |size| bytes, NUL-terminated; |*len|
 * (may be NULL) gets the value's length without the NUL. A parameter
 * without '=' has the empty value. Returns 0 if it succeeds, or one of the
 * following negative error codes:
 *  - LARIAT_ERR_NOT_FOUND: no such parameter;
 *  - LARIAT_ERR_BUFFER_TOO_SMALL: |size| is not above the value's length,
 *    which |*len| then holds;
 *  - LARIAT_ERR_INVALID_ARGUMENT: NULL |req| or |name|, NULL |buf| with a
 *    nonzero |size|, or a malformed percent escape in the value.
 * Thread: loop thread, during init.
 */
LARIAT_EXTERN int lariat_req_query_param(const lariat_req *req,
                                         const char *name, char *buf,
                                         size_t size, size_t *len);

/**
 * @function
 *
 * Finds the cookie |name| in the request's Cookie headers (RFC 6265 5.4:
 * "a=1; b=2", every Cookie header searched in order) and writes its value,
 * without surrounding double quotes and percent-decoded, to |buf| as
 * lariat_req_query_param() does. Returns 0 if it succeeds, or the same
 * error codes as lariat_req_query_param(). Thread: loop thread, during
 * init.
 */
LARIAT_EXTERN int lariat_req_cookie(const lariat_req *req, const char *name,
                                    char *buf, size_t size, size_t *len);

/* ------------------------------------------------------------------ */
/* The upgrade, set during init                                        */
/* ------------------------------------------------------------------ */

/** The idle timeout value meaning "never" (the default, as in Cowboy). */
#define LARIAT_TIMEOUT_INFINITY 0

/** @function Sets the per-connection state pointer handed to every later
 * callback, terminate included (default: NULL; the route's handler_data
 * stays reachable through lariat_conn_handler_data()). Returns 0. */
LARIAT_EXTERN int lariat_upgrade_set_state(lariat_upgrade *up, void *state);
/** @function Sets the idle timeout in milliseconds (0: infinity, the
 * default). Returns 0. */
LARIAT_EXTERN int lariat_upgrade_set_idle_timeout(lariat_upgrade *up,
                                                  uint64_t ms);
/**
 * @function
 *
 * Sets the largest frame and message (reassembled) size accepted, in
 * bytes; over it the connection closes with 1009 and terminate gets
 * LARIAT_REASON_ERROR_TOO_BIG. Default: the server option
 * (lariat_options_set_max_frame_size, 1 MiB). Returns 0, or
 * LARIAT_ERR_INVALID_ARGUMENT for 0.
 */
LARIAT_EXTERN int lariat_upgrade_set_max_frame_size(lariat_upgrade *up,
                                                    uint64_t bytes);
/** @function Turns UTF-8 validation of text messages and close reasons on
 * (nonzero, the default) or off. Returns 0. */
LARIAT_EXTERN int lariat_upgrade_set_validate_utf8(lariat_upgrade *up,
                                                   int on);
/**
 * @function
 *
 * Picks the subprotocol to answer in Sec-WebSocket-Protocol. It must be
 * one of the offered values. Returns 0, or LARIAT_ERR_INVALID_ARGUMENT if
 * the client did not offer it. |protocol| is copied.
 */
LARIAT_EXTERN int lariat_upgrade_set_protocol(lariat_upgrade *up,
                                              const char *protocol);
/** permessage-deflate (RFC 7692) knobs for lariat_upgrade_set_deflate(),
 * Cowboy's `compress` and `deflate_opts`. */
typedef enum lariat_deflate_option {
  /** 1: accept a permessage-deflate offer; 0 (default): decline every one. */
  LARIAT_DEFLATE_ENABLE = 1,
  /** zlib level 0..9 (default 1: on 1-4 KiB JSON it compresses 4.5:1 for
   * less than half the CPU of level 6's 5.8:1; bench/deflate_bench). */
  LARIAT_DEFLATE_LEVEL = 2,
  /** zlib memLevel 1..9 (default 8). */
  LARIAT_DEFLATE_MEM_LEVEL = 3,
  /** Largest LZ77 window lariat compresses with, 8..15 (default 15); a
   * client's smaller server_max_window_bits wins. */
  LARIAT_DEFLATE_SERVER_MAX_WINDOW_BITS = 4,
  /** Largest window lariat asks the client to compress with, 8..15
   * (default 15). Below 15 it is a requirement, as in Cowboy: an offer
   * without client_max_window_bits is declined (RFC 7692 7.1.2.2 forbids
   * sending the parameter to a client that did not offer it, and the
   * client would compress with 15 bits). */
  LARIAT_DEFLATE_CLIENT_MAX_WINDOW_BITS = 5,
  /** 1: reset our compressor after every message (server_no_context_takeover)
   * so hibernate can free it. Also agreed when the client asks. */
  LARIAT_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER = 6,
  /** 1: ask the client to reset its compressor after every message
   * (client_no_context_takeover), so hibernate can free our decompressor. */
  LARIAT_DEFLATE_CLIENT_NO_CONTEXT_TAKEOVER = 7,
  /** Messages shorter than this many bytes are sent uncompressed (default
   * 0: compress everything). */
  LARIAT_DEFLATE_THRESHOLD = 8,
  /** zlib strategy for our compressor: 0 Z_DEFAULT_STRATEGY (default), 1
   * Z_FILTERED, 2 Z_HUFFMAN_ONLY, 3 Z_RLE, 4 Z_FIXED (Cowboy's
   * deflate_opts strategy). */
  LARIAT_DEFLATE_STRATEGY = 9
} lariat_deflate_option;

/**
 * @function
 *
 * Sets one permessage-deflate option (lariat_deflate_option) for this
 * connection. Returns 0, or LARIAT_ERR_INVALID_ARGUMENT for an unknown
 * option or a value out of its range.
 */
LARIAT_EXTERN int lariat_upgrade_set_deflate(lariat_upgrade *up, int option,
                                             int64_t value);

/** What lariat_reply() does when a frame would push the queued output past
 * the cap set with lariat_upgrade_set_max_queued(). */
typedef enum lariat_backpressure_policy {
  /** lariat_reply() refuses the frame with LARIAT_ERR_BACKPRESSURE. */
  LARIAT_BACKPRESSURE_REFUSE = 0,
  /** Close 1008 (policy violation); terminate gets
   * LARIAT_REASON_ERROR_BACKPRESSURE. The default. */
  LARIAT_BACKPRESSURE_CLOSE = 1,
  /** Close 1013 (try again later); same terminate reason. */
  LARIAT_BACKPRESSURE_CLOSE_TRY_LATER = 2
} lariat_backpressure_policy;

/**
 * @function
 *
 * Caps the bytes queued for a peer that reads slower than the handler
 * sends (default 64 MiB, close 1008). The cap applies to frames the handler
 * replies; pongs and close frames lariat sends itself always go. A frame
 * that could not fit even into an empty queue (payload plus its header over
 * the cap) is refused with LARIAT_ERR_EXCEEDS_CAP whatever the policy: it
 * is not backpressure. Returns 0, or LARIAT_ERR_INVALID_ARGUMENT for a 0
 * cap, a cap below a low-water mark set with lariat_upgrade_set_low_water(),
 * or an unknown policy. A cap under 32 KiB brings the default low-water
 * mark down to half the cap.
 */
LARIAT_EXTERN int lariat_upgrade_set_max_queued(lariat_upgrade *up,
                                                uint64_t bytes, int policy);

/**
 * @function
 *
 * Sets the low-water mark (default 16 KiB) under which websocket_drain is
 * called once the queued output, having been above it, falls back. Drain
 * is edge-triggered: once per fall below the mark, never from inside
 * itself. Returns 0, or LARIAT_ERR_INVALID_ARGUMENT for a mark above the
 * queued-output cap.
 */
LARIAT_EXTERN int lariat_upgrade_set_low_water(lariat_upgrade *up,
                                               uint64_t bytes);

/**
 * @function
 *
 * Keepalive: when nothing has been received for |interval_ms|, lariat sends
 * a ping; when still nothing arrives within |pong_timeout_ms|, the
 * connection closes (1000) and terminate gets LARIAT_REASON_TIMEOUT. Any
 * data received counts as a sign of life. 0 turns it off (the default).
 * Returns 0, or LARIAT_ERR_INVALID_ARGUMENT for an interval without a
 * pong timeout.
 */
LARIAT_EXTERN int lariat_upgrade_set_ping_interval(lariat_upgrade *up,
                                                   uint64_t interval_ms,
                                                   uint64_t pong_timeout_ms);

/**
 * @function
 *
 * Records the crash class and reason that terminate will see when init
 * returns LARIAT_CRASH (the client then gets 500). Both strings are copied;
 * NULL means "". Returns 0.
 */
LARIAT_EXTERN int lariat_upgrade_set_crash(lariat_upgrade *up,
                                           const char *crash_class,
                                           const char *crash_reason);
/**
 * @function
 *
 * Answers the request with a plain HTTP response instead of upgrading.
 * |headers| is an array of |nheaders| name/value pairs ({name, value, name,
 * value, ...}, NUL-terminated strings). Content-Length and
 * Connection: close are added; a Content-Length given here is replaced by
 * lariat's, never sent twice. Everything is copied.
 * Returns 0, or LARIAT_ERR_INVALID_ARGUMENT for a status outside 100..599
 * or a header with CR or LF in it.
 */
LARIAT_EXTERN int lariat_upgrade_reply(lariat_upgrade *up, int status,
                                       const char *const *headers,
                                       size_t nheaders, const void *body,
                                       size_t body_len);

/**
 * @function
 *
 * Adds the header |name|: |value| to the 101 Switching Protocols response
 * (Set-Cookie and friends); may be called several times, also for the same
 * name. Headers lariat writes itself (Upgrade, Connection,
 * Sec-WebSocket-*, Content-Length) are refused. Both strings are copied.
 * Returns 0, or LARIAT_ERR_INVALID_ARGUMENT for an empty name, a name with
 * ':' or a header with CR or LF, or one of lariat's own headers.
 */
LARIAT_EXTERN int lariat_upgrade_add_header(lariat_upgrade *up,
                                            const char *name,
                                            const char *value);

/**
 * @function
 *
 * Any thread. Ends a decision that init deferred by returning
 * LARIAT_DEFER. Between that return and this call, |up| belongs to the
 * caller, on any one thread at a time: it may set options on it
 * (lariat_upgrade_set_*), call lariat_upgrade_reply() or
 * lariat_upgrade_add_header(), then resume with |result| as init would
 * have returned it: LARIAT_OK (accept, or send the reply), or
 * LARIAT_CRASH (500; see lariat_upgrade_set_crash()). The state set on
 * |up| when resuming is the one every later callback, terminate included,
 * sees. The handshake timeout still runs while the decision is pending:
 * when it passes, the client gets 408 and terminate will get
 * LARIAT_REASON_TIMEOUT (conn NULL); a peer that goes away gives
 * LARIAT_REASON_ERROR_CLOSED and a server stop LARIAT_REASON_SHUTDOWN (the
 * client is dropped). Such a connection is not revived: its terminate runs
 * when the resume arrives, so terminate still runs exactly once, last, with
 * the final state, and a stopping server waits for every pending decision
 * before it is done. Call this exactly once per deferral: |up| is freed by
 * it and must not be used after. Returns 0 if it succeeds, or
 * LARIAT_ERR_INVALID_ARGUMENT for a NULL |up|, an |up| whose init did not
 * return LARIAT_DEFER, or another result (|up| is then left as it was).
 */
LARIAT_EXTERN int lariat_upgrade_resume(lariat_upgrade *up, int result);

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

/**
 * @function
 *
 * Queues |frame| for sending. While any callback of the server runs,
 * frames replied to any of its connections (the running one or others)
 * are written in order when that callback returns, batched into one write
 * per connection; outside callbacks (a timer of the host program on the
 * loop thread) they are written at once. A reply to a hibernating
 * connection does not wake it: it hibernates again once the frame is
 * written. Replying a close frame starts the close handshake (terminate gets
 * LARIAT_REASON_SHUTDOWN). The payload is copied. Returns 0 if it succeeds,
 * or one of the following negative error codes:
 *  - LARIAT_ERR_INVALID_ARGUMENT: unknown opcode, or NULL data with len > 0;
 *  - LARIAT_ERR_BAD_CLOSE_CODE: a close code outside 1000..4999, one of
 *    1004, 1005, 1006, 1015, or one reserved for the protocol
 *    (1016..2999, RFC 6455 7.4.2), or a close reason without a code;
 *  - LARIAT_ERR_EXCEEDS_CAP: a frame that could never fit under the
 *    queued-output cap (lariat_upgrade_set_max_queued);
 *  - LARIAT_ERR_BACKPRESSURE: the cap is reached (REFUSE policy: the
 *    frame is not sent; websocket_drain follows; closing policies: the
 *    connection closes);
 *  - LARIAT_ERR_INVALID_STATE: called from a thread other than the loop's;
 *  - LARIAT_ERR_TOO_LARGE: a control frame payload over 125 bytes
 *    (including the 2-byte close code);
 *  - LARIAT_ERR_CLOSING: a close frame was already sent.
 * Thread: loop thread.
 */
LARIAT_EXTERN int lariat_reply(lariat_conn *conn, const lariat_frame *frame);

/**
 * @function
 *
 * Records the crash class and reason that terminate will see when the
 * running callback returns LARIAT_CRASH. Both strings are copied; NULL
 * means "". Returns 0. Thread: loop thread.
 */
LARIAT_EXTERN int lariat_conn_set_crash(lariat_conn *conn,
                                        const char *crash_class,
                                        const char *crash_reason);

/** @function Returns the connection id, valid on any thread for
 * lariat_post(); ids are unique in the process (two servers never share
 * one) and never reused. */
LARIAT_EXTERN lariat_conn_id lariat_conn_get_id(const lariat_conn *conn);
/** @function Returns the state pointer handed to callbacks. */
LARIAT_EXTERN void *lariat_conn_get_data(const lariat_conn *conn);
/** @function Replaces the state pointer handed to later callbacks. */
LARIAT_EXTERN void lariat_conn_set_data(lariat_conn *conn, void *state);
/** @function Returns the server this connection belongs to. */
LARIAT_EXTERN lariat_server *lariat_conn_server(const lariat_conn *conn);
/** @function Returns the WebSocket version (7, 8 or 13). */
LARIAT_EXTERN int lariat_conn_version(const lariat_conn *conn);
/** @function Returns nonzero if permessage-deflate was negotiated. */
LARIAT_EXTERN int lariat_conn_compressed(const lariat_conn *conn);
/** @function Returns the negotiated subprotocol (NUL-terminated, borrowed
 * until terminate returns), or NULL if none. */
LARIAT_EXTERN const char *lariat_conn_protocol(const lariat_conn *conn);
/**
 * @function
 *
 * Changes the idle timeout (ms; 0 = infinity); the countdown restarts from
 * the last data received. Returns 0, or LARIAT_ERR_CLOSING. Thread: loop
 * thread.
 */
LARIAT_EXTERN int lariat_conn_set_idle_timeout(lariat_conn *conn,
                                               uint64_t ms);
/**
 * @function
 *
 * Returns the bytes queued for the peer and not yet handed to the kernel
 * (uWebSockets' getBufferedAmount).
 */
LARIAT_EXTERN size_t lariat_conn_buffered_amount(const lariat_conn *conn);

/**
 * @function
 *
 * Pauses (|active| 0) or resumes (nonzero) reading from the peer, Cowboy's
 * `active` command: a handler forwarding to a slow consumer stops its
 * producer, and TCP flow control does the rest. While paused, the idle
 * timeout and keepalive pings are suspended. Returns 0, or
 * LARIAT_ERR_CLOSING, or a libuv error code. Thread: loop thread.
 */
LARIAT_EXTERN int lariat_conn_set_active(lariat_conn *conn, int active);

/**
 * @function
 *
 * Returns nonzero while the connection is hibernating (it holds no
 * per-connection buffers).
 */
LARIAT_EXTERN int lariat_conn_hibernating(const lariat_conn *conn);

/**
 * @function
 *
 * Changes the largest frame and message size accepted from now on (Cowboy's
 * set_options max_frame_size); a message being received is checked against
 * the new limit with its next frame. Returns 0, or
 * LARIAT_ERR_INVALID_ARGUMENT for 0, or LARIAT_ERR_CLOSING. Thread: loop
 * thread.
 */
LARIAT_EXTERN int lariat_conn_set_max_frame_size(lariat_conn *conn,
                                                 uint64_t bytes);

/**
 * @function
 *
 * Writes the peer's address as text into |buf| of |size| bytes
 * (NUL-terminated) and its port into |*port| (may be NULL), as
 * lariat_req_peer() does; a listener on "::" reports IPv4 peers as
 * "::ffff:a.b.c.d". The address is the one the connection was accepted
 * from, also in terminate. Returns 0 if it succeeds, or
 * LARIAT_ERR_INVALID_ARGUMENT, or a negative libuv error code. Thread:
 * loop thread.
 */
LARIAT_EXTERN int lariat_conn_peer(const lariat_conn *conn, char *buf,
                                   size_t size, int *port);

/**
 * @function
 *
 * Returns the path of the request that opened the connection (without the
 * query), valid until terminate returns; |*len| (may be NULL) gets its
 * length. NULL for a NULL |conn|. Thread: loop thread.
 */
LARIAT_EXTERN const char *lariat_conn_path(const lariat_conn *conn,
                                           size_t *len);

/**
 * @function
 *
 * Returns the handler_data given to lariat_server_route() for the route
 * that accepted this connection (the state pointer is the connection's
 * own; see lariat_upgrade_set_state()). Thread: loop thread.
 */
LARIAT_EXTERN void *lariat_conn_handler_data(const lariat_conn *conn);

/* ------------------------------------------------------------------ */
/* Server options                                                      */
/* ------------------------------------------------------------------ */

/** Server options, set one by one (lariat_options_new(), the
 * lariat_options_set_*() setters), copied by lariat_server_new(). */
typedef struct lariat_options lariat_options;

/**
 * @function
 *
 * Creates an options object with the defaults: head 8 KiB, 100 headers,
 * handshake timeout 10 s, max frame size 1 MiB, close timeout 5 s,
 * 100000 connections, ignore SIGPIPE on. Returns 0, or LARIAT_ERR_NOMEM.
 */
LARIAT_EXTERN int lariat_options_new(lariat_options **out);
/** @function Frees |opts|; NULL is allowed. */
LARIAT_EXTERN void lariat_options_del(lariat_options *opts);
/** @function Largest request head in bytes (over it: 431). Returns 0 or
 * LARIAT_ERR_INVALID_ARGUMENT for 0. */
LARIAT_EXTERN int lariat_options_set_max_head_size(lariat_options *opts,
                                                   size_t bytes);
/** @function Largest number of header lines (over it: 431). */
LARIAT_EXTERN int lariat_options_set_max_headers(lariat_options *opts,
                                                 size_t count);
/** @function Time a client has to send its whole request head, in ms
 * (then the connection is closed, no terminate). 0 is invalid. */
LARIAT_EXTERN int lariat_options_set_handshake_timeout(lariat_options *opts,
                                                       uint64_t ms);
/** @function Default max frame/message size of connections (see
 * lariat_upgrade_set_max_frame_size). */
LARIAT_EXTERN int lariat_options_set_max_frame_size(lariat_options *opts,
                                                    uint64_t bytes);
/** @function How long to wait for the peer's close frame (and the TCP end)
 * after lariat sent a close, in ms; also bounds lariat_server_stop(). */
LARIAT_EXTERN int lariat_options_set_close_timeout(lariat_options *opts,
                                                   uint64_t ms);
/** @function Most connections open at once (handshaking or WebSocket,
 * default 100000); a connection over it is answered 503 and closed before
 * any upgrade. 0 is invalid. */
LARIAT_EXTERN int lariat_options_set_max_connections(lariat_options *opts,
                                                     size_t count);
/**
 * @function
 *
 * Event loops (and threads) of the server: 1 (the default) runs everything
 * on the loop of lariat_server_new(); N > 1 gives the server N loops, the
 * first run by lariat_server_run() on the calling thread and the others on
 * threads of their own; 0 means one loop per core
 * (uv_available_parallelism()). Each loop listens on the port with
 * SO_REUSEPORT, so the kernel spreads new connections over the loops
 * (lariat_server_listen() first checks that no other socket holds the
 * port: a second process still gets UV_EADDRINUSE). A connection lives on
 * one loop; all its callbacks run on that loop's thread, so callbacks of
 * different connections run at the same time on different threads:
 * anything a handler shares between connections (its handler_data, say)
 * needs a lock or atomics, while per-connection state does not. Routes and
 * listeners are set before lariat_server_run(). Several loops cannot be
 * combined with a caller's loop. Returns 0, or
 * LARIAT_ERR_INVALID_ARGUMENT for more than 255.
 */
LARIAT_EXTERN int lariat_options_set_threads(lariat_options *opts,
                                             unsigned threads);
/**
 * @function
 *
 * The Redis bridge's timeouts (lariat_server_join_redis()): |connect_ms|
 * (default 2000) bounds one connection attempt — name resolution, TCP
 * connect, AUTH, SELECT and a PING answered; |command_ms| (default 5000)
 * bounds the wait for the answer to the oldest command sent (a PUBLISH,
 * a SUBSCRIBE). Past either, the connection is dropped as a fault
 * (UV_ETIMEDOUT) and retried. Returns 0, or LARIAT_ERR_INVALID_ARGUMENT
 * for a 0.
 */
LARIAT_EXTERN int lariat_options_set_bridge_timeouts(lariat_options *opts,
                                                     uint64_t connect_ms,
                                                     uint64_t command_ms);
/**
 * @function
 *
 * The bridge's reconnection backoff: after the n-th failure in a row the
 * next attempt waits a random time in [d/2, d], d = |min_ms| * 2^n capped
 * at |max_ms| (defaults 100 and 2000), so a fleet does not reconnect in
 * lockstep. Returns 0, or LARIAT_ERR_INVALID_ARGUMENT for |min_ms| 0 or
 * |max_ms| below it.
 */
LARIAT_EXTERN int lariat_options_set_bridge_backoff(lariat_options *opts,
                                                    uint64_t min_ms,
                                                    uint64_t max_ms);
/** @function How long the bridge stays subscribed to a topic's channel
 * after its last local subscriber left, in ms (default 1000; 0: at once),
 * so a topic that empties and refills does not churn Redis. */
LARIAT_EXTERN int lariat_options_set_bridge_linger(lariat_options *opts,
                                                   uint64_t ms);
/** @function Whether lariat_server_new() may set SIGPIPE to SIG_IGN when
 * its disposition is SIG_DFL (default 1). */
LARIAT_EXTERN int lariat_options_set_ignore_sigpipe(lariat_options *opts,
                                                    int on);

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

/**
 * @function
 *
 * Creates a server on |loop|, or on a loop of its own when |loop| is NULL
 * (run it with lariat_server_run()). |opts| may be NULL for the defaults;
 * it is copied: the library code does not refer to |opts| pointer after
 * this function returns. Returns 0 if it succeeds, or one of the following
 * negative error codes:
 *  - LARIAT_ERR_INVALID_ARGUMENT: |out| is NULL;
 *  - LARIAT_ERR_NOMEM;
 *  - a libuv error code from initialising the loop or its handles.
 * Thread: the thread that will run the loop.
 */
LARIAT_EXTERN int lariat_server_new(lariat_server **out,
                                    struct uv_loop_s *loop,
                                    const lariat_options *opts);

/**
 * @function
 *
 * Stops |server| if it is not stopped (see lariat_server_stop()), runs
 * its loop until every connection has ended and every handle is closed,
 * then frees everything, including an owned loop. NULL is allowed. Must not
 * be called from inside a lariat callback or while the loop is running.
 * On a caller's loop this runs that loop (UV_RUN_ONCE at a time) until
 * lariat's handles are closed, so the caller's other handles may see
 * callbacks meanwhile. After it, lariat_post() on this server is
 * forbidden.
 */
LARIAT_EXTERN void lariat_server_del(lariat_server *server);

/**
 * @function
 *
 * Routes requests for |path| (exact match on the path without the query,
 * or "*" for every path without a route of its own) to |handler|.
 * A path whose last two characters are '/' and '*' is a prefix route:
 * "/rooms/" followed by '*' takes "/rooms/" and every path under it, the
 * longest prefix winning; an exact route beats any prefix, and "*" alone
 * takes what nothing else does.
 * |handler| and |path| are copied; |handler_data| is handed to init (and
 * is what lariat_conn_handler_data() returns). Returns 0 if it succeeds,
 * or one of:
 *  - LARIAT_ERR_INVALID_ARGUMENT: NULL path or handler, or a handler whose
 *    size is 0;
 *  - LARIAT_ERR_EXISTS: |path| is already routed.
 * Thread: loop thread.
 */
LARIAT_EXTERN int lariat_server_route(lariat_server *server, const char *path,
                                      const lariat_handler *handler,
                                      void *handler_data);

/**
 * @function
 *
 * Listens on |host| and |port| (0 picks a free port; see
 * lariat_server_port()). |host| is a numeric IPv4 address ("127.0.0.1",
 * "0.0.0.0"), a numeric IPv6 address with or without brackets ("::1",
 * "[::1]", "::"), or "localhost", which means 127.0.0.1 (no name is
 * resolved). A listener on "::" also takes IPv4 clients, seen as
 * "::ffff:a.b.c.d". May be called more than once to listen on several
 * addresses. Returns 0 if it succeeds, or LARIAT_ERR_INVALID_ARGUMENT for
 * an unparsable host or port, LARIAT_ERR_STOPPED, or a libuv error code
 * (UV_EADDRINUSE...). Thread: loop thread.
 */
LARIAT_EXTERN int lariat_server_listen(lariat_server *server, const char *host,
                                       int port);

/** @function Returns the port of the first plain listener (without
 * one, of the first TLS listener; see lariat_server_tls_port()), or
 * LARIAT_ERR_INVALID_STATE if there is none. */
LARIAT_EXTERN int lariat_server_port(const lariat_server *server);

/** @function Returns the loop the server runs on (the first one, with
 * several). */
LARIAT_EXTERN struct uv_loop_s *lariat_server_loop(const lariat_server *server);

/**
 * @function
 *
 * Runs the server's loop (uv_run, UV_RUN_DEFAULT) until the server has
 * stopped and nothing else keeps the loop alive. With several loops
 * (lariat_options_set_threads), the first runs on the calling thread and
 * each other one on a thread of its own; it returns once every loop has
 * stopped and its thread is joined. Returns 0, or
 * LARIAT_ERR_INVALID_ARGUMENT for NULL, or LARIAT_ERR_INVALID_STATE when
 * the loops already run. Must not be called from inside the loop.
 */
LARIAT_EXTERN int lariat_server_run(lariat_server *server);

/**
 * @function
 *
 * Starts stopping |server|: listeners close, connections still in their
 * handshake are dropped, every WebSocket connection is sent close 1001
 * (after the frames already replied) and gets terminate
 * LARIAT_REASON_SHUTDOWN once its peer answers or the close timeout
 * passes. Messages posted afterwards are freed. Safe inside callbacks;
 * calling it twice is harmless. With several loops, the others stop
 * through their own stop request. Returns 0, or LARIAT_ERR_INVALID_STATE
 * from a thread that runs none of the server's loops. Thread: the thread
 * of any of its loops (before lariat_server_run(), the creating one).
 */
LARIAT_EXTERN int lariat_server_stop(lariat_server *server);

/**
 * @function
 *
 * Any thread, and async-signal-safe: it may be called from a signal
 * handler (it sets an atomic flag and calls uv_async_send(), which libuv
 * documents as async-signal-safe), so a program stops on SIGINT with
 * signal(SIGINT, handler) and no libuv of its own. Asks the loop thread to
 * run lariat_server_stop(); messages posted before it are still delivered.
 * Returns 0, LARIAT_ERR_STOPPED when a stop was already asked for (by
 * either function), or LARIAT_ERR_INVALID_ARGUMENT for NULL. Forbidden once lariat_server_del()
 * has started.
 */
LARIAT_EXTERN int lariat_server_stop_async(lariat_server *server);

/**
 * @function
 *
 * Registers |cb|, called once on the loop thread when the server has
 * stopped: every connection has ended (every terminate has run) and
 * lariat's handles are closed. After it, lariat_server_del() returns at
 * once; lariat_server_run() returns too unless other handles keep the loop
 * alive. |data| is handed to |cb|. Returns 0, or
 * LARIAT_ERR_INVALID_ARGUMENT for a NULL |server|. Thread: loop thread.
 */
LARIAT_EXTERN int lariat_server_on_stopped(lariat_server *server,
                                           void (*cb)(lariat_server *server,
                                                      void *data),
                                           void *data);

/** @function Returns the number of open connections (handshaking and
 * WebSocket), on every loop. Thread: any thread. */
LARIAT_EXTERN size_t lariat_server_connection_count(const lariat_server *server);

/**
 * @function
 *
 * Any thread. Posts |msg| to connection |id|: websocket_info(conn, msg,
 * state) runs on the loop thread, in the order messages were posted by
 * each thread. |msg| is handed over with |free_fn| (may be NULL): lariat
 * calls free_fn(msg) exactly once, after websocket_info returns, or without
 * calling websocket_info when the connection has ended, is closing, or the
 * server is stopping — also when this function returns an error. Like
 * uv_async_send(), several posts may wake the loop once; none is lost.
 * Returns 0 if it succeeds, or LARIAT_ERR_INVALID_ARGUMENT (NULL server) or
 * LARIAT_ERR_STOPPED. |msg| may be NULL (websocket_info then gets NULL).
 * The queue is unbounded: a producer faster than the handler grows memory,
 * so pace it (a count in flight per connection, say). Forbidden once
 * lariat_server_del() has started.
 */
LARIAT_EXTERN int lariat_post(lariat_server *server, lariat_conn_id id,
                              void *msg, void (*free_fn)(void *msg));

/**
 * @function
 *
 * Any thread (uWebSockets' Loop::defer). Runs |fn|(server, |data|) once on
 * the (first) loop's thread, in order with lariat_post() messages from the
 * same thread: for timers and other work that must touch connections. An
 * accepted call runs exactly once: also while the server stops (at the
 * latest when its last handles close, inside lariat_server_del() when the
 * loop never ran). lariat never reads |data|; it is handed to |fn| as is.
 * Returns 0 if it succeeds, or LARIAT_ERR_INVALID_ARGUMENT (NULL server or
 * |fn|), LARIAT_ERR_NOMEM or LARIAT_ERR_STOPPED; on an error |fn| is never
 * called.
 */
LARIAT_EXTERN int lariat_server_defer(lariat_server *server,
                                      void (*fn)(lariat_server *server,
                                                 void *data),
                                      void *data);

/* ------------------------------------------------------------------ */
/* Clients                                                             */
/* ------------------------------------------------------------------ */

/**
 * A client connection runs on a server's loop and uses the same handler
 * table: websocket_init when the upgrade succeeded, websocket_handle,
 * websocket_info (lariat_post() to its id from any thread),
 * websocket_drain and terminate; lariat_reply(), set_active, keepalive,
 * limits, topics and permessage-deflate work as on accepted connections.
 * init is not used: there is no request to decide on. Every frame the
 * client sends is masked with a fresh key from a CSPRNG (ChaCha20 keyed
 * from getrandom()); a masked frame from the server closes with 1002.
 */
typedef struct lariat_client_options lariat_client_options;

/**
 * @function
 *
 * Creates client options with the defaults: no extra headers, no
 * subprotocols, no permessage-deflate offer, the server's maximum frame
 * size, a 10 s connect timeout and a 10 s handshake timeout, no reconnect,
 * an offline queue of 256 messages. Returns 0, LARIAT_ERR_INVALID_ARGUMENT
 * or LARIAT_ERR_NOMEM. Thread: any thread.
 */
LARIAT_EXTERN int lariat_client_options_new(lariat_client_options **out);

/**
 * @function
 *
 * Frees options made by lariat_client_options_new() (NULL is allowed).
 * lariat_connect() copies them: they may go right after it.
 */
LARIAT_EXTERN void lariat_client_options_del(lariat_client_options *opts);

/**
 * @function
 *
 * Adds a request header. Returns 0, or LARIAT_ERR_INVALID_ARGUMENT for a
 * name that is not an HTTP token, a value with CR, LF or NUL, or a header
 * lariat writes itself (Host, Upgrade, Connection, Sec-WebSocket-*).
 */
LARIAT_EXTERN int lariat_client_options_add_header(lariat_client_options *opts,
                                                   const char *name,
                                                   const char *value);

/**
 * @function
 *
 * Offers a subprotocol; offers keep the order they were added in (most
 * preferred first). The server may pick one of them or none; any other
 * fails the handshake. lariat_conn_protocol() says which was picked.
 * Returns 0, or LARIAT_ERR_INVALID_ARGUMENT for a name that is not a
 * token.
 */
LARIAT_EXTERN int lariat_client_options_add_protocol(
    lariat_client_options *opts, const char *protocol);

/**
 * @function
 *
 * Offers permessage-deflate (RFC 7692) and sets its parameters, with the
 * knobs of lariat_upgrade_set_deflate(): LARIAT_DEFLATE_ENABLE (1: offer
 * it), _LEVEL, _MEM_LEVEL, _THRESHOLD, _STRATEGY for our compressor;
 * _CLIENT_MAX_WINDOW_BITS (the largest window we compress with; the
 * server may ask for less), _SERVER_MAX_WINDOW_BITS (asks the server for
 * at most this; offered only below 15), _SERVER_NO_CONTEXT_TAKEOVER and
 * _CLIENT_NO_CONTEXT_TAKEOVER (asked for / promised). The server's answer
 * is checked against the offer: anything else fails the handshake.
 * Returns 0, or LARIAT_ERR_INVALID_ARGUMENT.
 */
LARIAT_EXTERN int lariat_client_options_set_deflate(lariat_client_options *opts,
                                                    int knob, int value);

/**
 * @function
 *
 * The largest frame or message the client accepts (close 1009 beyond).
 * Returns 0, or LARIAT_ERR_INVALID_ARGUMENT for 0.
 */
LARIAT_EXTERN int lariat_client_options_set_max_frame_size(
    lariat_client_options *opts, uint64_t bytes);

/**
 * @function
 *
 * Milliseconds allowed for name resolution plus the TCP connect, and
 * then for the server's 101 response. Either passing ends the attempt
 * with LARIAT_REASON_HANDSHAKE_FAILED (failure "connect timeout" or
 * "handshake timeout"). Returns 0, or LARIAT_ERR_INVALID_ARGUMENT for 0.
 */
LARIAT_EXTERN int lariat_client_options_set_timeouts(
    lariat_client_options *opts, uint64_t connect_ms, uint64_t handshake_ms);

/**
 * @function
 *
 * Reconnects after a connection or an attempt ends for any reason but
 * our own close (LARIAT_SHUTDOWN, a close frame we sent,
 * lariat_client_close()) or the server's stop. The n-th retry waits
 * min(|max_ms|, |base_ms| * |multiplier|^(n-1)), scaled by a random
 * factor in [1 - |jitter|, 1 + |jitter|]; |max_attempts| counts every
 * attempt, the first included (0: no limit). Each attempt redoes the
 * whole upgrade and calls websocket_init again; the terminate of an
 * attempt that is followed by another has reason->retrying set. A
 * successful open resets the backoff. Off by default. Returns 0, or
 * LARIAT_ERR_INVALID_ARGUMENT (|base_ms| 0, |max_ms| below it,
 * |multiplier| below 1, |jitter| outside 0..1).
 */
LARIAT_EXTERN int lariat_client_options_set_reconnect(
    lariat_client_options *opts, uint64_t base_ms, uint64_t max_ms,
    double multiplier, double jitter, unsigned max_attempts);

/**
 * @function
 *
 * Messages lariat_post()ed to the client while it is not open (connecting
 * or waiting to reconnect) wait, up to |max_messages|, and are delivered
 * in order right after the next websocket_init; past that they are freed
 * (free_fn) and counted in reason->posts_dropped. 0 drops every message
 * posted while disconnected. Default 256. Returns 0, or
 * LARIAT_ERR_INVALID_ARGUMENT.
 */
LARIAT_EXTERN int lariat_client_options_set_offline_queue(
    lariat_client_options *opts, size_t max_messages);

/**
 * @function
 *
 * wss://: trust only the certificate authorities in |ca_file| (PEM, one
 * or more certificates) and/or |ca_dir| (a directory hashed as by
 * `openssl rehash`; either may be NULL, not both) instead of the system's
 * (OpenSSL's default paths, on Debian /etc/ssl/certs). The file is read
 * now; the options share what was read with every client made from them.
 * Returns 0, LARIAT_ERR_INVALID_ARGUMENT, or LARIAT_ERR_TLS when the file
 * cannot be read or holds no certificate.
 */
LARIAT_EXTERN int lariat_client_options_set_tls_ca(lariat_client_options *opts,
                                                   const char *ca_file,
                                                   const char *ca_dir);

/**
 * @function
 *
 * wss://: the name sent in SNI and that the server's certificate must
 * carry, instead of the URL's host (which still goes in the Host header
 * and is what is connected to). NULL or "" goes back to the URL's host.
 * An IP address is matched against the certificate's IP addresses and,
 * as RFC 6066 asks, not sent in SNI. Returns 0 or
 * LARIAT_ERR_INVALID_ARGUMENT.
 */
LARIAT_EXTERN int lariat_client_options_set_tls_server_name(
    lariat_client_options *opts, const char *name);

/**
 * @function
 *
 * wss://: |insecure| 1 accepts any certificate from any server: no chain
 * and no name is checked, so anyone on the path can read and change the
 * traffic. For tests against throwaway certificates only; 0 (the
 * default) verifies. Returns 0 or LARIAT_ERR_INVALID_ARGUMENT.
 */
LARIAT_EXTERN int lariat_client_options_set_tls_insecure_no_verify(
    lariat_client_options *opts, int insecure);

/**
 * @function
 *
 * Any thread. Connects to |url| ("ws://host[:port]/path?query"; IPv6 as
 * "[::1]"; names resolved without blocking the loop, IPv4 and IPv6) from
 * one of |server|'s loops, with |handler| (its init is not used) and
 * |handler_data|, |state| as the connection state (lariat_conn_get_data,
 * the state argument of every callback; it lives across reconnects), and
 * |opts| (NULL: the defaults; copied). The connection's id, good for
 * lariat_post() from any thread and stable across reconnects, goes to
 * |*id| (may be NULL). The outcome arrives in the handler: websocket_init
 * once open, terminate when an attempt or the connection ends. Returns 0,
 * LARIAT_ERR_INVALID_ARGUMENT (NULL server or handler, or a URL that does
 * not parse: bad scheme, empty host, bad port), LARIAT_ERR_NOMEM or
 * LARIAT_ERR_STOPPED; after an error no callback runs for this call and
 * |state| stays the caller's, after 0 terminate runs at least once (the
 * last time with reason->retrying 0), even if the server stops first.
 *
 * "wss://host..." connects over TLS 1.2 or 1.3 (OpenSSL): SNI and the
 * certificate check use the host (see
 * lariat_client_options_set_tls_server_name()), verified against the
 * system's CAs unless lariat_client_options_set_tls_ca() names others,
 * ALPN offers "http/1.1", and the upgrade request leaves once the TLS
 * handshake is over. A certificate that does not verify ends the attempt
 * with LARIAT_REASON_HANDSHAKE_FAILED, failure "TLS handshake failed:
 * certificate verify failed: " and OpenSSL's reason ("hostname
 * mismatch", "unable to get local issuer certificate", ...); the TLS
 * handshake counts against the handshake timeout.
 */
LARIAT_EXTERN int lariat_connect(lariat_server *server, const char *url,
                                 const lariat_handler *handler,
                                 void *handler_data,
                                 const lariat_client_options *opts,
                                 void *state, lariat_conn_id *id);

/**
 * @function
 *
 * Any thread. Ends client |id| for good: an open connection closes with
 * 1000 (terminate: LARIAT_REASON_SHUTDOWN), a pending attempt or retry
 * is cancelled (terminate: LARIAT_REASON_SHUTDOWN, with a NULL conn); no
 * reconnect follows. Returns 0, LARIAT_ERR_INVALID_ARGUMENT or
 * LARIAT_ERR_STOPPED; an id that is no client (any more) is ignored.
 */
LARIAT_EXTERN int lariat_client_close(lariat_server *server, lariat_conn_id id);

/* ------------------------------------------------------------------ */
/* Topics (publish/subscribe)                                          */
/* ------------------------------------------------------------------ */

/*
 * A topic is any byte string (exact match). A connection subscribes on
 * its loop thread; anyone publishes, from any thread. A publish is encoded
 * once (header and payload) and written to every subscriber, in the order
 * each publishing thread (or connection) published, interleaved in order
 * with the subscriber's own replies. A subscriber that negotiated
 * permessage-deflate gets the message compressed: subscribers whose
 * agreement has server_no_context_takeover and the same parameters share
 * one compressed frame per publish; the others are compressed one by one
 * (their compressor's context is their own: the only correct way).
 * A slow subscriber is governed by its own queued-output cap
 * (lariat_upgrade_set_max_queued): under LARIAT_BACKPRESSURE_REFUSE the
 * delivery is dropped and counted (lariat_conn_dropped()); under a closing
 * policy the subscriber is closed (1008 or 1013). It never delays the
 * others. Subscriptions end by themselves before terminate.
 */

/**
 * @function
 *
 * Subscribes |conn| to |topic| (|len| bytes, copied). Returns 0 if it
 * succeeds (also when already subscribed), or LARIAT_ERR_INVALID_ARGUMENT
 * (NULL |conn|, NULL |topic| with |len| > 0), LARIAT_ERR_CLOSING,
 * LARIAT_ERR_NOMEM or LARIAT_ERR_INVALID_STATE (another thread). Thread:
 * loop thread.
 */
LARIAT_EXTERN int lariat_subscribe(lariat_conn *conn, const void *topic,
                                   size_t len);

/**
 * @function
 *
 * Ends the subscription of |conn| to |topic|. Returns 0 if it succeeds,
 * or LARIAT_ERR_NOT_FOUND when |conn| did not subscribe, or
 * LARIAT_ERR_INVALID_ARGUMENT, LARIAT_ERR_INVALID_STATE. Thread: loop
 * thread.
 */
LARIAT_EXTERN int lariat_unsubscribe(lariat_conn *conn, const void *topic,
                                     size_t len);

/**
 * @function
 *
 * Any thread. Publishes |frame| (text or binary; payload copied, flags
 * honoured) to every subscriber of |topic|. On the loop thread, inside a
 * callback or not, the frame is queued for every subscriber before this
 * returns (and written when the running callback returns); other loops,
 * and every loop from another thread, get it through the same queue as
 * lariat_post(), one message per loop. Returns the number of subscribers
 * of the calling loop it was queued for (0 from another thread), or one of
 * the following negative error codes:
 *  - LARIAT_ERR_INVALID_ARGUMENT: NULL |server| or |frame|, NULL |topic|
 *    with |len| > 0, or a frame that is not text or binary;
 *  - LARIAT_ERR_NOMEM;
 *  - LARIAT_ERR_STOPPED: the server stops.
 */
LARIAT_EXTERN int lariat_publish(lariat_server *server, const void *topic,
                                 size_t len, const lariat_frame *frame);

/**
 * @function
 *
 * Publishes |frame| to every subscriber of |topic| but |conn| itself (a
 * chat line to the others in the room). Returns the number of
 * subscribers it was queued for, or the error codes of lariat_publish()
 * and LARIAT_ERR_INVALID_STATE. Thread: loop thread.
 */
LARIAT_EXTERN int lariat_conn_publish(lariat_conn *conn, const void *topic,
                                      size_t len, const lariat_frame *frame);

/**
 * @function
 *
 * Returns the number of connections of the calling loop subscribed to
 * |topic| (with one loop: all of them; 0 for none, for a NULL |server|
 * and off the loop threads). Thread: loop thread.
 */
LARIAT_EXTERN size_t lariat_server_subscribers(const lariat_server *server,
                                               const void *topic, size_t len);

/**
 * @function
 *
 * Returns how many published messages were dropped for |conn| because its
 * queued output was at its cap under LARIAT_BACKPRESSURE_REFUSE (0 for
 * NULL). Thread: loop thread.
 */
LARIAT_EXTERN uint64_t lariat_conn_dropped(const lariat_conn *conn);

/* ------------------------------------------------------------------ */
/* Bridge: topics across processes through Redis                       */
/* ------------------------------------------------------------------ */

/*
 * A fleet of lariat processes (behind a load balancer, say) shares its
 * topics through Redis pub/sub: every process joins the same Redis with
 * lariat_server_join_redis() and the same channel prefix. Then:
 *  - a topic's first subscriber in the process (on any loop) subscribes
 *    the process to the Redis channel prefix + topic; when the last one
 *    leaves, the process unsubscribes after the linger
 *    (lariat_options_set_bridge_linger());
 *  - every lariat_publish() and lariat_conn_publish() reaches the local
 *    subscribers directly, as without the bridge, and goes to Redis once
 *    (whatever the number of loops); a message that comes back from Redis
 *    with this process's origin is dropped, so nobody gets it twice;
 *  - messages from other processes reach the local subscribers like a
 *    local publish, in the order each publisher published;
 *  - a frame with LARIAT_FRAME_LOCAL stays in the process.
 * One subscriber connection and one publisher connection per process,
 * both on the first loop's thread (the others reach them through its
 * queue). hiredis runs on lariat's own libuv adapter (connection errors,
 * timeouts, non-blocking name resolution; see lariat_options_set_bridge_*).
 *
 * Faults (Redis unreachable, killed, restarted, the connection killed
 * with CLIENT KILL, or disconnected by Redis' output buffer limit) never
 * stop local delivery. The bridge reconnects with backoff and jitter and
 * subscribes every wanted channel again. While the publisher connection
 * is down, publishes reach the local subscribers only (counted in
 * publish_failed); while the subscriber connection is down, the other
 * processes' messages are missed. Neither is hidden: the handler of
 * lariat_server_on_bridge() gets LARIAT_BRIDGE_DOWN and LARIAT_BRIDGE_UP
 * for each connection, and LARIAT_BRIDGE_GAP, per topic and origin, when
 * the sequence numbers show that messages were missed;
 * lariat_server_bridge_stats() counts all of it. A handler that must
 * tell its subscribers publishes a notice to the topic (lariat-chat does).
 *
 * Redis disconnects a subscriber whose unread output passes
 * `client-output-buffer-limit pubsub 32mb 8mb 60` (its default: 32 MB at
 * once, or 8 MB for 60 s). lariat's subscriber reads as fast as its loop
 * runs, so this happens when the first loop is blocked (a handler that
 * sleeps) or the fan-in outruns it; it is a fault like the others (DOWN,
 * reconnect, GAP). Raise the limit for bursty fleets, e.g.
 * `CONFIG SET client-output-buffer-limit "pubsub 256mb 64mb 60"`.
 *
 * Redis pub/sub ignores the database number: channels are shared by every
 * database of a server, so separate fleets on one Redis by prefix.
 *
 * Memory: a process keeps one sequence counter per topic it has published
 * to, and per subscribed channel the last sequence number of each origin
 * heard on it (dropped when the channel is unsubscribed).
 *
 * Bridge wire format. Each message on a channel is a 24-byte header, all
 * integers big-endian, followed by the payload:
 *   offset 0   uint8   version: 1 (other versions are dropped, counted
 *                      as malformed)
 *   offset 1   uint8   opcode: 1 text (UTF-8), 2 binary
 *   offset 2   uint16  reserved, 0
 *   offset 4   uint32  flags: LARIAT_FRAME_* bits (LARIAT_FRAME_NO_COMPRESS)
 *   offset 8   uint64  origin: the publishing process, random per join
 *                      (0: an anonymous publisher, never dropped as own)
 *   offset 16  uint64  sequence: 1, 2, 3... per origin and channel
 *                      (0: unsequenced, no gap check)
 *   offset 24  ...     payload, to the end of the Redis message
 * The channel is the prefix followed by the topic's bytes. Another
 * program publishes into the fleet with PUBLISH channel message (see
 * README.md, "A fleet of servers", for one in Python) and reads from it
 * with SUBSCRIBE.
 */

/** lariat_bridge_event.kind. */
typedef enum lariat_bridge_event_kind {
  /** A connection to Redis answers (at start, or again after a fault:
   * then every channel is subscribed again). */
  LARIAT_BRIDGE_UP = 1,
  /** A connection failed or was lost: |error| and |detail| say why.
   * Reported once per outage; retries follow silently until UP. */
  LARIAT_BRIDGE_DOWN = 2,
  /** |missed| messages of |origin| on |topic| never arrived (reported
   * before the message that showed it is delivered). */
  LARIAT_BRIDGE_GAP = 3
} lariat_bridge_event_kind;

/** lariat_bridge_event.link: which of the bridge's two Redis connections. */
typedef enum lariat_bridge_link {
  LARIAT_BRIDGE_SUBSCRIBER = 0, /**< the one that SUBSCRIBEs */
  LARIAT_BRIDGE_PUBLISHER = 1   /**< the one that PUBLISHes */
} lariat_bridge_link;

/** What lariat fills for the bridge handler; fields are only appended. */
typedef struct lariat_bridge_event {
  int age;   /**< of this struct: 1 */
  int kind;  /**< lariat_bridge_event_kind */
  int link;  /**< UP, DOWN: lariat_bridge_link */
  int error; /**< DOWN: UV_ECONNREFUSED, UV_EOF, UV_ETIMEDOUT,
                LARIAT_ERR_REDIS (an error reply, e.g. a bad password)... */
  const char *detail;   /**< DOWN: hiredis' or Redis' text; never NULL */
  const uint8_t *topic; /**< GAP: the topic (without the prefix) */
  size_t topic_len;     /**< GAP: bytes at |topic| */
  uint64_t origin;      /**< GAP: the publishing process */
  uint64_t missed;      /**< GAP: messages missed */
  uint64_t seq;         /**< GAP: the sequence number that showed it */
  uint64_t reconnects;  /**< recoveries so far (lariat_bridge_stats) */
} lariat_bridge_event;

/** Counters of the bridge since the join; fields are only appended. */
typedef struct lariat_bridge_stats {
  uint64_t origin;         /**< this process's origin id */
  int connected;           /**< both connections answer now */
  int last_error;          /**< of the last failure, 0 if none */
  uint64_t published;      /**< PUBLISHes Redis acknowledged */
  uint64_t publish_failed; /**< not sent (publisher down, too many in flight)
                              or lost with a connection */
  uint64_t received;       /**< messages from other processes delivered */
  uint64_t own_dropped;    /**< own messages that came back, dropped */
  uint64_t malformed;      /**< messages not in the wire format, dropped */
  uint64_t gaps;           /**< LARIAT_BRIDGE_GAP events */
  uint64_t missed;         /**< messages missed, summed over the gaps */
  uint64_t faults;         /**< LARIAT_BRIDGE_DOWN events */
  uint64_t reconnects;     /**< connections back up after a fault */
  uint64_t channels;       /**< Redis channels subscribed now */
} lariat_bridge_stats;

/**
 * @function
 *
 * Joins |server| (all its loops) to the Redis at |url|,
 * "redis://[[user]:password@]host[:port][/db]" (port 6379 and db 0 by
 * default; user and password percent-decoded; host a name, resolved
 * without blocking (its first IPv4 address is used, else its first IPv6
 * one), or a numeric address, IPv6 in brackets), with
 * |prefix| (NULL: "lariat:") before every topic to make its channel.
 * Topics subscribed already are subscribed in Redis too. Connecting is
 * asynchronous: this returns at once, and a Redis that cannot be reached
 * is reported to the handler of lariat_server_on_bridge() (register it
 * right after this call, before the loop runs again) within the connect
 * timeout, then retried; local topics work meanwhile. The bridge stops
 * with the server (its last publishes are flushed within the command
 * timeout). Returns 0 if it succeeds, or one of the following negative
 * error codes:
 *  - LARIAT_ERR_INVALID_ARGUMENT: NULL |server| or |url|, or |url| is not
 *    of that shape;
 *  - LARIAT_ERR_EXISTS: the server is joined already;
 *  - LARIAT_ERR_STOPPED: the server stops;
 *  - LARIAT_ERR_INVALID_STATE: called off the first loop's thread, or,
 *    with several loops, after lariat_server_run();
 *  - LARIAT_ERR_NOMEM.
 * |url| and |prefix| are copied. Thread: the first loop's thread.
 */
LARIAT_EXTERN int lariat_server_join_redis(lariat_server *server,
                                           const char *url,
                                           const char *prefix);

/**
 * @function
 *
 * Registers |on_bridge| (NULL: none), called with |data| on the first
 * loop's thread for every bridge event (see lariat_bridge_event_kind):
 * how subscribers learn that they may have missed messages. The event is
 * borrowed for the call. The handler may publish, subscribe and stop the
 * server. Returns 0 if it succeeds, or LARIAT_ERR_INVALID_ARGUMENT (NULL
 * |server|), LARIAT_ERR_NOT_FOUND (not joined), LARIAT_ERR_INVALID_STATE
 * (another thread). Thread: the first loop's thread.
 */
LARIAT_EXTERN int lariat_server_on_bridge(
    lariat_server *server,
    void (*on_bridge)(lariat_server *server, const lariat_bridge_event *event,
                      void *data),
    void *data);

/**
 * @function
 *
 * Copies the bridge's counters into |out|, |size| bytes of it
 * (sizeof(lariat_bridge_stats) of the caller's header; fields the library
 * does not know are zeroed). Returns 0 if it succeeds, or
 * LARIAT_ERR_INVALID_ARGUMENT (NULL |server| or |out|) or
 * LARIAT_ERR_NOT_FOUND (not joined). Thread: any thread, until
 * lariat_server_del().
 */
LARIAT_EXTERN int lariat_server_bridge_stats(const lariat_server *server,
                                             lariat_bridge_stats *out,
                                             size_t size);

/* ------------------------------------------------------------------ */
/* TLS (wss://)                                                        */
/* ------------------------------------------------------------------ */

/**
 * A TLS configuration for lariat_server_listen_tls(): certificates (the
 * first one added is the default, the others are chosen by the name the
 * client asks for with SNI, matched against each certificate's
 * subjectAltName DNS names, exact names before wildcards such as
 * "*.example.com"), ALPN "http/1.1" (a client that offers ALPN without
 * it gets the fatal no_application_protocol alert), TLS 1.2 and 1.3 only,
 * renegotiation refused, and session resumption by stateless tickets
 * sealed with keys that belong to the lariat_tls: every loop of every
 * server listening with it, before and after lariat_tls_reload(), resumes
 * the sessions of the others (keys live as long as the object; a restart
 * makes new ones). OpenSSL 3 does the work.
 *
 * Servers hold references: a lariat_tls may be deleted right after
 * lariat_server_listen_tls(); it goes when its last listener and
 * connection are gone. Every function here may be called from any thread.
 */
typedef struct lariat_tls lariat_tls;

/**
 * @function
 *
 * Creates an empty TLS configuration in |*out|. Returns 0 if it succeeds,
 * or one of the following negative error codes:
 *  - LARIAT_ERR_INVALID_ARGUMENT: NULL |out|;
 *  - LARIAT_ERR_NOMEM;
 *  - LARIAT_ERR_TLS: no random bytes for the ticket keys.
 * Ownership: the caller releases it with lariat_tls_del(). Thread: any.
 */
LARIAT_EXTERN int lariat_tls_new(lariat_tls **out);

/** @function Drops the caller's reference to |tls| (NULL does nothing);
 * listeners and connections that use it keep theirs. Thread: any. */
LARIAT_EXTERN void lariat_tls_del(lariat_tls *tls);

/**
 * @function
 *
 * Adds a certificate: |chain| holds the PEM certificate followed by its
 * intermediates, |key| its PEM private key (unencrypted), |chain_len| and
 * |key_len| bytes of each. The first certificate added is the default;
 * see lariat_tls for SNI. Handshakes that start afterwards see it, also
 * on listeners already running. Returns 0 if it succeeds, or one of the
 * following negative error codes:
 *  - LARIAT_ERR_INVALID_ARGUMENT: a NULL or empty argument;
 *  - LARIAT_ERR_TLS: OpenSSL refused the certificate or the key, or they
 *    do not match;
 *  - LARIAT_ERR_NOMEM.
 * Ownership: copied; the library code does not refer to |chain| or |key|
 * after this function returns. Thread: any.
 */
LARIAT_EXTERN int lariat_tls_add_cert_pem(lariat_tls *tls, const char *chain,
                                          size_t chain_len, const char *key,
                                          size_t key_len);

/**
 * @function
 *
 * lariat_tls_add_cert_pem() with the PEM read from the files
 * |chain_file| and |key_file|. Returns its codes, or a negative libuv
 * error code (UV_ENOENT, UV_EACCES...) for a file that cannot be read.
 * Thread: any.
 */
LARIAT_EXTERN int lariat_tls_add_cert_file(lariat_tls *tls,
                                           const char *chain_file,
                                           const char *key_file);

/**
 * @function
 *
 * Replaces the certificates of |tls| with those of |from| (built with
 * lariat_tls_new() and lariat_tls_add_cert_*()) for the handshakes that
 * start from now on; connections already open keep theirs. Tickets stay
 * sealed with |tls|'s keys, so sessions resume across the reload. Use it
 * when certificates are renewed: no restart, no listener closed. Returns
 * 0 if it succeeds, or LARIAT_ERR_INVALID_ARGUMENT for NULL or a |from|
 * without certificates. Ownership: |from| stays the caller's (delete it
 * when done; the certificates are shared). Thread: any.
 */
LARIAT_EXTERN int lariat_tls_reload(lariat_tls *tls, const lariat_tls *from);

/**
 * @function
 *
 * Returns how many TLS handshakes with |tls| failed (0 for NULL): alerts,
 * a request in clear on the TLS port, garbage, a client without a common
 * protocol version or cipher, a handshake the handshake timeout ended
 * ("handshake not finished") or a peer that closed in its middle. Such
 * connections never reach init, so terminate is not called for them; this
 * is where their reason is. When |reason| is not NULL, the reason of the
 * latest failure (OpenSSL's text, such as "wrong version number" or
 * "http request") is written there, NUL-terminated and cut to |size|
 * bytes ("" before any failure). Thread: any.
 */
LARIAT_EXTERN uint64_t lariat_tls_failures(const lariat_tls *tls, char *reason,
                                           size_t size);

/**
 * @function
 *
 * Listens like lariat_server_listen(), for wss:// (and https) clients:
 * each connection does its TLS handshake with |tls| first, which counts
 * against the handshake timeout, and then runs exactly like a plain one
 * (handlers, flow control, lariat_conn_buffered_amount(), which counts
 * the ciphertext the kernel has not taken yet). Plain and TLS listeners
 * may serve one server together. Returns 0 if it succeeds, or the codes of
 * lariat_server_listen(), or LARIAT_ERR_INVALID_ARGUMENT for a NULL
 * |tls|, or LARIAT_ERR_TLS when |tls| has no certificate. Ownership: the
 * server keeps a reference to |tls|. Thread: loop thread.
 */
LARIAT_EXTERN int lariat_server_listen_tls(lariat_server *server,
                                           const char *host, int port,
                                           lariat_tls *tls);

/** @function Returns the port of the first TLS listener, or
 * LARIAT_ERR_INVALID_STATE if there is none. */
LARIAT_EXTERN int lariat_server_tls_port(const lariat_server *server);

/** @function Returns the TLS version of |conn| ("TLSv1.3", "TLSv1.2"),
 * or NULL for a plain connection (and NULL). The string is static.
 * Thread: loop thread. */
LARIAT_EXTERN const char *lariat_conn_tls_version(const lariat_conn *conn);

/** @function Returns 1 when the TLS handshake of |conn| resumed an
 * earlier session (a session ticket: no certificate sent or checked, a
 * fraction of a full handshake's CPU), 0 after a full handshake, on a
 * plain connection and for NULL. Servers resume the tickets they issued
 * (see lariat_tls); a client resumes, on its next attempt, the session of
 * its last TLS connection. Thread: loop thread. */
LARIAT_EXTERN int lariat_conn_tls_resumed(const lariat_conn *conn);

#ifdef __cplusplus
}
#endif

#endif /* LARIAT_H */
