--- p0f.policy_protocol: Postfix policy delegation, the wire side.
--
-- A request is `name=value` lines ended by an empty line; the answer is
-- `action=...` and an empty line (SMTPD_POLICY_README). One parser per
-- connection; it never holds more than one line plus one request, whatever
-- the peer sends (plus, after hold(), the rest of one read):
--
--   local parser = protocol.parser{ max_line = 4096, max_attrs = 128 }
--   parser:feed(data, function(attrs, problem) ... end)
--     -- called once per complete request, in order. `problem` is nil or
--     -- why the request is not to be trusted ("line too long", "too many
--     -- attributes", "garbage line"); the request is still answered, so
--     -- the client stays in step.
--   parser:partial() -> true while a request has begun but not ended
--   parser:hold()     -- from inside the callback: stop after this request;
--     the rest of the data stays in the parser (a server that has enough
--     requests of this client in flight); parser:feed("", ...) goes on
--   parser:holding()  -> true while it holds data back
--   protocol.answer(action) -> "action=<action>\n\n"
local protocol = {}

protocol.MAX_LINE = 4096
protocol.MAX_ATTRS = 128

local Parser = {}
Parser.__index = Parser

function protocol.parser(opts)
  opts = opts or {}
  return setmetatable({
    max_line = opts.max_line or protocol.MAX_LINE,
    max_attrs = opts.max_attrs or protocol.MAX_ATTRS,
    buf = "",          -- an unfinished line
    attrs = {},
    nattrs = 0,
    started = false,   -- a line of the current request was seen
    skipping = false,  -- dropping the rest of an over-long line
    problem = nil,
    held = false,      -- hold() was called: stop at the next request boundary
  }, Parser)
end

function Parser:_reset()
  self.attrs, self.nattrs, self.started, self.problem = {}, 0, false, nil
end

function Parser:_note(problem)
  self.problem = self.problem or problem
end

function Parser:_line(line, emit)
  if line == "" then
    local attrs, problem = self.attrs, self.problem
    self:_reset()
    emit(attrs, problem)
    return
  end
  self.started = true
  local name, value = line:match("^([%w_%-%.]+)=(.*)$")
  if not name then
    self:_note("garbage line")
  elseif self.nattrs >= self.max_attrs then
    self:_note("too many attributes")
  else
    if self.attrs[name] == nil then self.nattrs = self.nattrs + 1 end
    self.attrs[name] = value
  end
end

function Parser:feed(data, emit)
  local buf = self.buf .. data
  local pos = 1
  self.held = false
  while not self.held do
    local nl = buf:find("\n", pos, true)
    if not nl then break end
    if self.skipping then
      self.skipping = false -- the tail of the over-long line ends here
    elseif nl - pos > self.max_line then
      -- the same limit whether a long line comes in pieces or in one read
      self.started = true
      self:_note("line too long")
    else
      local line = buf:sub(pos, nl - 1)
      if line:byte(-1) == 13 then line = line:sub(1, -2) end -- tolerate CRLF
      self:_line(line, emit)
    end
    pos = nl + 1
  end
  local rest = buf:sub(pos)
  if self.held then
    self.buf = rest -- whole lines among it: parsed on the next feed
    return
  end
  if #rest > self.max_line then
    self.started = true
    self.skipping = true
    self:_note("line too long")
    rest = ""
  elseif self.skipping then
    rest = ""
  end
  self.buf = rest
end

function Parser:hold()
  self.held = true
end

function Parser:holding()
  return self.held and #self.buf > 0
end

function Parser:partial()
  return self.started or self.skipping or #self.buf > 0
end

--- The answer for an action; the text cannot break the protocol.
function protocol.answer(action)
  return "action=" .. action:gsub("[%c]", " ") .. "\n\n"
end

return protocol
