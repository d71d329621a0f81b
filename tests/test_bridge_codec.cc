// The bridge's pure parts: redis:// URLs, and the wire format exactly as
// lariat.h documents it (byte offsets, big-endian).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <lariat/lariat.h>

#include <cstring>
#include <string>

#include "bridge_wire.h"
#include "redis_url.h"

using lariat::detail::parse_redis_url;
using lariat::detail::RedisUrl;

static void test_urls(void **) {
  RedisUrl u;
  assert_true(parse_redis_url("redis://127.0.0.1:6380/2", &u));
  assert_string_equal(u.host.c_str(), "127.0.0.1");
  assert_int_equal(u.port, 6380);
  assert_int_equal(u.db, 2);
  assert_true(u.password.empty());
  assert_true(parse_redis_url("redis://localhost", &u));
  assert_string_equal(u.host.c_str(), "localhost");
  assert_int_equal(u.port, 6379);
  assert_int_equal(u.db, 0);
  assert_true(parse_redis_url("redis://:s%40cret@cache:7000/", &u));
  assert_string_equal(u.password.c_str(), "s@cret");
  assert_true(u.user.empty());
  assert_string_equal(u.host.c_str(), "cache");
  assert_true(parse_redis_url("redis://app:pw@[::1]:7001/3", &u));
  assert_string_equal(u.user.c_str(), "app");
  assert_string_equal(u.password.c_str(), "pw");
  assert_string_equal(u.host.c_str(), "::1");
  assert_int_equal(u.port, 7001);
  assert_int_equal(u.db, 3);
  const char *bad[] = {"http://x", "redis://", "redis://:pw@", "redis://h:",
                       "redis://h:0", "redis://h:65536", "redis://h:12a",
                       "redis://h/x", "redis://[::1", "redis://[::1]x",
                       "redis://:%zz@h", "redis://:%4@h"};
  for (const char *b : bad) {
    if (parse_redis_url(b, &u)) fail_msg("accepted %s", b);
  }
}

static void test_wire_layout(void **) {
  const char payload[] = "hi";
  lariat::detail::WireMessage m;
  m.opcode = LARIAT_OP_BINARY;
  m.flags = LARIAT_FRAME_NO_COMPRESS;
  m.origin = 0x0102030405060708ull;
  m.seq = 0x1112131415161718ull;
  m.payload = reinterpret_cast<const uint8_t *>(payload);
  m.len = 2;
  std::string out;
  lariat::detail::wire_encode(m, &out);
  const unsigned char want[] = {1, 2, 0, 0, 0, 0, 0, 1,
                                1, 2, 3, 4, 5, 6, 7, 8,
                                0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
                                'h', 'i'};
  assert_int_equal(out.size(), sizeof want);
  assert_memory_equal(out.data(), want, sizeof want);
  lariat::detail::WireMessage back;
  assert_true(lariat::detail::wire_decode(want, sizeof want, &back));
  assert_int_equal(back.opcode, LARIAT_OP_BINARY);
  assert_int_equal(back.flags, LARIAT_FRAME_NO_COMPRESS);
  assert_true(back.origin == m.origin && back.seq == m.seq);
  assert_int_equal(back.len, 2);
  assert_memory_equal(back.payload, "hi", 2);
  unsigned char other[sizeof want];
  std::memcpy(other, want, sizeof want);
  other[0] = 2;  // another version
  assert_false(lariat::detail::wire_decode(other, sizeof other, &back));
  other[0] = 1;
  other[1] = LARIAT_OP_PING;
  assert_false(lariat::detail::wire_decode(other, sizeof other, &back));
  assert_false(lariat::detail::wire_decode(want, 23, &back));  // short
  assert_true(lariat::detail::wire_decode(want, 24, &back));   // empty payload
  assert_int_equal(back.len, 0);
}

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_urls),
      cmocka_unit_test(test_wire_layout),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
