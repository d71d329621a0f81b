#include "frame_context_pool.h"

namespace lariat::detail {

FrameContextPool::~FrameContextPool() {
  for (wslay_frame_context_ptr ctx : spare_) wslay_frame_context_free(ctx);
}

wslay_frame_context_ptr FrameContextPool::take() {
  if (!spare_.empty()) {
    wslay_frame_context_ptr ctx = spare_.back();
    spare_.pop_back();
    return ctx;
  }
  wslay_frame_callbacks callbacks = {nullptr, recv_, nullptr};
  wslay_frame_context_ptr ctx = nullptr;
  if (wslay_frame_context_init(&ctx, &callbacks, user_data_) != 0)
    return nullptr;
  return ctx;
}

void FrameContextPool::give(wslay_frame_context_ptr ctx) {
  if (spare_.size() < kMaxSpare) {
    spare_.push_back(ctx);
    return;
  }
  wslay_frame_context_free(ctx);
}

}  // namespace lariat::detail
