#include "grpc_comparator.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "doppel/grpc.hpp"
#include "doppel/json_text.hpp"

namespace doppel::plugins {
namespace {

// What a message of the response is: protobuf (application/grpc, +proto) or JSON (+json).
bool carries_json(const HttpView& view) {
  auto type = view.header("content-type");
  if (!type) return false;
  std::string_view t = trim_ows(type->substr(0, type->find(';')));
  return t.size() >= 5 && iequals(t.substr(t.size() - 5), "+json");
}

std::string status_text(const grpc::Status& s) {
  if (s.code_text.empty()) return "(none)";
  if (!s.code) return s.code_text;
  std::string_view name = grpc::status_name(*s.code);
  return name.empty() ? s.code_text : s.code_text + " " + std::string(name);
}

std::string not_grpc_text(const Message& message) {
  const HttpView& http = message.http();
  if (!http.is_response()) return "(not an HTTP response)";
  auto type = http.header("content-type");
  return (type ? std::string(trim_ows(*type)) : std::string("(no content-type)")) + " (HTTP " +
         std::to_string(http.status()) + ")";
}

// `[i]` followed by a path inside the message as json_diff writes it: the path of the field in
// a JSON array of the stream's messages.
std::string message_path(std::size_t index, std::string_view inner) {
  std::string path = "[" + std::to_string(index) + "]";
  if (inner == "$") return path;
  if (!inner.empty() && inner.front() != '[') path += '.';
  path += inner;
  return path;
}

struct Decoded {
  std::string json;
  std::string error;  // why the message could not be read
};

}  // namespace

std::vector<Difference> GrpcComparator::compare(const Exchange& exchange) const {
  if (!exchange.original || !exchange.replay || !exchange.replay->meta.error.empty()) return {};
  const HttpView& original_http = exchange.original->http();
  const HttpView& replay_http = exchange.replay->http();
  const std::size_t shown = config_.diff.max_value_bytes;
  grpc::Response original = grpc::read_response(original_http);
  grpc::Response replay = grpc::read_response(replay_http);
  if (!original.is_grpc || !replay.is_grpc) {
    return {Difference{"content-type", "not_grpc", original.is_grpc ? "gRPC" : not_grpc_text(*exchange.original),
                       replay.is_grpc ? "gRPC" : not_grpc_text(*exchange.replay),
                       "a response is not gRPC (content-type application/grpc or application/grpc+FORMAT)"}};
  }

  std::vector<Difference> out;
  auto presence_kind = [](bool in_original, bool in_replay) {
    return in_original == in_replay ? "changed" : in_original ? "missing" : "extra";
  };
  if (original.status.code_text != replay.status.code_text) {
    out.emplace_back("grpc-status",
                     presence_kind(!original.status.code_text.empty(), !replay.status.code_text.empty()),
                     status_text(original.status), status_text(replay.status));
  }
  // An absent grpc-message and an empty one say the same: no status text.
  if (config_.compare_message && original.status.message != replay.status.message) {
    out.emplace_back("grpc-message", presence_kind(!original.status.message.empty(), !replay.status.message.empty()),
                     json::truncate_for_display(original.status.message, shown),
                     json::truncate_for_display(replay.status.message, shown));
  }

  const grpc::Messages& a = original.body;
  const grpc::Messages& b = replay.body;
  if (!a.error.empty() || !b.error.empty()) {
    // Equally broken bodies with the same messages before the break answer alike.
    if (a.error == b.error && a.messages == b.messages) return out;
    auto side = [](const grpc::Messages& m) {
      return m.error.empty() ? std::to_string(m.messages.size()) + " messages" : m.error;
    };
    out.emplace_back("messages", "invalid_grpc", side(a), side(b), "the gRPC body could not be split into messages");
    return out;
  }
  if (a.messages.size() != b.messages.size())
    out.emplace_back("messages", "length", std::to_string(a.messages.size()), std::to_string(b.messages.size()));

  std::size_t common = std::min(a.messages.size(), b.messages.size());

  // The message type of the response, from the method the request names. Looked up whenever
  // there are messages, equal ones too, so that a method missing from the set shows on its
  // first call rather than on its first difference.
  bool as_json = carries_json(original_http) && carries_json(replay_http);
  std::string type;
  if (config_.descriptors && !as_json && (!a.messages.empty() || !b.messages.empty())) {
    if (!exchange.request || !exchange.request->http().is_request())
      throw std::runtime_error("no request to tell the gRPC method by: the messages cannot be decoded");
    std::string_view path = exchange.request->http().path();
    auto method = config_.descriptors->method(path);
    if (!method)
      throw std::runtime_error("method " + std::string(path) +
                               " is not in the descriptor set (compare it with a `grpc` comparator without "
                               "descriptor_set, or add its .proto to the set)");
    type = method->output_type;
  }
  auto decode = [&](const std::string& bytes) {
    Decoded d;
    if (as_json) d.json = bytes;  // json_diff reports a message that is not JSON as invalid_json
    else if (config_.descriptors) config_.descriptors->to_json(type, bytes, d.json, d.error);
    else protobuf::raw_to_json(bytes, d.json, d.error);
    return d;
  };

  // Differences beyond max_differences are cut as the json comparator cuts them.
  std::optional<json::JsonDiffConfig> narrowed;
  std::size_t limit = config_.diff.max_differences;
  bool truncated = false;
  for (std::size_t i = 0; i < common && !truncated; ++i) {
    if (a.messages[i] == b.messages[i]) continue;
    if (out.size() >= limit) {
      truncated = true;
      break;
    }
    Decoded da = decode(a.messages[i]), db = decode(b.messages[i]);
    if (!da.error.empty() || !db.error.empty()) {
      auto side = [&](const Decoded& d) {
        return d.error.empty() ? json::truncate_for_display(d.json, shown) : "(undecodable: " + d.error + ")";
      };
      out.emplace_back(message_path(i, "$"), "invalid_protobuf", side(da), side(db),
                       config_.descriptors ? "a message does not match " + type : "a message is not protobuf");
      continue;
    }
    const json::JsonDiffConfig* config = &config_.diff;
    if (limit - out.size() < config_.diff.max_differences) {
      if (!narrowed) narrowed = config_.diff;
      narrowed->max_differences = limit - out.size();
      config = &*narrowed;
    }
    for (auto& d : json::json_diff(da.json, db.json, *config)) {
      if (d.kind == "truncated") {
        truncated = true;
        break;
      }
      d.path = message_path(i, d.path);
      out.push_back(std::move(d));
    }
  }
  if (truncated)
    out.emplace_back("$", "truncated", "",
                     "more than " + std::to_string(out.size()) + " differences; the rest are not shown");
  return out;
}

}  // namespace doppel::plugins
