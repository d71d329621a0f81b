#include "bridge_wire.h"

#include <lariat/lariat.h>

namespace lariat::detail {

namespace {

void put(std::string *out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i)
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = v << 8 | p[i];
  return v;
}

}  // namespace

// Big-endian: version(1) opcode(1) reserved(2) flags(4) origin(8) seq(8).
void wire_encode(const WireMessage &m, std::string *out) {
  out->reserve(out->size() + kWireHeader + m.len);
  put(out, kWireVersion, 1);
  put(out, m.opcode, 1);
  put(out, 0, 2);
  put(out, m.flags, 4);
  put(out, m.origin, 8);
  put(out, m.seq, 8);
  out->append(reinterpret_cast<const char *>(m.payload), m.len);
}

bool wire_decode(const uint8_t *p, size_t n, WireMessage *out) {
  if (n < kWireHeader || p[0] != kWireVersion) return false;
  if (p[1] != LARIAT_OP_TEXT && p[1] != LARIAT_OP_BINARY) return false;
  out->opcode = p[1];
  out->flags = static_cast<uint32_t>(get(p + 4, 4));
  out->origin = get(p + 8, 8);
  out->seq = get(p + 16, 8);
  out->payload = p + kWireHeader;
  out->len = n - kWireHeader;
  return true;
}

}  // namespace lariat::detail
