#include <doctest/doctest.h>

#include <thread>

#include "doppel/testing.hpp"
#include "json_scalars.hpp"
#include "request_sites.hpp"
#include "value_source.hpp"
#include "value_table.hpp"

using namespace doppel;
using namespace doppel::plugins;
using doppel::testing::make_message;
using namespace std::chrono_literals;

namespace {

const PluginDefinition& correlate_plugin() { return testing::linked_plugin("correlate"); }

std::string http_request(const std::string& method, const std::string& target, const std::string& headers = "",
                         const std::string& body = "") {
  std::string out = method + " " + target + " HTTP/1.1\r\nHost: a\r\n" + headers;
  if (!body.empty()) out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return out + "\r\n" + body;
}

std::string http_response(const std::string& body, const std::string& headers = "", int status = 200) {
  return "HTTP/1.1 " + std::to_string(status) + " OK\r\n" + headers + "Content-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

ValueSource source(const std::string& text) {
  std::string error;
  auto s = parse_value_source(text, &error);
  REQUIRE_MESSAGE(s, error);
  return *s;
}

RequestSite site(const std::string& text) {
  std::string error;
  auto s = parse_request_site(text, &error);
  REQUIRE_MESSAGE(s, error);
  return *s;
}

std::vector<std::string> values_of(const std::string& from, const std::string& response) {
  Message m(Kind::response, "x", 0, response);
  return extract_values(source(from), m, 64);
}

// A fixed table of original -> replacement, as a rule's table would give it.
class FixedLookup : public ValueLookup {
 public:
  explicit FixedLookup(std::map<std::string, std::string> values) : values_(std::move(values)) {}
  const std::string* exact(std::string_view original) const override {
    auto it = values_.find(std::string(original));
    return it == values_.end() ? nullptr : &it->second;
  }
  void starting_with(std::string_view run, std::vector<std::string_view>& out) const override {
    for (const auto& [k, v] : values_)
      if (first_word_run(k) == run) out.push_back(k);
  }

 private:
  std::map<std::string, std::string> values_;
};

// The request after substituting `values` at the sites `in` (empty: anywhere).
std::string substituted(const std::string& request, const std::vector<std::string>& in,
                        std::map<std::string, std::string> values) {
  FixedLookup lookup(std::move(values));
  Message m(Kind::request, "x", 0, request);
  std::vector<Edit> edits;
  if (in.empty()) find_edits(RequestSite{}, m.http(), m.payload, lookup, 0, edits);
  for (const auto& s : in) find_edits(site(s), m.http(), m.payload, lookup, 0, edits);
  std::vector<const Edit*> applied;
  return apply_edits(m.payload, m.http(), edits, applied);
}

Value rule(std::initializer_list<std::pair<std::string, Value>> fields) { return Value::table(fields); }

}  // namespace

TEST_CASE("from: JSON paths give strings and integers, in document order") {
  auto body = R"({"token":"t-1","user":{"id":42},"items":[{"id":"a"},{"id":"b"}],"ok":true,"f":1.5})";
  CHECK(values_of("json:token", http_response(body)) == std::vector<std::string>{"t-1"});
  CHECK(values_of("json:$.user.id", http_response(body)) == std::vector<std::string>{"42"});
  CHECK(values_of("json:items[*].id", http_response(body)) == std::vector<std::string>{"a", "b"});
  CHECK(values_of("json:ok", http_response(body)).empty());   // booleans are not ids
  CHECK(values_of("json:f", http_response(body)).empty());    // nor floats
  CHECK(values_of("json:items.id", http_response(body)).empty());  // exact paths, never substrings
  CHECK(values_of("json:token", http_response("not json")).empty());
}

TEST_CASE("from: headers, Set-Cookie cookies and regex captures") {
  auto response = http_response("<input name=\"csrf\" value=\"c5rf\"> and value=\"second\"",
                                "X-Auth-Token: tok-9\r\nSet-Cookie: other=1; Path=/\r\n"
                                "Set-Cookie: SID=\"s-77\"; HttpOnly\r\n");
  CHECK(values_of("header:x-auth-token", response) == std::vector<std::string>{"tok-9"});
  CHECK(values_of("cookie:SID", response) == std::vector<std::string>{"s-77"});
  CHECK(values_of("cookie:sid", response).empty());  // cookie names are case-sensitive
  CHECK(values_of("regex:value=\"([^\"]+)\"", response) == std::vector<std::string>{"c5rf", "second"});
  CHECK(values_of("header:Missing", response).empty());
}

TEST_CASE("from and in: malformed forms are refused with a reason") {
  std::string error;
  CHECK_FALSE(parse_value_source("token", &error));
  CHECK(error.find("json:PATH") != std::string::npos);
  CHECK_FALSE(parse_value_source("regex:abc", &error));
  CHECK(error.find("exactly one capture group") != std::string::npos);
  CHECK_FALSE(parse_value_source("regex:(a)(b)", &error));
  CHECK_FALSE(parse_value_source("regex:(", &error));
  CHECK_FALSE(parse_value_source("json:a[", &error));
  CHECK_FALSE(parse_value_source("body:x", &error));
  CHECK_FALSE(parse_request_site("path:0", &error));
  CHECK_FALSE(parse_request_site("path:x", &error));
  CHECK_FALSE(parse_request_site("query:a", &error));
  CHECK_FALSE(parse_request_site("header", &error));
  CHECK(parse_request_site("path:2", &error)->segment == 2);
  CHECK(parse_request_site("anywhere", &error)->type == RequestSite::Type::anywhere);
}

TEST_CASE("in: a header replaces whole tokens only") {
  auto request = http_request("GET", "/me", "Authorization: Bearer OLD\r\nX-Other: OLD\r\n");
  CHECK(substituted(request, {"header:authorization"}, {{"OLD", "NEW"}}) ==
        http_request("GET", "/me", "Authorization: Bearer NEW\r\nX-Other: OLD\r\n"));
  // OLDER contains OLD but is another token.
  auto longer = http_request("GET", "/me", "Authorization: Bearer OLDER\r\n");
  CHECK(substituted(longer, {"header:Authorization"}, {{"OLD", "NEW"}}) == longer);
  // A JWT-like value with dots is one value.
  auto jwt = http_request("GET", "/me", "Authorization: Bearer h.p.s\r\n");
  CHECK(substituted(jwt, {"header:Authorization"}, {{"h.p.s", "H.P.S"}, {"h", "x"}}) ==
        http_request("GET", "/me", "Authorization: Bearer H.P.S\r\n"));
}

TEST_CASE("in: cookies, query and form parameters, path segments") {
  auto cookie = http_request("GET", "/", "Cookie: a=1; SID=old; b=old\r\n");
  CHECK(substituted(cookie, {"cookie:SID"}, {{"old", "new"}}) == http_request("GET", "/", "Cookie: a=1; SID=new; b=old\r\n"));

  auto query = http_request("GET", "/find?id=o%201&other=o%201");
  CHECK(substituted(query, {"param:id"}, {{"o 1", "n/2"}}) == http_request("GET", "/find?id=n%2F2&other=o%201"));

  std::string form_body = "user=u&order=old1";
  auto form = http_request("POST", "/pay", "Content-Type: application/x-www-form-urlencoded\r\n", form_body);
  CHECK(substituted(form, {"param:order"}, {{"old1", "new-longer"}}) ==
        http_request("POST", "/pay", "Content-Type: application/x-www-form-urlencoded\r\n", "user=u&order=new-longer"));

  auto path = http_request("GET", "/orders/abc/items/abc?x=abc");
  CHECK(substituted(path, {"path:2"}, {{"abc", "xyz"}}) == http_request("GET", "/orders/xyz/items/abc?x=abc"));
  CHECK(substituted(path, {"path"}, {{"abc", "xyz"}}) == http_request("GET", "/orders/xyz/items/xyz?x=abc"));
}

TEST_CASE("in: JSON body paths edit strings and numbers in place and fix Content-Length") {
  std::string body = R"({"order_id": 17, "note": "id 17", "items": [{"ref": "r\/1"}, {"ref": "r2"}]})";
  auto request = http_request("POST", "/pay", "Content-Type: application/json\r\n", body);
  std::string expected = R"({"order_id": 123456, "note": "id 17", "items": [{"ref": "R\"1"}, {"ref": "r2"}]})";
  CHECK(substituted(request, {"json:order_id", "json:items[*].ref"}, {{"17", "123456"}, {"r/1", "R\"1"}}) ==
        http_request("POST", "/pay", "Content-Type: application/json\r\n", expected));
  // A number replaced by a value that is not a number becomes a string.
  CHECK(substituted(request, {"json:order_id"}, {{"17", "ord-9"}}).find(R"("order_id": "ord-9")") != std::string::npos);
  // Chunked bodies are not edited (their bytes are not what the server reads).
  std::string chunked = "POST /pay HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{\"a\":1}\r\n0\r\n\r\n";
  CHECK(substituted(chunked, {"json:a"}, {{"1", "2"}}) == chunked);
}

TEST_CASE("in: anywhere means whole tokens in the target, header values and body, never framing headers") {
  std::string body = R"({"order":"42","n":420})";
  auto request = http_request("POST", "/orders/42?ref=42", "X-Order: 42\r\n", body);  // body is 22 bytes
  auto out = substituted(request, {}, {{"42", "9001"}, {"22", "x"}});
  CHECK(out == "POST /orders/9001?ref=9001 HTTP/1.1\r\nHost: a\r\nX-Order: 9001\r\nContent-Length: 24\r\n\r\n"
               R"({"order":"9001","n":420})");
}

TEST_CASE("JSON scanner: paths and spans of scalars; malformed input stops the scan") {
  std::vector<std::string> seen;
  std::string text = R"({"a":[1,{"b":"x\"y"}],"c":-2.5e3,"d":null})";
  CHECK(scan_json_scalars(text, [&](const json::ConcretePath& p, const JsonScalar& s) {
    seen.push_back(json::format_path(p) + "=" + s.value + "@" + text.substr(s.begin, s.end - s.begin));
  }));
  CHECK(seen == std::vector<std::string>{"a[0]=1@1", "a[1].b=x\"y@x\\\"y", "c=-2.5e3@-2.5e3"});
  CHECK_FALSE(scan_json_scalars(R"({"a":)", [](const auto&, const auto&) {}));
  CHECK_FALSE(scan_json_scalars(std::string(1000, '['), [](const auto&, const auto&) {}));
}

TEST_CASE("value table: scopes, least recently used eviction, expiry, unused values") {
  using Clock = ValueTable::Clock;
  auto t0 = Clock::now();
  ValueTable table(2, 10s);
  table.learn("s1", "a", "A1", t0);
  table.learn("s2", "a", "A2", t0);
  CHECK(*table.use("s1", "a", t0) == "A1");
  CHECK(*table.use("s2", "a", t0) == "A2");
  CHECK(table.use("s3", "a", t0) == nullptr);
  table.use("s1", "a", t0 + 1s);  // s2's entry is now the least recently used
  auto removed = table.learn("s1", "b", "B", t0 + 2s);
  CHECK(removed.evicted == 1);
  CHECK(removed.unused == 0);  // it had been used
  CHECK(table.use("s2", "a", t0 + 2s) == nullptr);
  CHECK(table.unused() == 1);  // b
  std::vector<std::string_view> starts;
  table.starting_with("s1", "b", starts);
  CHECK(starts.size() == 1);
  // b was learned at +2s, a last used at +1s: a expires first.
  auto expired = table.expire(t0 + 11500ms);
  CHECK(expired.expired == 1);
  CHECK(expired.unused == 0);
  CHECK(table.use("s1", "a", t0 + 11500ms) == nullptr);
  expired = table.expire(t0 + 13s);
  CHECK(expired.expired == 1);
  CHECK(expired.unused == 1);  // b was never used: a miss
  CHECK(table.size() == 0);
}

// ---- the stage ----

namespace {

struct Exchange {
  std::string id, client;
};

MessagePtr login_request(const std::string& id, const std::string& client) {
  return make_message(Kind::request, http_request("POST", "/login", "X-Client: " + client + "\r\n"), id);
}
MessagePtr login_response(Kind kind, const std::string& id, const std::string& token) {
  return make_message(kind, http_response("{\"token\":\"" + token + "\"}", "Content-Type: application/json\r\n"), id);
}
MessagePtr me_request(const std::string& id, const std::string& client, const std::string& token) {
  return make_message(Kind::request,
                      http_request("GET", "/me", "X-Client: " + client + "\r\nAuthorization: Bearer " + token + "\r\n"),
                      id);
}

Value token_pipeline(std::initializer_list<std::pair<std::string, Value>> extra = {},
                     const std::string& scope = "session") {
  Value options = Value::table({{"session", "header:X-Client"},
                                {"rule", Value::array({rule({{"name", "token"},
                                                             {"from", "json:token"},
                                                             {"in", Value::array({"header:Authorization"})},
                                                             {"scope", scope.c_str()}})})}});
  for (auto& e : extra) options.as_table().push_back(e);
  return options;
}

std::vector<MessagePtr> requests_in(const std::vector<MessagePtr>& messages) {
  std::vector<MessagePtr> out;
  for (const auto& m : messages)
    if (m->kind == Kind::request) out.push_back(m);
  return out;
}

bool has_header(const MessagePtr& m, const std::string& line) { return m->payload.find(line) != std::string::npos; }

}  // namespace

TEST_CASE("stage: a session's next request waits for the replay that defines its token, then carries it") {
  testing::StageHarness h(correlate_plugin(), token_pipeline());
  h.process(login_request("L1", "alice"));
  h.process(login_response(Kind::response, "L1", "orig-A"));
  h.process(me_request("M1", "alice", "orig-A"));  // held: L1's replay is not back
  h.process(login_request("L2", "bob"));             // another session flows
  CHECK(requests_in(h.emitted()).size() == 2);
  CHECK(h.counter("held").value() == 1);
  CHECK(h.stage().pending() == 3);  // one held, two sessions awaiting a replay
  h.process(login_response(Kind::replay, "L1", "new-A"));
  auto requests = requests_in(h.emitted());
  REQUIRE(requests.size() == 3);
  CHECK(requests[2]->id == "M1");
  CHECK(has_header(requests[2], "Authorization: Bearer new-A\r\n"));
  CHECK(h.counter("substituted.token").value() == 1);
  CHECK(h.counter("learned.token").value() == 1);
  // Every message is passed on: two requests, the original and the replay of L1, then M1.
  CHECK(h.emitted().size() == 5);
  h.stop();
}

TEST_CASE("stage: a token appearing in two sessions maps per session; a global rule takes the latest") {
  for (std::string scope : {"session", "global"}) {
    CAPTURE(scope);
    testing::StageHarness h(correlate_plugin(), token_pipeline({}, scope));
    // Both sessions got the same original token (e.g. a shared service account).
    for (std::string client : {"alice", "bob"}) {
      h.process(login_request("L-" + client, client));
      h.process(login_response(Kind::response, "L-" + client, "same"));
      h.process(login_response(Kind::replay, "L-" + client, "new-" + client));
    }
    h.process(me_request("M-alice", "alice", "same"));
    h.process(me_request("M-bob", "bob", "same"));
    h.process(me_request("M-carol", "carol", "same"));  // a session that never logged in
    auto requests = requests_in(h.emitted());
    REQUIRE(requests.size() == 5);
    if (scope == "session") {
      CHECK(has_header(requests[2], "Bearer new-alice\r\n"));
      CHECK(has_header(requests[3], "Bearer new-bob\r\n"));
      CHECK(has_header(requests[4], "Bearer same\r\n"));
    } else {
      CHECK(has_header(requests[2], "Bearer new-bob\r\n"));
      CHECK(has_header(requests[3], "Bearer new-bob\r\n"));
      CHECK(has_header(requests[4], "Bearer new-bob\r\n"));
    }
    h.stop();
  }
}

TEST_CASE("stage: a value that never appears in a request is counted as missed") {
  testing::StageHarness h(correlate_plugin(), token_pipeline());
  h.process(login_request("L1", "alice"));
  h.process(login_response(Kind::response, "L1", "orig"));
  h.process(login_response(Kind::replay, "L1", "new"));
  h.process(me_request("M1", "alice", "something-else"));
  CHECK(h.counter("substituted.token").value() == 0);
  h.stop();
  CHECK(h.counter("missed.token").value() == 1);
}

TEST_CASE("stage: a replay that never comes releases the session after hold_timeout, counted") {
  testing::StageHarness h(correlate_plugin(), token_pipeline({{"hold_timeout", "100ms"}}));
  h.process(login_request("L1", "alice"));
  h.process(login_response(Kind::response, "L1", "orig"));
  h.process(me_request("M1", "alice", "orig"));
  CHECK(requests_in(h.emitted()).size() == 1);
  REQUIRE(h.wait_until([&] { return requests_in(h.emitted()).size() == 2; }, 3s));
  CHECK(h.counter("hold_timeouts").value() == 1);
  CHECK(has_header(requests_in(h.emitted())[1], "Bearer orig\r\n"));  // released with what was known
  CHECK(h.stage().pending() == 1);  // M1 now awaits its own replay
  // The late replay changes nothing and is still passed on.
  h.process(login_response(Kind::replay, "L1", "new"));
  CHECK(h.emitted().back()->kind == Kind::replay);
  h.stop();
}

TEST_CASE("stage: an original response without any value ends the wait before the replay") {
  testing::StageHarness h(correlate_plugin(), token_pipeline());
  h.process(me_request("M1", "alice", "x"));
  h.process(me_request("M2", "alice", "x"));  // held behind M1
  CHECK(requests_in(h.emitted()).size() == 1);
  h.process(make_message(Kind::response, http_response("{\"name\":\"alice\"}"), "M1"));
  CHECK(requests_in(h.emitted()).size() == 2);
  h.stop();
}

TEST_CASE("stage: rule paths limit which exchanges are waited for") {
  Value options = Value::table({{"session", "header:X-Client"},
                                {"rule", Value::array({rule({{"from", "json:token"}, {"path", "^/login$"}})})}});
  testing::StageHarness h(correlate_plugin(), options);
  h.process(me_request("M1", "alice", "x"));
  h.process(me_request("M2", "alice", "x"));  // /me defines nothing: no wait
  CHECK(requests_in(h.emitted()).size() == 2);
  h.process(login_request("L1", "alice"));
  h.process(me_request("M3", "alice", "x"));  // waits for /login's replay
  CHECK(requests_in(h.emitted()).size() == 3);
  h.stop();
  CHECK(h.dropped("shutdown") == 1);
}

TEST_CASE("stage: max_held bounds held requests; the oldest goes on first, in order") {
  testing::StageHarness h(correlate_plugin(), token_pipeline({{"max_held", 2}}));
  h.process(login_request("L1", "alice"));
  for (int i = 1; i <= 4; ++i) h.process(me_request("M" + std::to_string(i), "alice", "t"));
  auto requests = requests_in(h.emitted());
  REQUIRE(requests.size() == 3);
  CHECK(requests[1]->id == "M1");
  CHECK(requests[2]->id == "M2");
  CHECK(h.counter("held_overflow").value() == 2);
  h.stop();
}

TEST_CASE("stage: learned values expire after value_ttl and are counted") {
  testing::StageHarness h(correlate_plugin(), token_pipeline({{"value_ttl", "50ms"}}));
  h.process(login_request("L1", "alice"));
  h.process(login_response(Kind::response, "L1", "orig"));
  h.process(login_response(Kind::replay, "L1", "new"));
  std::this_thread::sleep_for(150ms);
  h.process(me_request("M1", "alice", "orig"));
  CHECK(has_header(requests_in(h.emitted()).back(), "Bearer orig\r\n"));
  CHECK(h.counter("expired.token").value() == 1);
  CHECK(h.counter("missed.token").value() == 1);
  h.stop();
}

TEST_CASE("stage: max_values evicts the least recently used value of a rule") {
  testing::StageHarness h(correlate_plugin(), token_pipeline({{"max_values", 1}}));
  for (std::string client : {"alice", "bob"}) {
    h.process(login_request("L-" + client, client));
    h.process(login_response(Kind::response, "L-" + client, "orig-" + client));
    h.process(login_response(Kind::replay, "L-" + client, "new-" + client));
  }
  CHECK(h.counter("evicted.token").value() == 1);
  h.process(me_request("M-alice", "alice", "orig-alice"));
  h.process(me_request("M-bob", "bob", "orig-bob"));
  auto requests = requests_in(h.emitted());
  CHECK(has_header(requests[2], "Bearer orig-alice\r\n"));
  CHECK(has_header(requests[3], "Bearer new-bob\r\n"));
  h.stop();
}

TEST_CASE("stage: table gauges stay within max_values and max_exchanges; sessions are forgotten once done") {
  testing::StageHarness h(correlate_plugin(), token_pipeline({{"max_values", 3}, {"max_exchanges", 4}}));
  for (int i = 0; i < 10; ++i) {  // ten sessions learn a token each
    std::string client = "c" + std::to_string(i), id = "L" + std::to_string(i);
    h.process(login_request(id, client));
    h.process(login_response(Kind::response, id, "orig-" + client));
    h.process(login_response(Kind::replay, id, "new-" + client));
  }
  CHECK(h.gauge("table.values.token").value() == 3);
  CHECK(h.counter("evicted.token").value() == 7);
  CHECK(h.gauge("table.exchanges").value() == 0);
  CHECK(h.gauge("table.sessions").value() == 0);
  CHECK(h.gauge("awaiting_replays").value() == 0);
  // Ten logins whose replays never come: the exchanges table keeps four, the oldest given up.
  for (int i = 0; i < 10; ++i) h.process(login_request("W" + std::to_string(i), "w" + std::to_string(i)));
  CHECK(h.gauge("table.exchanges").value() == 4);
  CHECK(h.counter("exchanges_evicted").value() == 6);
  CHECK(h.gauge("table.sessions").value() == 4);
  CHECK(h.gauge("awaiting_replays").value() == 4);
  CHECK(h.stage().pending() == 4);
  h.stop();
}

TEST_CASE("stage: ids learned from a list are paired by position and replaced in paths") {
  Value options = Value::table(
      {{"session", "header:X-Client"},
       {"rule", Value::array({rule({{"name", "order"}, {"from", "json:orders[*].id"}, {"in", Value::array({"path:2"})}})})}});
  testing::StageHarness h(correlate_plugin(), options);
  h.process(make_message(Kind::request, http_request("GET", "/orders", "X-Client: a\r\n"), "O"));
  h.process(make_message(Kind::response, http_response(R"({"orders":[{"id":1},{"id":2}]})"), "O"));
  h.process(make_message(Kind::replay, http_response(R"({"orders":[{"id":71},{"id":72},{"id":73}]})"), "O"));
  CHECK(h.counter("learned.order").value() == 2);
  CHECK(h.counter("unpaired.order").value() == 1);
  h.process(make_message(Kind::request, http_request("GET", "/orders/2", "X-Client: a\r\n"), "G"));
  CHECK(requests_in(h.emitted()).back()->payload.starts_with("GET /orders/72 HTTP/1.1\r\n"));
  h.stop();
}

TEST_CASE("stage: a failed replay defines nothing but releases the session") {
  testing::StageHarness h(correlate_plugin(), token_pipeline());
  h.process(login_request("L1", "alice"));
  h.process(login_response(Kind::response, "L1", "orig"));
  h.process(me_request("M1", "alice", "orig"));
  Message failed(Kind::replay, "L1", 0, "");
  failed.meta.error = "refused";
  h.process(share(std::move(failed)));
  auto requests = requests_in(h.emitted());
  REQUIRE(requests.size() == 2);
  CHECK(has_header(requests[1], "Bearer orig\r\n"));
  CHECK(h.counter("unpaired.token").value() == 1);
  h.stop();
}

TEST_CASE("options: errors name the option") {
  auto error_of = [](Value options) -> std::string {
    try {
      testing::StageHarness h(correlate_plugin(), options);
    } catch (const ConfigError& e) {
      return e.key() + ": " + e.what();
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  CHECK(error_of(Value::table({{"rule", Value::array({rule({{"from", "token"}})})}})).find("from") != std::string::npos);
  CHECK(error_of(Value::table({{"rule", Value::array({rule({{"from", "json:a"}, {"in", "query:x"}})})}}))
            .find("unknown `in` kind") != std::string::npos);
  CHECK(error_of(Value::table({{"rule", Value::array({rule({{"from", "json:a"}, {"name", "a b"}})})}}))
            .find("rule names") != std::string::npos);
  CHECK(error_of(Value::table({{"rule", Value::array({rule({{"from", "json:a"}, {"name", "x"}}),
                                                      rule({{"from", "json:b"}, {"name", "x"}})})}}))
            .find("two rules") != std::string::npos);
  CHECK(error_of(Value::table({{"session", "ip"}, {"rule", Value::array({rule({{"from", "json:a"}})})}})) != "");
  CHECK(error_of(Value::table({{"rule", Value::array({rule({{"from", "json:a"}, {"scope", "world"}})})}})) != "");
  CHECK(error_of(Value::table({})).find("rule") != std::string::npos);
  CHECK(error_of(Value::table({{"rule", Value::array({rule({{"from", "json:a"}})})}})) == "");
}

TEST_CASE("stage: an original response that arrives while its request is held is kept for the pairing") {
  Value options = Value::table(
      {{"session", "header:X-Client"},
       {"rule", Value::array({rule({{"name", "order"}, {"from", "json:id"}, {"in", Value::array({"path:2"})}})})}});
  testing::StageHarness h(correlate_plugin(), options);
  auto create = [](const std::string& id) {
    return make_message(Kind::request, http_request("POST", "/orders", "X-Client: a\r\n", "{}"), id);
  };
  h.process(create("P1"));
  h.process(make_message(Kind::response, http_response(R"({"id":"o1"})"), "P1"));
  h.process(create("P2"));  // held behind P1
  h.process(make_message(Kind::response, http_response(R"({"id":"o2"})"), "P2"));  // as a recording has it
  h.process(make_message(Kind::replay, http_response(R"({"id":"n1"})"), "P1"));    // releases P2
  h.process(make_message(Kind::request, http_request("GET", "/orders/o2", "X-Client: a\r\n"), "G"));  // behind P2
  CHECK(requests_in(h.emitted()).size() == 2);
  h.process(make_message(Kind::replay, http_response(R"({"id":"n2"})"), "P2"));
  CHECK(h.counter("learned.order").value() == 2);
  CHECK(requests_in(h.emitted()).back()->payload.starts_with("GET /orders/n2 HTTP/1.1\r\n"));
  h.stop();
}
