// SHA-1 and base64 (RFC 4648) for the opening handshake, backed by nettle.
#ifndef LARIAT_SHA1_BASE64_H
#define LARIAT_SHA1_BASE64_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lariat::detail {

constexpr size_t kSha1Size = 20;

// SHA-1 digest of data[0, len) into out.
void sha1(const void *data, size_t len, uint8_t out[kSha1Size]);

// Standard alphabet with '=' padding.
std::string base64_encode(const uint8_t *p, size_t n);

// Strict decoding: standard alphabet only, length a multiple of 4, at most
// two '=' and only at the end, unused trailing bits zero (the canonical
// encoding), no whitespace. Returns false and leaves *out untouched on any
// violation.
bool base64_decode(std::string_view in, std::string *out);

}  // namespace lariat::detail

#endif
