#include "frame_writer.h"

#include <cstring>

namespace lariat::detail {

FrameWriter::~FrameWriter() {
  if (ctx_) wslay_frame_context_free(ctx_);
  if (masked_ctx_) wslay_frame_context_free(masked_ctx_);
}

int FrameWriter::on_genmask(uint8_t *buf, size_t len, void *user_data) {
  static_cast<FrameWriter *>(user_data)->keys_->fill(buf, len);
  return 0;
}

int FrameWriter::init(MaskKeys *keys) {
  keys_ = keys;
  wslay_frame_callbacks callbacks = {on_send, nullptr, on_genmask};
  return wslay_frame_context_init(&ctx_, &callbacks, this) == 0 &&
                 wslay_frame_context_init(&masked_ctx_, &callbacks, this) == 0
             ? 0
             : LARIAT_ERR_NOMEM;
}

// Always takes every byte, even when passing them on failed: wslay keeps a
// half-sent frame in its context and would finish it in the next call, for
// whichever connection makes it.
ssize_t FrameWriter::on_send(const uint8_t *data, size_t len, int flags,
                             void *user_data) {
  auto *self = static_cast<FrameWriter *>(user_data);
  try {
    if (!self->direct_) {
      self->out_->append(reinterpret_cast<const char *>(data), len);
    } else if (flags & WSLAY_MSG_MORE) {
      // wslay hands over the header first; hold it for the payload.
      std::memcpy(self->header_, data, len);
      self->header_len_ = len;
    } else {
      self->direct_->write2(self->header_, self->header_len_, data, len);
      self->header_len_ = 0;
    }
  } catch (...) {
    if (!self->error_) self->error_ = std::current_exception();
  }
  return static_cast<ssize_t>(len);
}

int FrameWriter::send(wslay_frame_iocb *iocb) {
  ssize_t sent = wslay_frame_send(iocb->mask ? masked_ctx_ : ctx_, iocb);
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
  // Refused before anything was written (a control frame over 125 bytes,
  // a bad opcode): the context is still at a frame start.
  return sent == static_cast<ssize_t>(iocb->data_length)
             ? 0
             : LARIAT_ERR_INVALID_ARGUMENT;
}

int FrameWriter::write_to(Transport *transport, uint8_t opcode, uint8_t rsv,
                          const uint8_t *data, size_t len) {
  wslay_frame_iocb iocb = {};
  iocb.fin = 1;
  iocb.rsv = rsv;
  iocb.opcode = opcode;
  iocb.payload_length = len;
  iocb.data = data;
  iocb.data_length = len;
  direct_ = transport;
  header_len_ = 0;
  int rc;
  try {
    rc = send(&iocb);
  } catch (...) {
    direct_ = nullptr;
    throw;
  }
  direct_ = nullptr;
  return rc;
}

int FrameWriter::write(std::string *out, uint8_t opcode, bool fin,
                       uint8_t rsv, const uint8_t *data, size_t len,
                       bool mask) {
  if (!mask) {
    // A server's frame is a header and the payload: no call through wslay
    // for the frames of every reply. Refused as wslay refuses them.
    if (((opcode & 8) && len > 125) || static_cast<uint64_t>(len) >> 63)
      return LARIAT_ERR_INVALID_ARGUMENT;
    uint8_t header[10];
    size_t n = 2;
    header[0] = static_cast<uint8_t>((fin ? 0x80 : 0) | (rsv & 7) << 4 |
                                     (opcode & 0xf));
    if (len < 126) {
      header[1] = static_cast<uint8_t>(len);
    } else if (len <= 0xffff) {
      header[1] = 126;
      header[2] = static_cast<uint8_t>(len >> 8);
      header[3] = static_cast<uint8_t>(len);
      n = 4;
    } else {
      header[1] = 127;
      for (int i = 0; i < 8; ++i)
        header[2 + i] = static_cast<uint8_t>(static_cast<uint64_t>(len) >> (56 - 8 * i));
      n = 10;
    }
    out->reserve(out->size() + n + len);
    out->append(reinterpret_cast<const char *>(header), n);
    out->append(reinterpret_cast<const char *>(data), len);
    return 0;
  }
  wslay_frame_iocb iocb = {};
  iocb.fin = fin ? 1 : 0;
  iocb.rsv = rsv;
  iocb.opcode = opcode;
  iocb.mask = 1;
  iocb.payload_length = len;
  iocb.data = data;
  iocb.data_length = len;
  // Room for the header (at most 14 bytes) and the payload first: the
  // appends in on_send then cannot fail, and a frame is whole or absent.
  out->reserve(out->size() + len + 14);
  out_ = out;
  int rc = send(&iocb);
  out_ = nullptr;
  return rc;
}

int FrameWriter::write_close(std::string *out, uint16_t code,
                             const uint8_t *reason, size_t len, bool mask) {
  uint8_t payload[125];
  size_t n = 0;
  if (code != 0) {
    payload[0] = static_cast<uint8_t>(code >> 8);
    payload[1] = static_cast<uint8_t>(code & 0xff);
    n = 2;
    if (len > sizeof(payload) - 2) len = sizeof(payload) - 2;
    for (size_t i = 0; i < len; ++i) payload[n++] = reason[i];
  }
  return write(out, LARIAT_OP_CLOSE, true, 0, payload, n, mask);
}

int validate_outgoing(const lariat_frame *frame) {
  if (!frame || (!frame->data && frame->len > 0))
    return LARIAT_ERR_INVALID_ARGUMENT;
  switch (frame->opcode) {
    case LARIAT_OP_TEXT:
    case LARIAT_OP_BINARY:
      return 0;
    case LARIAT_OP_PING:
    case LARIAT_OP_PONG:
      return frame->len > 125 ? LARIAT_ERR_TOO_LARGE : 0;
    case LARIAT_OP_CLOSE: {
      uint16_t code = frame->close_code;
      if (code == 0) return frame->len > 0 ? LARIAT_ERR_BAD_CLOSE_CODE : 0;
      // The codes a peer may send us are the codes we may send: 1016-2999
      // are reserved for the protocol (RFC 6455 7.4.2).
      if (!peer_close_code_valid(code)) return LARIAT_ERR_BAD_CLOSE_CODE;
      return frame->len > 123 ? LARIAT_ERR_TOO_LARGE : 0;
    }
    default:
      return LARIAT_ERR_INVALID_ARGUMENT;
  }
}

bool peer_close_code_valid(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

}  // namespace lariat::detail
