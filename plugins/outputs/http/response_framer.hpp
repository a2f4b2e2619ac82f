#pragma once
// Finds where one HTTP/1.x response ends in a byte stream: Content-Length, chunked,
// close-delimited, no body (HEAD, 204, 304) and interim 1xx responses (skipped). Wraps
// llhttp; the bytes themselves are kept by the caller, untouched.
#include <llhttp.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace doppel::plugins {

class ResponseFramer {
 public:
  enum class State { need_more, complete, error };

  ResponseFramer();
  ResponseFramer(const ResponseFramer&) = delete;
  ResponseFramer& operator=(const ResponseFramer&) = delete;

  // Starts a new response; `head_request`: the request was HEAD, so there is no body.
  void reset(bool head_request);
  // Feeds the next bytes read. On `complete`, `used` is how many of `data` belong to the
  // response; the caller may discard the bytes before interim_end() (1xx responses).
  State feed(std::string_view data, std::size_t& used);
  // The connection reached EOF: completes a close-delimited response.
  State finish();

  std::size_t interim_end() const { return interim_end_; }  // bytes of 1xx responses before the final one
  bool keep_alive() const { return keep_alive_; }
  int status() const { return status_; }
  const std::string& error() const { return error_; }
  bool started() const { return fed_ > 0; }

 private:
  static int on_headers_complete(llhttp_t* parser);
  static int on_message_complete(llhttp_t* parser);

  llhttp_t parser_;
  llhttp_settings_t settings_;
  bool head_ = false;
  bool complete_ = false;
  bool interim_ = false;
  bool keep_alive_ = false;
  int status_ = 0;
  std::size_t fed_ = 0;
  std::size_t interim_end_ = 0;
  std::string error_;
};

}  // namespace doppel::plugins
