-- Metrics of several scopes over a window, in one call.
--
-- KEYS[1]  the tenant's jobs hash (only to route the call to the tenant's slot)
-- ARGV[1]  key prefix of the tenant     ARGV[2] mode:
--   "b"  merge buckets: ARGV[3] number of buckets n, ARGV[4 .. 3+n] buckets as
--        "<resolution>:<start>", then the scopes (job ids; "" = tenant)
--   "r"  read rolling summaries: ARGV[3] first hour (epoch s), ARGV[4] hours covered,
--        ARGV[5] TTL (s) of a summary, then the scopes
-- Mode "b" returns a JSON array, one object per scope, empty when it had no runs, else
--   {"c": {status: count}, "dn": n, "ds": sum, "dmin": ms, "dmax": ms,
--    "h": [index, count, index, count, ...]}
-- Mode "r" returns an array: the same JSON without the "h" lists, then one histogram per
-- scope, as stored: a string of big-endian unsigned 32-bit counters, one per histogram index
-- from 0 (BITFIELD u32 #<index>), "" when there is none. Passed through untouched, it costs
-- Lua nothing per histogram bucket.
--
-- A rolling summary of a job (`r:<jobId>`, `rt` for the tenant) holds the sum of the hour
-- buckets of its span [from, from + hours): counts and sums in a hash (`from`, `c:<status>`,
-- `dn`, `ds`, `dmin`, `dmax`) and the histogram in a string (`rh:<jobId>`, `rth`, as above).
-- `_ingest.lua` adds each final run whose hour is in the span. When the span asked for
-- differs, the summary is moved: the hour buckets leaving the span are subtracted, those
-- entering added (hour buckets outlive the span by weeks, so both are exact); when the two
-- spans do not overlap, or the summary is missing, it is rebuilt from the hour buckets. A
-- minimum cannot be subtracted: a moved summary takes `dmin`/`dmax` from the hour buckets of
-- its new span (one HMGET each), and ingestion only lowers or raises them.
local prefix = ARGV[1]
local mode = ARGV[2]
local out = {}

local byte, sub, concat, format = string.byte, string.sub, table.concat, string.format

-- JSON of one scope from a flat field/value list (values as strings, histogram fields as
-- bare indexes): counts, sums and extremes, and the histogram as "h" when `with_hist`
-- (a rolling summary keeps its histogram in a string of its own). It runs for every field of
-- every scope, so it makes no string it does not need: fields are told apart by their first
-- byte, and any other field (a summary's `from`, `x`) is left out.
local function emit(flat, with_hist)
  local hist, nh, parts, np, counts, nc = {}, 0, {}, 0, {}, 0
  for i = 1, #flat, 2 do
    local field = flat[i]
    local first = byte(field, 1)
    if first < 58 then -- a digit: histogram index
      if with_hist then
        hist[nh + 1] = field
        hist[nh + 2] = flat[i + 1]
        nh = nh + 2
      end
    elseif first == 99 then -- 'c:<status>'
      nc = nc + 1
      counts[nc] = '"' .. sub(field, 3) .. '":' .. flat[i + 1]
    elseif first == 100 then -- dn, ds, dmin, dmax
      np = np + 1
      parts[np] = '"' .. field .. '":' .. flat[i + 1]
    end
  end
  if nc == 0 then return '{}' end
  parts[np + 1] = '"c":{' .. concat(counts, ',') .. '}'
  if with_hist then parts[np + 2] = '"h":[' .. concat(hist, ',') .. ']' end
  return '{' .. concat(parts, ',') .. '}'
end

-- A field -> number table as a flat field/value list, numbers written exactly.
local function flatten(fields)
  local flat, n = {}, 0
  for field, value in pairs(fields) do
    flat[n + 1] = field
    flat[n + 2] = format('%.17g', value)
    n = n + 2
  end
  return flat
end

-- Bucket fields renamed as in a summary: `h:<index>` becomes `<index>`.
local function summary_fields(fields)
  local renamed = {}
  for field, value in pairs(fields) do
    if string.byte(field, 1) == 104 then -- 'h:<index>'
      renamed[string.sub(field, 3)] = value
    else
      renamed[field] = value
    end
  end
  return renamed
end

if mode == 'b' then
  local n = tonumber(ARGV[3])
  for s = 4 + n, #ARGV do
    local scope = ARGV[s]
    local merged = {}
    for b = 4, 3 + n do
      local key
      if scope == '' then
        key = prefix .. 'mt:' .. ARGV[b]
      else
        key = prefix .. 'mj:' .. ARGV[b] .. ':' .. scope
      end
      local flat = redis.call('HGETALL', key)
      for i = 1, #flat, 2 do
        local field, value = flat[i], tonumber(flat[i + 1])
        local current = merged[field]
        if current == nil then
          merged[field] = value
        elseif field == 'dmin' then
          if value < current then merged[field] = value end
        elseif field == 'dmax' then
          if value > current then merged[field] = value end
        else
          merged[field] = current + value
        end
      end
    end
    out[#out + 1] = emit(flatten(summary_fields(merged)), true)
  end
  return '[' .. table.concat(out, ',') .. ']'
end

local from = tonumber(ARGV[3])
local span = tonumber(ARGV[4]) * 3600
local ttl = tonumber(ARGV[5])
local last = from + span - 3600

local function read_hash(key)
  local flat = redis.call('HGETALL', key)
  local fields = {}
  for i = 1, #flat, 2 do
    fields[flat[i]] = tonumber(flat[i + 1])
  end
  return fields
end

local function hour_key(scope, hour)
  if scope == '' then return prefix .. 'mt:h:' .. hour end
  return prefix .. 'mj:h:' .. hour .. ':' .. scope
end

-- Add (sign 1) or subtract (sign -1) the hour bucket `hour` of `scope`: sums to `state`,
-- histogram to `delta` (index -> change). Extremes are not summed (see `save`).
local function apply(state, delta, scope, hour, sign)
  local flat = redis.call('HGETALL', hour_key(scope, hour))
  for i = 1, #flat, 2 do
    local field, value = flat[i], tonumber(flat[i + 1])
    local first = byte(field, 1)
    if first == 104 then -- 'h:<index>'
      local index = sub(field, 3)
      delta[index] = (delta[index] or 0) + sign * value
    elseif field ~= 'dmin' and field ~= 'dmax' then
      state[field] = (state[field] or 0) + sign * value
    end
  end
end

-- Store a moved or rebuilt summary: its sums without zeros, its extremes those of the hour
-- buckets of its span, its histogram changed by `delta` (on a fresh string when `rebuilt`).
local function save(key, dense_key, scope, state, delta, rebuilt)
  if (state['dn'] or 0) <= 0 then state['dn'], state['ds'] = nil, nil end
  for field, value in pairs(state) do
    if value == 0 then state[field] = nil end
  end
  local low, high = nil, nil
  for hour = from, last, 3600 do
    local extremes = redis.call('HMGET', hour_key(scope, hour), 'dmin', 'dmax')
    local a, b = tonumber(extremes[1]), tonumber(extremes[2])
    if a ~= nil and (low == nil or a < low) then low = a end
    if b ~= nil and (high == nil or b > high) then high = b end
  end
  -- `x` (when ingestion last renewed the TTL, see `_ingest.lua`) is dropped: the TTL set here
  -- may be shorter than the one it renewed, so the next write renews it.
  state['dmin'], state['dmax'], state['from'], state['x'] = low, high, from, nil
  local flat = flatten(state)
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(flat))
  redis.call('EXPIRE', key, ttl)
  if rebuilt then redis.call('DEL', dense_key) end
  local ops, n = {'OVERFLOW', 'SAT'}, 2
  for index, change in pairs(delta) do
    if change ~= 0 then
      ops[n + 1], ops[n + 2], ops[n + 3], ops[n + 4] = 'INCRBY', 'u32', '#' .. index, change
      n = n + 4
    end
  end
  -- The histogram string exists whenever the hash does (a zero counter when it has nothing):
  -- ingestion's BITFIELD then never creates one without a TTL.
  if n == 2 then ops[3], ops[4], ops[5], ops[6] = 'INCRBY', 'u32', '#0', 0 end
  redis.call('BITFIELD', dense_key, unpack(ops))
  redis.call('EXPIRE', dense_key, ttl)
end

-- Rolling mode returns an array: the JSON array of every scope's sums and extremes, then
-- each scope's histogram string (BITFIELD counters, big-endian u32 per index; may be "").
local hists = {}
for s = 6, #ARGV do
  local scope = ARGV[s]
  local key, dense_key
  if scope == '' then
    key, dense_key = prefix .. 'rt', prefix .. 'rth'
  else
    key, dense_key = prefix .. 'r:' .. scope, prefix .. 'rh:' .. scope
  end
  local flat = redis.call('HGETALL', key)
  local stored = nil
  for i = 1, #flat, 2 do
    if flat[i] == 'from' then stored = tonumber(flat[i + 1]) end
  end
  if stored ~= from then
    local state, delta = {}, {}
    local rebuilt = stored == nil or math.abs(stored - from) >= span
    if rebuilt then
      for hour = from, last, 3600 do apply(state, delta, scope, hour, 1) end
    else
      state = read_hash(key)
      for hour = stored, stored + span - 3600, 3600 do
        if hour < from or hour > last then apply(state, delta, scope, hour, -1) end
      end
      for hour = from, last, 3600 do
        if hour < stored or hour >= stored + span then apply(state, delta, scope, hour, 1) end
      end
    end
    save(key, dense_key, scope, state, delta, rebuilt)
    flat = flatten(state)
  end
  out[#out + 1] = emit(flat, false)
  hists[#hists + 1] = redis.call('GET', dense_key) or ''
end
local answer = {'[' .. concat(out, ',') .. ']'}
for i = 1, #hists do answer[i + 1] = hists[i] end
return answer
