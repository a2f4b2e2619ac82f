#pragma once
// Message kinds and sets of kinds, as GoReplay numbers them (1 request, 2 response, 3 replay).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace doppel {

enum class Kind : std::uint8_t {
  request = 1,   // a captured or read request
  response = 2,  // the original response, as the old service answered
  replay = 3,    // the response of the replay target
  verdict = 4,   // a comparator result (payload is JSON)
};

std::string_view kind_name(Kind kind);
std::optional<Kind> parse_kind(std::string_view name);  // "request", "1", ...

class KindSet {
 public:
  constexpr KindSet() = default;
  constexpr KindSet(std::initializer_list<Kind> kinds) {
    for (Kind k : kinds) bits_ |= bit(k);
  }
  static constexpr KindSet all() { return from_bits(0x1e); }
  static constexpr KindSet http() { return KindSet{Kind::request, Kind::response, Kind::replay}; }
  static constexpr KindSet from_bits(std::uint32_t bits) {
    KindSet s;
    s.bits_ = bits;
    return s;
  }
  constexpr bool contains(Kind k) const { return (bits_ & bit(k)) != 0; }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr std::uint32_t bits() const { return bits_; }
  constexpr KindSet operator&(KindSet o) const { return from_bits(bits_ & o.bits_); }
  constexpr KindSet operator|(KindSet o) const { return from_bits(bits_ | o.bits_); }
  constexpr KindSet operator-(KindSet o) const { return from_bits(bits_ & ~o.bits_); }
  constexpr bool operator==(const KindSet&) const = default;
  std::string to_string() const;  // "{request, replay}"

 private:
  static constexpr std::uint32_t bit(Kind k) { return 1u << static_cast<unsigned>(k); }
  std::uint32_t bits_ = 0;
};

}  // namespace doppel
