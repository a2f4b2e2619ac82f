#include "doppel/grpc.hpp"

#include <array>
#include <charconv>
#include <cstdint>

#include "zlib_inflate.hpp"

namespace doppel::grpc {
namespace {

constexpr std::size_t kPrefixSize = 5;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string_view> field(const std::vector<HttpHeader>& fields, std::string_view name) {
  for (const auto& f : fields)
    if (iequals(f.name, name)) return trim_ows(f.value);
  return std::nullopt;
}

Status read_status(std::optional<std::string_view> code, std::optional<std::string_view> message) {
  Status status;
  if (code) {
    status.code_text = std::string(*code);
    int value = 0;
    auto [end, ec] = std::from_chars(code->data(), code->data() + code->size(), value);
    if (ec == std::errc() && end == code->data() + code->size() && !code->empty() && value >= 0) status.code = value;
  }
  if (message) {
    status.has_message = true;
    status.message = percent_decode(*message);
  }
  return status;
}

}  // namespace

bool is_grpc_content_type(std::string_view content_type) {
  content_type = trim_ows(content_type.substr(0, content_type.find(';')));
  constexpr std::string_view kGrpc = "application/grpc";
  if (content_type.size() < kGrpc.size() || !iequals(content_type.substr(0, kGrpc.size()), kGrpc)) return false;
  std::string_view rest = content_type.substr(kGrpc.size());
  // "+proto", "+json", ...: a format suffix. "-web" and "-web-text" (gRPC-Web) are another protocol.
  return rest.empty() || (rest.size() > 1 && rest.front() == '+');
}

Messages split_messages(std::string_view body, std::string_view encoding, std::size_t max_size) {
  Messages out;
  encoding = trim_ows(encoding);
  std::size_t total = 0;
  for (std::size_t index = 0; !body.empty(); ++index) {
    std::string where = "message " + std::to_string(index) + ": ";
    if (body.size() < kPrefixSize) {
      out.error = where + "truncated length prefix (" + std::to_string(body.size()) + " of 5 bytes)";
      return out;
    }
    auto flag = static_cast<unsigned char>(body[0]);
    std::uint32_t length = 0;
    for (std::size_t i = 1; i < kPrefixSize; ++i) length = (length << 8) | static_cast<unsigned char>(body[i]);
    body.remove_prefix(kPrefixSize);
    if (flag > 1) {
      out.error = where + "invalid compressed flag " + std::to_string(flag);
      return out;
    }
    if (length > body.size()) {
      out.error = where + "length prefix " + std::to_string(length) + " exceeds the " + std::to_string(body.size()) +
                  " bytes left";
      return out;
    }
    std::string_view payload = body.substr(0, length);
    body.remove_prefix(length);
    std::string message;
    if (flag == 0) {
      message.assign(payload);
    } else {
      bool gzip = iequals(encoding, "gzip");
      bool deflate = iequals(encoding, "deflate");
      if (!gzip && !deflate) {
        out.error = where + (encoding.empty() || iequals(encoding, "identity")
                                 ? std::string("compressed flag set but no grpc-encoding")
                                 : "unsupported grpc-encoding " + std::string(encoding));
        return out;
      }
      std::string error;
      std::size_t room = max_size - total;
      // gzip or zlib-wrapped deflate (15 + 32 tells them apart); raw deflate as a fallback,
      // as HTTP's decode_body accepts it.
      bool inflated = detail::inflate_into(payload, 15 + 32, message, error, room) ||
                      (deflate && detail::inflate_into(payload, -15, message, error, room));
      if (!inflated) {
        out.error = where + "invalid " + std::string(encoding) + " data";
        return out;
      }
      if (!error.empty()) {  // cut at the size limit, or the compressed data ended early
        out.error = where + std::string(encoding) + ": " + error;
        return out;
      }
    }
    if (message.size() > max_size - total) {
      out.error = where + "messages larger than the limit of " + std::to_string(max_size) + " bytes";
      return out;
    }
    total += message.size();
    out.messages.push_back(std::move(message));
  }
  return out;
}

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

std::string_view status_name(int code) {
  static constexpr std::array<std::string_view, 17> kNames = {
      "OK",        "CANCELLED",          "UNKNOWN",      "INVALID_ARGUMENT",    "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
      "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",  "UNAVAILABLE",     "DATA_LOSS",         "UNAUTHENTICATED"};
  if (code < 0 || static_cast<std::size_t>(code) >= kNames.size()) return {};
  return kNames[static_cast<std::size_t>(code)];
}

Response read_response(const HttpView& view, std::size_t max_size) {
  Response out;
  auto content_type = view.header("content-type");
  out.is_grpc = content_type && is_grpc_content_type(*content_type);
  FramedBody framed = unframe_body(view, max_size);
  auto code = field(framed.trailers, "grpc-status");
  if (code) {
    out.status = read_status(code, field(framed.trailers, "grpc-message"));
  } else if (auto header_code = view.header("grpc-status")) {
    out.status = read_status(trim_ows(*header_code), field(view.headers(), "grpc-message"));
    out.status.trailers_only = true;
  }
  auto content_encoding = view.header("content-encoding");
  if (content_encoding && !iequals(trim_ows(*content_encoding), "identity")) {
    out.body.error = "content-encoding " + std::string(trim_ows(*content_encoding)) +
                     " on a gRPC body (gRPC compresses per message, with grpc-encoding)";
    return out;
  }
  out.body = split_messages(framed.bytes, view.header("grpc-encoding").value_or(""), max_size);
  if (!framed.error.empty()) {
    // The messages read before the HTTP framing broke are kept; the framing error comes first.
    out.body.error = "HTTP body: " + framed.error + (out.body.error.empty() ? "" : "; " + out.body.error);
  }
  return out;
}

}  // namespace doppel::grpc
