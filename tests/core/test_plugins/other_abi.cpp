// A library that claims another plugin ABI: the loader must refuse it before touching any
// C++ type in it.
#include <cstdint>

extern "C" {
struct foreign_descriptor {
  std::uint32_t abi_version;
  const char* sdk_version;
  const char* build_tag;
  const void* (*definitions)(std::uint32_t*);
};
static const void* no_definitions(std::uint32_t* count) {
  *count = 0;
  return nullptr;
}
}
extern "C" __attribute__((visibility("default"))) const foreign_descriptor doppel_plugin_descriptor_v = {
    999, "9.9.9", "libstdc++/cxx11", &no_definitions};
