-- Applies one label at most once per transaction (the first label wins).
-- KEYS: labelled-transaction marker, terminal tiles. ARGV: marker TTL ms, fraud tile ('' when
-- the label adds no fraud), terminal TTL ms. Returns 1 when applied, 0 for a duplicate.
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
if ARGV[2] ~= '' then
  redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':f', 1)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
