#include "pipeline_test.hpp"

#include <chrono>
#include <mutex>
#include <regex>
#include <sstream>

#include "doppel/markup.hpp"
#include "runtime.hpp"

namespace doppel::core {

const std::vector<OptionSpec>& test_block_schema() {
  static const std::vector<OptionSpec> schema = {
      option("name", OptionType::string, "What the test checks").required(),
      option("inputs", OptionType::table_list, "Messages injected in front of a stage, in order")
          .default_value(Value::array({}))
          .fields({
              option("stage", OptionType::string, "The stage that receives the message, as if from upstream")
                  .required(),
              option("kind", OptionType::string, "Message kind")
                  .default_value("request")
                  .choices({"request", "response", "replay", "verdict"}),
              option("id", OptionType::string, "Message id; equal ids link a request with its responses")
                  .default_value(""),
              option("payload", OptionType::string, "The HTTP message as on the wire (use \\r\\n)").required(),
              option("latency", OptionType::duration, "Latency of a response").default_value("0s"),
              option("error", OptionType::string, "Replay error (refused, timeout, ...) for replay messages")
                  .default_value(""),
          }),
      option("outputs", OptionType::table_list, "Expectations on what a stage emitted")
          .default_value(Value::array({}))
          .fields({
              option("stage", OptionType::string, "The stage whose emitted messages are checked").required(),
              option("kind", OptionType::string, "Only messages of this kind")
                  .choices({"request", "response", "replay", "verdict"}),
              option("count", OptionType::integer,
                     "Exactly this many matching messages (0: the stage emits nothing that matches); without it, "
                     "at least one"),
              option("contains", OptionType::string_list, "Substrings the payload must contain")
                  .default_value(Value::array({})),
              option("not_contains", OptionType::string_list, "Substrings the payload must not contain")
                  .default_value(Value::array({})),
              option("matches", OptionType::string, "ECMAScript regex the payload must match"),
              option("method", OptionType::string, "Request method"),
              option("path", OptionType::string, "Request path (without the query)"),
              option("status", OptionType::integer, "Response status"),
              option("header", OptionType::string, "A header that must be present, as \"Name: value\""),
          }),
  };
  return schema;
}

namespace {

struct Expectation {
  std::string stage;
  std::optional<Kind> kind;
  std::optional<std::int64_t> count;
  std::vector<std::string> contains, not_contains;
  std::optional<std::regex> matches;
  std::optional<std::string> method, path, header_name, header_value;
  std::optional<int> status;
  std::string describe;
};

bool satisfies(const Expectation& e, const Message& m) {
  if (e.kind && m.kind != *e.kind) return false;
  for (const auto& s : e.contains)
    if (m.payload.find(s) == std::string::npos) return false;
  for (const auto& s : e.not_contains)
    if (m.payload.find(s) != std::string::npos) return false;
  if (e.matches && !std::regex_search(m.payload, *e.matches)) return false;
  const HttpView& h = m.http();
  if (e.method && h.method() != *e.method) return false;
  if (e.path && h.path() != *e.path) return false;
  if (e.status && h.status() != *e.status) return false;
  if (e.header_name) {
    auto v = h.header(*e.header_name);
    if (!v || *v != *e.header_value) return false;
  }
  return true;
}

std::string preview(const Message& m) {
  std::string p = m.payload.substr(0, m.payload.find('\n'));
  if (!p.empty() && p.back() == '\r') p.pop_back();
  if (p.size() > 80) p = p.substr(0, 77) + "...";
  return std::string(kind_name(m.kind)) + " \"" + p + "\"";
}

}  // namespace

std::vector<TestOutcome> run_pipeline_tests(const PipelineSpec& spec, const PluginRegistry& registry,
                                            std::vector<ConfigError>& errors) {
  std::vector<TestOutcome> outcomes;
  if (spec.tests.is_null()) return outcomes;
  if (!spec.tests.is_array()) {
    errors.emplace_back(spec.tests_position, "tests", "`tests` must be [[tests]] blocks");
    return outcomes;
  }
  std::vector<std::string> stage_names;
  for (const auto& s : spec.stages) stage_names.push_back(s.name);
  auto check_stage = [&](const Options& o) {
    std::string name = o.string("stage");
    if (std::find(stage_names.begin(), stage_names.end(), name) == stage_names.end()) {
      std::string msg = "no stage named \"" + name + "\"";
      auto close = closest_names(name, stage_names);
      if (!close.empty()) msg += "; did you mean \"" + close.front() + "\"?";
      errors.emplace_back(o.position("stage"), "stage", msg);
      return false;
    }
    return true;
  };

  for (const auto& block : spec.tests.as_array()) {
    std::size_t before = errors.size();
    Options test = Options::validate(block, test_block_schema(), errors);
    if (errors.size() != before) continue;
    TestOutcome outcome;
    outcome.name = test.string("name");
    auto started = std::chrono::steady_clock::now();

    std::vector<std::pair<std::string, MessagePtr>> injected;
    for (const auto& in : test.tables("inputs")) {
      if (!check_stage(in)) continue;
      Message m(*parse_kind(in.string("kind")), in.string("id"), now_ns(), in.string("payload"));
      if (m.id.empty()) m.id = new_message_id();
      m.latency_ns = in.duration("latency").count();
      m.meta.error = in.string("error");
      m.meta.stage = "test";
      injected.emplace_back(in.string("stage"), share(std::move(m)));
    }
    std::vector<Expectation> expectations;
    for (const auto& out : test.tables("outputs")) {
      if (!check_stage(out)) continue;
      Expectation e;
      e.stage = out.string("stage");
      e.describe = "stage \"" + e.stage + "\"";
      if (out.has("kind")) {
        e.kind = parse_kind(out.string("kind"));
        e.describe += " kind " + out.string("kind");
      }
      if (out.has("count")) e.count = out.integer("count");
      e.contains = out.strings("contains");
      e.not_contains = out.strings("not_contains");
      if (out.has("matches")) {
        try {
          e.matches.emplace(out.string("matches"));
        } catch (const std::regex_error& err) {
          errors.emplace_back(out.position("matches"), "matches", std::string("invalid regex: ") + err.what());
          continue;
        }
      }
      if (out.has("method")) e.method = out.string("method");
      if (out.has("path")) e.path = out.string("path");
      if (out.has("status")) e.status = static_cast<int>(out.integer("status"));
      if (out.has("header")) {
        std::string h = out.string("header");
        auto colon = h.find(':');
        if (colon == std::string::npos) {
          errors.emplace_back(out.position("header"), "header", "`header` must look like \"Name: value\"");
          continue;
        }
        e.header_name = h.substr(0, colon);
        std::string value = h.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        e.header_value = value;
      }
      expectations.push_back(std::move(e));
    }
    if (errors.size() != before) continue;

    // A fresh graph per test: no state leaks from one test into the next.
    std::vector<ConfigError> graph_errors;
    auto graph = build_graph(spec, registry, graph_errors, BuildMode::test);
    if (!graph) {
      errors.insert(errors.end(), graph_errors.begin(), graph_errors.end());
      return outcomes;
    }
    std::mutex mutex;
    std::map<std::string, std::vector<MessagePtr>> emitted;
    RuntimeOptions options;
    options.test_mode = true;
    options.print_stats = false;
    options.tap = [&](const std::string& stage, const MessagePtr& m) {
      std::lock_guard lock(mutex);
      emitted[stage].push_back(m);
    };
    {
      Runtime runtime(*graph, options);
      try {
        runtime.start();
      } catch (const std::exception& e) {
        outcome.failures.push_back(std::string("pipeline failed to start: ") + e.what());
      }
      if (outcome.failures.empty()) {
        for (auto& [stage, message] : injected)
          if (!runtime.inject(stage, message))
            outcome.failures.push_back("cannot inject into \"" + stage + "\" (inputs are left out in tests)");
        runtime.drain_and_stop();
      }
    }
    for (const auto& e : expectations) {
      std::vector<MessagePtr> seen = emitted[e.stage];
      std::int64_t n = 0;
      for (const auto& m : seen) n += satisfies(e, *m) ? 1 : 0;
      bool ok = e.count ? n == *e.count : n > 0;
      if (ok) continue;
      std::ostringstream why;
      why << e.describe << ": expected " << (e.count ? std::to_string(*e.count) : std::string("at least one"))
          << " matching message(s), got " << n << " (of " << seen.size() << " emitted";
      for (std::size_t i = 0; i < seen.size() && i < 3; ++i) why << (i ? "; " : ": ") << preview(*seen[i]);
      why << ")";
      outcome.failures.push_back(why.str());
    }
    outcome.passed = outcome.failures.empty();
    outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}


std::string junit_xml(const std::string& suite, const std::vector<TestOutcome>& outcomes) {
  std::size_t failures = 0;
  double total = 0;
  for (const auto& o : outcomes) {
    failures += o.passed ? 0 : 1;
    total += o.seconds;
  }
  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"" << escape_markup(suite)
      << "\" tests=\"" << outcomes.size() << "\" failures=\"" << failures << "\" time=\"" << total << "\">\n";
  for (const auto& o : outcomes) {
    out << "    <testcase classname=\"" << escape_markup(suite) << "\" name=\"" << escape_markup(o.name) << "\" time=\""
        << o.seconds << "\"";
    if (o.passed) {
      out << "/>\n";
      continue;
    }
    out << ">\n";
    for (const auto& f : o.failures) out << "      <failure message=\"" << escape_markup(f) << "\"/>\n";
    out << "    </testcase>\n";
  }
  out << "  </testsuite>\n</testsuites>\n";
  return out.str();
}

}  // namespace doppel::core
