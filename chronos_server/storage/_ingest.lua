-- Store one batch of executions for one tenant, idempotently, and update its metrics and
-- read indexes.
--
-- KEYS[1]  the tenant's jobs hash; every key touched shares its hash tag {t:<tenant>}
-- ARGV[1]  key prefix of the tenant, e.g. "chronos:{t:abc}:"
-- ARGV[2]  execution TTL (ms)      ARGV[3] now (ms)
-- ARGV[4..6] TTL (s) of minute, hour and day buckets
-- ARGV[7]  hours covered by a rolling summary    ARGV[8] its TTL (s)
-- then 8 values per event: execId, jobId, status, startedAt (ms), duration (ms or ""),
--   histogram index, job version (or ""), and the event JSON
-- Returns one code per event: 0 duplicate, 1 new, 2 completed a stored `running` one.
--
-- Rolling summaries (`r:<jobId>`, `rt` for the tenant; see `_window.lua`) hold the sum of the
-- hour buckets from their `from` hour over ARGV[7] hours, and their histogram (`rh:<jobId>`,
-- `rth`). A final run is added to one when its hour is inside that span; one that does not
-- exist yet is left to the reader to build.
local prefix = ARGV[1]
local ttl = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local resolutions = {{'m', 60, tonumber(ARGV[4])}, {'h', 3600, tonumber(ARGV[5])},
                     {'d', 86400, tonumber(ARGV[6])}}
local span = tonumber(ARGV[7]) * 3600
local rolling_ttl = tonumber(ARGV[8])
local FIRST, STRIDE = 9, 8
local all_index = prefix .. 'all'
local status_prefix = prefix .. 's:'

local counts, lows, highs, expiry = {}, {}, {}, {}
local jobs, statuses, latest, versions = {}, {}, {}, {}
local rolling_from, dense_counts = {}, {}

local function add(key, field, value)
  local fields = counts[key]
  if fields == nil then
    fields = {}
    counts[key] = fields
  end
  fields[field] = (fields[field] or 0) + value
end

local function extreme(into, key, field, value, smaller)
  local fields = into[key]
  if fields == nil then
    fields = {}
    into[key] = fields
  end
  local current = fields[field]
  if current == nil or (smaller and value < current) or (not smaller and value > current) then
    fields[field] = value
  end
end

-- Count one final run in a bucket (or summary) `key`: its histogram field is `hist` (nil for
-- a summary, whose histogram is a separate string: see `roll`).
local function account(key, status, duration, hist)
  add(key, 'c:' .. status, 1)
  if duration ~= nil then
    add(key, 'dn', 1)
    add(key, 'ds', duration)
    if hist ~= nil then add(key, hist, 1) end
    extreme(lows, key, 'dmin', duration, true)
    extreme(highs, key, 'dmax', duration, false)
  end
end

-- Add a final run of hour `hour` to the rolling summary `key` if its span holds that hour:
-- counts, sums and extremes in the hash `key`, the histogram in the string `dense`, one
-- unsigned 32-bit counter per index (BITFIELD).
local function roll(key, dense, hour, status, duration, hist)
  local from = rolling_from[key]
  if from == nil then
    from = tonumber(redis.call('HGET', key, 'from')) or false
    rolling_from[key] = from
  end
  if from and hour >= from and hour < from + span then
    account(key, status, duration, nil)
    -- The two keys of a summary live and expire together.
    expiry[key] = rolling_ttl
    expiry[dense] = rolling_ttl
    if duration ~= nil then
      local counters = dense_counts[dense]
      if counters == nil then
        counters = {}
        dense_counts[dense] = counters
      end
      counters[hist] = (counters[hist] or 0) + 1
    end
  end
end

-- (started, execId) ordering of the read indexes: is a after b?
local function later(a_started, a_id, b_started, b_id)
  return a_started > b_started or (a_started == b_started and a_id >= b_id)
end

-- Index entries are gathered per sorted set and written after the loop, many per ZADD.
local entries, completed = {}, {}
local function index(key, started, exec_id)
  local list = entries[key]
  if list == nil then
    list = {}
    entries[key] = list
  end
  list[#list + 1] = started
  list[#list + 1] = exec_id
end

-- `command key <values...>`, at most CHUNK values a call (unpack has a limit).
local CHUNK = 1000
local function call_chunked(command, key, values)
  for first = 1, #values, CHUNK do
    local last = math.min(first + CHUNK - 1, #values)
    redis.call(command, key, unpack(values, first, last))
  end
end

local result = {}
for i = FIRST, #ARGV, STRIDE do
  local exec_id, job_id, status = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local started = tonumber(ARGV[i + 3])
  local final = status ~= 'running'
  local key = prefix .. 'x:' .. exec_id
  local current = redis.call('GETRANGE', key, 0, 0)
  local code = 0
  if current == '' then
    code = 1
  elseif current == 'R' and final then
    code = 2
  end
  if code > 0 then
    redis.call('SET', key, (final and 'F' or 'R') .. ARGV[i + 7], 'PX', ttl)
    index(prefix .. 'j:' .. job_id, started, exec_id)
    index(all_index, started, exec_id)
    index(status_prefix .. status, started, exec_id)
    statuses[status] = true
    if code == 2 then completed[#completed + 1] = exec_id end
    jobs[job_id] = true
    local best = latest[job_id]
    if best == nil or later(started, exec_id, best[1], best[2]) then
      latest[job_id] = {started, exec_id, status}
    end
    if final then
      local duration = nil
      if ARGV[i + 4] ~= '' then duration = tonumber(ARGV[i + 4]) end
      local hist = ARGV[i + 5]
      local hist_field = 'h:' .. hist
      local seconds = math.floor(started / 1000)
      for _, r in ipairs(resolutions) do
        local bucket = tostring(seconds - seconds % r[2])
        local job_key = prefix .. 'mj:' .. r[1] .. ':' .. bucket .. ':' .. job_id
        local tenant_key = prefix .. 'mt:' .. r[1] .. ':' .. bucket
        account(job_key, status, duration, hist_field)
        account(tenant_key, status, duration, hist_field)
        expiry[job_key] = r[3]
        expiry[tenant_key] = r[3]
      end
      local hour = seconds - seconds % 3600
      roll(prefix .. 'r:' .. job_id, prefix .. 'rh:' .. job_id, hour, status, duration, hist)
      roll(prefix .. 'rt', prefix .. 'rth', hour, status, duration, hist)
      local version = ARGV[i + 6]
      if version ~= '' then
        local version_key = prefix .. 'mv:' .. job_id .. ':' .. version
        account(version_key, status, duration, hist_field)
        expiry[version_key] = math.floor(ttl / 1000)
        local seen = versions[version_key]
        if seen == nil then
          versions[version_key] = {started, started, job_id, version}
        else
          if started < seen[1] then seen[1] = started end
          if started > seen[2] then seen[2] = started end
        end
      end
    end
  end
  result[#result + 1] = code
end

for key, list in pairs(entries) do call_chunked('ZADD', key, list) end
-- A `running` entry completed in this batch leaves its index after being added to it.
if #completed > 0 then call_chunked('ZREM', status_prefix .. 'running', completed) end

for key, fields in pairs(counts) do
  for field, value in pairs(fields) do
    if field == 'ds' then
      redis.call('HINCRBYFLOAT', key, field, tostring(value))
    else
      redis.call('HINCRBY', key, field, value)
    end
  end
end

-- Extremes: one HMGET of the stored ones per key, one HSET of those this batch beats.
for key, low in pairs(lows) do
  local names, wanted = {}, {}
  for field, value in pairs(low) do
    names[#names + 1] = field
    wanted[#wanted + 1] = value
  end
  local n = #names
  for field, value in pairs(highs[key]) do
    names[#names + 1] = field
    wanted[#wanted + 1] = value
  end
  local stored = redis.call('HMGET', key, unpack(names))
  local update = {}
  for i = 1, #names do
    local current = tonumber(stored[i])
    local value = wanted[i]
    if current == nil or (i <= n and value < current) or (i > n and value > current) then
      update[#update + 1] = names[i]
      update[#update + 1] = tostring(value)
    end
  end
  if #update > 0 then redis.call('HSET', key, unpack(update)) end
end

-- Summary histograms: one BITFIELD per string, every counter it touches.
for key, counters in pairs(dense_counts) do
  local ops = {'OVERFLOW', 'SAT'}
  for index, n in pairs(counters) do
    ops[#ops + 1] = 'INCRBY'
    ops[#ops + 1] = 'u32'
    ops[#ops + 1] = '#' .. index
    ops[#ops + 1] = n
  end
  redis.call('BITFIELD', key, unpack(ops))
end

for key, seconds in pairs(expiry) do
  redis.call('EXPIRE', key, seconds)
end

-- Versions seen: first and last start of each, and the job's set of versions.
for key, seen in pairs(versions) do
  local first = tonumber(redis.call('HGET', key, 'first'))
  if first == nil or seen[1] < first then redis.call('HSET', key, 'first', seen[1]) end
  local last = tonumber(redis.call('HGET', key, 'last'))
  if last == nil or seen[2] > last then redis.call('HSET', key, 'last', seen[2]) end
  local set = prefix .. 'vs:' .. seen[3]
  redis.call('SADD', set, seen[4])
  redis.call('PEXPIRE', set, ttl)
end

-- The latest run of each job: "startedMs|status|execId".
local last_runs = prefix .. 'last'
for job_id, best in pairs(latest) do
  local stored = redis.call('HGET', last_runs, job_id)
  local replace = true
  if stored then
    local s_started, s_status, s_id = string.match(stored, '^(%d+)|([^|]*)|(.*)$')
    replace = later(best[1], best[2], tonumber(s_started), s_id)
  end
  if replace then
    redis.call('HSET', last_runs, job_id, best[1] .. '|' .. best[3] .. '|' .. best[2])
  end
end

-- Executions expire by TTL; their index entries are trimmed here, by age.
local horizon = '(' .. tostring(now - ttl)
for job_id, _ in pairs(jobs) do
  local index = prefix .. 'j:' .. job_id
  redis.call('ZREMRANGEBYSCORE', index, '-inf', horizon)
  redis.call('PEXPIRE', index, ttl)
end
if next(jobs) ~= nil then
  redis.call('ZREMRANGEBYSCORE', all_index, '-inf', horizon)
  redis.call('PEXPIRE', all_index, ttl)
  for status, _ in pairs(statuses) do
    redis.call('ZREMRANGEBYSCORE', status_prefix .. status, '-inf', horizon)
    redis.call('PEXPIRE', status_prefix .. status, ttl)
  end
end
return result
