#pragma once
// Versions a plugin library is checked against before any C++ type crosses the boundary.
#include <cstdint>

#define DOPPEL_SDK_VERSION "0.1.0"
// Bumped whenever a type or virtual signature in sdk/include changes layout.
#define DOPPEL_ABI_VERSION 9u
// What ABI DOPPEL_ABI_VERSION is: the layouts of the SDK's types and its virtual functions in
// order, as tests/sdk/abi_fingerprint.py computes them. The test sdk_abi_fingerprint fails when
// they change and this does not; change it only together with a new DOPPEL_ABI_VERSION.
#define DOPPEL_ABI_FINGERPRINT "34e6a2653b8113ec"

namespace doppel {
inline constexpr std::uint32_t kAbiVersion = DOPPEL_ABI_VERSION;
inline constexpr const char* kSdkVersion = DOPPEL_SDK_VERSION;
}  // namespace doppel
