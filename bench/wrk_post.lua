-- wrk script of bench/ingest.py: POST a JSON body with one credential header (a bearer token
-- or a session cookie), count every answer's status and every request written, and print one
-- JSON line (prefixed WRK_JSON) when done.
-- Usage: wrk ... -s bench/wrk_post.lua URL -- BODY_FILE HEADER_NAME HEADER_VALUE

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local body_path, credential_name, credential_value = args[1], args[2], args[3]
  local file = assert(io.open(body_path, "rb"))
  local body = file:read("*a")
  file:close()
  local headers = {}
  headers[credential_name] = credential_value
  headers["Content-Type"] = "application/json"
  prepared = wrk.format("POST", nil, headers, body)
  sent = 0
  statuses = {}
end

function request()
  sent = sent + 1
  return prepared
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
