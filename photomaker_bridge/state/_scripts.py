"""The Lua scripts ``RedisState`` runs: each answers one question atomically, in one round trip.

Redis runs a script to its end before any other command (https://redis.io/docs/latest/develop/programmability/
eval-intro/), so a script's read-check-write cannot interleave with another process's. Times come from the
server's own clock (``TIME``), so machines whose clocks disagree still agree on when a lease expires or a rate
window ends. Amounts of money are whole nano-dollars (Lua numbers are doubles: exact to 2^53, about 9 million USD).

Every script may safely run twice with the same arguments: redis-py sends a command again when its connection
drops, and the first one may have run with only its reply lost. Names chosen by the client make the second run a
no-op — lease ids (TAKE), settle tokens (SETTLE_SPEND, SETTLE_HEDGE, kept an hour in ``…:settled``), write tokens
(BREAKER_SET) and the claimer's per-call name (CLAIM_JOB).
"""

from __future__ import annotations

from typing import Final

__all__ = ["SCRIPTS"]

_NOW: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

_KEEP: Final = """
local function keep(key, milliseconds)
  if redis.call('PTTL', key) < milliseconds then redis.call('PEXPIRE', key, milliseconds) end
end
"""

# Expired leases leave the leases zset and, with their job, the bound hash (whose TTL every bind pushes out: on
# a busy account it never expires, so what is not removed here would stay for good).
_EXPIRE: Final = """
local function expire(leases, bound)
  local gone = redis.call('ZRANGEBYSCORE', leases, '-inf', now)
  for _, lease in ipairs(gone) do
    local job = redis.call('HGET', bound, 'm:' .. lease)
    if job and redis.call('HGET', bound, 'j:' .. job) == lease then redis.call('HDEL', bound, 'j:' .. job) end
    redis.call('HDEL', bound, 'm:' .. lease)
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', leases, '-inf', now) end
end
"""

# KEYS: leases (zset member -> expiry ms), hits (zset of the rate window's creates), bound
# ARGV: cap (-1: none), per window (-1: none), window ms, lease ms, lease ids...
# Answers {2, held} when taken (or already taken by this very request: a re-sent TAKE); {0, held, ms until the
# first lease expires} over the cap; {1, hits, ms until the window has room} over the rate. The cap is checked
# first, as the in-memory coordinator does. More slots at once than the rate allows never fit: {1, hits, window}.
TAKE: Final = _NOW + _KEEP + _EXPIRE + """
expire(KEYS[1], KEYS[3])
local cap, rate, window, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local count = #ARGV - 4
local held = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[5]) then return {2, held} end
if cap >= 0 and held + count > cap then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = -1
  if first[2] then wait = tonumber(first[2]) - now end
  return {0, held, wait}
end
if rate >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  local hits = redis.call('ZCARD', KEYS[2])
  if count > rate then return {1, hits, window} end
  if hits + count > rate then
    local index = hits + count - rate - 1
    local oldest = redis.call('ZRANGE', KEYS[2], index, index, 'WITHSCORES')
    return {1, hits, tonumber(oldest[2]) + window - now}
  end
  for index = 5, #ARGV do redis.call('ZADD', KEYS[2], now, ARGV[index]) end
  keep(KEYS[2], window + 1000)
end
for index = 5, #ARGV do redis.call('ZADD', KEYS[1], now + lease, ARGV[index]) end
keep(KEYS[1], lease + 1000)
return {2, held + count}
"""

# KEYS: leases, bound (hash "j:<job>" -> lease id and "m:<lease id>" -> job). ARGV: lease id, job, lease ms.
BIND: Final = _NOW + _KEEP + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local previous = redis.call('HGET', KEYS[2], 'm:' .. ARGV[1])
if previous then redis.call('HDEL', KEYS[2], 'j:' .. previous) end
redis.call('HSET', KEYS[2], 'j:' .. ARGV[2], ARGV[1], 'm:' .. ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[3]), ARGV[1])
keep(KEYS[1], tonumber(ARGV[3]) + 1000)
keep(KEYS[2], tonumber(ARGV[3]) + 1000)
return 1
"""

# KEYS: leases, bound. ARGV: job, lease ms.
RENEW: Final = _NOW + _KEEP + """
local lease = redis.call('HGET', KEYS[2], 'j:' .. ARGV[1])
if not lease or not redis.call('ZSCORE', KEYS[1], lease) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), lease)
keep(KEYS[1], tonumber(ARGV[2]) + 1000)
keep(KEYS[2], tonumber(ARGV[2]) + 1000)
return 1
"""

# KEYS: leases, bound. ARGV: job ('' none), lease id ('' none).
RELEASE: Final = """
local job, lease = ARGV[1], ARGV[2]
if lease == '' then lease = redis.call('HGET', KEYS[2], 'j:' .. job) or '' end
if job == '' and lease ~= '' then job = redis.call('HGET', KEYS[2], 'm:' .. lease) or '' end
if lease ~= '' then
  redis.call('ZREM', KEYS[1], lease)
  redis.call('HDEL', KEYS[2], 'm:' .. lease)
end
if job ~= '' then redis.call('HDEL', KEYS[2], 'j:' .. job) end
return 1
"""

# KEYS: leases, bound.
COUNT: Final = _NOW + _EXPIRE + """
expire(KEYS[1], KEYS[2])
return redis.call('ZCARD', KEYS[1])
"""

_RESERVATIONS: Final = """
local function pending(reserved, expiry)
  local gone = redis.call('ZRANGEBYSCORE', expiry, '-inf', now)
  for _, token in ipairs(gone) do
    redis.call('HDEL', reserved, token)
    redis.call('ZREM', expiry, token)
  end
  return redis.call('HGETALL', reserved)
end
"""

# KEYS: totals (hash spent, hedge_extra, hedge_base), reserved (hash token -> nano), expiry (zset token -> ms).
# ARGV: amount, limit, token, reservation ms. Answers 1 (reserved) or 0 (it would pass the limit).
RESERVE_SPEND: Final = _NOW + _KEEP + _RESERVATIONS + """
local held = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local entries = pending(KEYS[2], KEYS[3])
for index = 2, #entries, 2 do held = held + tonumber(entries[index]) end
if held + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[3])
keep(KEYS[2], tonumber(ARGV[4]))
keep(KEYS[3], tonumber(ARGV[4]))
return 1
"""

# A settle token is settled once: the second run of a re-sent settle finds it in KEYS[4] (token -> ms, an hour).
_ONCE: Final = """
local function first_time(settled, token)
  redis.call('ZREMRANGEBYSCORE', settled, '-inf', now - 3600000)
  if redis.call('ZADD', settled, 'NX', now, token) == 0 then return false end
  keep(settled, 3600000)
  return true
end
"""

# KEYS: totals, reserved, expiry, settled. ARGV: token, amount, field of totals, keep ms.
SETTLE_SPEND: Final = _NOW + _KEEP + _ONCE + """
if not first_time(KEYS[4], ARGV[1]) then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if tonumber(ARGV[2]) ~= 0 then redis.call('HINCRBY', KEYS[1], ARGV[3], ARGV[2]) end
keep(KEYS[1], tonumber(ARGV[4]))
return 1
"""

# KEYS: totals, hedges (hash token -> "extra base"), expiry. ARGV: amount, ratio, base, token, reservation ms.
RESERVE_HEDGE: Final = _NOW + _KEEP + _RESERVATIONS + """
local extra = tonumber(redis.call('HGET', KEYS[1], 'hedge_extra') or '0')
local base = tonumber(redis.call('HGET', KEYS[1], 'hedge_base') or '0') + tonumber(ARGV[3])
local entries = pending(KEYS[2], KEYS[3])
for index = 2, #entries, 2 do
  local amount, of = string.match(entries[index], '(%S+) (%S+)')
  extra = extra + tonumber(amount)
  base = base + tonumber(of)
end
if extra + tonumber(ARGV[1]) > tonumber(ARGV[2]) * base then return 0 end
redis.call('HSET', KEYS[2], ARGV[4], ARGV[1] .. ' ' .. ARGV[3])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[4])
keep(KEYS[2], tonumber(ARGV[5]))
keep(KEYS[3], tonumber(ARGV[5]))
return 1
"""

# KEYS: totals, hedges, expiry, settled. ARGV: token (of the reservation, or a fresh one), extra, base, keep ms.
SETTLE_HEDGE: Final = _NOW + _KEEP + _ONCE + """
if not first_time(KEYS[4], ARGV[1]) then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'hedge_extra', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'hedge_base', ARGV[3])
keep(KEYS[1], tonumber(ARGV[4]))
return 1
"""

# KEYS: breaker, seconds, queue, prices, written (the last write's token). ARGV: expected ('' absent), new ('' delete),
# keep ms, samples kept, then a second, queue and price sample ('' none), then this write's token. Compare-and-set:
# the breaker's rules run in Python (routing/_breaker.py) on the value read, and this writes the result only if
# nobody changed it meanwhile; a re-sent write that already ran answers 1 without applying it again.
BREAKER_SET: Final = """
if redis.call('GET', KEYS[5]) == ARGV[8] then return 1 end
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
elseif ARGV[2] ~= ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
for index = 1, 3 do
  local value = ARGV[4 + index]
  if value ~= '' then
    redis.call('LPUSH', KEYS[1 + index], value)
    redis.call('LTRIM', KEYS[1 + index], 0, tonumber(ARGV[4]) - 1)
    redis.call('PEXPIRE', KEYS[1 + index], ARGV[3])
  end
end
redis.call('SET', KEYS[5], ARGV[8], 'PX', 600000)
return 1
"""

# KEYS: job. ARGV: owner (one call's name), claim ms, keep ms, round to take over ('' none). Answers
# {'status', 'new', 'round', n} when the caller owns the claim now — also when it already did (redis-py re-sends a
# command whose reply was lost, so a claim may run twice) — else the entry's fields and the ms its claim has left.
CLAIM_JOB: Final = _NOW + """
local status = redis.call('HGET', KEYS[1], 'status')
local round = tonumber(redis.call('HGET', KEYS[1], 'round') or '1')
if status == 'claimed' and redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  return {'status', 'new', 'round', tostring(round)}
end
if status and not (status ~= 'claimed' and ARGV[4] ~= '' and round == tonumber(ARGV[4])) then
  local entry = redis.call('HGETALL', KEYS[1])
  table.insert(entry, 'claim_left')
  table.insert(entry, tostring(tonumber(redis.call('HGET', KEYS[1], 'claimed_until') or '0') - now))
  return entry
end
if status then round = round + 1 else round = 1 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'status', 'claimed', 'owner', ARGV[1], 'claimed_until', now + tonumber(ARGV[2]),
           'round', round)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'status', 'new', 'round', tostring(round)}
"""

# KEYS: job. ARGV: owner. Deletes the claim if it is still that owner's and nothing was accepted.
DROP_JOB: Final = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and redis.call('HGET', KEYS[1], 'status') == 'claimed' then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

SCRIPTS: Final = {
    "take": TAKE, "bind": BIND, "renew": RENEW, "release": RELEASE, "count": COUNT,
    "reserve_spend": RESERVE_SPEND, "settle_spend": SETTLE_SPEND, "reserve_hedge": RESERVE_HEDGE,
    "settle_hedge": SETTLE_HEDGE, "breaker_set": BREAKER_SET, "claim_job": CLAIM_JOB, "drop_job": DROP_JOB,
}
"""Every script by name (``RedisState`` loads each once per server, then calls it by its SHA1)."""
