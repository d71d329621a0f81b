// Throughput of lariat's UTF-8 validator against a utf8proc_iterate loop.
// Build: g++ -O2 -Isrc src/utf8.cc bench/utf8_bench.cc -lutf8proc
#include <utf8proc.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "utf8.h"

namespace {

using Clock = std::chrono::steady_clock;

bool lariat_valid(const uint8_t *p, size_t n) {
  return lariat::detail::utf8_valid(p, n);
}

bool utf8proc_valid(const uint8_t *p, size_t n) {
  size_t i = 0;
  utf8proc_int32_t cp;
  while (i < n) {
    utf8proc_ssize_t r =
        utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(n - i), &cp);
    if (r < 0) return false;
    i += static_cast<size_t>(r);
  }
  return true;
}

using Validator = bool (*)(const uint8_t *, size_t);

// Validates |buf| as consecutive messages of |msg| bytes (the whole buffer
// when msg is 0). Best MB/s over a few ~80 ms rounds, so the whole program
// stays well under 5 s.
double measure(Validator f, const std::vector<uint8_t> &buf, size_t msg) {
  const size_t n = buf.size();
  const size_t step = msg ? msg : n;
  double best = 0;
  volatile size_t sink = 0;
  for (int round = 0; round < 3; ++round) {
    size_t bytes = 0, good = 0;
    auto t0 = Clock::now();
    std::chrono::duration<double> dt{};
    do {
      for (size_t off = 0; off < n; off += step) good += f(buf.data() + off, step);
      bytes += n;
      dt = Clock::now() - t0;
    } while (dt.count() < 0.08);
    if (good != bytes / step) {
      std::fprintf(stderr, "validator rejected valid input\n");
      std::exit(1);
    }
    sink = sink + good;
    double mbs = static_cast<double>(bytes) / dt.count() / 1e6;
    if (mbs > best) best = mbs;
  }
  return best;
}

uint64_t rng_state = 0x243F6A8885A308D3ull;
uint32_t rnd() {  // xorshift64*, fixed seed: same input every run
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return static_cast<uint32_t>((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

// Words until |size| bytes, cut back to a character boundary.
std::vector<uint8_t> text(const std::vector<std::string> &words, size_t size) {
  std::string s;
  while (s.size() < size) {
    s += words[rnd() % words.size()];
    s += rnd() % 8 ? " " : ". ";
  }
  size_t n = size;
  while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return std::vector<uint8_t>(s.begin(), s.end());
}

}  // namespace

int main() {
  const size_t kMiB = 1 << 20;
  const std::vector<std::string> ascii_words = {
      "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
      "WebSocket", "frame", "payload", "{\"id\":42,\"ok\":true}", "message",
      "server", "connection", "handshake", "2024-05-01T12:00:00Z"};
  const std::vector<std::string> mixed_words = {
      "hello", "world",                           // 1 byte
      "κόσμε", "Привет", "мир", "Ελληνικά",        // 2 bytes
      "שלום", "مرحبا",                             // 2 bytes
      "こんにちは", "世界", "中文字符", "한국어",  // 3 bytes
      "नमस्ते", "สวัสดี", "€100",                    // 3 bytes
      "😀", "🚀🌍", "𝄞", "👍🏽", "𠜎𠜱"};           // 4 bytes
  const std::vector<uint8_t> ascii = text(ascii_words, kMiB);
  const std::vector<uint8_t> mixed = text(mixed_words, kMiB);
  std::vector<uint8_t> msgs = text(ascii_words, kMiB);  // 32768 messages

  size_t multi = 0;
  for (uint8_t b : mixed) multi += b >= 0xC0;
  std::printf("inputs: 1 MiB ASCII; 1 MiB mixed (%zu bytes, %zu non-ASCII chars); "
              "32768 x 32-byte ASCII messages\n\n",
              mixed.size(), multi);

  struct Case {
    const char *name;
    const std::vector<uint8_t> *buf;
    size_t msg;
  } cases[] = {{"(a) 1 MiB ASCII", &ascii, 0},
               {"(b) 1 MiB mixed multilingual", &mixed, 0},
               {"(c) 32-byte ASCII messages", &msgs, 32}};

  std::printf("%-30s %12s %14s %8s\n", "input", "lariat MB/s", "utf8proc MB/s", "ratio");
  for (const Case &c : cases) {
    double a = measure(lariat_valid, *c.buf, c.msg);
    double b = measure(utf8proc_valid, *c.buf, c.msg);
    std::printf("%-30s %12.0f %14.0f %7.1fx\n", c.name, a, b, a / b);
  }
  return 0;
}
