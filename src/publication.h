// One publish on its way to a loop's subscribers: the frame is encoded
// once (header and payload) and, for permessage-deflate subscribers whose
// compressor keeps no context, compressed once per set of parameters;
// every subscriber's output gets those bytes.
#ifndef LARIAT_PUBLICATION_H
#define LARIAT_PUBLICATION_H

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "deflate.h"
#include "frame_writer.h"

struct lariat_server;

namespace lariat::detail {

// A publish from another thread, copied for the mailbox.
struct PendingPublish {
  std::string topic;
  uint8_t opcode;
  uint32_t flags;
  std::string payload;
};

// lariat_server_defer(): what to run on the loop.
struct DeferredCall {
  void (*fn)(lariat_server *, void *);
  void *data;
};

class Publication {
 public:
  Publication(uint8_t opcode, uint32_t flags, const uint8_t *data, size_t len)
      : opcode_(opcode), flags_(flags), data_(data), len_(len) {}

  uint8_t opcode() const { return opcode_; }
  uint32_t flags() const { return flags_; }
  const uint8_t *data() const { return data_; }
  size_t len() const { return len_; }

  // The uncompressed frame, built on first use. |encoded| counts builds.
  const std::string &plain(FrameWriter &writer, uint64_t *encoded);
  // The compressed frame for subscribers whose codec shares its output
  // (DeflateCodec::output_key()); nullptr when compression failed.
  const std::string *compressed(DeflateCodec &codec, FrameWriter &writer,
                                std::string *scratch, uint64_t *encoded);

 private:
  struct Variant {
    uint64_t key;
    std::string frame;
  };
  uint8_t opcode_;
  uint32_t flags_;
  const uint8_t *data_;
  size_t len_;
  bool have_plain_ = false;
  std::string plain_;
  std::vector<Variant> variants_;  // a handful at most
};

}  // namespace lariat::detail

#endif
