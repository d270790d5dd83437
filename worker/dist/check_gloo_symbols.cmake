# Fails the build when pdsd_dist's objects define or use gloo code of their own.
#
# gloo_process_group.cpp is compiled against Debian 12's gloo headers, which do not match the gloo
# libtorch was built with (other class layouts and vtables). That is safe only while our objects
# contain no code compiled from those headers that touches gloo objects: no gloo:: symbol defined or
# referenced (a reference would call libtorch's gloo with our idea of its types), and no
# c10d::ProcessGroupGloo member (an inline one, such as GlooStore's methods or setTimeout(), would
# be compiled against the wrong headers, and its weak definition could even replace libtorch's).
# std:: templates over shared_ptr<gloo::...> are fine: they only copy and release pointers.
#
#   cmake -DNM=nm -DARCHIVE=libpdsd_dist.a -P check_gloo_symbols.cmake
execute_process(COMMAND ${NM} -P ${ARCHIVE} OUTPUT_VARIABLE listing RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_gloo_symbols: ${NM} ${ARCHIVE} failed: ${err}")
endif()
string(REPLACE "\n" ";" lines "${listing}")
set(bad "")
foreach(line IN LISTS lines)
  # nm -P: "<name> <type> [<value> <size>]"; archive members show up as "lib.a[member.o]:".
  if(NOT line MATCHES "^(_Z[^ ]+) ([A-Za-z]) ?")
    continue()
  endif()
  set(name "${CMAKE_MATCH_1}")
  set(type "${CMAKE_MATCH_2}")
  # Strip the special-name prefixes (vtable, typeinfo, typeinfo name, VTT, guard variable, thunks)
  # to get at the entity's own nested name.
  string(REGEX REPLACE "^_Z(T[VISTT]|GV|Th-?n?[0-9]+_|Tv-?n?[0-9]+_-?n?[0-9]+_)?" "" entity "${name}")
  if(entity MATCHES "^N[rVKRO]*4gloo")
    list(APPEND bad "${type} ${name}   (gloo:: symbol)")
  elseif(NOT type STREQUAL "U" AND entity MATCHES "^N[rVKRO]*4c10d16ProcessGroupGloo")
    list(APPEND bad "${type} ${name}   (defines a c10d::ProcessGroupGloo member)")
  endif()
endforeach()
if(bad)
  list(JOIN bad "\n  " text)
  message(FATAL_ERROR "check_gloo_symbols: ${ARCHIVE} has gloo code compiled against Debian's gloo headers "
          "(see worker/dist/check_gloo_symbols.cmake; demangle with c++filt):\n  ${text}")
endif()
