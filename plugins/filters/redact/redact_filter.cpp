#include "redact_filter.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <optional>

#include "doppel/form.hpp"
#include "doppel/grpc.hpp"
#include "json_spans.hpp"

namespace doppel::plugins {
namespace {

// Does a listed path name this form, multipart or query key (percent-decoded)? Its flat
// reading is a one-key path; a bracketed key ("user[password]") is also read as the path
// PHP, Rails and Express make of it.
bool key_is_listed(const json::JsonPathSet& fields, std::string_view key) {
  json::PathStep step = json::PathStep::of_key(key);
  if (fields.matches(std::span<const json::PathStep>(&step, 1))) return true;
  auto nested = bracket_key_path(key);
  return nested && fields.matches(*nested);
}

// A byte range of a text and what replaces it.
struct Replacement {
  std::size_t begin = 0, end = 0;
  std::string text;
};

// `text` with `replacements` (in order, not overlapping) applied.
std::string splice(std::string_view text, const std::vector<Replacement>& replacements) {
  std::string out;
  out.reserve(text.size());
  std::size_t from = 0;
  for (const auto& r : replacements) {
    out.append(text.substr(from, r.begin - from));
    out.append(r.text);
    from = r.end;
  }
  out.append(text.substr(from));
  return out;
}

// What redacting a body gave: a new body, nothing to change, or the reason it could not be read.
struct BodyRedaction {
  std::optional<std::string> body;
  std::string_view unreadable;
};

// Redacts the values of `form` ("a=1&b=2") whose key is listed. Returns nullopt when nothing
// was redacted; counts replaced values in `count`.
std::optional<std::string> redact_form(std::string_view form, const json::JsonPathSet& fields, Pseudonymizer& tokens,
                                       std::size_t& count) {
  std::vector<Replacement> replacements;
  std::size_t start = 0;
  while (start < form.size()) {
    std::size_t end = form.find('&', start);
    if (end == std::string_view::npos) end = form.size();
    std::string_view piece = form.substr(start, end - start);
    std::size_t eq = piece.find('=');
    if (!piece.empty() && key_is_listed(fields, percent_decode(piece.substr(0, eq)))) {
      // "k=v" -> "k=TOKEN"; a bare "k" -> "k=TOKEN" (the token of "").
      std::string_view value = eq == std::string_view::npos ? std::string_view{} : piece.substr(eq + 1);
      std::size_t value_begin = eq == std::string_view::npos ? end : start + eq + 1;
      std::string text = eq == std::string_view::npos ? "=" : "";
      text += tokens.token(percent_decode(value));
      replacements.push_back({value_begin, end, std::move(text)});
      ++count;
    }
    start = end + 1;
  }
  if (replacements.empty()) return std::nullopt;
  return splice(form, replacements);
}

bool is_field_space(char c) { return c == ' ' || c == '\t'; }

// Replaces the values of the listed fields among `lines`, header or trailer lines (each
// ending in LF or CRLF; a blank line ends the block, and it and whatever follows are copied).
// A value folded over continuation lines (obs-fold, RFC 9112 §5.2: lines starting with SP or
// HTAB) is replaced whole and its continuation lines removed; it is hashed unfolded (each
// fold read as one space), so it gets the token of the same value on one line.
void redact_field_lines(std::string_view lines, const std::vector<std::string>& names, Pseudonymizer& tokens,
                        std::string& out, std::size_t& count) {
  auto line_end = [&](std::size_t pos) {
    std::size_t nl = lines.find('\n', pos);
    return nl == std::string_view::npos ? lines.size() : nl + 1;
  };
  auto content_of = [&](std::size_t begin, std::size_t end) {  // without the line ending
    std::string_view line = lines.substr(begin, end - begin);
    if (line.ends_with('\n')) line.remove_suffix(1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    return line;
  };
  std::size_t pos = 0;
  while (pos < lines.size()) {
    std::size_t end = line_end(pos);
    std::string_view content = content_of(pos, end);
    if (content.empty()) break;  // the blank line
    std::size_t colon = content.find(':');
    bool listed = colon != std::string_view::npos && !is_field_space(content[0]) &&
                  std::any_of(names.begin(), names.end(),
                              [&](const std::string& n) { return iequals(trim_ows(content.substr(0, colon)), n); });
    if (!listed) {
      out.append(lines.substr(pos, end - pos));
      pos = end;
      continue;
    }
    std::size_t value_begin = colon + 1;
    while (value_begin < content.size() && is_field_space(content[value_begin])) ++value_begin;
    std::string value(trim_ows(content.substr(value_begin)));
    std::size_t last_begin = pos, last_end = end;
    while (last_end < lines.size() && is_field_space(lines[last_end])) {  // continuation lines
      last_begin = last_end;
      last_end = line_end(last_begin);
      std::string_view piece = trim_ows(content_of(last_begin, last_end));
      if (piece.empty()) continue;
      if (!value.empty()) value.push_back(' ');
      value.append(piece);
    }
    // Keep the name, the separator, and the last line's trailing whitespace and line ending.
    std::string_view last = content_of(last_begin, last_end);
    std::size_t trailing = last.size();
    while (trailing > 0 && is_field_space(last[trailing - 1])) --trailing;
    if (last_begin == pos) trailing = std::max(trailing, value_begin);
    out.append(lines.substr(pos, value_begin));
    out.append(tokens.token(value));
    out.append(lines.substr(last_begin + trailing, last_end - last_begin - trailing));
    ++count;
    pos = last_end;
  }
  out.append(lines.substr(pos));
}

// Where the trailer section of a chunked body starts (after the last chunk's "0" line), or
// nullopt when the framing cannot be followed that far.
std::optional<std::size_t> chunked_trailer_begin(std::string_view raw) {
  std::size_t pos = 0;
  while (pos < raw.size()) {
    std::size_t nl = raw.find('\n', pos);
    if (nl == std::string_view::npos) return std::nullopt;
    std::string_view size_text = raw.substr(pos, nl - pos);
    size_text = trim_ows(size_text.substr(0, size_text.find(';')));
    std::size_t size = 0;
    auto [ptr, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
    if (ec != std::errc() || ptr != size_text.data() + size_text.size()) return std::nullopt;
    pos = nl + 1;
    if (size == 0) return pos;
    if (size > raw.size() - pos) return std::nullopt;
    pos += size;
    if (raw.substr(pos, 2) == "\r\n") pos += 2;
    else if (raw.substr(pos, 1) == "\n") pos += 1;
    else return std::nullopt;
  }
  return std::nullopt;
}

// Replacements for the values of a JSON document at `text` + `offset` (each value becomes a
// JSON string holding its token); false when the document does not parse.
bool json_replacements(std::string_view text, std::size_t offset, const json::JsonPathSet& fields,
                       const json::ConcretePath& base, Pseudonymizer& tokens, std::vector<Replacement>& out) {
  auto doc = json::JsonDocument::parse(text);
  if (!doc.ok()) return false;
  for (auto& span : find_value_spans(text, fields, base))
    out.push_back({offset + span.begin, offset + span.end, "\"" + tokens.token(span.value) + "\""});
  return true;
}

BodyRedaction redact_json(std::string_view body, const json::JsonPathSet& fields, Pseudonymizer& tokens,
                          std::size_t& count) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return {};  // blank: nothing to read
  std::vector<Replacement> replacements;
  if (!json_replacements(body, 0, fields, {}, tokens, replacements)) return {std::nullopt, "invalid_json"};
  if (replacements.empty()) return {};
  count += replacements.size();
  return {splice(body, replacements), {}};
}

// Multipart/form-data: a listed part has its content replaced whole (a file too); a JSON part
// whose name lies on the way to a listed path (`meta` for `meta.password` or `**.password`) is
// looked into. Boundaries and part headers stay byte for byte.
BodyRedaction redact_multipart(std::string_view body, std::string_view content_type, const json::JsonPathSet& fields,
                               Pseudonymizer& tokens, std::size_t& count) {
  auto boundary = multipart_boundary(content_type);
  if (!boundary) return {std::nullopt, "invalid_multipart"};
  MultipartBody multipart = parse_multipart(body, *boundary);
  if (!multipart.error.empty()) return {std::nullopt, "invalid_multipart"};
  std::vector<Replacement> replacements;
  for (const auto& part : multipart.parts) {
    std::string_view content = body.substr(part.content_begin, part.content_end - part.content_begin);
    if (key_is_listed(fields, part.name)) {
      replacements.push_back({part.content_begin, part.content_end, tokens.token(content)});
      continue;
    }
    if (part.content_type.empty() || !json::is_json_content_type(part.content_type)) continue;
    // The part's readings as a place in one document: its name, and the path a bracketed name stands for.
    std::vector<json::ConcretePath> bases{{json::PathStep::of_key(part.name)}};
    if (auto nested = bracket_key_path(part.name)) bases.push_back(std::move(*nested));
    std::vector<Replacement> inside;
    for (const auto& base : bases) {
      if (!fields.may_match_below(base)) continue;
      if (content.find_first_not_of(" \t\r\n") == std::string_view::npos) break;
      if (!json_replacements(content, part.content_begin, fields, base, tokens, inside))
        return {std::nullopt, "invalid_json"};
    }
    // Two readings may find the same value, or one inside the other: keep the outer span once.
    std::sort(inside.begin(), inside.end(), [](const Replacement& a, const Replacement& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
    });
    std::size_t covered_to = 0;
    for (auto& r : inside) {
      if (r.begin < covered_to) continue;
      covered_to = r.end;
      replacements.push_back(std::move(r));
    }
  }
  if (replacements.empty()) return {};
  count += replacements.size();
  return {splice(body, replacements), {}};
}

// The 5-byte prefix of an uncompressed gRPC message of `size` bytes.
std::string grpc_prefix(std::size_t size) {
  std::string out(1, '\0');
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((size >> shift) & 0xFF);
  return out;
}

// The length in the prefix of the gRPC frame at `pos` (the caller checked that it is whole).
std::size_t grpc_frame_length(std::string_view data, std::size_t pos) {
  std::size_t n = 0;
  for (std::size_t i = 1; i <= 4; ++i) n = (n << 8) | static_cast<unsigned char>(data[pos + i]);
  return n;
}

}  // namespace

void RedactFilter::warn_once(std::string_view reason, const std::string& detail) {
  if (std::find(warned_.begin(), warned_.end(), reason) != warned_.end()) return;
  warned_.emplace_back(reason);
  if (config_.drop_unreadable) context().log().warn("{} (dropped, counted as dropped.{}; logged once)", detail, reason);
  else context().log().warn("{} (passed on unredacted, counted in unredacted_bodies; logged once)", detail);
}

void RedactFilter::remember_method(const Message& message, const HttpView& http) {
  auto now = std::chrono::steady_clock::now();
  expire_methods(now);
  auto [it, inserted] = grpc_paths_.insert_or_assign(message.id, std::string(http.path()));
  if (inserted) grpc_path_order_.emplace_back(now, &it->first);
  while (grpc_paths_.size() > config_.max_grpc_requests) {
    grpc_paths_.erase(grpc_paths_.find(*grpc_path_order_.front().second));
    grpc_path_order_.pop_front();
    grpc_requests_evicted_->add();
  }
  grpc_requests_gauge_->set(static_cast<std::int64_t>(grpc_paths_.size()));
}

void RedactFilter::expire_methods(std::chrono::steady_clock::time_point now) {
  std::size_t before = grpc_paths_.size();
  while (!grpc_path_order_.empty() && now - grpc_path_order_.front().first >= config_.grpc_request_ttl) {
    grpc_paths_.erase(grpc_paths_.find(*grpc_path_order_.front().second));
    grpc_path_order_.pop_front();
  }
  if (grpc_paths_.size() != before) grpc_requests_gauge_->set(static_cast<std::int64_t>(grpc_paths_.size()));
}

std::optional<std::string> RedactFilter::grpc_type(const Message& message, const HttpView& http,
                                                   std::string_view& unreadable) {
  std::string path(http.path());
  if (!http.is_request()) {
    expire_methods(std::chrono::steady_clock::now());
    auto it = grpc_paths_.find(message.id);
    if (it == grpc_paths_.end()) {
      warn_once("grpc_request_not_seen",
                "a gRPC response (id " + message.id + ") came without its request: its message type is the "
                "output type of the request's method, so requests must pass through this filter too");
      unreadable = "grpc_request_not_seen";
      return std::nullopt;
    }
    path = it->second;
  }
  auto method = config_.descriptors->method(path);
  if (!method) {
    warn_once("grpc_unknown_method", "gRPC method " + path + " is not in the descriptor set; add its .proto to the set");
    unreadable = "grpc_unknown_method";
    return std::nullopt;
  }
  return http.is_request() ? method->input_type : method->output_type;
}

RedactFilter::GrpcRedaction RedactFilter::redact_grpc(const Message& message, const HttpView& http,
                                                      std::size_t& count) {
  if (!config_.descriptors) {
    warn_once("grpc_no_descriptor_set",
              "gRPC bodies are protobuf and can only be redacted with descriptor_set (protoc "
              "--descriptor_set_out=api.pb --include_imports api.proto)");
    return {std::nullopt, "grpc_no_descriptor_set"};
  }
  GrpcRedaction result;
  auto type = grpc_type(message, http, result.unreadable);
  if (!type) return result;
  auto undecodable = [&](const std::string& why) -> GrpcRedaction {
    warn_once("grpc_undecodable", "a gRPC message of " + *type + " cannot be read: " + why);
    return {std::nullopt, "grpc_undecodable"};
  };
  // gRPC compresses per message (grpc-encoding); an HTTP content coding is not how it does.
  auto content_encoding = http.header("Content-Encoding");
  if (content_encoding && !iequals(trim_ows(*content_encoding), "identity"))
    return undecodable("Content-Encoding " + std::string(trim_ows(*content_encoding)) + " on a gRPC body");
  FramedBody framed = unframe_body(http);
  if (!framed.error.empty()) return undecodable(framed.error);
  auto encoding = http.header("grpc-encoding");
  // Every message must be read, even after the first: one left as it was may hold the secret.
  grpc::Messages split = grpc::split_messages(framed.bytes, encoding ? trim_ows(*encoding) : std::string_view{});
  if (!split.error.empty()) return undecodable(split.error);

  std::string data;
  bool changed = false;
  std::size_t pos = 0;
  for (const auto& bytes : split.messages) {
    std::string_view frame = std::string_view(framed.bytes).substr(pos, 5 + grpc_frame_length(framed.bytes, pos));
    pos += frame.size();
    std::string json, error;
    if (!config_.descriptors->to_json(*type, bytes, json, error)) return undecodable(error);
    // libprotobuf printed it, so it is valid JSON nested no deeper than its parser's limit (100).
    std::vector<Replacement> replacements;
    for (auto& span : find_value_spans(json, config_.fields)) {
      // to_json prints fields not sent at their default; one was not on the wire, holds nothing to
      // hide, and a token would invent a value (and cannot go into a number or a bool).
      std::string_view text = std::string_view(json).substr(span.begin, span.end - span.begin);
      if (text == "\"\"" || text == "0" || text == "false" || text == "[]" || text == "{}") continue;
      replacements.push_back({span.begin, span.end, "\"" + tokens_.token(span.value) + "\""});
    }
    if (replacements.empty()) {
      data.append(frame);  // untouched: the original frame, compressed or not
      continue;
    }
    count += replacements.size();
    std::string encoded;
    if (!config_.descriptors->from_json(*type, splice(json, replacements), encoded, error)) {
      // A token is a string: a number, enum, bool or message field cannot hold one.
      warn_once("grpc_unencodable", "a redacted " + *type + " cannot be encoded again (name string fields, "
                                    "or the string elements of repeated fields): " + error);
      return {std::nullopt, "grpc_unencodable"};
    }
    data += grpc_prefix(encoded.size());
    data += encoded;
    changed = true;
  }
  if (changed) result.data = std::move(data);
  return result;
}

void RedactFilter::start(StageContext& context) {
  Stage::start(context);
  redacted_values_ = &context.counter("redacted_values");
  unredacted_bodies_ = &context.counter("unredacted_bodies");
  grpc_requests_evicted_ = &context.counter("grpc_requests_evicted");
  grpc_requests_gauge_ = &context.gauge("table.grpc_requests");
  if (!config_.key_file_warning.empty()) context.log().warn("{}", config_.key_file_warning);
  if (config_.random_key)
    context.log().info("no key or key_file: tokens are keyed with a random key of this process and will not match "
                       "tokens written by another run");
}

void RedactFilter::process(const MessagePtr& message) {
  const HttpView& http = message->http();
  if (!http.is_request() && !http.is_response()) {
    context().drop("unparseable_message");
    return;
  }
  std::size_t count = 0;
  std::string_view payload = message->payload;
  std::string_view original_head = payload.substr(0, http.head_size());
  std::string head;
  if (config_.headers.empty()) {
    head = original_head;
  } else {
    std::size_t first_line_end = original_head.find('\n');
    first_line_end = first_line_end == std::string_view::npos ? original_head.size() : first_line_end + 1;
    head.reserve(original_head.size());
    head.append(original_head.substr(0, first_line_end));
    redact_field_lines(original_head.substr(first_line_end), config_.headers, tokens_, head, count);
  }

  if (http.is_request() && !config_.fields.empty() && !http.query().empty()) {
    if (auto query = redact_form(http.query(), config_.fields, tokens_, count)) {
      // Replaced where the parser found it (the view points into the payload, whose start
      // line `head` copied as it was), so the edit and every later reader agree on the target.
      std::size_t query_begin = static_cast<std::size_t>(http.query().data() - payload.data());
      head.replace(query_begin, http.query().size(), *query);
    }
  }

  auto content_type = http.header("Content-Type");
  bool grpc_body = content_type && grpc::is_grpc_content_type(*content_type);
  if (grpc_body && http.is_request() && config_.descriptors && !config_.fields.empty())
    remember_method(*message, http);

  std::optional<std::string> new_body;
  std::optional<std::string> new_grpc_data;  // DATA of a gRPC body, sent in its original framing
  if (!config_.fields.empty() && !http.raw_body().empty() && grpc_body) {
    GrpcRedaction redaction = redact_grpc(*message, http, count);
    if (!redaction.unreadable.empty()) {
      if (config_.drop_unreadable) {
        context().drop(redaction.unreadable);
        return;
      }
      unredacted_bodies_->add();
    }
    new_grpc_data = std::move(redaction.data);
  } else if (!config_.fields.empty() && !http.raw_body().empty()) {
    const DecodedBody& body = message->body();
    bool multipart = content_type && is_multipart_form_content_type(*content_type);
    bool form_type = content_type && is_form_content_type(*content_type);
    bool json_type = content_type && json::is_json_content_type(*content_type);
    bool json_kind = json_type || (!form_type && json::looks_like_json(body.bytes));
    bool form_kind = !json_kind && (form_type || (!content_type && looks_like_form(body.bytes)));
    BodyRedaction redaction;
    if ((json_kind || form_kind || multipart) && !body.error.empty()) {
      redaction.unreadable = "undecodable_body";
    } else if (multipart) {
      redaction = redact_multipart(body.bytes, *content_type, config_.fields, tokens_, count);
      // Labelled multipart but JSON inside: redact what is there rather than call it unreadable.
      if (redaction.unreadable == "invalid_multipart" && json_kind)
        redaction = redact_json(body.bytes, config_.fields, tokens_, count);
    } else if (json_kind) {
      redaction = redact_json(body.bytes, config_.fields, tokens_, count);
    } else if (form_kind) {
      redaction.body = redact_form(body.bytes, config_.fields, tokens_, count);
    }
    if (!redaction.unreadable.empty()) {
      if (config_.drop_unreadable) {
        context().drop(redaction.unreadable);
        return;
      }
      unredacted_bodies_->add();
    }
    new_body = std::move(redaction.body);
  }

  // A chunked gRPC body keeps its framing and trailers (grpc-status); trailers of a chunked body
  // that stays as it was are redacted in place (another rewritten body is sent decoded, without them).
  std::optional<std::string> new_raw_body;
  if (new_grpc_data && http.chunked()) {
    // One chunk, then the trailer section as it was (grpc-status), its listed fields redacted.
    std::string_view raw = http.raw_body();
    char size[24];
    std::snprintf(size, sizeof size, "%zx\r\n", new_grpc_data->size());
    std::string rewritten = size + *new_grpc_data + "\r\n0\r\n";
    // unframe_body followed the framing to its end, so the trailer section is there.
    auto trailer = chunked_trailer_begin(raw);
    std::string_view trailers = trailer ? raw.substr(*trailer) : std::string_view("\r\n");
    if (config_.headers.empty()) rewritten.append(trailers);
    else redact_field_lines(trailers, config_.headers, tokens_, rewritten, count);
    new_raw_body = std::move(rewritten);
    new_grpc_data.reset();
  } else if (!config_.headers.empty() && !new_body && !new_grpc_data && http.chunked()) {
    std::string_view raw = http.raw_body();
    if (auto trailer = chunked_trailer_begin(raw)) {
      std::size_t before = count;
      std::string rewritten(raw.substr(0, *trailer));
      redact_field_lines(raw.substr(*trailer), config_.headers, tokens_, rewritten, count);
      if (count != before) new_raw_body = std::move(rewritten);
    }
  }

  if (count == 0) {
    context().emit(message);
    return;
  }
  redacted_values_->add(count);

  std::string out = std::move(head);
  if (new_body) {
    auto encoding = http.header("Content-Encoding");
    bool encoded = http.chunked() || (encoding && !iequals(trim_ows(*encoding), "identity"));
    out.append(*new_body);
    if (encoded) {
      out = http_remove_header(out, "Transfer-Encoding");
      out = http_remove_header(out, "Content-Encoding");
    } else {
      // Bytes past Content-Length (a capture artefact) stay as they were.
      std::string_view raw = http.raw_body();
      std::size_t body_size = message->body().bytes.size();
      if (body_size < raw.size()) out.append(raw.substr(body_size));
    }
    out = http_set_header(out, "Content-Length", std::to_string(new_body->size()));
  } else if (new_grpc_data) {
    out.append(*new_grpc_data);
    // Bytes past Content-Length (a capture artefact) stay as they were.
    std::string_view raw = http.raw_body();
    std::size_t body_size = message->body().bytes.size();
    if (body_size < raw.size()) out.append(raw.substr(body_size));
    out = http_set_header(out, "Content-Length", std::to_string(new_grpc_data->size()));
  } else if (new_raw_body) {
    out.append(*new_raw_body);
  } else {
    out.append(http.raw_body());
  }

  Message redacted(*message);
  redacted.payload = std::move(out);
  context().emit(share(std::move(redacted)));
}

}  // namespace doppel::plugins
