// libFuzzer: what a check program writes on its stdout (the process comparator's answers and
// hellos), split into lines as the comparator splits them. Nothing a program prints may crash
// doppel, and every line is exactly one of answer, hello or garbage: an answer carries either
// an error or its differences, never a silent pass with a problem, and a garbage line says why.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "doppel/child_process.hpp"
#include "protocol.hpp"

using namespace doppel;
using namespace doppel::plugins;

namespace {

void check(std::string_view text) {
  ProgramLine line = parse_program_line(text, 256);
  switch (line.type) {
    case ProgramLine::Type::garbage:
      if (line.problem.empty()) std::abort();
      break;
    case ProgramLine::Type::answer:
      if (!line.problem.empty() && line.judgement.error.empty()) std::abort();
      for (const auto& d : line.judgement.differences)
        if (d.kind.empty()) std::abort();
      break;
    case ProgramLine::Type::hello: break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  LineSplitter lines(4096);
  lines.feed(input, check, [] {});
  if (!lines.rest().empty()) check(lines.rest());
  return 0;
}
