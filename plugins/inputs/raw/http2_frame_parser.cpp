#include "http2_frame_parser.hpp"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <new>

#include "http_stream_parser.hpp"

namespace doppel::plugins::raw {
namespace {

enum FrameType : std::uint8_t {
  kData = 0,
  kHeaders = 1,
  kPriority = 2,
  kRstStream = 3,
  kSettings = 4,
  kPushPromise = 5,
  kPing = 6,
  kGoaway = 7,
  kWindowUpdate = 8,
  kContinuation = 9,
};
constexpr std::uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4, kPadded = 0x8, kPriorityFlag = 0x20;
constexpr std::size_t kFrameHeader = 9;
constexpr std::uint32_t kLargestFrame = (1u << 24) - 1;
// The largest HPACK dynamic table kept per direction, whatever SETTINGS announce (memory bound).
constexpr std::uint32_t kMaxHeaderTable = 1u << 20;

std::uint32_t be24(const char* p) {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{b[0]} << 16) | (std::uint32_t{b[1]} << 8) | b[2];
}
std::uint32_t be32(const char* p) {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}
std::uint32_t stream_of(const char* p) { return be32(p) & 0x7fffffffu; }

// Takes the padding off a PADDED frame's payload; false when the padding does not fit.
bool unpad(std::uint8_t flags, std::string_view& payload) {
  if ((flags & kPadded) == 0) return true;
  if (payload.empty()) return false;
  std::size_t pad = static_cast<unsigned char>(payload[0]);
  if (pad >= payload.size()) return false;  // RFC 9113 6.1: padding as long as the payload is an error
  payload = payload.substr(1, payload.size() - 1 - pad);
  return true;
}

}  // namespace

Http2FrameParser::Http2FrameParser(Http2FrameListener& listener, int side, std::size_t max_fields,
                                   MemoryAccount* memory)
    : listener_(listener), side_(side), max_fields_(max_fields), memory_(memory) {
  if (nghttp2_hd_inflate_new(&inflater_) != 0) throw std::bad_alloc();
}

Http2FrameParser::~Http2FrameParser() {
  nghttp2_hd_inflate_del(inflater_);
  if (memory_ != nullptr && charged_ != 0) memory_->release(charged_);
}

bool Http2FrameParser::charge(std::size_t size) {
  if (memory_ == nullptr || size <= charged_) return true;
  if (!memory_->reserve(size - charged_)) return false;
  charged_ = size;
  return true;
}

void Http2FrameParser::shed() {
  if (buffer_.empty()) return;
  std::string().swap(buffer_);
  if (memory_ != nullptr && charged_ != 0) memory_->release(charged_);
  charged_ = 0;
  fail(Http2Error::memory, "frame bytes given up to the memory budget");
}

void Http2FrameParser::fail(Http2Error error, std::string detail) {
  if (error_ != Http2Error::none) return;
  error_ = error;
  detail_ = std::move(detail);
  std::string().swap(buffer_);
  fields_.clear();
  fields_.shrink_to_fit();
}

void Http2FrameParser::feed(std::string_view bytes, std::int64_t ts) {
  while (!bytes.empty() && error_ == Http2Error::none) {
    if (!buffer_.empty()) {
      // A frame spanning packets: complete its header, then its payload.
      std::size_t want = kFrameHeader;
      if (buffer_.size() >= kFrameHeader) want += be24(buffer_.data());
      if (buffer_.size() < kFrameHeader) {
        std::size_t n = std::min(kFrameHeader - buffer_.size(), bytes.size());
        buffer_.append(bytes.substr(0, n));
        bytes.remove_prefix(n);
        if (buffer_.size() < kFrameHeader) return;
        std::uint32_t length = be24(buffer_.data());
        if (length > max_frame_size_) {
          fail(Http2Error::frame, "frame larger than SETTINGS_MAX_FRAME_SIZE");
          return;
        }
        want = kFrameHeader + length;
        if (!charge(want)) {
          fail(Http2Error::memory, "frame bytes refused by the memory budget");
          return;
        }
      }
      std::size_t n = std::min(want - buffer_.size(), bytes.size());
      buffer_.append(bytes.substr(0, n));
      bytes.remove_prefix(n);
      if (buffer_.size() < want) return;
      std::string whole = std::move(buffer_);
      buffer_.clear();
      frame(static_cast<std::uint8_t>(whole[3]), static_cast<std::uint8_t>(whole[4]), stream_of(whole.data() + 5),
            std::string_view(whole).substr(kFrameHeader));
      if (memory_ != nullptr && charged_ != 0) memory_->release(charged_);
      charged_ = 0;
      continue;
    }
    frame_ts_ = ts;
    if (bytes.size() >= kFrameHeader) {
      std::uint32_t length = be24(bytes.data());
      if (length > max_frame_size_) {
        fail(Http2Error::frame, "frame larger than SETTINGS_MAX_FRAME_SIZE");
        return;
      }
      if (bytes.size() >= kFrameHeader + length) {
        // The whole frame is here: read in place.
        frame(static_cast<std::uint8_t>(bytes[3]), static_cast<std::uint8_t>(bytes[4]), stream_of(bytes.data() + 5),
              bytes.substr(kFrameHeader, length));
        bytes.remove_prefix(kFrameHeader + length);
        continue;
      }
      if (!charge(kFrameHeader + length)) {
        fail(Http2Error::memory, "frame bytes refused by the memory budget");
        return;
      }
    } else if (!charge(kFrameHeader)) {
      fail(Http2Error::memory, "frame bytes refused by the memory budget");
      return;
    }
    buffer_.assign(bytes);
    return;
  }
}

void Http2FrameParser::frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, std::string_view payload) {
  // RFC 9113 6.10: a header block is contiguous; any other frame inside it is a connection error.
  if (block_stream_ != 0 && type != kContinuation) {
    fail(Http2Error::frame, "frame inside a header block");
    return;
  }
  const std::int64_t ts = frame_ts_;
  switch (type) {
    case kData:
      if (stream == 0) return fail(Http2Error::frame, "DATA on stream 0");
      if (!unpad(flags, payload)) return fail(Http2Error::frame, "DATA padding longer than the frame");
      listener_.on_data(*this, stream, payload, (flags & kEndStream) != 0, ts);
      return;
    case kHeaders: {
      if (stream == 0) return fail(Http2Error::frame, "HEADERS on stream 0");
      if (!unpad(flags, payload)) return fail(Http2Error::frame, "HEADERS padding longer than the frame");
      if (flags & kPriorityFlag) {
        if (payload.size() < 5) return fail(Http2Error::frame, "HEADERS priority cut short");
        payload.remove_prefix(5);
      }
      block_ts_ = ts;
      begin_block(stream, 0, (flags & kEndStream) != 0, payload, (flags & kEndHeaders) != 0);
      return;
    }
    case kPriority:
      if (stream == 0) return fail(Http2Error::frame, "PRIORITY on stream 0");
      // RFC 9113 6.3: a wrong length is a stream error only; the frame carries nothing we use.
      return;
    case kRstStream:
      if (stream == 0) return fail(Http2Error::frame, "RST_STREAM on stream 0");
      if (payload.size() != 4) return fail(Http2Error::frame, "RST_STREAM of a length other than 4");
      listener_.on_rst_stream(*this, stream, be32(payload.data()));
      return;
    case kSettings: {
      if (stream != 0) return fail(Http2Error::frame, "SETTINGS on a stream");
      if (flags & kAck) {
        if (!payload.empty()) return fail(Http2Error::frame, "SETTINGS acknowledgement with a payload");
        // This direction acknowledged the peer's oldest SETTINGS: its table size now binds the
        // encoder, smaller or not (RFC 9113 6.5.3).
        if (!announced_sizes_.empty()) {
          wanted_table_size_ = announced_sizes_.front();
          announced_sizes_.pop_front();
          apply_table_size();
        }
        listener_.on_settings(*this, true, 0, 0);
        return;
      }
      if (payload.size() % 6 != 0) return fail(Http2Error::frame, "SETTINGS of a length not a multiple of 6");
      std::uint32_t table = 0, frame_size = 0;
      for (std::size_t i = 0; i < payload.size(); i += 6) {
        auto id = static_cast<std::uint16_t>((static_cast<unsigned char>(payload[i]) << 8) |
                                             static_cast<unsigned char>(payload[i + 1]));
        std::uint32_t value = be32(payload.data() + i + 2);
        if (id == 1) table = value == 0 ? 0xffffffffu : value;  // 0 told apart from "absent" below
        if (id == 5) {
          if (value < 16384 || value > kLargestFrame) return fail(Http2Error::frame, "invalid SETTINGS_MAX_FRAME_SIZE");
          frame_size = value;
        }
      }
      listener_.on_settings(*this, false, table, frame_size);
      return;
    }
    case kPushPromise: {
      if (stream == 0) return fail(Http2Error::frame, "PUSH_PROMISE on stream 0");
      if (!unpad(flags, payload)) return fail(Http2Error::frame, "PUSH_PROMISE padding longer than the frame");
      if (payload.size() < 4) return fail(Http2Error::frame, "PUSH_PROMISE cut short");
      std::uint32_t promised = stream_of(payload.data());
      if (promised == 0) return fail(Http2Error::frame, "PUSH_PROMISE of stream 0");
      payload.remove_prefix(4);
      block_ts_ = ts;
      begin_block(stream, promised, false, payload, (flags & kEndHeaders) != 0);
      return;
    }
    case kPing:
      if (stream != 0) return fail(Http2Error::frame, "PING on a stream");
      if (payload.size() != 8) return fail(Http2Error::frame, "PING of a length other than 8");
      return;
    case kGoaway:
      if (stream != 0) return fail(Http2Error::frame, "GOAWAY on a stream");
      if (payload.size() < 8) return fail(Http2Error::frame, "GOAWAY cut short");
      listener_.on_goaway(*this, stream_of(payload.data()), be32(payload.data() + 4));
      return;
    case kWindowUpdate:
      if (payload.size() != 4) return fail(Http2Error::frame, "WINDOW_UPDATE of a length other than 4");
      return;
    case kContinuation:
      if (block_stream_ == 0 || stream != block_stream_) return fail(Http2Error::frame, "CONTINUATION out of place");
      inflate(payload, (flags & kEndHeaders) != 0);
      return;
    default:
      return;  // RFC 9113 5.5: frames of unknown types are ignored
  }
}

void Http2FrameParser::begin_block(std::uint32_t stream, std::uint32_t promised, bool end_stream,
                                   std::string_view fragment, bool end_headers) {
  block_stream_ = stream;
  block_promised_ = promised;
  block_end_stream_ = end_stream;
  block_too_large_ = false;
  block_bytes_ = 0;
  fields_.clear();
  inflate(fragment, end_headers);
}

void Http2FrameParser::inflate(std::string_view in, bool final) {
  auto* data = reinterpret_cast<const std::uint8_t*>(in.data());
  std::size_t size = in.size();
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    auto n = nghttp2_hd_inflate_hd2(inflater_, &nv, &flags, data, size, final ? 1 : 0);
    if (n < 0) return fail(Http2Error::hpack, nghttp2_strerror(static_cast<int>(n)));
    data += n;
    size -= static_cast<std::size_t>(n);
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      // The field may point into `in`: copied at once.
      block_bytes_ += nv.namelen + nv.valuelen;
      if (block_bytes_ > max_fields_) {
        block_too_large_ = true;
        fields_.clear();
      } else if (!block_too_large_) {
        fields_.push_back({std::string(reinterpret_cast<const char*>(nv.name), nv.namelen),
                           std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen)});
      }
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inflater_);
      break;
    }
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && size == 0) {
      if (final) return fail(Http2Error::hpack, "header block ends inside a field");
      return;  // the block continues in a CONTINUATION
    }
  }
  std::uint32_t stream = block_stream_, promised = block_promised_;
  block_stream_ = 0;
  apply_table_size();
  std::vector<h2::Field> fields = std::move(fields_);
  fields_.clear();
  if (promised != 0) listener_.on_push_promise(*this, stream, promised);
  else listener_.on_headers(*this, stream, std::move(fields), block_end_stream_, block_too_large_, block_ts_);
}

void Http2FrameParser::peer_settings(std::uint32_t header_table_size, std::uint32_t max_frame_size,
                                     bool acknowledged) {
  if (max_frame_size != 0) max_frame_size_ = max_frame_size;
  if (header_table_size == 0) return;
  std::uint32_t size = header_table_size == 0xffffffffu ? 0 : header_table_size;
  // Bounded: an encoder using a larger table than this is refused (counted as an HPACK error).
  size = std::min(size, kMaxHeaderTable);
  if (acknowledged) {
    wanted_table_size_ = size;
    apply_table_size();
    return;
  }
  announced_sizes_.push_back(size);
  if (announced_sizes_.size() > 16) announced_sizes_.pop_front();  // never acknowledged: bounded
  if (size > wanted_table_size_) {
    wanted_table_size_ = size;
    apply_table_size();
  }
}

void Http2FrameParser::apply_table_size() {
  // The inflater takes a new bound only between header blocks.
  if (block_stream_ != 0 || wanted_table_size_ == table_size_ || error_ != Http2Error::none) return;
  if (nghttp2_hd_inflate_change_table_size(inflater_, wanted_table_size_) != 0)
    return fail(Http2Error::hpack, "header table size refused");
  table_size_ = wanted_table_size_;
}

bool Http2FrameParser::looks_like_frames(std::string_view bytes) {
  if (bytes.size() < kFrameHeader) return false;
  while (!bytes.empty()) {
    if (bytes.size() < kFrameHeader) return false;
    std::uint32_t length = be24(bytes.data());
    auto type = static_cast<std::uint8_t>(bytes[3]);
    std::uint32_t stream = be32(bytes.data() + 5);
    if (length > 16384 || type > kContinuation || (stream & 0x80000000u) != 0) return false;
    bool on_connection = type == kSettings || type == kPing || type == kGoaway;
    if (on_connection != (stream == 0) && type != kWindowUpdate) return false;
    if ((type == kPing && length != 8) || (type == kRstStream && length != 4) ||
        (type == kWindowUpdate && length != 4) || (type == kPriority && length != 5) ||
        (type == kSettings && length % 6 != 0))
      return false;
    if (bytes.size() < kFrameHeader + length) return false;  // a frame cut at the packet's end: too unsure
    bytes.remove_prefix(kFrameHeader + length);
  }
  return true;
}

}  // namespace doppel::plugins::raw
