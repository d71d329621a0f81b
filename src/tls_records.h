// TLS 1.3 record protection without OpenSSL's SSL object, for connections
// that hibernate: the SSL (9 KiB from SSL_new, 15 KiB established) is
// freed, and what the connection still needs - the traffic secrets, keys
// and sequence numbers of both directions - fits in a few hundred bytes.
// After it wakes the connection stays on these records: application data,
// alerts (close_notify) and KeyUpdate (RFC 8446 4.6.3, answered when the
// peer asks) are all a server sees once the handshake is over.
#ifndef LARIAT_TLS_RECORDS_H
#define LARIAT_TLS_RECORDS_H

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace lariat::detail {

class Tls13Records {
 public:
  enum class Cipher : uint8_t { kAes128Gcm, kAes256Gcm, kChacha20Poly1305 };
  // One direction: its secret, and the key, IV and sequence number made
  // from it.
  struct Direction {
    uint8_t secret[48];
    uint8_t key[32];
    uint8_t iv[12];
    uint64_t seq = 0;
    EVP_CIPHER_CTX *ctx = nullptr;  // while awake only
  };

  ~Tls13Records();
  // The secrets of the traffic keys in use (from the keylog callback) and
  // how many records each direction has already protected. False for an
  // unknown cipher.
  bool init(uint16_t cipher_id, const uint8_t *read_secret,
            const uint8_t *write_secret, size_t secret_len, uint64_t read_seq,
            uint64_t write_seq);
  // Frees the cipher contexts (hibernation); they come back when needed.
  void release();

  enum class Status { kOk, kClosed, kError };
  // Opens the records of |in| (a partial one is kept for the next call):
  // plaintext is appended to |plain|, and records we must send (a
  // KeyUpdate answer) to |out|. kClosed: close_notify came.
  Status open(const uint8_t *in, size_t n, std::string *plain,
              std::string *out);
  // Seals |n| bytes of application data into records appended to |out|.
  bool seal(const uint8_t *p, size_t n, std::string *out);
  // A close_notify alert, appended to |out|.
  bool close_notify(std::string *out);
  // Bytes of an incomplete record kept from the last open().
  bool has_partial() const { return !partial_.empty(); }
  // One record of content |type| (0x15 alert, 0x16 handshake, 0x17
  // application data) appended to |out|.
  bool seal_record(uint8_t type, const uint8_t *p, size_t n, std::string *out);

 private:
  bool derive(Direction *d);
  bool update(Direction *d);  // the next generation of |d|'s secret
  bool ready(Direction *d, bool encrypt);
  Status open_record(const uint8_t *rec, size_t len, std::string *plain,
                     std::string *out);
  const EVP_MD *md() const;
  const EVP_CIPHER *cipher() const;
  size_t key_len() const { return cipher_ == Cipher::kAes128Gcm ? 16 : 32; }

  Cipher cipher_ = Cipher::kAes128Gcm;
  uint8_t secret_len_ = 32;
  Direction read_, write_;
  std::string partial_;
};

}  // namespace lariat::detail

#endif
