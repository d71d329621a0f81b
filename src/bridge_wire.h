// The bridge's message on a Redis channel (documented in lariat.h,
// "Bridge wire format"): a fixed 24-byte header, then the payload.
#ifndef LARIAT_BRIDGE_WIRE_H
#define LARIAT_BRIDGE_WIRE_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace lariat::detail {

constexpr uint8_t kWireVersion = 1;
constexpr size_t kWireHeader = 24;

struct WireMessage {
  uint8_t opcode = 0;    // LARIAT_OP_TEXT or LARIAT_OP_BINARY
  uint32_t flags = 0;    // LARIAT_FRAME_* bits
  uint64_t origin = 0;   // the publishing process; 0: anonymous
  uint64_t seq = 0;      // per origin and channel, from 1; 0: unsequenced
  const uint8_t *payload = nullptr;
  size_t len = 0;
};

// Header and payload, appended to |out|.
void wire_encode(const WireMessage &m, std::string *out);
// False for a message of another version, too short, or not text/binary.
bool wire_decode(const uint8_t *p, size_t n, WireMessage *out);

}  // namespace lariat::detail

#endif
