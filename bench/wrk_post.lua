-- wrk script of bench/ingest.py and bench/events.py: POST a JSON body with one credential
-- header (a bearer token or a session cookie), count every answer's status and every request
-- written, and print one JSON line (prefixed WRK_JSON) when done. With "seeded", each request
-- carries an event id seed of its own, as Inngest's SDKs send once per send:
-- x-inngest-event-id-seed: <ms>,<base64 of 10 bytes>.
-- Usage: wrk ... -s bench/wrk_post.lua URL -- BODY_FILE HEADER_NAME HEADER_VALUE [seeded]

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_number", counter)
  table.insert(threads, thread)
end

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- Base64 of a string whose length is a multiple of 3 less 2 (the seed's 10 bytes).
local function base64(bytes)
  local out = {}
  for i = 1, #bytes, 3 do
    local a, b, c = bytes:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    for k = 3, 0, -1 do
      local index = math.floor(n / (64 ^ k)) % 64
      out[#out + 1] = alphabet:sub(index + 1, index + 1)
    end
  end
  local padding = (3 - #bytes % 3) % 3
  return table.concat(out):sub(1, #out - padding) .. string.rep("=", padding)
end

local function be32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end

function init(args)
  local body_path, credential_name, credential_value = args[1], args[2], args[3]
  local file = assert(io.open(body_path, "rb"))
  body = file:read("*a")
  file:close()
  headers = {}
  headers[credential_name] = credential_value
  headers["Content-Type"] = "application/json"
  prepared = wrk.format("POST", nil, headers, body)
  seeded = args[4] == "seeded"
  -- A seed's entropy: the thread's number, a random byte, a request counter, then random
  -- bytes, the last four of which Inngest adds each event's position to: the sends of a run
  -- differ before those, so their events' ids never meet.
  math.randomseed(os.time() * 1000 + thread_number)
  prefix = string.char(thread_number % 256, math.random(0, 255))
  suffix = string.char(math.random(0, 255), math.random(0, 255), math.random(0, 127), 0)
  millis = os.time() * 1000
  sent = 0
  statuses = {}
end

function request()
  sent = sent + 1
  if not seeded then
    return prepared
  end
  headers["x-inngest-event-id-seed"] = millis .. "," .. base64(prefix .. be32(sent) .. suffix)
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total_sent, counts = 0, {}
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    parts[#parts + 1] = string.format('"%d":%d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"sent":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},"statuses":{%s}}\n',
    summary.requests, summary.duration, total_sent,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, table.concat(parts, ",")))
end
