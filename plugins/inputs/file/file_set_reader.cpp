#include "file_set_reader.hpp"

#include <algorithm>
#include <cstdio>

namespace doppel::plugins {
namespace {

std::string preview(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes.substr(0, 40)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (bytes.size() > 40) out += "...";
  return out;
}

// The timestamp of a file's first valid record; nullopt when it has none or cannot be read
// (it is then opened first, so that what is wrong with it is reported at once).
std::optional<std::int64_t> first_timestamp(const std::string& path) {
  try {
    gor::RecordReader reader(path, 64 << 10);
    gor::RecordReader::Record record;
    while (reader.next(record) == gor::RecordReader::Status::record) {
      auto newline = record.bytes.find('\n');
      if (newline == std::string_view::npos) continue;
      if (auto header = gor::parse_header(record.bytes.substr(0, newline))) return header->timestamp_ns;
    }
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

}  // namespace

struct FileSetReader::Source {
  std::string path;
  std::unique_ptr<gor::RecordReader> reader;
  std::optional<Message> head;  // the next message; empty once the file is done
};

FileSetReader::FileSetReader(std::vector<std::string> files, FileOrder order) : order_(order) {
  for (auto& path : files) {
    std::optional<std::int64_t> first;
    if (order_ == FileOrder::timestamp) first = first_timestamp(path);
    unopened_.emplace_back(first, std::move(path));
  }
  if (order_ == FileOrder::timestamp)  // stable: equal first timestamps keep chunk order
    std::stable_sort(unopened_.begin(), unopened_.end(), [](const auto& a, const auto& b) {
      return a.first.value_or(INT64_MIN) < b.first.value_or(INT64_MIN);
    });
}

FileSetReader::~FileSetReader() = default;

void FileSetReader::advance(Source& source) {
  source.head.reset();
  if (!source.reader) return;
  gor::RecordReader::Record record;
  for (;;) {
    auto status = source.reader->next(record);
    if (status == gor::RecordReader::Status::record) {
      if (auto message = gor::parse_record(record.bytes)) {
        source.head.emplace(std::move(*message));
        return;
      }
      events_.push_back({Event::Type::corrupt,
                         source.path,
                         record.offset,
                         record.bytes.size(),
                         "corrupt (no valid \"TYPE ID TIMESTAMP [LATENCY]\" header)",
                         preview(record.bytes),
                         {}});
      continue;
    }
    if (status == gor::RecordReader::Status::truncated) {
      events_.push_back({Event::Type::corrupt,
                         source.path,
                         record.offset,
                         record.bytes.size(),
                         "truncated (the file ends before the record separator)",
                         preview(record.bytes),
                         {}});
    } else if (status == gor::RecordReader::Status::error) {
      std::uint64_t at = record.offset + record.bytes.size();
      events_.push_back({Event::Type::read_error,
                         source.path,
                         at,
                         0,
                         source.reader->error() + "; the rest of this file is skipped",
                         {},
                         {}});
      if (!record.bytes.empty())
        events_.push_back({Event::Type::corrupt,
                           source.path,
                           record.offset,
                           record.bytes.size(),
                           "incomplete (cut short by the read error)",
                           preview(record.bytes),
                           {}});
    }
    source.reader.reset();  // done: release the buffer and the descriptor now
    return;
  }
}

void FileSetReader::open_due_files() {
  for (;;) {
    if (unopened_.empty()) return;
    if (order_ == FileOrder::name) {
      if (!open_.empty()) return;
    } else if (!open_.empty()) {
      // Open the next file once its first record is not later than every open file's next one.
      const auto& next_first = unopened_.front().first;
      std::int64_t earliest = INT64_MAX;
      for (const auto& source : open_) earliest = std::min(earliest, source->head->timestamp_ns);
      if (next_first && *next_first > earliest) return;
    }
    auto source = std::make_unique<Source>();
    source->path = std::move(unopened_.front().second);
    unopened_.pop_front();
    try {
      source->reader = std::make_unique<gor::RecordReader>(source->path);
      events_.push_back({Event::Type::opened, source->path, 0, 0, {}, {}, {}});
    } catch (const std::exception& e) {
      events_.push_back({Event::Type::read_error, source->path, 0, 0, e.what(), {}, {}});
    }
    advance(*source);
    if (source->head) open_.push_back(std::move(source));
  }
}

bool FileSetReader::next(Event& out) {
  for (;;) {
    if (events_.empty()) open_due_files();
    if (!events_.empty()) {
      out.type = events_.front().type;
      out.path = std::move(events_.front().path);
      out.offset = events_.front().offset;
      out.size = events_.front().size;
      out.detail = std::move(events_.front().detail);
      out.preview = std::move(events_.front().preview);
      out.message.reset();
      events_.pop_front();
      return true;
    }
    if (open_.empty()) return false;  // open_due_files opened everything left
    // The open file whose next record is earliest; ties go to the file opened first.
    std::size_t best = 0;
    for (std::size_t i = 1; i < open_.size(); ++i)
      if (open_[i]->head->timestamp_ns < open_[best]->head->timestamp_ns) best = i;
    Source& source = *open_[best];
    out.type = Event::Type::message;
    out.path = source.path;
    out.message.emplace(std::move(*source.head));
    advance(source);
    if (!source.head) open_.erase(open_.begin() + static_cast<std::ptrdiff_t>(best));
    return true;
  }
}

}  // namespace doppel::plugins
