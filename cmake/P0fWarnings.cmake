# The strict warning set (after LPeg's), applied per target; -Werror in CI.
set(P0F_C_WARNINGS
  -Wall -Wextra -pedantic -Wshadow -Wcast-qual -Wcast-align
  -Wmissing-prototypes -Wstrict-prototypes -Wdeclaration-after-statement
  -Wpointer-arith -Wwrite-strings -Wformat=2 -Wundef -Wnested-externs)

set(CMAKE_C_STANDARD 99)
set(CMAKE_C_EXTENSIONS OFF)
add_compile_definitions(_GNU_SOURCE)

if(P0F_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

function(p0f_warnings target)
  target_compile_options(${target} PRIVATE ${P0F_C_WARNINGS})
  if(P0F_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
