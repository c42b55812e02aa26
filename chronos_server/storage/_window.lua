-- Merge the metrics buckets of several scopes over a window, in one call.
--
-- KEYS[1]  the tenant's jobs hash (only to route the call to the tenant's slot)
-- ARGV[1]  key prefix of the tenant     ARGV[2] number of buckets n
-- ARGV[3 .. 2+n]  buckets as "<resolution>:<start>", then the scopes (job ids; "" = tenant)
-- Returns a JSON array, one object per scope (empty when it had no runs): field -> value,
-- where dmin/dmax are the extremes and every other field the sum.
local prefix = ARGV[1]
local n = tonumber(ARGV[2])
local out = {}
for s = 3 + n, #ARGV do
  local scope = ARGV[s]
  local merged = {}
  local empty = true
  for b = 3, 2 + n do
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
      empty = false
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
  if empty then merged = {} end
  out[#out + 1] = merged
end
return cjson.encode(out)
