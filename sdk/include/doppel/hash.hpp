#pragma once
// FNV-1a hashes: stable across runs, machines and languages (Go's hash/fnv computes the
// same), so sampling and sharding decisions agree with GoReplay and between processes.
#include <cstdint>
#include <string_view>

namespace doppel {

constexpr std::uint32_t fnv1a32(std::string_view bytes) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

constexpr std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace doppel
