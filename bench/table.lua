--- Prints the benchmark table from the raw figures bench/run.sh collected.
--   lua5.4 table.lua RESULTS_FILE
-- RESULTS_FILE lines: "# text" (a header line, printed as is),
-- "<row> <round> <count> <seconds>", "memory <rss_before_kB> <rss_after_kB> <queries> <seconds>",
-- "skip <row> <why...>". Rates are medians over the rounds.
local file = assert(arg[1], "usage: table.lua RESULTS_FILE")

local ROWS = {
  { id = "ref_one", label = "C reference client, one at a time" },
  { id = "ref_pipe", label = "C reference client, pipelined" },
  { id = "blocking", label = "p0f.query, a connection per query", vs = "ref_one" },
  { id = "persistent", label = "client:query, persistent, one at a time", vs = "ref_one" },
  { id = "libev", label = "loop:client (libev), pipelined", vs = "ref_pipe" },
  { id = "pollable", label = "client:submit/step/fetch + cqueues.poll, pipelined", vs = "ref_pipe" },
  { id = "peer", label = "peer: plain Lua + LuaSocket, a connection per query", vs = "ref_one" },
  { id = "haraka_one", label = "peer: Haraka P0FClient (node), one at a time", vs = "ref_one" },
  { id = "haraka", label = "peer: Haraka P0FClient (node), pipelined", vs = "ref_pipe" },
  { id = "decode", label = "p0f.decode, one reply -> table", vs = "decode_plain" },
  { id = "decode_plain", label = "string.unpack decoder in plain Lua" },
  { id = "verdict", label = "filter verdict on a cache hit (skip+get+decode+verdict)" },
}
local REF_NAME = { ref_one = "C one", ref_pipe = "C pipe", decode_plain = "unpack" }

local header, rates, skips, memory = {}, {}, {}, nil
for line in io.lines(file) do
  local text = line:match("^# ?(.*)$")
  if text then
    header[#header + 1] = text
  elseif line:match("^skip ") then
    local row, why = line:match("^skip (%S+) (.*)$")
    skips[row] = why
  elseif line:match("^memory ") then
    local b, a, n, s = line:match("^memory (%d+) (%d+) (%d+) (%S+)$")
    memory = { before = tonumber(b), after = tonumber(a), n = tonumber(n), secs = tonumber(s) }
  else
    local row, _, count, secs = line:match("^(%S+) (%d+) (%d+) (%S+)$")
    if row then
      rates[row] = rates[row] or {}
      table.insert(rates[row], tonumber(count) / tonumber(secs))
    end
  end
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

local function thousands(x)
  local s = string.format("%d", math.floor(x + 0.5))
  repeat
    local n
    s, n = s:gsub("^(%d+)(%d%d%d)", "%1,%2")
  until n == 0
  return s
end

local med, lo, hi = {}, {}, {}
for row, t in pairs(rates) do
  med[row] = median(t)
  lo[row], hi[row] = math.min(table.unpack(t)), math.max(table.unpack(t))
end

for _, h in ipairs(header) do print(h) end
print("")
local fmt = "%-56s %11s %9s %14s"
print(string.format(fmt, "row", "per second", "spread", "ratio"))
print(string.rep("-", 56) .. " " .. string.rep("-", 11) .. " " .. string.rep("-", 9) .. " " .. string.rep("-", 14))
for _, r in ipairs(ROWS) do
  if med[r.id] then
    local spread = string.format("+-%.0f%%", 50 * (hi[r.id] - lo[r.id]) / med[r.id])
    local ratio = ""
    if r.vs and med[r.vs] then
      ratio = string.format("%.2f x %s", med[r.id] / med[r.vs], REF_NAME[r.vs])
    end
    print(string.format(fmt, r.label, thousands(med[r.id]), spread, ratio))
  elseif skips[r.id] then
    print(string.format("%-56s %s", r.label, "skipped: " .. skips[r.id]))
  end
end
if memory then
  local d = memory.after - memory.before
  print(string.format("%-56s %s", string.format("RSS before/after %s queries (client:query)", thousands(memory.n)),
    string.format("%s kB -> %s kB (%+d kB)", thousands(memory.before), thousands(memory.after), d)))
end

-- The targets, each a ratio within this run.
local function ratio(a, b) return med[a] and med[b] and med[a] / med[b] end
local TARGETS = {
  { "pipelined (libev) >= 0.9 x C reference pipelined", ratio("libev", "ref_pipe"), 0.9 },
  { "pipelined (libev) >= 3 x Haraka's client pipelined", ratio("libev", "haraka"), 3 },
  { "pipelined (libev) >= 6 x per-connection plain Lua", ratio("libev", "peer"), 6 },
  { "persistent one at a time >= 0.8 x C reference one at a time", ratio("persistent", "ref_one"), 0.8 },
  { "p0f.decode >= 3 x string.unpack decoder", ratio("decode", "decode_plain"), 3 },
}
print("")
print("targets (ratios of medians in this run):")
for _, t in ipairs(TARGETS) do
  local name, got, want = t[1], t[2], t[3]
  if got then
    print(string.format("  %-62s %6.2f  %s", name, got, got >= want and "met" or "MISSED"))
  else
    print(string.format("  %-62s %6s  %s", name, "-", "not measured"))
  end
end
if memory then
  -- Flat: under one byte per query over the whole run.
  local d = memory.after - memory.before
  print(string.format("  %-62s %+5d kB  %s", "memory flat over " .. thousands(memory.n) .. " queries", d,
    d * 1024 < memory.n and "met" or "MISSED"))
end
