-- Checkpoints one partition's window state (see window.go). All or nothing, and only when the
-- partition's checkpoint still holds what this instance last wrote (compare-and-set), so a
-- zombie or a second instance can never overwrite newer state.
-- KEYS: checkpoint, then nA account keys, nT terminal keys, nD device keys.
-- ARGV: expected checkpoint ('' = none), new checkpoint, nA, nT, nD, account TTL ms,
--       terminal TTL ms, device TTL ms, nA account values,
--       per terminal: n, then n × (tile, transactions, prune below tile),
--       per device: n, then n × (account, last seen ms), m, then m × (account, below ms): an
--       account still last seen before below is removed (the caller saw it that old).
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then
  return redis.error_reply('CONFLICT checkpoint is ' .. (cur or 'none') .. ', expected ' .. ARGV[1])
end
local nA, nT, nD = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local a = 9
for i = 1, nA do
  redis.call('SET', KEYS[1 + i], ARGV[a], 'PX', ARGV[6])
  a = a + 1
end
for i = 1, nT do
  local k = KEYS[1 + nA + i]
  local n = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, n do
    local by = tonumber(ARGV[a + 1])
    if redis.call('HINCRBY', k, ARGV[a] .. ':c', by) == by then
      -- A new tile: forget the tiles no event can read any more.
      local below = tonumber(ARGV[a + 2])
      for _, f in ipairs(redis.call('HKEYS', k)) do
        local d = tonumber(string.match(f, '^(%-?%d+):'))
        if d and d < below then redis.call('HDEL', k, f) end
      end
    end
    a = a + 3
  end
  redis.call('PEXPIRE', k, ARGV[7])
end
for i = 1, nD do
  local k = KEYS[1 + nA + nT + i]
  local n = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, n do
    local old = redis.call('HGET', k, ARGV[a])
    if (not old) or tonumber(ARGV[a + 1]) > tonumber(old) then redis.call('HSET', k, ARGV[a], ARGV[a + 1]) end
    a = a + 2
  end
  local m = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, m do
    local old = redis.call('HGET', k, ARGV[a])
    if old and tonumber(old) < tonumber(ARGV[a + 1]) then redis.call('HDEL', k, ARGV[a]) end
    a = a + 2
  end
  redis.call('PEXPIRE', k, ARGV[8])
end
redis.call('SET', KEYS[1], ARGV[2])
return nA
