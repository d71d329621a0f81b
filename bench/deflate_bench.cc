// Cost and gain of permessage-deflate on a realistic text workload: JSON
// messages of 1-4 KiB, compressed as lariat sends them (context takeover
// and without) and inflated as it receives them. Prints the compression
// ratio and CPU time per message next to a plain copy of the same bytes.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "deflate.h"

using lariat::detail::DeflateCodec;
using lariat::detail::DeflateConfig;
using lariat::detail::DeflateParams;

namespace {

std::vector<std::string> json_messages(size_t count) {
  std::mt19937 rng(7);
  static const char *names[] = {"alice", "bob", "carol", "dave", "erin"};
  static const char *events[] = {"trade", "quote", "heartbeat", "order"};
  std::vector<std::string> out;
  for (size_t i = 0; i < count; ++i) {
    size_t target = 1024 + rng() % 3072;
    std::string m = "{\"seq\":" + std::to_string(i) + ",\"items\":[";
    while (m.size() < target) {
      char item[256];
      std::snprintf(item, sizeof(item),
                    "{\"user\":\"%s\",\"event\":\"%s\",\"price\":%u.%02u,"
                    "\"qty\":%u,\"ts\":%u},",
                    names[rng() % 5], events[rng() % 4], rng() % 1000,
                    rng() % 100, rng() % 500, 1700000000u + rng() % 100000);
      m += item;
    }
    m.back() = ']';
    m += "}";
    out.push_back(std::move(m));
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

}  // namespace

int main() {
  const auto messages = json_messages(20000);
  size_t plain_bytes = 0;
  for (const auto &m : messages) plain_bytes += m.size();

  std::printf("%zu JSON messages, %.0f bytes on average\n\n", messages.size(),
              double(plain_bytes) / messages.size());
  std::printf("%-26s %8s %12s %12s\n", "mode", "ratio", "deflate us", "inflate us");

  // Baseline: what sending uncompressed costs per message (one copy).
  {
    std::string sink;
    auto t0 = std::chrono::steady_clock::now();
    for (const auto &m : messages) sink.assign(m);
    double us = seconds_since(t0) * 1e6 / messages.size();
    std::printf("%-26s %8.2f %12.2f %12.2f\n", "uncompressed (copy)", 1.0, us,
                us);
  }
  for (int level : {1, 6})
  for (int takeover = 1; takeover >= 0; --takeover) {
    DeflateConfig config;
    config.level = level;
    DeflateParams params;
    params.server_no_context_takeover = !takeover;
    params.client_no_context_takeover = !takeover;
    DeflateCodec sender(config, params), receiver(config, params);
    std::vector<std::string> packed(messages.size());
    size_t packed_bytes = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < messages.size(); ++i) {
      sender.compress(reinterpret_cast<const uint8_t *>(messages[i].data()),
                      messages[i].size(), &packed[i]);
      packed_bytes += packed[i].size();
    }
    double deflate_us = seconds_since(t0) * 1e6 / messages.size();
    std::string out;
    t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < messages.size(); ++i) {
      out.clear();
      receiver.decompress(reinterpret_cast<const uint8_t *>(packed[i].data()),
                          packed[i].size(), true, 1u << 20, &out);
      if (out != messages[i]) {
        std::fprintf(stderr, "round trip mismatch at %zu\n", i);
        return 1;
      }
    }
    double inflate_us = seconds_since(t0) * 1e6 / messages.size();
    char mode[64];
    std::snprintf(mode, sizeof(mode), "level %d, %s", level,
                  takeover ? "context takeover" : "no takeover");
    std::printf("%-26s %8.2f %12.2f %12.2f\n", mode,
                double(plain_bytes) / packed_bytes, deflate_us, inflate_us);
  }
  return 0;
}
