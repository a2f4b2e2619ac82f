#include "response_framer.hpp"

namespace doppel::plugins {

ResponseFramer::ResponseFramer() {
  llhttp_settings_init(&settings_);
  settings_.on_headers_complete = &ResponseFramer::on_headers_complete;
  settings_.on_message_complete = &ResponseFramer::on_message_complete;
  reset(false);
}

void ResponseFramer::reset(bool head_request) {
  llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
  parser_.data = this;
  head_ = head_request;
  complete_ = interim_ = keep_alive_ = false;
  status_ = 0;
  fed_ = interim_end_ = 0;
  error_.clear();
}

int ResponseFramer::on_headers_complete(llhttp_t* parser) {
  auto* self = static_cast<ResponseFramer*>(parser->data);
  int status = llhttp_get_status_code(parser);
  // 1 tells llhttp there is no body: a response to HEAD carries headers only, and 204/304
  // never have one whatever Content-Length says (RFC 9112 6.3).
  if ((self->head_ && status >= 200) || status == 204 || status == 304) return 1;
  return 0;
}

int ResponseFramer::on_message_complete(llhttp_t* parser) {
  auto* self = static_cast<ResponseFramer*>(parser->data);
  int status = llhttp_get_status_code(parser);
  self->status_ = status;
  self->interim_ = status >= 100 && status < 200 && status != 101;
  if (!self->interim_) {
    self->complete_ = true;
    self->keep_alive_ = status != 101 && llhttp_should_keep_alive(parser) != 0;
  }
  return HPE_PAUSED;  // stop right after this message so its end is known
}

ResponseFramer::State ResponseFramer::feed(std::string_view data, std::size_t& used) {
  std::size_t offset = 0;
  while (offset < data.size()) {
    const char* begin = data.data() + offset;
    llhttp_errno_t err = llhttp_execute(&parser_, begin, data.size() - offset);
    if (err == HPE_OK) {
      fed_ += data.size() - offset;
      offset = data.size();
      break;
    }
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      std::size_t n = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - begin);
      fed_ += n;
      offset += n;
      llhttp_resume(&parser_);
      if (complete_) {
        used = offset;
        return State::complete;
      }
      if (interim_) {
        interim_end_ = fed_;
        interim_ = false;
        continue;
      }
      continue;
    }
    error_ = std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser_);
    return State::error;
  }
  used = offset;
  return State::need_more;
}

ResponseFramer::State ResponseFramer::finish() {
  if (complete_) return State::complete;
  if (fed_ == interim_end_) {
    error_ = "connection closed before a response";
    return State::error;
  }
  llhttp_errno_t err = llhttp_finish(&parser_);
  if ((err == HPE_OK || err == HPE_PAUSED) && complete_) return State::complete;
  error_ = err == HPE_OK ? "connection closed mid-response" : llhttp_errno_name(err);
  return State::error;
}

}  // namespace doppel::plugins
