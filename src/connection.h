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
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conn_options.h"
#include "deflate.h"
#include "frame_reader.h"
#include "handshake.h"
#include "publication.h"
#include "server.h"
#include "topics.h"
#include "transport.h"
#include "utf8.h"

struct lariat_conn {
  enum class State {
    kHandshake,  // reading the request head
    kDeferred,   // init returned LARIAT_DEFER; waiting for the resume
    kOpen,       // WebSocket open
    kClosing,    // our close frame is out; waiting for the peer's
    kDraining,   // nothing more to say; FIN sent, waiting for the peer's end
    kClosed,     // transport closing; terminate runs when it is closed
  };

  lariat_conn(lariat_server *server, lariat_conn_id id,
              std::unique_ptr<lariat::detail::Transport> transport);
  ~lariat_conn();

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
    if (!subs_ && create) subs_.reset(new std::vector<lariat::detail::Subscription>);
    return subs_.get();
  }
  bool open() const { return state == State::kOpen; }
  uint64_t dropped = 0;  // publishes dropped under the REFUSE policy
  bool in_batch = false;  // listed in server->batched
  // After an exception (out of memory) escaped an event: drop the
  // connection as a socket error (UV_ENOMEM), whatever its state.
  void abandon() noexcept;

  // Public API helpers.
  int reply(const lariat_frame *frame);
  int set_idle_timeout(uint64_t ms);
  int set_max_frame_size(uint64_t bytes);
  int peer(char *buf, size_t size, int *port) const;
  std::string_view path() const {
    return path_ ? std::string_view(path_.get() + sizeof(uint32_t),
                                    path_len())
                 : std::string_view();
  }
  void *handler_data() const { return route_ ? route_->handler_data : nullptr; }
  int set_active(bool active);
  size_t buffered_amount() const;
  uint64_t deadline() const;  // UINT64_MAX: none
  // The earliest deadline this connection has in the server's timer heap
  // (UINT64_MAX: none); the server clears it when that entry pops.
  uint64_t scheduled = UINT64_MAX;

  lariat_server *server;
  lariat_conn_id id;
  State state = State::kHandshake;
  void *user_state = nullptr;
  int version = 0;
  bool hibernating = false;
  // Set when permessage-deflate was negotiated.
  std::unique_ptr<lariat::detail::DeflateCodec> deflate;
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
    if (!details_) details_.reset(new Details);
    return *details_;
  }
  const Details *details_if_any() const { return details_.get(); }

 private:
  // Handshake.
  void read_head(const uint8_t *p, size_t n);
  void answer_request(const lariat::detail::Request &req);
  // What init decided (|result|), applied: 500, the plain reply, 426, or
  // the upgrade with the options set on |up|.
  void complete_init(lariat_upgrade &up, int result);
  // A plain HTTP response (Content-Length, Connection: close), then FIN.
  void answer_plain(
      int status,
      const std::vector<std::pair<std::string, std::string>> &headers = {},
      std::string_view body = {});
  // Frames and messages.
  void read_frames(uint8_t *p, size_t n);
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
  // Every entry point runs between begin_event() and end_event(): output
  // is flushed and a pending teardown runs when the outermost one ends.
  void begin_event() {
    ++event_depth_;
    ++server->events_running;
  }
  // False when the connection is gone (terminate ran, |this| deleted).
  bool end_event();
  // Every change of |state| goes through here; it refuses a move the state
  // machine does not have (and says so in debug builds).
  bool move_to(State next);
  void finalize();
  void reschedule();

  std::unique_ptr<lariat::detail::Transport> transport_;
  const lariat::detail::Route *route_ = nullptr;
  bool reached_init_ = false;
  bool upgraded_ = false;
  bool in_drain_ = false;   // websocket_drain is running
  // The request's path, kept for lariat_conn_path(): a length, then the
  // bytes; one allocation.
  std::unique_ptr<char[]> path_;
  uint32_t path_len() const {
    uint32_t n;
    std::memcpy(&n, path_.get(), sizeof n);
    return n;
  }
  // Input that arrived while init's decision was deferred.
  std::unique_ptr<std::string> pending_input_;
  uint64_t phase_started_ = 0;  // when the current state began (ms)
  uint64_t last_recv_ = 0;
  // What init set (conn_options.h); max_frame_size is the server's until
  // then.
  lariat::detail::ConnOptions opts_;
  // Flow control and keepalive.
  bool paused_ = false;
  bool above_low_water_ = false;
  uint64_t ping_sent_at_ = 0;  // 0: no ping awaiting an answer

  std::unique_ptr<std::string> head_;  // request head; gone once answered
  uint32_t head_line_start_ = 0;       // where its unfinished line starts
  // init returned LARIAT_DEFER and the resume has not arrived: the
  // connection outlives its transport until it does.
  bool awaiting_resume_ = false;
  std::unique_ptr<Details> details_;
  std::unique_ptr<std::vector<lariat::detail::Subscription>> subs_;

  // Receiving: frame and message assembly. Allocated on the first read
  // and given back by hibernate, so an idle hibernated connection keeps
  // only what identifies it.
  struct Receiver {
    lariat::detail::FrameReader reader;
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
    lariat::detail::Utf8Validator utf8;
    std::string control;
  };
  std::unique_ptr<Receiver> rx_;

  // Output: frames replied during an event leave in one write at its end.
  std::string out_;
  int event_depth_ = 0;
  bool hibernate_requested_ = false;
  bool close_received_ = false;
  bool finalize_pending_ = false;

  // Why the connection ends; the first cause wins. The lariat_reason
  // handed to terminate is built from these at the end.
  bool reason_set_ = false;
  int8_t reason_kind_ = 0;
  uint16_t reason_code_ = 0;
  int reason_socket_error_ = 0;
};

#endif
