-- KEYS[1]: the account's sorted set of transaction ids scored by event time (ms)
-- ARGV: transaction id, event time ms, window ms, retention ms
-- ZADD by member is idempotent: a replayed transaction is not counted twice.
local ev = tonumber(ARGV[2])
local win = tonumber(ARGV[3])
local retain = tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], ev, ARGV[1])
-- Drop members too old to matter for any event near this one; keep the newest time's slack.
local newest = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local top = tonumber(newest[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (top - retain))
redis.call('PEXPIRE', KEYS[1], retain)
return redis.call('ZCOUNT', KEYS[1], '(' .. (ev - win), ev)
