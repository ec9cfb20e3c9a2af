--[[
A test-only rspamd plugin (the harness installs it beside p0f_fingerprint):
after every scan, from inside the rspamd worker, it reports which p0f C
modules that worker has loaded, as the options of the symbol P0F_PROBE.
rspamd needs only p0f.core; p0f.ev (libev, hiredis) must never be loaded,
as rspamd carries its own libev and hiredis.
]]--

local function state(name)
  return name .. "=" .. (package.loaded[name] and "loaded" or "absent")
end

rspamd_config:register_symbol({
  name = "P0F_PROBE",
  type = "postfilter", -- after every filter, the p0f lookups included
  score = 0.0,
  callback = function(task)
    task:insert_result(true, "P0F_PROBE", 0.0, state("p0f.core"), state("p0f.ev"))
  end,
})
