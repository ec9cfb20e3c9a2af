--- A sub-second clock for the benchmark workers: cqueues' monotonic clock
-- where it is installed, else LuaSocket's wall clock.
local ok, cqueues = pcall(require, "cqueues")
if ok and cqueues.monotime then return cqueues.monotime end
local okS, socket = pcall(require, "socket")
if okS and socket.gettime then return socket.gettime end
error("the benchmark needs lua-cqueues or lua-socket for a clock")
