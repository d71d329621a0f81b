// wslay frame contexts for reading, shared by a server's connections. A
// context is 4.2 KiB, and a connection needs one only while a frame is
// half read, so connections borrow one for a read and give it back at a
// frame boundary: an idle connection holds none, and the echo path
// allocates nothing.
#ifndef LARIAT_FRAME_CONTEXT_POOL_H
#define LARIAT_FRAME_CONTEXT_POOL_H

#include <wslay/wslay.h>

#include <vector>

namespace lariat::detail {

class FrameContextPool {
 public:
  // Every context calls |recv| with |user_data|.
  FrameContextPool(wslay_frame_recv_callback recv, void *user_data)
      : recv_(recv), user_data_(user_data) {}
  ~FrameContextPool();
  FrameContextPool(const FrameContextPool &) = delete;
  FrameContextPool &operator=(const FrameContextPool &) = delete;

  // A context at a frame boundary with nothing buffered; nullptr when out
  // of memory.
  wslay_frame_context_ptr take();
  // Only a context at a frame boundary with nothing buffered may come back.
  void give(wslay_frame_context_ptr ctx);

 private:
  static constexpr size_t kMaxSpare = 64;
  wslay_frame_recv_callback recv_;
  void *user_data_;
  std::vector<wslay_frame_context_ptr> spare_;
};

}  // namespace lariat::detail

#endif
