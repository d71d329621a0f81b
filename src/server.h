// The server: listeners, routes, the connection registry, one timer heap,
// the mailbox, and the stop sequence.
#ifndef LARIAT_SERVER_H
#define LARIAT_SERVER_H

#include <lariat/lariat.h>
#include <uv.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "conn_table.h"
#include "frame_writer.h"
#include "mailbox.h"
#include "mask_key.h"
#include "options.h"
#include "profile.h"
#include "timer_heap.h"
#include "topics.h"
#include "transport.h"
#include "write_queue.h"

namespace lariat::detail {

class ClientSession;
class Bridge;
// lariat_conn's working set (connection.h), freed where it is complete.
struct ConnActive;
struct ConnActiveFree {
  void operator()(ConnActive *a) const noexcept;
};

struct Route {
  lariat_handler handler;
  void *handler_data;
};

}  // namespace lariat::detail

// One event loop and everything that lives on it. A server with N threads
// is N of these: the first is the handle users hold (|primary| points to
// it from every loop), the others are created with it and run on threads
// of their own. Each loop has its own listener on the port (SO_REUSEPORT),
// connections, timers, mailbox and topics; they share nothing but the
// immutable configuration and the atomics of the primary.
struct lariat_server {
  lariat_server *primary = this;
  unsigned index = 0;  // in primary->loops; the low byte of connection ids
  // Primary only: every loop (itself first), the threads running the
  // others, and what is counted across loops.
  std::vector<lariat_server *> loops;
  std::vector<uv_thread_t> threads;  // touched by lariat_server_run() only
  std::atomic<bool> started{false};  // lariat_server_run() began
  std::atomic<size_t> connection_total{0};
  std::atomic<unsigned> loops_running{0};
  // The Redis bridge (bridge.h), on the primary's loop; read from any
  // thread, freed by lariat_server_del() only.
  std::atomic<lariat::detail::Bridge *> bridge{nullptr};
  bool multi() const { return primary->loops.size() > 1; }
  // The loop that runs connection |id|, or nullptr.
  lariat_server *loop_of(lariat_conn_id id) const {
    size_t i = id & 0xff;
    return i < primary->loops.size() ? primary->loops[i] : nullptr;
  }
  // The loop whose thread this is, or nullptr.
  lariat_server *current_loop() const {
    for (lariat_server *l : primary->loops)
      if (l->on_loop_thread()) return l;
    return nullptr;
  }
  uv_loop_t *loop = nullptr;
  std::unique_ptr<uv_loop_t> owned_loop;
  lariat_options options;
  std::map<std::string, lariat::detail::Route, std::less<>> routes;
  // Routes ending in "/*", by prefix (without the '*'), longest first.
  std::vector<std::pair<std::string, lariat::detail::Route>> prefix_routes;
  // Each listener's uv_tcp_t is the first member of a Listener
  // (server.cc), which says whether it serves TLS.
  std::vector<uv_tcp_t *> listeners;
  lariat::detail::ConnTable conns;
  // What connections share (route, path, options), and the profile of
  // those not yet routed: the server's options.
  lariat::detail::ProfileTable profiles{this};
  lariat::detail::Profile handshake_profile{this};
  // The thread that runs the loop: the last one that ran a lariat callback
  // of it, or the creator until the loop first runs. Loop-thread functions
  // compare against it (lariat_strerror of INVALID_STATE names
  // lariat_post()).
  std::atomic<uv_thread_t> loop_thread;
  bool on_loop_thread() const {
    uv_thread_t self = uv_thread_self();
    uv_thread_t owner = loop_thread.load(std::memory_order_relaxed);
    return uv_thread_equal(&self, &owner) != 0;
  }
  void enter_loop_thread() {
    loop_thread.store(uv_thread_self(), std::memory_order_relaxed);
  }
  // Callbacks running on this loop (all connections): while any runs,
  // replies to connections without an event of their own are batched.
  int events_running = 0;
  std::vector<lariat_conn_id> batched;
  void batch(lariat_conn_id id) { batched.push_back(id); }
  void flush_batched();
  // lariat_server_stop_async(): a flag and its own async handle, so that a
  // signal handler may call it (no lock, no allocation).
  std::atomic<bool> stop_requested{false};
  // Letters posted before the stop request (Mailbox::posted() then) are
  // delivered; later ones find their connection closing.
  std::atomic<uint64_t> stop_cutoff{UINT64_MAX};
  uv_async_t stop_async;
  bool stop_async_open = false;
  void (*on_stopped)(lariat_server *, void *) = nullptr;
  void *on_stopped_data = nullptr;
  lariat::detail::TopicRegistry topics;
  // Frames built for publishes (plain and compressed): tests check that a
  // publish costs one per loop and variant, not one per subscriber.
  uint64_t frames_encoded = 0;
  // Delivers |frame| to |topic|'s subscribers but |except|; returns how
  // many got it queued.
  int publish_local(std::string_view topic, const lariat_frame &frame,
                    const lariat_conn *except);
  // Masking keys and nonces of this loop's client connections.
  lariat::detail::MaskKeys mask_keys;
  // Calls connection |id|'s Transport::woken() from the loop, soon, and
  // outside whatever callback runs now; 0 or LARIAT_ERR_STOPPED.
  int wake_transport(lariat_conn_id id);
  lariat::detail::FrameWriter frame_writer;
  // Clients (lariat_connect) of this loop by id, from their connect letter
  // to their last terminate; owned here.
  std::unordered_map<lariat_conn_id, lariat::detail::ClientSession *> clients;
  lariat::detail::Mailbox mailbox;
  lariat::detail::TimerHeap timers;
  uv_timer_t timer;
  uint64_t timer_armed_at = UINT64_MAX;  // deadline the uv timer waits for
  // A read buffer for every connection of this loop: reads are consumed
  // before the read callback returns.
  std::unique_ptr<uint8_t[]> read_buffer;
  size_t read_buffer_size = 64 * 1024;
  // Message and output buffers above kKeepCapacity are not kept by a
  // connection after use (one large message must not pin its size on a
  // connection that then idles); the loop keeps the largest one instead,
  // for the next connection that needs that much - a stream of large
  // messages then reuses warm memory instead of the allocator trimming
  // and re-faulting pages for each one. Clears |buf|.
  static constexpr size_t kKeepCapacity = 64 * 1024;
  std::string spare_buffer;
  void recycle(std::string *buf) noexcept;
  // An empty |buf| about to take |want| bytes takes the spare instead,
  // when that is larger.
  void reuse(std::string *buf, size_t want) noexcept;
  // Working sets of this loop's connections between messages
  // (lariat_conn::release_active), for the next event to take.
  std::vector<std::unique_ptr<lariat::detail::ConnActive,
                              lariat::detail::ConnActiveFree>>
      spare_actives;
  // Compressed output of one message at a time, shared by the loop's
  // connections (it is copied into a connection's output at once).
  std::string deflate_scratch;
  // What the loop's TLS transports share, both used up before the call
  // that fills them returns: the ciphertext OpenSSL writes during one
  // call, and the plaintext decrypted from one read.
  std::string tls_out;
  std::unique_ptr<uint8_t[]> tls_plain;
  std::string tls_opened;  // the same, from connections past their SSL
  size_t open_handles = 0;  // uv handles not yet through their close cb
  // The sockets' bytes waiting for the kernel (TcpTransport).
  lariat::detail::WriteQueues write_queues;
  bool stopping = false;
  bool handles_closed = false;
  bool loop_done = false;  // counted out of primary->loops_running

  // Milliseconds of the loop's clock; tests and fuzzers that drive
  // connections without running the loop set |manual_clock| instead.
  uint64_t manual_clock = 0;
  uint64_t now() const { return manual_clock ? manual_clock : uv_now(loop); }
  const lariat::detail::Route *find_route(std::string_view path) const;
  // Makes sure the uv timer wakes the loop no later than |deadline|.
  void arm_timer(uint64_t deadline);
  // A connection over a new T(args...), registered; nullptr when out of
  // memory (defined in connection.h).
  template <typename T, typename... Args>
  lariat_conn *accept(Args &&...args);
  // A process-unique id whose low byte names this loop.
  lariat_conn_id new_conn_id();
  // Registers a connection made by lariat_conn::create(); false when out
  // of memory (the connection is then dropped).
  bool adopt(lariat_conn *conn);
  // Called by a connection when it is gone, just before it is deleted.
  void forget(lariat_conn *conn);
  void on_timer();
  // Delivers the waiting letters posted before a stop request (all of
  // them when none was made); returns the others, for after the stop.
  std::vector<lariat::detail::Letter> deliver_mail();
  void deliver(const lariat::detail::Letter &letter);
  void finish_stop_if_idle();
  // Every handle of this loop counts its close here (the last one ends
  // the loop, and the last loop the server).
  void handle_closed();
};

#endif
