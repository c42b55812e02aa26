-- Metrics of several scopes over a window, in one call.
--
-- KEYS[1]  the tenant's jobs hash (only to route the call to the tenant's slot)
-- ARGV[1]  key prefix of the tenant     ARGV[2] mode:
--   "b"  merge buckets: ARGV[3] number of buckets n, ARGV[4 .. 3+n] buckets as
--        "<resolution>:<start>", then the scopes (job ids; "" = tenant)
--   "r"  read rolling summaries: ARGV[3] first hour (epoch s), ARGV[4] hours covered,
--        ARGV[5] TTL (s) of a summary, then the scopes
-- Returns a JSON array, one object per scope, empty when it had no runs, else
--   {"c": {status: count}, "dn": n, "ds": sum, "dmin": ms, "dmax": ms,
--    "h": [index, count, index, count, ...]}
--
-- A rolling summary (`r:<jobId>`, `rt` for the tenant) is a hash in the layout of a bucket
-- (except that its histogram fields are bare indexes, `12` for `h:12`) holding the sum of the hour buckets of its span [from, from + hours), kept up to date by
-- `_ingest.lua`. A minimum cannot be subtracted, so the extremes of each hour are kept too
-- (`rx:<jobId>`, `rtx`: `n:<hour>`, `x:<hour>`) and the summary's `dmin`/`dmax` are those of
-- its span. When the span asked for differs, the summary is moved: the hour buckets leaving
-- the span are subtracted, those entering added (hour buckets outlive the span by weeks, so
-- both are exact); when the two spans do not overlap, or the summary is missing, it is
-- rebuilt from the hour buckets.
local prefix = ARGV[1]
local mode = ARGV[2]
local out = {}

local byte, sub, concat, format = string.byte, string.sub, table.concat, string.format

-- JSON of one scope from the flat field/value list of a summary (values as strings, as Redis
-- returns them). This loop runs for every field of every scope, so it makes no string it
-- does not need: histogram fields (bare indexes) are told apart by their first byte.
local function emit(flat)
  local hist, nh, parts, np, counts, nc = {}, 0, {}, 0, {}, 0
  for i = 1, #flat, 2 do
    local field = flat[i]
    local first = byte(field, 1)
    if first < 58 then -- a digit: histogram index
      hist[nh + 1] = field
      hist[nh + 2] = flat[i + 1]
      nh = nh + 2
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
  parts[np + 2] = '"h":[' .. concat(hist, ',') .. ']'
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
    out[#out + 1] = emit(flatten(summary_fields(merged)))
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

-- Add (sign 1) or subtract (sign -1) the hour bucket `hour` of `scope` to `state`, and set
-- or clear that hour's extremes in `hours`.
local function apply(state, hours, scope, hour, sign)
  local key
  if scope == '' then
    key = prefix .. 'mt:h:' .. hour
  else
    key = prefix .. 'mj:h:' .. hour .. ':' .. scope
  end
  local low, high = 'n:' .. hour, 'x:' .. hour
  hours[low], hours[high] = nil, nil
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do
    local field, value = flat[i], tonumber(flat[i + 1])
    if field == 'dmin' then
      if sign > 0 then hours[low] = value end
    elseif field == 'dmax' then
      if sign > 0 then hours[high] = value end
    else
      if string.byte(field, 1) == 104 then field = string.sub(field, 3) end -- 'h:<index>'
      state[field] = (state[field] or 0) + sign * value
    end
  end
end

local function write(key, fields, expire)
  local flat = flatten(fields)
  redis.call('DEL', key)
  if #flat > 0 then
    redis.call('HSET', key, unpack(flat))
    redis.call('EXPIRE', key, expire)
  end
end

-- Store a moved or rebuilt summary: its sums without zeros, its extremes from the hours'.
local function save(key, hours_key, state, hours)
  if (state['dn'] or 0) <= 0 then state['dn'], state['ds'] = nil, nil end
  for field, value in pairs(state) do
    if value == 0 then state[field] = nil end
  end
  state['dmin'], state['dmax'] = nil, nil
  for field, value in pairs(hours) do
    if string.sub(field, 1, 1) == 'n' then
      if state['dmin'] == nil or value < state['dmin'] then state['dmin'] = value end
    elseif state['dmax'] == nil or value > state['dmax'] then
      state['dmax'] = value
    end
  end
  state['from'] = from
  write(key, state, ttl)
  write(hours_key, hours, ttl)
end

for s = 6, #ARGV do
  local scope = ARGV[s]
  local key, hours_key
  if scope == '' then
    key, hours_key = prefix .. 'rt', prefix .. 'rtx'
  else
    key, hours_key = prefix .. 'r:' .. scope, prefix .. 'rx:' .. scope
  end
  local stored = tonumber(redis.call('HGET', key, 'from'))
  if stored == from then
    out[#out + 1] = emit(redis.call('HGETALL', key))
  else
    local state, hours
    if stored == nil or math.abs(stored - from) >= span then
      state, hours = {}, {}
      for hour = from, last, 3600 do apply(state, hours, scope, hour, 1) end
    else
      state, hours = read_hash(key), read_hash(hours_key)
      for hour = stored, stored + span - 3600, 3600 do
        if hour < from or hour > last then apply(state, hours, scope, hour, -1) end
      end
      for hour = from, last, 3600 do
        if hour < stored or hour >= stored + span then apply(state, hours, scope, hour, 1) end
      end
    end
    save(key, hours_key, state, hours)
    out[#out + 1] = emit(flatten(state))
  end
end
return '[' .. table.concat(out, ',') .. ']'
