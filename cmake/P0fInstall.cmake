# What `cmake --install` (make install) puts where, besides the modules.
#
# LuaRocks passes LUADIR and LIBDIR; without them the Lua files and the C
# modules go to the prefix's Lua tree (share/lua/<v>, lib/lua/<v>), which
# Debian's and upstream's interpreters search under /usr/local. The Debian
# package passes its own (/usr/share/lua/<v>, /usr/lib/<triplet>/lua/<v>).
#
# Programs: every file in bin/, its #! line set to P0F_LUA_INTERPRETER
# (default: the lua5.4 or luajit found, else `/usr/bin/env lua5.4`).
# LuaRocks installs and wraps them itself, so the rockspec turns this off.
#
# Man pages: every man/NAME.SECTION.md, turned into roff by pandoc, goes to
# share/man/manSECTION/NAME.SECTION. P0F_MAN=AUTO builds them when pandoc
# is found and says so when it is not (then no man pages are installed);
# ON makes a missing pandoc an error; OFF skips them.
include(GNUInstallDirs)

if(LUA_VERSION STREQUAL "jit")
  set(P0F_LUA_ABI 5.1)
  set(_p0f_interp luajit)
else()
  set(P0F_LUA_ABI ${LUA_VERSION})
  set(_p0f_interp lua${LUA_VERSION})
endif()
if(NOT LUADIR)
  set(LUADIR ${CMAKE_INSTALL_DATADIR}/lua/${P0F_LUA_ABI})
endif()
if(NOT LIBDIR)
  set(LIBDIR lib/lua/${P0F_LUA_ABI})
endif()

option(P0F_INSTALL_PROGRAMS "install bin/* (LuaRocks installs them itself)" ON)
# The interpreter found now, else whichever is on PATH when they run.
find_program(P0F_LUA_PROGRAM ${_p0f_interp})
if(P0F_LUA_PROGRAM)
  set(_p0f_shebang "${P0F_LUA_PROGRAM}")
else()
  set(_p0f_shebang "/usr/bin/env ${_p0f_interp}")
endif()
set(P0F_LUA_INTERPRETER "${_p0f_shebang}" CACHE STRING "the #! interpreter of installed programs")
if(P0F_INSTALL_PROGRAMS)
  file(GLOB _p0f_programs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/bin/*)
  foreach(src ${_p0f_programs})
    get_filename_component(name ${src} NAME)
    file(READ ${src} text)
    string(REGEX REPLACE "^#![^\n]*" "#!${P0F_LUA_INTERPRETER}" text "${text}")
    file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/install-bin/${name} "${text}")
    install(PROGRAMS ${CMAKE_CURRENT_BINARY_DIR}/install-bin/${name} DESTINATION ${CMAKE_INSTALL_BINDIR})
  endforeach()
endif()

set(P0F_MAN AUTO CACHE STRING "build and install the man pages: AUTO (if pandoc is found), ON, OFF")
if(NOT P0F_MAN STREQUAL "OFF")
  find_program(PANDOC_PROGRAM pandoc)
  if(NOT PANDOC_PROGRAM)
    if(P0F_MAN STREQUAL "ON")
      message(FATAL_ERROR "p0f: P0F_MAN=ON but pandoc was not found (apt-get install pandoc)")
    endif()
    message(STATUS "p0f: pandoc not found: the man pages are not built or installed")
  else()
    file(GLOB _p0f_man_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/man/*.md)
    set(_p0f_pages "")
    foreach(src ${_p0f_man_sources})
      get_filename_component(page ${src} NAME_WLE)   # p0f-query.1
      string(REGEX MATCH "[1-9]$" section "${page}")
      if(NOT section)
        message(FATAL_ERROR "p0f: ${src}: man page sources are named NAME.SECTION.md")
      endif()
      set(out ${CMAKE_CURRENT_BINARY_DIR}/man/${page})
      add_custom_command(OUTPUT ${out}
        COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/man
        COMMAND ${PANDOC_PROGRAM} -s -f markdown-smart -t man
                -M "footer=lua-p0f ${PROJECT_VERSION}" -o ${out} ${src}
        DEPENDS ${src} VERBATIM)
      list(APPEND _p0f_pages ${out})
      install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
    endforeach()
    add_custom_target(man ALL DEPENDS ${_p0f_pages})
    set(P0F_MAN_PAGES ${_p0f_pages})
  endif()
endif()
