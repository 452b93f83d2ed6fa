-- wrk script for the herenow bench. Arguments after `--`:
--   mode      beat (random visitor from a pool) | seed (each visitor of a range once) | count
--             | healthz (GET /healthz)
--   from, to  visitor indexes: the pool (beat) or the range (seed) is [from, to)
--   prefix    8 hex digits that keep one run's visitors apart from another's
--   origin    the Origin header (the demo site's allowed origin)
-- A visitor i is the uuid v4 PREFIX-0000-4000-8000-<i as 12 hex digits>, with one tab "t<i>"
-- on one of five pages. Bodies are generated per request (no fixed body).
-- done() prints one line: BENCH {json} with requests, errors, latency percentiles (µs).
local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local mode, from, to, prefix, origin
local next_i, stride, sent, got, bad, goal
local pages = { "/", "/pricing", "/docs", "/blog/post", "/about" }

function init(args)
  mode = args[1] or "beat"
  from = tonumber(args[2] or "0")
  to = tonumber(args[3] or "100")
  prefix = args[4] or "b3e7a1c0"
  origin = args[5] or "http://127.0.0.1"
  local nthreads = tonumber(args[6] or "1")
  math.randomseed(os.time() * 1000 + id * 7919)
  next_i = from + (id - 1)
  stride = nthreads
  sent, got, bad = 0, 0, 0
  goal = 0
  if mode == "seed" then
    -- this thread's share of [from, to)
    for i = from + (id - 1), to - 1, nthreads do goal = goal + 1 end
  end
end

local function beat_body(i)
  return string.format(
    '{"site":"demo","visitor":"%s-0000-4000-8000-%012x","tab":"t%d","page":"%s","state":"%s"}',
    prefix, i, i, pages[(i % 5) + 1], (i % 7 == 0) and "idle" or "active")
end

local beat_headers = { ["Content-Type"] = "text/plain;charset=UTF-8" }
local count_headers = {}

function request()
  beat_headers["Origin"] = origin
  if mode == "count" then
    return wrk.format("GET", "/v1/count?site=demo", count_headers)
  end
  if mode == "healthz" then
    return wrk.format("GET", "/healthz", count_headers)
  end
  local i
  if mode == "seed" then
    i = next_i
    if i < to then next_i = next_i + stride else i = from + math.random(0, to - from - 1) end
  else
    i = from + math.random(0, to - from - 1)
  end
  sent = sent + 1
  return wrk.format("POST", "/v1/heartbeat", beat_headers, beat_body(i))
end

function response(status, headers, body)
  got = got + 1
  if status ~= 200 then
    bad = bad + 1
    if bad <= 3 then io.stderr:write("wrk: HTTP " .. status .. " " .. string.sub(body or "", 1, 200) .. "\n") end
  end
  wrk.thread:set("bad", bad)
  wrk.thread:set("got", got)
  if mode == "seed" and got >= goal then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local bad_total = 0
  for _, t in ipairs(threads) do bad_total = bad_total + (t:get("bad") or 0) end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"non200":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"status_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, bad_total, e.connect, e.read, e.write, e.timeout,
    e.status, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
