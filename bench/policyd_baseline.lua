#!/usr/bin/env lua
--- The benchmark's ceiling: p0f-policyd's loop, connections and protocol
-- parser, answering DUNNO to everything without looking anything up.
--   lua bench/policyd_baseline.lua -c CONFIG
local config = require("p0f.config")
local policyd = require("p0f.policyd")
local path = arg[1] == "-c" and arg[2] or arg[1]
local opts = assert(config.load(assert(path, "usage: policyd_baseline.lua [-c] CONFIG")))
local server = assert(policyd.new(opts, { baseline = true }))
assert(server:start())
server:handle_signals()
server.loop:run()
os.exit(0)
