#pragma once
// Read access to a parsed simdjson DOM document through its tape, the flat array of 64-bit
// words the DOM classes are views over (format: simdjson's doc/tape.md). The JSON diff walks
// two documents node by node many times over (positions, permutations, hashes); on the tape a
// node costs a word read, where the DOM classes' checked conversions cost several times that.
// tests/plugins/middleware/json_comparator/test_json_comparator.cpp pins the layout relied on
// here, so that a simdjson that changed it fails the tests rather than the comparisons.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <simdjson.h>

namespace doppel::json {

// A value is the index of its first tape word.
class JsonTape {
 public:
  static constexpr std::size_t kRoot = 1;  // word 0 is the root marker

  explicit JsonTape(const simdjson::dom::document& doc) : words_(doc.tape.get()), strings_(doc.string_buf.get()) {}

  // '{' object, '[' array, '"' string, 'l' int64, 'u' uint64, 'd' double, 't' true,
  // 'f' false, 'n' null.
  char type(std::size_t v) const { return static_cast<char>(words_[v] >> 56); }
  // As the DOM types it: true and false are both booleans.
  char kind(std::size_t v) const {
    char t = type(v);
    return t == 'f' ? 't' : t;
  }
  static bool is_number(char kind) { return kind == 'l' || kind == 'u' || kind == 'd'; }

  // The value after `v`: its next sibling, or the closing word of its container.
  std::size_t next(std::size_t v) const {
    switch (type(v)) {
      case '{':
      case '[': return static_cast<std::uint32_t>(words_[v]);
      case 'l':
      case 'u':
      case 'd': return v + 2;
      default: return v + 1;
    }
  }
  // The children of a container: from first(v) while != end(v). An object's children are
  // keys (strings), each followed by its value.
  static std::size_t first(std::size_t v) { return v + 1; }
  std::size_t end(std::size_t v) const { return static_cast<std::uint32_t>(words_[v]) - 1; }
  // Children of a container (members of an object), as the DOM's size(): saturates at 2^24 - 1.
  std::size_t count(std::size_t v) const { return static_cast<std::size_t>((words_[v] >> 32) & 0xFFFFFF); }

  std::string_view string(std::size_t v) const {
    std::size_t offset = static_cast<std::size_t>(words_[v] & 0x00FFFFFFFFFFFFFFULL);
    std::uint32_t length = 0;
    std::memcpy(&length, strings_ + offset, sizeof length);
    return {reinterpret_cast<const char*>(strings_ + offset + sizeof length), length};
  }
  std::uint64_t payload_word(std::size_t v) const { return words_[v + 1]; }  // numbers
  std::int64_t int64(std::size_t v) const { return static_cast<std::int64_t>(words_[v + 1]); }
  std::uint64_t uint64(std::size_t v) const { return words_[v + 1]; }
  double real(std::size_t v) const {
    double d = 0;
    std::memcpy(&d, &words_[v + 1], sizeof d);
    return d;
  }
  // Whether the value `v` here and the value `w` of `other` were parsed from the same text:
  // the same tape words (container links and string offsets shifted alike) and the same string
  // bytes. Such values are equal under any comparison, so a walk need not look inside them; a
  // false says nothing (1 and 1.0, or keys in another order, are equal and not identical).
  bool identical(std::size_t v, const JsonTape& other, std::size_t w) const;
  // A number as a double, as the diff compares numbers of different types.
  double as_double(std::size_t v) const {
    switch (type(v)) {
      case 'l': return static_cast<double>(int64(v));
      case 'u': return static_cast<double>(uint64(v));
      default: return real(v);
    }
  }

 private:
  const std::uint64_t* words_;
  const std::uint8_t* strings_;
};

// json::display of the value `v`: minified JSON cut to `max_bytes` (0: no limit) on a UTF-8
// boundary, followed by "…" when cut. The same text, byte for byte (the tests compare them).
std::string display(const JsonTape& tape, std::size_t v, std::size_t max_bytes);

}  // namespace doppel::json
