#include "publication.h"

namespace lariat::detail {

const std::string &Publication::plain(FrameWriter &writer, uint64_t *encoded) {
  if (!have_plain_) {
    writer.write(&plain_, opcode_, true, 0, data_, len_);
    have_plain_ = true;
    ++*encoded;
  }
  return plain_;
}

const std::string *Publication::compressed(DeflateCodec &codec,
                                           FrameWriter &writer,
                                           std::string *scratch,
                                           uint64_t *encoded) {
  uint64_t key = codec.output_key();
  for (const Variant &v : variants_)
    if (v.key == key) return &v.frame;
  if (codec.compress(data_, len_, scratch) != DeflateCodec::Status::kOk)
    return nullptr;
  variants_.push_back({key, std::string()});
  writer.write(&variants_.back().frame, opcode_, true, 4,
               reinterpret_cast<const uint8_t *>(scratch->data()),
               scratch->size());
  ++*encoded;
  return &variants_.back().frame;
}

}  // namespace lariat::detail
