#include "redact_filter.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <optional>

#include "doppel/form.hpp"
#include "json_spans.hpp"

namespace doppel::plugins {
namespace {

// Redacts the values of `form` ("a=1&b=2") whose decoded key a single-key field names.
// Returns nullopt when nothing was redacted; counts replaced values in `count`.
std::optional<std::string> redact_form(std::string_view form, const json::JsonPathSet& fields, std::size_t& count) {
  std::string out;
  bool changed = false;
  std::size_t start = 0;
  while (start <= form.size()) {
    std::size_t end = form.find('&', start);
    if (end == std::string_view::npos) end = form.size();
    std::string_view piece = form.substr(start, end - start);
    std::size_t eq = piece.find('=');
    bool redact = false;
    if (!piece.empty()) {
      json::PathStep step = json::PathStep::of_key(percent_decode(piece.substr(0, eq)));
      redact = fields.matches(std::span<const json::PathStep>(&step, 1));
    }
    if (redact) {
      std::string_view value = eq == std::string_view::npos ? std::string_view{} : piece.substr(eq + 1);
      out.append(piece.substr(0, eq == std::string_view::npos ? piece.size() : eq));
      out.push_back('=');
      out.append(redaction_token(percent_decode(value)));
      changed = true;
      ++count;
    } else {
      out.append(piece);
    }
    if (end < form.size()) out.push_back('&');
    start = end + 1;
  }
  if (!changed) return std::nullopt;
  return out;
}

// Replaces the values of the listed headers in `head` (start line + header lines).
std::string redact_headers(std::string_view head, const std::vector<std::string>& names, std::size_t& count) {
  std::string out;
  out.reserve(head.size());
  std::size_t pos = 0;
  bool first = true;
  while (pos < head.size()) {
    std::size_t nl = head.find('\n', pos);
    std::size_t line_end = nl == std::string_view::npos ? head.size() : nl + 1;
    std::string_view line = head.substr(pos, line_end - pos);
    std::size_t colon = line.find(':');
    bool listed = false;
    if (!first && colon != std::string_view::npos) {
      std::string_view name = line.substr(0, colon);
      listed = std::any_of(names.begin(), names.end(), [&](const std::string& n) { return iequals(name, n); });
    }
    if (listed) {
      std::size_t value_begin = colon + 1;
      while (value_begin < line.size() && (line[value_begin] == ' ' || line[value_begin] == '\t')) ++value_begin;
      std::string_view content = line;  // without the line ending
      if (!content.empty() && content.back() == '\n') content.remove_suffix(1);
      std::string_view value = trim_ows(content.substr(std::min(value_begin, content.size())));
      // Keep the separator, the line ending and any trailing whitespace before it.
      std::size_t value_end = value_begin + value.size();
      out.append(line.substr(0, value_begin));
      out.append(redaction_token(value));
      out.append(line.substr(value_end));
      ++count;
    } else {
      out.append(line);
    }
    first = false;
    pos = line_end;
  }
  return out;
}

}  // namespace

std::string redaction_token(std::string_view value) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(value.data(), value.size(), digest, &length, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out = "REDACTED-";
  for (int i = 0; i < 6; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 15]);
  }
  return out;
}

void RedactFilter::process(const MessagePtr& message) {
  const HttpView& http = message->http();
  if (!http.is_request() && !http.is_response()) {
    context().drop("unparseable_message");
    return;
  }
  std::size_t count = 0;
  std::string_view payload = message->payload;
  std::string head(payload.substr(0, http.head_size()));
  if (!config_.headers.empty()) head = redact_headers(head, config_.headers, count);

  std::optional<std::string> new_target;
  if (http.is_request() && !config_.fields.empty() && !http.query().empty()) {
    std::string_view target = http.target();
    if (auto q = redact_form(http.query(), config_.fields, count))
      new_target = std::string(target.substr(0, target.find('?') + 1)) + *q;
  }

  std::optional<std::string> new_body;
  if (!config_.fields.empty() && !http.raw_body().empty()) {
    const DecodedBody& body = message->body();
    auto content_type = http.header("Content-Type");
    bool form_type = content_type && is_form_content_type(*content_type);
    bool json_kind = (content_type && json::is_json_content_type(*content_type)) ||
                     (!form_type && json::looks_like_json(body.bytes));
    bool form_kind = !json_kind && (form_type || (!content_type && looks_like_form(body.bytes)));
    std::string_view unreadable;
    if ((json_kind || form_kind) && !body.error.empty()) {
      unreadable = "undecodable_body";
    } else if (json_kind && body.bytes.find_first_not_of(" \t\r\n") != std::string::npos) {
      auto doc = json::JsonDocument::parse(body.bytes);
      if (!doc.ok()) {
        unreadable = "invalid_json";
      } else {
        auto spans = find_value_spans(body.bytes, config_.fields);
        if (!spans.empty()) {
          std::string out;
          out.reserve(body.bytes.size());
          std::size_t from = 0;
          for (const auto& s : spans) {
            out.append(body.bytes, from, s.begin - from);
            out.push_back('"');
            out.append(redaction_token(s.value));
            out.push_back('"');
            from = s.end;
          }
          out.append(body.bytes, from);
          count += spans.size();
          new_body = std::move(out);
        }
      }
    } else if (form_kind) {
      new_body = redact_form(body.bytes, config_.fields, count);
    }
    if (!unreadable.empty()) {
      if (config_.drop_unreadable) {
        context().drop(unreadable);
        return;
      }
      context().counter("unredacted_bodies").add();
    }
  }

  if (count == 0) {
    context().emit(message);
    return;
  }
  context().counter("redacted_values").add(count);

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
  } else {
    out.append(http.raw_body());
  }
  if (new_target) out = http_set_target(out, *new_target);

  Message redacted(*message);
  redacted.payload = std::move(out);
  context().emit(share(std::move(redacted)));
}

}  // namespace doppel::plugins
