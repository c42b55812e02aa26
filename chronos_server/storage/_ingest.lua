-- Store one batch of executions for one tenant, idempotently, and update its metrics and
-- read indexes.
--
-- KEYS[1]  the tenant's jobs hash; every key touched shares its hash tag {t:<tenant>}
-- ARGV[1]  key prefix of the tenant, e.g. "chronos:{t:abc}:"
-- ARGV[2]  execution TTL (ms)      ARGV[3] now (ms)
-- ARGV[4..6] TTL (s) of minute, hour and day buckets
-- ARGV[7]  hours covered by a rolling summary    ARGV[8] its TTL (s)
-- then 5 values per event: execId, jobId, job version (or ""), "<status> <startedAt ms>
--   <duration ms or -> <histogram index>", and the value to store: "R" (running) or "F"
--   (final) followed by the event JSON
-- Returns a string with one digit per event: 0 duplicate, 1 new, 2 completed a stored
-- `running` one (a string is cheaper for the caller to read than a list of integers).
--
-- Rolling summaries (`r:<jobId>`, `rt` for the tenant; see `_window.lua`) hold the sum of the
-- hour buckets from their `from` hour over ARGV[7] hours, and their histogram (`rh:<jobId>`,
-- `rth`). A final run is added to one when its hour is inside that span; one that does not
-- exist yet is left to the reader to build.
--
-- Where the time goes: Redis commands cost more than Lua table work, so the loop over the
-- events only stores each execution, queues its index entries and adds it to one group per
-- (job, minute, version); after the loop the groups are added up per metrics key, and each
-- key is written with one HMGET and one HSET (counters, sums, extremes computed here: the
-- script runs atomically), whatever the number of fields; an EXPIRE only when the key is new
-- or its TTL is due for renewal (see RENEW). A rolling summary's `from` comes with its HMGET.
-- The read indexes are not trimmed here but by the periodic purge.
local prefix = ARGV[1]
-- Numbers passed to Redis go as strings where they came as strings (ARGV): Redis would format
-- a Lua number with printf, a cost that adds up over thousands of arguments.
local ttl_text, ttl = ARGV[2], tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local minute_ttl, hour_ttl, day_ttl = ARGV[4], ARGV[5], ARGV[6]
local span = tonumber(ARGV[7]) * 3600
local rolling_ttl = ARGV[8]
local version_ttl = string.format('%d', math.floor(ttl / 1000))
local FIRST, STRIDE = 9, 5
local all_index = prefix .. 'all'
local status_prefix = prefix .. 's:'
local call, floor, format, unpack = redis.call, math.floor, string.format, unpack
local match = string.match

-- A number as stored in a hash: exact (Redis would write a Lua number with 14 digits), and
-- cheaply when it is a whole number (most are: counts, and durations in whole ms).
local function num(value)
  if value == floor(value) and value > -1e15 and value < 1e15 then
    return format('%d', value)
  end
  return format('%.17g', value)
end

-- Field names, made once each.
local hist_names = setmetatable({}, {__index = function(t, index)
  local name = 'h:' .. index
  t[index] = name
  return name
end})
local count_names = setmetatable({}, {__index = function(t, status)
  local name = 'c:' .. status
  t[status] = name
  return name
end})

-- (started, execId) ordering of the read indexes: is a after b?
local function later(a_started, a_id, b_started, b_id)
  return a_started > b_started or (a_started == b_started and a_id >= b_id)
end

-- `command key <values...>`, at most CHUNK values a call (unpack has a limit).
local CHUNK = 1000
local function call_chunked(command, key, values)
  for first = 1, #values, CHUNK do
    local last = math.min(first + CHUNK - 1, #values)
    call(command, key, unpack(values, first, last))
  end
end

-- Index entries are gathered per sorted set and written after the loop, many per ZADD.
local entries, completed = {}, {}
local job_entries = {} -- job id -> its index's entries
local all_entries = {}
entries[all_index] = all_entries
local statuses, latest = {}, {}

-- groups[jobId][minute][version] = {c = {status -> n}, dn, ds, lo, hi, h = {index -> n},
--   first, last}: the final runs of the batch, added up.
local groups = {}

local result = {}
local n_all = 0
for i = FIRST, #ARGV, STRIDE do
  local exec_id, job_id, version, value = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 4]
  local status, started_text, duration_text, hist =
    match(ARGV[i + 3], '^(%a+) (-?%d+) (%S+) (%d+)$')
  local started = tonumber(started_text)
  local final = status ~= 'running'
  local key = prefix .. 'x:' .. exec_id
  -- New (the common case): one SET. Otherwise only a final run may replace a `running` one.
  local code = 1
  if not call('SET', key, value, 'PX', ttl_text, 'NX') then
    code = 0
    if final and call('GETRANGE', key, 0, 0) == 'R' then
      call('SET', key, value, 'PX', ttl_text)
      code = 2
    end
  end
  if code > 0 then
    local list = job_entries[job_id]
    if list == nil then
      list = {}
      job_entries[job_id] = list
    end
    list[#list + 1] = started_text
    list[#list + 1] = exec_id
    all_entries[n_all + 1] = started_text
    all_entries[n_all + 2] = exec_id
    n_all = n_all + 2
    local by_status = statuses[status]
    if by_status == nil then
      by_status = {}
      statuses[status] = by_status
    end
    by_status[#by_status + 1] = started_text
    by_status[#by_status + 1] = exec_id
    if code == 2 then completed[#completed + 1] = exec_id end
    local best = latest[job_id]
    if best == nil or later(started, exec_id, best[1], best[2]) then
      latest[job_id] = {started, exec_id, status}
    end
    if final then
      local seconds = floor(started / 1000)
      local minute = seconds - seconds % 60
      local by_job = groups[job_id]
      if by_job == nil then
        by_job = {}
        groups[job_id] = by_job
      end
      local by_minute = by_job[minute]
      if by_minute == nil then
        by_minute = {}
        by_job[minute] = by_minute
      end
      local group = by_minute[version]
      if group == nil then
        group = {c = {}, dn = 0, ds = 0, h = {}, first = started, last = started}
        by_minute[version] = group
      else
        if started < group.first then group.first = started end
        if started > group.last then group.last = started end
      end
      local c = group.c
      c[status] = (c[status] or 0) + 1
      if duration_text ~= '-' then
        local duration = tonumber(duration_text)
        group.dn = group.dn + 1
        group.ds = group.ds + duration
        local lo, hi = group.lo, group.hi
        if lo == nil or duration < lo then group.lo = duration end
        if hi == nil or duration > hi then group.hi = duration end
        local h = group.h
        h[hist] = (h[hist] or 0) + 1
      end
    end
  end
  result[#result + 1] = code
end
result = table.concat(result)

for job_id, list in pairs(job_entries) do entries[prefix .. 'j:' .. job_id] = list end
for status, list in pairs(statuses) do entries[status_prefix .. status] = list end
for key, list in pairs(entries) do
  if #list > 0 then call_chunked('ZADD', key, list) end
end
-- A `running` entry completed in this batch leaves its index after being added to it.
if #completed > 0 then call_chunked('ZREM', status_prefix .. 'running', completed) end

-- Metrics: every key's increments, then one read and one write per key.
local sums, order, expiry = {}, {}, {}

-- Add group `g` to the sums `s` (histogram fields only when `with_hist`).
local function accumulate(s, g, with_hist)
  local c = s.c
  for status, n in pairs(g.c) do c[status] = (c[status] or 0) + n end
  if g.dn > 0 then
    s.dn = s.dn + g.dn
    s.ds = s.ds + g.ds
    if s.lo == nil or g.lo < s.lo then s.lo = g.lo end
    if s.hi == nil or g.hi > s.hi then s.hi = g.hi end
    if with_hist then
      local h = s.h
      for index, n in pairs(g.h) do h[index] = (h[index] or 0) + n end
    end
  end
end

local function empty() return {c = {}, dn = 0, ds = 0, h = {}} end

-- Add group `g` to the sums of `key`, a key that gets `seconds` of TTL when new.
local function add(key, g, seconds)
  local s = sums[key]
  if s == nil then
    s = empty()
    sums[key] = s
    order[#order + 1] = key
    expiry[key] = seconds
  end
  accumulate(s, g, true)
  return s
end

-- Rolling summaries: key -> {dense key, {{hour, group}, ...}}, written after the buckets (a
-- group counts only when its hour is inside the summary's span, known once `from` is read).
local rolling, rolling_order = {}, {}
local function roll(key, dense, hour, g)
  local r = rolling[key]
  if r == nil then
    r = {dense, {}}
    rolling[key] = r
    rolling_order[#rolling_order + 1] = key
  end
  local parts = r[2]
  parts[#parts + 1] = {hour, g}
end

local tenant_keys = {} -- minute -> the tenant's minute, hour and day keys, then the jobs'
-- key prefixes
local versions_seen = {}
-- Time buckets keep the TTL they got when created (their start is at most the time of their
-- first write, so they live at least as long as promised). Summaries and versions are renewed
-- (see RENEW below).
local fixed_ttl, renewed_ttl = {}, {}
for job_id, by_job in pairs(groups) do
  local job_part = ':' .. job_id
  for minute, by_minute in pairs(by_job) do
    local hour = minute - minute % 3600
    local day = minute - minute % 86400
    local tk = tenant_keys[minute]
    if tk == nil then
      local m, h, d = format('%d', minute), format('%d', hour), format('%d', day)
      tk = {prefix .. 'mt:m:' .. m, prefix .. 'mt:h:' .. h, prefix .. 'mt:d:' .. d,
            prefix .. 'mj:m:' .. m, prefix .. 'mj:h:' .. h, prefix .. 'mj:d:' .. d}
      tenant_keys[minute] = tk
    end
    local job_minute = tk[4] .. job_part
    local job_hour = tk[5] .. job_part
    local job_day = tk[6] .. job_part
    for version, g in pairs(by_minute) do
      add(job_minute, g, minute_ttl)
      add(job_hour, g, hour_ttl)
      add(job_day, g, day_ttl)
      add(tk[1], g, minute_ttl)
      add(tk[2], g, hour_ttl)
      add(tk[3], g, day_ttl)
      fixed_ttl[job_minute], fixed_ttl[job_hour], fixed_ttl[job_day] = true, true, true
      fixed_ttl[tk[1]], fixed_ttl[tk[2]], fixed_ttl[tk[3]] = true, true, true
      roll(prefix .. 'r:' .. job_id, prefix .. 'rh:' .. job_id, hour, g)
      roll(prefix .. 'rt', prefix .. 'rth', hour, g)
      if version ~= '' then
        local version_key = prefix .. 'mv:' .. job_id .. ':' .. version
        local s = add(version_key, g, version_ttl)
        if s.first == nil or g.first < s.first then s.first = g.first end
        if s.last == nil or g.last > s.last then s.last = g.last end
        versions_seen[version_key] = {job_id, version}
        renewed_ttl[version_key] = true
      end
    end
  end
end

-- The fields of sums `s`: names, values, their number and how many of them are extremes.
-- Extremes come first, as (lowest, highest) pairs, then the counters and sums.
local function fields_of(s)
  local names, values, n = {}, {}, 0
  if s.dn > 0 then
    names[1], names[2], values[1], values[2], n = 'dmin', 'dmax', s.lo, s.hi, 2
  end
  if s.first ~= nil then
    names[n + 1], names[n + 2], values[n + 1], values[n + 2] = 'first', 'last', s.first, s.last
    n = n + 2
  end
  local extremes = n
  for status, count in pairs(s.c) do
    n = n + 1
    names[n], values[n] = count_names[status], count
  end
  if s.dn > 0 then
    names[n + 1], names[n + 2], values[n + 1], values[n + 2] = 'dn', 'ds', s.dn, s.ds
    n = n + 2
    for index, count in pairs(s.h) do
      n = n + 1
      names[n], values[n] = hist_names[index], count
    end
  end
  return names, values, n, extremes
end

-- HSET arguments that add the first `n` fields to their `stored` values (extremes replace
-- them when they beat them), and whether any of them was stored.
local function merged(names, values, n, extremes, stored)
  local update, m = {}, 0
  local existed = false
  for i = 1, extremes do
    local value, current = values[i], tonumber(stored[i])
    if current ~= nil then existed = true end
    if current == nil or (i % 2 == 1 and value < current) or (i % 2 == 0 and value > current) then
      update[m + 1], update[m + 2] = names[i], num(value)
      m = m + 2
    end
  end
  for i = extremes + 1, n do
    local value, current = values[i], stored[i]
    if current then
      existed = true
      value = tonumber(current) + value
    end
    update[m + 1], update[m + 2] = names[i], num(value)
    m = m + 2
  end
  return update, m, existed
end

-- Versions and summaries live for a TTL after their last write. Rather than an EXPIRE on every
-- write, the TTL is set RENEW seconds longer than that, and the time of that renewal is kept in
-- the hash (field `x`, read with the other fields): a write renews only when the last renewal
-- is RENEW or more old, so every write is still followed by at least the TTL.
local RENEW = 3600
local now_s = floor(now / 1000)
local now_text = format('%d', now_s)
local function due(stored_x)
  local x = tonumber(stored_x)
  return x == nil or now_s - x >= RENEW or now_s < x
end

-- One HMGET and one HSET per key.
local existing, renewed = {}, {}
for _, key in ipairs(order) do
  local names, values, n, extremes = fields_of(sums[key])
  local renewable = renewed_ttl[key]
  if renewable then names[n + 1] = 'x' end
  local stored = call('HMGET', key, unpack(names))
  local update, m, existed = merged(names, values, n, extremes, stored)
  if renewable then
    if due(stored[n + 1]) then
      update[m + 1], update[m + 2] = 'x', now_text
      expiry[key] = expiry[key] + RENEW
      renewed[key] = true
    else
      expiry[key] = nil
    end
  end
  call('HSET', key, unpack(update))
  if existed then
    existing[key] = true
    if fixed_ttl[key] then expiry[key] = nil end
  end
end

-- Rolling summaries: one HMGET (`from`, `x` and the fields), one HSET, one BITFIELD on the
-- histogram string for the groups inside the span; nothing when the summary does not exist.
local rolling_renewed = tonumber(rolling_ttl) + RENEW
for _, key in ipairs(rolling_order) do
  local r = rolling[key]
  local dense, parts = r[1], r[2]
  local total = empty()
  for _, part in ipairs(parts) do accumulate(total, part[2], false) end
  local names, values, n, extremes = fields_of(total)
  names[n + 1], names[n + 2] = 'from', 'x'
  local stored = call('HMGET', key, unpack(names))
  local from, stored_x = tonumber(stored[n + 1]), stored[n + 2]
  if from then
    local inside = {}
    for _, part in ipairs(parts) do
      if part[1] >= from and part[1] < from + span then inside[#inside + 1] = part[2] end
    end
    if #inside > 0 then
      if #inside < #parts then
        -- Some groups fall outside the span: the sums of the others, and their stored values.
        local by_name = {}
        for i = 1, n do by_name[names[i]] = stored[i] end
        local s = empty()
        for _, g in ipairs(inside) do accumulate(s, g, false) end
        names, values, n, extremes = fields_of(s)
        stored = {}
        for i = 1, n do stored[i] = by_name[names[i]] or false end
      end
      local update, m = merged(names, values, n, extremes, stored)
      local renew = due(stored_x)
      if renew then update[m + 1], update[m + 2] = 'x', now_text end
      call('HSET', key, unpack(update))
      local counters, any = {}, false
      for _, g in ipairs(inside) do
        if g.dn > 0 then
          for index, c in pairs(g.h) do
            counters[index] = (counters[index] or 0) + c
            any = true
          end
        end
      end
      if any then
        local ops = {'OVERFLOW', 'SAT'}
        for index, c in pairs(counters) do
          ops[#ops + 1] = 'INCRBY'
          ops[#ops + 1] = 'u32'
          ops[#ops + 1] = '#' .. index
          ops[#ops + 1] = c
        end
        call('BITFIELD', dense, unpack(ops))
      end
      -- The two keys of a summary live and expire together (`_window.lua` creates both).
      if renew then
        call('EXPIRE', key, rolling_renewed)
        call('EXPIRE', dense, rolling_renewed)
      end
    end
  end
end

for key, seconds in pairs(expiry) do
  call('EXPIRE', key, seconds)
end

-- Each job's set of versions, renewed (for RENEW ms more than a version's metrics) with any of
-- them, so it outlives them; a version whose metrics existed is in it already.
local version_sets = {}
for version_key, seen in pairs(versions_seen) do
  local set = prefix .. 'vs:' .. seen[1]
  if not existing[version_key] then call('SADD', set, seen[2]) end
  if renewed[version_key] then version_sets[set] = true end
end
local set_ttl = format('%d', ttl + RENEW * 1000)
for set, _ in pairs(version_sets) do call('PEXPIRE', set, set_ttl) end

-- The latest run of each job: "startedMs|status|execId", one HMGET and one HSET.
local last_runs = prefix .. 'last'
local job_ids = {}
for job_id, _ in pairs(latest) do job_ids[#job_ids + 1] = job_id end
for first = 1, #job_ids, CHUNK do
  local last = math.min(first + CHUNK - 1, #job_ids)
  local stored = call('HMGET', last_runs, unpack(job_ids, first, last))
  local update = {}
  for i = first, last do
    local job_id = job_ids[i]
    local best = latest[job_id]
    local replace = true
    local found = stored[i - first + 1]
    if found then
      local s_started, _, s_id = string.match(found, '^(%d+)|([^|]*)|(.*)$')
      replace = later(best[1], best[2], tonumber(s_started), s_id)
    end
    if replace then
      update[#update + 1] = job_id
      update[#update + 1] = format('%d', best[1]) .. '|' .. best[3] .. '|' .. best[2]
    end
  end
  if #update > 0 then call('HSET', last_runs, unpack(update)) end
end

-- Executions expire by TTL. Their index entries are trimmed by age by the periodic purge
-- (`RedisTelemetryStore.purge_expired`), not here: readers skip entries whose execution
-- expired, and an index holds at most what arrives in one purge interval beyond the retention.
return result
