// Incremental, fail-fast UTF-8 validation of text messages and close
// reasons (RFC 3629 as RFC 6455 requires it).
#ifndef LARIAT_UTF8_H
#define LARIAT_UTF8_H

#include <cstddef>
#include <cstdint>

namespace lariat::detail {

class Utf8Validator {
 public:
  // Feeds the next |n| bytes. Returns false as soon as the bytes seen so far
  // cannot be the start of valid UTF-8 (fail fast: F4 90 is rejected at the
  // 90, ED A0 at the A0, C0 at the C0), and keeps returning false after.
  bool feed(const uint8_t *p, size_t n);
  // True when everything fed so far ends on a character boundary.
  bool complete() const { return state_ == kAccept; }
  bool failed() const { return state_ == kReject; }
  void reset() { state_ = kAccept; }

  static constexpr uint32_t kAccept = 0;
  static constexpr uint32_t kReject = 12;

 private:
  uint32_t state_ = kAccept;
};

// Whole-buffer check: valid and complete.
bool utf8_valid(const uint8_t *p, size_t n);

}  // namespace lariat::detail

#endif
