-- Shared by the wrk scripts of test/bench/run.sh: print the run's counters as
-- one JSON line prefixed with BENCHJSON (latencies in microseconds).
function done(summary, latency, requests)
  local e = summary.errors
  io.write("BENCHJSON ", string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%.0f,'
      .. '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,'
      .. '"lat_p50_us":%d,"lat_p99_us":%d,"lat_max_us":%d}',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max), "\n")
end
