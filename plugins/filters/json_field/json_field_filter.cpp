#include "json_field_filter.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "doppel/form.hpp"
#include "doppel/grpc.hpp"
#include "doppel/json_text.hpp"

namespace doppel::plugins {
namespace {

// The values found for the field: JSON elements (valid while `doc` lives) and form/query text.
struct FoundValues {
  std::vector<simdjson::dom::element> json;
  std::vector<std::string> text;
  bool empty() const { return json.empty() && text.empty(); }
};

void collect_form(const json::JsonPath& field, std::string_view form, std::vector<std::string>& out) {
  const auto& seg = field.segments().front();
  for (auto& [key, value] : parse_form(form))
    if (seg.type == json::JsonPath::Segment::Type::any_key || key == seg.key) out.push_back(std::move(value));
}

}  // namespace

void JsonFieldFilter::warn_once(std::string_view reason, const std::string& detail) {
  bool& warned = reason == "grpc_no_descriptor_set" ? warned_no_descriptor_set_
                 : reason == "grpc_unknown_method"  ? warned_unknown_method_
                                                    : warned_undecodable_;
  if (warned) return;
  warned = true;
  context().log().warn("{} (counted as dropped.{} when it decides the drop; logged once)", detail, reason);
}

std::string_view JsonFieldFilter::read_grpc(const HttpView& http, std::string& json) {
  if (!config_.descriptors) {
    warn_once("grpc_no_descriptor_set",
              "gRPC request bodies are protobuf and can only be read with descriptor_set (protoc "
              "--descriptor_set_out=api.pb --include_imports api.proto); first seen on " + std::string(http.path()));
    return "grpc_no_descriptor_set";
  }
  auto method = config_.descriptors->method(http.path());
  if (!method) {
    warn_once("grpc_unknown_method",
              "gRPC method " + std::string(http.path()) + " is not in the descriptor set; add its .proto to the set");
    return "grpc_unknown_method";
  }
  grpc::Response read = grpc::read_response(http);
  // Unary and client-streaming requests are judged by their first message; an error after it
  // (a stream cut short by the capture) does not make that message unreadable.
  if (read.body.messages.empty()) {
    if (read.body.error.empty()) return {};  // no message: no field, like a blank JSON body
    warn_once("grpc_undecodable", "gRPC request to " + method->path + " cannot be split into messages: " +
                                      read.body.error);
    return "grpc_undecodable";
  }
  std::string error;
  if (!config_.descriptors->to_json(method->input_type, read.body.messages.front(), json, error)) {
    warn_once("grpc_undecodable", "gRPC request to " + method->path + " does not decode: " + error);
    return "grpc_undecodable";
  }
  return {};
}

void JsonFieldFilter::process(const MessagePtr& message) {
  const HttpView& http = message->http();
  if (!http.is_request()) {
    context().drop("unparseable_request");
    return;
  }
  FoundValues found;
  const bool single_key = config_.field.is_single_key();
  if (config_.look_in_query && single_key && !http.query().empty()) collect_form(config_.field, http.query(), found.text);

  // The body problem that kept us from looking, reported only when it decides the drop.
  std::string_view body_problem;
  std::optional<json::JsonDocument> doc;
  std::string grpc_json;  // the decoded gRPC message `doc` was parsed from
  if ((config_.look_in_json || config_.look_in_form) && !http.raw_body().empty()) {
    const DecodedBody& body = message->body();
    auto content_type = http.header("Content-Type");
    bool json_type = content_type && json::is_json_content_type(*content_type);
    bool form_type = content_type && is_form_content_type(*content_type);
    if (content_type && grpc::is_grpc_content_type(*content_type)) {
      // Protobuf, not text: read through the descriptor set or not at all.
      if (config_.look_in_json) body_problem = read_grpc(http, grpc_json);
      if (body_problem.empty() && !grpc_json.empty()) {
        doc.emplace(json::JsonDocument::parse(grpc_json));
        if (doc->ok()) found.json = config_.field.find(doc->root());
        else body_problem = "grpc_undecodable";  // libprotobuf printed what simdjson refuses (too deep)
      }
    } else if (!body.error.empty()) {
      body_problem = "undecodable_body";
    } else if (config_.look_in_json && (json_type || (!form_type && json::looks_like_json(body.bytes)))) {
      doc.emplace(json::JsonDocument::parse(body.bytes));
      if (doc->ok()) found.json = config_.field.find(doc->root());
      // A JSON content type on a blank body: nothing to look at, not an error.
      else if (body.bytes.find_first_not_of(" \t\r\n") != std::string::npos) body_problem = "invalid_json";
    } else if (config_.look_in_form && single_key && (form_type || (!content_type && looks_like_form(body.bytes)))) {
      collect_form(config_.field, body.bytes, found.text);
    }
  }

  auto equals_any = [&](const std::vector<std::string>& list) {
    for (const auto& want : list) {
      for (auto e : found.json)
        if (json::scalar_equals(e, want)) return true;
      for (const auto& t : found.text)
        if (t == want) return true;
    }
    return false;
  };
  auto matches_any = [&] {
    for (const auto& re : config_.matches) {
      for (auto e : found.json) {
        auto type = e.type();
        if (type == simdjson::dom::element_type::ARRAY || type == simdjson::dom::element_type::OBJECT) continue;
        if (RE2::PartialMatch(json::scalar_text(e), *re)) return true;
      }
      for (const auto& t : found.text)
        if (RE2::PartialMatch(t, *re)) return true;
    }
    return false;
  };

  std::string_view reason;
  if (config_.exists && *config_.exists != !found.empty()) reason = *config_.exists ? "field_missing" : "field_present";
  else if (!config_.in.empty() && found.empty()) reason = "field_missing";
  else if (!config_.in.empty() && !equals_any(config_.in)) reason = "value_not_in_list";
  else if (!config_.not_in.empty() && equals_any(config_.not_in)) reason = "value_in_not_in_list";
  else if (!config_.matches.empty() && found.empty()) reason = "field_missing";
  else if (!config_.matches.empty() && !matches_any()) reason = "value_not_matching";

  // A body we could not read may have held the field: say so rather than "missing".
  if (found.empty() && !body_problem.empty() && (!reason.empty() || config_.exists == false || !config_.not_in.empty()))
    reason = body_problem;
  if (!reason.empty()) {
    context().drop(reason);
    return;
  }
  context().emit(message);
}

}  // namespace doppel::plugins
