// Serialises frames with wslay's frame API into a connection's output
// buffer: unmasked for the server role, masked with keys from |keys| for
// the client role. One writer serves every connection of a
// server: its send callback always takes every byte, so wslay's output
// state is back at "prepare header" after each frame.
#ifndef LARIAT_FRAME_WRITER_H
#define LARIAT_FRAME_WRITER_H

#include <lariat/lariat.h>
#include <wslay/wslay.h>

#include <cstdint>
#include <exception>
#include <string>

#include "mask_key.h"
#include "transport.h"

namespace lariat::detail {

class FrameWriter {
 public:
  FrameWriter() = default;
  ~FrameWriter();
  FrameWriter(const FrameWriter &) = delete;
  FrameWriter &operator=(const FrameWriter &) = delete;

  // 0, or LARIAT_ERR_NOMEM. |keys| makes the masking keys.
  int init(MaskKeys *keys);
  // Each write returns 0, or LARIAT_ERR_INVALID_ARGUMENT when wslay
  // refuses the frame (nothing is written then). Out of memory throws
  // std::bad_alloc, with nothing appended to |out|.
  // Appends one whole frame to |out|.
  int write(std::string *out, uint8_t opcode, bool fin, uint8_t rsv,
            const uint8_t *data, size_t len, bool mask = false);
  // Sends one whole frame straight to |transport|: the header, then the
  // payload from the caller's buffer, without copying it.
  int write_to(Transport *transport, uint8_t opcode, uint8_t rsv,
               const uint8_t *data, size_t len);
  // Appends a close frame; |code| 0 means no code (and no reason).
  int write_close(std::string *out, uint16_t code, const uint8_t *reason,
                  size_t len, bool mask = false);

 private:
  static ssize_t on_send(const uint8_t *data, size_t len, int flags,
                         void *user_data);
  static int on_genmask(uint8_t *buf, size_t len, void *user_data);
  MaskKeys *keys_ = nullptr;
  int send(wslay_frame_iocb *iocb);
  wslay_frame_context_ptr ctx_ = nullptr;
  // Masked frames have a context of their own: wslay 1.1 never clears a
  // context's mask flag, so an unmasked frame after a masked one would be
  // XORed with the old key.
  wslay_frame_context_ptr masked_ctx_ = nullptr;
  // An exception from inside on_send, rethrown once wslay has returned:
  // it must not unwind through wslay's C frames.
  std::exception_ptr error_;
  std::string *out_ = nullptr;
  // write_to(): where the payload goes, and the header waiting for it.
  Transport *direct_ = nullptr;
  uint8_t header_[14];
  size_t header_len_ = 0;
};

// Checks a frame a handler wants to send: 0, or LARIAT_ERR_INVALID_ARGUMENT,
// LARIAT_ERR_BAD_CLOSE_CODE, LARIAT_ERR_TOO_LARGE.
int validate_outgoing(const lariat_frame *frame);

// Close codes a peer may put on the wire (RFC 6455 7.4, IANA registry).
bool peer_close_code_valid(uint16_t code);

}  // namespace lariat::detail

#endif
