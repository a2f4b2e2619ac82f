#pragma once
// The process comparator's protocol (docs/guide/compare.md "Checks in any language"): one
// JSON object per line each way. doppel writes a judgement, the program answers it by id;
// the program may first say how it wants bodies (hello).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/comparator.hpp"

namespace doppel::plugins {

// How bodies are written, as the program's hello asked.
struct BodyEncoding {
  bool base64 = false;  // every body as body_base64 (else text when it is valid UTF-8)
  bool json = true;     // a JSON body also parsed, under `json`
};

struct JudgementRequest {
  std::uint64_t id = 0;
  std::string_view comparator;  // the name rules use
  const Exchange* exchange = nullptr;
  BodyEncoding encoding;
  // Bodies longer than this go to a file (body_file) in `spill_dir`, named after the id.
  std::size_t body_limit = 0;
  std::string_view spill_dir;
};

// Appends one judgement line (with its "\n") to `out`. Files written for large bodies are
// appended to `spilled` (the caller removes them once the judgement is over). Throws
// std::runtime_error when a body file cannot be written.
void append_judgement(std::string& out, const JudgementRequest& request, std::vector<std::string>& spilled);

// One line the program wrote.
struct ProgramLine {
  enum class Type { answer, hello, garbage } type = Type::garbage;
  std::uint64_t id = 0;      // answer
  Judgement judgement;       // answer
  BodyEncoding encoding;     // hello
  // garbage: what is wrong with the line. answer: set when the answer is malformed (the
  // judgement then carries it as its error, so the exchange is not left to time out).
  std::string problem;
};

// Reads one line; never throws. Limits on what is kept: each value shown as at most
// `value_limit` bytes (the compare stage truncates further for display).
ProgramLine parse_program_line(std::string_view line, std::size_t value_limit = 64 * 1024);

}  // namespace doppel::plugins
