// UTF-8 validation as strict as RFC 3629: a byte-class DFA in the style of
// Bjoern Hoehrmann's decoder, plus an 8-bytes-at-a-time ASCII fast path.
#include "utf8.h"

#include <cstring>

namespace lariat::detail {
namespace {

// Byte classes. Continuation bytes are split at 8F/9F because the second
// byte after E0, ED, F0 and F4 is restricted to one of those sub-ranges;
// that is how overlongs, surrogates and > U+10FFFF are caught at the first
// byte that makes them so.
enum : uint8_t {
  kAscii,      // 00..7F
  kCont8,      // 80..8F
  kCont9,      // 90..9F
  kContAB,     // A0..BF
  kLead2,      // C2..DF
  kLeadE0,     // E0: next A0..BF (below is overlong)
  kLead3,      // E1..EC, EE..EF
  kLeadED,     // ED: next 80..9F (above is a surrogate)
  kLeadF0,     // F0: next 90..BF (below is overlong)
  kLead4,      // F1..F3
  kLeadF4,     // F4: next 80..8F (above is > U+10FFFF)
  kBad,        // C0, C1 (always overlong), F5..FF (never valid)
  kNumClasses  // 12
};

// States are premultiplied by kNumClasses so a transition is a single
// indexed load; this is what makes kAccept 0 and kReject 12.
constexpr uint8_t St(int k) { return static_cast<uint8_t>(k * kNumClasses); }
constexpr uint8_t kAcc = St(0), kRej = St(1);
constexpr uint8_t kNeed1 = St(2), kNeed2 = St(3), kNeed3 = St(4);
constexpr uint8_t kAfterE0 = St(5), kAfterED = St(6), kAfterF0 = St(7),
                  kAfterF4 = St(8);
constexpr int kNumStates = 9;
static_assert(kAcc == Utf8Validator::kAccept && kRej == Utf8Validator::kReject,
              "state encoding must match the header");

// One table like Hoehrmann's: 256 byte classes, then the transitions indexed
// by state + class. Built at compile time so the rules above stay readable.
struct Table {
  uint8_t v[256 + kNumStates * kNumClasses];

  constexpr Table() : v() {
    uint8_t *cls = v;
    for (int b = 0x00; b <= 0x7F; ++b) cls[b] = kAscii;
    for (int b = 0x80; b <= 0x8F; ++b) cls[b] = kCont8;
    for (int b = 0x90; b <= 0x9F; ++b) cls[b] = kCont9;
    for (int b = 0xA0; b <= 0xBF; ++b) cls[b] = kContAB;
    for (int b = 0xC0; b <= 0xC1; ++b) cls[b] = kBad;
    for (int b = 0xC2; b <= 0xDF; ++b) cls[b] = kLead2;
    for (int b = 0xE1; b <= 0xEF; ++b) cls[b] = kLead3;
    cls[0xE0] = kLeadE0;
    cls[0xED] = kLeadED;
    cls[0xF0] = kLeadF0;
    for (int b = 0xF1; b <= 0xF3; ++b) cls[b] = kLead4;
    cls[0xF4] = kLeadF4;
    for (int b = 0xF5; b <= 0xFF; ++b) cls[b] = kBad;

    uint8_t *tr = v + 256;
    for (int i = 0; i < kNumStates * kNumClasses; ++i) tr[i] = kRej;

    tr[kAcc + kAscii] = kAcc;
    tr[kAcc + kLead2] = kNeed1;
    tr[kAcc + kLeadE0] = kAfterE0;
    tr[kAcc + kLead3] = kNeed2;
    tr[kAcc + kLeadED] = kAfterED;
    tr[kAcc + kLeadF0] = kAfterF0;
    tr[kAcc + kLead4] = kNeed3;
    tr[kAcc + kLeadF4] = kAfterF4;
    for (int c = kCont8; c <= kContAB; ++c) {  // any continuation byte
      tr[kNeed1 + c] = kAcc;
      tr[kNeed2 + c] = kNeed1;
      tr[kNeed3 + c] = kNeed2;
    }
    tr[kAfterE0 + kContAB] = kNeed1;
    tr[kAfterED + kCont8] = kNeed1;
    tr[kAfterED + kCont9] = kNeed1;
    tr[kAfterF0 + kCont9] = kNeed2;
    tr[kAfterF0 + kContAB] = kNeed2;
    tr[kAfterF4 + kCont8] = kNeed2;
    // Everything else, and every transition out of kRej, rejects: the
    // reject state is absorbing, which is what makes failure sticky.
  }
};

constexpr Table kTable{};

constexpr uint64_t kHighBits = 0x8080808080808080ull;

}  // namespace

bool Utf8Validator::feed(const uint8_t *p, size_t n) {
  const uint8_t *const t = kTable.v;
  uint32_t s = state_;
  if (s == kReject) return false;
  size_t i = 0;
  while (i < n) {
    if (s == kAccept && p[i] < 0x80) {
      // Text is mostly ASCII: between characters, skip 8 bytes per test.
      // memcpy is the aliasing- and alignment-safe load (one mov).
      ++i;
      uint64_t w = 0;
      while (n - i >= 8) {
        std::memcpy(&w, p + i, 8);
        if (w & kHighBits) break;
        i += 8;
      }
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      // The word that stopped the loop says where its first high byte is.
      if (n - i >= 8) {
        i += static_cast<size_t>(__builtin_ctzll(w & kHighBits)) >> 3;
        continue;
      }
#endif
      // Under 8 bytes left: one overlapping load of the buffer's last 8
      // settles it when they are all ASCII, as short messages' tails are.
      if (n - i < 8 && n >= 8) {
        std::memcpy(&w, p + n - 8, 8);
        if (!(w & kHighBits)) {
          i = n;
          continue;
        }
      }
      while (i < n && p[i] < 0x80) ++i;
      continue;
    }
    // Run the DFA over one whole character (or the rest of one split across
    // calls): mid-character states are all above kReject. A tight loop here,
    // rather than going back through the ASCII test for every byte, is
    // ~1.2-1.4x faster on non-Latin text.
    do {
      // Index the transition row by class first, so that the only work that
      // waits on the previous state is this one load.
      const uint8_t *row = t + 256 + t[p[i++]];
      s = row[s];
    } while (s > kReject && i < n);
    // Fail fast: no need to look at the rest once nothing can save it.
    if (s == kReject) break;
  }
  state_ = s;
  return s != kReject;
}

bool utf8_valid(const uint8_t *p, size_t n) {
  Utf8Validator v;
  return v.feed(p, n) && v.complete();
}

}  // namespace lariat::detail
