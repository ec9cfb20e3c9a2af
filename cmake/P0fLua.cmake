# Finding Lua headers without linking liblua: a module takes its Lua
# symbols from the interpreter that loads it.
find_package(PkgConfig QUIET)

# p0f_find_lua(<5.4|5.3|5.2|5.1|jit> <incdir hint> <out var>)
function(p0f_find_lua version hint out)
  if(hint AND EXISTS "${hint}/lua.h")
    set(${out} "${hint}" PARENT_SCOPE)
    return()
  endif()
  if(hint)
    # Debian's luarocks names /usr/include/lua5.1 for 5.1, which only
    # liblua5.1-dev provides; LuaJIT is the 5.1 we build for.
    if(hint MATCHES "5\\.1")
      set(version jit)
    else()
      string(REGEX MATCH "5\\.[1-4]" version "${hint}")
    endif()
  endif()
  if(version STREQUAL "jit")
    set(names luajit)
  else()
    string(REPLACE "." "" nodot "${version}")
    set(names lua${version} lua-${version} lua${nodot})
    if(version STREQUAL "5.1")
      list(APPEND names luajit)
    endif()
  endif()
  if(PKG_CONFIG_FOUND)
    foreach(name ${names})
      pkg_check_modules(_P0F_LUA_${nodot}${name} QUIET ${name})
      if(_P0F_LUA_${nodot}${name}_FOUND)
        foreach(dir ${_P0F_LUA_${nodot}${name}_INCLUDE_DIRS})
          if(EXISTS "${dir}/lua.h")
            set(${out} "${dir}" PARENT_SCOPE)
            return()
          endif()
        endforeach()
      endif()
    endforeach()
  endif()
  foreach(name ${names})
    if(EXISTS "/usr/include/${name}/lua.h")
      set(${out} "/usr/include/${name}" PARENT_SCOPE)
      return()
    endif()
    if(EXISTS "/usr/include/${name}-2.1/lua.h")
      set(${out} "/usr/include/${name}-2.1" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(${out} "" PARENT_SCOPE)
endfunction()

# The binding (src/lua): one file per class, two modules.
set(P0F_LUA_DIR ${CMAKE_CURRENT_LIST_DIR}/../src/lua)
set(P0F_LUA_SHARED ${P0F_LUA_DIR}/util.c ${P0F_LUA_DIR}/response.c)
set(P0F_LUA_CORE_SOURCES ${P0F_LUA_SHARED}
  ${P0F_LUA_DIR}/codec.c ${P0F_LUA_DIR}/client.c ${P0F_LUA_DIR}/syslog.c ${P0F_LUA_DIR}/core.c)
set(P0F_LUA_EV_SOURCES ${P0F_LUA_SHARED}
  ${P0F_LUA_DIR}/handle.c ${P0F_LUA_DIR}/loop.c ${P0F_LUA_DIR}/loop_client.c
  ${P0F_LUA_DIR}/listener.c ${P0F_LUA_DIR}/conn.c ${P0F_LUA_DIR}/timer.c
  ${P0F_LUA_DIR}/signal.c ${P0F_LUA_DIR}/redis.c)

# p0f_add_module(<target> <lua incdir> <output root>): <root>/p0f/core.so
# (p0f.core: libc only) and, where p0f_lib_ev exists, <root>/p0f/ev.so
# (p0f.ev: libev, hiredis) as the target named with "ev" for "core".
function(p0f_add_module target incdir root)
  if(NOT incdir)
    message(FATAL_ERROR "Lua headers not found for ${target}: install liblua5.4-dev "
                        "(or libluajit-5.1-dev), or pass -DLUA_INCDIR=...")
  endif()
  string(REPLACE "p0f_core" "p0f_ev" evtarget ${target})
  set(kinds core)
  if(TARGET p0f_lib_ev)
    list(APPEND kinds ev)
  endif()
  foreach(kind ${kinds})
    if(kind STREQUAL "core")
      set(t ${target})
      add_library(${t} MODULE ${P0F_LUA_CORE_SOURCES})
      target_link_libraries(${t} PRIVATE p0f_lib_core)
    else()
      set(t ${evtarget})
      add_library(${t} MODULE ${P0F_LUA_EV_SOURCES})
      target_link_libraries(${t} PRIVATE p0f_lib_ev)
    endif()
    target_include_directories(${t} PRIVATE "${incdir}" ${P0F_LUA_DIR})
    set_target_properties(${t} PROPERTIES
      PREFIX "" OUTPUT_NAME ${kind}
      LIBRARY_OUTPUT_DIRECTORY "${root}/p0f"
      C_VISIBILITY_PRESET hidden)
    p0f_warnings(${t})
  endforeach()
  message(STATUS "p0f: ${target} uses Lua headers in ${incdir}")
endfunction()
