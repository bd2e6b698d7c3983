-- Interprets one features.Plan (models/features/plan.go documents the semantics; MemStore is
-- the reference implementation and must stay in step with this file).
-- KEYS: the plan's keys, prefixed. ARGV[1]: the plan as JSON:
--   R: reads  {"sum",k,lo,hi,{suffixes}} (one value per suffix) | {"recent",k,after,exclude} | {"get",k,field}
--   W: writes {"incr",k,field,by} | {"max",k,field,value} | {"setnx",k,field,value}
--             {"prunet",k,below} | {"pruner",k,below} | {"ttl",k,ms}
--   G: guard {k,field,min}   O: once {k,ttl_ms}   M: mark {k,result_k,offset,ttl_ms}
-- Returns {status, replayed "0"/"1", reads...}.
local p = cjson.decode(ARGV[1])

local function reads()
  local out = {}
  for _, op in ipairs(p.R or {}) do
    local k = KEYS[op[2]]
    if op[1] == 'sum' then
      local sufs = op[5]
      local fields = {}
      for t = op[3], op[4] do
        local pre = t .. ':'
        for _, suf in ipairs(sufs) do fields[#fields + 1] = pre .. suf end
      end
      local vals = redis.call('HMGET', k, unpack(fields))
      local sums = {}
      for j = 1, #sufs do sums[j] = 0 end
      for j, v in ipairs(vals) do
        if v then
          local g = (j - 1) % #sufs + 1
          sums[g] = sums[g] + tonumber(v)
        end
      end
      for j = 1, #sufs do out[#out + 1] = string.format('%d', sums[j]) end
    elseif op[1] == 'recent' then
      local h = redis.call('HGETALL', k)
      local n = 0
      for j = 1, #h, 2 do
        if h[j] ~= op[4] and tonumber(h[j + 1]) > op[3] then n = n + 1 end
      end
      out[#out + 1] = string.format('%d', n)
    elseif op[1] == 'get' then
      out[#out + 1] = redis.call('HGET', k, op[3]) or ''
    end
  end
  return out
end

local function result(status, replayed, rs)
  local out = {status, replayed}
  for _, v in ipairs(rs) do out[#out + 1] = v end
  return out
end

if p.M then
  local wm = redis.call('GET', KEYS[p.M[1]])
  if wm and tonumber(p.M[3]) <= tonumber(wm) then
    local stored = redis.call('GET', KEYS[p.M[2]])
    if stored then
      local r = cjson.decode(stored)
      r[2] = '1'
      return r
    end
    return result('s', '1', reads())
  end
end

local rs = reads()
local status = 'a'
if p.G then
  local v = redis.call('HGET', KEYS[p.G[1]], p.G[2])
  if v and tonumber(v) > p.G[3] then status = 'l' end
end
if p.O and status == 'a' then
  if not redis.call('SET', KEYS[p.O[1]], '1', 'NX', 'PX', p.O[2]) then status = 'd' end
end

if status == 'a' then
  local created = {}
  for _, op in ipairs(p.W or {}) do
    local k = KEYS[op[2]]
    local kind = op[1]
    if kind == 'incr' then
      if redis.call('HINCRBY', k, op[3], op[4]) == tonumber(op[4]) then created[op[2]] = true end
    elseif kind == 'max' then
      local cur = redis.call('HGET', k, op[3])
      if (not cur) or tonumber(op[4]) > tonumber(cur) then redis.call('HSET', k, op[3], op[4]) end
      if not cur then created[op[2]] = true end
    elseif kind == 'setnx' then
      redis.call('HSETNX', k, op[3], op[4])
    elseif kind == 'prunet' then
      if created[op[2]] then
        for _, f in ipairs(redis.call('HKEYS', k)) do
          local n = tonumber(string.match(f, '^(%-?%d+):'))
          if n and n < op[3] then redis.call('HDEL', k, f) end
        end
      end
    elseif kind == 'pruner' then
      if created[op[2]] then
        local h = redis.call('HGETALL', k)
        for j = 1, #h, 2 do
          if tonumber(h[j + 1]) < op[3] then redis.call('HDEL', k, h[j]) end
        end
      end
    elseif kind == 'ttl' then
      redis.call('PEXPIRE', k, op[3])
    end
  end
end

local out = result(status, '0', rs)
if p.M then
  redis.call('SET', KEYS[p.M[1]], p.M[3])
  redis.call('SET', KEYS[p.M[2]], cjson.encode(out), 'PX', p.M[4])
end
return out
