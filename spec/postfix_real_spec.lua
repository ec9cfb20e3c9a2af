--- End to end with a real Postfix (Debian's 3.7): a private instance on a
-- loopback port asks p0f-policyd (check_policy_service), which asks a real
-- p0f sniffing `lo`; mail is sent with swaks.
--   - the delivered message carries exactly one fingerprint header, even
--     with several recipients (PREPEND at DATA, not at RCPT);
--   - a reject rule matching Linux makes Postfix answer 5xx at RCPT;
--   - with p0f stopped, mail is still delivered (fail open).
-- Needs root, p0f, postfix, swaks (apt-get install -y p0f postfix swaks).
local lu = require("luaunit")
local p0f = require("p0f")
local support = require("support")
local ps = require("policyd_support")
local socket = require("socket")

local free_port, write = support.free_port, support.write_file

local function capture(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"status=$?\"")
  local out = p:read("*a")
  p:close()
  return out, tonumber(out:match("status=(%d+)%s*$"))
end

local MASTER_CF = [[
127.0.0.1:%d inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
]]

local MAIN_CF = [[
compatibility_level = 3.6
queue_directory = %s/queue
data_directory = %s/data
mail_owner = postfix
myhostname = mx.p0f-test.invalid
mydomain = p0f-test.invalid
mydestination = localhost, $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
maillog_file = %s/log/postfix.log
maillog_file_prefixes = %s
mail_spool_directory = %s/mail
biff = no
smtputf8_enable = no
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = check_policy_service { inet:127.0.0.1:%d, default_action=DUNNO, timeout=2s }
smtpd_data_restrictions = check_policy_service { inet:127.0.0.1:%d, default_action=DUNNO, timeout=2s }
]]

local mta = {}

local function start_postfix()
  local dir = support.tmpname(".postfix")
  mta.dir = dir
  mta.port = free_port()
  mta.policy_port = free_port()
  assert(support.sh(string.format("mkdir -p %s/etc %s/queue %s/data %s/log %s/mail", dir, dir, dir, dir, dir)))
  assert(support.sh(string.format("chmod 755 %s && chmod 1777 %s/mail && chown postfix %s/data", dir, dir, dir)))
  write(dir .. "/etc/main.cf", string.format(MAIN_CF, dir, dir, dir, dir, dir, mta.policy_port, mta.policy_port))
  write(dir .. "/etc/master.cf", string.format(MASTER_CF, mta.port))
  -- Postfix pauses on files written within the last second
  support.sh(string.format("touch -d '-10 sec' %s/etc/main.cf %s/etc/master.cf", dir, dir))
  local out, status = capture(string.format("postfix -c %s/etc start", dir))
  if status ~= 0 then
    local check = capture(string.format("script -qec 'postfix -c %s/etc check' /dev/null", dir))
    return nil, out .. "\n" .. check
  end
  -- wait for smtpd's port
  local up = support.wait_until(function()
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", mta.port)
    c:close()
    return ok
  end, 100, 0.05)
  if not up then return nil, "postfix did not listen on " .. mta.port end
  return true
end

local function stop_postfix()
  if mta.dir then
    support.sh(string.format("postfix -c %s/etc stop >/dev/null 2>&1", mta.dir))
    support.sh("rm -rf " .. mta.dir)
    mta.dir = nil
  end
end

local function swaks(to, subject)
  return capture(string.format(
    "swaks --server 127.0.0.1:%d --from sender@p0f-test.invalid --to %s "
    .. "--header 'Subject: %s' --body 'p0f-policyd end to end' --timeout 20",
    mta.port, to, subject))
end

local function mailbox(user)
  return ps.read(mta.dir .. "/mail/" .. user)
end

local function count(text, pattern)
  local n = 0
  for _ in text:gmatch(pattern) do n = n + 1 end
  return n
end

-- Messages in an mbox, each as text.
local function messages(user)
  local out = {}
  for msg in ("\n" .. mailbox(user)):gmatch("\nFrom [^\n]*\n(.-)\n\n?%f[\n]") do
    out[#out + 1] = msg
  end
  return out
end

local function wait_messages(user, n)
  return support.wait_until(function()
    return count("\n" .. mailbox(user), "\nFrom ") >= n
  end, 400, 0.05)
end

local function postfix_log()
  return ps.read(mta.dir .. "/log/postfix.log")
end

TestPostfix = {}

function TestPostfix:setUp()
  lu.assertTrue(support.is_root(), "this test runs a real p0f and postfix: run it as root")
  for _, prog in ipairs({ "postfix", "swaks", "p0f" }) do
    lu.assertTrue(support.sh("command -v " .. prog .. " >/dev/null 2>&1"),
      prog .. " is not installed (apt-get install -y " .. prog .. ")")
  end
  self.p0f = assert(support.start_p0f())
  local ok, err = start_postfix()
  lu.assertTrue(ok, err)
  -- p0f learns 127.0.0.1 from a few handshakes
  local learned = support.wait_until(function()
    support.touch("127.0.0.1", 2)
    local r = p0f.query(self.p0f.socket, "127.0.0.1", { timeout = 2 })
    return r and r.status == "ok" and r
  end, 60, 0.1)
  lu.assertNotNil(learned, "p0f did not learn 127.0.0.1")
  self.os = learned.os
end

function TestPostfix:tearDown()
  if self.policyd then ps.stop(self.policyd) end
  stop_postfix()
  support.stop_p0f(self.p0f)
end

function TestPostfix:policy(extra)
  local opts = { listen = "127.0.0.1:" .. mta.policy_port, socket = self.p0f.socket, timeout = 2,
                 header = "X-p0f-OS", skip_local = false, log_level = "debug" }
  for k, v in pairs(extra or {}) do opts[k] = v end
  if self.policyd then ps.stop(self.policyd) end
  local srv, log = ps.start(opts)
  lu.assertNotNil(srv, log)
  self.policyd = srv
end

function TestPostfix:test_header_reject_and_fail_open()
  -- 1. one header per message, also with two recipients
  self:policy()
  local out, status = swaks("root@localhost,nobody@localhost", "one")
  lu.assertEquals(status, 0, out)
  lu.assertNotNil(wait_messages("root", 1), "no delivery to root:\n" .. postfix_log())
  lu.assertNotNil(wait_messages("nobody", 1), "no delivery to nobody:\n" .. postfix_log())
  for _, user in ipairs({ "root", "nobody" }) do
    local box = mailbox(user)
    lu.assertEquals(count(box, "\nX%-p0f%-OS: "), 1, box)
    lu.assertStrContains(box, "\nX-p0f-OS: " .. self.os .. ", link=")
  end
  local plog = ps.read(self.policyd.log)
  -- Postfix asked once at DATA for the message (two recipients, one DATA)
  lu.assertEquals(count(plog, "at DATA: PREPEND X%-p0f%-OS: "), 1, plog)
  lu.assertNil(plog:find("at RCPT: PREPEND", 1, true))

  -- 2. a reject rule matching Linux: 5xx at RCPT, nothing delivered
  self:policy{ reject = { "/^Linux/" } }
  out, status = swaks("root@localhost", "two")
  lu.assertNotEquals(status, 0, out)
  lu.assertStrMatches(out, ".*<%*%* 5%d%d [^\n]*Mail from Linux.*")

  -- 3. p0f stopped: still delivered, without a header (fail open)
  support.stop_p0f(self.p0f)
  self:policy()
  out, status = swaks("root@localhost", "three")
  lu.assertEquals(status, 0, out)
  lu.assertNotNil(wait_messages("root", 2), "no delivery with p0f down:\n" .. postfix_log())
  local box = mailbox("root")
  lu.assertEquals(count("\n" .. box, "\nFrom "), 2) -- "two" was rejected
  lu.assertEquals(count(box, "\nX%-p0f%-OS: "), 1)
  lu.assertStrContains(box, "Subject: three")
  lu.assertNil(box:find("Subject: two", 1, true))
  lu.assertStrContains(ps.read(self.policyd.log), "lookup failed")
end

os.exit(support.run(lu))
