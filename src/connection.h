// The per-connection state machine: HTTP upgrade, then RFC 6455 messages
// (frames read by FrameReader, written through wslay's frame API by
// FrameWriter), the close handshake, timeouts, hibernation and the handler
// callbacks. It knows nothing of sockets: bytes come in through on_read()
// and go out through a Transport, so tests and fuzzers can drive it with
// scripted bytes.
//
// Why not wslay's event API: it closes without a status code on framing
// errors, accepts a 1-byte close payload and validates UTF-8 itself (no way
// to turn it off), while RFC 6455 and our terminate reasons need
// 1002/1007/1009 exactly and fail-fast UTF-8.
#ifndef LARIAT_CONNECTION_H
#define LARIAT_CONNECTION_H

#include <lariat/lariat.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conn_options.h"
#include "deflate.h"
#include "frame_reader.h"
#include "handshake.h"
#include "profile.h"
#include "publication.h"
#include "server.h"
#include "topics.h"
#include "transport.h"
#include "utf8.h"

namespace lariat::detail {
class ClientSession;

// A connection's working set: the head being read, the frame and message
// being assembled, output not yet written. Between messages a connection
// holds none (lariat_conn::release_active).
struct ConnActive {
  std::unique_ptr<std::string> head;  // request head; gone once answered
  uint32_t head_line_start = 0;       // where its unfinished line starts
  // Input that arrived while init's decision was deferred, or that a
  // pause (lariat_conn_set_active) left unparsed.
  std::unique_ptr<std::string> pending_input;
  FrameReader reader;
  bool in_frame = false;
  uint8_t frame_opcode = 0;
  bool frame_fin = false;
  uint64_t frame_len = 0;
  uint64_t frame_got = 0;
  bool in_message = false;
  uint8_t message_opcode = 0;
  bool message_compressed = false;
  uint64_t message_len = 0;
  std::string message;
  Utf8Validator utf8;
  std::string control;
  // Frames replied during an event leave in one write at its end.
  std::string out;
};

}  // namespace lariat::detail

struct lariat_conn {
  enum class State : uint8_t {
    kHandshake,  // reading the request head
    kDeferred,   // init returned LARIAT_DEFER; waiting for the resume
    kOpen,       // WebSocket open
    kClosing,    // our close frame is out; waiting for the peer's
    kDraining,   // nothing more to say; FIN sent, waiting for the peer's end
    kClosed,     // transport closing; terminate runs when it is closed
  };

  // A connection and its transport (a T built from |args|) in one
  // allocation; nullptr when out of memory. Not yet registered with the
  // server (lariat_server::adopt).
  template <typename T, typename... Args>
  static lariat_conn *create(lariat_server *server, lariat_conn_id id,
                             Args &&...args) {
    static_assert(alignof(T) <= alignof(lariat_conn), "transport alignment");
    void *block = ::operator new(block_size<T>(), std::nothrow);
    if (!block) return nullptr;
    new (static_cast<char *>(block) + transport_offset())
        T(std::forward<Args>(args)...);
    return new (block) lariat_conn(server, id);
  }
  // The bytes of that allocation.
  template <typename T>
  static constexpr size_t block_size() {
    return transport_offset() + sizeof(T);
  }
  // Frees the connection and its transport (the end of finalize()).
  void destroy() noexcept;
  // The client role (lariat_connect): this connection is an attempt of
  // |session|; it sends the request once the transport is connected.
  void start_client(lariat::detail::ClientSession *session);
  // The transport's connect completed: the handshake timeout starts.
  void on_connected();
  // The transport can carry the request: at once in clear, after the TLS
  // handshake over TLS.
  void on_channel_ready();
  // A client's transport could not set up its channel (TLS): |failure|
  // is what terminate's reason says; the transport error follows.
  void fail_client_handshake(std::string_view failure, int socket_error = 0);
  // lariat_client_close(): close 1000, or abort a handshake under way.
  void close_client();
  // The client session this connection is an attempt of, or null.
  lariat::detail::ClientSession *client_session() const {
    return cold_ && cold_->client ? cold_->client->session : nullptr;
  }
  bool client_connected() const {
    return cold_ && cold_->client && cold_->client->connected;
  }
  bool open_or_was_open() const { return upgraded_; }
  // Inside terminate of a failed client handshake: the response's headers.
  const lariat::detail::Request *client_response() const {
    return cold_ && cold_->client && cold_->client->head
               ? &cold_->client->response
               : nullptr;
  }
  lariat::detail::Transport *transport() const {
    return reinterpret_cast<lariat::detail::Transport *>(
        reinterpret_cast<char *>(const_cast<lariat_conn *>(this)) +
        transport_offset());
  }

  // Transport events.
  // |p| is writable: payloads are unmasked in place.
  void on_read(uint8_t *p, size_t n);
  void on_eof();
  void on_transport_error(int uv_error);
  void on_transport_closed();
  // The server's timer found this connection's deadline passed.
  void on_deadline();
  // A posted message (lariat_post) for this connection.
  void deliver_info(const lariat::detail::Letter &letter);
  // lariat_server_stop(): close 1001 or drop a handshaking connection.
  void stop();
  // The transport handed queued bytes to the kernel.
  void on_output_progress();
  // Over the server's connection limit: answer 503 and close.
  void refuse_busy();
  // lariat_upgrade_resume() reached the loop: apply the decision, or, when
  // the connection ended meanwhile, run its terminate. Takes |up|.
  void resume(lariat_upgrade *up);
  // Frames replied to this connection while another one's callback ran
  // (lariat_reply batching): write them now.
  void flush_batched();
  // Lists it for flush_batched() when the loop's outermost event ends.
  void join_batch();
  // Queues a published frame (the caller keeps the loop's event count
  // raised, so it leaves with the batch). False when the connection is
  // closing or the delivery was dropped for backpressure.
  bool deliver_published(lariat::detail::Publication &pub);
  // Its topics; created on the first subscribe.
  std::vector<lariat::detail::Subscription> *subscriptions(bool create) {
    if (create) return &cold().subs;
    return cold_ ? &cold_->subs : nullptr;
  }
  bool open() const { return state == State::kOpen; }
  // Publishes dropped under the REFUSE policy.
  uint64_t dropped() const { return cold_ ? cold_->dropped : 0; }
  // After an exception (out of memory) escaped an event: drop the
  // connection as a socket error (UV_ENOMEM), whatever its state.
  void abandon() noexcept;

  // Public API helpers.
  int reply(const lariat_frame *frame);
  int set_idle_timeout(uint64_t ms);
  int set_max_frame_size(uint64_t bytes);
  int peer(char *buf, size_t size, int *port) const;
  std::string_view path() const { return profile_->path; }
  void *handler_data() const {
    return route() ? route()->handler_data : nullptr;
  }
  bool deflating() const { return deflate() != nullptr; }
  int set_active(bool active);
  size_t buffered_amount() const;
  uint64_t deadline() const;  // UINT64_MAX: none

  // Its loop, through the profile (every profile belongs to one loop).
  lariat_server *server() const { return profile_->server; }
  lariat_conn_id id;
  void *user_state = nullptr;
  // What few connections need, allocated when first set.
  struct Details {
    std::string protocol;  // negotiated subprotocol
    std::string crash_class, crash_reason;  // lariat_conn_set_crash
    std::string remote_reason;  // the peer's close reason
    // The peer's address, read just before the socket closes, for
    // lariat_conn_peer() in terminate; empty when it could not be read.
    std::string peer;
    int peer_port = 0;
  };
  Details &details() {
    Cold &c = cold();
    if (!c.details) c.details.reset(new Details);
    return *c.details;
  }
  const Details *details_if_any() const {
    return cold_ ? cold_->details.get() : nullptr;
  }

 private:
  // Handshake.
  void read_head(const uint8_t *p, size_t n);
  // The client side: the server's response to our request.
  void read_response(const uint8_t *p, size_t n);
  // Frames out, masked in the client role.
  int put_frame(uint8_t opcode, bool fin, uint8_t rsv, const uint8_t *data,
                size_t len);
  int put_close(uint16_t code, const uint8_t *reason, size_t len);
  void answer_request(const lariat::detail::Request &req);
  // What init decided (|result|), applied: 500, the plain reply, 426, or
  // the upgrade with the options set on |up|.
  void complete_init(lariat_upgrade &up, int result);
  // The upgrade is agreed (either role): kOpen, then websocket_init.
  void enter_open();
  // A plain HTTP response (Content-Length, Connection: close), then FIN.
  void answer_plain(
      int status,
      const std::vector<std::pair<std::string, std::string>> &headers = {},
      std::string_view body = {});
  // Frames and messages.
  void read_frames(uint8_t *p, size_t n);
  // What a pause left of a read (Active::pending_input), once resumed.
  void read_pending_input();
  void on_chunk(const lariat::detail::FrameChunk &chunk);
  bool start_frame(const lariat::detail::FrameChunk &chunk);
  void on_control_frame();
  void on_close_frame();
  void deliver_message(const uint8_t *p, size_t n);
  void on_compressed_chunk(const uint8_t *p, size_t n, bool message_done);
  // Callbacks: |result| is what a handler callback returned.
  void after_callback(int result);
  template <typename Call>
  int call_handler(Call call);
  void call_handle(const lariat_frame &frame);
  // Closing.
  void set_reason(int kind);
  // |reason| (may be empty) goes into the close frame.
  void fail_connection(int kind, uint16_t close_code,
                       std::string_view reason = {});
  void fail_too_big();
  void start_close(int kind, uint16_t close_code);
  void begin_drain();
  void close_transport();
  // Keeps the peer's address for terminate before the socket goes.
  void remember_peer() noexcept;
  // Output and lifetime.
  // reply() between begin_event() and end_event(); |over_cap|: the frame
  // does not fit under max_queued.
  int reply_in_event(const lariat_frame *frame, bool over_cap);
  void flush();
  void hibernate_if_idle();
  // Open, at a message boundary, nothing kept: the working set can go.
  bool between_messages() const;
  // Gives the working set back to the loop thread's spares (an idle
  // connection between messages holds none; the next event takes one
  // without a malloc).
  void release_active();
  // Every entry point runs between begin_event() and end_event(): output
  // is flushed and a pending teardown runs when the outermost one ends.
  void begin_event() {
    ++event_depth_;
    ++server()->events_running;
  }
  // False when the connection is gone (terminate ran, |this| deleted).
  bool end_event();
  // Every change of |state| goes through here; it refuses a move the state
  // machine does not have (and says so in debug builds).
  bool move_to(State next);
  void finalize();
  void reschedule();

  lariat_conn(lariat_server *server, lariat_conn_id id);
  ~lariat_conn();

  const lariat::detail::Route *route() const { return profile_->route; }
  const lariat::detail::ConnOptions &opts() const { return profile_->opts; }
  // Moves to the profile of this route, path and options (copy on write
  // for an option changed at run time). Throws std::bad_alloc.
  void set_profile(const lariat::detail::Route *route, std::string_view path,
                   const lariat::detail::ConnOptions &opts);
  lariat::detail::DeflateCodec *deflate() const {
    return cold_ ? cold_->deflate.get() : nullptr;
  }

  // The working set of a connection that is doing something: the request
  // head while it arrives, then frame and message assembly and the output
  // of the current event. Allocated on the first read and given back by
  // hibernate, so an idle hibernated connection keeps only what identifies
  // it.
  using Active = lariat::detail::ConnActive;
  Active &active() {
    if (!active_) take_active();
    return *active_;
  }
  void take_active();
  std::string &out() { return active().out; }
  bool output_empty() const { return !active_ || active_->out.empty(); }

  // A client attempt's handshake: what it sent and what came back.
  struct ClientInfo {
    lariat::detail::ClientSession *session = nullptr;
    bool connected = false;
    int http_status = 0;
    std::string failure;  // "" when none was set
    std::unique_ptr<std::string> head;  // the response head, kept for
    lariat::detail::Request response;   // terminate when it failed
  };
  // What only some connections have: allocated when first needed.
  struct Cold {
    std::unique_ptr<ClientInfo> client;
    std::unique_ptr<Details> details;
    // Set when permessage-deflate was negotiated.
    std::unique_ptr<lariat::detail::DeflateCodec> deflate;
    std::vector<lariat::detail::Subscription> subs;
    uint64_t dropped = 0;
  };
  Cold &cold() {
    if (!cold_) cold_.reset(new Cold);
    return *cold_;
  }

  // Route, path and options; the loop's handshake profile until routed.
  lariat::detail::Profile *profile_;
  std::unique_ptr<Active> active_;
  std::unique_ptr<Cold> cold_;
  uint64_t last_recv_ = 0;
  // One word for two times that are never needed together.
  union {
    uint64_t phase_started_ = 0;  // not open: when the current state began
    uint64_t ping_sent_at_;       // open: 0, or when the awaited ping left
  };


 public:
  State state = State::kHandshake;
  uint8_t version = 0;
  bool in_batch : 1;  // listed in server->batched
  bool hibernating : 1;
  // Its entry in the loop's timer heap (TimerHeap::kNoSlot: none).
  uint32_t timer_slot = lariat::detail::TimerHeap::kNoSlot;

 private:
  // Why the connection ends; the first cause wins. The lariat_reason
  // handed to terminate is built from these at the end.
  int16_t reason_socket_error_ = 0;  // a libuv code: -4095 and above
  uint16_t reason_code_ = 0;
  int8_t reason_kind_ = 0;
  uint8_t event_depth_ = 0;  // nested events (a reply inside a callback)
  bool reason_set_ : 1;
  bool reached_init_ : 1;
  bool upgraded_ : 1;
  bool in_drain_ : 1;  // websocket_drain is running
  // init returned LARIAT_DEFER and the resume has not arrived: the
  // connection outlives its transport until it does.
  bool awaiting_resume_ : 1;
  // Flow control.
  bool paused_ : 1;
  bool resume_input_ : 1;  // parse pending_input at the end of this event
  bool above_low_water_ : 1;
  bool hibernate_requested_ : 1;
  bool finalize_pending_ : 1;
  bool client_ : 1;  // made by lariat_connect: masks, expects no mask
  // Bytes were read in this event: at its end a connection between
  // messages gives its working set back (release_active). Deliveries
  // alone keep it, so a fanout does not pay for one per delivery.
  bool read_in_event_ : 1;

  // Where the transport starts: right after the connection.
  static constexpr size_t transport_offset() {
    return (sizeof(lariat_conn) + alignof(lariat_conn) - 1) &
           ~(alignof(lariat_conn) - 1);
  }
};

template <typename T, typename... Args>
lariat_conn *lariat_server::accept(Args &&...args) {
  lariat_conn *conn =
      lariat_conn::create<T>(this, new_conn_id(), std::forward<Args>(args)...);
  if (conn && !adopt(conn)) return nullptr;
  return conn;
}

#endif
