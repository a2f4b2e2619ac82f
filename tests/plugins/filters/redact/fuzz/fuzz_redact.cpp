// libFuzzer: the redact filter's Stage on any message, driven through doppel::testing as its
// unit tests drive it. Byte 0 picks one of a few configurations and the kind (request or
// response); the rest is the payload. Whatever the bytes, the filter emits the message or
// drops it with a counted reason, keeps id, kind and timestamp, and leaves no listed secret
// readable in what it emits: every listed header, every JSON field its paths name and every
// listed form field, multipart part or query parameter reads REDACTED-... in the output.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/form.hpp"
#include "doppel/json_path.hpp"
#include "doppel/json_text.hpp"
#include "doppel/testing.hpp"

using namespace doppel;

namespace {

struct Setup {
  Value options;
  std::vector<std::string> headers;
  std::vector<std::string> fields;
};

const std::vector<Setup>& setups() {
  static const std::vector<Setup> all = [] {
    std::vector<Setup> s;
    auto add = [&](std::vector<std::string> headers, std::vector<std::string> fields, const char* on_unreadable) {
      Value::Array h, f;
      for (const auto& x : headers) h.push_back(Value(x));
      for (const auto& x : fields) f.push_back(Value(x));
      // A fixed key: the same tokens every run (and no warning about a random key per input).
      s.push_back({Value::table({{"headers", Value(h)},
                                 {"fields", Value(f)},
                                 {"on_unreadable", on_unreadable},
                                 {"key", "doppel-fuzz-key-0123456789"}}),
                   headers, fields});
    };
    add({"Authorization", "cookie", "X-Token"}, {"password", "user.token", "cards[*].number", "token"}, "drop");
    add({"Set-Cookie"}, {"a.b", "items[*].secret", "[0]", "s"}, "pass");
    add({}, {"password", "$.user.*", "list[*]"}, "drop");
    add({"Authorization"}, {}, "pass");
    add({"Cookie"}, {"**.password", "meta.secret", "*"}, "drop");
    return s;
  }();
  return all;
}

bool redacted(std::string_view value) { return value.starts_with("REDACTED-"); }

void leak(const char* what, std::string_view in, std::string_view out) {
  std::fprintf(stderr, "%s\n--- in ---\n%.*s\n--- out ---\n%.*s\n", what, static_cast<int>(in.size()), in.data(),
               static_cast<int>(out.size()), out.data());
  __builtin_trap();
}

// A form, multipart or query key the fields name: as one key, or as the path a bracketed key
// stands for ("user[password]").
bool key_is_listed(const json::JsonPathSet& fields, const std::string& key) {
  json::PathStep step = json::PathStep::of_key(key);
  if (fields.matches(std::span<const json::PathStep>(&step, 1))) return true;
  auto nested = bracket_key_path(key);
  return nested && fields.matches(*nested);
}

void check_json(const json::JsonPathSet& fields, std::string_view body, const Message& in, const Message& out) {
  auto doc = json::JsonDocument::parse(body);
  if (!doc.ok()) return;
  for (const auto& path : fields.paths())
    for (const auto& found : path.find(doc.root()))
      if (!found.is_string() || !redacted(std::string_view(found.get_string().value())))
        leak("a listed JSON field is readable", in.payload, out.payload);
}

void check_output(const Setup& setup, const Message& in, const Message& out) {
  const HttpView& v = out.http();
  if (!v.ok()) return;  // what is not HTTP is not read by anyone as HTTP either
  for (const auto& h : v.headers())
    for (const auto& name : setup.headers)
      if (iequals(h.name, name) && !redacted(h.value)) leak("a listed header is readable", in.payload, out.payload);

  auto fields = json::JsonPathSet::parse(setup.fields);
  if (fields.empty()) return;
  if (v.is_request())
    for (const auto& [key, value] : parse_form(v.query()))
      if (key_is_listed(fields, key) && !redacted(value)) leak("a listed query field is readable", in.payload, out.payload);

  const DecodedBody& body = out.body();
  if (!body.error.empty() || body.bytes.empty()) return;
  // How the filter reads a body (redact_filter.cpp): multipart first, then JSON, then form.
  auto type = v.header("Content-Type");
  bool form_type = type && is_form_content_type(*type);
  bool json_kind = (type && json::is_json_content_type(*type)) || (!form_type && json::looks_like_json(body.bytes));
  if (type && is_multipart_form_content_type(*type)) {
    auto boundary = multipart_boundary(*type);
    MultipartBody multipart = boundary ? parse_multipart(body.bytes, *boundary) : MultipartBody{{}, "no boundary"};
    if (multipart.error.empty()) {
      for (const auto& part : multipart.parts) {
        std::string_view content(body.bytes.data() + part.content_begin, part.content_end - part.content_begin);
        if (key_is_listed(fields, part.name) && !redacted(content))
          leak("a listed multipart part is readable", in.payload, out.payload);
      }
    } else if (json_kind) {
      check_json(fields, body.bytes, in, out);
    }
  } else if (json_kind) {
    check_json(fields, body.bytes, in, out);
  } else if (form_type) {
    for (const auto& [key, value] : parse_form(body.bytes))
      if (key_is_listed(fields, key) && !redacted(value)) leak("a listed form field is readable", in.payload, out.payload);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const Setup& setup = setups()[data[0] % setups().size()];
  Kind kind = data[0] & 0x10 ? Kind::response : Kind::request;
  testing::StageHarness harness(testing::linked_plugin("redact"), setup.options);
  auto in = testing::make_message(kind, std::string(reinterpret_cast<const char*>(data + 1), size - 1),
                                  "0123456789abcdef01234567", 42);
  harness.process(in);
  auto emitted = harness.emitted();
  std::uint64_t dropped = 0;
  for (const auto& [reason, count] : harness.drops()) dropped += count;
  if (emitted.size() + dropped != 1) __builtin_trap();  // one message in, one outcome
  if (emitted.empty()) return 0;
  const Message& out = *emitted.front();
  if (out.id != in->id || out.kind != in->kind || out.timestamp_ns != in->timestamp_ns) __builtin_trap();
  check_output(setup, *in, out);
  return 0;
}
