// libFuzzer: the NSS key log parser. Text added whole and in two parts gives the same stats and
// secrets; keylog_problem accepts exactly the texts that hold a secret or nothing but comments.
#include <cstdint>
#include <string_view>

#include "tls_keylog.hpp"

using namespace doppel::plugins::raw;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  TlsKeyLog whole;
  whole.add(text);
  auto problem = keylog_problem(text);
  auto stats = whole.stats();
  if (stats.lines > 0 && problem) __builtin_trap();  // a secret taken: it is a key log
  if (stats.lines > 0 && whole.generation() != 1) __builtin_trap();

  // Split at a line boundary: the same lines, the same counts.
  std::size_t cut = text.find('\n', size / 2);
  if (cut != std::string_view::npos) {
    TlsKeyLog parts;
    parts.add(text.substr(0, cut + 1));
    parts.add(text.substr(cut + 1));
    auto split = parts.stats();
    if (split.lines != stats.lines || split.bad_lines != stats.bad_lines || parts.size() != whole.size())
      __builtin_trap();
  }
  if (size >= 32) {
    whole.remember_session(text.substr(0, 16), text.substr(16, 16));
    if (whole.find_session(text.substr(0, 16)) != std::string(text.substr(16, 16))) __builtin_trap();
    (void)whole.find(text.substr(0, 32));
  }
  return 0;
}
