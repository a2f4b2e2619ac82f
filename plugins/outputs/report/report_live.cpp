// The report's live view (`listen`): the HTML report, refreshed in place, and its data as JSON,
// served over HTTP while the run goes on. Schema: docs/operations.md, "The report's live view".
#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

#include "doppel/form.hpp"
#include "doppel/json_writer.hpp"
#include "doppel/options.hpp"
#include "report_json.hpp"
#include "report_output.hpp"

namespace doppel::plugins {
namespace {

constexpr const char* kJson = "application/json";

HttpServer::Response json_error(unsigned status, const std::string& message) {
  JsonWriter w;
  w.begin_object().field("error", message).end_object();
  return {status, w.take() + "\n", kJson};
}

// The first value of each parameter, percent-decoded; nullopt when it is absent.
std::optional<std::string> parameter(const std::vector<std::pair<std::string, std::string>>& form,
                                     std::string_view name) {
  for (const auto& [key, value] : form)
    if (key == name) return value;
  return std::nullopt;
}

// Counts of one endpoint x comparator x path, as /api/paths and /api/samples show them.
void write_path_counts(JsonWriter& w, const PathStats& p) {
  w.field("count", p.count);
  w.field("fail", p.fail);
  w.field("warn", p.warn);
  w.field("info", p.info);
  w.field("noise", p.noise);
  w.field("other", p.other);
  w.key("kinds").begin_object();
  for (const auto& [kind, n] : p.kinds) w.field(kind, n);
  w.end_object();
}

std::string url_of(const boost::asio::ip::tcp::endpoint& at) {
  std::string host = at.address().to_string();
  if (at.address().is_v6()) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(at.port()) + "/";
}

}  // namespace

void ReportOutput::start_live() {
  HttpServer::Config server;
  server.what = "the live report";
  server.logger = context().stage_name();
  server.routes = {
      {"/", [this](const HttpServer::Request&) { return live_page(); }},
      {"/api/summary", [this](const HttpServer::Request&) { return live_summary(); }},
      {"/api/paths", [this](const HttpServer::Request& r) { return live_paths(r.query); }},
      {"/api/samples", [this](const HttpServer::Request& r) { return live_samples(r.query); }},
  };
  live_io_ = std::make_unique<IoThreads>(1);
  try {
    live_ = std::make_unique<HttpServer>(live_io_->context(), *config_.listen, std::move(server));
  } catch (const std::exception& e) {
    live_io_.reset();
    throw std::runtime_error("output \"" + context().stage_name() + "\": " + e.what() +
                             "; set `listen` to a free address, or to \"\" to turn the live view off");
  }
  live_endpoint_ = live_->local_endpoint();
  if (config_.listen->host.empty())
    context().log().info("report: live view on port {} of every interface, at / and /api/summary",
                         live_endpoint_->port());
  else context().log().info("report: live view on {} (data at /api/summary)", url_of(*live_endpoint_));
}

void ReportOutput::stop_live() {
  if (!live_io_) return;
  live_io_->stop();  // joins its thread: no handler runs after this
  live_.reset();     // closes the listening socket and every connection still open
  live_io_.reset();  // and drops what was still queued for them
}

std::optional<boost::asio::ip::tcp::endpoint> ReportOutput::live_endpoint() const { return live_endpoint_; }

const std::string& ReportOutput::rendered(Rendered& slot, const std::function<std::string()>& render) {
  auto now = std::chrono::steady_clock::now();
  bool fresh = !slot.text.empty() &&
               (slot.verdicts == model_.totals().total || now - slot.at < std::chrono::seconds(1));
  if (!fresh) {
    slot.text = render();
    slot.verdicts = model_.totals().total;
    slot.at = now;
  }
  return slot.text;
}

HttpServer::Response ReportOutput::live_page() {
  std::string data;
  {
    std::lock_guard lock(mutex_);
    data = rendered(live_data_, [this] { return render_report_data(model_, config_, evaluate_goals(false)); });
  }
  // The page around the data is made without the lock: verdicts wait for the data only.
  return {200, render_html_page(config_, data, true), "text/html; charset=utf-8"};
}

HttpServer::Response ReportOutput::live_summary() {
  std::lock_guard lock(mutex_);
  std::string body = rendered(live_summary_, [this] {
    JsonWriter w;
    w.begin_object();
    w.field("title", config_.title);
    w.field("started", utc_time(started_at_));
    w.field("updated", utc_time(std::chrono::system_clock::now()));
    if (last_verdict_at_) w.field("last_verdict", utc_time(*last_verdict_at_));
    else w.key("last_verdict").null();
    w.key("totals");
    write_totals(w, model_.totals());
    w.field("noise_checks", model_.totals().noise_checks);
    w.field("tracked_paths", static_cast<std::uint64_t>(model_.tracked_paths()));
    w.field("untracked_paths", model_.untracked_paths());
    w.key("goals").begin_array();
    for (const auto& [goal, value] : evaluate_goals(false)) {
      w.begin_object();
      w.field("condition", goal.text);
      w.field("metric", goal.metric);
      if (value) {
        w.field("value", *value);
        w.field("shown", format_metric(goal, *value));
      } else {
        w.key("value").null();
        w.key("shown").null();
      }
      w.field("missed", value && goal_holds(goal, *value));
      w.end_object();
    }
    w.end_array();
    w.key("endpoints").begin_array();
    for (const auto& [name, endpoint] : model_.endpoints()) {
      w.begin_object();
      w.field("name", name);
      w.key("totals");
      write_totals(w, endpoint.totals);
      w.field("paths", static_cast<std::uint64_t>(model_.paths_of(name).size()));
      w.end_object();
    }
    w.end_array();
    w.end_object();
    return w.take() + "\n";
  });
  return {200, std::move(body), kJson};
}

HttpServer::Response ReportOutput::live_paths(std::string_view query) {
  auto form = parse_form(query);
  auto endpoint = parameter(form, "endpoint");
  std::lock_guard lock(mutex_);
  std::vector<const PathStats*> paths;
  if (endpoint) {
    if (!model_.endpoints().count(*endpoint))
      return json_error(404, "no endpoint " + quote_for_message(*endpoint) + " in the report (see /api/summary)");
    paths = model_.paths_of(*endpoint);
  } else {
    paths = model_.top_paths(model_.tracked_paths());
  }
  std::stable_sort(paths.begin(), paths.end(), [](auto* a, auto* b) { return a->count > b->count; });
  JsonWriter w;
  w.begin_object();
  if (endpoint) w.field("endpoint", *endpoint);
  else w.key("endpoint").null();
  w.key("paths").begin_array();
  for (const PathStats* p : paths) {
    w.begin_object();
    w.field("endpoint", p->endpoint);
    w.field("comparator", p->comparator);
    w.field("path", p->path);
    write_path_counts(w, *p);
    w.field("samples", static_cast<std::uint64_t>(p->samples.size()));
    w.end_object();
  }
  w.end_array();
  w.field("untracked_paths", model_.untracked_paths());
  w.end_object();
  return {200, w.take() + "\n", kJson};
}

HttpServer::Response ReportOutput::live_samples(std::string_view query) {
  auto form = parse_form(query);
  auto endpoint = parameter(form, "endpoint"), path = parameter(form, "path");
  auto comparator = parameter(form, "comparator");
  for (const auto& [name, value] : {std::pair{"endpoint", &endpoint}, std::pair{"path", &path}})
    if (!*value)
      return json_error(400, std::string("missing parameter \"") + name +
                                 "\": /api/samples?endpoint=E&path=P[&comparator=C], names as /api/paths lists them");
  std::lock_guard lock(mutex_);
  if (!model_.endpoints().count(*endpoint))
    return json_error(404, "no endpoint " + quote_for_message(*endpoint) + " in the report (see /api/summary)");
  std::vector<const PathStats*> found;
  for (const PathStats* p : model_.paths_of(*endpoint))
    if (p->path == *path && (!comparator || p->comparator == *comparator)) found.push_back(p);
  if (found.empty())
    return json_error(404, "no difference at path " + quote_for_message(*path) +
                               (comparator ? " by comparator " + quote_for_message(*comparator) : std::string()) +
                               " for endpoint " + quote_for_message(*endpoint) + " (see /api/paths?endpoint=...)");
  JsonWriter w;
  w.begin_object();
  w.field("endpoint", *endpoint);
  w.field("path", *path);
  w.key("comparators").begin_array();
  for (const PathStats* p : found) {
    w.begin_object();
    w.field("comparator", p->comparator);
    write_path_counts(w, *p);
    w.key("samples").begin_array();
    for (const auto& sample : p->samples) write_sample(w, sample);
    w.end_array();
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return {200, w.take() + "\n", kJson};
}

}  // namespace doppel::plugins
