// The frame reader on its own: word-at-a-time unmasking against the
// byte-at-a-time definition of RFC 6455 5.3, headers of every length form
// split at every byte, and the headers it must refuse.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <random>
#include <string>
#include <vector>

#include "frame_reader.h"

using lariat::detail::FrameChunk;
using lariat::detail::FrameReader;

namespace {

void test_unmask_matches_definition(void **) {
  std::mt19937 rng(1);
  const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  for (size_t len = 0; len < 200; ++len) {
    for (uint64_t offset = 0; offset < 8; ++offset) {
      std::vector<uint8_t> data(len), expected(len);
      for (size_t i = 0; i < len; ++i) data[i] = static_cast<uint8_t>(rng());
      for (size_t i = 0; i < len; ++i)
        expected[i] = data[i] ^ key[(offset + i) % 4];
      lariat::detail::unmask(data.data(), len, key, offset);
      assert_true(data == expected);
    }
  }
}

std::vector<uint8_t> frame(uint8_t b0, uint64_t len, bool masked,
                           const uint8_t *payload) {
  std::vector<uint8_t> f{b0};
  uint8_t m = masked ? 0x80 : 0;
  if (len < 126) {
    f.push_back(static_cast<uint8_t>(m | len));
  } else if (len < 65536) {
    f.push_back(m | 126);
    f.push_back(static_cast<uint8_t>(len >> 8));
    f.push_back(static_cast<uint8_t>(len));
  } else {
    f.push_back(m | 127);
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<uint8_t>(len >> (8 * i)));
  }
  const uint8_t key[4] = {1, 2, 3, 4};
  if (masked) f.insert(f.end(), key, key + 4);
  for (uint64_t i = 0; i < len; ++i)
    f.push_back(masked ? payload[i] ^ key[i % 4] : payload[i]);
  return f;
}

// Feeds |stream| in pieces of |piece| bytes; returns the payloads of every
// frame joined in order, and the number of frames seen.
std::string read_all(std::vector<uint8_t> stream, size_t piece, int *frames) {
  FrameReader reader;
  std::string out;
  uint64_t got = 0;  // of the current frame's payload
  *frames = 0;
  for (size_t off = 0; off < stream.size(); off += piece) {
    uint8_t *p = stream.data() + off;
    size_t n = std::min(piece, stream.size() - off);
    FrameChunk c;
    for (;;) {
      FrameReader::Result r = reader.next(&p, &n, &c);
      if (r == FrameReader::Result::kNeedMore) break;
      assert_true(r == FrameReader::Result::kChunk);
      if (got == 0 && c.len == 0 && c.payload_length > 0) continue;
      out.append(reinterpret_cast<const char *>(c.data), c.len);
      got += c.len;
      if (got == c.payload_length) {
        ++*frames;
        got = 0;
      }
    }
  }
  assert_true(reader.at_frame_boundary());
  return out;
}

void test_every_length_form_at_every_split(void **) {
  std::string payload;
  for (int i = 0; i < 70000; ++i) payload.push_back(static_cast<char>(i * 7));
  const auto *bytes = reinterpret_cast<const uint8_t *>(payload.data());
  std::vector<uint8_t> stream;
  std::string expected;
  for (uint64_t len : {0ull, 1ull, 125ull, 126ull, 65535ull, 65536ull, 70000ull}) {
    auto f = frame(0x82, len, true, bytes);
    stream.insert(stream.end(), f.begin(), f.end());
    expected.append(payload, 0, len);
  }
  for (size_t piece : {1, 2, 3, 5, 13, 4096, 1 << 20}) {
    int frames = 0;
    assert_true(read_all(stream, piece, &frames) == expected);
    assert_int_equal(frames, 7);
  }
}

void test_rfc_vector(void **) {
  // RFC 6455 5.7: masked "Hello".
  std::vector<uint8_t> f = {0x81, 0x85, 0x37, 0xfa, 0x21,
                            0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  FrameReader reader;
  uint8_t *p = f.data();
  size_t n = f.size();
  FrameChunk c;
  assert_true(reader.next(&p, &n, &c) == FrameReader::Result::kChunk);
  assert_true(c.fin && c.masked);
  assert_int_equal(c.opcode, 1);
  assert_int_equal(c.payload_length, 5);
  assert_int_equal(c.len, 5);
  assert_memory_equal(c.data, "Hello", 5);
}

void test_refused_headers(void **) {
  const std::vector<std::vector<uint8_t>> bad = {
      {0x89, 0xfe, 0x00, 0x7e},  // ping of 126 bytes (no mask key needed)
      {0x09, 0x80},              // fragmented ping
      {0x82, 0xfe, 0x00, 0x7d},  // 125 in the 16-bit form
      {0x82, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff},  // 65535 in the 64-bit form
      {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0},     // top bit set
  };
  for (auto f : bad) {
    FrameReader reader;
    uint8_t *p = f.data();
    size_t n = f.size();
    FrameChunk c;
    assert_true(reader.next(&p, &n, &c) == FrameReader::Result::kError);
  }
}

}  // namespace

int main() {
  const CMUnitTest tests[] = {
      cmocka_unit_test(test_unmask_matches_definition),
      cmocka_unit_test(test_every_length_form_at_every_split),
      cmocka_unit_test(test_rfc_vector),
      cmocka_unit_test(test_refused_headers),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
