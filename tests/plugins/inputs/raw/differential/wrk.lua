-- wrk script of the differential pairing harness: every request gets a fresh X-Req-Id
-- ("w<thread>-<n>", path = paths[n % #paths + 1]); each thread stops once `quota` responses
-- came back (a few more requests may be in flight then) and writes the ids it got back
-- (X-Echo-Id) to <log_prefix><thread>.got, then leaves <log_prefix><thread>.done.
-- usage: wrk -s wrk.lua URL -- QUOTA_PER_THREAD LOG_PREFIX
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

paths = {
  {"/s/small.txt", nil},
  {"/s/1k.bin", nil},
  {"/204", nil},
  {"/gz/text.txt", "gzip"},
  {"/chunked", nil},
  {"/s/small.txt", "ims"},
  {"/s/8k.bin", nil},
}

function init(args)
  quota = tonumber(args[1])
  log_prefix = args[2]
  got_file = io.open(log_prefix .. tid .. ".got", "w")
  sent = 0
  received = 0
end

function request()
  local p = paths[sent % #paths + 1]
  local id = "w" .. tid .. "-" .. sent
  sent = sent + 1
  local headers = {["X-Req-Id"] = id}
  if p[2] == "gzip" then headers["Accept-Encoding"] = "gzip" end
  if p[2] == "ims" then headers["If-Modified-Since"] = "Tue, 01 Jan 2099 00:00:00 GMT" end
  return wrk.format("GET", p[1] .. "?w=" .. id, headers)
end

function response(status, headers, body)
  local echo = headers["X-Echo-Id"]
  if echo then got_file:write(echo, "\n") end
  received = received + 1
  if received % 1000 == 0 then got_file:flush() end
  if received == quota then
    -- wrk itself runs until its -d duration: run.sh stops it (SIGINT) once every thread left
    -- its <log_prefix><thread>.done marker.
    got_file:flush()
    io.open(log_prefix .. tid .. ".done", "w"):close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("sent") end
  io.write(string.format("wrk_sent %d\n", total))
end
