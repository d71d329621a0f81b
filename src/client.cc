#include "client.h"

#include <cstdio>
#include <cstring>
#include <new>

#include "connection.h"
#include "guard.h"
#include "http_syntax.h"
#include "sha1_base64.h"
#include "tcp_transport.h"
#include "tls_transport.h"

namespace lariat::detail {

bool parse_ws_url(std::string_view text, Url *out) {
  Url url;
  if (text.substr(0, 5) == "ws://") {
    text.remove_prefix(5);
  } else if (text.substr(0, 6) == "wss://") {
    url.tls = true;
    text.remove_prefix(6);
  } else {
    return false;
  }
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '#') return false;
  }
  size_t end = text.find_first_of("/?");
  std::string_view authority = text.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? "" : text.substr(end);
  if (authority.find('@') != std::string_view::npos) return false;
  std::string_view host, port;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return false;
      port = after.substr(1);
    }
    if (host.find(':') == std::string_view::npos) return false;
  } else {
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (host.empty()) return false;
  unsigned long p = url.tls ? 443 : 80;
  bool default_port = true;
  if (!port.empty()) {
    p = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || p > 65535) return false;
      p = p * 10 + static_cast<unsigned long>(c - '0');
    }
    if (p == 0 || p > 65535) return false;
    default_port = p == (url.tls ? 443u : 80u);
  } else if (authority.size() && authority.back() == ':') {
    return false;
  }
  url.host.assign(host.data(), host.size());
  url.port = static_cast<uint16_t>(p);
  url.target = rest.empty() ? "/" : std::string(rest);
  if (url.target[0] == '?') url.target.insert(0, "/");
  bool v6 = url.host.find(':') != std::string::npos;
  url.host_header = v6 ? "[" + url.host + "]" : url.host;
  if (!default_port) url.host_header += ":" + std::to_string(p);
  *out = std::move(url);
  return true;
}

std::string client_request(const Url &url, std::string_view key,
                           const lariat_client_options &opts) {
  std::string r = "GET " + url.target + " HTTP/1.1\r\nHost: " +
                  url.host_header +
                  "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: ";
  r.append(key.data(), key.size());
  r += "\r\nSec-WebSocket-Version: 13\r\n";
  if (!opts.protocols.empty()) {
    r += "Sec-WebSocket-Protocol: ";
    for (size_t i = 0; i < opts.protocols.size(); ++i) {
      if (i) r += ", ";
      r += opts.protocols[i];
    }
    r += "\r\n";
  }
  if (opts.deflate.enabled)
    r += "Sec-WebSocket-Extensions: " + deflate_offer(opts.deflate) + "\r\n";
  for (const auto &h : opts.headers) r += h.first + ": " + h.second + "\r\n";
  r += "\r\n";
  return r;
}

const char *check_response(int status, const Request &resp,
                           std::string_view key,
                           const lariat_client_options &opts,
                           ClientAgreement *out) {
  if (status != 101) return "the server did not answer 101";
  if (!has_token(resp, "upgrade", "websocket"))
    return "no Upgrade: websocket in the response";
  if (!has_token(resp, "connection", "upgrade"))
    return "no Connection: upgrade in the response";
  std::vector<std::string_view> accept = resp.values("sec-websocket-accept");
  if (accept.size() != 1 || accept[0] != accept_key(key))
    return "wrong Sec-WebSocket-Accept";
  std::vector<std::string_view> protocol = resp.values("sec-websocket-protocol");
  if (protocol.size() > 1) return "more than one Sec-WebSocket-Protocol";
  if (protocol.size() == 1) {
    bool offered = false;
    for (const std::string &p : opts.protocols) offered |= p == protocol[0];
    if (!offered) return "a subprotocol that was not offered";
    out->protocol.assign(protocol[0].data(), protocol[0].size());
  }
  std::string why;
  if (!accept_deflate_response(resp.values("sec-websocket-extensions"),
                               opts.deflate, &out->deflate,
                               &out->deflate_params, &why)) {
    static thread_local std::string last;
    last = why;
    return last.c_str();
  }
  return nullptr;
}

// ---------------------------------------------------------------- session

// A resolution outlives a session that gave up on it (timeout, close):
// uv_cancel() cannot stop one already running in the thread pool.
struct ClientSession::Resolve {
  uv_getaddrinfo_t req;
  lariat_server *loop;
  ClientSession *session;  // nullptr once abandoned
};

ClientSession::ClientSession(lariat_server *loop, lariat_conn_id id, Url url,
                             lariat_client_options opts,
                             const lariat_handler &handler, void *handler_data,
                             void *state)
    : loop_(loop),
      id_(id),
      url_(std::move(url)),
      opts_(std::move(opts)),
      route_{handler, handler_data},
      state_(state) {
  if (opts_.max_frame_size == 0)
    opts_.max_frame_size = loop->options.max_frame_size;
}

ClientSession::~ClientSession() {
  SSL_SESSION_free(tls_session_);
  free_addresses();
  for (const Letter &l : offline_) l.discard();
}

bool ClientSession::start() {
  try {
    loop_->clients.emplace(id_, this);
  } catch (...) {
    return false;
  }
  if (uv_timer_init(loop_->loop, &timer_) != 0) {
    loop_->clients.erase(id_);
    return false;
  }
  timer_.data = this;
  timer_open_ = true;
  ++loop_->open_handles;
  if (loop_->stopping) {
    closing_ = true;
    lariat_reason reason = {};
    reason.kind = LARIAT_REASON_SHUTDOWN;
    finish_attempt(nullptr, &reason, false);
    return true;
  }
  attempt();
  return true;
}

void ClientSession::abandon() {
  lariat_reason reason = {};
  reason.kind = LARIAT_REASON_SHUTDOWN;
  closing_ = true;
  finish_attempt(nullptr, &reason, false);  // deletes this: no timer yet
}

void ClientSession::attempt() {
  ++attempts_;
  conn_ = nullptr;
  free_addresses();
  connect_deadline_ = loop_->now() + opts_.connect_ms;
  phase_ = Phase::kResolving;
  uint8_t nonce[16];
  loop_->mask_keys.fill(nonce, sizeof nonce);
  try {
    key_ = base64_encode(nonce, sizeof nonce);
  } catch (const std::bad_alloc &) {
    fail_early(UV_ENOMEM, "out of memory");
    return;
  }
  // Resolution counts against the connect timeout: the timer covers it,
  // the connection's own deadline the connect after it.
  arm(opts_.connect_ms);
  auto *r = new (std::nothrow) Resolve{{}, loop_, this};
  if (!r) {
    fail_early(UV_ENOMEM, "out of memory");
    return;
  }
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  char port[8];
  std::snprintf(port, sizeof port, "%u", url_.port);
  r->req.data = r;
  int rc = uv_getaddrinfo(
      loop_->loop, &r->req,
      [](uv_getaddrinfo_t *req, int status, addrinfo *res) noexcept {
        auto *r = static_cast<Resolve *>(req->data);
        lariat_server *loop = r->loop;
        ClientSession *self = r->session;
        delete r;
        if (self) {
          self->resolve_ = nullptr;
          guard_callback(nullptr, [&] { self->on_resolved(status, res); });
        } else if (res) {
          uv_freeaddrinfo(res);
        }
        loop->handle_closed();  // counted while it was in flight
        loop->finish_stop_if_idle();
      },
      url_.host.c_str(), port, &hints);
  if (rc != 0) {
    delete r;
    fail_early(rc, "name resolution failed");
    return;
  }
  resolve_ = r;
  ++loop_->open_handles;  // the loop waits for the answer, even stopping
}

void ClientSession::on_resolved(int status, addrinfo *res) {
  if (status < 0) {
    fail_early(status, "name resolution failed");
    return;
  }
  addresses_ = res;
  next_address_ = res;
  connect_next();
}

void ClientSession::connect_next() {
  const addrinfo *ai = next_address_;
  next_address_ = ai->ai_next;
  phase_ = Phase::kConnecting;
  lariat_conn *conn;
  if (url_.tls) {
    const std::string &name =
        opts_.tls_server_name.empty() ? url_.host : opts_.tls_server_name;
    SSL *ssl = opts_.tls_trust->new_ssl(name, opts_.tls_verify);
    if (ssl && tls_session_) SSL_set_session(ssl, tls_session_);
    conn = lariat_conn::create<TlsTransport>(loop_, id_, ssl);
    if (!conn) SSL_free(ssl);
  } else {
    conn = lariat_conn::create<TcpTransport>(loop_, id_);
  }
  if (!conn) {
    fail_early(UV_ENOMEM, "out of memory");
    return;
  }
  try {
    conn->start_client(this);
  } catch (const std::bad_alloc &) {
    conn->destroy();  // no handle yet: nothing else knows of it
    fail_early(UV_ENOMEM, "out of memory");
    return;
  }
  auto *tcp = static_cast<TcpTransport *>(conn->transport());
  int rc = tcp->connect(ai->ai_addr);
  if (rc != 0) {  // no handle: nothing else knows of the connection
    conn->destroy();
    fail_early(rc, "connect failed");
    return;
  }
  conn_ = conn;
  // Failing, the connection closes and its end comes back here.
  loop_->adopt(conn);
}

void ClientSession::keep_tls_session(SSL_SESSION *session) {
  SSL_SESSION_free(tls_session_);
  tls_session_ = session;
}

void ClientSession::arm(uint64_t ms) {
  uv_timer_start(
      &timer_,
      [](uv_timer_t *t) noexcept {
        auto *self = static_cast<ClientSession *>(t->data);
        guard_callback(nullptr, [&] { self->on_timer(); });
      },
      ms, 0);
}

void ClientSession::on_timer() {
  switch (phase_) {
    case Phase::kResolving: {
      // The connect timeout passed while resolving: whatever the answer,
      // it comes too late.
      if (resolve_) {
        resolve_->session = nullptr;
        uv_cancel(reinterpret_cast<uv_req_t *>(&resolve_->req));
        resolve_ = nullptr;
      }
      fail_early(UV_ETIMEDOUT, "connect timeout");
      return;
    }
    case Phase::kWaiting:
      if (next_address_ && loop_->now() < connect_deadline_)
        connect_next();
      else
        attempt();
      return;
    default:
      return;  // a connection's deadline governs the other phases
  }
}

void ClientSession::fail_early(int socket_error, const char *failure) {
  lariat_reason reason = {};
  reason.kind = LARIAT_REASON_HANDSHAKE_FAILED;
  reason.socket_error = socket_error;
  reason.failure = failure;
  ++failures_;
  finish_attempt(nullptr, &reason, may_retry(reason));
}

void ClientSession::attempt_ended(lariat_conn *conn, lariat_reason *reason) {
  conn_ = nullptr;
  // A refused connect with addresses left (IPv6 then IPv4, say) is not the
  // end of the attempt: the next address is tried once this connection is
  // gone (it still holds the id).
  if (!closing_ && !conn->client_connected() && next_address_ &&
      reason->kind == LARIAT_REASON_HANDSHAKE_FAILED && reason->socket_error &&
      loop_->now() < connect_deadline_ && !loop_->stopping) {
    phase_ = Phase::kWaiting;
    arm(0);
    return;
  }
  ++failures_;
  finish_attempt(conn->open_or_was_open() ? conn : nullptr, reason,
                 may_retry(*reason));
}

bool ClientSession::may_retry(const lariat_reason &reason) const {
  return opts_.reconnect && !closing_ && !loop_->stopping &&
         reason.kind != LARIAT_REASON_SHUTDOWN &&
         (opts_.max_attempts == 0 || attempts_ < opts_.max_attempts);
}

uint64_t ClientSession::backoff_ms() {
  // base * multiplier^(failures - 1), capped (no libm for static users).
  double cap = static_cast<double>(opts_.max_ms);
  double d = static_cast<double>(opts_.base_ms);
  for (unsigned i = 1; i < failures_ && d < cap; ++i) d *= opts_.multiplier;
  if (d > cap) d = cap;
  if (opts_.jitter > 0) {
    uint8_t b[4];
    loop_->mask_keys.fill(b, sizeof b);
    uint32_t u = static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[1]) << 8 |
                 static_cast<uint32_t>(b[2]) << 16 | static_cast<uint32_t>(b[3]) << 24;
    double unit = static_cast<double>(u) / 4294967295.0;  // [0, 1]
    d *= 1 - opts_.jitter + 2 * opts_.jitter * unit;
  }
  return static_cast<uint64_t>(d + 0.5);
}

void ClientSession::finish_attempt(lariat_conn *conn, lariat_reason *reason,
                                   bool retry) {
  // A last terminate may stop the server or close the client: nothing
  // must end the session a second time from inside it.
  if (!retry) closing_ = true;
  reason->retrying = retry ? 1 : 0;
  reason->attempt = attempts_;
  reason->posts_dropped = posts_dropped_;
  if (route_.handler.terminate) {
    try {
      route_.handler.terminate(conn, reason, state_);
    } catch (...) {
      // Nothing is left to crash: the attempt is over anyway.
    }
  }
  // Ended from inside terminate (a stop while retrying: that terminate
  // was followed by a last one).
  if (phase_ == Phase::kEnded) return;
  if (!retry) {
    end();
    return;
  }
  phase_ = Phase::kWaiting;
  next_address_ = nullptr;
  arm(backoff_ms());
}

void ClientSession::opened(lariat_conn *conn) {
  failures_ = 0;
  free_addresses();
  // What was posted meanwhile, in order, while the connection stays open.
  while (!offline_.empty() && conn->open()) {
    Letter letter = offline_.front();
    offline_.pop_front();
    conn->deliver_info(letter);
  }
}

void ClientSession::hold(const Letter &letter) {
  if (phase_ == Phase::kEnded || closing_ || offline_.size() >= opts_.offline_max) {
    letter.discard();
    ++posts_dropped_;
    return;
  }
  try {
    offline_.push_back(letter);
  } catch (...) {
    letter.discard();
    ++posts_dropped_;
  }
}

void ClientSession::close(bool server_stopping) {
  if (phase_ == Phase::kEnded || closing_) return;
  closing_ = true;
  if (conn_) {
    // Its end comes back through attempt_ended(), with no retry.
    if (server_stopping)
      conn_->stop();
    else
      conn_->close_client();
    return;
  }
  if (resolve_) {
    resolve_->session = nullptr;
    uv_cancel(reinterpret_cast<uv_req_t *>(&resolve_->req));
    resolve_ = nullptr;
  }
  lariat_reason reason = {};
  reason.kind = LARIAT_REASON_SHUTDOWN;
  finish_attempt(nullptr, &reason, false);
}

void ClientSession::free_addresses() {
  if (addresses_) uv_freeaddrinfo(addresses_);
  addresses_ = nullptr;
  next_address_ = nullptr;
}

void ClientSession::end() {
  phase_ = Phase::kEnded;
  for (const Letter &l : offline_) {
    l.discard();
    ++posts_dropped_;
  }
  offline_.clear();
  lariat_server *loop = loop_;
  if (!timer_open_) {  // never started (abandon)
    delete this;
    return;
  }
  loop->clients.erase(id_);
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t *>(&timer_), [](uv_handle_t *h) noexcept {
    auto *self = static_cast<ClientSession *>(h->data);
    lariat_server *loop = self->loop_;
    delete self;
    loop->handle_closed();
    loop->finish_stop_if_idle();
  });
}

}  // namespace lariat::detail
