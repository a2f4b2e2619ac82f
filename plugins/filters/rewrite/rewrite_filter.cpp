#include "rewrite_filter.hpp"

namespace doppel::plugins {

std::string dollar_to_re2(std::string_view r) {
  std::string out;
  for (std::size_t i = 0; i < r.size(); ++i) {
    char c = r[i];
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '$' && i + 1 < r.size() && std::isdigit(static_cast<unsigned char>(r[i + 1]))) {
      out += '\\';
      out += r[++i];
    } else if (c == '$' && i + 3 < r.size() && r[i + 1] == '{' && std::isdigit(static_cast<unsigned char>(r[i + 2])) &&
               r[i + 3] == '}') {
      out += '\\';
      out += r[i + 2];
      i += 3;
    } else {
      out += c;
    }
  }
  return out;
}

std::string set_query_param(std::string_view target, std::string_view name, std::string_view value) {
  auto q = target.find('?');
  std::string path(target.substr(0, q));
  std::string_view query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  std::string out_query;
  bool replaced = false;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    std::string_view key = pair.substr(0, pair.find('='));
    if (key == name) {
      if (replaced) continue;  // later duplicates go: the parameter has one value now
      replaced = true;
      if (!out_query.empty()) out_query += '&';
      out_query.append(name).append("=").append(value);
      continue;
    }
    if (!out_query.empty()) out_query += '&';
    out_query.append(pair);
  }
  if (!replaced) {
    if (!out_query.empty()) out_query += '&';
    out_query.append(name).append("=").append(value);
  }
  return path + "?" + out_query;
}

void RewriteFilter::process(const MessagePtr& message) {
  const HttpView& http = message->http();
  if (!http.is_request()) {
    context().drop("unparseable_request");
    return;
  }
  std::string payload;  // stays empty until an edit happens
  auto current = [&]() -> std::string_view { return payload.empty() ? std::string_view(message->payload) : payload; };

  std::string target(http.target());
  bool target_changed = false;
  for (const auto& r : config_.rewrite_url)
    if (RE2::GlobalReplace(&target, *r.pattern, r.replacement) > 0) target_changed = true;
  for (const auto& [name, value] : config_.set_param) {
    target = set_query_param(target, name, value);
    target_changed = true;
  }
  if (target_changed) payload = http_set_target(current(), target);

  for (const auto& h : config_.rewrite_header) {
    auto value = http.header(h.name);
    if (!value) continue;
    std::string v(*value);
    if (RE2::GlobalReplace(&v, *h.rewrite.pattern, h.rewrite.replacement) > 0)
      payload = http_set_header(current(), h.name, v);
  }
  for (const auto& [name, value] : config_.set_header) payload = http_set_header(current(), name, value);
  for (const auto& name : config_.remove_header)
    if (http.header(name)) payload = http_remove_header(current(), name);

  if (payload.empty() || payload == message->payload) {
    context().emit(message);
    return;
  }
  Message edited(*message);
  edited.payload = std::move(payload);
  context().counter("rewritten").add();
  context().emit(share(std::move(edited)));
}

}  // namespace doppel::plugins
