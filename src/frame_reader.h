// Reads client frames (RFC 6455 5.2) straight from the bytes libuv read:
// headers are parsed as they arrive (byte by byte if need be), payloads are
// unmasked in place, eight bytes at a time, and handed out without a copy.
//
// Why not wslay_frame_recv: it copies everything through a 4 KiB buffer of
// its own and unmasks one byte at a time; profiles of 16 KiB and 1 MiB
// echoes put two thirds of the server's time there. wslay still writes
// every frame lariat sends (FrameWriter).
#ifndef LARIAT_FRAME_READER_H
#define LARIAT_FRAME_READER_H

#include <cstddef>
#include <cstdint>

namespace lariat::detail {

// One piece of a frame's payload, with the frame's header fields.
struct FrameChunk {
  bool fin;
  uint8_t rsv;     // the three RSV bits, RSV1 = 4
  uint8_t opcode;
  bool masked;
  uint64_t payload_length;  // of the whole frame
  const uint8_t *data;      // unmasked, inside the caller's buffer
  size_t len;
};

class FrameReader {
 public:
  enum class Result {
    kChunk,     // |chunk| holds the next piece (possibly empty)
    kNeedMore,  // every byte given was used; call again with more
    kError,     // a header RFC 6455 forbids: fail with 1002
  };

  // Takes bytes from [*p, *p + *n), advancing both, and unmasks payload in
  // place. Each frame yields at least one chunk, the first as soon as its
  // header is complete, even with no payload yet (so it may be empty).
  Result next(uint8_t **p, size_t *n, FrameChunk *chunk);

  // True between frames with no partial header kept.
  bool at_frame_boundary() const { return !in_payload_ && header_len_ == 0; }

 private:
  bool header_valid_so_far() const;
  void parse_header();

  uint8_t header_[14];
  uint8_t header_len_ = 0;
  bool in_payload_ = false;
  bool header_announced_ = false;  // the frame's first chunk went out
  FrameChunk frame_ = {};
  uint64_t remaining_ = 0;
  uint8_t mask_[4] = {0, 0, 0, 0};
  uint64_t offset_ = 0;  // payload bytes already unmasked
};

// XORs |n| bytes with the 4-byte |key|, starting |offset| bytes into the
// payload. Exposed for tests.
void unmask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset);

}  // namespace lariat::detail

#endif
