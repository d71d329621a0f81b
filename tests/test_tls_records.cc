// Tls13Records alone (the record layer of a TLS 1.3 connection that left
// its SSL): a server and a client view of one connection seal and open
// each other's records, whole, byte by byte and across sequence numbers;
// tampered, truncated, oversized and random input is refused without a
// crash; close_notify ends the stream.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <cstdlib>
#include <cstring>
#include <string>

#include "tls_records.h"

using lariat::detail::Tls13Records;

namespace {

struct Pair {
  Tls13Records server, client;
  explicit Pair(uint16_t cipher, size_t secret_len) {
    uint8_t c[48], s[48];
    for (int i = 0; i < 48; ++i) {
      c[i] = static_cast<uint8_t>(i * 7 + 1);
      s[i] = static_cast<uint8_t>(i * 11 + 3);
    }
    // The server reads what the client writes, and the other way round.
    assert_true(server.init(cipher, c, s, secret_len, 3, 5));
    assert_true(client.init(cipher, s, c, secret_len, 5, 3));
  }
};

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 31 + 7);
  return s;
}

const uint8_t *bytes(const std::string &s) {
  return reinterpret_cast<const uint8_t *>(s.data());
}

void roundtrip(uint16_t cipher, size_t secret_len) {
  Pair p(cipher, secret_len);
  for (size_t n : {size_t(1), size_t(100), size_t(16384), size_t(40000)}) {
    std::string msg = pattern(n), wire, plain, out;
    assert_true(p.server.seal(bytes(msg), msg.size(), &wire));
    assert_int_equal(p.client.open(bytes(wire), wire.size(), &plain, &out),
                     static_cast<int>(Tls13Records::Status::kOk));
    assert_true(plain == msg);
    assert_true(out.empty());
    // The other way, one byte per call.
    wire.clear();
    plain.clear();
    assert_true(p.client.seal(bytes(msg), msg.size(), &wire));
    for (size_t i = 0; i < wire.size(); ++i)
      assert_int_equal(p.server.open(bytes(wire) + i, 1, &plain, &out),
                       static_cast<int>(Tls13Records::Status::kOk));
    assert_false(p.server.has_partial());
    assert_true(plain == msg);
    p.server.release();  // hibernation: contexts go and come back
  }
  std::string wire, plain, out;
  assert_true(p.client.close_notify(&wire));
  assert_int_equal(p.server.open(bytes(wire), wire.size(), &plain, &out),
                   static_cast<int>(Tls13Records::Status::kClosed));
}

void test_roundtrip_aes128(void **) { roundtrip(0x1301, 32); }
void test_roundtrip_aes256(void **) { roundtrip(0x1302, 48); }
void test_roundtrip_chacha(void **) { roundtrip(0x1303, 32); }

// RFC 8446 6.1: user_canceled is a closure alert, not an error (a
// close_notify follows it); every other alert is fatal.
void test_alerts(void **) {
  Pair p(0x1301, 32);
  static const uint8_t user_canceled[2] = {1, 90}, handshake_failure[2] = {2, 40};
  std::string wire, plain, out;
  assert_true(p.client.seal_record(0x15, user_canceled, 2, &wire));
  assert_int_equal(p.server.open(bytes(wire), wire.size(), &plain, &out),
                   static_cast<int>(Tls13Records::Status::kOk));
  assert_true(plain.empty());
  wire.clear();
  assert_true(p.client.close_notify(&wire));
  assert_int_equal(p.server.open(bytes(wire), wire.size(), &plain, &out),
                   static_cast<int>(Tls13Records::Status::kClosed));
  Pair q(0x1301, 32);
  wire.clear();
  assert_true(q.client.seal_record(0x15, handshake_failure, 2, &wire));
  assert_int_equal(q.server.open(bytes(wire), wire.size(), &plain, &out),
                   static_cast<int>(Tls13Records::Status::kError));
}

void test_bad_input_is_refused(void **) {
  Tls13Records r;
  uint8_t secret[32] = {1};
  assert_false(r.init(0x1304, secret, secret, 32, 0, 0));  // unknown suite
  assert_false(r.init(0x1302, secret, secret, 32, 0, 0));  // wrong length
  {
    Pair p(0x1301, 32);
    std::string msg = pattern(500), wire, plain, out;
    assert_true(p.client.seal(bytes(msg), msg.size(), &wire));
    wire[wire.size() / 2] ^= 1;  // tampered
    assert_int_equal(p.server.open(bytes(wire), wire.size(), &plain, &out),
                     static_cast<int>(Tls13Records::Status::kError));
    assert_true(plain.empty());
  }
  {
    Pair p(0x1301, 32);
    std::string msg = pattern(10), wire, plain, out;
    assert_true(p.client.seal(bytes(msg), msg.size(), &wire));
    assert_true(p.client.seal(bytes(msg), msg.size(), &wire));
    // Replayed or reordered: the second record opened first fails.
    std::string second = wire.substr(wire.size() / 2);
    assert_int_equal(p.server.open(bytes(second), second.size(), &plain, &out),
                     static_cast<int>(Tls13Records::Status::kError));
  }
  {
    Pair p(0x1301, 32);
    const uint8_t huge[5] = {0x17, 3, 3, 0xff, 0xff};  // over TLS's limit
    std::string plain, out;
    assert_int_equal(p.server.open(huge, 5, &plain, &out),
                     static_cast<int>(Tls13Records::Status::kError));
    const uint8_t clear[6] = {0x16, 3, 3, 0, 1, 0};  // not protected
    Pair q(0x1301, 32);
    assert_int_equal(q.server.open(clear, 6, &plain, &out),
                     static_cast<int>(Tls13Records::Status::kError));
  }
  // Random bytes: refused or kept as a partial record, never a crash.
  srand(11);
  for (int round = 0; round < 2000; ++round) {
    Pair p(0x1301 + round % 3, round % 3 == 1 ? 48 : 32);
    std::string junk(static_cast<size_t>(rand() % 300), '\0');
    for (char &c : junk) c = static_cast<char>(rand());
    if (!junk.empty() && round % 2) junk[0] = 0x17;
    std::string plain, out;
    (void)p.server.open(bytes(junk), junk.size(), &plain, &out);
    assert_true(plain.empty());
  }
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_aes128),
      cmocka_unit_test(test_roundtrip_aes256),
      cmocka_unit_test(test_roundtrip_chacha),
      cmocka_unit_test(test_alerts),
      cmocka_unit_test(test_bad_input_is_refused),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
