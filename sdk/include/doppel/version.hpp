#pragma once
// Versions a plugin library is checked against before any C++ type crosses the boundary.
#include <cstdint>

#define DOPPEL_SDK_VERSION "0.1.0"
// Bumped whenever a type or virtual signature in sdk/include changes layout.
#define DOPPEL_ABI_VERSION 6u

namespace doppel {
inline constexpr std::uint32_t kAbiVersion = DOPPEL_ABI_VERSION;
inline constexpr const char* kSdkVersion = DOPPEL_SDK_VERSION;
}  // namespace doppel
