-- wrk script for test/bench/run.sh, phase (c): each request asks for a
-- random window of the file with a single Range header.
--   wrk ... -s wrk-window.lua URL -- FILE_BYTES WINDOW_BYTES SEED
-- The same SEED gives both servers the same offset sequence per thread.
-- At the end one line "BENCHJSON {...}" carries the counters for run.sh.
local threads_made = 0

-- setup() runs in the main Lua state; thread:set() makes a global in the thread's own state.
function setup(thread)
  threads_made = threads_made + 1
  thread:set("bench_thread", threads_made)
end

local file_bytes, window, span

function init(args)
  file_bytes = assert(tonumber(args[1]), "FILE_BYTES missing")
  window = math.min(tonumber(args[2]) or 1048576, file_bytes)
  span = file_bytes - window + 1
  math.randomseed((tonumber(args[3]) or 1) + 104729 * (bench_thread or 0))
end

function request()
  local first = math.floor(math.random() * span)
  local hdr = { Range = string.format("bytes=%.0f-%.0f", first, first + window - 1) }
  return wrk.format("GET", nil, hdr)
end

dofile(os.getenv("BENCH_LIB") .. "/wrk-report.lua")
