--- The examples in examples/ run, against the fake daemon, and say what
-- the docs say they say; every Lua block in README.md and docs/ is
-- one of these files, a complete program run here, a p0f-policyd
-- configuration checked here, or a marked fragment.
local lu = require("luaunit")
local fake = require("p0f.fake")
local support = require("support")

local srv

local function run(script, ...)
  local cmd = { os.getenv("P0F_LUA") or "lua5.4", os.getenv("P0F_SOURCE_DIR") .. "/examples/" .. script, srv.socket }
  for _, a in ipairs({ ... }) do cmd[#cmd + 1] = a end
  local p = io.popen(table.concat(cmd, " ") .. " 2>&1")
  local out = p:read("*a")
  p:close()
  return out
end

TestExamples = {}

function TestExamples.setupClass()
  srv = fake.start{ rules = {
    ["127.0.0.1"] = { os_name = "Linux", os_flavor = "2.2.x-3.x", distance = 0, os_match_q = 2, total_conn = 4 },
    ["::1"] = { os_name = "Linux", os_flavor = "3.x", distance = 0 },
    ["203.0.113.7"] = "hang",
  } }
end

function TestExamples.teardownClass()
  srv:stop()
end

function TestExamples.test_query()
  lu.assertEquals(run("query.lua", "127.0.0.1"),
    '127.0.0.1 runs Linux 2.2.x-3.x (generic match), 0 hops away, link "", seen 4 times\n')
  lu.assertEquals(run("query.lua", "192.0.2.1"), "192.0.2.1: nomatch\n")
end

local function check_three(out)
  lu.assertStrContains(out, "127.0.0.1\tok Linux 2.2.x-3.x")
  lu.assertStrContains(out, "::1\tok Linux 3.x")
  lu.assertStrContains(out, "192.0.2.1\tnomatch")
end

function TestExamples.test_pollable()
  check_three(run("pollable.lua", "127.0.0.1", "::1", "192.0.2.1"))
end

function TestExamples.test_libev()
  check_three(run("libev.lua", "127.0.0.1", "::1", "192.0.2.1"))
  lu.assertStrContains(run("libev.lua", "203.0.113.7"), "timed out (ETIMEDOUT)")
end

function TestExamples.test_cqueues()
  check_three(run("cqueues.lua", "127.0.0.1", "::1", "192.0.2.1"))
end

--- Every ```lua block of README.md and docs/*.md, with what it is:
-- "file" (the whole text of an examples/ file named in its opening
-- comment, which the tests above run), "fragment" (marked by an HTML
-- comment `<!-- fragment: why -->` on the line before: compiled only),
-- "config" (after `<!-- p0f-policyd.conf ... -->`: a p0f-policyd
-- configuration, checked with --check-config), or "program" (anything
-- else: a complete example, run here on its own).
local function doc_blocks()
  local root = os.getenv("P0F_SOURCE_DIR")
  local files = { "README.md" }
  local ls = io.popen("cd " .. root .. " && ls docs/*.md")
  for name in ls:lines() do files[#files + 1] = name end
  ls:close()
  local blocks = {}
  for _, name in ipairs(files) do
    local f = assert(io.open(root .. "/" .. name))
    local prev, body, indent, marked, start = "", nil, nil, nil, 0
    local n = 0
    for line in f:lines() do
      n = n + 1
      if body then
        if line:match("^%s*```%s*$") then
          local text = table.concat(body, "\n") .. "\n"
          local kind = marked or "program"
          local ex -- named in the opening comment lines
          for l in text:gmatch("([^\n]*)\n") do
            if not l:match("^%-%-") then break end
            ex = ex or l:match("examples/([%w_]+%.lua)")
          end
          if ex and not marked then kind = "file" end
          blocks[#blocks + 1] = { where = name .. ":" .. start, text = text, kind = kind, file = ex }
          body = nil
        else
          body[#body + 1] = line:sub(#indent + 1)
        end
      else
        local ind = line:match("^(%s*)```lua%s*$")
        if ind then
          body, indent, start = {}, ind, n
          marked = (prev:match("^%s*<!%-%- fragment") and "fragment")
            or (prev:match("^%s*<!%-%- p0f%-policyd%.conf") and "config") or nil
        end
        if line:match("%S") then prev = line end
      end
    end
    f:close()
    assert(not body, name .. ": unterminated code block at line " .. start)
  end
  return blocks
end

--- Write `text` to a temporary file, run `command` with it (its %s).
local function run_with_file(text, command)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  local out, ok = support.capture(string.format(command, path))
  os.remove(path)
  return out, ok
end

function TestExamples.test_doc_blocks()
  local blocks = doc_blocks()
  local lua = os.getenv("P0F_LUA") or "lua5.4"
  local kinds = {}
  for _, b in ipairs(blocks) do
    kinds[b.kind] = (kinds[b.kind] or 0) + 1
    if b.kind == "file" then
      -- The docs show the file as it is, so what the tests run is what they show.
      lu.assertEquals(b.text, support.read_file(os.getenv("P0F_SOURCE_DIR") .. "/examples/" .. b.file),
        b.where .. " differs from examples/" .. b.file)
    elseif b.kind == "config" then
      local out, ok = run_with_file(b.text, lua .. " " .. os.getenv("P0F_SOURCE_DIR")
        .. "/bin/p0f-policyd -c %s --check-config")
      lu.assertTrue(ok, b.where .. " is not a good configuration:\n" .. out)
      lu.assertStrContains(out, "configuration OK")
    elseif b.kind == "fragment" then
      local chunk, err = (loadstring or load)(b.text, "=" .. b.where)
      lu.assertNotNil(chunk, err)
    else
      local out, ok = run_with_file(b.text, lua .. " %s")
      lu.assertTrue(ok, b.where .. " failed:\n" .. out)
    end
  end
  -- The docs have each kind; a parser that found nothing would pass vacuously.
  lu.assertTrue((kinds.file or 0) >= 2, "examples shown in the docs")
  lu.assertTrue((kinds.program or 0) >= 1, "complete programs in the docs")
  lu.assertTrue((kinds.fragment or 0) >= 1, "fragments in the docs")
  lu.assertTrue((kinds.config or 0) >= 1, "p0f-policyd configurations in the docs")
end

os.exit(lu.LuaUnit.run())
