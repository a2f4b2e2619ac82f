#include "gor_command.hpp"

#include <algorithm>
#include <map>
#include <sstream>

#include "doppel/options.hpp"
#include "doppel/units.hpp"
#include "doppel/value.hpp"

namespace doppel::core {

// Every GoReplay flag doppel accepts. Anything else is an error, never silently ignored.
const std::vector<GorFlag>& gor_flags() {
  static const std::vector<GorFlag> flags = {
      {"input-raw", Arity::repeated, "Capture traffic: \":PORT\", \"HOST:PORT\", \"IFACE:PORT\", \":P1,P2\" or a .pcap file"},
      {"input-raw-track-response", Arity::flag, "Also capture the original responses"},
      {"input-raw-engine", Arity::value, "libpcap or pcap_file (doppel always captures with libpcap)"},
      {"input-raw-bpf-filter", Arity::value, "BPF filter replacing the generated one"},
      {"input-raw-expire", Arity::value, "How long an idle connection's unfinished message is kept (e.g. 2s)"},
      {"input-raw-allow-incomplete", Arity::flag, "Emit messages with gaps or cut by snaplen (marked incomplete)"},
      {"input-raw-realip-header", Arity::value, "Header that carries the client IP (e.g. X-Real-IP)"},
      {"input-raw-buffer-size", Arity::value, "Kernel capture buffer (e.g. 32mb)"},
      {"input-raw-promisc", Arity::flag, "Capture in promiscuous mode"},
      {"input-raw-override-snaplen", Arity::flag, "Use the largest snaplen (doppel's default anyway)"},
      {"input-raw-snaplen", Arity::value, "Snapshot length in bytes"},
      {"input-file", Arity::repeated, "Read .gor files (globs, .gz); \"FILE|200%\" replays at twice the speed"},
      {"input-file-loop", Arity::flag, "Read the files again from the start when they end"},
      {"input-file-max-wait", Arity::value, "Longest wait between two messages (e.g. 1s)"},
      {"input-file-dry-run", Arity::flag, "Print what the files hold (count, span, duration) and exit"},
      {"input-file-read-depth", Arity::value,
       "Accepted, not needed: doppel reads ahead as far as the next stage's queue allows (queue_bytes)"},
      {"output-http", Arity::repeated, "Replay requests to URL; \"URL|10\" at most 10 req/s, \"URL|10%\" a 10% share"},
      {"output-http-workers", Arity::value, "Concurrent requests per HTTP output"},
      {"output-http-timeout", Arity::value, "Time a replayed request may take (e.g. 5s)"},
      {"output-http-queue-len", Arity::value, "Requests waiting for a free connection (queue_size)"},
      {"output-http-workers-min", Arity::value, "Accepted, not needed: doppel opens up to --output-http-workers as needed"},
      {"output-http-worker-timeout", Arity::value, "Accepted, not needed: idle keep-alive connections stay open"},
      {"output-http-response-buffer", Arity::value,
       "Accepted, not needed: doppel keeps whole responses up to max_response_size (64MiB)"},
      {"output-http-compatibility-mode", Arity::flag, "Accepted, not needed: doppel has one HTTP client"},
      {"output-http-debug", Arity::flag, "Log at debug level"},
      {"output-http-stats-ms", Arity::value, "Interval of --stats / --output-http-stats in milliseconds"},
      {"output-http-track-response", Arity::flag, "Emit the replayed responses (type 3)"},
      {"output-http-skip-verify", Arity::flag, "Do not verify the target's TLS certificate"},
      {"output-http-redirects", Arity::value, "Redirects to follow (doppel: only 0 is accepted; see the guide)"},
      {"output-http-stats", Arity::flag, "Print HTTP output statistics (doppel's stats line)"},
      {"http-original-host", Arity::flag, "Keep the captured Host header instead of the target's"},
      {"output-file", Arity::repeated, "Write .gor records to FILE (%Y%m%d... patterns, .gz)"},
      {"output-file-size-limit", Arity::value, "Largest chunk file (default 32mb, as GoReplay)"},
      {"output-file-queue-limit", Arity::value, "Records per chunk file (default 256, as GoReplay)"},
      {"output-file-append", Arity::flag,
       "Write everything to FILE instead of numbered chunks; like GoReplay, an existing FILE is replaced"},
      {"output-file-flush-interval", Arity::value, "How often the file output flushes (e.g. 1s)"},
      {"output-stdout", Arity::flag, "Write .gor records to stdout"},
      {"output-null", Arity::flag, "Count and discard"},
      {"middleware", Arity::value, "Program speaking GoReplay's middleware protocol, split on spaces (no shell)"},
      {"http-allow-url", Arity::repeated, "Keep requests whose URL matches this regex"},
      {"http-disallow-url", Arity::repeated, "Drop requests whose URL matches this regex"},
      {"http-allow-method", Arity::repeated, "Keep requests with this method"},
      {"http-allow-header", Arity::repeated, "Keep requests with a header matching \"Name: regex\""},
      {"http-disallow-header", Arity::repeated, "Drop requests with a header matching \"Name: regex\""},
      {"http-basic-auth-filter", Arity::repeated, "Keep requests whose decoded basic auth matches this regex"},
      {"http-set-header", Arity::repeated, "Set a header: \"Name: value\""},
      {"http-set-param", Arity::repeated, "Set a query parameter: \"name=value\""},
      {"http-rewrite-url", Arity::repeated, "Rewrite the URL: \"regex:replacement\" ($1 groups)"},
      {"http-rewrite-header", Arity::repeated, "Rewrite a header value: \"Name: regex,replacement\""},
      {"http-header-limiter", Arity::repeated, "Consistent sampling by a header: \"Name: 10%\""},
      {"http-param-limiter", Arity::repeated, "Consistent sampling by a query parameter: \"name: 10%\""},
      {"split-output", Arity::flag, "Split requests between the outputs instead of copying them to each"},
      {"exit-after", Arity::value, "Stop (and drain) after this long (e.g. 30s)"},
      {"stats", Arity::flag, "Print the stats line every 5 seconds"},
      {"copy-buffer-size", Arity::value, "Accepted, not needed: doppel keeps whole messages (raw: snaplen)"},
      {"debug", Arity::flag, "Log at debug level"},
      {"verbose", Arity::value, "Log more (0-3); a bare --verbose means 1"},
      {"print-pipeline", Arity::flag, "doppel: print the equivalent pipeline TOML instead of running it"},
  };
  return flags;
}

namespace {

bool parse_bool(const std::string& flag, const std::string& v) {
  if (v == "true" || v == "1" || v == "t" || v == "T" || v == "TRUE" || v == "True") return true;
  if (v == "false" || v == "0" || v == "f" || v == "F" || v == "FALSE" || v == "False") return false;
  throw GorUsageError("invalid boolean value \"" + v + "\" for flag --" + flag);
}

// GoReplay durations are Go durations ("2s", "1m30s", "500ms"); so are doppel's.
std::string duration_value(const std::string& flag, const std::string& v) {
  try {
    parse_duration(v);
  } catch (const std::invalid_argument& e) {
    throw GorUsageError("--" + flag + ": " + e.what());
  }
  return v;
}

// GoReplay sizes: "32mb", "1gb", "100kb" (decimal and binary spellings alike).
std::string size_value(const std::string& flag, std::string v) {
  std::string digits = v.substr(0, v.find_first_not_of("0123456789."));
  std::string unit = v.substr(digits.size());
  std::transform(unit.begin(), unit.end(), unit.begin(), ::tolower);
  static const std::map<std::string, std::string> units = {
      {"", "B"}, {"b", "B"}, {"kb", "KB"}, {"k", "KB"}, {"mb", "MB"}, {"m", "MB"}, {"gb", "GB"}, {"g", "GB"},
      {"kib", "KiB"}, {"mib", "MiB"}, {"gib", "GiB"}};
  auto u = units.find(unit);
  if (digits.empty() || u == units.end()) throw GorUsageError("--" + flag + ": invalid size \"" + v + "\"");
  return digits + u->second;
}

std::string positive_int(const std::string& flag, const std::string& v) {
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos)
    throw GorUsageError("--" + flag + ": expected a number, not \"" + v + "\"");
  return v;
}

// "ADDR|N" and "ADDR|N%": the part before and the limit after the last '|'.
struct Limited {
  std::string address;
  std::string limit;  // "" | "10" | "10%"
};
Limited split_limit(const std::string& flag, const std::string& v) {
  auto bar = v.rfind('|');
  if (bar == std::string::npos) return {v, ""};
  std::string limit = v.substr(bar + 1);
  std::string number = limit.back() == '%' ? limit.substr(0, limit.size() - 1) : limit;
  if (number.empty() || number.find_first_not_of("0123456789.") != std::string::npos)
    throw GorUsageError("--" + flag + ": invalid limit \"" + limit + "\" in \"" + v +
                        "\" (expected ADDR|N for N per second or ADDR|N% for a share)");
  return {v.substr(0, bar), limit};
}

// "Name: value" → {Name, value}
std::pair<std::string, std::string> split_header(const std::string& flag, const std::string& v) {
  auto colon = v.find(':');
  if (colon == std::string::npos || colon == 0)
    throw GorUsageError("--" + flag + ": expected \"Name: value\", not \"" + v + "\"");
  std::string value = v.substr(colon + 1);
  value.erase(0, value.find_first_not_of(' '));
  return {v.substr(0, colon), value};
}

// Builds the TOML text of the pipeline, stage by stage.
class PipelineText {
 public:
  void comment(const std::string& text) { out_ << "# " << text << "\n"; }
  void table(const std::string& header) { out_ << "\n[" << header << "]\n"; }
  void array_table(const std::string& header) { out_ << "\n[[" << header << "]]\n"; }
  void set(const std::string& key, const Value& v) { out_ << key << " = " << v.to_toml() << "\n"; }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

Value string_array(const std::vector<std::string>& items) {
  Value::Array a;
  for (const auto& s : items) a.emplace_back(s);
  return Value(std::move(a));
}

Value from(const std::vector<std::string>& stages) { return string_array(stages); }

Value as_int(const std::string& digits) { return Value(static_cast<std::int64_t>(std::stoll(digits))); }

bool is_capture_file(const std::string& address) {
  return address.ends_with(".pcap") || address.ends_with(".pcapng") || address.ends_with(".cap");
}

bool looks_like_ip(const std::string& host) {
  if (host.find(':') != std::string::npos) return true;  // IPv6
  return !host.empty() && host.find_first_not_of("0123456789.") == std::string::npos;
}

}  // namespace

std::string gor_flags_help() {
  std::ostringstream out;
  out << "doppel gor: run a GoReplay command line (flags as `gor` takes them: -flag or --flag, =value or a "
         "separate value)\n\nSupported flags:\n";
  for (const auto& f : gor_flags()) {
    std::string name = std::string("--") + f.name + (f.arity == Arity::flag ? "" : " VALUE");
    out << "  " << name << std::string(name.size() < 34 ? 34 - name.size() : 1, ' ') << f.help
        << (f.arity == Arity::repeated ? " (repeatable)" : "") << "\n";
  }
  return out.str();
}

GorTranslation translate_gor_command_line(const std::vector<std::string>& args) {
  std::map<std::string, std::vector<std::string>> values;
  std::vector<std::string> names;
  for (const auto& f : gor_flags()) names.emplace_back(f.name);

  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 2 || arg[0] != '-')
      throw GorUsageError("unexpected argument \"" + arg + "\": GoReplay takes flags only (e.g. --input-raw :80)");
    std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
    std::optional<std::string> inline_value;
    if (auto eq = body.find('='); eq != std::string::npos) {
      inline_value = body.substr(eq + 1);
      body = body.substr(0, eq);
    }
    auto spec = std::find_if(gor_flags().begin(), gor_flags().end(), [&](const GorFlag& f) { return body == f.name; });
    if (spec == gor_flags().end()) {
      std::string msg = "unsupported GoReplay flag --" + body;
      auto close = closest_names(body, names, 1);
      if (!close.empty()) msg += "; did you mean --" + close.front() + "?";
      msg += " (doppel gor --help lists the supported flags)";
      throw GorUsageError(msg);
    }
    std::string value;
    if (spec->arity == Arity::flag) {
      value = inline_value ? (parse_bool(body, *inline_value) ? "true" : "false") : "true";
    } else if (inline_value) {
      value = *inline_value;
    } else if (body == "verbose") {
      // GoReplay's --verbose is a level; a bare --verbose means 1.
      bool number = i + 1 < args.size() && !args[i + 1].empty() &&
                    args[i + 1].find_first_not_of("0123456789") == std::string::npos;
      value = number ? args[++i] : "1";
    } else {
      if (i + 1 >= args.size()) throw GorUsageError("flag --" + body + " needs a value");
      value = args[++i];
    }
    auto& slot = values[body];
    if (spec->arity != Arity::repeated) slot.clear();
    slot.push_back(value);
  }

  auto has = [&](const char* name) { return values.count(name) && values[name].back() != "false"; };
  auto one = [&](const char* name) -> std::string { return values.count(name) ? values[name].back() : ""; };
  auto all = [&](const char* name) -> std::vector<std::string> {
    return values.count(name) ? values[name] : std::vector<std::string>{};
  };

  GorTranslation result;
  result.print_pipeline = has("print-pipeline");
  result.dry_run = has("input-file-dry-run");
  if (values.count("verbose")) {
    int level = std::stoi(positive_int("verbose", one("verbose")));
    result.log_level = level >= 2 ? "trace" : level == 1 ? "debug" : "";
  }
  if ((has("debug") || has("output-http-debug")) && result.log_level.empty()) result.log_level = "debug";
  // Flags GoReplay needs for its own machinery and doppel does not: accepted (a command line
  // copied from a GoReplay runbook runs), checked, and said once at start.
  if (values.count("input-file-read-depth")) {
    positive_int("input-file-read-depth", one("input-file-read-depth"));
    result.notes.push_back("--input-file-read-depth: not needed; doppel reads ahead as far as the next stage's queue "
                           "allows and waits for it (nothing read from a file is dropped)");
  }
  if (values.count("output-http-workers-min")) {
    positive_int("output-http-workers-min", one("output-http-workers-min"));
    result.notes.push_back("--output-http-workers-min: not needed; doppel opens up to `workers` keep-alive "
                           "connections as requests need them");
  }
  if (values.count("output-http-worker-timeout")) {
    duration_value("output-http-worker-timeout", one("output-http-worker-timeout"));
    result.notes.push_back("--output-http-worker-timeout: not needed; idle keep-alive connections stay open");
  }
  if (values.count("output-http-response-buffer")) {
    size_value("output-http-response-buffer", one("output-http-response-buffer"));
    result.notes.push_back("--output-http-response-buffer: not needed; doppel keeps whole responses up to the http "
                           "output's max_response_size (64MiB) and counts larger ones as response_too_large");
  }
  if (has("output-http-compatibility-mode"))
    result.notes.push_back("--output-http-compatibility-mode: not needed; doppel has one HTTP/1.1 client");
  if (values.count("copy-buffer-size")) {
    size_value("copy-buffer-size", one("copy-buffer-size"));
    result.notes.push_back("--copy-buffer-size: not needed; doppel keeps whole messages (a capture: up to its snaplen)");
  }
  if (all("input-raw").empty() && all("input-file").empty())
    throw GorUsageError("no input: give --input-raw or --input-file");
  bool any_output = !all("output-http").empty() || !all("output-file").empty() || has("output-stdout") ||
                    has("output-null");
  if (!any_output) throw GorUsageError("no output: give --output-http, --output-file, --output-stdout or --output-null");

  if (values.count("output-http-redirects") && positive_int("output-http-redirects", one("output-http-redirects")) != "0")
    throw GorUsageError(
        "--output-http-redirects: doppel replays exactly what was captured and compares the responses as they "
        "are; following redirects would compare a different exchange (use 0, or drop the flag)");

  PipelineText p;
  p.comment("Generated by: doppel gor --print-pipeline ...");
  p.comment("Run it with `doppel run FILE`; validate it with `doppel validate FILE`.");
  p.table("pipeline");
  p.set("name", "gor");
  // GoReplay is quiet unless --stats is given; so is `doppel gor`.
  std::string stats_every = "5s";
  if (values.count("output-http-stats-ms"))
    stats_every = positive_int("output-http-stats-ms", one("output-http-stats-ms")) + "ms";
  p.set("stats_interval", has("stats") || has("output-http-stats") ? stats_every : "0s");
  if (values.count("exit-after")) p.set("exit_after", duration_value("exit-after", one("exit-after")));

  std::vector<std::string> sources;  // stages producing the captured/read messages
  int n = 0;
  for (const auto& raw : all("input-raw")) {
    auto [address, limit] = split_limit("input-raw", raw);
    std::string name = "raw" + (n++ ? "_" + std::to_string(n) : std::string());
    p.table("inputs." + name);
    p.comment("--input-raw " + raw);
    p.set("plugin", "raw");
    if (is_capture_file(address)) {
      p.set("file", address);
    } else {
      auto colon = address.rfind(':');
      if (colon == std::string::npos)
        throw GorUsageError("--input-raw: expected \":PORT\", \"HOST:PORT\", \"IFACE:PORT\" or a .pcap file, not \"" +
                            address + "\"");
      std::string host = address.substr(0, colon), ports = address.substr(colon + 1);
      if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
      std::vector<std::string> port_list;
      std::stringstream ps(ports);
      for (std::string part; std::getline(ps, part, ',');) port_list.push_back(positive_int("input-raw", part));
      if (port_list.empty()) throw GorUsageError("--input-raw: no port in \"" + address + "\"");
      if (host.empty() || host == "0.0.0.0" || host == "::") p.set("interface", "any");
      else if (looks_like_ip(host)) {
        p.set("interface", "any");
        p.set("host", host);
      } else p.set("interface", host);
      if (port_list.size() == 1) p.set("port", as_int(port_list[0]));
      else {
        Value::Array a;
        for (const auto& port : port_list) a.push_back(as_int(port));
        p.set("ports", Value(std::move(a)));
      }
    }
    if (has("input-raw-track-response")) p.set("track_response", true);
    if (values.count("input-raw-engine")) {
      std::string engine = one("input-raw-engine");
      if (engine != "libpcap" && engine != "pcap_file" && engine != "pcap" && engine != "raw_socket" && engine != "af_packet")
        throw GorUsageError("--input-raw-engine: unknown engine \"" + engine + "\" (libpcap, pcap_file)");
      if (engine == "raw_socket" || engine == "af_packet")
        result.notes.push_back("--input-raw-engine " + engine + ": doppel captures with libpcap (same packets)");
    }
    if (values.count("input-raw-bpf-filter")) p.set("bpf", one("input-raw-bpf-filter"));
    if (values.count("input-raw-expire")) p.set("expire", duration_value("input-raw-expire", one("input-raw-expire")));
    if (has("input-raw-allow-incomplete")) p.set("allow_incomplete", true);
    if (values.count("input-raw-realip-header")) p.set("realip_header", one("input-raw-realip-header"));
    if (values.count("input-raw-buffer-size"))
      p.set("buffer_size", size_value("input-raw-buffer-size", one("input-raw-buffer-size")));
    if (has("input-raw-promisc")) p.set("promiscuous", true);
    if (values.count("input-raw-snaplen"))
      p.set("snaplen", as_int(positive_int("input-raw-snaplen", one("input-raw-snaplen"))));
    else if (has("input-raw-override-snaplen")) p.set("snaplen", std::int64_t{262144});
    sources.push_back(name);
    if (!limit.empty()) {
      std::string limited = name + "_limit";
      p.table("filters." + limited);
      p.set("plugin", "limit");
      p.set("from", from({name}));
      if (limit.back() == '%') p.set("percent", std::stod(limit.substr(0, limit.size() - 1)));
      else {
        p.set("rate", limit + "/s");
        p.set("mode", "drop");
      }
      sources.back() = limited;
    }
  }
  n = 0;
  for (const auto& file : all("input-file")) {
    auto [path, limit] = split_limit("input-file", file);
    std::string name = "file" + (n++ ? "_" + std::to_string(n) : std::string());
    p.table("inputs." + name);
    p.comment("--input-file " + file);
    p.set("plugin", "file");
    p.set("path", path);
    // On --input-file a percentage is a speed (GoReplay: "requests.gor|200%" replays twice as fast).
    if (!limit.empty()) {
      if (limit.back() != '%')
        throw GorUsageError("--input-file: \"" + file + "\": only a speed such as |200% is supported on files");
      p.set("speed", limit);
    }
    if (has("input-file-loop")) p.set("loop", true);
    if (values.count("input-file-max-wait"))
      p.set("max_wait", duration_value("input-file-max-wait", one("input-file-max-wait")));
    sources.push_back(name);
  }

  // HTTP outputs: their names are needed by the middleware, which reads their replays.
  std::vector<std::string> http_names;
  for (std::size_t i = 0; i < all("output-http").size(); ++i)
    http_names.push_back("http" + (i ? "_" + std::to_string(i + 1) : std::string()));
  bool tracking = has("output-http-track-response");

  // GoReplay order: inputs -> middleware -> filters/rewrites -> outputs; the HTTP outputs'
  // replays go back into the middleware (or straight to the other outputs without one).
  std::vector<std::string> upstream = sources;
  if (values.count("middleware")) {
    p.table("middleware.middleware");
    p.comment("--middleware " + one("middleware"));
    p.set("plugin", "process");
    p.set("command", one("middleware"));
    std::vector<std::string> reads = sources;
    if (tracking) reads.insert(reads.end(), http_names.begin(), http_names.end());
    p.set("from", from(reads));
    upstream = {"middleware"};
  }
  auto filter = [&](const std::string& name, const std::string& plugin, const std::string& flag,
                    const std::vector<std::pair<std::string, Value>>& options) {
    p.table("filters." + name);
    p.comment(flag);
    p.set("plugin", plugin);
    p.set("from", from(upstream));
    for (const auto& [k, v] : options) p.set(k, v);
    upstream = {name};
  };
  if (!all("http-allow-url").empty() || !all("http-disallow-url").empty()) {
    std::vector<std::pair<std::string, Value>> o;
    if (!all("http-allow-url").empty()) o.emplace_back("allow", string_array(all("http-allow-url")));
    if (!all("http-disallow-url").empty()) o.emplace_back("deny", string_array(all("http-disallow-url")));
    filter("urls", "url", "--http-allow-url / --http-disallow-url", o);
  }
  if (!all("http-allow-method").empty())
    filter("methods", "method", "--http-allow-method", {{"allow", string_array(all("http-allow-method"))}});
  if (!all("http-allow-header").empty() || !all("http-disallow-header").empty()) {
    std::vector<std::pair<std::string, Value>> o;
    for (const auto& h : all("http-allow-header")) split_header("http-allow-header", h);
    for (const auto& h : all("http-disallow-header")) split_header("http-disallow-header", h);
    if (!all("http-allow-header").empty()) o.emplace_back("allow", string_array(all("http-allow-header")));
    if (!all("http-disallow-header").empty()) o.emplace_back("deny", string_array(all("http-disallow-header")));
    filter("headers", "header", "--http-allow-header / --http-disallow-header", o);
  }
  if (!all("http-basic-auth-filter").empty())
    filter("basic_auth", "header", "--http-basic-auth-filter", {{"basic_auth", string_array(all("http-basic-auth-filter"))}});
  if (!all("http-set-header").empty() || !all("http-set-param").empty() || !all("http-rewrite-url").empty() ||
      !all("http-rewrite-header").empty()) {
    std::vector<std::pair<std::string, Value>> o;
    for (const auto& h : all("http-set-header")) split_header("http-set-header", h);
    for (const auto& param : all("http-set-param"))
      if (param.find('=') == std::string::npos)
        throw GorUsageError("--http-set-param: expected \"name=value\", not \"" + param + "\"");
    for (const auto& rule : all("http-rewrite-url"))
      if (rule.find(':') == std::string::npos)
        throw GorUsageError("--http-rewrite-url: expected \"regex:replacement\", not \"" + rule + "\"");
    for (const auto& rule : all("http-rewrite-header")) {
      auto [name, rest] = split_header("http-rewrite-header", rule);
      if (rest.find(',') == std::string::npos)
        throw GorUsageError("--http-rewrite-header: expected \"Name: regex,replacement\", not \"" + rule + "\"");
    }
    if (!all("http-set-header").empty()) o.emplace_back("set_header", string_array(all("http-set-header")));
    if (!all("http-set-param").empty()) o.emplace_back("set_param", string_array(all("http-set-param")));
    if (!all("http-rewrite-url").empty()) o.emplace_back("rewrite_url", string_array(all("http-rewrite-url")));
    if (!all("http-rewrite-header").empty()) o.emplace_back("rewrite_header", string_array(all("http-rewrite-header")));
    filter("rewrite", "rewrite", "--http-set-header / --http-set-param / --http-rewrite-url / --http-rewrite-header", o);
  }
  int limiter = 0;
  for (const auto& [flag, prefix] : {std::pair{"http-header-limiter", "header:"}, std::pair{"http-param-limiter", "param:"}}) {
    for (const auto& spec : all(flag)) {
      auto [name, share] = split_header(flag, spec);
      if (share.empty() || share.back() != '%')
        throw GorUsageError(std::string("--") + flag + ": expected \"Name: N%\", not \"" + spec + "\"");
      filter("limiter" + (limiter++ ? "_" + std::to_string(limiter) : std::string()), "limit", std::string("--") + flag + " " + spec,
             {{"key", std::string(prefix) + name}, {"percent", std::stod(share.substr(0, share.size() - 1))}});
    }
  }

  // Outputs. With --split-output each output gets a disjoint share of the requests.
  struct OutputPlan {
    std::string name, limit;
  };
  std::vector<OutputPlan> outputs;
  for (std::size_t i = 0; i < all("output-http").size(); ++i)
    outputs.push_back({http_names[i], split_limit("output-http", all("output-http")[i]).limit});
  n = 0;
  for (const auto& f : all("output-file")) outputs.push_back({"file_out" + (n++ ? "_" + std::to_string(n) : std::string()), split_limit("output-file", f).limit});
  if (has("output-stdout")) outputs.push_back({"stdout", ""});
  if (has("output-null")) outputs.push_back({"null", ""});
  bool split = has("split-output") && outputs.size() > 1;

  // Where each output reads: the last filter, through its own split/limit stages.
  auto reader_of = [&](std::size_t index) {
    std::vector<std::string> reads = upstream;
    if (split) {
      std::string name = "split_" + outputs[index].name;
      p.table("filters." + name);
      p.comment("--split-output: share " + std::to_string(index) + " of " + std::to_string(outputs.size()));
      p.set("plugin", "split");
      p.set("from", from(reads));
      p.set("ways", static_cast<std::int64_t>(outputs.size()));
      p.set("index", static_cast<std::int64_t>(index));
      reads = {name};
    }
    if (!outputs[index].limit.empty()) {
      std::string name = "limit_" + outputs[index].name;
      const std::string& limit = outputs[index].limit;
      p.table("filters." + name);
      p.set("plugin", "limit");
      p.set("from", from(reads));
      if (limit.back() == '%') p.set("percent", std::stod(limit.substr(0, limit.size() - 1)));
      else {
        p.set("rate", limit + "/s");
        p.set("mode", "drop");
      }
      reads = {name};
    }
    return reads;
  };
  // Replays reach the non-HTTP outputs directly when no middleware takes them.
  std::vector<std::string> replay_sources;
  if (tracking && !values.count("middleware")) replay_sources = http_names;

  std::size_t index = 0;
  for (const auto& url : all("output-http")) {
    auto [address, limit] = split_limit("output-http", url);
    auto reads = reader_of(index);
    p.table("outputs." + outputs[index].name);
    p.comment("--output-http " + url);
    p.set("plugin", "http");
    p.set("from", from(reads));
    p.set("url", address);
    if (values.count("output-http-workers"))
      p.set("workers", as_int(positive_int("output-http-workers", one("output-http-workers"))));
    if (values.count("output-http-timeout"))
      p.set("timeout", duration_value("output-http-timeout", one("output-http-timeout")));
    if (values.count("output-http-queue-len"))
      p.set("queue_size", as_int(positive_int("output-http-queue-len", one("output-http-queue-len"))));
    if (tracking) p.set("track_response", true);
    if (has("output-http-skip-verify")) p.set("tls_skip_verify", true);
    if (has("http-original-host")) p.set("original_host", true);
    ++index;
  }
  bool replays_read = !replay_sources.empty() && index < outputs.size();
  for (const auto& f : all("output-file")) {
    auto [path, limit] = split_limit("output-file", f);
    auto reads = reader_of(index);
    reads.insert(reads.end(), replay_sources.begin(), replay_sources.end());
    p.table("outputs." + outputs[index].name);
    p.comment("--output-file " + f);
    p.set("plugin", "file");
    p.set("from", from(reads));
    p.set("path", path);
    // GoReplay writes numbered chunks (FILE_0, FILE_1, ...) of at most 256 records or 32mb,
    // starting after the highest existing index, unless told to "append" everything to one
    // FILE, which it opens with O_TRUNC: an existing FILE is replaced, so say overwrite.
    if (has("output-file-append")) {
      p.set("overwrite", true);
    } else {
      p.set("size_limit", values.count("output-file-size-limit")
                              ? size_value("output-file-size-limit", one("output-file-size-limit"))
                              : std::string("32MB"));
      p.set("max_records", values.count("output-file-queue-limit")
                               ? as_int(positive_int("output-file-queue-limit", one("output-file-queue-limit")))
                               : Value(std::int64_t{256}));
    }
    if (values.count("output-file-flush-interval"))
      p.set("flush_interval", duration_value("output-file-flush-interval", one("output-file-flush-interval")));
    ++index;
  }
  for (const char* plain : {"stdout", "null"}) {
    if (!has(plain == std::string("stdout") ? "output-stdout" : "output-null")) continue;
    auto reads = reader_of(index);
    reads.insert(reads.end(), replay_sources.begin(), replay_sources.end());
    p.table(std::string("outputs.") + plain);
    p.comment(std::string("--output-") + plain);
    p.set("plugin", plain);
    p.set("from", from(reads));
    ++index;
  }
  if (tracking && !values.count("middleware") && !replays_read) {
    // GoReplay drops replayed responses nobody reads; doppel counts them.
    p.table("outputs.discard_replays");
    p.comment("--output-http-track-response with no other output: replays are counted and discarded");
    p.set("plugin", "null");
    p.set("from", from(http_names));
  }
  result.pipeline_toml = p.str();
  return result;
}

}  // namespace doppel::core
