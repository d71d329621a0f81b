// Masking keys for client frames and Sec-WebSocket-Key nonces. RFC 6455
// 5.3 wants them unpredictable, "derived from a strong source of entropy":
// a ChaCha20 keystream (nettle) keyed from getrandom(), read 256 bytes at a
// time, so a frame costs four bytes of keystream, not a system call.
#ifndef LARIAT_MASK_KEY_H
#define LARIAT_MASK_KEY_H

#include <nettle/chacha.h>

#include <cstddef>
#include <cstdint>

namespace lariat::detail {

class MaskKeys {
 public:
  void fill(uint8_t *out, size_t n);

 private:
  void refill();
  chacha_ctx ctx_;
  bool seeded_ = false;
  uint8_t buf_[256];
  size_t pos_ = sizeof buf_;
};

}  // namespace lariat::detail

#endif
