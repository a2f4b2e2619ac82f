// Plugin `file` (input): options, their parsing into FileInputConfig, and registration.
#include <sys/stat.h>

#include "doppel/gor_stream.hpp"
#include "doppel/plugin.hpp"
#include "file_input.hpp"

namespace doppel::plugins {
namespace {

// GoReplay writes the speed into the path: --input-file "requests.gor|200%".
std::pair<std::string, std::optional<std::string>> split_speed_suffix(const std::string& path) {
  auto bar = path.rfind('|');
  // A file whose name holds a '|' is still a file.
  if (bar == std::string::npos || !gor::expand_glob(path).empty()) return {path, std::nullopt};
  return {path.substr(0, bar), path.substr(bar + 1)};
}

ReplayTiming parse_timing(const Options& options, const std::optional<std::string>& path_speed) {
  ReplayTiming timing;
  timing.max_speed = options.boolean("max_speed");
  Rate speed = options.rate("speed");
  if (path_speed) {
    if (options.has("speed")) options.fail("path", "the speed is given twice: in `path` after '|' and in `speed`");
    try {
      speed = parse_rate(*path_speed);
    } catch (const std::invalid_argument& e) {
      options.fail("path", e.what());
    }
  }
  const char* which = path_speed ? "path" : "speed";
  if (!(speed.value > 0)) options.fail(which, "the speed must be above zero (use max_speed = true for no waiting)");
  if (speed.unit == Rate::Unit::percent)
    timing.speed_factor = speed.value / 100.0;
  else
    timing.fixed_rate = speed.value;
  if (options.has("max_wait")) {
    timing.max_wait = options.duration("max_wait");
    if (timing.max_wait <= std::chrono::nanoseconds::zero()) options.fail("max_wait", "max_wait must be above zero");
  }
  return timing;
}

KindSet parse_kinds(const Options& options) {
  KindSet kinds;
  for (const auto& name : options.strings("kinds")) {
    auto kind = parse_kind(name);
    if (!kind) options.fail("kinds", "unknown kind \"" + name + "\"; expected request, response, replay or verdict");
    kinds = kinds | KindSet{*kind};
  }
  if (kinds.empty()) options.fail("kinds", "select at least one kind");
  return kinds;
}

PluginDefinition file_input_definition() {
  PluginDefinition def;
  def.name = "file";
  def.role = Role::input;
  def.description =
      "Reads GoReplay .gor files (plain or gzip) and replays their records paced by the recorded timestamps";
  def.produces = KindSet::all();
  def.options = {
      option("path", OptionType::string,
             "File or glob of .gor files (gzip read transparently; see `order`); a \"|200%\" suffix sets the "
             "speed as in GoReplay. GoReplay: --input-file")
          .required(),
      option("speed", OptionType::rate,
             "Pace: \"200%\" replays recorded gaps between requests twice as fast, \"50%\" half as fast; "
             "\"1000/s\" ignores timestamps and sends requests evenly at that rate")
          .default_value("100%"),
      option("max_speed", OptionType::boolean, "Emit as fast as the pipeline takes messages, without waiting")
          .default_value(false),
      option("loop", OptionType::boolean,
             "Start again from the first file after the last one, until stopped. GoReplay: --input-file-loop")
          .default_value(false),
      option("max_wait", OptionType::duration,
             "Longest single wait between two requests (after scaling by speed); longer recorded pauses are "
             "shortened to it. GoReplay: --input-file-max-wait"),
      option("order", OptionType::string,
             "With several files: \"timestamp\" merges their records by timestamp (as GoReplay does; a "
             "chunked capture is still read one file at a time), \"name\" reads one file after the other in "
             "chunk order")
          .default_value("timestamp")
          .choices({"timestamp", "name"}),
      option("max_record_size", OptionType::size,
             "Largest record payload (the HTTP message after the header line) that is read; a larger record is "
             "skipped up to the next separator without being held in memory and counted as "
             "dropped.record_too_large. The default is raw's max_message_size, so whatever a capture emitted "
             "reads back. Memory per open file is at most this plus a 1 MiB read buffer; at most 4GiB")
          .default_value("64MiB"),
      option("kinds", OptionType::string_list,
             "Kinds of records to emit (request, response, replay, verdict); the others are counted as "
             "dropped.kind_not_selected")
          .default_value(Value::array({"request", "response", "replay"})),
  };
  def.metrics = {
      {"dropped.corrupt_record", "records skipped because their header is not \"TYPE ID TIMESTAMP [LATENCY]\" "
                                 "(offset logged)"},
      {"dropped.record_too_large", "records whose payload is over max_record_size, skipped unread (offset logged)"},
      {"dropped.truncated_input",
       "files cut short: the last record has no closing separator, or the gzip stream ends early (offset logged)"},
      {"dropped.corrupt_input", "gzip files whose data stops decompressing part way: the rest of the file is lost"},
      {"dropped.unreadable_file",
       "files skipped whole at run time: they could not be opened, or are not .gor files (one per file)"},
      {"dropped.kind_not_selected", "records of a kind not listed in `kinds`"},
      {"lag_ms", "how far behind the recorded schedule the last request was emitted, in ms"},
      {"out_of_order", "requests recorded earlier than the previous one (emitted without waiting)"},
      {"read_errors", "files that could not be opened or read to the end (unreadable, cut short, corrupt gzip)"},
      {"files_read", "files opened (each pass of a loop counts again)"},
      {"progress.bytes_read", "bytes of this pass's files read so far (compressed bytes of a gzip file) (gauge); the "
                              "terminal's progress line shows it"},
      {"progress.bytes_total", "bytes of this pass's files in all (gauge); 0 when unknown (standard input, a pipe) or "
                               "when `loop` repeats them"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    FileInputConfig config;
    auto [pattern, path_speed] = split_speed_suffix(options.string("path"));
    if (pattern.empty()) options.fail("path", "path is empty");
    config.pattern = pattern;
    config.timing = parse_timing(options, path_speed);
    config.loop = options.boolean("loop");
    config.order = options.string("order") == "name" ? FileOrder::name : FileOrder::timestamp;
    config.kinds = parse_kinds(options);
    std::vector<std::string> files;
    try {
      files = gor::expand_glob(pattern);
    } catch (const std::exception& e) {
      options.fail("path", e.what());
    }
    if (files.empty()) options.fail("path", "no file matches \"" + pattern + "\"");
    // Only each file's first line is read: a file that is not a .gor file is refused now, not
    // read to its end at run time as one long corrupt record. An empty file is a recording of
    // nothing (GoReplay writes one when it captured nothing): accepted, and warned about at run.
    for (const auto& file : files) {
      struct stat st {};
      if (::stat(file.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) continue;  // a pipe is read once, at run
      gor::FileProbe probe;
      try {
        probe = gor::probe_file(file);
      } catch (const std::exception& e) {
        options.fail("path", e.what());
      }
      if (probe.verdict == gor::FileProbe::Verdict::not_gor) options.fail("path", probe.problem);
    }
    auto max_record_size = options.size("max_record_size");
    if (max_record_size == 0 || max_record_size > (std::uint64_t{4} << 30))
      options.fail("max_record_size", "max_record_size must be above zero and at most 4GiB");
    config.max_payload_size = static_cast<std::size_t>(max_record_size);
    return std::make_unique<FileInput>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::file_input_definition);
