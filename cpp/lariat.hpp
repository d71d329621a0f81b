/** @file
 * lariat.hpp - header-only C++17 wrapper over the lariat C API, in the
 * manner of cppzmq over libzmq: RAII move-only owning handles, non-owning
 * views built only from C handles, exceptions for errors, and handler
 * classes (or lambdas) with a typed per-connection state.
 *
 * It uses nothing but <lariat/lariat.h> and the standard library, so it
 * works against any build of the shared or static library.
 *
 * Model (Cowboy's cowboy_websocket, see lariat.h):
 *
 *   struct echo : lariat::handler<my_state> {
 *     lariat::result websocket_handle(lariat::connection &c,
 *                                     const lariat::frame &f,
 *                                     my_state &s) override {
 *       c.reply(f);
 *       return lariat::result::ok;
 *     }
 *   };
 *   lariat::server srv;                 // owns its loop
 *   srv.route<echo>("/echo");
 *   srv.listen("127.0.0.1", 8080);
 *   srv.run();
 *
 * Errors: a failing C call throws lariat::error (num() is the C code,
 * what() is lariat_strerror()). Conditions a correct program meets in
 * normal operation are not exceptions and come back as `false`:
 *   - connection::reply() and friends on a closing connection
 *     (LARIAT_ERR_CLOSING) or past the queued-output cap
 *     (LARIAT_ERR_BACKPRESSURE), connection::set_idle_timeout() and
 *     set_active() on a closing connection;
 *   - server::post() and server::stop_async() once the server stops
 *     (LARIAT_ERR_STOPPED).
 *
 * Exceptions in handlers: an exception that leaves init, websocket_init,
 * websocket_handle or websocket_info becomes the Cowboy crash: the
 * callback records crash class = the exception's type name (demangled,
 * e.g. "std::runtime_error") and crash reason = what(), then returns
 * LARIAT_CRASH: the peer gets close 1011 (HTTP 500 from init) and
 * terminate gets reason_kind::crash. Exceptions that leave terminate are
 * caught and dropped: the connection is already over. No exception ever
 * unwinds through the C library.
 *
 * Lifetimes (lariat.h's rule, next to lariat_conn): a request and an
 * upgrade are views valid during the init call; a connection is valid on
 * the loop thread from websocket_init until terminate returns, so it may
 * be copied into the State and used from a timer on the same loop, never
 * after terminate and never from another thread (keep its id() for
 * post()). A deferred_upgrade (upgrade::defer()) is the one object of a
 * request that moves to another thread.
 *
 * Per-connection state: every request that reaches init gets a box owned
 * by the wrapper, given to lariat as the state pointer. The typed State
 * lives in that box: constructed in init by upgrade::emplace_state(), or
 * default-constructed when init accepts a WebSocket upgrade without one;
 * destroyed right after terminate returns (lariat calls terminate exactly
 * once for every request that reached init). So the wrapper owns the C
 * state pointer of its connections: do not call lariat_conn_set_data() on
 * them.
 *
 * Topics: connection::subscribe(topic) on the loop thread, then
 * server::publish_text(topic, ...) from any thread reaches every
 * subscriber and connection::publish(topic, frame) every one but itself.
 * server::defer(callable) (any thread) runs the callable on the loop
 * thread, for work that touches connections.
 *
 * Info messages: server::post(id, T{...}) (any thread) moves a T to the
 * heap and hands it to lariat_post() with a free function that destroys
 * it exactly once, whether or not it was delivered. websocket_info gets a
 * lariat::message; message::get<T>() returns the T, or nullptr when the
 * message holds another type. Connections served by this wrapper must only
 * receive messages posted through it (server::post or lariat::post), never
 * raw lariat_post() pointers.
 */
#ifndef LARIAT_HPP
#define LARIAT_HPP

// One line instead of a hundred errors from the C++17 code below. MSVC
// keeps __cplusplus at 199711L unless /Zc:__cplusplus; _MSVC_LANG is right.
#if defined(_MSVC_LANG) ? _MSVC_LANG < 201703L : __cplusplus < 201703L
#error "lariat.hpp needs C++17"
#else  // the rest only under C++17: #error alone does not stop compilers

#include <lariat/lariat.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

#if defined(__GNUG__) && defined(__has_include)
#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define LARIAT_CPP_HAVE_CXXABI 1
#endif
#endif

// Everything wrapped here is in lariat 0.1.0; wrappers of later additions
// get gated on LARIAT_VERSION_NUM like this (cppzmq's ZMQ_VERSION checks).
#if LARIAT_VERSION_NUM < 0x000100
#error "lariat.hpp needs lariat 0.1.0 or newer"
#endif

namespace lariat {

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/** A failed C call: num() is the C code (enum lariat_error or a libuv
 * code), what() is lariat_strerror(num()). */
class error : public std::runtime_error {
 public:
  /** Wraps C error code |code|. */
  explicit error(int code)
      : std::runtime_error(lariat_strerror(code)), num_(code) {}
  /** The C error code (enum lariat_error or a libuv code). */
  [[nodiscard]] int num() const noexcept { return num_; }
  /** "LARIAT_ERR_CLOSING", "EADDRINUSE"... */
  [[nodiscard]] const char *name() const noexcept {
    return lariat_err_name(num_);
  }
  /** Whether the code is fatal (lariat_is_fatal()). */
  [[nodiscard]] bool fatal() const noexcept {
    return lariat_is_fatal(num_) != 0;
  }

 private:
  int num_;
};

/** Tag for the constructors that wrap a C handle without owning it. */
struct from_handle_t {
  explicit from_handle_t() = default;
};
/** The from_handle_t tag value. */
inline constexpr from_handle_t from_handle{};

/** A connection's id (lariat_conn_id): valid on any thread, for server::post(). */
using conn_id = lariat_conn_id;

namespace detail {

inline int check(int rc) {
  if (rc < 0) throw error(rc);
  return rc;
}

inline std::uint64_t to_ms(std::chrono::milliseconds ms) {
  if (ms.count() < 0) throw error(LARIAT_ERR_INVALID_ARGUMENT);
  return static_cast<std::uint64_t>(ms.count());
}

inline std::string_view view(const char *p, std::size_t len) noexcept {
  return p ? std::string_view(p, len) : std::string_view();
}

inline std::string_view view(const std::uint8_t *p, std::size_t len) noexcept {
  return p ? std::string_view(reinterpret_cast<const char *>(p), len)
           : std::string_view();
}

/** Records the exception being handled as a crash through |set| (
 * lariat_conn_set_crash or lariat_upgrade_set_crash). Allocation-free
 * apart from the demangler, and noexcept: it runs inside catch (...). */
template <class Handle>
void record_crash(int (*set)(Handle *, const char *, const char *),
                  Handle *h) noexcept {
  const std::type_info *type = nullptr;
  const char *what = "unknown exception";
  try {
    throw;
  } catch (const std::exception &e) {
    type = &typeid(e);
    what = e.what();
  } catch (...) {
#ifdef LARIAT_CPP_HAVE_CXXABI
    type = abi::__cxa_current_exception_type();
#endif
  }
  const char *name = type ? type->name() : "unknown";
  char *demangled = nullptr;
#ifdef LARIAT_CPP_HAVE_CXXABI
  int status = 0;
  if (type) demangled = abi::__cxa_demangle(name, nullptr, nullptr, &status);
#endif
  set(h, demangled ? demangled : name, what);  // both copied by lariat
  std::free(demangled);
}

}  // namespace detail

/* ------------------------------------------------------------------ */
/* TLS                                                                 */
/* ------------------------------------------------------------------ */

namespace detail {
struct tls_deleter {
  void operator()(lariat_tls *t) const noexcept { lariat_tls_del(t); }
};
}  // namespace detail

/** A TLS configuration for server::listen_tls() (lariat.h, "TLS"): the
 * first certificate is the default, the others are chosen by SNI. Move-
 * only; servers keep their own reference, so it may go after listen_tls.
 * Every member may be called from any thread. */
class tls {
 public:
  /** An empty configuration (lariat_tls_new). */
  tls() {
    lariat_tls *t = nullptr;
    detail::check(lariat_tls_new(&t));
    ptr_.reset(t);
  }
  tls(const tls &) = delete;
  tls &operator=(const tls &) = delete;
  /** Moves the reference. */
  tls(tls &&) noexcept = default;
  /** Moves the reference. */
  tls &operator=(tls &&) noexcept = default;

  /** PEM chain and key files; throws lariat::error (LARIAT_ERR_TLS, or a
   * libuv code for a file that cannot be read). */
  tls &add_cert_file(const std::string &chain_file,
                     const std::string &key_file) {
    detail::check(
        lariat_tls_add_cert_file(checked(), chain_file.c_str(), key_file.c_str()));
    return *this;
  }
  /** PEM in memory (copied). */
  tls &add_cert_pem(std::string_view chain, std::string_view key) {
    detail::check(lariat_tls_add_cert_pem(checked(), chain.data(), chain.size(),
                                          key.data(), key.size()));
    return *this;
  }
  /** New connections use |from|'s certificates from now on (renewal
   * without a restart); tickets still resume. */
  void reload(const tls &from) {
    detail::check(lariat_tls_reload(checked(), from.checked()));
  }
  /** Failed handshakes so far, and the latest one's reason. */
  [[nodiscard]] std::pair<std::uint64_t, std::string> failures() const {
    char why[256];
    std::uint64_t n = lariat_tls_failures(checked(), why, sizeof why);
    return {n, std::string(why)};
  }
  /** The C handle. */
  [[nodiscard]] lariat_tls *handle() const noexcept { return ptr_.get(); }
  /** False once moved from. */
  explicit operator bool() const noexcept { return ptr_ != nullptr; }
  /** Swaps the references. */
  void swap(tls &other) noexcept { ptr_.swap(other.ptr_); }

 private:
  lariat_tls *checked() const {
    if (!ptr_) throw error(LARIAT_ERR_INVALID_STATE);  // moved from
    return ptr_.get();
  }
  std::unique_ptr<lariat_tls, detail::tls_deleter> ptr_;
};

/** Swaps the references. */
inline void swap(tls &a, tls &b) noexcept { a.swap(b); }

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

namespace detail {
struct options_deleter {
  void operator()(lariat_options *o) const noexcept { lariat_options_del(o); }
};
}  // namespace detail

/** Server options; copied by the server constructor, so one object can
 * configure several servers. Setters chain and throw lariat::error for an
 * invalid value. */
class options {
 public:
  options() {
    lariat_options *o = nullptr;
    detail::check(lariat_options_new(&o));
    ptr_.reset(o);
  }
  options(const options &) = delete;
  options &operator=(const options &) = delete;
  /** Move-constructs; |other| is left empty. */
  options(options &&) noexcept = default;
  /** Move-assigns; the right side is left empty. */
  options &operator=(options &&) noexcept = default;

  /** lariat_options_set_max_head_size(). */
  options &max_head_size(std::size_t bytes) {
    detail::check(lariat_options_set_max_head_size(checked(), bytes));
    return *this;
  }
  /** lariat_options_set_max_headers(). */
  options &max_headers(std::size_t count) {
    detail::check(lariat_options_set_max_headers(checked(), count));
    return *this;
  }
  /** lariat_options_set_handshake_timeout(). */
  options &handshake_timeout(std::chrono::milliseconds ms) {
    detail::check(
        lariat_options_set_handshake_timeout(checked(), detail::to_ms(ms)));
    return *this;
  }
  /** lariat_options_set_max_frame_size(). */
  options &max_frame_size(std::uint64_t bytes) {
    detail::check(lariat_options_set_max_frame_size(checked(), bytes));
    return *this;
  }
  /** lariat_options_set_close_timeout(). */
  options &close_timeout(std::chrono::milliseconds ms) {
    detail::check(
        lariat_options_set_close_timeout(checked(), detail::to_ms(ms)));
    return *this;
  }
  /** Most connections open at once; over it, 503 before any upgrade. */
  options &max_connections(std::size_t count) {
    detail::check(lariat_options_set_max_connections(checked(), count));
    return *this;
  }
  /** Event loops (threads); 0: one per core. Callbacks of different
   * connections then run at the same time on different threads: state a
   * handler shares between connections needs a lock (see
   * lariat_options_set_threads). */
  options &threads(unsigned count) {
    detail::check(lariat_options_set_threads(checked(), count));
    return *this;
  }
  /** The Redis bridge: lariat_options_set_bridge_timeouts(). */
  options &bridge_timeouts(std::chrono::milliseconds connect,
                           std::chrono::milliseconds command) {
    detail::check(lariat_options_set_bridge_timeouts(
        checked(), detail::to_ms(connect), detail::to_ms(command)));
    return *this;
  }
  /** The Redis bridge: lariat_options_set_bridge_backoff(). */
  options &bridge_backoff(std::chrono::milliseconds min,
                          std::chrono::milliseconds max) {
    detail::check(lariat_options_set_bridge_backoff(
        checked(), detail::to_ms(min), detail::to_ms(max)));
    return *this;
  }
  /** The Redis bridge: lariat_options_set_bridge_linger(). */
  options &bridge_linger(std::chrono::milliseconds ms) {
    detail::check(lariat_options_set_bridge_linger(checked(), detail::to_ms(ms)));
    return *this;
  }
  /** lariat_options_set_ignore_sigpipe(). */
  options &ignore_sigpipe(bool on) {
    detail::check(lariat_options_set_ignore_sigpipe(checked(), on ? 1 : 0));
    return *this;
  }

  /** The C handle (still owned by this object). */
  [[nodiscard]] lariat_options *handle() const noexcept { return ptr_.get(); }
  /** False once moved from. */
  explicit operator bool() const noexcept { return ptr_ != nullptr; }
  /** Swaps two option sets. */
  void swap(options &other) noexcept { ptr_.swap(other.ptr_); }

 private:
  lariat_options *checked() const {
    if (!ptr_) throw error(LARIAT_ERR_INVALID_STATE);  // moved from
    return ptr_.get();
  }
  std::unique_ptr<lariat_options, detail::options_deleter> ptr_;
};

/** Swaps two option sets. */
inline void swap(options &a, options &b) noexcept { a.swap(b); }

namespace detail {
struct client_options_deleter {
  void operator()(lariat_client_options *o) const noexcept {
    lariat_client_options_del(o);
  }
};
}  // namespace detail

/** Options of server::connect(); copied by it. Setters chain and throw
 * lariat::error for an invalid value. */
class client_options {
 public:
  client_options() {
    lariat_client_options *o = nullptr;
    detail::check(lariat_client_options_new(&o));
    ptr_.reset(o);
  }
  /** Adds a request header (lariat_client_options_add_header()). */
  client_options &header(const std::string &name, const std::string &value) {
    detail::check(lariat_client_options_add_header(checked(), name.c_str(),
                                                   value.c_str()));
    return *this;
  }
  /** Offered in the order added. */
  client_options &protocol(const std::string &name) {
    detail::check(lariat_client_options_add_protocol(checked(), name.c_str()));
    return *this;
  }
  /** lariat_client_options_set_deflate(): deflate_option::enable, 1 offers
   * permessage-deflate. */
  client_options &deflate(int knob, int value) {
    detail::check(lariat_client_options_set_deflate(checked(), knob, value));
    return *this;
  }
  /** lariat_client_options_set_max_frame_size(). */
  client_options &max_frame_size(std::uint64_t bytes) {
    detail::check(lariat_client_options_set_max_frame_size(checked(), bytes));
    return *this;
  }
  /** lariat_client_options_set_timeouts(). */
  client_options &timeouts(std::chrono::milliseconds connect,
                           std::chrono::milliseconds handshake) {
    detail::check(lariat_client_options_set_timeouts(
        checked(), detail::to_ms(connect), detail::to_ms(handshake)));
    return *this;
  }
  /** lariat_client_options_set_reconnect(). */
  client_options &reconnect(std::chrono::milliseconds base,
                            std::chrono::milliseconds max, double multiplier,
                            double jitter, unsigned max_attempts = 0) {
    detail::check(lariat_client_options_set_reconnect(
        checked(), detail::to_ms(base), detail::to_ms(max), multiplier, jitter,
        max_attempts));
    return *this;
  }
  /** wss://: trust these CAs instead of the system's
   * (lariat_client_options_set_tls_ca()); an empty string is "none".
   * Throws lariat::error (LARIAT_ERR_TLS) when no certificate loads. */
  client_options &tls_ca(const std::string &ca_file,
                         const std::string &ca_dir = std::string()) {
    detail::check(lariat_client_options_set_tls_ca(
        checked(), ca_file.empty() ? nullptr : ca_file.c_str(),
        ca_dir.empty() ? nullptr : ca_dir.c_str()));
    return *this;
  }
  /** wss://: the name for SNI and the certificate check instead of the
   * URL's host (lariat_client_options_set_tls_server_name()). */
  client_options &tls_server_name(const std::string &name) {
    detail::check(
        lariat_client_options_set_tls_server_name(checked(), name.c_str()));
    return *this;
  }
  /** wss://: accept any certificate (tests only;
   * lariat_client_options_set_tls_insecure_no_verify()). */
  client_options &tls_insecure_no_verify(bool insecure = true) {
    detail::check(lariat_client_options_set_tls_insecure_no_verify(
        checked(), insecure ? 1 : 0));
    return *this;
  }
  /** lariat_client_options_set_offline_queue(). */
  client_options &offline_queue(std::size_t max_messages) {
    detail::check(
        lariat_client_options_set_offline_queue(checked(), max_messages));
    return *this;
  }
  /** The C handle (still owned by this object). */
  [[nodiscard]] const lariat_client_options *handle() const noexcept {
    return ptr_.get();
  }

 private:
  lariat_client_options *checked() const {
    if (!ptr_) throw error(LARIAT_ERR_INVALID_STATE);
    return ptr_.get();
  }
  std::unique_ptr<lariat_client_options, detail::client_options_deleter> ptr_;
};

/* ------------------------------------------------------------------ */
/* Value types and views                                               */
/* ------------------------------------------------------------------ */

/** Frame opcodes; each value equals lariat.h's LARIAT_OP_* of the same name. */
enum class opcode : std::uint32_t {
  text = LARIAT_OP_TEXT,
  binary = LARIAT_OP_BINARY,
  close = LARIAT_OP_CLOSE,
  ping = LARIAT_OP_PING,
  pong = LARIAT_OP_PONG
};

/** A frame: what websocket_handle receives (data borrowed for the call)
 * and what connection::reply() sends (data copied). */
struct frame {
  /** The opcode. */
  opcode op = opcode::text;
  std::string_view data;         ///< for close: the reason, without the code
  std::uint16_t close_code = 0;  ///< close only; 0 = close without a code
  bool compress = true;          ///< false: LARIAT_FRAME_NO_COMPRESS
  bool local = false;  ///< publish only: true is LARIAT_FRAME_LOCAL (not to Redis)

  frame() = default;
  /** A frame of opcode |o| with payload |d| (and close code |code|). */
  frame(opcode o, std::string_view d, std::uint16_t code = 0) noexcept
      : op(o), data(d), close_code(code) {}
  /** A view of a C frame (borrowed as the C frame is). */
  frame(from_handle_t, const lariat_frame *f) noexcept
      : op(static_cast<opcode>(f->opcode)),
        data(detail::view(f->data, f->len)),
        close_code(f->close_code),
        compress(!(f->flags & LARIAT_FRAME_NO_COMPRESS)),
        local((f->flags & LARIAT_FRAME_LOCAL) != 0) {}

  /** A text message. */
  static frame text(std::string_view d) noexcept { return {opcode::text, d}; }
  /** A binary message. */
  static frame binary(std::string_view d) noexcept {
    return {opcode::binary, d};
  }
  /** A ping. */
  static frame ping(std::string_view d = {}) noexcept {
    return {opcode::ping, d};
  }
  /** A pong. */
  static frame pong(std::string_view d = {}) noexcept {
    return {opcode::pong, d};
  }
  /** A close frame with |code| (0: none) and |reason|. */
  static frame close(std::uint16_t code = 0,
                     std::string_view reason = {}) noexcept {
    return {opcode::close, reason, code};
  }

  /** Whether this is a text message. */
  [[nodiscard]] bool is_text() const noexcept { return op == opcode::text; }
  /** Whether this is a binary message. */
  [[nodiscard]] bool is_binary() const noexcept { return op == opcode::binary; }
  /** Whether this is a text or binary message. */
  [[nodiscard]] bool is_data() const noexcept {
    return is_text() || is_binary();
  }
};

/** Terminate reasons; each value equals lariat.h's LARIAT_REASON_* of the same name. */
enum class reason_kind : int {
  normal = LARIAT_REASON_NORMAL,
  remote = LARIAT_REASON_REMOTE,
  shutdown = LARIAT_REASON_SHUTDOWN,
  timeout = LARIAT_REASON_TIMEOUT,
  crash = LARIAT_REASON_CRASH,
  error_badencoding = LARIAT_REASON_ERROR_BADENCODING,
  error_badframe = LARIAT_REASON_ERROR_BADFRAME,
  error_too_big = LARIAT_REASON_ERROR_TOO_BIG,
  error_closed = LARIAT_REASON_ERROR_CLOSED,
  error_socket = LARIAT_REASON_ERROR_SOCKET,
  error_backpressure = LARIAT_REASON_ERROR_BACKPRESSURE,
  handshake_failed = LARIAT_REASON_HANDSHAKE_FAILED
};

/** Why a connection ended; a view borrowed for the terminate call. */
class reason {
 public:
  /** A view of a C reason (borrowed for the terminate call). */
  reason(from_handle_t, const lariat_reason *r) noexcept : r_(r) {}
  /** How the connection ended. */
  [[nodiscard]] reason_kind kind() const noexcept {
    return static_cast<reason_kind>(r_->kind);
  }
  /** "remote", "error badframe"... */
  [[nodiscard]] const char *name() const noexcept {
    return lariat_reason_name(r_->kind);
  }
  /** remote: the peer's close code, 0 if none. */
  [[nodiscard]] std::uint16_t code() const noexcept { return r_->code; }
  /** remote: the peer's close reason. */
  [[nodiscard]] std::string_view payload() const noexcept {
    return detail::view(r_->data, r_->len);
  }
  /** crash: the crash class. */
  [[nodiscard]] std::string_view crash_class() const noexcept {
    return r_->crash_class ? std::string_view(r_->crash_class)
                           : std::string_view();
  }
  /** crash: the crash reason. */
  [[nodiscard]] std::string_view crash_reason() const noexcept {
    return r_->crash_reason ? std::string_view(r_->crash_reason)
                            : std::string_view();
  }
  /** error_socket: the libuv error code (lariat::error(code).what()
   * names it). */
  [[nodiscard]] int socket_error() const noexcept { return r_->socket_error; }
  /** Clients: another attempt follows (the state is kept for it). */
  [[nodiscard]] bool retrying() const noexcept { return r_->retrying != 0; }
  /** Clients: 1 for the first connection attempt, then 2... */
  [[nodiscard]] unsigned attempt() const noexcept { return r_->attempt; }
  /** Clients: posts dropped while disconnected, since the client started. */
  [[nodiscard]] std::uint64_t posts_dropped() const noexcept {
    return r_->posts_dropped;
  }
  /** handshake_failed: the server's status (0: none), what was wrong, and
   * the response's headers. */
  [[nodiscard]] int http_status() const noexcept { return r_->http_status; }
  /** handshake_failed: what was wrong, in English. */
  [[nodiscard]] std::string_view failure() const noexcept {
    return r_->failure ? std::string_view(r_->failure) : std::string_view();
  }
  /** handshake_failed: the server's response header |name| (lariat_reason_header()). */
  [[nodiscard]] std::optional<std::string_view> header(
      const std::string &name) const noexcept {
    std::size_t n = 0;
    const char *v = lariat_reason_header(r_, name.c_str(), &n);
    if (!v) return std::nullopt;
    return std::string_view(v, n);
  }
  /** The C reason. */
  [[nodiscard]] const lariat_reason *handle() const noexcept { return r_; }

 private:
  const lariat_reason *r_;
};

/** A peer address. */
struct endpoint {
  std::string address;  ///< "127.0.0.1", "::1", "::ffff:127.0.0.1"
  /** The peer's port. */
  int port = 0;
};

/** The upgrade request, a view borrowed for the init call: copy what must
 * outlive init into the state. */
class request {
 public:
  /** An address and port. */
  using endpoint = lariat::endpoint;
  /** A view of a C request (borrowed for the init call). */
  request(from_handle_t, const lariat_req *r) noexcept : r_(r) {}

  /** The method ("GET"). */
  [[nodiscard]] std::string_view method() const noexcept {
    std::size_t len = 0;
    const char *p = lariat_req_method(r_, &len);
    return detail::view(p, len);
  }
  /** Without the query: "/chat". */
  [[nodiscard]] std::string_view path() const noexcept {
    std::size_t len = 0;
    const char *p = lariat_req_path(r_, &len);
    return detail::view(p, len);
  }
  /** Without the '?', not percent-decoded; empty when there is none. */
  [[nodiscard]] std::string_view query() const noexcept {
    std::size_t len = 0;
    const char *p = lariat_req_query(r_, &len);
    return detail::view(p, len);
  }
  /** The first header called |name| (case-insensitive). */
  [[nodiscard]] std::optional<std::string_view> header(
      const char *name) const noexcept {
    std::size_t len = 0;
    const char *p = lariat_req_header(r_, name, &len);
    if (!p) return std::nullopt;
    return std::string_view(p, len);
  }
  /** The first header called |name| (any case), if any. */
  [[nodiscard]] std::optional<std::string_view> header(
      std::string_view name) const {
    return header(std::string(name).c_str());
  }
  /** Every header line in order, names as the client spelled them. */
  [[nodiscard]] std::vector<std::pair<std::string_view, std::string_view>>
  headers() const {
    std::vector<std::pair<std::string_view, std::string_view>> out;
    std::size_t n = lariat_req_header_count(r_);
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const char *name = nullptr, *value = nullptr;
      std::size_t name_len = 0, value_len = 0;
      detail::check(
          lariat_req_header_at(r_, i, &name, &name_len, &value, &value_len));
      out.emplace_back(detail::view(name, name_len),
                       detail::view(value, value_len));
    }
    return out;
  }
  /** Whether the request is a WebSocket upgrade. */
  [[nodiscard]] bool is_websocket() const noexcept {
    return lariat_req_is_websocket(r_) != 0;
  }
  /** Subprotocols offered in Sec-WebSocket-Protocol, in order. */
  [[nodiscard]] std::vector<std::string_view> protocols() const {
    std::vector<std::string_view> out;
    std::size_t n = lariat_req_protocol_count(r_);
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t len = 0;
      const char *p = lariat_req_protocol_at(r_, i, &len);
      if (p) out.emplace_back(p, len);
    }
    return out;
  }
  /** The client's address and port. */
  [[nodiscard]] endpoint peer() const {
    char buf[64];
    endpoint ep;
    detail::check(lariat_req_peer(r_, buf, sizeof buf, &ep.port));
    ep.address = buf;
    return ep;
  }
  /** The first query parameter |name|, percent-decoded ('+' is a space;
   * "" without '='), or nullopt. Throws lariat::error for a malformed
   * percent escape. */
  [[nodiscard]] std::optional<std::string> query_param(
      const std::string &name) const {
    return decoded(&lariat_req_query_param, name);
  }
  /** The cookie |name| from the Cookie headers (unquoted, percent-decoded),
   * or nullopt. */
  [[nodiscard]] std::optional<std::string> cookie(
      const std::string &name) const {
    return decoded(&lariat_req_cookie, name);
  }
  /** The C request. */
  [[nodiscard]] const lariat_req *handle() const noexcept { return r_; }

 private:
  using decode_fn = int (*)(const lariat_req *, const char *, char *,
                            std::size_t, std::size_t *);
  std::optional<std::string> decoded(decode_fn fn,
                                     const std::string &name) const {
    std::string out(64, '\0');
    std::size_t len = 0;
    int rc = fn(r_, name.c_str(), out.data(), out.size(), &len);
    if (rc == LARIAT_ERR_BUFFER_TOO_SMALL) {  // |len| is the value's length
      out.assign(len + 1, '\0');
      rc = fn(r_, name.c_str(), out.data(), out.size(), &len);
    }
    if (rc == LARIAT_ERR_NOT_FOUND) return std::nullopt;
    detail::check(rc);
    out.resize(len);
    return out;
  }
  const lariat_req *r_;
};

/** permessage-deflate knobs; each value equals lariat.h's LARIAT_DEFLATE_* of the same name. */
enum class deflate_option : int {
  enable = LARIAT_DEFLATE_ENABLE,
  level = LARIAT_DEFLATE_LEVEL,
  mem_level = LARIAT_DEFLATE_MEM_LEVEL,
  server_max_window_bits = LARIAT_DEFLATE_SERVER_MAX_WINDOW_BITS,
  client_max_window_bits = LARIAT_DEFLATE_CLIENT_MAX_WINDOW_BITS,
  server_no_context_takeover = LARIAT_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER,
  client_no_context_takeover = LARIAT_DEFLATE_CLIENT_NO_CONTEXT_TAKEOVER,
  threshold = LARIAT_DEFLATE_THRESHOLD,
  /** zlib strategy: 0 default, 1 filtered, 2 huffman only, 3 rle, 4 fixed. */
  strategy = LARIAT_DEFLATE_STRATEGY
};

template <class State>
class deferred_upgrade;

namespace detail {
/** What a deferred upgrade shares with the init trampoline. A decision
 * made before init has returned LARIAT_DEFER (on another thread, at once)
 * is returned by init itself: lariat_upgrade_resume() is only valid
 * after. |mu| also makes "one thread at a time" on |up| hold. */
struct deferral {
  std::mutex mu;
  lariat_upgrade *up = nullptr;  // null once decided or cancelled
  bool is_websocket = false;
  bool init_returned = false;
  int early = -1;  // the decision made before init returned

  /** |mu| held. */
  int finish(int result) noexcept {
    lariat_upgrade *u = up;
    up = nullptr;
    if (!init_returned) {
      early = result;
      return 0;
    }
    return lariat_upgrade_resume(u, result);
  }
};
}  // namespace detail

/** The per-connection options set in init (Cowboy's init return options),
 * or a plain HTTP answer instead of the upgrade. Borrowed for the init
 * call. Setters chain and throw lariat::error for invalid values. */
class upgrade_base {
 public:
  /** Response headers as (name, value) pairs. */
  using header_list =
      std::vector<std::pair<std::string_view, std::string_view>>;

  /** lariat_upgrade_set_idle_timeout(); 0: never. */
  upgrade_base &idle_timeout(std::chrono::milliseconds ms) {
    detail::check(lariat_upgrade_set_idle_timeout(h(), detail::to_ms(ms)));
    return *this;
  }
  /** lariat_upgrade_set_max_frame_size(). */
  upgrade_base &max_frame_size(std::uint64_t bytes) {
    detail::check(lariat_upgrade_set_max_frame_size(h(), bytes));
    return *this;
  }
  /** lariat_upgrade_set_validate_utf8(). */
  upgrade_base &validate_utf8(bool on) {
    detail::check(lariat_upgrade_set_validate_utf8(h(), on ? 1 : 0));
    return *this;
  }
  /** Must be one the client offered (request::protocols()). */
  upgrade_base &protocol(const std::string &name) {
    detail::check(lariat_upgrade_set_protocol(h(), name.c_str()));
    return *this;
  }
  /** Cowboy's `compress`: accept a permessage-deflate offer. */
  upgrade_base &compress(bool on) {
    return deflate(deflate_option::enable, on ? 1 : 0);
  }
  /** Flow control: the cap on output queued for a slow reader and what
   * happens past it (lariat_upgrade_set_max_queued), and the low-water
   * mark that triggers websocket_drain. */
  upgrade_base &max_queued(std::uint64_t bytes,
                           lariat_backpressure_policy policy =
                               LARIAT_BACKPRESSURE_CLOSE) {
    detail::check(lariat_upgrade_set_max_queued(h(), bytes, policy));
    return *this;
  }
  /** lariat_upgrade_set_low_water(): websocket_drain runs when output falls back here. */
  upgrade_base &low_water(std::uint64_t bytes) {
    detail::check(lariat_upgrade_set_low_water(h(), bytes));
    return *this;
  }
  /** Keepalive: ping after |interval| of silence, close (reason timeout)
   * when nothing arrives within |pong_timeout|. */
  upgrade_base &ping_interval(std::chrono::milliseconds interval,
                              std::chrono::milliseconds pong_timeout) {
    detail::check(lariat_upgrade_set_ping_interval(
        h(), detail::to_ms(interval), detail::to_ms(pong_timeout)));
    return *this;
  }
  /** Cowboy's `deflate_opts`, one knob at a time. */
  upgrade_base &deflate(deflate_option option, std::int64_t value) {
    detail::check(
        lariat_upgrade_set_deflate(h(), static_cast<int>(option), value));
    return *this;
  }
  /** Answers with a plain HTTP response instead of upgrading; terminate
   * then gets reason_kind::normal. Everything is copied. */
  void reply(int status, const header_list &headers = {},
             std::string_view body = {}) {
    std::vector<std::string> strings;
    strings.reserve(headers.size() * 2);
    for (const auto &h : headers) {
      strings.emplace_back(h.first);
      strings.emplace_back(h.second);
    }
    std::vector<const char *> ptrs;
    ptrs.reserve(strings.size());
    for (const auto &s : strings) ptrs.push_back(s.c_str());
    detail::check(lariat_upgrade_reply(h(), status, ptrs.data(), headers.size(),
                                       body.data(), body.size()));
    replied_ = true;
  }
  /** Adds |name|: |value| to the 101 response (Set-Cookie...); may repeat.
   * lariat's own headers are refused (lariat::error). Copied. */
  upgrade_base &add_header(const std::string &name, const std::string &value) {
    detail::check(lariat_upgrade_add_header(h(), name.c_str(), value.c_str()));
    return *this;
  }
  /** Whether reply() answered the request. */
  [[nodiscard]] bool replied() const noexcept { return replied_; }
  /** Whether the decision was deferred (defer()). */
  [[nodiscard]] bool deferred() const noexcept { return deferral_ != nullptr; }
  /** The C upgrade. */
  [[nodiscard]] lariat_upgrade *handle() const noexcept { return up_; }
  /** The init trampoline's; null unless defer() was called. */
  [[nodiscard]] const std::shared_ptr<detail::deferral> &deferral()
      const noexcept {
    return deferral_;
  }

 protected:
  /** A view of a C upgrade (borrowed for the init call). */
  upgrade_base(from_handle_t, lariat_upgrade *up,
               bool is_websocket = true) noexcept
      : up_(up), is_websocket_(is_websocket) {}
  ~upgrade_base() = default;
  upgrade_base(const upgrade_base &) = delete;
  upgrade_base &operator=(const upgrade_base &) = delete;

  /** After defer(), |up| belongs to the deferred_upgrade. */
  lariat_upgrade *h() const {
    if (deferral_) throw error(LARIAT_ERR_INVALID_STATE);
    return up_;
  }
  /** Takes the upgrade over for a deferred decision. */
  std::shared_ptr<detail::deferral> start_deferral() {
    auto d = std::make_shared<detail::deferral>();
    d->up = h();
    d->is_websocket = is_websocket_;
    deferral_ = d;
    return d;
  }

 private:
  lariat_upgrade *up_;
  bool is_websocket_;
  bool replied_ = false;
  std::shared_ptr<detail::deferral> deferral_;
};

/** upgrade_base plus the typed state slot of the connection being set up. */
template <class State>
class upgrade : public upgrade_base {
 public:
  /** A view of a C upgrade whose state goes to |slot|. */
  upgrade(from_handle_t, lariat_upgrade *up, std::optional<State> *slot,
          bool is_websocket = true)
      : upgrade_base(from_handle, up, is_websocket), slot_(slot) {}
  /** Constructs the connection's State in place (replacing one emplaced
   * before). Without it, an accepted upgrade default-constructs State. */
  template <class... Args>
  State &emplace_state(Args &&...args) {
    (void)h();  // not after defer(): the state is the deferred's then
    return slot_->emplace(std::forward<Args>(args)...);
  }
  /** The state set so far, or nullptr. */
  [[nodiscard]] State *state() noexcept {
    return slot_->has_value() ? &**slot_ : nullptr;
  }
  /** Leaves the decision for later (a database lookup, say): init returns
   * as usual, and the returned object, movable to any thread, ends it.
   * This upgrade is unusable afterwards; the request too once init
   * returns, so copy what the decision needs first. */
  [[nodiscard]] deferred_upgrade<State> defer() {
    return deferred_upgrade<State>(start_deferral(), slot_);
  }

 private:
  std::optional<State> *slot_;
};

/** A decision init deferred (upgrade::defer()). Move-only; any thread, one
 * at a time. End it with exactly one of resume(), accept(), reply() or
 * fail(); the client waits meanwhile, within the server's handshake
 * timeout (past it, the client gets 408 and terminate reason timeout once
 * the decision arrives). Destroyed without a decision, it fails (500), so
 * a forgotten one cannot hold the server's stop forever. */
template <class State>
class deferred_upgrade {
 public:
  deferred_upgrade() noexcept = default;
  /** Move-constructs; |other| is left without a decision to make. */
  deferred_upgrade(deferred_upgrade &&) noexcept = default;
  /** Move-assigns; a pending decision of the left side is made first (500). */
  deferred_upgrade &operator=(deferred_upgrade &&other) noexcept {
    if (this != &other) {
      abandon();
      d_ = std::move(other.d_);
      slot_ = other.slot_;
    }
    return *this;
  }
  deferred_upgrade(const deferred_upgrade &) = delete;
  deferred_upgrade &operator=(const deferred_upgrade &) = delete;
  ~deferred_upgrade() { abandon(); }

  /** Decides: |decide| gets the upgrade as init did (options,
   * emplace_state(), reply(), add_header()); returning accepts (or sends
   * the reply), throwing answers 500 with the exception as crash reason.
   * Throws lariat::error(LARIAT_ERR_INVALID_STATE) when already decided. */
  template <class F>
  void resume(F &&decide) {
    std::shared_ptr<detail::deferral> d = take();
    std::lock_guard<std::mutex> lock(d->mu);
    if (!d->up) throw error(LARIAT_ERR_INVALID_STATE);  // init threw
    int result = LARIAT_OK;
    try {
      upgrade<State> u(from_handle, d->up, slot_, d->is_websocket);
      std::forward<F>(decide)(u);
      if (!u.replied() && d->is_websocket && !slot_->has_value()) {
        if constexpr (std::is_default_constructible_v<State>) {
          slot_->emplace();
        } else {
          throw std::logic_error(
              "deferred upgrade accepted without emplace_state() and the "
              "state type has no default constructor");
        }
      }
    } catch (...) {
      detail::record_crash(&lariat_upgrade_set_crash, d->up);
      result = LARIAT_CRASH;
    }
    detail::check(d->finish(result));
  }
  /** Accepts the upgrade with the options set. */
  void accept() {
    resume([](upgrade<State> &) {});
  }
  /** Answers with a plain HTTP response instead of upgrading. */
  void reply(int status, const upgrade_base::header_list &headers = {},
             std::string_view body = {}) {
    resume([&](upgrade<State> &u) { u.reply(status, headers, body); });
  }
  /** Answers 500; terminate gets reason crash with these strings. */
  void fail(const char *crash_class, const char *crash_reason) {
    std::shared_ptr<detail::deferral> d = take();
    std::lock_guard<std::mutex> lock(d->mu);
    if (!d->up) throw error(LARIAT_ERR_INVALID_STATE);
    lariat_upgrade_set_crash(d->up, crash_class, crash_reason);  // copied
    detail::check(d->finish(LARIAT_CRASH));
  }
  /** false once decided (or moved from). */
  explicit operator bool() const noexcept { return d_ != nullptr; }

 private:
  friend class upgrade<State>;
  deferred_upgrade(std::shared_ptr<detail::deferral> d,
                   std::optional<State> *slot) noexcept
      : d_(std::move(d)), slot_(slot) {}
  std::shared_ptr<detail::deferral> take() {
    if (!d_) throw error(LARIAT_ERR_INVALID_STATE);
    return std::move(d_);
  }
  void abandon() noexcept {
    if (!d_) return;
    try {
      fail("lariat::deferred_upgrade", "destroyed without a decision");
    } catch (...) {
      // Already decided elsewhere, or init threw: nothing to end.
    }
  }

  std::shared_ptr<detail::deferral> d_;
  std::optional<State> *slot_ = nullptr;  // the box outlives the deferral
};

namespace detail {
/** A view of |f| for the C API, which copies the payload. */
inline lariat_frame to_c(const frame &f) noexcept {
  lariat_frame raw{};
  raw.opcode = static_cast<std::uint32_t>(f.op);
  raw.flags = (f.compress ? 0u : LARIAT_FRAME_NO_COMPRESS) |
              (f.local ? LARIAT_FRAME_LOCAL : 0u);
  raw.close_code = f.close_code;
  raw.data = reinterpret_cast<const std::uint8_t *>(f.data.data());
  raw.len = f.data.size();
  return raw;
}
}  // namespace detail

/* A typed message for websocket_info, posted with server::post(). */
namespace detail {
class message_base {
 public:
  virtual ~message_base() = default;
  virtual const std::type_info &type() const noexcept = 0;
  virtual void *get() noexcept = 0;

 protected:
  message_base() = default;
  message_base(const message_base &) = delete;
  message_base &operator=(const message_base &) = delete;
};

template <class T>
class message_holder final : public message_base {
 public:
  template <class... Args>
  explicit message_holder(Args &&...args)
      : value_(std::forward<Args>(args)...) {}
  const std::type_info &type() const noexcept override { return typeid(T); }
  void *get() noexcept override { return &value_; }

 private:
  T value_;
};

/** lariat_post()'s free function: lariat calls it exactly once per post. */
inline void free_message(void *msg) noexcept {
  delete static_cast<message_base *>(msg);
}
}  // namespace detail

/** A view of a posted message, borrowed for the websocket_info call (lariat
 * destroys the T right after it returns; move out of `*get<T>()` to keep
 * it). */
class message {
 public:
  /** A view of a posted C message (borrowed for the websocket_info call). */
  message(from_handle_t, void *msg) noexcept
      : m_(static_cast<detail::message_base *>(msg)) {}
  /** The T if this message holds exactly a T (after decay), else nullptr. */
  template <class T>
  [[nodiscard]] T *get() noexcept {
    using U = std::remove_cv_t<std::remove_reference_t<T>>;
    return is<U>() ? static_cast<U *>(m_->get()) : nullptr;
  }
  template <class T>
  /** Whether the message holds a T. */
  [[nodiscard]] bool is() const noexcept {
    return m_->type() == typeid(std::remove_cv_t<std::remove_reference_t<T>>);
  }
  /** The type of the message's value. */
  [[nodiscard]] const std::type_info &type() const noexcept {
    return m_->type();
  }

 private:
  detail::message_base *m_;
};

/** Posts |value| (moved or copied to the heap) to connection |id| of
 * |server|; any thread. Returns false when the server stops (the value is
 * destroyed at once). A connection that has ended or is closing is not an
 * error: the value is destroyed without websocket_info, as lariat_post()
 * says. Throws lariat::error for other failures and std::bad_alloc. */
template <class T>
bool post(lariat_server *server, conn_id id, T &&value) {
  detail::message_base *m =
      new detail::message_holder<std::decay_t<T>>(std::forward<T>(value));
  // lariat frees |m| through free_message on every path, errors included.
  int rc = lariat_post(server, id, m, &detail::free_message);
  if (rc == LARIAT_ERR_STOPPED) return false;
  detail::check(rc);
  return true;
}

/** Publishes |f| (text or binary, payload copied) to every subscriber
 * of |topic| on |server|; any thread (lariat_publish). Returns false when
 * the server stops. Throws lariat::error for a frame that is not text or
 * binary, and for LARIAT_ERR_NOMEM. */
inline bool publish(lariat_server *server, std::string_view topic,
                    const frame &f) {
  lariat_frame raw = detail::to_c(f);
  int rc = lariat_publish(server, topic.data(), topic.size(), &raw);
  if (rc == LARIAT_ERR_STOPPED) return false;
  detail::check(rc);
  return true;
}

namespace detail {
template <class F>
void run_deferred(lariat_server *, void *data) noexcept {
  std::unique_ptr<F> fn(static_cast<F *>(data));  // destroyed after the call
  try {
    (*fn)();
  } catch (...) {
    // Nobody to tell on the loop: catch inside |fn| what matters.
  }
}
}  // namespace detail

/** Runs |fn|() once on |server|'s loop thread (uWebSockets' Loop::defer),
 * in order with the posts of the calling thread; any thread. |fn| is moved
 * (or copied) to the heap and destroyed exactly once: on the loop thread
 * after it ran, or here when the call is refused. Returns false when the
 * server stops (|fn| never runs). Exceptions that leave |fn| are dropped.
 * Throws lariat::error (LARIAT_ERR_NOMEM) and std::bad_alloc. */
template <class F>
bool defer(lariat_server *server, F &&fn) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_invocable_v<Fn &>,
                "defer() takes a callable with no arguments");
  Fn *heap = new Fn(std::forward<F>(fn));
  // Accepted, it runs exactly once and run_deferred deletes it; refused,
  // lariat never calls it and it is ours to delete.
  int rc = lariat_server_defer(server, &detail::run_deferred<Fn>, heap);
  if (rc < 0) {
    delete heap;
    if (rc == LARIAT_ERR_STOPPED) return false;
    detail::check(rc);
  }
  return true;
}

/** A connection: a non-owning view, valid on the loop thread from
 * websocket_init until terminate returns (lariat.h's rule for lariat_conn;
 * it may be kept in the State meanwhile). From other threads, and after
 * terminate, use id() with post(). */
class connection {
 public:
  /** A view of a C connection (valid as lariat_conn is: until terminate). */
  connection(from_handle_t, lariat_conn *c) noexcept : c_(c) {}

  /** Queues |f| (payload copied). false: the connection is closing (a
   * close frame was already sent). Throws lariat::error for an invalid
   * frame (bad close code, control payload over 125 bytes...). */
  bool reply(const frame &f) const {
    lariat_frame raw = detail::to_c(f);
    int rc = lariat_reply(c_, &raw);
    // Expected in normal operation: the peer closes, or reads too slowly.
    if (rc == LARIAT_ERR_CLOSING || rc == LARIAT_ERR_BACKPRESSURE) return false;
    detail::check(rc);
    return true;
  }
  /** Sends a text message; false when the connection is closing or over its cap. */
  bool send_text(std::string_view text) const {
    return reply(frame::text(text));
  }
  /** Sends a binary message; false when the connection is closing or over its cap. */
  bool send_binary(std::string_view bytes) const {
    return reply(frame::binary(bytes));
  }
  /** Sends |len| bytes at |data| as a binary message; false when closing or over the cap. */
  bool send_binary(const void *data, std::size_t len) const {
    return reply(
        frame::binary(std::string_view(static_cast<const char *>(data), len)));
  }
  /** Sends a ping; false when the connection is closing. */
  bool ping(std::string_view payload = {}) const {
    return reply(frame::ping(payload));
  }
  /** Sends a pong; false when the connection is closing. */
  bool pong(std::string_view payload = {}) const {
    return reply(frame::pong(payload));
  }
  /** Starts the close handshake; terminate gets reason_kind::shutdown.
   * close() sends no code (Cowboy's `close`). */
  bool close() const { return reply(frame::close()); }
  /** Starts the close handshake with |code| and |reason|; false when already closing. */
  bool close(std::uint16_t code, std::string_view reason = {}) const {
    return reply(frame::close(code, reason));
  }
  /** false: the connection is closing. */
  bool set_idle_timeout(std::chrono::milliseconds ms) const {
    int rc = lariat_conn_set_idle_timeout(c_, detail::to_ms(ms));
    if (rc == LARIAT_ERR_CLOSING) return false;
    detail::check(rc);
    return true;
  }

  /** Changes the largest frame/message accepted from now on (Cowboy's
   * set_options). false: the connection is closing. */
  bool set_max_frame_size(std::uint64_t bytes) const {
    int rc = lariat_conn_set_max_frame_size(c_, bytes);
    if (rc == LARIAT_ERR_CLOSING) return false;
    detail::check(rc);
    return true;
  }
  /** Where the connection was accepted from (also in terminate); a "::"
   * listener shows IPv4 peers as "::ffff:a.b.c.d". */
  [[nodiscard]] endpoint peer() const {
    char buf[64];
    endpoint ep;
    detail::check(lariat_conn_peer(c_, buf, sizeof buf, &ep.port));
    ep.address = buf;
    return ep;
  }
  /** The path of the request that opened it, valid until terminate
   * returns. */
  [[nodiscard]] std::string_view path() const noexcept {
    std::size_t len = 0;
    const char *p = lariat_conn_path(c_, &len);
    return detail::view(p, len);
  }

  /** The connection's id, for server::post() from any thread. */
  [[nodiscard]] conn_id id() const noexcept { return lariat_conn_get_id(c_); }
  /** The WebSocket version of the handshake (13, 8 or 7). */
  [[nodiscard]] int version() const noexcept { return lariat_conn_version(c_); }
  /** Whether permessage-deflate was negotiated. */
  [[nodiscard]] bool compressed() const noexcept {
    return lariat_conn_compressed(c_) != 0;
  }
  /** Whether the connection is hibernating. */
  [[nodiscard]] bool hibernating() const noexcept {
    return lariat_conn_hibernating(c_) != 0;
  }
  /** Bytes queued for the peer (uWebSockets' getBufferedAmount). */
  [[nodiscard]] std::size_t buffered_amount() const noexcept {
    return lariat_conn_buffered_amount(c_);
  }
  /** Cowboy's `active`: false stops reading from the peer. false when the
   * connection is closing. */
  bool set_active(bool active) const {
    int rc = lariat_conn_set_active(c_, active ? 1 : 0);
    if (rc == LARIAT_ERR_CLOSING) return false;
    detail::check(rc);
    return true;
  }
  /** "TLSv1.3", "TLSv1.2"; empty on a plain connection. */
  [[nodiscard]] std::optional<std::string_view> tls_version() const noexcept {
    const char *p = lariat_conn_tls_version(c_);
    if (!p) return std::nullopt;
    return std::string_view(p);
  }
  /** Whether the TLS handshake resumed a session
   * (lariat_conn_tls_resumed()). */
  [[nodiscard]] bool tls_resumed() const noexcept {
    return lariat_conn_tls_resumed(c_) != 0;
  }
  /** The subprotocol chosen, if any. */
  [[nodiscard]] std::optional<std::string_view> protocol() const noexcept {
    const char *p = lariat_conn_protocol(c_);
    if (!p) return std::nullopt;
    return std::string_view(p);
  }
  /** Topics (lariat.h, "Topics"). Subscribes to |topic| (copied);
   * subscribing again is no error. false: the connection is closing. The
   * subscriptions end by themselves before terminate. */
  bool subscribe(std::string_view topic) const {
    int rc = lariat_subscribe(c_, topic.data(), topic.size());
    if (rc == LARIAT_ERR_CLOSING) return false;
    detail::check(rc);
    return true;
  }
  /** false: it was not subscribed to |topic|. */
  bool unsubscribe(std::string_view topic) const {
    int rc = lariat_unsubscribe(c_, topic.data(), topic.size());
    if (rc == LARIAT_ERR_NOT_FOUND) return false;
    detail::check(rc);
    return true;
  }
  /** Publishes |f| (text or binary, payload copied) to every subscriber of
   * |topic| but this connection (a chat line to the others in the room);
   * returns how many it was queued for. Throws lariat::error for a frame
   * that is not text or binary. */
  std::size_t publish(std::string_view topic, const frame &f) const {
    lariat_frame raw = detail::to_c(f);
    return static_cast<std::size_t>(detail::check(
        lariat_conn_publish(c_, topic.data(), topic.size(), &raw)));
  }
  /** Publishes a text message to |topic|'s subscribers but this one; how many it reached. */
  std::size_t publish_text(std::string_view topic,
                           std::string_view text) const {
    return publish(topic, frame::text(text));
  }
  /** Publishes a binary message to |topic|'s subscribers but this one; how many it reached. */
  std::size_t publish_binary(std::string_view topic,
                             std::string_view bytes) const {
    return publish(topic, frame::binary(bytes));
  }
  /** Publishes |len| bytes at |data| to |topic|'s subscribers but this one. */
  std::size_t publish_binary(std::string_view topic, const void *data,
                             std::size_t len) const {
    return publish(topic, frame::binary(std::string_view(
                              static_cast<const char *>(data), len)));
  }
  /** Published messages dropped for this connection because its queued
   * output was at its cap (upgrade_base::max_queued() with
   * LARIAT_BACKPRESSURE_REFUSE). */
  [[nodiscard]] std::uint64_t dropped() const noexcept {
    return lariat_conn_dropped(c_);
  }
  /** The server, e.g. for lariat::post() to other connections. */
  [[nodiscard]] lariat_server *server_handle() const noexcept {
    return lariat_conn_server(c_);
  }
  /** The C connection. */
  [[nodiscard]] lariat_conn *handle() const noexcept { return c_; }

 private:
  lariat_conn *c_;
};

/* ------------------------------------------------------------------ */
/* Handlers                                                            */
/* ------------------------------------------------------------------ */

/** What a websocket_* callback returns. A crash is an exception. */
enum class result : int {
  ok = LARIAT_OK,
  /** Give back the connection's buffers until its next activity. */
  hibernate = LARIAT_HIBERNATE,
  /** Close with 1000; terminate gets reason_kind::shutdown. */
  shutdown = LARIAT_SHUTDOWN
};

/** A Cowboy-style handler with a typed per-connection State. One object
 * serves every connection of its route, on the loop thread; the server
 * owns it and destroys it after the C server. Override what you need; the
 * defaults accept the upgrade and ignore everything. */
template <class State = std::monostate>
class handler {
 public:
  /** The per-connection state type. */
  using state_type = State;
  /** The upgrade type init gets. */
  using upgrade_type = upgrade<State>;

  virtual ~handler() = default;

  /** Look at the request; set options or emplace_state() on |up| to
   * accept, or up.reply(...) to answer plain HTTP. Throwing answers 500. */
  virtual void init(request &req, upgrade<State> &up) {
    (void)req;
    (void)up;
  }
  /** After the 101 response; may reply. */
  virtual result websocket_init(connection &conn, State &state) {
    (void)conn;
    (void)state;
    return result::ok;
  }
  /** Text, binary (whole messages), ping (already answered), pong. */
  virtual result websocket_handle(connection &conn, const frame &f,
                                  State &state) {
    (void)conn;
    (void)f;
    (void)state;
    return result::ok;
  }
  /** A message posted with server::post(). */
  virtual result websocket_info(connection &conn, message &msg, State &state) {
    (void)conn;
    (void)msg;
    (void)state;
    return result::ok;
  }
  /** Queued output fell back to the low-water mark: send again. */
  virtual result websocket_drain(connection &conn, State &state) {
    (void)conn;
    (void)state;
    return result::ok;
  }
  /** Exactly once for every request that reached init, last. |conn| is
   * null when the request was never upgraded; |state| is null when no
   * state was constructed (init answered plain HTTP or threw before
   * emplace_state()). The state is destroyed right after this returns. */
  virtual void terminate(connection *conn, const reason &why, State *state) {
    (void)conn;
    (void)why;
    (void)state;
  }
};

/** The same callbacks as lambdas; an empty function means the default. */
template <class State = std::monostate>
struct handler_fns {
  /** init(request, upgrade): see handler::init. */
  std::function<void(request &, upgrade<State> &)> init;
  /** See handler::websocket_init. */
  std::function<result(connection &, State &)> websocket_init;
  /** See handler::websocket_handle. */
  std::function<result(connection &, const frame &, State &)> websocket_handle;
  /** See handler::websocket_info. */
  std::function<result(connection &, message &, State &)> websocket_info;
  /** See handler::terminate (connection and state are null when never upgraded). */
  std::function<void(connection *, const reason &, State *)> terminate;
  /** See handler::websocket_drain. */
  std::function<result(connection &, State &)> websocket_drain;
};

namespace detail {

template <class State>
class fns_handler final : public handler<State> {
 public:
  explicit fns_handler(handler_fns<State> fns) : fns_(std::move(fns)) {}
  void init(request &req, upgrade<State> &up) override {
    if (fns_.init) fns_.init(req, up);
  }
  result websocket_init(connection &c, State &s) override {
    return fns_.websocket_init ? fns_.websocket_init(c, s) : result::ok;
  }
  result websocket_handle(connection &c, const frame &f, State &s) override {
    return fns_.websocket_handle ? fns_.websocket_handle(c, f, s) : result::ok;
  }
  result websocket_info(connection &c, message &m, State &s) override {
    return fns_.websocket_info ? fns_.websocket_info(c, m, s) : result::ok;
  }
  result websocket_drain(connection &c, State &s) override {
    return fns_.websocket_drain ? fns_.websocket_drain(c, s) : result::ok;
  }
  void terminate(connection *c, const reason &r, State *s) override {
    if (fns_.terminate) fns_.terminate(c, r, s);
  }

 private:
  handler_fns<State> fns_;
};

/** What handler_data (the route's own slot) and the state pointer (the
 * per-request box) point at. The state is NULL until on_init sets it
 * (lariat.h), so terminate of a request whose box could not be allocated
 * gets NULL. */
struct slot {
  void *route;
  bool owned;  // a box that terminate deletes
};

template <class State>
struct box : slot {
  explicit box(void *r) noexcept : slot{r, true} {}
  std::optional<State> state;
};

class route_base {
 public:
  virtual ~route_base() = default;
  [[nodiscard]] virtual const lariat_handler &table() const noexcept = 0;
  slot self{this, false};
};

/** A route: its handler object at a stable address, and the static
 * trampolines lariat calls. Every trampoline is noexcept and catches
 * everything, so no exception unwinds through C. */
template <class State>
class route final : public route_base {
 public:
  explicit route(std::unique_ptr<handler<State>> h) : h_(std::move(h)) {}

  const lariat_handler &table() const noexcept override {
    static const lariat_handler t = [] {
      lariat_handler x{};
      x.size = sizeof(lariat_handler);
      x.init = &on_init;
      x.websocket_init = &on_websocket_init;
      x.websocket_handle = &on_websocket_handle;
      x.websocket_info = &on_websocket_info;
      x.terminate = &on_terminate;
      x.websocket_drain = &on_websocket_drain;
      return x;
    }();
    return t;
  }
  [[nodiscard]] handler<State> &get() noexcept { return *h_; }

 private:
  static route &of(void *state) noexcept {
    auto *s = static_cast<slot *>(state);
    return *static_cast<route *>(static_cast<route_base *>(s->route));
  }
  static State *state_of(void *state) noexcept {
    auto *s = static_cast<slot *>(state);
    if (!s || !s->owned) return nullptr;
    auto *b = static_cast<box<State> *>(s);
    return b->state ? &*b->state : nullptr;
  }

  static int on_init(lariat_req *req, lariat_upgrade *up,
                     void *handler_data) noexcept {
    route &r = of(handler_data);
    auto *b = new (std::nothrow) box<State>(static_cast<route_base *>(&r));
    if (!b) {
      // terminate then gets a NULL state and skips the handler, whose
      // init never ran.
      lariat_upgrade_set_crash(up, "std::bad_alloc",
                               "no memory for the connection state");
      return LARIAT_CRASH;
    }
    // As slot*, the type every callback casts the state back to;
    // terminate deletes it.
    lariat_upgrade_set_state(up, static_cast<slot *>(b));
    std::shared_ptr<deferral> deferred;
    try {
      request rq(from_handle, req);
      upgrade<State> u(from_handle, up, &b->state, rq.is_websocket());
      r.h_->init(rq, u);
      if ((deferred = u.deferral())) {
        std::lock_guard<std::mutex> lock(deferred->mu);
        deferred->init_returned = true;
        // Decided already (on another thread, or dropped): say it now.
        return deferred->early >= 0 ? deferred->early : LARIAT_DEFER;
      }
      if (!u.replied() && rq.is_websocket() && !b->state) {
        if constexpr (std::is_default_constructible_v<State>) {
          b->state.emplace();
        } else {
          throw std::logic_error(
              "init accepted the upgrade without emplace_state() and the "
              "state type has no default constructor");
        }
      }
      return LARIAT_OK;
    } catch (...) {
      if (deferred) {
        // init threw after defer(): the crash is the decision, and the
        // deferred_upgrade finds nothing left to end.
        std::lock_guard<std::mutex> lock(deferred->mu);
        deferred->init_returned = true;
        deferred->up = nullptr;
      }
      record_crash(&lariat_upgrade_set_crash, up);
      return LARIAT_CRASH;
    }
  }

  template <class F>
  static int call(lariat_conn *c, void *state, F &&f) noexcept {
    try {
      State *s = state_of(state);
      if (!s) throw std::logic_error("connection without a state");
      connection conn(from_handle, c);
      return static_cast<int>(f(*of(state).h_, conn, *s));
    } catch (...) {
      record_crash(&lariat_conn_set_crash, c);
      return LARIAT_CRASH;
    }
  }

  static int on_websocket_init(lariat_conn *c, void *state) noexcept {
    return call(c, state, [](handler<State> &h, connection &conn, State &s) {
      return h.websocket_init(conn, s);
    });
  }
  static int on_websocket_handle(lariat_conn *c, const lariat_frame *f,
                                 void *state) noexcept {
    return call(c, state, [f](handler<State> &h, connection &conn, State &s) {
      frame fr(from_handle, f);
      return h.websocket_handle(conn, fr, s);
    });
  }
  static int on_websocket_info(lariat_conn *c, void *msg,
                               void *state) noexcept {
    // lariat frees |msg| with free_message after this returns.
    return call(c, state, [msg](handler<State> &h, connection &conn, State &s) {
      message m(from_handle, msg);
      return h.websocket_info(conn, m, s);
    });
  }
  static int on_websocket_drain(lariat_conn *c, void *state) noexcept {
    return call(c, state, [](handler<State> &h, connection &conn, State &s) {
      return h.websocket_drain(conn, s);
    });
  }
  static void on_terminate(lariat_conn *c, const lariat_reason *why,
                           void *state) noexcept {
    auto *s = static_cast<slot *>(state);
    if (!s) return;  // no box: the handler never saw this request
    try {
      reason rs(from_handle, why);
      if (c) {
        connection conn(from_handle, c);
        of(state).h_->terminate(&conn, rs, state_of(state));
      } else {
        of(state).h_->terminate(nullptr, rs, state_of(state));
      }
    } catch (...) {
      // The connection is over; there is nobody left to tell.
    }
    // A client's state lives on while another attempt follows.
    if (s->owned && !why->retrying) delete static_cast<box<State> *>(s);
  }

  std::unique_ptr<handler<State>> h_;
};

struct server_deleter {
  void operator()(lariat_server *s) const noexcept { lariat_server_del(s); }
};

inline void call_on_bridge(lariat_server *, const lariat_bridge_event *ev,
                           void *data) noexcept;

inline void call_on_stopped(lariat_server *, void *data) noexcept {
  try {
    auto &fn = *static_cast<std::function<void()> *>(data);
    if (fn) fn();
  } catch (...) {
    // The server is done; nobody to tell.
  }
}

template <class H, class = void>
struct handler_state {};
template <class H>
struct handler_state<H, std::void_t<typename H::state_type>> {
  using type = typename H::state_type;
};

}  // namespace detail

/* ------------------------------------------------------------------ */
/* Bridge (Redis)                                                      */
/* ------------------------------------------------------------------ */

/** A bridge event (lariat_bridge_event), its views borrowed for the
 * handler's call. */
struct bridge_event {
  /** lariat_bridge_event_kind; each value equals the LARIAT_BRIDGE_* one. */
  enum class kind_type { up = LARIAT_BRIDGE_UP, down = LARIAT_BRIDGE_DOWN,
                         gap = LARIAT_BRIDGE_GAP };
  /** lariat_bridge_link; each value equals the LARIAT_BRIDGE_* one. */
  enum class link_type { subscriber = LARIAT_BRIDGE_SUBSCRIBER,
                         publisher = LARIAT_BRIDGE_PUBLISHER };
  kind_type kind;           ///< up, down or gap
  link_type link;           ///< up, down
  int error;                ///< down: a lariat or libuv code
  std::string_view detail;  ///< down
  std::string_view topic;   ///< gap
  std::uint64_t origin;     ///< gap: the publishing process
  std::uint64_t missed;     ///< gap: messages missed
  std::uint64_t seq;        ///< gap: the sequence number that showed it
  std::uint64_t reconnects; ///< recoveries so far
};

/** The bridge's counters (lariat_bridge_stats). */
using bridge_stats = lariat_bridge_stats;

namespace detail {
inline void call_on_bridge(lariat_server *, const lariat_bridge_event *ev,
                           void *data) noexcept {
  try {
    auto &fn = *static_cast<std::function<void(const bridge_event &)> *>(data);
    bridge_event e{static_cast<bridge_event::kind_type>(ev->kind),
                   static_cast<bridge_event::link_type>(ev->link),
                   ev->error,
                   ev->detail ? std::string_view(ev->detail) : std::string_view(),
                   detail::view(ev->topic, ev->topic_len),
                   ev->origin,
                   ev->missed,
                   ev->seq,
                   ev->reconnects};
    if (fn) fn(e);
  } catch (...) {
    // Nothing may unwind into lariat; the bridge goes on.
  }
}
}  // namespace detail

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

/** A server and the handler objects of its routes. Move-only. Everything
 * but post(), publish*(), defer() and stop_async() belongs to the loop
 * thread (construct it on
 * the thread that will run the loop, or before that thread starts).
 * Destruction (or close()) stops the server, runs the loop until every
 * terminate has run, frees the C server, then the handler objects; it
 * must not happen inside a callback or while run() runs on another thread
 * (stop_async() and join it first). */
class server {
 public:
  /** On a loop of its own (run it with run()), or on |loop| when non-null.
   * |opts| is copied. */
  explicit server(uv_loop_s *loop = nullptr) { open(loop, nullptr); }
  /** A server on a loop of its own, with |opts|. */
  explicit server(const options &opts) { open(nullptr, opts.handle()); }
  /** A server on the caller's libuv |loop| (run by the caller), with |opts|. */
  server(uv_loop_s *loop, const options &opts) { open(loop, opts.handle()); }
  ~server() { close(); }

  server(const server &) = delete;
  server &operator=(const server &) = delete;
  /** Move-constructs; |other| is left empty. */
  server(server &&other) noexcept
      : routes_(std::move(other.routes_)),
        on_stopped_(std::move(other.on_stopped_)),
        on_bridge_(std::move(other.on_bridge_)),
        ptr_(std::move(other.ptr_)) {}
  /** Move-assigns; the left side's server is stopped and freed first. */
  server &operator=(server &&other) noexcept {
    server tmp(std::move(other));
    swap(tmp);
    return *this;  // tmp (our old server) closes in the right order
  }
  /** Swaps two servers. */
  void swap(server &other) noexcept {
    routes_.swap(other.routes_);
    on_stopped_.swap(other.on_stopped_);
    on_bridge_.swap(other.on_bridge_);
    ptr_.swap(other.ptr_);
  }

  /** Idempotent. The C server first: its terminates still call the
   * handler objects, which go last. */
  void close() noexcept {
    ptr_.reset();
    routes_.clear();
    on_stopped_.reset();
    on_bridge_.reset();
  }

  /** Routes |path| (exact, or "*") to |h|, which the server keeps; returns
   * it. Throws lariat::error (LARIAT_ERR_EXISTS...). */
  template <class H>
  H &route(const std::string &path, std::unique_ptr<H> h) {
    using State = typename detail::handler_state<H>::type;
    static_assert(std::is_base_of_v<handler<State>, H>,
                  "H must derive from lariat::handler<State>");
    if (!h) throw error(LARIAT_ERR_INVALID_ARGUMENT);
    H &ref = *h;
    add(path, std::make_unique<detail::route<State>>(std::move(h)));
    return ref;
  }
  /** Constructs the handler H in place from |args|. */
  template <class H, class... Args>
  H &route(const std::string &path, Args &&...args) {
    return route(path, std::make_unique<H>(std::forward<Args>(args)...));
  }
  /** Lambdas. */
  template <class State>
  void route(const std::string &path, handler_fns<State> fns) {
    route(path, std::make_unique<detail::fns_handler<State>>(std::move(fns)));
  }

  /** A client (lariat_connect) to |url| with handler |h| (kept by the
   * server; its init is not used) and |initial| as the state, which lives
   * across reconnects until the last terminate. Returns its id, for
   * post() from any thread. Loop thread, or before run() (it adds to the
   * handlers the server keeps). Throws lariat::error. */
  template <class H>
  conn_id connect(const std::string &url, std::unique_ptr<H> h,
                  const client_options &opts = client_options(),
                  typename detail::handler_state<H>::type initial = {}) {
    using State = typename detail::handler_state<H>::type;
    static_assert(std::is_base_of_v<handler<State>, H>,
                  "H must derive from lariat::handler<State>");
    if (!h) throw error(LARIAT_ERR_INVALID_ARGUMENT);
    lariat_server *s = checked();
    routes_.push_back(std::make_unique<detail::route<State>>(std::move(h)));
    detail::route_base &rb = *routes_.back();
    auto b = std::make_unique<detail::box<State>>(
        static_cast<detail::route_base *>(&rb));
    b->state.emplace(std::move(initial));
    conn_id id = 0;
    int rc = lariat_connect(s, url.c_str(), &rb.table(), &rb.self,
                            opts.handle(), static_cast<detail::slot *>(b.get()),
                            &id);
    if (rc < 0) {
      routes_.pop_back();
      throw error(rc);
    }
    b.release();  // terminate deletes it
    return id;
  }
  /** Lambdas. */
  template <class State>
  conn_id connect(const std::string &url, handler_fns<State> fns,
                  const client_options &opts = client_options(),
                  State initial = {}) {
    return connect(url,
                   std::make_unique<detail::fns_handler<State>>(std::move(fns)),
                   opts, std::move(initial));
  }
  /** Any thread: ends client |id| for good (lariat_client_close). */
  void close_client(conn_id id) const {
    detail::check(lariat_client_close(checked(), id));
  }

  /** Throws lariat::error: LARIAT_ERR_INVALID_ARGUMENT for a bad host or
   * port, LARIAT_ERR_STOPPED, or a libuv code (UV_EADDRINUSE...). */
  void listen(const std::string &host, int port) {
    detail::check(lariat_server_listen(checked(), host.c_str(), port));
  }
  /** Listens for wss:// with |cfg| (the server keeps a reference).
   * Throws lariat::error as listen(), or LARIAT_ERR_TLS when |cfg| has no
   * certificate. */
  void listen_tls(const std::string &host, int port, const tls &cfg) {
    detail::check(
        lariat_server_listen_tls(checked(), host.c_str(), port, cfg.handle()));
  }
  /** The port of the first plain listener (what port 0 picked). */
  [[nodiscard]] int port() const {
    return detail::check(lariat_server_port(checked()));
  }
  /** The port of the first TLS listener. */
  [[nodiscard]] int tls_port() const {
    return detail::check(lariat_server_tls_port(checked()));
  }
  /** Runs the loop until the server has stopped and the loop is idle. */
  void run() { detail::check(lariat_server_run(checked())); }
  /** Loop thread (also inside callbacks). */
  void stop() { detail::check(lariat_server_stop(checked())); }
  /** Any thread. false: the server already stops. */
  bool stop_async() {
    int rc = lariat_server_stop_async(checked());
    if (rc == LARIAT_ERR_STOPPED) return false;
    detail::check(rc);
    return true;
  }
  /** |fn| runs once on the loop thread when the server has stopped: every
   * connection ended, every terminate ran (a way to know a stop_async()
   * is done). Loop thread; replaces an earlier one. Exceptions from |fn|
   * are dropped. */
  void on_stopped(std::function<void()> fn) {
    auto holder = std::make_unique<std::function<void()>>(std::move(fn));
    detail::check(lariat_server_on_stopped(
        checked(), &detail::call_on_stopped, holder.get()));
    on_stopped_ = std::move(holder);  // the old one is no longer called
  }
  /** Joins the fleet on the Redis at |url| (lariat_server_join_redis):
   * topics are shared with every server joined with the same |prefix|.
   * Throws lariat::error (LARIAT_ERR_INVALID_ARGUMENT for a bad URL...).
   * Loop thread; with several loops, before run(). */
  void join_redis(const std::string &url, const std::string &prefix = "lariat:") {
    detail::check(lariat_server_join_redis(checked(), url.c_str(), prefix.c_str()));
  }
  /** |fn| gets every bridge event (up, down, gap) on the first loop's
   * thread; replaces an earlier one; exceptions from |fn| are dropped.
   * After join_redis(). */
  void on_bridge(std::function<void(const bridge_event &)> fn) {
    auto holder =
        std::make_unique<std::function<void(const bridge_event &)>>(std::move(fn));
    detail::check(lariat_server_on_bridge(checked(), &detail::call_on_bridge,
                                          holder.get()));
    on_bridge_ = std::move(holder);
  }
  /** The bridge's counters; any thread. Throws LARIAT_ERR_NOT_FOUND when
   * not joined. */
  [[nodiscard]] bridge_stats bridge() const {
    bridge_stats s{};
    detail::check(lariat_server_bridge_stats(checked(), &s, sizeof s));
    return s;
  }
  /** Any thread; see lariat::post(). */
  template <class T>
  bool post(conn_id id, T &&value) const {
    return lariat::post(checked(), id, std::forward<T>(value));
  }
  /** Any thread; see lariat::defer(). */
  template <class F>
  bool defer(F &&fn) const {
    return lariat::defer(checked(), std::forward<F>(fn));
  }
  /** Any thread: to every subscriber of |topic|; see lariat::publish().
   * false: the server stops. From another thread the message goes through
   * the same queue as post(), so it reaches each subscriber in the order
   * the thread published. */
  bool publish(std::string_view topic, const frame &f) const {
    return lariat::publish(checked(), topic, f);
  }
  /** Any thread: a text message to every subscriber of |topic|; false once stopped. */
  bool publish_text(std::string_view topic, std::string_view text) const {
    return publish(topic, frame::text(text));
  }
  /** Any thread: a binary message to every subscriber of |topic|; false once stopped. */
  bool publish_binary(std::string_view topic, std::string_view bytes) const {
    return publish(topic, frame::binary(bytes));
  }
  /** Any thread: |len| bytes at |data| to every subscriber of |topic|. */
  bool publish_binary(std::string_view topic, const void *data,
                      std::size_t len) const {
    return publish(topic, frame::binary(std::string_view(
                              static_cast<const char *>(data), len)));
  }
  /** How many connections subscribe to |topic|. Loop thread. */
  [[nodiscard]] std::size_t subscribers(std::string_view topic) const {
    return lariat_server_subscribers(checked(), topic.data(), topic.size());
  }
  /** How many connections are open. */
  [[nodiscard]] std::size_t connection_count() const {
    return lariat_server_connection_count(checked());
  }
  /** The libuv loop (the first one). */
  [[nodiscard]] uv_loop_s *loop() const {
    return lariat_server_loop(checked());
  }
  /** The C server. */
  [[nodiscard]] lariat_server *handle() const noexcept { return ptr_.get(); }
  /** False once moved from. */
  explicit operator bool() const noexcept { return ptr_ != nullptr; }

 private:
  void open(uv_loop_s *loop, const lariat_options *opts) {
    lariat_server *s = nullptr;
    detail::check(lariat_server_new(&s, loop, opts));
    ptr_.reset(s);
  }
  lariat_server *checked() const {
    if (!ptr_) throw error(LARIAT_ERR_INVALID_STATE);  // moved from, closed
    return ptr_.get();
  }
  void add(const std::string &path, std::unique_ptr<detail::route_base> r) {
    lariat_server *s = checked();
    // Stored before registration and rolled back on failure, so lariat
    // never holds a pointer the server does not own.
    routes_.push_back(std::move(r));
    detail::route_base &rb = *routes_.back();
    int rc = lariat_server_route(s, path.c_str(), &rb.table(), &rb.self);
    if (rc < 0) {
      routes_.pop_back();
      throw error(rc);
    }
  }

  // Declared before ptr_ only for documentation: close() orders the
  // teardown explicitly.
  std::vector<std::unique_ptr<detail::route_base>> routes_;
  std::unique_ptr<std::function<void()>> on_stopped_;  // stable address
  std::unique_ptr<std::function<void(const bridge_event &)>> on_bridge_;
  std::unique_ptr<lariat_server, detail::server_deleter> ptr_;
};

/** Swaps two servers. */
inline void swap(server &a, server &b) noexcept { a.swap(b); }

/** The running library's version ("0.1.0"). */
[[nodiscard]] inline std::string_view version() noexcept {
  const lariat_info *info = lariat_version(0);
  return info && info->version_str ? std::string_view(info->version_str)
                                   : std::string_view();
}

}  // namespace lariat

#endif  // C++17
#endif  // LARIAT_HPP
