#include "sha1_base64.h"

#include <nettle/base64.h>
#include <nettle/sha1.h>

#include <utility>

namespace lariat::detail {

static_assert(kSha1Size == SHA1_DIGEST_SIZE, "nettle SHA-1 digest size");

void sha1(const void *data, size_t len, uint8_t out[kSha1Size]) {
  sha1_ctx ctx;
  sha1_init(&ctx);
  sha1_update(&ctx, len, static_cast<const uint8_t *>(data));
  sha1_digest(&ctx, kSha1Size, out);
}

std::string base64_encode(const uint8_t *p, size_t n) {
  std::string out(BASE64_ENCODE_RAW_LENGTH(n), '\0');
  if (n != 0) base64_encode_raw(&out[0], n, p);
  return out;
}

namespace {

bool is_b64_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/';
}

}  // namespace

bool base64_decode(std::string_view in, std::string *out) {
  // nettle's decoder skips whitespace and does not insist on canonical
  // padding, so the shape is checked here first.
  if (in.size() % 4 != 0) return false;
  size_t pad = 0;
  if (!in.empty() && in.back() == '=') {
    pad = 1;
    if (in[in.size() - 2] == '=') pad = 2;
  }
  for (size_t i = 0; i < in.size() - pad; ++i) {
    if (!is_b64_char(static_cast<unsigned char>(in[i]))) return false;
  }

  std::string buf(BASE64_DECODE_LENGTH(in.size()), '\0');
  size_t n = 0;
  base64_decode_ctx ctx;
  base64_decode_init(&ctx);
  if (!in.empty()) {
    if (!base64_decode_update(&ctx, &n, reinterpret_cast<uint8_t *>(&buf[0]),
                              in.size(), in.data())) {
      return false;
    }
  }
  if (!base64_decode_final(&ctx)) return false;
  buf.resize(n);

  // Non-zero unused bits ("QR==") decode but are not a canonical encoding.
  if (base64_encode(reinterpret_cast<const uint8_t *>(buf.data()), n) != in) {
    return false;
  }
  *out = std::move(buf);
  return true;
}

}  // namespace lariat::detail
