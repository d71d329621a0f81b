#include "mailbox.h"

#include <lariat/lariat.h>

#include <new>

namespace lariat::detail {

int Mailbox::init(uv_loop_t *loop, uv_async_cb wake, void *data) {
  int rc = uv_async_init(loop, &async_, wake);
  if (rc == 0) async_.data = data;
  return rc;
}

int Mailbox::try_post(const Letter &letter) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return LARIAT_ERR_STOPPED;
  try {
    queue_.push_back(letter);
  } catch (const std::bad_alloc &) {
    return LARIAT_ERR_NOMEM;
  }
  queue_.back().seq = posted_.fetch_add(1, std::memory_order_acq_rel);
  // Sent under the lock so close() cannot close the handle between the
  // push and the wake-up.
  uv_async_send(&async_);
  return 0;
}

int Mailbox::post(const Letter &letter) {
  int rc = try_post(letter);
  if (rc != 0) letter.discard();  // handed over in every case
  return rc;
}

void Mailbox::take(std::vector<Letter> *out) {
  std::lock_guard<std::mutex> lock(mutex_);
  out->swap(queue_);
}

void Mailbox::close(uv_close_cb closed, std::vector<Letter> *rest_out) {
  std::vector<Letter> rest;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
    rest.swap(queue_);
  }
  if (rest_out)
    rest_out->swap(rest);
  else
    for (const Letter &l : rest) l.discard();
  uv_close(reinterpret_cast<uv_handle_t *>(&async_), closed);
}

}  // namespace lariat::detail
