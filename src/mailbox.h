// Thread-safe delivery of info messages (lariat_post): a locked FIFO plus a
// uv_async_t that wakes the loop. One queue keeps every sender's messages
// in the order it posted them.
#ifndef LARIAT_MAILBOX_H
#define LARIAT_MAILBOX_H

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace lariat::detail {

struct Letter {
  enum Kind : uint8_t {
    kInfo,    // lariat_post(): msg for websocket_info
    kResume,  // lariat_upgrade_resume(): msg is the lariat_upgrade
    kPublish,  // lariat_publish() from another thread: msg is the copy
    kCall,     // lariat_server_defer(): msg is the call
    kConnect,  // lariat_connect(): msg is the ClientSession
    kClientClose,  // lariat_client_close()
    kWake,     // lariat_server::wake_transport(): no msg
  };
  uint64_t conn_id;
  void *msg;
  void (*free_fn)(void *);
  Kind kind = kInfo;
  uint64_t seq = 0;  // post order, set by the mailbox
  void discard() const {
    if (free_fn) free_fn(msg);
  }
};

class Mailbox {
 public:
  // |wake| runs on the loop thread when letters may be waiting.
  int init(uv_loop_t *loop, uv_async_cb wake, void *data);
  // Any thread. Hands |letter| over; after close() it is discarded at once
  // and LARIAT_ERR_STOPPED returned.
  int post(const Letter &letter);
  // As post(), but a letter refused (LARIAT_ERR_STOPPED, LARIAT_ERR_NOMEM)
  // stays the caller's: nothing is discarded. Once accepted (0), it is
  // delivered or, if the mailbox closes first, discarded.
  int try_post(const Letter &letter);
  // Loop thread: moves every waiting letter into |out| (in post order).
  void take(std::vector<Letter> *out);
  // Loop thread: refuses further posts, hands what is waiting to |rest|
  // (NULL: discards it) and closes the async handle; |closed| runs from
  // its close callback.
  void close(uv_close_cb closed, std::vector<Letter> *rest = nullptr);
  uv_async_t *handle() { return &async_; }
  // Letters posted so far; lock-free, so a signal handler may read it.
  uint64_t posted() const { return posted_.load(std::memory_order_acquire); }

 private:
  std::mutex mutex_;
  std::vector<Letter> queue_;
  bool closed_ = false;
  std::atomic<uint64_t> posted_{0};
  uv_async_t async_;
};

}  // namespace lariat::detail

#endif
