-- Store one batch of executions for one tenant, idempotently, and update its metrics.
--
-- KEYS[1]  the tenant's jobs hash; every key touched shares its hash tag {t:<tenant>}
-- ARGV[1]  key prefix of the tenant, e.g. "chronos:{t:abc}:"
-- ARGV[2]  execution TTL (ms)      ARGV[3] now (ms)
-- ARGV[4..6] TTL (s) of minute, hour and day buckets
-- then 7 values per event: execId, jobId, status, startedAt (ms), duration (ms or ""),
--   histogram index, and the event JSON
-- Returns one code per event: 0 duplicate, 1 new, 2 completed a stored `running` one.
local prefix = ARGV[1]
local ttl = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local resolutions = {{'m', 60, tonumber(ARGV[4])}, {'h', 3600, tonumber(ARGV[5])},
                     {'d', 86400, tonumber(ARGV[6])}}
local FIRST, STRIDE = 7, 7

local counts, mins, maxs, expiry = {}, {}, {}, {}
local jobs = {}

local function add(key, field, value)
  local fields = counts[key]
  if fields == nil then
    fields = {}
    counts[key] = fields
  end
  fields[field] = (fields[field] or 0) + value
end

local function account(key, status, duration, hist)
  add(key, 'c:' .. status, 1)
  if duration ~= nil then
    add(key, 'dn', 1)
    add(key, 'ds', duration)
    add(key, 'h:' .. hist, 1)
    if mins[key] == nil or duration < mins[key] then mins[key] = duration end
    if maxs[key] == nil or duration > maxs[key] then maxs[key] = duration end
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
    redis.call('SET', key, (final and 'F' or 'R') .. ARGV[i + 6], 'PX', ttl)
    redis.call('ZADD', prefix .. 'j:' .. job_id, started, exec_id)
    jobs[job_id] = true
    if final then
      local duration = nil
      if ARGV[i + 4] ~= '' then duration = tonumber(ARGV[i + 4]) end
      local seconds = math.floor(started / 1000)
      for _, r in ipairs(resolutions) do
        local bucket = tostring(seconds - seconds % r[2])
        local job_key = prefix .. 'mj:' .. r[1] .. ':' .. bucket .. ':' .. job_id
        local tenant_key = prefix .. 'mt:' .. r[1] .. ':' .. bucket
        account(job_key, status, duration, ARGV[i + 5])
        account(tenant_key, status, duration, ARGV[i + 5])
        expiry[job_key] = r[3]
        expiry[tenant_key] = r[3]
      end
    end
  end
  result[#result + 1] = code
end

for key, fields in pairs(counts) do
  for field, value in pairs(fields) do
    if field == 'ds' then
      redis.call('HINCRBYFLOAT', key, field, tostring(value))
    else
      redis.call('HINCRBY', key, field, value)
    end
  end
  local low = mins[key]
  if low ~= nil then
    local stored = tonumber(redis.call('HGET', key, 'dmin'))
    if stored == nil or low < stored then redis.call('HSET', key, 'dmin', tostring(low)) end
    local high = maxs[key]
    stored = tonumber(redis.call('HGET', key, 'dmax'))
    if stored == nil or high > stored then redis.call('HSET', key, 'dmax', tostring(high)) end
  end
  redis.call('EXPIRE', key, expiry[key])
end

-- Executions expire by TTL; their index entries are trimmed here, by age.
for job_id, _ in pairs(jobs) do
  local index = prefix .. 'j:' .. job_id
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. tostring(now - ttl))
  redis.call('PEXPIRE', index, ttl)
end
return result
