// Form data in the SDK: bracketed keys read as paths, and multipart/form-data bodies.
#include <doctest/doctest.h>

#include <string>

#include "doppel/form.hpp"

using namespace doppel;
using doppel::json::PathStep;

namespace {
std::string path_text(std::string_view key) {
  auto path = bracket_key_path(key);
  return path ? json::format_path(*path) : "(flat)";
}
std::string_view content_of(std::string_view body, const MultipartPart& part) {
  return body.substr(part.content_begin, part.content_end - part.content_begin);
}
std::string_view headers_of(std::string_view body, const MultipartPart& part) {
  return body.substr(part.headers_begin, part.headers_end - part.headers_begin);
}

// What curl 7.88.1 sent for `curl -F a=1 -F password=secret -F file=@x.txt URL`, captured on
// loopback (the body only; x.txt held "line one\nfile-secret-content\n").
const std::string kCurlBody =
    "--------------------------8a8b361886b00f0a\r\n"
    "Content-Disposition: form-data; name=\"a\"\r\n"
    "\r\n"
    "1\r\n"
    "--------------------------8a8b361886b00f0a\r\n"
    "Content-Disposition: form-data; name=\"password\"\r\n"
    "\r\n"
    "secret\r\n"
    "--------------------------8a8b361886b00f0a\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "line one\nfile-secret-content\n\r\n"
    "--------------------------8a8b361886b00f0a--\r\n";
}  // namespace

TEST_CASE("bracketed form keys read as the paths PHP, Rails and Express make of them") {
  CHECK(path_text("user[password]") == "user.password");
  CHECK(path_text("items[0][name]") == "items[0].name");
  CHECK(path_text("a[b][c][d]") == "a.b.c.d");
  CHECK(path_text("tags[]") == "tags[0]");
  CHECK(path_text("a[01]") == "a.01");  // a leading zero makes a name (the key "01"), not an index
  CHECK(path_text("a[x.y]") == "a[\"x.y\"]");
  CHECK(path_text("password") == "(flat)");
  CHECK(path_text("[a]") == "(flat)");
  CHECK(path_text("a[b]c") == "(flat)");
  CHECK(path_text("a[b") == "(flat)");
  CHECK(path_text("a[b[c]]") == "(flat)");
  CHECK(path_text("a]b") == "(flat)");
}

TEST_CASE("multipart content types and boundaries") {
  CHECK(is_multipart_form_content_type("multipart/form-data; boundary=x"));
  CHECK(is_multipart_form_content_type("Multipart/Form-Data"));
  CHECK_FALSE(is_multipart_form_content_type("multipart/mixed; boundary=x"));
  CHECK_FALSE(is_multipart_form_content_type("application/x-www-form-urlencoded"));
  CHECK(multipart_boundary("multipart/form-data; boundary=------------------------8a8b361886b00f0a") ==
        "------------------------8a8b361886b00f0a");
  CHECK(multipart_boundary("multipart/form-data; charset=utf-8; BOUNDARY=\"a b;c\"") == "a b;c");
  CHECK(multipart_boundary("multipart/form-data;boundary=abc ; charset=x") == "abc");
  CHECK_FALSE(multipart_boundary("multipart/form-data").has_value());
  CHECK_FALSE(multipart_boundary("multipart/form-data; boundary=").has_value());
  CHECK_FALSE(multipart_boundary("multipart/form-data; boundary=" + std::string(201, 'x')).has_value());
}

TEST_CASE("curl's multipart body splits into its parts, offsets exact") {
  MultipartBody body = parse_multipart(kCurlBody, "------------------------8a8b361886b00f0a");
  REQUIRE(body.error.empty());
  REQUIRE(body.parts.size() == 3);
  CHECK(body.parts[0].name == "a");
  CHECK(content_of(kCurlBody, body.parts[0]) == "1");
  CHECK(headers_of(kCurlBody, body.parts[0]) == "Content-Disposition: form-data; name=\"a\"\r\n");
  CHECK(body.parts[1].name == "password");
  CHECK(content_of(kCurlBody, body.parts[1]) == "secret");
  CHECK_FALSE(body.parts[1].filename.has_value());
  CHECK(body.parts[2].name == "file");
  CHECK(body.parts[2].filename == "x.txt");
  CHECK(body.parts[2].content_type == "text/plain");
  CHECK(content_of(kCurlBody, body.parts[2]) == "line one\nfile-secret-content\n");
}

TEST_CASE("multipart: preamble, epilogue, padding, headerless and empty parts, escaped names") {
  std::string text =
      "This is the preamble.\r\n"
      "--XyZ  \r\n"  // transport padding after the delimiter
      "content-disposition: FORM-DATA; NAME=\"say \\\"hi\\\"\"\r\n"
      "\r\n"
      "\r\n"
      "--XyZ\r\n"
      "\r\n"
      "no headers\r\n"
      "--XyZ\r\n"
      "Content-Disposition: form-data; name=unquoted\r\n"
      "\r\n"
      "--not the boundary\r\n"
      "--XyZ--\r\n"
      "epilogue --XyZ\r\n";
  MultipartBody body = parse_multipart(text, "XyZ");
  REQUIRE(body.error.empty());
  REQUIRE(body.parts.size() == 3);
  CHECK(body.parts[0].name == "say \"hi\"");
  CHECK(content_of(text, body.parts[0]).empty());
  CHECK(body.parts[1].name.empty());
  CHECK(headers_of(text, body.parts[1]).empty());
  CHECK(content_of(text, body.parts[1]) == "no headers");
  CHECK(body.parts[2].name == "unquoted");
  CHECK(content_of(text, body.parts[2]) == "--not the boundary");
  // An empty form is a closing delimiter alone.
  MultipartBody empty = parse_multipart("--b--\r\n", "b");
  CHECK(empty.error.empty());
  CHECK(empty.parts.empty());
}

TEST_CASE("broken multipart bodies are errors, never partial results") {
  CHECK(parse_multipart("a=1&b=2", "b0undary").error.find("no \"--b0undary\" delimiter") != std::string::npos);
  // Truncated: the capture ended before the closing delimiter.
  std::string truncated = kCurlBody.substr(0, kCurlBody.size() - 50);
  MultipartBody cut = parse_multipart(truncated, "------------------------8a8b361886b00f0a");
  CHECK(cut.error.find("closing") != std::string::npos);
  CHECK(cut.parts.empty());
  CHECK_FALSE(parse_multipart("--b\r\nContent-Disposition: form-data; name=x\r\nvalue\r\n--b--", "b").error.empty());
  // Headers that run into the next delimiter are not read across it.
  MultipartBody runaway = parse_multipart(
      "--b\r\nContent-Disposition: form-data; name=x\r\n"
      "--b\r\nContent-Disposition: form-data; name=y\r\n\r\nv\r\n--b--",
      "b");
  CHECK(runaway.error.find("the headers of part 1 do not end") != std::string::npos);
  CHECK_FALSE(parse_multipart("--b junk\r\n\r\nv\r\n--b--", "b").error.empty());
  CHECK_FALSE(parse_multipart("--b\n\nv\n--b--", "b").error.empty());  // LF-only lines are not multipart
}
