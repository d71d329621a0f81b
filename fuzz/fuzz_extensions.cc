// libFuzzer target: the Sec-WebSocket-Extensions offer parser and the
// permessage-deflate negotiation (lariat::detail::negotiate_deflate).
//
// Input: [cfg0][cfg1][header value]\n[header value]\n...
//   cfg0, cfg1: two handler configs (window bits, no_context_takeover);
//   the rest, split on '\n', is the list of Sec-WebSocket-Extensions values.
//
// Checked: an accepted agreement is within RFC 7692's ranges and the
// config's limits, the response header says exactly what was agreed (and
// reads back to the same agreement), the config never decides *whether*
// an offer is acceptable, and the first acceptable value wins.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "deflate.h"
#include "fuzz_check.h"

using lariat::detail::DeflateConfig;
using lariat::detail::DeflateParams;

namespace {

DeflateConfig config_from(uint8_t b) {
  DeflateConfig c;
  c.enabled = true;
  c.server_max_window_bits = 8 + (b & 7);
  c.client_max_window_bits = 8 + ((b >> 3) & 7);
  c.server_no_context_takeover = (b & 0x40) != 0;
  c.client_no_context_takeover = (b & 0x80) != 0;
  return c;
}

bool same(const DeflateParams &a, const DeflateParams &b) {
  return a.server_window_bits == b.server_window_bits &&
         a.client_window_bits == b.client_window_bits &&
         a.server_no_context_takeover == b.server_no_context_takeover &&
         a.client_no_context_takeover == b.client_no_context_takeover;
}

// The value of "name=N" in the response, or -1 when absent.
int param_value(const std::string &r, const char *name) {
  size_t at = r.find(std::string(name) + "=");
  if (at == std::string::npos) {
    CHECK(r.find(name) == std::string::npos);  // never without a value
    return -1;
  }
  size_t i = at + std::strlen(name) + 1;
  int v = 0, digits = 0;
  while (i < r.size() && r[i] >= '0' && r[i] <= '9' && digits < 3) {
    v = v * 10 + (r[i++] - '0');
    ++digits;
  }
  CHECK(digits > 0);
  return v;
}

void check_agreement(const DeflateConfig &cfg, const DeflateParams &p,
                     const std::string &r) {
  CHECK(r.rfind("permessage-deflate", 0) == 0);
  CHECK(r.size() == 18 || r.compare(18, 2, "; ") == 0);
  CHECK(p.server_window_bits >= 8 && p.server_window_bits <= 15);
  CHECK(p.client_window_bits >= 8 && p.client_window_bits <= 15);
  CHECK(p.server_window_bits <= cfg.server_max_window_bits);
  // The client's window can only be limited when it offered
  // client_max_window_bits; otherwise it stays 15 and is not mentioned.
  int cbits = param_value(r, "client_max_window_bits");
  if (cbits < 0) {
    CHECK(p.client_window_bits == 15);
  } else {
    CHECK(cbits == p.client_window_bits && cbits < 15);
    CHECK(p.client_window_bits <= cfg.client_max_window_bits);
  }
  int sbits = param_value(r, "server_max_window_bits");
  if (sbits < 0)
    CHECK(p.server_window_bits == 15);
  else
    CHECK(sbits == p.server_window_bits);
  if (cfg.server_no_context_takeover) CHECK(p.server_no_context_takeover);
  if (cfg.client_no_context_takeover) CHECK(p.client_no_context_takeover);
  CHECK((r.find("server_no_context_takeover") != std::string::npos) ==
        p.server_no_context_takeover);
  CHECK((r.find("client_no_context_takeover") != std::string::npos) ==
        p.client_no_context_takeover);
  for (char c : r) CHECK(c >= 0x20 && c < 0x7f);  // a safe header value

  // The response read back as an offer, under a config that limits
  // nothing, gives the same agreement.
  DeflateConfig open;
  open.enabled = true;
  DeflateParams back;
  std::string back_r;
  CHECK(lariat::detail::negotiate_deflate({r}, open, &back, &back_r));
  CHECK(back.server_window_bits == p.server_window_bits);
  CHECK(back.server_no_context_takeover == p.server_no_context_takeover);
  CHECK(back.client_no_context_takeover == p.client_no_context_takeover);
  CHECK(back.client_window_bits == p.client_window_bits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  // Each header value in an exactly sized heap buffer, so ASan sees reads
  // past a value's end (the parser works on string_views).
  std::vector<std::string> storage;
  {
    const char *p = reinterpret_cast<const char *>(data + 2);
    const char *end = reinterpret_cast<const char *>(data + size);
    while (true) {
      const char *nl = static_cast<const char *>(std::memchr(p, '\n', end - p));
      storage.emplace_back(p, nl ? nl : end);
      if (!nl) break;
      p = nl + 1;
    }
  }
  std::vector<std::string_view> values(storage.begin(), storage.end());

  DeflateConfig configs[4];
  configs[0] = config_from(data[0]);
  configs[1] = config_from(data[1]);
  configs[2].enabled = true;  // the defaults: 15/15, context takeover
  configs[3] = configs[0];
  configs[3].enabled = false;

  // The verdict under the defaults (configs[2]): the reference.
  bool base_verdict = false;
  {
    DeflateParams params;
    std::string response;
    base_verdict = lariat::detail::negotiate_deflate(values, configs[2],
                                                     &params, &response);
  }
  for (int i = 0; i < 4; ++i) {
    DeflateParams params;
    std::string response;
    bool ok = lariat::detail::negotiate_deflate(values, configs[i], &params,
                                                &response);
    if (!configs[i].enabled) {
      CHECK(!ok);
      continue;
    }
    // Whether an offer is acceptable depends on the offer alone: the
    // config only narrows what is agreed (RFC 7692 7.1.2: a server may
    // always answer with smaller windows than offered) - except that a
    // client window under 15 is a requirement (Cowboy's
    // client_max_window_bits), which can only decline more.
    if (configs[i].client_max_window_bits == 15)
      CHECK(ok == base_verdict);
    else
      CHECK(!ok || base_verdict);
    if (!ok) continue;
    check_agreement(configs[i], params, response);

    // The first header value holding an acceptable offer is the one
    // agreed to.
    for (std::string_view v : values) {
      DeflateParams one;
      std::string one_r;
      if (!lariat::detail::negotiate_deflate({v}, configs[i], &one, &one_r))
        continue;
      CHECK(one_r == response && same(one, params));
      break;
    }
  }
  return 0;
}
