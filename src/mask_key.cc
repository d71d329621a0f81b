#include "mask_key.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstring>

namespace lariat::detail {

namespace {

// The kernel's CSPRNG; /dev/urandom where getrandom() is missing.
void system_random(uint8_t *out, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(out + got, n - got, 0);
    if (r > 0) {
      got += static_cast<size_t>(r);
      continue;
    }
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t m = read(fd, out + got, n - got);
      close(fd);
      if (m > 0) got += static_cast<size_t>(m);
    }
  }
}

}  // namespace

void MaskKeys::refill() {
  if (!seeded_) {
    uint8_t key[CHACHA_KEY_SIZE], nonce[CHACHA_NONCE_SIZE];
    system_random(key, sizeof key);
    system_random(nonce, sizeof nonce);
    chacha_set_key(&ctx_, key);
    chacha_set_nonce(&ctx_, nonce);
    seeded_ = true;
  }
  std::memset(buf_, 0, sizeof buf_);
  chacha_crypt(&ctx_, sizeof buf_, buf_, buf_);
  pos_ = 0;
}

void MaskKeys::fill(uint8_t *out, size_t n) {
  while (n > 0) {
    if (pos_ == sizeof buf_) refill();
    size_t take = sizeof buf_ - pos_ < n ? sizeof buf_ - pos_ : n;
    std::memcpy(out, buf_ + pos_, take);
    pos_ += take;
    out += take;
    n -= take;
  }
}

}  // namespace lariat::detail
