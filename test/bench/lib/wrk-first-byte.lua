-- wrk script for test/bench/run.sh, phase (d): tiny requests, each a GET of
-- the first byte only (wrk cannot drive HEAD), so the figure is the per-request
-- overhead of the server: parsing, lookup, headers, open/close.
wrk.method = "GET"
wrk.headers["Range"] = "bytes=0-0"

dofile(os.getenv("BENCH_LIB") .. "/wrk-report.lua")
