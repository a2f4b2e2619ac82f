#include "protocol.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <simdjson.h>
#include <stdexcept>

#include "doppel/json_text.hpp"
#include "doppel/json_writer.hpp"

namespace doppel::plugins {
namespace {

// `bytes` in base64 as a JSON string, quotes included: the alphabet needs no escaping, so it is
// written as it is encoded rather than through the writer's escaping.
std::string quoted_base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 2, '"');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data() + 1),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out[static_cast<std::size_t>(n) + 1] = '"';
  out.resize(static_cast<std::size_t>(n) + 2);
  return out;
}

void write_file(const std::string& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : ENOSPC;
      ::close(fd);
      ::unlink(path.c_str());
      throw std::runtime_error("cannot write " + path + ": " + std::strerror(e));
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

// The body, as the program asked for it. JSON bodies are also inserted as they were sent,
// minified (a JSON text never holds a raw newline outside a string once minified, so the
// line stays one line); numbers keep their exact digits.
void write_body(JsonWriter& w, const Message& m, const char* side, const JudgementRequest& request,
                std::vector<std::string>& spilled) {
  const DecodedBody& body = m.body();
  const std::string& bytes = body.bytes;
  if (bytes.size() > request.body_limit) {
    std::string path = std::string(request.spill_dir) + "/" + std::to_string(request.id) + "-" + side;
    write_file(path, bytes);
    spilled.push_back(path);
    w.field("body_file", path);
    w.field("body_size", static_cast<std::uint64_t>(bytes.size()));
  } else if (!request.encoding.base64 && simdjson::validate_utf8(bytes.data(), bytes.size())) {
    w.field("body", bytes);
  } else {
    w.key("body_base64").raw(quoted_base64(bytes));
  }
  if (!body.error.empty()) w.field("body_error", body.error);
  if (request.encoding.json && !bytes.empty() && bytes.size() <= request.body_limit) {
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (!parser.parse(bytes).get(doc)) {
      std::string minified(bytes.size(), '\0');
      std::size_t length = 0;
      if (!simdjson::minify(bytes.data(), bytes.size(), minified.data(), length)) {
        minified.resize(length);
        w.key("json").raw(minified);
      }
    }
  }
}

void write_side(JsonWriter& w, const char* side, const MessagePtr& m, const JudgementRequest& request,
                std::vector<std::string>& spilled) {
  w.key(side);
  if (!m) {
    w.null();
    return;
  }
  const HttpView& http = m->http();
  w.begin_object();
  if (m->kind == Kind::request) {
    w.field("method", http.method());
    w.field("target", http.target());
    w.field("path", http.path());
  } else {
    w.field("status", http.status());
    if (m->latency_ns > 0) w.field("latency_ms", static_cast<double>(m->latency_ns) / 1e6);
  }
  w.key("headers").begin_array();
  for (const auto& h : http.headers()) w.begin_array().value(h.name).value(h.value).end_array();
  w.end_array();
  write_body(w, *m, side, request, spilled);
  w.end_object();
}

// A value as a difference shows it: strings as they are, anything else as JSON.
std::string value_text(simdjson::dom::element e, std::size_t limit) {
  std::string_view s;
  if (!e.get_string().get(s)) return json::truncate_for_display(s, limit);
  return json::truncate_for_display(json::to_json(e), limit);
}

std::string string_field(simdjson::dom::object o, std::string_view key, std::size_t limit) {
  simdjson::dom::element e;
  if (o[key].get(e)) return "";
  return value_text(e, limit);
}

ProgramLine garbage(std::string problem) {
  ProgramLine line;
  line.problem = std::move(problem);
  return line;
}

ProgramLine parse_hello(simdjson::dom::element hello) {
  simdjson::dom::object o;
  if (hello.get_object().get(o)) return garbage("hello is not an object");
  ProgramLine line;
  line.type = ProgramLine::Type::hello;
  std::int64_t protocol = 1;
  simdjson::dom::element e;
  if (!o["protocol"].get(e) && (e.get_int64().get(protocol) || protocol != 1))
    return garbage("hello asks for protocol " + json::to_json(e) + "; this doppel speaks protocol 1");
  if (!o["body"].get(e)) {
    std::string_view body;
    if (e.get_string().get(body) || (body != "text" && body != "base64"))
      return garbage("hello's body must be \"text\" or \"base64\", not " + json::to_json(e));
    line.encoding.base64 = body == "base64";
  }
  if (!o["json"].get(e) && e.get_bool().get(line.encoding.json))
    return garbage("hello's json must be true or false, not " + json::to_json(e));
  return line;
}

}  // namespace

void append_judgement(std::string& out, const JudgementRequest& request, std::vector<std::string>& spilled) {
  const Exchange& ex = *request.exchange;
  const MessagePtr& any = ex.request ? ex.request : ex.original ? ex.original : ex.replay;
  JsonWriter w;
  w.begin_object();
  w.field("id", request.id);
  w.field("exchange", any ? std::string_view(any->id) : std::string_view());
  w.field("comparator", request.comparator);
  w.field("endpoint", ex.endpoint);
  w.field("against", ex.against_baseline ? "baseline" : "replay");
  write_side(w, "request", ex.request, request, spilled);
  write_side(w, "original", ex.original, request, spilled);
  write_side(w, "replay", ex.replay, request, spilled);
  w.end_object();
  out += w.str();
  out += '\n';
}

ProgramLine parse_program_line(std::string_view text, std::size_t value_limit) {
  while (!text.empty() && (text.back() == '\r' || text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (text.empty()) return garbage("an empty line");
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto error = parser.parse(text.data(), text.size()).get(root))
    return garbage(std::string("not JSON (") + simdjson::error_message(error) + ")");
  simdjson::dom::object o;
  if (root.get_object().get(o)) return garbage("not a JSON object");
  simdjson::dom::element e;
  if (!o["hello"].get(e)) return parse_hello(e);
  if (o["id"].get(e)) return garbage("an answer without an id");
  ProgramLine line;
  line.type = ProgramLine::Type::answer;
  std::string_view id_text;
  if (e.get_uint64().get(line.id)) {
    // Accept "42" as well as 42: a program in a language without 64-bit integers may quote it.
    if (e.get_string().get(id_text) || id_text.empty() ||
        id_text.find_first_not_of("0123456789") != std::string_view::npos || id_text.size() > 19)
      return garbage("the id is not a judgement number: " + json::truncate_for_display(json::to_json(e), 80));
    line.id = std::stoull(std::string(id_text));
  }
  Judgement& judgement = line.judgement;
  if (!o["error"].get(e)) {
    judgement.error = "the check failed: " + value_text(e, value_limit);
    return line;
  }
  bool ok = false;
  bool has_ok = !o["ok"].get(e);
  if (has_ok && e.get_bool().get(ok)) {
    judgement.error = "the answer's ok is not true or false: " + json::truncate_for_display(json::to_json(e), 80);
    line.problem = judgement.error;
    return line;
  }
  bool has_differences = !o["differences"].get(e);
  if (has_differences) {
    simdjson::dom::array differences;
    if (e.get_array().get(differences)) {
      judgement.error = "the answer's differences is not an array";
      line.problem = judgement.error;
      return line;
    }
    for (simdjson::dom::element d : differences) {
      simdjson::dom::object item;
      if (d.get_object().get(item)) {
        // A bare string is a difference told in words.
        judgement.differences.emplace_back("", "failed", "", "", value_text(d, value_limit));
        continue;
      }
      std::string kind = string_field(item, "kind", value_limit);
      judgement.differences.emplace_back(string_field(item, "path", value_limit), kind.empty() ? "changed" : kind,
                                         string_field(item, "original", value_limit),
                                         string_field(item, "replay", value_limit),
                                         string_field(item, "message", value_limit));
    }
  }
  if (!has_ok && !has_differences) {
    judgement.error = "the answer has neither ok, differences nor error";
    line.problem = judgement.error;
    return line;
  }
  if (has_ok && !ok && judgement.differences.empty())
    judgement.differences.emplace_back("", "failed", "", "", "the check answered ok: false");
  return line;
}

}  // namespace doppel::plugins
