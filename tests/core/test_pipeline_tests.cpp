#include "core_test_support.hpp"
#include "pipeline_test.hpp"

using namespace doppel;
using namespace doppel::core;

namespace {
const char* kPipeline = R"([pipeline]
name = "robots"
[inputs.src]
plugin = "canned"
[filters.keep]
plugin = "keep"
from = ["src"]
contains = "/v2/robot/"
[outputs.out]
plugin = "collect"
from = ["keep"]
path = "/dev/null"

[[tests]]
name = "keeps robot endpoints"
[[tests.inputs]]
stage = "keep"
id = "a"
payload = "POST /v2/robot/query HTTP/1.1\r\nHost: x\r\n\r\n"
[[tests.inputs]]
stage = "keep"
kind = "response"
id = "a"
payload = "HTTP/1.1 200 OK\r\n\r\n"
[[tests.outputs]]
stage = "keep"
kind = "request"
count = 1
method = "POST"
path = "/v2/robot/query"
header = "Host: x"
[[tests.outputs]]
stage = "keep"
kind = "response"
status = 200

[[tests]]
name = "drops everything else"
[[tests.inputs]]
stage = "keep"
payload = "GET /health HTTP/1.1\r\n\r\n"
[[tests.outputs]]
stage = "keep"
count = 0

[[tests]]
name = "a wrong expectation fails"
[[tests.inputs]]
stage = "keep"
payload = "GET /health HTTP/1.1\r\n\r\n"
[[tests.outputs]]
stage = "keep"
contains = ["/health"]
)";
}  // namespace

TEST_CASE("doppel test runs each [[tests]] block and reports passes and failures") {
  std::vector<ConfigError> errors;
  auto spec = load_pipeline_text(kPipeline, "p.toml", errors);
  REQUIRE(spec);
  auto outcomes = run_pipeline_tests(*spec, testing::test_registry(), errors);
  REQUIRE_MESSAGE(errors.empty(), errors.front().what());
  REQUIRE(outcomes.size() == 3);
  CHECK(outcomes[0].passed);
  CHECK(outcomes[1].passed);
  CHECK_FALSE(outcomes[2].passed);
  REQUIRE(outcomes[2].failures.size() == 1);
  CHECK(outcomes[2].failures[0] ==
        "stage \"keep\": expected at least one matching message(s), got 0 (of 0 emitted)");
  std::string xml = junit_xml("robots", outcomes);
  CHECK(xml.find("<testsuite name=\"robots\" tests=\"3\" failures=\"1\"") != std::string::npos);
  CHECK(xml.find("<testcase classname=\"robots\" name=\"a wrong expectation fails\"") != std::string::npos);
  CHECK(xml.find("<failure message=\"stage &quot;keep&quot;: expected at least one") != std::string::npos);
}

TEST_CASE("a test naming an unknown stage is a configuration error with its position") {
  std::vector<ConfigError> errors;
  auto spec = load_pipeline_text(std::string(kPipeline) + R"(
[[tests]]
name = "typo"
[[tests.inputs]]
stage = "kep"
payload = "GET / HTTP/1.1\r\n\r\n"
)",
                                 "p.toml", errors);
  REQUIRE(spec);
  run_pipeline_tests(*spec, testing::test_registry(), errors);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].position().to_string() == "p.toml:58:1");
  CHECK(std::string(errors[0].what()) == "no stage named \"kep\"; did you mean \"keep\"?");
}
