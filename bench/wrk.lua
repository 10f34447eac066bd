-- wrk script for bench.py: the request comes from the environment, and the
-- figures are printed as one JSON line that bench.py reads.
--   BENCH_TOKEN      the apikey
--   BENCH_METHOD     GET or POST
--   BENCH_BODY_FILE  for POST, the file holding the body

wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.headers["apikey"] = os.getenv("BENCH_TOKEN")

local body_file = os.getenv("BENCH_BODY_FILE")
if body_file then
  local file = assert(io.open(body_file, "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = "application/json"
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, '
      .. '"timeout": %d}}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
