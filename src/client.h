// Clients (lariat_connect): the URL and options, the reconnect policy and
// its timer, the messages posted while no connection is open, and the
// attempt under way. A session lives on one loop, in that loop's
// |clients|, from its connect letter until its last terminate; each
// attempt is an ordinary lariat_conn in the client role with the
// session's id, so lariat_post() and the timer heap work as for accepted
// connections.
#ifndef LARIAT_CLIENT_H
#define LARIAT_CLIENT_H

#include <lariat/lariat.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client_tls.h"
#include "deflate.h"
#include "handshake.h"
#include "mailbox.h"
#include "server.h"

struct lariat_client_options {
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::string> protocols;
  lariat::detail::DeflateConfig deflate;
  uint64_t max_frame_size = 0;  // 0: the server's option
  uint64_t connect_ms = 10000;
  uint64_t handshake_ms = 10000;
  bool reconnect = false;
  uint64_t base_ms = 0, max_ms = 0;
  double multiplier = 1, jitter = 0;
  unsigned max_attempts = 0;
  size_t offline_max = 256;
  // wss://: null trusts the system's CAs.
  std::shared_ptr<const lariat::detail::ClientTls> tls_trust;
  std::string tls_server_name;  // "": the URL's host
  bool tls_verify = true;
};

namespace lariat::detail {

struct Url {
  bool tls = false;
  std::string host;         // without brackets
  uint16_t port = 0;
  std::string target;       // path and query, "/" at least
  std::string host_header;  // host[:port] as the Host header wants it
};
// "ws://host[:port][/path][?query]" or "wss://...". False when it does not
// parse (scheme, empty host, port outside 1..65535, a fragment, spaces or
// control bytes).
bool parse_ws_url(std::string_view text, Url *out);

// The upgrade request of RFC 6455 4.1.
std::string client_request(const Url &url, std::string_view key,
                           const lariat_client_options &opts);

// What the response of a client handshake settled.
struct ClientAgreement {
  std::string protocol;  // "" when the server picked none
  bool deflate = false;
  DeflateParams deflate_params;  // in the codec's terms (ours = "server")
};
// RFC 6455 4.1 (and RFC 7692 for the extension): nullptr when |resp| opens
// the connection, else what is wrong with it.
const char *check_response(int status, const Request &resp,
                           std::string_view key,
                           const lariat_client_options &opts,
                           ClientAgreement *out);

class ClientSession {
 public:
  ClientSession(lariat_server *loop, lariat_conn_id id, Url url,
                lariat_client_options opts, const lariat_handler &handler,
                void *handler_data, void *state);
  ~ClientSession();
  // Loop thread, from the connect letter: registers the session and
  // starts the first attempt. False when out of memory (nothing started;
  // the caller runs abandon()).
  bool start();
  // The connect letter was never delivered (the server went away first):
  // terminate with LARIAT_REASON_SHUTDOWN, then gone.
  void abandon();
  // The connection of the current attempt ended; |reason| is what its
  // terminate gets (retrying, attempt and posts_dropped are filled here).
  // Runs terminate, then retries or ends the session.
  void attempt_ended(lariat_conn *conn, lariat_reason *reason);
  // A connection of this session opened: the backoff starts again and the
  // messages posted meanwhile are delivered.
  void opened(lariat_conn *conn);
  // A letter for the client while no connection of it is open.
  void hold(const Letter &letter);
  // lariat_client_close() (|server_stopping| false), or the loop stopping.
  void close(bool server_stopping);

  const Url &url() const { return url_; }
  const lariat_client_options &options() const { return opts_; }
  const Route *route() const { return &route_; }
  void *state() const { return state_; }
  void set_state(void *s) { state_ = s; }
  lariat_conn_id id() const { return id_; }
  uint64_t connect_deadline() const { return connect_deadline_; }
  // The Sec-WebSocket-Key of the current attempt.
  const std::string &key() const { return key_; }
  // wss://: the latest session the server issued, which the next attempt
  // resumes (a reconnect storm then costs the server no full handshakes).
  // Takes |session|.
  void keep_tls_session(SSL_SESSION *session);

 private:
  struct Resolve;
  enum class Phase { kIdle, kResolving, kConnecting, kWaiting, kEnded };

  void attempt();
  void on_resolved(int status, addrinfo *res);
  void connect_next();
  // An attempt that ended without a connection of its own.
  void fail_early(int socket_error, const char *failure);
  void finish_attempt(lariat_conn *conn, lariat_reason *reason, bool retry);
  bool may_retry(const lariat_reason &reason) const;
  uint64_t backoff_ms();
  void free_addresses();
  void end();
  // The session's one timer: the connect timeout while resolving, then
  // the wait before the next address or attempt.
  void arm(uint64_t ms);
  void on_timer();

  lariat_server *loop_;
  lariat_conn_id id_;
  Url url_;
  lariat_client_options opts_;
  Route route_;
  void *state_;
  std::string key_;
  Phase phase_ = Phase::kIdle;
  unsigned attempts_ = 0;  // started so far
  unsigned failures_ = 0;  // attempts ended since the last open
  uint64_t posts_dropped_ = 0;
  uint64_t connect_deadline_ = 0;
  std::deque<Letter> offline_;
  lariat_conn *conn_ = nullptr;  // the current attempt's, once it exists
  Resolve *resolve_ = nullptr;   // the resolution in flight
  addrinfo *addresses_ = nullptr;
  SSL_SESSION *tls_session_ = nullptr;
  const addrinfo *next_address_ = nullptr;  // to try when one fails
  bool closing_ = false;  // no more attempts
  bool timer_open_ = false;
  uv_timer_t timer_;
};

}  // namespace lariat::detail

#endif
