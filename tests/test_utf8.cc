// Tests for the incremental UTF-8 validator against a reference built on
// utf8proc, tightened so that it is exactly RFC 3629.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
// cmocka 1.1's header has no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

#include <utf8proc.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "utf8.h"

using lariat::detail::Utf8Validator;
using lariat::detail::utf8_valid;

// Random samples per run. Fewer by default when unoptimized or sanitized,
// so the whole program stays around 10 s there; override with -D.
#ifndef LARIAT_UTF8_TEST_RANDOM
#if defined(__SANITIZE_ADDRESS__) || !defined(__OPTIMIZE__)
#define LARIAT_UTF8_TEST_RANDOM 200000
#else
#define LARIAT_UTF8_TEST_RANDOM 4000000
#endif
#endif

namespace {

// ---------------------------------------------------------------------------
// Reference

// Length of the valid character at the start of p[0..n), or -1.
long ref_char(const uint8_t *p, size_t n) {
  utf8proc_int32_t cp = -1;
  utf8proc_ssize_t r = utf8proc_iterate(p, static_cast<utf8proc_ssize_t>(n), &cp);
  if (r <= 0) return -1;
  // Don't depend on how lenient this utf8proc is: the character must be a
  // Unicode scalar value (no surrogates, <= U+10FFFF) and its bytes must be
  // exactly its shortest encoding (no overlongs, well-formed continuations).
  if (!utf8proc_codepoint_valid(cp)) return -1;
  uint8_t enc[4];
  utf8proc_ssize_t m = utf8proc_encode_char(cp, enc);
  if (m != r || std::memcmp(enc, p, static_cast<size_t>(m)) != 0) return -1;
  return r;
}

// Offset of the first character that isn't valid and complete (n if none).
size_t ref_good_prefix(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    long r = ref_char(p + i, n - i);
    if (r < 0) break;
    i += static_cast<size_t>(r);
  }
  return i;
}

bool ref_valid(const uint8_t *p, size_t n) { return ref_good_prefix(p, n) == n; }

// Every proper prefix (1..3 bytes) of the encoding of every scalar value,
// built by encoding all of U+0000..U+10FFFF. Plain arrays: this is looked up
// for every sample, and must stay cheap in -O0 sanitizer builds.
uint8_t g_prefix1[1 << 8], g_prefix2[1 << 16], g_prefix3[1 << 24];

void build_prefixes() {
  for (utf8proc_int32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (!utf8proc_codepoint_valid(cp)) continue;
    uint8_t e[4];
    utf8proc_ssize_t m = utf8proc_encode_char(cp, e);
    if (m >= 2) g_prefix1[e[0]] = 1;
    if (m >= 3) g_prefix2[e[0] << 8 | e[1]] = 1;
    if (m >= 4) g_prefix3[e[0] << 16 | e[1] << 8 | e[2]] = 1;
  }
}

bool is_char_prefix(const uint8_t *t, size_t k) {
  switch (k) {
    case 0: return true;
    case 1: return g_prefix1[t[0]];
    case 2: return g_prefix2[t[0] << 8 | t[1]];
    case 3: return g_prefix3[t[0] << 16 | t[1] << 8 | t[2]];
    default: return false;
  }
}

// Can some continuation make q[0..n) valid? UTF-8 decodes
// deterministically from the start, so the complete characters before the
// first bad one are fixed; what's left must be the beginning of a single
// character, i.e. one of the prefixes enumerated above.
bool ref_extendable(const uint8_t *q, size_t n) {
  size_t j = ref_good_prefix(q, n);
  return is_char_prefix(q + j, n - j);
}

// Brute force, straight from the definition: the first i such that no
// continuation of p[0..i] is valid; n when there is none. Prefixes inside
// the valid complete part are skipped: p itself continues those.
size_t ref_fail_pos(const uint8_t *p, size_t n) {
  for (size_t i = ref_good_prefix(p, n); i < n; ++i)
    if (!ref_extendable(p, i + 1)) return i;
  return n;
}

// ---------------------------------------------------------------------------
// Helpers

std::string hex(const uint8_t *p, size_t n) {
  std::string s;
  char b[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%s%02X", i ? " " : "", p[i]);
    s += b;
  }
  return s;
}

std::vector<uint8_t> parse_hex(const char *s) {
  std::vector<uint8_t> v;
  while (*s) {
    if (*s == ' ') { ++s; continue; }
    v.push_back(static_cast<uint8_t>(std::stoul(std::string(s, 2), nullptr, 16)));
    s += 2;
  }
  return v;
}

// Exactly-sized heap copy, so ASan sees any read past the end (the fast
// path loads 8 bytes at a time).
struct HeapCopy {
  uint8_t *p = nullptr;
  HeapCopy(const uint8_t *src, size_t n) {
    if (n) {
      p = new uint8_t[n];
      std::memcpy(p, src, n);
    }
  }
  ~HeapCopy() { delete[] p; }
  HeapCopy(const HeapCopy &) = delete;
  HeapCopy &operator=(const HeapCopy &) = delete;
};

size_t g_mismatches = 0;

void report(const char *what, const uint8_t *p, size_t n, long got, long want) {
  if (++g_mismatches <= 20)
    print_error("%s mismatch on [%s]: got %ld, want %ld\n", what,
                hex(p, n).c_str(), got, want);
}

// Checks one sample every way against the expected (reference) outcome:
// want_fail is the first byte that must be rejected, n if none.
void check_sample(const uint8_t *p, size_t n, bool want_valid, size_t want_fail) {
  if (utf8_valid(p, n) != want_valid)
    report("utf8_valid", p, n, !want_valid, want_valid);

  Utf8Validator whole;
  bool ok = whole.feed(p, n);
  if (ok != (want_fail == n)) report("whole feed", p, n, ok, want_fail == n);
  if (whole.complete() != want_valid)
    report("whole complete", p, n, whole.complete(), want_valid);

  Utf8Validator v;
  size_t fail = n;
  for (size_t i = 0; i < n; ++i) {
    bool r = v.feed(p + i, 1);
    if (!r && fail == n) fail = i;
    if (fail != n && (r || !v.failed())) {
      report("sticky failure", p, n, static_cast<long>(i), -1);
      break;
    }
  }
  if (fail != want_fail)
    report("fail position", p, n, static_cast<long>(fail), static_cast<long>(want_fail));
  if (v.complete() != want_valid)
    report("bytewise complete", p, n, v.complete(), want_valid);
}

void check_against_ref(const uint8_t *p, size_t n) {
  bool valid = ref_valid(p, n);
  check_sample(p, n, valid, valid ? n : ref_fail_pos(p, n));
}

struct Rng {
  uint64_t s;
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

// The bytes where the rules change.
const uint8_t kEdges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0,
                          0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC,
                          0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5,
                          0xF7, 0xF8, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF};

// Biased toward high bytes: mostly continuation and lead bytes.
uint8_t random_byte(Rng &r) {
  uint64_t x = r.next();
  uint8_t y = static_cast<uint8_t>(x >> 32);
  switch (x & 7) {
    case 0: return y & 0x7F;
    case 1: case 2: case 3: return 0x80 | (y & 0x3F);
    case 4: case 5: return 0xC0 | (y & 0x3F);
    default: return kEdges[y % sizeof kEdges];
  }
}

// ---------------------------------------------------------------------------
// Tests

void test_reference_sanity(void **) {
  struct {
    const char *hex;
    const char *what;
  } surrogates_and_beyond[] = {
      {"ED A0 80", "U+D800"}, {"ED BF BF", "U+DFFF"},
      {"F4 90 80 80", "U+110000"}, {"F7 BF BF BF", "U+1FFFFF"}};
  for (const auto &c : surrogates_and_beyond) {
    std::vector<uint8_t> b = parse_hex(c.hex);
    utf8proc_int32_t cp;
    utf8proc_ssize_t r = utf8proc_iterate(b.data(), static_cast<utf8proc_ssize_t>(b.size()), &cp);
    if (r >= 0) fail_msg("utf8proc_iterate accepts %s (%s)", c.hex, c.what);
    assert_false(ref_valid(b.data(), b.size()));
  }
  // Overlongs: utf8proc 2.x rejects these itself (1.x did not); the reference
  // rejects them either way, by re-encoding.
  const char *overlongs[] = {"C0 80", "C0 AF", "C1 BF", "E0 80 80", "E0 9F BF",
                             "F0 80 80 80", "F0 8F BF BF"};
  for (const char *h : overlongs) {
    std::vector<uint8_t> b = parse_hex(h);
    utf8proc_int32_t cp;
    utf8proc_ssize_t r = utf8proc_iterate(b.data(), static_cast<utf8proc_ssize_t>(b.size()), &cp);
    print_message("utf8proc %s on overlong %s: %s\n", utf8proc_version(), h,
                  r < 0 ? "rejects" : "ACCEPTS (reference still rejects)");
    assert_false(ref_valid(b.data(), b.size()));
  }
  // And the reference accepts the extremes of each length.
  const char *good[] = {"00", "7F", "C2 80", "DF BF", "E0 A0 80", "ED 9F BF",
                        "EE 80 80", "EF BF BF", "F0 90 80 80", "F4 8F BF BF"};
  for (const char *h : good) {
    std::vector<uint8_t> b = parse_hex(h);
    assert_true(ref_valid(b.data(), b.size()));
  }
  // Sanity of the brute-force fail position.
  std::vector<uint8_t> b = parse_hex("F4 90 80 80");
  assert_int_equal(ref_fail_pos(b.data(), b.size()), 1);
  b = parse_hex("E1 80");
  assert_int_equal(ref_fail_pos(b.data(), b.size()), 2);
}

// 1. and 2.: every 1-, 2- and 3-byte sequence.
void test_exhaustive_short(void **) {
  g_mismatches = 0;
  uint8_t b[3];
  for (unsigned x = 0; x < (1u << 8); ++x) {
    b[0] = static_cast<uint8_t>(x);
    check_against_ref(b, 1);
  }
  for (unsigned x = 0; x < (1u << 16); ++x) {
    b[0] = static_cast<uint8_t>(x >> 8);
    b[1] = static_cast<uint8_t>(x);
    check_against_ref(b, 2);
  }
  for (unsigned x = 0; x < (1u << 24); ++x) {
    b[0] = static_cast<uint8_t>(x >> 16);
    b[1] = static_cast<uint8_t>(x >> 8);
    b[2] = static_cast<uint8_t>(x);
    check_against_ref(b, 3);
  }
  assert_int_equal(g_mismatches, 0);
}

// Every 4-byte sequence whose first byte is any non-ASCII byte and whose
// other bytes are at the edges of the byte classes. (An ASCII first byte
// leaves a 3-byte sequence, covered exhaustively above.)
void test_exhaustive_4_edges(void **) {
  g_mismatches = 0;
  const size_t E = sizeof kEdges;
  uint8_t b[4];
  for (unsigned a = 0x80; a < 256; ++a)
    for (size_t i = 0; i < E; ++i)
      for (size_t j = 0; j < E; ++j)
        for (size_t k = 0; k < E; ++k) {
          b[0] = static_cast<uint8_t>(a);
          b[1] = kEdges[i];
          b[2] = kEdges[j];
          b[3] = kEdges[k];
          check_against_ref(b, 4);
        }
  assert_int_equal(g_mismatches, 0);
}

// 1. and 2.: random 4..12-byte sequences, half pure noise biased toward high
// bytes, half real characters (some surrogates) with one byte mutated or the
// end cut off, so valid, invalid and truncated samples are all common.
void test_random(void **) {
  g_mismatches = 0;
  Rng rng{0x1a2b3c4d5e6f7788ull};
  size_t nvalid = 0, ntrunc = 0, ninvalid = 0;
  uint8_t b[16];
  for (long it = 0; it < LARIAT_UTF8_TEST_RANDOM; ++it) {
    size_t n = 4 + rng.next() % 9;
    if (it & 1) {
      for (size_t i = 0; i < n; ++i) b[i] = random_byte(rng);
    } else {
      size_t len = 0;
      while (len < n) {
        uint64_t x = rng.next();
        static const utf8proc_int32_t kTop[] = {0x80, 0x800, 0x10000, 0x110000};
        utf8proc_int32_t cp = static_cast<utf8proc_int32_t>((x >> 8) % kTop[x & 3]);
        uint8_t e[4];
        size_t m = static_cast<size_t>(utf8proc_encode_char(cp, e));
        for (size_t i = 0; i < m && len < n; ++i) b[len++] = e[i];
      }
      uint64_t x = rng.next();
      if ((x & 3) == 0) b[(x >> 8) % n] = random_byte(rng);
    }
    bool valid = ref_valid(b, n);
    size_t fail = valid ? n : ref_fail_pos(b, n);
    if (valid) ++nvalid;
    else if (fail == n) ++ntrunc;
    else ++ninvalid;
    check_sample(b, n, valid, fail);
  }
  print_message("random: %zu valid, %zu truncated, %zu invalid\n", nvalid, ntrunc, ninvalid);
  assert_int_equal(g_mismatches, 0);
  assert_true(nvalid > LARIAT_UTF8_TEST_RANDOM / 10);
  assert_true(ntrunc > LARIAT_UTF8_TEST_RANDOM / 100);
  assert_true(ninvalid > LARIAT_UTF8_TEST_RANDOM / 4);
}

// 3.: RFC 3629 / Autobahn 6.x style samples. want: kValid, kTrunc (fed fine
// but not complete) or the index of the byte that must be rejected.
constexpr int kValid = -1, kTrunc = -2;
struct Sample {
  const char *hex;
  int want;
};
const Sample kSamples[] = {
    // valid
    {"", kValid},
    {"48 65 6C 6C 6F 2D C2 B5 40 C3 9F C3 B6 C3 A4 C3 BC C3 A0 C3 A1 2D 55 54 46 2D 38 21 21", kValid},
    {"CE BA E1 BD B9 CF 83 CE BC CE B5", kValid},  // κόσμε
    {"00", kValid}, {"C2 80", kValid}, {"E0 A0 80", kValid}, {"F0 90 80 80", kValid},
    {"7F", kValid}, {"DF BF", kValid}, {"EF BF BF", kValid}, {"F4 8F BF BF", kValid},
    {"ED 9F BF", kValid}, {"EE 80 80", kValid}, {"EF BF BD", kValid},
    {"EF BF BE", kValid}, {"F0 9F BF BE", kValid}, {"F0 AF BF BF", kValid},
    {"F3 BF BF BF", kValid}, {"F4 8F BF BE", kValid}, {"F1 80 80 80", kValid},
    {"EF BB BF", kValid}, {"E1 80 80", kValid}, {"EC BF BF", kValid},
    {"F0 9F 98 80 20 F0 9F 98 80 41 42 43 44 45 46 47 48", kValid},
    {"41 42 43 44 45 46 47 48 49 4A 4B 4C 4D 4E 4F 50 51", kValid},
    // truncated at the end
    {"CE", kTrunc}, {"CE BA E1", kTrunc}, {"CE BA E1 BD", kTrunc},
    {"E0", kTrunc}, {"E0 A0", kTrunc}, {"ED", kTrunc}, {"ED 9F", kTrunc},
    {"F0", kTrunc}, {"F0 90", kTrunc}, {"F0 90 80", kTrunc}, {"F4", kTrunc},
    {"F4 8F BF", kTrunc}, {"F1", kTrunc}, {"F3 BF", kTrunc}, {"C2", kTrunc},
    {"DF", kTrunc}, {"EF BF", kTrunc}, {"41 42 43 44 45 46 47 48 C2", kTrunc},
    {"CE BA E1 BD B9 CF 83 CE BC CE B5 F0 9F 98", kTrunc},
    // 6.4: fail fast in the middle of a message
    {"CE BA E1 BD B9 CF 83 CE BC CE B5 F4 90 80 80 65 64 69 74 65 64", 12},
    {"CE BA E1 BD B9 CF 83 CE BC CE B5 ED A0 80 65 64 69 74 65 64", 12},
    // 6.8, 6.10: 5- and 6-byte forms, beyond U+10FFFF
    {"F8 88 80 80 80", 0}, {"FC 84 80 80 80 80", 0}, {"F7 BF BF BF", 0},
    {"FB BF BF BF BF", 0}, {"FD BF BF BF BF BF", 0}, {"F4 90 80 80", 1},
    {"F4 90", 1}, {"F4 BF BF BF", 1}, {"F5", 0}, {"F5 80 80 80", 0},
    // 6.12: unexpected continuation bytes
    {"80", 0}, {"BF", 0}, {"80 BF", 0}, {"80 BF 80 BF 80 BF 80", 0},
    {"CE BA 80", 2}, {"E1 BD B9 B9", 3}, {"F0 9F 98 80 80", 4},
    {"41 42 43 44 45 46 47 48 49 BF", 9},
    // 6.13: lonely start bytes followed by a space
    {"C0 20", 0}, {"C2 20", 1}, {"DF 20", 1}, {"E0 20", 1}, {"E1 20", 1},
    {"F0 20", 1}, {"F1 20", 1}, {"F8 20", 0}, {"FC 20", 0},
    {"C2 C2", 1}, {"E1 80 C0", 2}, {"E1 80 41", 2}, {"F0 90 80 41", 3},
    // 6.14, 6.15: last continuation byte missing, and all of them in a row
    {"C0", 0}, {"E0 80", 1}, {"F0 80 80", 1}, {"F8 80 80 80", 0},
    {"FC 80 80 80 80", 0}, {"F7 BF BF", 0}, {"FB BF BF BF", 0}, {"FD BF BF BF BF", 0},
    {"C0 E0 80 F0 80 80 F8 80 80 80 FC 80 80 80 80 DF EF BF F7 BF BF FB BF BF BF FD BF BF BF BF", 0},
    {"DF EF BF", 1},
    // 6.16: impossible bytes
    {"FE", 0}, {"FF", 0}, {"FE FE FF FF", 0}, {"41 42 43 44 45 46 47 48 49 FF", 9},
    // 6.17-6.19: overlongs
    {"C0 AF", 0}, {"E0 80 AF", 1}, {"F0 80 80 AF", 1}, {"F8 80 80 80 AF", 0},
    {"FC 80 80 80 80 AF", 0}, {"C1 BF", 0}, {"C1", 0}, {"E0 9F BF", 1},
    {"F0 8F BF BF", 1}, {"F8 87 BF BF BF", 0}, {"FC 83 BF BF BF BF", 0},
    {"C0 80", 0}, {"E0 80 80", 1}, {"F0 80 80 80", 1}, {"F8 80 80 80 80", 0},
    {"FC 80 80 80 80 80", 0},
    // 6.20, 6.21: UTF-16 surrogates, single and paired
    {"ED A0 80", 1}, {"ED AD BF", 1}, {"ED AE 80", 1}, {"ED AF BF", 1},
    {"ED B0 80", 1}, {"ED BE 80", 1}, {"ED BF BF", 1}, {"ED A0", 1},
    {"ED A0 80 ED B0 80", 1}, {"ED A0 80 ED BF BF", 1}, {"ED AD BF ED B0 80", 1},
    {"ED AD BF ED BF BF", 1}, {"ED AE 80 ED B0 80", 1}, {"ED AE 80 ED BF BF", 1},
    {"ED AF BF ED B0 80", 1}, {"ED AF BF ED BF BF", 1},
};

// Feeds p split into pieces at the given cut points, each piece in its own
// exactly-sized allocation. Returns the result of the last feed().
bool feed_split(Utf8Validator &v, const std::vector<uint8_t> &b,
                const std::vector<size_t> &cuts, size_t want_fail) {
  bool r = true;
  size_t from = 0;
  for (size_t k = 0; k <= cuts.size(); ++k) {
    size_t to = k < cuts.size() ? cuts[k] : b.size();
    HeapCopy piece(b.data() + from, to - from);
    r = v.feed(piece.p, to - from);
    // A feed fails exactly when it has reached the bad byte.
    if (r != (want_fail >= to)) {
      if (g_mismatches < 20) print_error("  (piece ending at %zu)\n", to);
      report("split feed", b.data(), b.size(), r, want_fail >= to);
    }
    from = to;
  }
  return r;
}

void check_splits(const std::vector<uint8_t> &b, bool want_valid, size_t want_fail,
                  bool three_way = true) {
  const size_t n = b.size();
  {
    HeapCopy whole(b.data(), n);
    check_sample(whole.p, n, want_valid, want_fail);
  }
  for (size_t i = 0; i <= n; ++i) {
    Utf8Validator v;
    feed_split(v, b, {i}, want_fail);
    if (v.complete() != want_valid) report("split complete", b.data(), n, static_cast<long>(i), want_valid);
    for (size_t j = i; three_way && j <= n; ++j) {
      Utf8Validator w;
      feed_split(w, b, {i, j}, want_fail);
      if (w.complete() != want_valid) report("3-way complete", b.data(), n, static_cast<long>(j), want_valid);
    }
  }
}

void test_samples_split(void **) {
  g_mismatches = 0;
  for (const Sample &s : kSamples) {
    std::vector<uint8_t> b = parse_hex(s.hex);
    const size_t n = b.size();
    bool want_valid = s.want == kValid;
    size_t want_fail = s.want >= 0 ? static_cast<size_t>(s.want) : n;
    // The table itself must agree with the reference.
    if (ref_valid(b.data(), n) != want_valid || ref_fail_pos(b.data(), n) != want_fail)
      fail_msg("sample table disagrees with the reference on [%s]", s.hex);
    check_splits(b, want_valid, want_fail);
    // Again behind and before ASCII, so the 8-byte fast path enters and
    // leaves the sample at every alignment.
    for (size_t pre = 0; pre <= 17; ++pre) {
      for (size_t post : {0, 1, 7, 8, 9}) {
        std::vector<uint8_t> c(pre, 'a');
        c.insert(c.end(), b.begin(), b.end());
        c.insert(c.end(), post, 'z');
        bool v = ref_valid(c.data(), c.size());
        check_splits(c, v, v ? c.size() : ref_fail_pos(c.data(), c.size()), false);
      }
    }
  }
  assert_int_equal(g_mismatches, 0);
}

// 4.: every scalar value's encoding is valid, every proper prefix of it is
// accepted by feed() but not complete(), also after ASCII; every surrogate's
// encoding is rejected at its second byte.
void test_truncated_and_all_chars(void **) {
  g_mismatches = 0;
  for (utf8proc_int32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    uint8_t e[4 + 9] = {'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'};
    size_t m = static_cast<size_t>(utf8proc_encode_char(cp, e + 9));
    bool scalar = utf8proc_codepoint_valid(cp);
    if (!scalar) {
      check_sample(e + 9, m, false, 1);
      continue;
    }
    if (!utf8_valid(e + 9, m) || !utf8_valid(e, m + 9)) report("char", e + 9, m, 0, 1);
    for (size_t k = 1; k < m; ++k) {
      for (size_t pre : {0, 9}) {
        Utf8Validator v;
        if (!v.feed(e + 9 - pre, pre + k) || v.complete() || v.failed())
          report("truncated", e + 9, k, v.complete(), 0);
        if (!v.feed(e + 9 + k, m - k) || !v.complete())
          report("resumed", e + 9, m, v.complete(), 1);
      }
    }
  }
  const char *trunc[] = {"CE BA E1", "F0 9F 98", "E0 A0", "ED 9F", "F4 8F BF", "C2"};
  for (const char *h : trunc) {
    std::vector<uint8_t> b = parse_hex(h);
    Utf8Validator v;
    assert_true(v.feed(b.data(), b.size()));
    assert_false(v.complete());
    assert_false(v.failed());
    assert_false(utf8_valid(b.data(), b.size()));
  }
  assert_int_equal(g_mismatches, 0);
}

// The fast path at every position of longer buffers, sticky failure, reset.
void test_fast_path_and_state(void **) {
  g_mismatches = 0;
  for (size_t n = 0; n <= 70; ++n) {
    std::vector<uint8_t> a(n, 'x');
    check_splits(a, true, n);
  }
  const char *inserts[] = {"80", "FF", "C0", "E0 80", "ED A0", "F4 90", "C3 A9",
                           "E2 82 AC", "F0 9F 98 80", "F4 8F BF BF"};
  for (const char *h : inserts) {
    std::vector<uint8_t> ins = parse_hex(h);
    for (size_t at = 0; at <= 40; ++at) {
      for (size_t tail : {0, 3, 8, 20}) {
        std::vector<uint8_t> b(at, 'q');
        b.insert(b.end(), ins.begin(), ins.end());
        b.insert(b.end(), tail, 'r');
        HeapCopy c(b.data(), b.size());
        check_against_ref(c.p, b.size());
        // Same without the last byte: truncated or invalid.
        HeapCopy d(b.data(), b.size() - 1);
        check_against_ref(d.p, b.size() - 1);
      }
    }
  }
  assert_int_equal(g_mismatches, 0);

  Utf8Validator v;
  assert_true(v.feed(nullptr, 0));
  assert_true(v.complete());
  const uint8_t bad[] = {0xC0, 0x80};
  assert_false(v.feed(bad, 2));
  assert_true(v.failed());
  assert_false(v.complete());
  const uint8_t ok[] = {'o', 'k'};
  assert_false(v.feed(ok, 2));
  assert_false(v.feed(nullptr, 0));
  v.reset();
  assert_true(v.feed(ok, 2));
  assert_true(v.complete());
  assert_true(utf8_valid(nullptr, 0));
}

}  // namespace

int main(void) {
  build_prefixes();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_sanity),
      cmocka_unit_test(test_samples_split),
      cmocka_unit_test(test_truncated_and_all_chars),
      cmocka_unit_test(test_fast_path_and_state),
      cmocka_unit_test(test_exhaustive_short),
      cmocka_unit_test(test_exhaustive_4_edges),
      cmocka_unit_test(test_random),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
