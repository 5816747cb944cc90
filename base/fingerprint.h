// A 64-bit fingerprint that is the same in every process of a job (FNV-1a; absl::Hash is seeded
// per process, so it cannot be compared across ranks):
//
//   Fingerprint f;
//   f.Add("tp");
//   f.Add(int64_t{2});
//   const uint64_t value = f.value();  // equal on every rank that added the same values
//
// Not cryptographic: for ranks to compare what they were started with, not against an adversary.
#ifndef NMESH_BASE_FINGERPRINT_H_
#define NMESH_BASE_FINGERPRINT_H_

#include <cstdint>
#include <string_view>

namespace nmesh {

class Fingerprint {
 public:
  // Adds the bytes of `text`, then a terminator, so that ("ab", "c") and ("a", "bc") differ.
  void Add(std::string_view text) {
    for (char c : text) Byte(static_cast<uint8_t>(c));
    Byte(0);
  }
  // Adds the 8 bytes of `value`, little end first.
  void Add(int64_t value) {
    for (int i = 0; i < 8; ++i) Byte(static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i)));
  }
  uint64_t value() const { return hash_; }

 private:
  void Byte(uint8_t byte) {
    hash_ ^= byte;
    hash_ *= 0x100000001b3ull;
  }
  uint64_t hash_ = 0xcbf29ce484222325ull;
};

}  // namespace nmesh

#endif  // NMESH_BASE_FINGERPRINT_H_
