#include "connection.h"

#include <cstring>
#include <new>

#include "client.h"
#include "upgrade.h"

using lariat::detail::Letter;
using lariat::detail::ParseResult;
using lariat::detail::ParseStatus;
using lariat::detail::Request;

namespace {

constexpr uint64_t kNever = UINT64_MAX;
constexpr size_t kFlushThreshold = 256 * 1024;
// Runs a handler callback. Handlers are C function pointers, but one
// written in C++ may still throw through it: that crashes its connection
// (LARIAT_CRASH with the exception's what()), never the server.
template <typename Call, typename Record>
int invoke_handler(Call call, Record record_crash) {
  try {
    return call();
  } catch (const std::exception &e) {
    record_crash("exception", e.what());
  } catch (...) {
    record_crash("exception", "unknown exception");
  }
  return LARIAT_CRASH;
}

bool is_control(uint8_t opcode) { return (opcode & 0x8) != 0; }


}  // namespace

lariat_conn::lariat_conn(lariat_server *srv, lariat_conn_id conn_id)
    : id(conn_id),
      profile_(&srv->handshake_profile),
      in_batch(false),
      hibernating(false),
      reason_set_(false),
      reached_init_(false),
      upgraded_(false),
      in_drain_(false),
      awaiting_resume_(false),
      paused_(false),
      resume_input_(false),
      above_low_water_(false),
      hibernate_requested_(false),
      finalize_pending_(false),
      client_(false),
      read_in_event_(false) {
  transport()->attach(this);
  phase_started_ = last_recv_ = server()->now();
}

lariat_conn::~lariat_conn() {
  lariat_server *srv = server();
  if (profile_ != &srv->handshake_profile) srv->profiles.release(profile_);
}

void lariat_conn::destroy() noexcept {
  lariat::detail::Transport *t = transport();
  this->~lariat_conn();
  t->~Transport();
  ::operator delete(static_cast<void *>(this));
}

void lariat_conn::set_profile(const lariat::detail::Route *route,
                              std::string_view path,
                              const lariat::detail::ConnOptions &opts) {
  lariat::detail::Profile *next = server()->profiles.acquire(route, path, opts);
  if (profile_ != &server()->handshake_profile) server()->profiles.release(profile_);
  profile_ = next;
}

uint64_t lariat_conn::deadline() const {
  switch (state) {
    case State::kHandshake:
      if (client_) {
        const ClientInfo &c = *cold_->client;
        return c.connected ? phase_started_ + c.session->options().handshake_ms
                           : c.session->connect_deadline();
      }
      return phase_started_ + server()->options.handshake_timeout_ms;
    case State::kDeferred:
      return phase_started_ + server()->options.handshake_timeout_ms;
    case State::kOpen: {
      if (paused_) return kNever;
      uint64_t d = opts().idle_timeout ? last_recv_ + opts().idle_timeout : kNever;
      if (opts().ping_interval) {
        uint64_t k = ping_sent_at_ ? ping_sent_at_ + opts().pong_timeout
                                   : last_recv_ + opts().ping_interval;
        if (k < d) d = k;
      }
      return d;
    }
    case State::kClosing:
    case State::kDraining:
      return phase_started_ + server()->options.close_timeout_ms;
    case State::kClosed:
      break;
  }
  return kNever;
}

// An entry that comes due no later than |d| finds the real deadline then:
// moving it now would only cost heap work on every read.
void lariat_conn::reschedule() {
  uint64_t d = deadline();
  if (d == kNever) {
    server()->timers.remove(this);
    return;
  }
  if (d >= server()->timers.deadline_of(this)) return;
  server()->timers.set(this, d);
  server()->arm_timer(d);
}

bool lariat_conn::move_to(State next) {
  bool legal = false;
  switch (state) {
    case State::kHandshake:
      legal = next != State::kHandshake && next != State::kClosing;
      break;
    case State::kDeferred:
      legal = next == State::kOpen || next == State::kDraining ||
              next == State::kClosed;
      break;
    case State::kOpen:
      legal = next == State::kClosing || next == State::kDraining ||
              next == State::kClosed;
      break;
    case State::kClosing:
      legal = next == State::kDraining || next == State::kClosed;
      break;
    case State::kDraining:
      legal = next == State::kClosed;
      break;
    case State::kClosed:
      break;
  }
  if (legal) state = next;
  return legal;
}

// ---------------------------------------------------------------- events

bool lariat_conn::end_event() {
  lariat_server *srv = server();
  // Input left unparsed by a pause is parsed once reading resumes, still
  // inside the outermost event (so before libuv can deliver newer bytes,
  // and never from inside the callback that resumed).
  if (event_depth_ == 1 && resume_input_) {
    resume_input_ = false;
    read_pending_input();
  }
  --srv->events_running;
  if (--event_depth_ > 0) return true;
  flush();
  if (hibernate_requested_)
    hibernate_if_idle();
  else if (read_in_event_ && between_messages())
    release_active();
  read_in_event_ = false;
  bool alive = !finalize_pending_;
  if (!alive) {
    finalize();  // deletes this
  } else if (above_low_water_) {
    // A reply refused for backpressure may have gone out with this flush.
    on_output_progress();
  }
  // The outermost event of the loop ends: frames replied to other
  // connections meanwhile leave now.
  if (srv->events_running == 0) srv->flush_batched();
  return alive;
}

void lariat_conn::join_batch() {
  if (in_batch) return;
  server()->batch(id);
  in_batch = true;
}

void lariat_conn::flush_batched() {
  in_batch = false;
  begin_event();
  end_event();
}

bool lariat_conn::deliver_published(lariat::detail::Publication &pub) {
  if (state != State::kOpen) return false;
  const std::string *frame = nullptr;
  std::string own;
  bool compress = deflate() && !(pub.flags() & LARIAT_FRAME_NO_COMPRESS) &&
                  pub.len() >= deflate()->threshold();
  if (client_) {
    // Masked with a key of its own: nothing to share.
    const uint8_t *data = pub.data();
    size_t len = pub.len();
    std::string &packed = server()->deflate_scratch;
    if (compress) {
      if (deflate()->compress(data, len, &packed) !=
          lariat::detail::DeflateCodec::Status::kOk) {
        ++cold().dropped;
        return false;
      }
      data = reinterpret_cast<const uint8_t *>(packed.data());
      len = packed.size();
    }
    server()->frame_writer.write(&own, pub.opcode(), true, compress ? 4 : 0,
                               data, len, true);
    frame = &own;
  } else if (compress &&
      pub.len() >= deflate()->threshold()) {
    if (deflate()->shares_output()) {
      frame = pub.compressed(*deflate(), server()->frame_writer,
                             &server()->deflate_scratch, &server()->frames_encoded);
    } else {
      // Its compressor's context is its own: compressed for it alone.
      std::string &packed = server()->deflate_scratch;
      if (deflate()->compress(pub.data(), pub.len(), &packed) ==
          lariat::detail::DeflateCodec::Status::kOk) {
        server()->frame_writer.write(
            &own, pub.opcode(), true, 4,
            reinterpret_cast<const uint8_t *>(packed.data()), packed.size());
        ++server()->frames_encoded;
        frame = &own;
      }
    }
    if (!frame) {
      ++cold().dropped;  // out of memory in zlib: this delivery only
      return false;
    }
  } else {
    frame = &pub.plain(server()->frame_writer, &server()->frames_encoded);
  }
  if (buffered_amount() + frame->size() > opts().max_queued) {
    if (opts().backpressure_policy == LARIAT_BACKPRESSURE_REFUSE) {
      ++cold().dropped;
      above_low_water_ = true;  // drain says when it caught up
      return false;
    }
    fail_connection(LARIAT_REASON_ERROR_BACKPRESSURE,
                    opts().backpressure_policy == LARIAT_BACKPRESSURE_CLOSE
                        ? 1008
                        : 1013);
    return false;
  }
  if (hibernating) hibernate_requested_ = true;  // sleeps again once written
  hibernating = false;
  if (frame->size() >= kFlushThreshold) {
    // Large: straight from the shared bytes; only what the kernel does not
    // take now is copied.
    flush();
    transport()->write(reinterpret_cast<const uint8_t *>(frame->data()),
                      frame->size());
    if (transport()->buffered() > opts().low_water) above_low_water_ = true;
  } else {
    out().append(*frame);
  }
  join_batch();
  return true;
}

void lariat_conn::on_read(uint8_t *p, size_t n) {
  if (state == State::kClosed || state == State::kDraining) return;
  if (state == State::kDeferred) {
    // Frames pipelined behind the head wait for the decision; past a
    // head's worth, TCP holds the rest.
    std::unique_ptr<std::string> &pending = active().pending_input;
    if (!pending) pending.reset(new std::string);
    pending->append(reinterpret_cast<const char *>(p), n);
    if (pending->size() >= server()->options.max_head_size)
      transport()->set_reading(false);
    return;
  }
  begin_event();
  last_recv_ = server()->now();
  if (state == State::kOpen && ping_sent_at_) {
    // Any data is a sign of life. The next ping is now due sooner than the
    // pong deadline the timer waits for: tell the timer.
    ping_sent_at_ = 0;
    reschedule();
  }
  hibernating = false;
  read_in_event_ = true;
  if (state == State::kHandshake)
    client_ ? read_response(p, n) : read_head(p, n);
  else
    read_frames(p, n);
  end_event();
}

void lariat_conn::on_eof() {
  begin_event();
  if (client_ && state == State::kHandshake)
    fail_client_handshake("the server closed the connection");
  if (state == State::kOpen || state == State::kDeferred)
    set_reason(LARIAT_REASON_ERROR_CLOSED);
  close_transport();
  end_event();
}

void lariat_conn::on_transport_error(int uv_error) {
  begin_event();
  if (client_ && state == State::kHandshake)
    fail_client_handshake(client_connected() ? "socket error" : "connect failed",
                          uv_error);
  if (state == State::kOpen || state == State::kDeferred) {
    set_reason(LARIAT_REASON_ERROR_SOCKET);
    reason_socket_error_ = static_cast<int16_t>(uv_error);
  }
  close_transport();
  end_event();
}

void lariat_conn::on_transport_closed() {
  move_to(State::kClosed);
  if (event_depth_ > 0)
    finalize_pending_ = true;
  else
    finalize();
}

void lariat_conn::on_deadline() {
  begin_event();
  switch (state) {
    case State::kHandshake:
    case State::kDeferred:
      if (client_) {
        fail_client_handshake(client_connected() ? "handshake timeout"
                                                 : "connect timeout",
                              client_connected() ? 0 : UV_ETIMEDOUT);
        close_transport();
        break;
      }
      if (reached_init_) set_reason(LARIAT_REASON_TIMEOUT);
      answer_plain(408);
      break;
    case State::kOpen: {
      uint64_t now = server()->now();
      bool idle = opts().idle_timeout && now >= last_recv_ + opts().idle_timeout;
      bool no_pong = ping_sent_at_ && now >= ping_sent_at_ + opts().pong_timeout;
      if (no_pong) {
        // The peer is presumed dead: no close handshake to wait for.
        set_reason(LARIAT_REASON_TIMEOUT);
        put_close(1000, nullptr, 0);
        close_transport();
        break;
      } else if (idle) {
        start_close(LARIAT_REASON_TIMEOUT, 1000);
      } else if (opts().ping_interval && !ping_sent_at_ &&
                 now >= last_recv_ + opts().ping_interval) {
        put_frame(LARIAT_OP_PING, true, 0, nullptr, 0);
        ping_sent_at_ = now;
        reschedule();
      }
      break;
    }
    case State::kClosing:
    case State::kDraining:
      close_transport();
      break;
    case State::kClosed:
      break;
  }
  // Whatever happened, the timer heap holds the new deadline (the entry
  // that brought us here is gone).
  reschedule();
  end_event();
}

void lariat_conn::stop() {
  begin_event();
  if (state == State::kHandshake || state == State::kDeferred) {
    if (reached_init_) set_reason(LARIAT_REASON_SHUTDOWN);
    close_transport();
  } else if (state == State::kOpen) {
    // A paused reader must read again, or the peer's close is never seen
    // and the stop waits for the whole close timeout.
    if (paused_ && transport()->set_reading(true) == 0) {
      paused_ = false;
      resume_input_ = true;  // what the pause left, before the peer's close
    }
    start_close(LARIAT_REASON_SHUTDOWN, 1001);
  }
  end_event();
}

void lariat_conn::deliver_info(const Letter &letter) {
  if (client_ && state != State::kOpen) {
    cold_->client->session->hold(letter);  // for the next open connection
    return;
  }
  if (state != State::kOpen || !route()->handler.websocket_info) {
    letter.discard();
    return;
  }
  begin_event();
  int result;
  try {
    result = call_handler([&] {
      return route()->handler.websocket_info(this, letter.msg, user_state);
    });
  } catch (...) {
    letter.discard();  // the message is the handler's whatever happens
    throw;
  }
  letter.discard();
  after_callback(result);
  end_event();
}

// ------------------------------------------------------------- handshake

void lariat_conn::read_head(const uint8_t *p, size_t n) {
  const lariat_options &opts = server()->options;
  Active &a = active();
  if (!a.head) a.head.reset(new std::string);
  std::string &head = *a.head;
  size_t old = head.size();
  head.append(reinterpret_cast<const char *>(p), n);
  // Only a new line end can complete a line or the head: re-parse the head
  // then (at most once per line), else check just the new bytes, so a head
  // sent byte by byte costs linear time.
  const void *lf = std::memchr(head.data() + old, '\n', n);
  if (!lf && head.size() < opts.max_head_size) {
    if (!lariat::detail::head_tail_ok(head, a.head_line_start, old))
      answer_plain(400);
    return;
  }
  Request req;
  ParseResult r = lariat::detail::parse_request(
      head.data(), head.size(), opts.max_head_size, opts.max_headers, &req);
  switch (r.status) {
    case ParseStatus::kIncomplete: {
      const void *last = memrchr(head.data() + old, '\n', n);
      if (last)
        a.head_line_start = static_cast<uint32_t>(
            static_cast<const char *>(last) - head.data() + 1);
      return;
    }
    case ParseStatus::kTooLarge:
    case ParseStatus::kTooManyHeaders:
      answer_plain(431);
      return;
    case ParseStatus::kBad:
      answer_plain(400);
      return;
    case ParseStatus::kDone:
      break;
  }
  // Bytes pipelined behind the head are frames; keep them past the head's
  // lifetime.
  std::string rest = head.substr(r.head_len);
  answer_request(req);
  if (active_) active_->head.reset();
  if (rest.empty()) return;
  if (state == State::kOpen)
    read_frames(reinterpret_cast<uint8_t *>(rest.data()), rest.size());
  else if (state == State::kDeferred)
    on_read(reinterpret_cast<uint8_t *>(rest.data()), rest.size());
}

void lariat_conn::answer_plain(
    int status,
    const std::vector<std::pair<std::string, std::string>> &headers,
    std::string_view body) {
  out().append(lariat::detail::response_plain(status, headers, body));
  begin_drain();
}

void lariat_conn::answer_request(const Request &request_in) {
  const lariat::detail::Route *route = server()->find_route(request_in.path);
  if (!route) {
    answer_plain(404);
    return;
  }
  std::unique_ptr<lariat_upgrade> up(new lariat_upgrade);
  up->request = request_in;
  int status = lariat::detail::validate_upgrade(&up->request);
  if (status == 426) {
    answer_plain(426, {{"Sec-WebSocket-Version", "13, 8, 7"}});
    return;
  }
  if (status != 0) {
    answer_plain(status);
    return;
  }
  // The upgrade owns the head its request points into (a deferred
  // decision carries both to another thread).
  up->head = std::move(active().head);
  up->server = server();
  up->conn_id = id;
  up->opts.max_frame_size = server()->options.max_frame_size;

  set_profile(route, up->request.path, server()->handshake_profile.opts);
  reached_init_ = true;
  lariat_req handle_req = {&up->request, transport()};
  int result = LARIAT_OK;
  if (route->handler.init) {
    lariat_upgrade *raw = up.get();
    raw->deferrable = true;
    result = invoke_handler(
        [&] { return route->handler.init(&handle_req, raw, route->handler_data); },
        [&](const char *cls, const char *what) {
          raw->crash_class = cls;
          raw->crash_reason = what;
        });
    if (result == LARIAT_DEFER) {
      // |up| belongs to the handler until lariat_upgrade_resume() brings
      // it back through the mailbox; nothing here touches it again.
      up.release();
      awaiting_resume_ = true;
      if (state == State::kHandshake) {
        move_to(State::kDeferred);
      }
      return;
    }
    raw->deferrable = false;
  }
  complete_init(*up, result);
}

void lariat_conn::complete_init(lariat_upgrade &up, int result) {
  user_state = up.state;
  // lariat_server_stop() inside init (or while deferred) dropped us.
  if (state != State::kHandshake && state != State::kDeferred) return;
  if (result == LARIAT_CRASH || (result != LARIAT_OK && !up.has_reply)) {
    set_reason(LARIAT_REASON_CRASH);
    details().crash_class =
        up.crash_class.empty() && result != LARIAT_CRASH ? "lariat"
                                                          : up.crash_class;
    details().crash_reason = result == LARIAT_CRASH
                                 ? up.crash_reason
                                 : "init returned an invalid value";
    answer_plain(500);
    return;
  }
  if (up.has_reply) {
    set_reason(LARIAT_REASON_NORMAL);
    answer_plain(up.status, up.headers, up.body);
    return;
  }
  const Request &req = up.request;
  if (!req.is_websocket) {
    // Cowboy's answer to a plain request on a WebSocket-only handler.
    set_reason(LARIAT_REASON_NORMAL);
    answer_plain(426, {{"Connection", "upgrade"},
                       {"Upgrade", "websocket"},
                       {"Sec-WebSocket-Version", "13, 8, 7"}});
    return;
  }
  if (server()->stopping) {  // no upgrade once the server stops
    set_reason(LARIAT_REASON_SHUTDOWN);
    close_transport();
    return;
  }

  if (!(up.opts == opts())) set_profile(route(), path(), up.opts);
  if (!up.protocol.empty()) details().protocol = up.protocol;
  version = static_cast<uint8_t>(req.ws_version);
  std::string extensions;
  lariat::detail::DeflateParams params;
  if (lariat::detail::negotiate_deflate(req.values("sec-websocket-extensions"),
                                        up.deflate, &params, &extensions)) {
    cold().deflate.reset(new (std::nothrow)
                             lariat::detail::DeflateCodec(up.deflate, params));
    if (!deflate()) extensions.clear();
  }
  out().append(lariat::detail::response_101(req.key, up.protocol, extensions,
                                           up.extra_101));
  enter_open();
}

// Both roles, once the upgrade is agreed: open, timers from now, then
// websocket_init.
void lariat_conn::enter_open() {
  upgraded_ = true;
  move_to(State::kOpen);
  last_recv_ = server()->now();
  ping_sent_at_ = 0;  // phase_started_'s word: the handshake is over
  reschedule();
  if (route()->handler.websocket_init)
    after_callback(call_handler(
        [&] { return route()->handler.websocket_init(this, user_state); }));
}

void lariat_conn::resume(lariat_upgrade *raw) {
  std::unique_ptr<lariat_upgrade> up(raw);
  if (!awaiting_resume_) return;
  awaiting_resume_ = false;
  if (state == State::kClosed) {
    // Ended while the decision was pending: terminate now, with the state
    // the handler settled on.
    user_state = up->state;
    finalize();  // deletes this
    return;
  }
  begin_event();
  if (state == State::kDeferred) {
    std::unique_ptr<std::string> input =
        active_ ? std::move(active_->pending_input) : nullptr;
    transport()->set_reading(true);
    complete_init(*up, up->resume_result);
    if (input && state == State::kOpen)
      read_frames(reinterpret_cast<uint8_t *>(input->data()), input->size());
  } else {
    user_state = up->state;  // closing after a timeout or a stop
  }
  end_event();
}

// ---------------------------------------------------------------- frames

void lariat_conn::read_frames(uint8_t *p, size_t n) {
  using Result = lariat::detail::FrameReader::Result;
  active();  // allocated with the first frame bytes
  while (state == State::kOpen || state == State::kClosing) {
    lariat::detail::FrameChunk chunk;
    Result r = active_->reader.next(&p, &n, &chunk);
    if (r == Result::kNeedMore) break;
    if (r == Result::kError) {
      // Control frame over 125 bytes or fragmented, non-minimal length,
      // 64-bit length with the top bit set.
      fail_connection(LARIAT_REASON_ERROR_BADFRAME, 1002);
      break;
    }
    on_chunk(chunk);
    if (paused_ && n > 0 && state == State::kOpen) {
      // The handler paused: the rest of this read waits with the socket,
      // instead of the handler getting every message of a 64 KiB read (a
      // few thousand, compressed) after it asked for no more.
      std::unique_ptr<std::string> &pending = active_->pending_input;
      if (!pending) pending.reset(new std::string);
      pending->append(reinterpret_cast<const char *>(p), n);
      break;
    }
  }
}

void lariat_conn::read_pending_input() {
  if (!active_ || !active_->pending_input) return;
  if (state != State::kOpen && state != State::kClosing) return;
  std::unique_ptr<std::string> input = std::move(active_->pending_input);
  read_frames(reinterpret_cast<uint8_t *>(&(*input)[0]), input->size());
}

bool lariat_conn::start_frame(const lariat::detail::FrameChunk &iocb) {
  active_->in_frame = true;
  active_->frame_opcode = iocb.opcode;
  active_->frame_fin = iocb.fin != 0;
  active_->frame_len = iocb.payload_length;
  active_->frame_got = 0;
  // RSV1 marks a compressed message: only on its first frame, only once
  // permessage-deflate was negotiated (RFC 7692 6).
  bool compressed = iocb.rsv == 4 && deflate() &&
                    (iocb.opcode == LARIAT_OP_TEXT ||
                     iocb.opcode == LARIAT_OP_BINARY);
  // Clients mask every frame, servers none (RFC 6455 5.1).
  if ((iocb.rsv != 0 && !compressed) || iocb.masked == client_) {
    fail_connection(LARIAT_REASON_ERROR_BADFRAME, 1002);
    return false;
  }
  switch (iocb.opcode) {
    case LARIAT_OP_CLOSE:
    case LARIAT_OP_PING:
    case LARIAT_OP_PONG:
      active_->control.clear();
      return true;
    case 0:  // continuation
      if (!active_->in_message) {
        fail_connection(LARIAT_REASON_ERROR_BADFRAME, 1002);
        return false;
      }
      break;
    case LARIAT_OP_TEXT:
    case LARIAT_OP_BINARY:
      if (active_->in_message) {
        fail_connection(LARIAT_REASON_ERROR_BADFRAME, 1002);
        return false;
      }
      active_->in_message = true;
      active_->message_opcode = iocb.opcode;
      active_->message_compressed = compressed;
      active_->message_len = 0;
      server()->recycle(&active_->message);
      active_->utf8.reset();
      break;
    default:
      fail_connection(LARIAT_REASON_ERROR_BADFRAME, 1002);
      return false;
  }
  if (active_->frame_len > opts().max_frame_size ||
      active_->message_len + active_->frame_len > opts().max_frame_size) {
    fail_too_big();
    return false;
  }
  return true;
}

void lariat_conn::on_chunk(const lariat::detail::FrameChunk &iocb) {
  if (!active_->in_frame && !start_frame(iocb)) return;
  active_->frame_got += iocb.len;
  bool frame_done = active_->frame_got == active_->frame_len;
  if (frame_done) active_->in_frame = false;

  if (is_control(active_->frame_opcode)) {
    active_->control.append(reinterpret_cast<const char *>(iocb.data),
                    iocb.len);
    if (frame_done) on_control_frame();
    return;
  }
  if (state != State::kOpen) {
    // Closing: data frames are read past, never delivered.
    if (frame_done && active_->frame_fin) active_->in_message = false;
    return;
  }
  if (active_->message_compressed) {
    on_compressed_chunk(iocb.data, iocb.len, frame_done && active_->frame_fin);
    return;
  }
  if (active_->message_opcode == LARIAT_OP_TEXT && opts().validate_utf8 &&
      !active_->utf8.feed(iocb.data, iocb.len)) {
    fail_connection(LARIAT_REASON_ERROR_BADENCODING, 1007);
    return;
  }
  // The whole message in this one chunk: hand it over without a copy.
  bool whole_message_here = frame_done && active_->frame_fin &&
                            iocb.len == active_->frame_len && active_->message_len == 0;
  active_->message_len += iocb.len;
  if (!whole_message_here) {
    // A large message starts: in the loop's spare buffer, if it has one.
    if (active_->message.empty()) server()->reuse(&active_->message, active_->frame_len);
    active_->message.append(reinterpret_cast<const char *>(iocb.data),
                            iocb.len);
  }
  if (!(frame_done && active_->frame_fin)) return;

  active_->in_message = false;
  if (active_->message_opcode == LARIAT_OP_TEXT && opts().validate_utf8 &&
      !active_->utf8.complete()) {
    fail_connection(LARIAT_REASON_ERROR_BADENCODING, 1007);
    return;
  }
  if (whole_message_here) {
    deliver_message(iocb.data, iocb.len);
  } else {
    deliver_message(reinterpret_cast<const uint8_t *>(active_->message.data()),
                    active_->message.size());
    server()->recycle(&active_->message);
  }
}

// Inflates as the bytes come, so the limit, the UTF-8 check and a corrupt
// stream all fail as early as the compressed bytes allow.
void lariat_conn::on_compressed_chunk(const uint8_t *p, size_t n,
                                      bool message_done) {
  using Status = lariat::detail::DeflateCodec::Status;
  size_t before = active_->message.size();
  if (before == 0) server()->reuse(&active_->message, active_->frame_len);
  Status status =
      deflate()->decompress(p, n, message_done, opts().max_frame_size, &active_->message);
  switch (status) {
    case Status::kOk:
      break;
    case Status::kTooBig:
      fail_too_big();
      return;
    case Status::kCorrupt:
      fail_connection(LARIAT_REASON_ERROR_BADFRAME, 1002);
      return;
    case Status::kNoMemory:
      reason_socket_error_ = UV_ENOMEM;
      fail_connection(LARIAT_REASON_ERROR_SOCKET, 1011);
      return;
  }
  if (active_->message_opcode == LARIAT_OP_TEXT && opts().validate_utf8 &&
      !active_->utf8.feed(reinterpret_cast<const uint8_t *>(active_->message.data()) + before,
                  active_->message.size() - before)) {
    fail_connection(LARIAT_REASON_ERROR_BADENCODING, 1007);
    return;
  }
  if (!message_done) return;
  active_->in_message = false;
  if (active_->message_opcode == LARIAT_OP_TEXT && opts().validate_utf8 &&
      !active_->utf8.complete()) {
    fail_connection(LARIAT_REASON_ERROR_BADENCODING, 1007);
    return;
  }
  deliver_message(reinterpret_cast<const uint8_t *>(active_->message.data()),
                  active_->message.size());
  server()->recycle(&active_->message);
}

void lariat_conn::deliver_message(const uint8_t *p, size_t n) {
  lariat_frame frame = {};
  frame.opcode = active_->message_opcode;
  frame.data = p;
  frame.len = n;
  call_handle(frame);
}

void lariat_conn::call_handle(const lariat_frame &frame) {
  if (!route()->handler.websocket_handle) return;
  after_callback(call_handler([&] {
    return route()->handler.websocket_handle(this, &frame, user_state);
  }));
}

void lariat_conn::on_control_frame() {
  const auto *data = reinterpret_cast<const uint8_t *>(active_->control.data());
  size_t len = active_->control.size();
  switch (active_->frame_opcode) {
    case LARIAT_OP_CLOSE:
      on_close_frame();
      return;
    case LARIAT_OP_PING:
      if (state != State::kOpen) return;
      put_frame(LARIAT_OP_PONG, true, 0, data, len);
      break;
    case LARIAT_OP_PONG:
      if (state != State::kOpen) return;
      break;
  }
  lariat_frame frame = {};
  frame.opcode = active_->frame_opcode;
  frame.data = data;
  frame.len = len;
  call_handle(frame);
}

void lariat_conn::on_close_frame() {
  const auto *data = reinterpret_cast<const uint8_t *>(active_->control.data());
  size_t len = active_->control.size();
  if (state == State::kClosing) {
    // The peer answered our close: the handshake is complete.
    begin_drain();
    return;
  }
  uint16_t code = 0;
  if (len == 1) {
    fail_connection(LARIAT_REASON_ERROR_BADFRAME, 1002);
    return;
  }
  if (len >= 2) {
    code = static_cast<uint16_t>((data[0] << 8) | data[1]);
    if (!lariat::detail::peer_close_code_valid(code)) {
      fail_connection(LARIAT_REASON_ERROR_BADFRAME, 1002);
      return;
    }
    if (opts().validate_utf8 && !lariat::detail::utf8_valid(data + 2, len - 2)) {
      fail_connection(LARIAT_REASON_ERROR_BADENCODING, 1007);
      return;
    }
  }
  set_reason(LARIAT_REASON_REMOTE);
  reason_code_ = code;
  if (len > 2) details().remote_reason.assign(active_->control, 2, std::string::npos);
  put_close(code, nullptr, 0);
  begin_drain();
}

// ------------------------------------------------------------- callbacks

template <typename Call>
int lariat_conn::call_handler(Call call) {
  return invoke_handler(call, [this](const char *cls, const char *what) {
    details().crash_class = cls;
    details().crash_reason = what;
  });
}

void lariat_conn::abandon() noexcept {
  server()->events_running -= event_depth_;
  event_depth_ = 0;
  if (state == State::kOpen || state == State::kDeferred) {
    set_reason(LARIAT_REASON_ERROR_SOCKET);
    reason_socket_error_ = UV_ENOMEM;
  }
  if (state != State::kClosed) {
    move_to(State::kClosed);
    remember_peer();
    transport()->close();  // may finalize (delete this) before it returns
    return;
  }
  if (finalize_pending_) finalize();
}

void lariat_conn::after_callback(int result) {
  switch (result) {
    case LARIAT_OK:
      return;
    case LARIAT_HIBERNATE:
      hibernate_requested_ = true;
      return;
    case LARIAT_SHUTDOWN:
      start_close(LARIAT_REASON_SHUTDOWN, 1000);
      return;
    case LARIAT_CRASH:
      if (!details_if_any() || (cold_->details->crash_class.empty() &&
                                cold_->details->crash_reason.empty())) {
        details().crash_class = "error";
        details().crash_reason = "LARIAT_CRASH returned";
      }
      start_close(LARIAT_REASON_CRASH, 1011);
      return;
    default:
      if (!details_if_any() || cold_->details->crash_class.empty()) {
        details().crash_class = "lariat";
        details().crash_reason = "callback returned an invalid value";
      }
      start_close(LARIAT_REASON_CRASH, 1011);
      return;
  }
}

int lariat_conn::reply(const lariat_frame *frame) {
  int rc = lariat::detail::validate_outgoing(frame);
  if (rc != 0) return rc;
  if (state != State::kOpen) return LARIAT_ERR_CLOSING;
  // 14: the largest server frame header.
  if (frame->opcode != LARIAT_OP_CLOSE && frame->len + 14 > opts().max_queued)
    return LARIAT_ERR_EXCEEDS_CAP;  // not backpressure: it never fits
  bool over_cap = frame->opcode != LARIAT_OP_CLOSE &&
                  buffered_amount() + frame->len + 14 > opts().max_queued;
  if (over_cap && opts().backpressure_policy == LARIAT_BACKPRESSURE_REFUSE) {
    above_low_water_ = true;  // drain tells the handler when to resume
    return LARIAT_ERR_BACKPRESSURE;
  }
  // Another connection's callback is running: this frame leaves with the
  // rest of that event's output. A hibernating connection goes back to
  // sleep once it is written.
  bool batched = event_depth_ == 0 && server()->events_running > 0;
  if (batched) join_batch();
  if (hibernating) hibernate_requested_ = true;
  begin_event();
  try {
    rc = reply_in_event(frame, over_cap);
  } catch (...) {
    // Out of memory, nothing queued: the caller gets LARIAT_ERR_NOMEM
    // (lariat_reply's guard), and the event count stays right so the
    // connection still flushes and ends.
    --event_depth_;
    --server()->events_running;
    throw;
  }
  if (batched) {
    // The bytes wait for flush_batched(): undo begin_event() without its
    // flush.
    --event_depth_;
    --server()->events_running;
  } else {
    end_event();
  }
  return rc;
}

int lariat_conn::reply_in_event(const lariat_frame *frame, bool over_cap) {
  int rc = 0;
  if (over_cap) {
    // The peer cannot keep up: close behind what is queued, then stop.
    fail_connection(LARIAT_REASON_ERROR_BACKPRESSURE,
                    opts().backpressure_policy == LARIAT_BACKPRESSURE_CLOSE
                        ? 1008
                        : 1013);
    return LARIAT_ERR_BACKPRESSURE;
  }
  hibernating = false;
  if (frame->opcode == LARIAT_OP_CLOSE) {
    rc = put_close(frame->close_code,
                                          frame->data, frame->len);
    if (rc != 0) return rc;
    set_reason(LARIAT_REASON_SHUTDOWN);
    move_to(State::kClosing);
    phase_started_ = server()->now();
    reschedule();
  } else if (deflate() && frame->opcode <= LARIAT_OP_BINARY &&
             !(frame->flags & LARIAT_FRAME_NO_COMPRESS) &&
             frame->len >= deflate()->threshold()) {
    std::string &packed = server()->deflate_scratch;
    if (deflate()->compress(frame->data, frame->len, &packed) !=
        lariat::detail::DeflateCodec::Status::kOk)
      return LARIAT_ERR_NOMEM;
    rc = put_frame(
        static_cast<uint8_t>(frame->opcode), true, 4,
        reinterpret_cast<const uint8_t *>(packed.data()), packed.size());
  } else if (frame->len >= kFlushThreshold && !client_) {
    // Large: after what is queued, straight from the handler's buffer
    // (a client's frames are masked into a copy instead).
    flush();
    rc = server()->frame_writer.write_to(transport(),
                                       static_cast<uint8_t>(frame->opcode), 0,
                                       frame->data, frame->len);
    if (transport()->buffered() > opts().low_water) above_low_water_ = true;
  } else {
    rc = put_frame(static_cast<uint8_t>(frame->opcode),
                                    true, 0, frame->data, frame->len);
  }
  // Batching pays for small frames; large output goes to the kernel early
  // so it does not pile up in one callback.
  if (out().size() >= kFlushThreshold) flush();
  return rc;
}

int lariat_conn::set_active(bool active) {
  if (state != State::kOpen) return LARIAT_ERR_CLOSING;
  if (active == !paused_) return 0;
  int rc = transport()->set_reading(active);
  if (rc != 0) return rc;
  paused_ = !active;
  // The idle countdown starts afresh on resume: a paused peer was not idle.
  if (active) last_recv_ = server()->now();
  reschedule();
  if (active && active_ && active_->pending_input) {
    resume_input_ = true;
    if (event_depth_ == 0) {  // not inside an event: parse it now
      begin_event();
      end_event();  // may delete this
    }
  }
  return 0;
}

size_t lariat_conn::buffered_amount() const {
  return (active_ ? active_->out.size() : 0) + transport()->buffered();
}

// Edge-triggered: one drain per fall to the low-water mark, and never from
// inside drain itself (a drain whose reply is refused again waits for the
// next progress of the output, not for a recursive call).
void lariat_conn::on_output_progress() {
  if (in_drain_ || !above_low_water_ || buffered_amount() > opts().low_water)
    return;
  above_low_water_ = false;
  if (state != State::kOpen || !route()->handler.websocket_drain) return;
  in_drain_ = true;
  begin_event();
  after_callback(call_handler(
      [&] { return route()->handler.websocket_drain(this, user_state); }));
  if (end_event()) in_drain_ = false;
}

void lariat_conn::refuse_busy() {
  begin_event();
  answer_plain(503);
  end_event();
}

int lariat_conn::set_idle_timeout(uint64_t ms) {
  if (state != State::kOpen) return LARIAT_ERR_CLOSING;
  lariat::detail::ConnOptions o = opts();
  o.idle_timeout = ms;
  set_profile(route(), path(), o);
  reschedule();
  return 0;
}

int lariat_conn::set_max_frame_size(uint64_t bytes) {
  if (bytes == 0) return LARIAT_ERR_INVALID_ARGUMENT;
  if (state != State::kOpen) return LARIAT_ERR_CLOSING;
  lariat::detail::ConnOptions o = opts();
  o.max_frame_size = bytes;
  set_profile(route(), path(), o);
  return 0;
}

int lariat_conn::peer(char *buf, size_t size, int *port) const {
  if (state != State::kClosed) return transport()->peer(buf, size, port);
  const Details *d = details_if_any();
  if (!d || d->peer.empty()) return UV_ENOTCONN;
  if (d->peer.size() >= size) return UV_ENOBUFS;
  std::memcpy(buf, d->peer.c_str(), d->peer.size() + 1);
  if (port) *port = d->peer_port;
  return 0;
}

void lariat_conn::remember_peer() noexcept {
  if (!upgraded_ || !route() || !route()->handler.terminate) return;
  if (details_if_any() && !details_if_any()->peer.empty()) return;
  char addr[64];
  int port = 0;
  if (transport()->peer(addr, sizeof addr, &port) != 0) return;
  try {
    details().peer = addr;
    details().peer_port = port;
  } catch (...) {
    // Out of memory: terminate will not know the address, nothing more.
  }
}

// --------------------------------------------------------------- closing

void lariat_conn::set_reason(int kind) {
  if (reason_set_) return;
  reason_set_ = true;
  reason_kind_ = static_cast<int8_t>(kind);
}

// A protocol or data error: after it the byte stream cannot be trusted, so
// the close frame is followed by FIN and the rest of the input is dropped.
void lariat_conn::fail_connection(int kind, uint16_t close_code,
                                  std::string_view reason) {
  if (state == State::kOpen) {
    set_reason(kind);
    put_close(close_code, reinterpret_cast<const uint8_t *>(reason.data()),
              reason.size());
  }
  begin_drain();
}

// The close reason names the limit, so the peer's developer knows what to
// change.
void lariat_conn::fail_too_big() {
  std::string reason = "message over the " +
                       std::to_string(opts().max_frame_size) + "-byte limit";
  fail_connection(LARIAT_REASON_ERROR_TOO_BIG, 1009, reason);
}

// An orderly close we start: the peer's close frame is awaited.
void lariat_conn::start_close(int kind, uint16_t close_code) {
  if (state != State::kOpen) return;
  set_reason(kind);
  put_close(close_code, nullptr, 0);
  move_to(State::kClosing);
  phase_started_ = server()->now();
  reschedule();
}

void lariat_conn::begin_drain() {
  if (state == State::kClosed || state == State::kDraining) return;
  move_to(State::kDraining);
  remember_peer();  // once both ends are shut, getpeername() has no peer
  phase_started_ = server()->now();
  flush();
  transport()->shutdown();
  reschedule();
}

void lariat_conn::close_transport() {
  if (state == State::kClosed) return;
  flush();
  move_to(State::kClosed);
  remember_peer();
  transport()->close();
}

// ------------------------------------------------------ output, lifetime

void lariat_conn::flush() {
  if (output_empty() || state == State::kClosed) return;
  // Taken out first: a write error reported from inside write() closes
  // the connection, and that close must not flush these bytes again.
  std::string pending;
  pending.swap(active_->out);
  transport()->write(reinterpret_cast<const uint8_t *>(pending.data()),
                    pending.size());
  if (active_ && active_->out.empty()) {  // keep a modest buffer
    server()->recycle(&pending);
    active_->out.swap(pending);
  }
  if (transport()->buffered() > opts().low_water) above_low_water_ = true;
}

bool lariat_conn::between_messages() const {
  return state == State::kOpen &&
         (!active_ || !(active_->in_frame || active_->in_message ||
                        !active_->reader.at_frame_boundary() ||
                        active_->pending_input || !active_->out.empty()));
}

void lariat::detail::ConnActiveFree::operator()(ConnActive *a) const noexcept {
  delete a;
}

void lariat_conn::take_active() {
  auto &spares = server()->spare_actives;
  if (spares.empty()) {
    active_.reset(new Active);
    return;
  }
  active_.reset(spares.back().release());
  spares.pop_back();
}

void lariat_conn::release_active() {
  constexpr size_t kSpares = 8;
  // What a spare keeps of its buffers: what a connection kept of them
  // before it gave them back between messages.
  constexpr size_t kSpareCapacity = lariat_server::kKeepCapacity;
  if (!active_) return;
  auto &spares = server()->spare_actives;
  if (spares.size() >= kSpares) {
    active_.reset();
    return;
  }
  std::string out, message;
  if (active_->out.capacity() <= kSpareCapacity) out.swap(active_->out);
  if (active_->message.capacity() <= kSpareCapacity) message.swap(active_->message);
  *active_ = Active();
  active_->out.swap(out);
  active_->message.swap(message);
  active_->message.clear();
  try {
    spares.emplace_back(active_.get());
    active_.release();
  } catch (const std::bad_alloc &) {
    active_.reset();
  }
}

void lariat_conn::hibernate_if_idle() {
  hibernate_requested_ = false;
  // Only at a message boundary, with no partial header kept.
  if (!between_messages()) return;
  release_active();
  if (deflate()) deflate()->release_idle();
  transport()->idle();
  hibernating = true;
}

void lariat_conn::finalize() {
  finalize_pending_ = false;
  // Deferred: terminate waits for the resume, which brings the state.
  if (awaiting_resume_) return;
  // Subscriptions end before terminate: nothing is published to a
  // connection that is gone.
  if (cold_) server()->topics.unsubscribe_all(&cold_->subs);
  if (reached_init_ && route() && (route()->handler.terminate || client_)) {
    if (!reason_set_) set_reason(LARIAT_REASON_ERROR_CLOSED);
    lariat_reason reason = {};
    reason.kind = reason_kind_;
    reason.code = reason_code_;
    reason.socket_error = reason_socket_error_;
    static const std::string empty;
    const Details *d = details_if_any();
    if (reason.kind == LARIAT_REASON_REMOTE) {
      const std::string &text = d ? d->remote_reason : empty;
      reason.data = reinterpret_cast<const uint8_t *>(text.data());
      reason.len = text.size();
    } else if (reason.kind == LARIAT_REASON_CRASH) {
      reason.crash_class = d ? d->crash_class.c_str() : "";
      reason.crash_reason = d ? d->crash_reason.c_str() : "";
    }
    if (client_) {
      // The session runs terminate: it knows whether another attempt
      // follows, and the state lives with it.
      const ClientInfo &c = *cold_->client;
      if (reason.kind == LARIAT_REASON_HANDSHAKE_FAILED) {
        reason.http_status = c.http_status;
        reason.failure = c.failure.c_str();
        reason.response_ = client_response();
      }
      c.session->set_state(user_state);
      c.session->attempt_ended(this, &reason);
    } else {
      try {
        route()->handler.terminate(upgraded_ ? this : nullptr, &reason,
                                   user_state);
      } catch (...) {
        // Nothing is left to crash: the connection is ending anyway.
      }
    }
  }
  server()->forget(this);
  destroy();
}

// ---------------------------------------------------------------- client

void lariat_conn::start_client(lariat::detail::ClientSession *session) {
  client_ = true;
  reached_init_ = true;  // terminate is called for every attempt
  cold().client.reset(new ClientInfo);
  cold_->client->session = session;
  user_state = session->state();
  const lariat_client_options &o = session->options();
  lariat::detail::ConnOptions opts = server()->handshake_profile.opts;
  opts.max_frame_size = o.max_frame_size;
  set_profile(session->route(), session->url().target, opts);
}

void lariat_conn::on_connected() {
  begin_event();
  ClientInfo &c = *cold_->client;
  c.connected = true;
  phase_started_ = server()->now();  // the handshake timeout starts
  reschedule();
  end_event();
}

void lariat_conn::on_channel_ready() {
  begin_event();
  const lariat::detail::ClientSession &s = *cold_->client->session;
  out().append(lariat::detail::client_request(s.url(), s.key(), s.options()));
  end_event();
}

void lariat_conn::close_client() {
  begin_event();
  if (state == State::kOpen) {
    start_close(LARIAT_REASON_SHUTDOWN, 1000);
  } else if (state == State::kHandshake) {
    set_reason(LARIAT_REASON_SHUTDOWN);
    close_transport();
  }
  end_event();
}

void lariat_conn::fail_client_handshake(std::string_view failure,
                                        int socket_error) {
  if (reason_set_) return;
  set_reason(LARIAT_REASON_HANDSHAKE_FAILED);
  reason_socket_error_ = static_cast<int16_t>(socket_error);
  cold_->client->failure.assign(failure.data(), failure.size());
}

void lariat_conn::read_response(const uint8_t *p, size_t n) {
  const lariat_options &limits = server()->options;
  ClientInfo &c = *cold_->client;
  if (!c.head) c.head.reset(new std::string);
  std::string &head = *c.head;
  head.append(reinterpret_cast<const char *>(p), n);
  int status = 0;
  lariat::detail::ParseResult r = lariat::detail::parse_response(
      head.data(), head.size(), limits.max_head_size, limits.max_headers,
      &status, &c.response);
  switch (r.status) {
    case ParseStatus::kIncomplete:
      return;
    case ParseStatus::kTooLarge:
    case ParseStatus::kTooManyHeaders:
      c.head.reset();
      fail_client_handshake("response head over the size limits");
      close_transport();
      return;
    case ParseStatus::kBad:
      c.head.reset();
      fail_client_handshake("the response is not HTTP/1.1");
      close_transport();
      return;
    case ParseStatus::kDone:
      break;
  }
  c.http_status = status;
  lariat::detail::ClientAgreement agreed;
  const char *failure = lariat::detail::check_response(
      status, c.response, c.session->key(), c.session->options(), &agreed);
  if (failure) {
    fail_client_handshake(failure);
    close_transport();  // keeps the head for lariat_reason_header()
    return;
  }
  std::string rest = head.substr(r.head_len);
  c.head.reset();
  c.response = lariat::detail::Request();
  if (!agreed.protocol.empty()) details().protocol = agreed.protocol;
  if (agreed.deflate) {
    cold().deflate.reset(new (std::nothrow) lariat::detail::DeflateCodec(
        c.session->options().deflate, agreed.deflate_params));
    if (!deflate()) {
      reason_socket_error_ = UV_ENOMEM;
      set_reason(LARIAT_REASON_ERROR_SOCKET);
      close_transport();
      return;
    }
  }
  version = 13;
  enter_open();
  if (state == State::kOpen) c.session->opened(this);
  if (!rest.empty() && (state == State::kOpen || state == State::kClosing))
    read_frames(reinterpret_cast<uint8_t *>(rest.data()), rest.size());
}

int lariat_conn::put_frame(uint8_t opcode, bool fin, uint8_t rsv,
                           const uint8_t *data, size_t len) {
  return server()->frame_writer.write(&out(), opcode, fin, rsv, data, len,
                                    client_);
}

int lariat_conn::put_close(uint16_t code, const uint8_t *reason, size_t len) {
  return server()->frame_writer.write_close(&out(), code, reason, len, client_);
}
