#include "frame_reader.h"

#include <cstring>

namespace lariat::detail {

void unmask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset) {
  uint8_t k[4];
  for (int i = 0; i < 4; ++i) k[i] = key[(offset + i) & 3];
  uint32_t k32;
  std::memcpy(&k32, k, 4);
  const uint64_t k64 = (static_cast<uint64_t>(k32) << 32) | k32;
  size_t i = 0;
  // memcpy in and out keeps this free of alignment and aliasing trouble;
  // compilers turn it into plain (and often vector) loads and stores.
  for (; i + 32 <= n; i += 32) {
    uint64_t v[4];
    std::memcpy(v, p + i, 32);
    v[0] ^= k64;
    v[1] ^= k64;
    v[2] ^= k64;
    v[3] ^= k64;
    std::memcpy(p + i, v, 32);
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= k64;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] ^= k[i & 3];
}

// False as soon as the header bytes so far show what RFC 6455 5.2/5.5
// forbids outright: control frames over 125 bytes or fragmented, lengths
// not in their minimal form, 64-bit lengths with the top bit set. The
// caller checks the rest (RSV, opcodes, masking), where it knows the
// negotiated extensions.
bool FrameReader::header_valid_so_far() const {
  if (header_len_ < 2) return true;
  uint8_t len7 = header_[1] & 0x7f;
  bool control = (header_[0] & 0x8) != 0;
  if (control && (len7 > 125 || !(header_[0] & 0x80))) return false;
  if (len7 == 126 && header_len_ >= 4)
    return ((header_[2] << 8) | header_[3]) >= 126;
  if (len7 == 127 && header_len_ >= 10) {
    if (header_[2] & 0x80) return false;
    uint64_t len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | header_[2 + i];
    return len >= 65536;
  }
  return true;
}

void FrameReader::parse_header() {
  frame_.fin = (header_[0] & 0x80) != 0;
  frame_.rsv = (header_[0] >> 4) & 7;
  frame_.opcode = header_[0] & 0x0f;
  frame_.masked = (header_[1] & 0x80) != 0;
  uint64_t len = header_[1] & 0x7f;
  size_t at = 2;
  if (len == 126) {
    len = (static_cast<uint64_t>(header_[2]) << 8) | header_[3];
    at = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | header_[2 + i];
    at = 10;
  }
  if (frame_.masked) std::memcpy(mask_, header_ + at, 4);
  frame_.payload_length = len;
  remaining_ = len;
  offset_ = 0;
}

FrameReader::Result FrameReader::next(uint8_t **p, size_t *n,
                                      FrameChunk *chunk) {
  if (!in_payload_) {
    // Gather the header: 2 bytes, then what they say follows.
    while (true) {
      size_t need = 2;
      if (header_len_ >= 2) {
        uint8_t len7 = header_[1] & 0x7f;
        need += len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        if (header_[1] & 0x80) need += 4;
      }
      if (header_len_ >= need) break;
      if (*n == 0) return Result::kNeedMore;
      size_t take = need - header_len_;
      if (take > *n) take = *n;
      // One byte at a time while the length is unknown, so a bad header
      // fails at the byte that makes it bad.
      if (header_len_ < 2) take = 1;
      std::memcpy(header_ + header_len_, *p, take);
      header_len_ = static_cast<uint8_t>(header_len_ + take);
      *p += take;
      *n -= take;
      if (!header_valid_so_far()) return Result::kError;
    }
    parse_header();
    header_len_ = 0;
    in_payload_ = true;
    header_announced_ = false;
  }
  size_t take = remaining_ < *n ? static_cast<size_t>(remaining_) : *n;
  // The first chunk goes out with the header, payload or not, so header
  // errors and oversized frames are caught before any payload arrives.
  if (take == 0 && header_announced_) return Result::kNeedMore;
  if (frame_.masked) unmask(*p, take, mask_, offset_);
  *chunk = frame_;
  chunk->data = *p;
  chunk->len = take;
  *p += take;
  *n -= take;
  remaining_ -= take;
  offset_ += take;
  header_announced_ = true;
  if (remaining_ == 0) in_payload_ = false;
  return Result::kChunk;
}

}  // namespace lariat::detail
