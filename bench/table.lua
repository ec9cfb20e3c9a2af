--- Prints the benchmark table from the raw figures bench/run.sh collected.
--   lua5.4 table.lua RESULTS_FILE
-- RESULTS_FILE lines: "# text" (a header line, printed as is),
-- "<row>[@same|@split] <round> <count> <seconds> [<p0f CPU ticks>]",
-- "memory <rss_before_kB> <rss_after_kB> <queries> <seconds>",
-- "skip <row> <why...>", "muxcpu <row> <round> <mux CPU ticks> <queries>".
-- Rates are medians over the rounds; "same" rows ran with p0f and the
-- client on one CPU, "split" rows on two.
local file = assert(arg[1], "usage: table.lua RESULTS_FILE")

local ROWS = {
  { id = "ref_one", label = "C reference client, one at a time" },
  { id = "ref_pipe", label = "C reference client, pipelined" },
  { id = "blocking", label = "p0f.query, a connection per query", vs = "ref_one" },
  { id = "persistent", label = "client:query, persistent, one at a time", vs = "ref_one" },
  { id = "libev", label = "loop:client (libev), pipelined", vs = "ref_pipe" },
  { id = "pollable", label = "client:submit/step/fetch + cqueues, pipelined", vs = "ref_pipe" },
  { id = "peer", label = "peer: plain Lua + LuaSocket, conn. per query", vs = "ref_one" },
  { id = "haraka_one", label = "peer: Haraka P0FClient, one at a time", vs = "ref_one" },
  { id = "haraka", label = "peer: Haraka P0FClient, pipelined", vs = "ref_pipe" },
  { id = "direct_1", label = "direct to p0f, 1 client, one query at a time", vs = "ref_pipe" },
  { id = "mux_nc_1", label = "through p0f-mux (no cache), 1 client", vs = "ref_pipe" },
  { id = "mux_c_1", label = "through p0f-mux (cache), 1 client", vs = "ref_pipe" },
  { id = "direct_64", label = "direct to p0f, 64 clients, one at a time each", vs = "ref_pipe" },
  { id = "mux_nc_64", label = "through p0f-mux (no cache), 64 clients", vs = "ref_pipe" },
  { id = "mux_c_64", label = "through p0f-mux (cache), 64 clients", vs = "ref_pipe" },
  { id = "direct_512", label = "direct to p0f, 512 clients, one at a time each", vs = "ref_pipe" },
  { id = "mux_nc_512", label = "through p0f-mux (no cache), 512 clients", vs = "ref_pipe" },
  { id = "mux_c_512", label = "through p0f-mux (cache), 512 clients", vs = "ref_pipe" },
  { id = "decode", label = "p0f.decode, one reply -> table", vs = "decode_plain", cpu = true },
  { id = "decode_plain", label = "string.unpack decoder in plain Lua", cpu = true },
  { id = "verdict", label = "filter verdict on a cache hit", cpu = true },
}
local REF_NAME = { ref_one = "C one", ref_pipe = "C pipe", decode_plain = "unpack" }
local MODES = { "same", "split" }
local MODE_NAME = { same = "1 CPU", split = "2 CPUs" }

local header, rates, skips, memory, seen = {}, {}, {}, nil, {}
local unserved_by, muxstats = {}, nil -- the many-client rows
local busy, clk_tck = {}, 100 -- p0f's CPU share during each row
local muxcpu = {} -- row -> { ticks per query, ... }: p0f-mux's own cost
for line in io.lines(file) do
  local text = line:match("^# ?(.*)$")
  if text and text:match("^clock ticks per second: ") then
    clk_tck = tonumber(text:match("(%d+)$"))
  elseif text then
    header[#header + 1] = text
  elseif line:match("^skip ") then
    local row, why = line:match("^skip (%S+) (.*)$")
    skips[row] = why
  elseif line:match("^served ") then
    -- clients refused or never served, the worst round of a row
    local key, refused, unserved = line:match("^served (%S+) %d+ (%d+) (%d+)$")
    local lost = tonumber(refused) + tonumber(unserved)
    if key and lost > (unserved_by[key] or 0) then unserved_by[key] = lost end
  elseif line:match("^muxcpu ") then
    local key, ticks, n = line:match("^muxcpu (%S+) %d+ (%d+) (%d+)$")
    if key and tonumber(n) > 0 then
      muxcpu[key] = muxcpu[key] or {}
      table.insert(muxcpu[key], tonumber(ticks) / tonumber(n))
    end
  elseif line:match("^muxstats ") then
    muxstats = line:match("^muxstats (.*)$")
  elseif line:match("^memory ") then
    local b, a, n, s = line:match("^memory (%d+) (%d+) (%d+) (%S+)$")
    memory = { before = tonumber(b), after = tonumber(a), n = tonumber(n), secs = tonumber(s) }
  else
    local key, _, count, secs, ticks = line:match("^(%S+) (%d+) (%d+) (%S+) ?(%d*)$")
    if key then
      local mode = key:match("@(%a+)$")
      if mode then seen[mode] = true end
      rates[key] = rates[key] or {}
      table.insert(rates[key], tonumber(count) / tonumber(secs))
      if ticks ~= "" then
        busy[key] = busy[key] or {}
        table.insert(busy[key], tonumber(ticks) / clk_tck / tonumber(secs))
      end
    end
  end
end
local modes = {}
for _, m in ipairs(MODES) do if seen[m] then modes[#modes + 1] = m end end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
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

local med, spread = {}, {}
for key, t in pairs(rates) do
  med[key] = median(t)
  spread[key] = 50 * (math.max(table.unpack(t)) - math.min(table.unpack(t))) / med[key]
end

-- One cell: "rate (+-spread%) ratio"
local function cell(key, vs_key, ref_name)
  if not med[key] then return "" end
  local s = string.format("%s +-%d%%", thousands(med[key]), math.floor(spread[key] + 0.5))
  if vs_key and med[vs_key] then
    s = s .. string.format("  %.2f x %s", med[key] / med[vs_key], ref_name)
  end
  if unserved_by[key] and unserved_by[key] > 0 then
    s = s .. string.format("  %d UNSERVED", unserved_by[key])
  end
  return s
end

for _, h in ipairs(header) do print(h) end
print("")
local W = 52
local CW = 30
local line = string.format("%-" .. W .. "s", "per second (median +-half-spread, ratio)")
for _, m in ipairs(modes) do line = line .. string.format(" | %-" .. CW .. "s", MODE_NAME[m]) end
line = (line:gsub("%s+$", ""))
print(line)
print(string.rep("-", W) .. string.rep("-+-" .. string.rep("-", CW), #modes))
for _, r in ipairs(ROWS) do
  line = string.format("%-" .. W .. "s", r.label)
  local any = false
  if r.cpu then
    local c = cell(r.id, r.vs, REF_NAME[r.vs])
    any = c ~= ""
    line = line .. string.format(" | %-" .. CW .. "s", c)
    if #modes > 1 then line = line .. string.format(" | %-" .. CW .. "s", "(no daemon: one figure)") end
  else
    for _, m in ipairs(modes) do
      local c = cell(r.id .. "@" .. m, r.vs and (r.vs .. "@" .. m), REF_NAME[r.vs])
      any = any or c ~= ""
      line = line .. string.format(" | %-" .. CW .. "s", c)
    end
  end
  if any then
    print((line:gsub("%s+$", "")))
  elseif skips[r.id] then
    print(string.format("%-" .. W .. "s | skipped: %s", r.label, skips[r.id]))
  end
end
if memory then
  local d = memory.after - memory.before
  print(string.format("%-" .. W .. "s | %s", "RSS around " .. thousands(memory.n) .. " client:query",
    string.format("%s kB -> %s kB (%+d kB)", thousands(memory.before), thousands(memory.after), d)))
end

if muxstats then
  local q, hits = tonumber(muxstats:match("queries=(%d+)")), tonumber(muxstats:match("cache_hits=(%d+)"))
  print(string.format("p0f-mux with its cache: %s; cache-hit rate %.1f%%", muxstats,
    q and q > 0 and 100 * hits / q or 0))
  print("UNSERVED: clients whose connect() failed or that got no answer in a round (worst round)")
end
-- The mux's CPU time per client query: it moves less than a rate with
-- what else runs on the machine (cache and scheduler effects remain).
for _, m in ipairs(modes) do
  local parts = {}
  for _, kind in ipairs({ { "mux_nc", "no cache" }, { "mux_c", "cache" } }) do
    local cells = {}
    for _, n in ipairs({ 1, 64, 512 }) do
      local t = muxcpu[kind[1] .. "_" .. n .. "@" .. m]
      cells[#cells + 1] = t and string.format("%.2f", 1e6 * median(t) / clk_tck) or "-"
    end
    parts[#parts + 1] = kind[2] .. " " .. table.concat(cells, " / ")
  end
  if next(muxcpu) then
    print(string.format("p0f-mux CPU per client query, us (1 / 64 / 512 clients), %s: %s", MODE_NAME[m],
      table.concat(parts, "; ")))
  end
end

-- How busy the daemon was: near 100% means p0f itself is the limit.
local BUSY_ROWS = { { "ref_pipe", "C reference" }, { "libev", "libev" }, { "pollable", "cqueues" },
                    { "haraka", "Haraka" } }
for _, m in ipairs(modes) do
  local parts = {}
  for _, b in ipairs(BUSY_ROWS) do
    local t = busy[b[1] .. "@" .. m]
    if t then parts[#parts + 1] = string.format("%s %d%%", b[2], math.floor(100 * median(t) + 0.5)) end
  end
  if #parts > 0 then
    print(string.format("p0f's CPU use during the pipelined rows, %s: %s", MODE_NAME[m], table.concat(parts, ", ")))
  end
end

-- The targets, each a ratio of medians within this run.
local function ratio(a, b) return med[a] and med[b] and med[a] / med[b] end
local TARGETS = {
  { "pipelined (libev) >= 0.9 x C reference pipelined", "libev", "ref_pipe", 0.9 },
  { "pipelined (libev) >= 3 x Haraka's client pipelined", "libev", "haraka", 3 },
  { "pipelined (libev) >= 6 x per-connection plain Lua", "libev", "peer", 6 },
  { "persistent one at a time >= 0.8 x C one at a time", "persistent", "ref_one", 0.8 },
  { "p0f-mux, 64 clients, no cache >= 0.8 x C pipelined", "mux_nc_64", "ref_pipe", 0.8 },
  { "p0f.decode >= 3 x string.unpack decoder", "decode", "decode_plain", 3, cpu = true },
}
print("")
line = string.format("%-" .. W .. "s", "targets")
for _, m in ipairs(modes) do line = line .. string.format(" | %-" .. CW .. "s", MODE_NAME[m]) end
line = (line:gsub("%s+$", ""))
print(line)
local function verdict(got, want)
  if not got then return "not measured" end
  return string.format("%.2f %s", got, got >= want and "met" or "MISSED")
end
for _, t in ipairs(TARGETS) do
  local name, a, b, want = t[1], t[2], t[3], t[4]
  line = string.format("%-" .. W .. "s", name)
  if t.cpu then
    line = line .. string.format(" | %-" .. CW .. "s", verdict(ratio(a, b), want))
  else
    for _, m in ipairs(modes) do
      line = line .. string.format(" | %-" .. CW .. "s", verdict(ratio(a .. "@" .. m, b .. "@" .. m), want))
    end
  end
  print((line:gsub("%s+$", "")))
end
if memory then
  -- Flat: under one byte per query over the whole run.
  local d = memory.after - memory.before
  print(string.format("%-" .. W .. "s | %s", "memory flat (growth < 1 byte per query)",
    string.format("%+d kB %s", d, d * 1024 < memory.n and "met" or "MISSED")))
end
