// Plugin `file` (output): options, their parsing into FileOutputConfig, and registration.
#include <ctime>
#include <filesystem>

#include "doppel/gor_stream.hpp"
#include "doppel/output_file.hpp"
#include "doppel/plugin.hpp"
#include "file_output.hpp"

namespace doppel::plugins {
namespace {

PluginDefinition file_output_definition() {
  PluginDefinition def;
  def.name = "file";
  def.role = Role::output;
  def.description = "Writes messages as GoReplay .gor records (gzip when the path ends in .gz), optionally in chunks";
  def.accepts = KindSet::http();
  def.options = {
      option("path", OptionType::string,
             "File to write; %Y %m %d %H %M %S (local time) are expanded when a file is opened, and a new file "
             "starts when the expanded name changes. \".gz\" at the end writes gzip. GoReplay: --output-file")
          .required(),
      option("append", OptionType::boolean,
             "Add to an existing file (with chunking: to the last existing chunk). Without append or "
             "overwrite, an existing file at path is an error: a capture is never replaced by accident")
          .default_value(false),
      option("overwrite", OptionType::boolean,
             "Replace an existing file at path (truncate it) instead of refusing to start. Chunks are never "
             "replaced: a run starts after the highest existing chunk index. GoReplay: --output-file-append "
             "(GoReplay truncates FILE when it opens it)")
          .default_value(false),
      option("mode", OptionType::string,
             "Permission bits, in octal, of the files this output creates (the umask still applies); an "
             "existing file keeps its own. Captures hold credentials: keep them private")
          .default_value("0600"),
      option("size_limit", OptionType::size,
             "Start a new chunk (name_0.gor, name_1.gor, ...) before a file would grow past this size; 0 = no "
             "limit. GoReplay: --output-file-size-limit")
          .default_value(0),
      option("max_records", OptionType::integer,
             "Start a new chunk after this many records; 0 = no limit. GoReplay: --output-file-queue-limit")
          .default_value(0),
      option("flush_interval", OptionType::duration,
             "How often buffered records are handed to the OS (readable by others); the end of the run "
             "always flushes to disk. GoReplay: --output-file-flush-interval")
          .default_value("1s"),
  };
  def.metrics = {
      {"dropped.write_failed",
       "records lost because writing failed (disk full, I/O error, a file that could not be opened); the "
       "file is truncated back to its last complete record and the next write tries again; logged once per "
       "episode"},
      {"records_written", "records the file accepted (gzip: once the gzip member holding them was written)"},
      {"bytes_written", "bytes of those records, before compression"},
      {"files_opened", "files (chunks) opened"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    FileOutputConfig config;
    config.pattern = options.string("path");
    if (config.pattern.empty()) options.fail("path", "path is empty");
    if (!gor::expand_time_pattern(config.pattern, 0))
      options.fail("path",
                   "unsupported % pattern in \"" + config.pattern + "\": use %Y %m %d %H %M %S, or %% for a literal %");
    // Said at validation (with the file position) rather than when the run starts.
    std::filesystem::path parent =
        std::filesystem::path(*gor::expand_time_pattern(config.pattern, std::time(nullptr))).parent_path();
    std::error_code ignored;
    if (!parent.empty() && !std::filesystem::is_directory(parent, ignored))
      options.fail("path", "directory " + parent.string() + " does not exist");
    config.gzip = config.pattern.size() > 3 && config.pattern.ends_with(".gz");
    config.files = output_file_policy(options);
    config.size_limit = options.size("size_limit");
    std::int64_t max_records = options.integer("max_records");
    if (max_records < 0) options.fail("max_records", "max_records must be 0 (no limit) or more");
    config.max_records = static_cast<std::uint64_t>(max_records);
    config.flush_interval = options.duration("flush_interval");
    if (config.flush_interval < std::chrono::nanoseconds::zero())
      options.fail("flush_interval", "flush_interval must not be negative");
    return std::make_unique<FileOutput>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::file_output_definition);
