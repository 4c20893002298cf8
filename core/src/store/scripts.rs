//! The Lua scripts of the Redis store: one per link operation, each single-slot.
//!
//! `KEYS[1]` is always the link key `P:{ns:lk:uid}svc` and `KEYS[2]` the user's hash
//! `P:{ns:lk:uid}`: both share the hash tag, so each script touches one slot. A Lua `false`
//! inside a returned table reaches us as nil. The memory store implements the same steps in
//! `memory.rs`; the behaviour suite holds both to the same vectors.

/// Shared body: read the link, failing (before anything is written) on a value that is not a
/// canonical pod index, as the memory store and the Rust parsers do; write the link
/// (`ARGV[1]` service, `ARGV[2]` pod, `ARGV[3]` ttl: -1 or seconds); and publish a change of
/// an existing link on the events channel, the last `ARGV` of every link script.
macro_rules! write_link {
    () => {
        r#"
local function read_link()
  local v = redis.call('GET', KEYS[1])
  if v and not (v == '0' or (string.match(v, '^[1-9]%d*$') and #v <= 10 and tonumber(v) <= 2147483647)) then
    return redis.error_reply('SR_BAD_VALUE ' .. KEYS[1] .. ' holds ' .. string.format('%q', v) .. ', not a pod index')
  end
  return v
end
-- Whether writing (pod, ttl) over cur changes what a gateway may cache: another pod, another
-- kind, or a shorter lifetime. Read before the write.
local function changes(cur, pod, ttl)
  if not cur then return false end
  if cur ~= pod then return true end
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl == -1 then return ttl >= 0 end
  return ttl < 0 or ttl * 1000 < pttl
end
-- The link event (SPEC §11) on the channel in the last ARGV ('' = propagation off):
-- 'link <service> <pod> <p|t> <uid>', or 'link <service> - - <uid>' for a removal.
local function publish_link(pod, ttl)
  local ch = ARGV[#ARGV]
  if ch == '' then return end
  local uid = string.match(KEYS[2], '^[^{]*{[^:]*:lk:(.*)}$')
  local what = '- -'
  if pod then
    what = pod .. (ttl < 0 and ' p' or ' t')
  end
  redis.call('PUBLISH', ch, 'link ' .. ARGV[1] .. ' ' .. what .. ' ' .. uid)
end
local function write_link(svc, pod, ttl)
  if ttl < 0 then
    redis.call('SET', KEYS[1], pod)
    redis.call('HSET', KEYS[2], svc, pod)
  else
    redis.call('SET', KEYS[1], pod, 'EX', ttl)
    redis.call('HDEL', KEYS[2], svc)
  end
end
"#
    };
}

/// Returns the previous pod or nil.
pub const SET_LINK: &str = concat!(
    write_link!(),
    r#"
local prev = read_link()
if type(prev) == 'table' then return prev end
local ttl = tonumber(ARGV[3])
local changed = changes(prev, ARGV[2], ttl)
write_link(ARGV[1], ARGV[2], ttl)
if changed then publish_link(ARGV[2], ttl) end
return prev
"#
);

/// Returns {pod, pttl_ms, created 0/1} of the link in force; pttl -1 = persistent.
pub const SET_LINK_IF_ABSENT: &str = concat!(
    write_link!(),
    r#"
local cur = read_link()
if type(cur) == 'table' then return cur end
if cur then
  return {cur, redis.call('PTTL', KEYS[1]), 0}
end
local ttl = tonumber(ARGV[3])
write_link(ARGV[1], ARGV[2], ttl)
if ttl < 0 then return {ARGV[2], -1, 1} end
return {ARGV[2], ttl * 1000, 1}
"#
);

/// Returns {accepted 0/1, owner, previous or nil}.
pub const TRY_SET_LINK: &str = concat!(
    write_link!(),
    r#"
local cur = read_link()
if type(cur) == 'table' then return cur end
if cur and cur ~= ARGV[2] and redis.call('PTTL', KEYS[1]) == -1 then
  return {0, cur, cur}
end
local ttl = tonumber(ARGV[3])
local changed = changes(cur, ARGV[2], ttl)
write_link(ARGV[1], ARGV[2], ttl)
if changed then publish_link(ARGV[2], ttl) end
return {1, ARGV[2], cur}
"#
);

/// `ARGV[4]` = expected pod. Replaces a temporary link to it; returns {pod, pttl, written 0/1} in
/// force.
pub const REPLACE_TEMPORARY_LINK: &str = concat!(
    write_link!(),
    r#"
local cur = read_link()
if type(cur) == 'table' then return cur end
if cur then
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl == -1 or cur ~= ARGV[4] then
    return {cur, pttl, 0}
  end
end
local ttl = tonumber(ARGV[3])
local changed = changes(cur, ARGV[2], ttl)
write_link(ARGV[1], ARGV[2], ttl)
if changed then publish_link(ARGV[2], ttl) end
if ttl < 0 then return {ARGV[2], -1, 1} end
return {ARGV[2], ttl * 1000, 1}
"#
);

/// `ARGV[1]` service, `ARGV[2]` delay seconds (0 = now), `ARGV[3]` expected pod or "" for any,
/// `ARGV[4]` the events channel.
/// Returns 1 if removed. A delayed remove never lengthens a link (`EXPIRE … LT`, written out
/// so that it works before Redis 7).
pub const REMOVE_LINK: &str = concat!(
    write_link!(),
    r#"
local cur = read_link()
if type(cur) == 'table' then return cur end
if ARGV[3] ~= '' and cur ~= ARGV[3] then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
if not cur then return 0 end
local delay = tonumber(ARGV[2])
local pttl = redis.call('PTTL', KEYS[1])
if delay <= 0 then
  redis.call('DEL', KEYS[1])
  publish_link(nil, 0)
elseif pttl < 0 or delay * 1000 < pttl then
  redis.call('EXPIRE', KEYS[1], delay)
  publish_link(cur, delay)
end
return 1
"#
);

/// Returns {pod, pttl} or nil.
pub const GET_LINK: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return false end
return {cur, redis.call('PTTL', KEYS[1])}
"#;

/// `KEYS[1]` the state hash, `KEYS[2]` the cordon hash; `ARGV[1]` pod, `ARGV[2]` load,
/// `ARGV[3]` routing word, `ARGV[4]` `""` or `-<weight>` for a weight other than the default,
/// `ARGV[5]` the events channel (`""`: none), `ARGV[6]` the service.
/// Stamps the value with the server's clock; returns the stamp in ms. A cordoned pod's `READY`
/// is stored as `DENY_NEW_CALL` (SPEC §12). A routing word other than the pod's last one (or a
/// pod's first state) is published as `pod <service> <pod> <ROUTING>`.
pub const PUBLISH_POD_STATE: &str = r#"
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local word = ARGV[3]
if word == 'READY' and KEYS[2] and redis.call('HGET', KEYS[2], ARGV[1]) then
  word = 'DENY_NEW_CALL'
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '-' .. string.format('%.0f', ms) .. '-' .. word .. ARGV[4])
if ARGV[5] ~= '' then
  local was = old and (string.match(old, '^%d+%-%d+%-([%u_]+)') or 'READY')
  if was ~= word then
    redis.call('PUBLISH', ARGV[5], 'pod ' .. ARGV[6] .. ' ' .. ARGV[1] .. ' ' .. word)
  end
end
return ms
"#;

/// `KEYS[1]` the state hash, `KEYS[2]` the cordon hash; `ARGV[1]` `1` cordon / `0` uncordon,
/// `ARGV[2]` the events channel (`""`: none), `ARGV[3]` the service, `ARGV[4..]` the pods.
/// Cordoning also turns a pod's current `READY` into `DENY_NEW_CALL` at once (same load, stamp
/// and weight) and publishes it; uncordoning leaves the state to the pod's next publish.
/// Returns the pods whose stored state changed.
pub const SET_CORDON: &str = r#"
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local changed = {}
for i = 4, #ARGV do
  local pod = ARGV[i]
  if ARGV[1] == '1' then
    redis.call('HSET', KEYS[2], pod, string.format('%.0f', ms))
    local v = redis.call('HGET', KEYS[1], pod)
    if v then
      local head, rest = string.match(v, '^(%d+%-%d+%-)READY(.*)$')
      if not head and string.match(v, '^%d+%-%d+$') then
        head, rest = v .. '-', ''
      end
      if head then
        redis.call('HSET', KEYS[1], pod, head .. 'DENY_NEW_CALL' .. rest)
        table.insert(changed, pod)
        if ARGV[2] ~= '' then
          redis.call('PUBLISH', ARGV[2], 'pod ' .. ARGV[3] .. ' ' .. pod .. ' DENY_NEW_CALL')
        end
      end
    end
  else
    redis.call('HDEL', KEYS[2], pod)
  end
end
return changed
"#;

/// `KEYS[1]` the state hash. Returns {now_ms, field, value, field, value, ...}.
pub const POD_STATES: &str = r#"
local t = redis.call('TIME')
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return out
"#;
