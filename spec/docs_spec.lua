--- The documentation holds together: README.md stays a short front door,
-- and every relative link in it and in docs/ (and the man page sources)
-- names a file in the repository, down to the heading an #anchor points at.
local lu = require("luaunit")

local root = assert(os.getenv("P0F_SOURCE_DIR"), "P0F_SOURCE_DIR not set (run through ctest)")

local read = require("support").read_file

local function list(pattern)
  local out = {}
  local p = io.popen("cd " .. root .. " && ls " .. pattern .. " 2>/dev/null")
  for name in p:lines() do out[#out + 1] = name end
  p:close()
  return out
end

--- GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'.
local function slug(heading)
  return (heading:lower():gsub("[^%w%- _]", ""):gsub(" ", "-"))
end

local function anchors(text)
  local set, fence = {}, false
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("^%s*```") then fence = not fence end
    local h = not fence and line:match("^#+%s+(.-)%s*$")
    if h then set[slug(h)] = true end
  end
  return set
end

--- Links of a Markdown text outside code: { target, line }.
local function links(text)
  local out, fence, n = {}, false, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("^%s*```") then fence = not fence end
    if not fence then
      for target in line:gsub("`[^`]*`", ""):gmatch("%]%(([^)%s]+)%)") do
        out[#out + 1] = { target = target, line = n }
      end
    end
  end
  return out
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

--- nil if `target` (relative to the file `from`) resolves; else why not.
local function broken(from, target)
  if target:match("^%a[%w+.-]*:") then return nil end -- https:, mailto:
  local file, anchor = target:match("^([^#]*)#?(.*)$")
  local path = file == "" and from or (dirname(from) .. "/" .. file)
  local full = root .. "/" .. path
  if not os.rename(full, full) then return "no such file: " .. path end
  if anchor ~= "" then
    local text = read(full)
    if not text or not anchors(text)[anchor] then return "no heading #" .. anchor .. " in " .. path end
  end
  return nil
end

TestDocs = {}

function TestDocs.test_readme_is_a_front_door()
  local text = assert(read(root .. "/README.md"))
  local lines = select(2, text:gsub("\n", "\n"))
  lu.assertTrue(lines <= 250, "README.md has " .. lines .. " lines")
  lu.assertTrue(#links(text) >= 10, "README.md links to the docs")
end

function TestDocs.test_every_link_resolves()
  local files = { "README.md", "CHANGELOG.md" }
  for _, pattern in ipairs({ "docs/*.md", "man/*.md", "*/README.md" }) do
    for _, name in ipairs(list(pattern)) do files[#files + 1] = name end
  end
  local bad, seen = {}, 0
  for _, name in ipairs(files) do
    for _, l in ipairs(links(assert(read(root .. "/" .. name), name))) do
      seen = seen + 1
      local why = broken(name, l.target)
      if why then bad[#bad + 1] = string.format("%s:%d: %s (%s)", name, l.line, l.target, why) end
    end
  end
  lu.assertTrue(seen > 0)
  lu.assertEquals(bad, {})
end

function TestDocs.test_checker_catches_a_bad_link()
  lu.assertNil(broken("README.md", "docs/api.md"))
  lu.assertNotNil(broken("README.md", "docs/no-such-page.md"))
  lu.assertNotNil(broken("README.md", "docs/api.md#no-such-heading"))
  lu.assertNil(broken("docs/postfix.md", "performance.md#p0f-policyd-throughput"))
  lu.assertNil(broken("rspamd/README.md", "../docs/rspamd.md"))
  lu.assertNil(broken("README.md", "https://example.org/x"))
end

os.exit(lu.LuaUnit.run())
