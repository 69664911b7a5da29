# Fails if an object of the kernels of instruction set ISA defines a symbol (out-of-line code the
# linker may merge) outside multopt's namespaces of that set: the ODR guard of dispatch.hpp.
foreach(object IN LISTS OBJECTS)
  execute_process(COMMAND ${NM} -C --defined-only --extern-only ${object} OUTPUT_VARIABLE symbols
                  COMMAND_ERROR_IS_FATAL ANY)
  string(REPLACE "\n" ";" symbols "${symbols}")
  foreach(symbol IN LISTS symbols)
    if(symbol AND NOT symbol MATCHES "isa_${ISA}::|multopt::kernels::${ISA}::")
      message(SEND_ERROR "${object}: ${symbol}")
    endif()
  endforeach()
endforeach()
